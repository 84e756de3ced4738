"""The stores never lose or refuse a message: racing creators, full disks, damaged caches,
inaccessible and read-only stores."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import BIN, run
from manage_support import conversation, ok, race_programs, select_redis

from aish import config as config_module
from aish.errors import StorageError
from aish.management.integrity import inspect
from aish.messages import USER, Message
from aish.sessions import Sessions
from aish.store import open_store
from aish.store.filestore import FileStore
from aish.store.redisstore import RedisStore

# Each of the 16 processes sends this many messages; a nightly run asks for 50 (800 in all).
ROUNDS = int(os.environ.get("AISH_STRESS_ROUNDS", "3"))
WRITERS = 16


@pytest.fixture(params=["file", "redis"])
def store_env(request, env):
    """``env`` (pointed at the scripted server) with its configuration selecting the store."""
    if request.param == "redis":
        select_redis(env, request.getfixturevalue("redis_url"))
    return env


def test_concurrent_first_writers_of_a_named_session_all_succeed(store_env):
    # All processes race to create the session that does not exist yet.
    assert race_programs(store_env, ["apollo", "--session-id", "race"], WRITERS, ROUNDS) == []

    config = config_module.load(store_env)
    loaded = open_store(config).load("race")
    assert loaded.problems == []
    sent = Counter(m.content for m in loaded.messages if m.role == "user")
    expected = {f"msg-{n}-{r}" for n in range(WRITERS) for r in range(ROUNDS)}
    assert set(sent) == expected and set(sent.values()) == {1}  # every one, exactly once
    assert len(loaded.messages) == 2 * WRITERS * ROUNDS  # and every reply
    for n in range(WRITERS):  # each writer's messages in the order it sent them
        mine = [m.content for m in loaded.messages if m.content.startswith(f"msg-{n}-")]
        assert mine == [f"msg-{n}-{r}" for r in range(ROUNDS)]


# -- a full disk ------------------------------------------------------------------------------


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                           str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(name, size)`` mounts a real tmpfs (needs root), unmounted afterwards."""
    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        _mount_tmpfs(tmp_path / name, size)
        mounted.append(tmp_path / name)
        return tmp_path / name

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def _seed(env: dict, sid: str, pairs: int = 3) -> None:
    config = config_module.load(env)
    Sessions(open_store(config), config).create(
        "apollo", sid, named=True, messages=conversation("apollo", pairs, time.time() - 100))


def _after_a_failed_append_everything_works(aish, disk: Path, sid: str, before: bytes) -> None:
    log = disk / f"{sid}.jsonl"
    assert log.read_bytes() == before  # exactly as it was: no torn tail, no partial line
    assert ok(aish("aish", "--validate-session", sid))
    ok(aish("aish", "--prune-session", sid, "--keep-recent", "2"))
    _seed(aish.env, "other")
    ok(aish("aish", "--merge-sessions", f"{sid},other", "--output", "merged"))
    loaded = open_store(config_module.load(aish.env)).load("merged")
    assert loaded.problems == [] and len(loaded.messages) == 4 + 6


def test_a_full_disk_leaves_the_log_as_it_was(env, tmpfs):
    small_disk = tmpfs("small", "256k")
    env = {**env, "AISH_SESSION_DIR": str(small_disk)}
    aish = Runner(env)
    _seed(env, "full")
    log = small_disk / "full.jsonl"
    before = log.read_bytes()
    filler = _fill(small_disk)
    # Longer than a page, so the write cannot fit in space the log already holds.
    failed = aish("apollo", "--session-id", "full", input="y" * 20000)
    assert failed.returncode == 5, failed.stderr
    lines = failed.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "full" in lines[0]
    assert log.read_bytes() == before
    assert not [p for p in small_disk.iterdir() if p.name.startswith((".idx-", ".tmp-"))]
    filler.unlink()
    _after_a_failed_append_everything_works(aish, small_disk, "full", before)


@pytest.mark.parametrize("errno_code", [errno.ENOSPC, errno.EIO])
def test_an_append_that_fails_midway_is_undone(home, sessions_dir, monkeypatch, errno_code):
    """The same in process, everywhere: the write stores part of the line, then fails."""
    _seed(home, "torn")
    store = FileStore(sessions_dir)
    log, idx = sessions_dir / "torn.jsonl", sessions_dir / ".torn.idx"
    store.summary("torn")
    before, idx_before = log.read_bytes(), idx.read_bytes()
    real_write = os.write

    def failing_write(fd, data):
        if os.fstat(fd).st_ino == os.stat(log).st_ino:
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno_code, os.strerror(errno_code))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", failing_write)
    record = Message(USER, "lost?", "apollo", time.time()).to_record()
    with pytest.raises(StorageError, match=os.strerror(errno_code)):
        store.append("torn", [record])
    monkeypatch.undo()
    assert log.read_bytes() == before and idx.read_bytes() == idx_before
    assert store.summary("torn").messages == 6
    _after_a_failed_append_everything_works(Runner(home), sessions_dir, "torn", before)


