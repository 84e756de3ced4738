"""The file store's list cache: a listing read from it is the listing read from every session,
whatever happened to the sessions or to the cache file since it was written."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
import zlib
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aish.commands.list_cmds import json_pieces
from aish.config import load
from aish.messages import ASSISTANT, USER, Message
from aish.store import listcache, open_store
from aish.store.filestore import FileStore
from aish.store.listcache import Row

REPO = Path(__file__).resolve().parent.parent
SECRET = "the vault code is 8841"


def uncached(store: FileStore) -> list[list]:
    """The rows as read from each session's summary, the cache not involved."""
    return [Row.of(s).to_json() for s in sorted(store.summaries(), key=lambda s: s.id)]


def listed(store: FileStore) -> list[list]:
    return [row.to_json() for row in store.list_rows()]


def cache_of(store: FileStore) -> Path:
    return store.root / listcache.CACHE_NAME


def new_session(store: FileStore, sid: str, pairs: int = 1, at: float = 1000.0,
                **meta) -> None:
    messages = []
    for i in range(pairs):
        messages += [Message(USER, f"q{i}", "apollo", at + i),
                     Message(ASSISTANT, f"a{i}", "apollo", at + i + 0.5)]
    store.create({"id": sid, "owner": "apollo", "created": at, "context_window": 10,
                  "participants": ["apollo"], "state": "active", **meta}, messages)


def add_pair(store: FileStore, sid: str, when: float) -> None:
    store.append(sid, [Message(USER, "more", "apollo", when).to_record(),
                       Message(ASSISTANT, "yes", "apollo", when + 0.5).to_record()])


@pytest.fixture
def store(tmp_path) -> FileStore:
    store = FileStore(tmp_path / "sessions")
    for i in range(4):
        new_session(store, f"sess_{i}", pairs=i + 1)
    return store


def test_a_listing_writes_the_cache_0600_and_the_next_one_reads_only_it(store, monkeypatch):
    first = listed(store)
    assert first == uncached(store)
    cache = cache_of(store)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    # No session's summary is read now: a reader that fails shows it was not asked.
    monkeypatch.setattr(FileStore, "summary", lambda self, sid: pytest.fail("summary read"))
    before = cache.stat().st_mtime_ns, cache.stat().st_ino
    assert listed(store) == first
    assert (cache.stat().st_mtime_ns, cache.stat().st_ino) == before  # not rewritten


def test_rows_follow_append_end_title_rename_delete_and_restore(store):
    listed(store)
    add_pair(store, "sess_0", 5000.0)
    store.append("sess_1", [{"t": "meta", "state": "ended", "title": "Plans", "time": 6000.0}])
    assert listed(store) == uncached(store)
    rows = {row[0]: row for row in listed(store)}
    assert rows["sess_0"][6:8] == [4, 2] and rows["sess_0"][10] == 5000.5
    assert rows["sess_1"][1] == "Plans" and rows["sess_1"][11] is True
    store.rename("sess_2", "sess_two")
    assert [row[0] for row in listed(store)] == ["sess_0", "sess_1", "sess_3", "sess_two"]
    kept = store.root / "kept.jsonl.bak"
    shutil.copy2(store.root / "sess_3.jsonl", kept)  # mtime kept, as a restore by hand would
    store.delete("sess_3")
    assert "sess_3" not in [row[0] for row in listed(store)]
    os.replace(kept, store.root / "sess_3.jsonl")
    assert listed(store) == uncached(store)


def test_a_log_put_back_with_the_same_size_and_mtime_is_read_again(store):
    listed(store)
    log = store.root / "sess_0.jsonl"
    old = log.stat()
    edited = store.root / "edited.tmp"  # as an editor saves: a new file renamed over the log
    edited.write_bytes(log.read_bytes().replace(b'"owner":"apollo"', b'"owner":"athena"'))
    os.utime(edited, ns=(old.st_atime_ns, old.st_mtime_ns))
    os.replace(edited, log)
    assert (log.stat().st_size, log.stat().st_mtime_ns) == (old.st_size, old.st_mtime_ns)
    (store.root / ".sess_0.idx").unlink()  # checked by size only: the log itself is to be read
    assert {row[0]: row[2] for row in listed(store)}["sess_0"] == "athena"


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "empty", "directory",
                                    "link", "other version", "bad row"])
def test_a_damaged_cache_is_ignored_and_written_anew(store, tmp_path, damage):
    expected = listed(store)
    cache = cache_of(store)
    data = cache.read_bytes()
    if damage == "flip":  # one letter of a row changes: the CRC no longer matches
        at = data.index(b'"apollo"')
        cache.write_bytes(data[:at] + b'"apollp"' + data[at + 8:])
    elif damage == "truncate":
        cache.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        cache.write_bytes(os.urandom(300))
    elif damage == "empty":
        cache.write_bytes(b"")
    elif damage == "directory":
        cache.unlink()
        cache.mkdir()
    elif damage == "link":
        cache.unlink()
        target = tmp_path / "elsewhere"
        target.write_bytes(data)
        cache.symlink_to(target)
    elif damage == "other version":
        head, _, body = data.partition(b"\n")
        cache.write_bytes(json.dumps({**json.loads(head), "v": 999}).encode() + b"\n" + body)
    else:  # a row of the right CRC whose values are not a row's: that row is read again
        head, _, body = data.partition(b"\n")
        lines = body.split(b"\n")
        row = json.loads(lines[0])
        row[10] = "many"  # the message count
        lines[0] = json.dumps(row).encode()
        body = b"\n".join(lines)
        cache.write_bytes(json.dumps({**json.loads(head), "bytes": len(body),
                                      "crc": zlib.crc32(body)}).encode()
                          + b"\n" + body)
    assert listed(store) == expected
    if damage != "directory":  # a directory in its place is left alone, never removed
        assert cache.is_file() and not cache.is_symlink()
        assert listed(store) == expected