class Runner:
    """The ``aish`` fixture's runner for an environment built inside a test."""

    def __init__(self, env: dict):
        self.env = env

    def __call__(self, *args: str, input=None, timeout: float = 120):
        return run(self.env, *args, input=input, timeout=timeout)


# -- a store this user may not use, and a read-only store ------------------------------------

READING = [["--list-sessions", "--all"], ["--session-info", "s1"], ["--session-stats"],
           ["--validate-session", "s1"], ["--search-sessions", "question"],
           ["--export-sessions"], ["--save-session", "s1"]]


def _one_error_line(done, *expected: str) -> str:
    assert done.returncode == 5, (done.returncode, done.stderr)
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and b"Traceback" not in done.stderr, lines
    for text in expected:
        assert text in lines[0]
    return lines[0]


SETPRIV = shutil.which("setpriv")


@pytest.mark.skipif(os.geteuid() != 0 or SETPRIV is None,
                    reason="needs root and setpriv to act as a user without DAC override")
@pytest.mark.parametrize("mode", [0o700, 0o711])  # not even enterable; enterable, not listable
@pytest.mark.parametrize("argv", READING + [["apollo", "--session-id", "s1"]])
def test_a_store_owned_by_another_user_is_one_line(env, sessions_dir, argv, mode):
    _seed(env, "s1")
    os.chown(sessions_dir, 65534, 65534)  # nobody's
    for path in sessions_dir.rglob("*"):
        os.chown(path, 65534, 65534, follow_symlinks=False)
    os.chmod(sessions_dir, mode)
    # Root without the capability to bypass file modes meets the modes as any other user does.
    command = [SETPRIV, "--bounding-set=-dac_override,-dac_read_search,-fowner",
               str(BIN / (argv[0] if argv[0] == "apollo" else "aish"))]
    command += argv[1:] if argv[0] == "apollo" else argv
    done = subprocess.run(command, env=env, input=b"hello", capture_output=True, timeout=120)
    _one_error_line(done, str(sessions_dir), "Permission denied")


@pytest.mark.parametrize("argv", READING + [["apollo", "--session-id", "s1"]])
def test_a_store_path_that_is_a_file_is_one_line(env, tmp_path, argv):
    path = tmp_path / "not-a-dir"
    path.write_text("x")
    program = argv[0] if argv[0] == "apollo" else "aish"
    rest = argv[1:] if argv[0] == "apollo" else argv
    done = run({**env, "AISH_SESSION_DIR": str(path)}, program, *rest, input="hello")
    _one_error_line(done, str(path))
    assert path.read_text() == "x"


@pytest.mark.parametrize("locks", ["kept", "missing"])  # a copy may lack .locks and caches
def test_a_read_only_store_can_be_read(env, tmpfs, locks):
    read_only_disk = tmpfs("ro", "1m")
    env = {**env, "AISH_SESSION_DIR": str(read_only_disk)}
    aish = Runner(env)
    _seed(env, "s1")
    if locks == "missing":
        shutil.rmtree(read_only_disk / ".locks")
        (read_only_disk / ".s1.idx").unlink(missing_ok=True)
    remount = subprocess.run(["mount", "-o", "remount,ro", str(read_only_disk)],
                             capture_output=True)
    if remount.returncode != 0:
        pytest.skip(f"cannot remount read-only: {remount.stderr.decode().strip()}")
    listing = ok(aish("aish", "--list-sessions", "--all"))
    assert "s1" in listing and "apollo-ai" in listing
    assert "Messages: 6" in ok(aish("aish", "--session-info", "s1"))
    assert "Stored sessions: 1" in ok(aish("aish", "--session-stats"))
    assert "OK (6 messages)" in ok(aish("aish", "--validate-session", "s1"))
    assert "[question 1] for apollo" in ok(aish("aish", "--search-sessions", "question 1"))
    assert len(json.loads(ok(aish("aish", "--save-session", "s1")))["messages"]) == 6
    exported = ok(aish("aish", "--export-sessions"))
    assert "question 2 for apollo" in exported
    before = sorted(p.name for p in read_only_disk.rglob("*"))
    done = aish("apollo", "--session-id", "s1", input="one more")
    _one_error_line(done, "Read-only file system")
    _one_error_line(aish("aish", "--end-session", "s1"), "Read-only file system")
    assert sorted(p.name for p in read_only_disk.rglob("*")) == before