def test_an_encrypted_store_keeps_no_message_text_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AISH_ENCRYPTION_KEY", "correct horse battery staple")
    config = replace(load({"HOME": str(tmp_path / "home")}), encrypt=True)
    store = open_store(config)
    store.create({"id": "vault", "owner": "apollo", "created": 1.0},
                 [Message(USER, SECRET, "apollo", 1.0)])
    store.append("vault", [Message(ASSISTANT, SECRET + "!", "apollo", 2.0).to_record()])
    assert [row.id for row in store.list_rows()] == ["vault"]
    cache = config.session_dir / listcache.CACHE_NAME
    assert cache.is_file()
    assert b"8841" not in cache.read_bytes()


WRITER = r"""
import sys
from aish.messages import ASSISTANT, USER, Message
from aish.store.filestore import FileStore
store = FileStore(sys.argv[1])
for i in range(int(sys.argv[3])):
    store.append(sys.argv[2], [Message(USER, "w", "apollo", 2000.0 + i).to_record(),
                               Message(ASSISTANT, "r", "apollo", 2000.5 + i).to_record()])
"""

LISTER = r"""
import sys
from aish.store.filestore import FileStore
store = FileStore(sys.argv[1])
for _ in range(int(sys.argv[2])):
    store.list_rows()
"""


def test_listings_racing_writers_never_keep_a_wrong_row(store):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(store.root), f"sess_{i}", "40"],
                              env=env) for i in range(2)]
    procs += [subprocess.Popen([sys.executable, "-c", LISTER, str(store.root), "40"], env=env)
              for _ in range(2)]
    while any(p.poll() is None for p in procs[:2]):  # list here too while the writers write
        listed(store)
    assert all(p.wait(timeout=600) == 0 for p in procs)
    # Whatever order the listings wrote the cache in, what it says now is what the logs say.
    assert listed(store) == uncached(store)
    counts = {row[0]: row[6] for row in listed(store)}
    assert counts["sess_0"] == 2 + 80 and counts["sess_1"] == 4 + 80


OPS = st.lists(st.tuples(st.sampled_from(["new", "append", "end", "title", "rename", "delete",
                                          "chmod", "drop cache", "damage cache"]),
                         st.integers(0, 5)), min_size=1, max_size=25)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_listings_with_and_without_the_cache_agree(tmp_path_factory, ops):
    store = FileStore(tmp_path_factory.mktemp("prop") / "sessions")
    new_session(store, "sess_0")
    for step, (op, n) in enumerate(ops):
        ids = [row.id for row in store.list_rows()]
        sid = ids[n % len(ids)] if ids else None
        if op == "new" or sid is None:
            new_session(store, f"sess_n{step}", pairs=n)
        elif op == "append":
            add_pair(store, sid, 3000.0 + step)
        elif op == "end":
            store.append(sid, [{"t": "meta", "state": "ended", "time": 3000.0 + step}])
        elif op == "title":
            store.append(sid, [{"t": "meta", "title": f"t{n}", "title_by": "user"}])
        elif op == "rename":
            store.rename(sid, f"sess_r{step}")
        elif op == "delete":
            store.delete(sid)
        elif op == "chmod":
            os.chmod(store.root / f"{sid}.jsonl", 0o600)
        elif op == "drop cache":
            cache_of(store).unlink(missing_ok=True)
        elif cache_of(store).exists():
            data = cache_of(store).read_bytes()
            cache_of(store).write_bytes(data[:n * 37])
        assert listed(store) == uncached(store), (step, op)


def test_the_command_lists_the_same_with_and_without_the_cache(home, sessions_dir):
    store = FileStore(sessions_dir)
    now = time.time()
    for i in range(5):  # recent: active ones for the plain listing
        new_session(store, f"sess_{i}", pairs=i, at=now - 100 + i, shared=i % 2 == 0)
    store.append("sess_3", [{"t": "meta", "title": "Lunch \x1b[31mplans", "title_by": "user"}])

    def aish(*args: str) -> bytes:
        result = subprocess.run([sys.executable, "-m", "aish", *args], env=home, cwd=REPO,
                                capture_output=True, timeout=600)
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout

    for args in (("--list-sessions",), ("--list-sessions", "--all", "--json")):
        cache_of(store).unlink(missing_ok=True)
        fresh = aish(*args)
        assert cache_of(store).is_file()
        assert aish(*args) == fresh
        assert b"sess_4" in fresh and b"\x1b" not in fresh
    assert json.loads(fresh)[0]["id"] == "sess_4"


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.text(max_size=8),
                    st.floats(allow_nan=False))
ITEMS = st.lists(st.dictionaries(st.text(max_size=5),
                                 st.one_of(SCALARS, st.lists(SCALARS, max_size=3)),
                                 max_size=5), max_size=7)


@settings(max_examples=200, deadline=None)
@given(items=ITEMS, batch=st.integers(1, 4))
def test_the_json_listing_is_what_json_dumps_writes(items, batch):
    assert "".join(json_pieces(iter(items), batch)) == json.dumps(items, indent=2)