# -- damaged summary caches and headers -------------------------------------------------------

def _cache_damage(doc: dict) -> list[bytes]:
    summary = doc["summary"]
    out = []
    for path, value in ((("last_time",), -1e308), (("messages",), float("nan")),
                        (("messages",), "6"), (("tokens",), -5), (("by_ai",), ["apollo"]),
                        (("meta",), "apollo"), (("meta", "updated"), "yesterday"),
                        (("meta", "owner"), None), (("messages",), 7)):
        changed = json.loads(json.dumps(summary))
        node = changed
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        out.append(json.dumps({**doc, "summary": changed}).encode())
    whole = json.dumps(doc).encode()
    return out + [whole[: len(whole) // 2], b"[]", b'"x"', b"NaN"]


def test_a_damaged_cache_is_rebuilt_from_the_log(aish, home, sessions_dir):
    _seed(home, "s1")
    store = FileStore(sessions_dir)
    right = store.summary("s1").to_json()
    idx = sessions_dir / ".s1.idx"
    size = (sessions_dir / "s1.jsonl").stat().st_size
    assert store._read_idx("s1", size).to_json() == right  # an intact cache is used
    for damaged in _cache_damage(json.loads(idx.read_bytes())):
        idx.write_bytes(damaged)
        assert FileStore(sessions_dir).summary("s1").to_json() == right, damaged
        idx.write_bytes(damaged)
        assert "apollo-ai" in ok(aish("aish", "--list-sessions", "--all"))
        idx.write_bytes(damaged)
        assert "Messages: 6" in ok(aish("aish", "--session-info", "s1"))


@pytest.mark.parametrize("header", [
    '"just a string"', '["a", "list"]',
    '{"t":"meta","id":"s1","owner":["x"],"created":"monday","updated":-1e308,'
    '"participants":"apollo","shared":"yes","origin":5,"context_window":-3,"state":[]}',
    '{"t":"meta","id":"s1","owner":"apollo","created":NaN,"updated":"x","participants":[1]}'])
def test_a_damaged_header_survives_every_reading_command(aish, home, sessions_dir, header):
    _seed(home, "s1")
    _seed(home, "s2")
    log = sessions_dir / "s1.jsonl"
    lines = log.read_bytes().split(b"\n")
    log.write_bytes(b"\n".join([header.encode()] + lines[1:]))
    listing = ok(aish("aish", "--list-sessions", "--all"))
    assert "s1" in listing and "s2" in listing
    assert "Messages: 6" in ok(aish("aish", "--session-info", "s1"))
    assert "Stored sessions: 2" in ok(aish("aish", "--session-stats"))
    assert "question 1" in ok(aish("aish", "--search-sessions", "question 1"))
    ok(aish("aish", "--export-sessions", "--skip-corrupted"))
    validated = aish("aish", "--validate-session", "s1")
    assert validated.returncode == 1 and b"Traceback" not in validated.stderr
    assert b"problem" in validated.stdout


def test_a_full_redis_refuses_an_append_whole(redis_url):
    """Redis's counterpart of a full disk: out of memory, the write is refused and nothing of
    it is stored (one script, run whole or not at all)."""
    import redis

    store = RedisStore(redis_url)
    config = config_module.load({"HOME": "/nonexistent"})
    Sessions(store, config).create("apollo", "s1", named=True,
                                   messages=conversation("apollo", 3, time.time() - 100))
    client = redis.Redis.from_url(redis_url)
    before = (client.lrange("aish:{s1}:log", 0, -1), client.hgetall("aish:{s1}:meta"))
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1")
    try:
        record = Message(USER, "y" * 10000, "apollo", time.time()).to_record()
        with pytest.raises(StorageError, match="maxmemory"):
            store.append("s1", [record])
    finally:
        client.config_set("maxmemory", "0")
    assert (client.lrange("aish:{s1}:log", 0, -1), client.hgetall("aish:{s1}:meta")) == before
    found = inspect(Sessions(store, config), "s1")
    assert found.problems == [] and len(found.messages) == 6
    client.close()
