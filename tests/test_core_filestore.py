"""The file store under stress: concurrent processes lose nothing, a SIGKILL at any instant leaves
every session loadable with every acknowledged record, a torn tail is cut (and kept aside) by the
next writer, and rewrites keep what others append meanwhile. Files 0600, directories 0700."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aish.errors import LimitError, StorageError
from aish.messages import USER, Message
from aish.store.filestore import FileStore

# A writer process: appends COUNT records "W:i" to SID, acknowledging each on stdout only after
# `append` returned (fsync done). COUNT 0 = forever. It starts when the file GO exists; with a
# HALFWAY file named, it pauses after COUNT/2 records until that file exists, so a test can make
# sure another process ran in the middle of the writes however slow or busy the machine is.
WRITER = r"""
import os, sys, time
from pathlib import Path
from aish.messages import Message
from aish.store.filestore import FileStore
root, sid, who, count, big, go = sys.argv[1:7]
halfway = sys.argv[7] if len(sys.argv) > 7 else None
store = FileStore(Path(root), max_session_bytes=1 << 40)
while not os.path.exists(go):
    time.sleep(0.001)
i = 0
while int(count) == 0 or i < int(count):
    if halfway and i == int(count) // 2:
        while not os.path.exists(halfway):
            time.sleep(0.001)
    text = f"{who}:{i}"
    if int(big) and i % 3 == 2:
        text += " " + "x" * int(big)
    store.append(sid, [Message("user", text, "apollo", time.time()).to_record()])
    sys.stdout.write(f"{i}\n")
    sys.stdout.flush()
    i += 1
"""

# A rewriter process: from when GO exists, load + replace(since=mark) in a loop until STOP exists;
# prints how many rewrites succeeded. Each keeps the content, so nothing may ever go missing.
REWRITER = r"""
import os, sys, time
from pathlib import Path
from aish.errors import StorageError
from aish.store.filestore import FileStore
root, sid, stop, go = sys.argv[1:5]
store = FileStore(Path(root), max_session_bytes=1 << 40)
while not os.path.exists(go):
    time.sleep(0.001)
done = 0
while not os.path.exists(stop):
    loaded = store.load(sid)
    try:
        store.replace(sid, loaded.meta, loaded.messages, since=loaded.mark)
        done += 1
    except StorageError:
        pass
    sys.stdout.write(f"{done}\n")
    sys.stdout.flush()
    time.sleep(0.002)
print(done, flush=True)
"""


def spawn(script: str, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def new_store(root: Path, *sids: str) -> FileStore:
    store = FileStore(root, max_session_bytes=1 << 40)
    for sid in sids:
        store.create({"id": sid, "owner": "apollo", "created": time.time()})
    return store


def check_writers(store: FileStore, sid: str, writers: int, count: int) -> None:
    loaded = store.load(sid)
    assert loaded.problems == [], loaded.problems
    seen: dict[str, list[int]] = {}
    for message in loaded.messages:
        who, i = message.content.split(" ")[0].split(":")
        seen.setdefault(who, []).append(int(i))
    assert sorted(seen) == [f"w{n}" for n in range(writers)]
    for who, numbers in seen.items():
        assert numbers == list(range(count)), f"{who}: lost or reordered records"
    summary = store.summary(sid)
    assert summary.messages == writers * count


def test_concurrent_writers_lose_nothing(tmp_path):
    store = new_store(tmp_path / "s", "busy")
    go = tmp_path / "go"
    procs = [spawn(WRITER, tmp_path / "s", "busy", f"w{n}", 200, 0, go) for n in range(8)]
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        assert out.split() == [str(i) for i in range(200)]
    check_writers(store, "busy", 8, 200)


def test_concurrent_writers_and_a_rewriter_lose_nothing(tmp_path):
    root = tmp_path / "s"
    store = new_store(root, "busy")
    go, stop, halfway = tmp_path / "go", tmp_path / "stop", tmp_path / "halfway"
    rewriter = spawn(REWRITER, root, "busy", stop, go)
    procs = [spawn(WRITER, root, "busy", f"w{n}", 200, 0, go, halfway) for n in range(8)]
    go.touch()
    # The writers pause half-way until the rewriter has rewritten the session a few times, so
    # rewrites land between appends on any machine; the second half races the rewriter freely.
    for line in rewriter.stdout:
        if int(line) >= 3:
            break
    halfway.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    stop.touch()
    out, err = rewriter.communicate(timeout=600)
    assert rewriter.returncode == 0, err
    check_writers(store, "busy", 8, 200)
    assert store.load("busy").meta["owner"] == "apollo"


def test_replace_keeps_records_appended_after_the_load(tmp_path):
    store = new_store(tmp_path, "s")
    store.append("s", [Message(USER, "old", "apollo", 1.0).to_record()])
    loaded = store.load("s")
    store.append("s", [Message(USER, "arrived meanwhile", "apollo", 2.0).to_record(),
                       {"t": "meta", "state": "ended"}])
    store.replace("s", loaded.meta, [Message(USER, "cleared", "apollo", 1.5)],
                  since=loaded.mark)
    after = store.load("s")
    assert [m.content for m in after.messages] == ["cleared", "arrived meanwhile"]
    assert after.meta["state"] == "ended" and after.problems == []
    # Without `since` the content is exactly what was given.
    store.replace("s", after.meta, [])
    assert store.load("s").messages == []
    # A rewrite based on a load that another rewrite has overtaken is refused, not lossy.
    stale = store.load("s")
    store.replace("s", stale.meta, [Message(USER, "other rewrite", "apollo", 3.0)])
    with pytest.raises(StorageError):
        store.replace("s", stale.meta, [], since=stale.mark)
    assert [m.content for m in store.load("s").messages] == ["other rewrite"]


def read_acks(proc: subprocess.Popen) -> list[int]:
    out, _ = proc.communicate(timeout=300)
    return [int(x) for x in out.split()]


def test_sigkill_mid_write_loses_no_acknowledged_record(tmp_path):
    root = tmp_path / "s"
    sids = ["k0", "k1", "k2"]
    store = new_store(root, *sids)
    go = tmp_path / "go"
    go.touch()
    rng = random.Random(1234)
    acked: dict[str, set[str]] = {sid: set() for sid in sids}
    torn_seen = 0
    for round_ in range(24):
        sid = sids[round_ % 3]
        who = f"r{round_}"
        proc = spawn(WRITER, root, sid, who, 0, 300_000, go)
        first = proc.stdout.readline()
        assert first.strip() == "0", proc.stderr.read()
        time.sleep(rng.uniform(0, 0.08))
        proc.send_signal(signal.SIGKILL)
        acks = [0] + read_acks(proc)
        acked[sid] |= {f"{who}:{i}" for i in acks}
        assert proc.returncode == -signal.SIGKILL
        # Every session loads; the only possible problem is a torn tail, never a lost record.
        for each in sids:
            loaded = store.load(each)
            kinds = {p.kind for p in loaded.problems}
            assert kinds <= {"torn tail"}, loaded.problems
            torn_seen += "torn tail" in kinds
            present = {m.content.split(" ")[0] for m in loaded.messages}
            assert acked[each] <= present, f"lost {sorted(acked[each] - present)[:5]}"
            assert [m.content.split(" ")[0] for m in store.tail(each, 2)] == \
                [m.content.split(" ")[0] for m in loaded.messages[-2:]]
    # The next append cuts any torn tail: afterwards no session has a bad line.
    for sid in sids:
        store.append(sid, [Message(USER, "after", "apollo", time.time()).to_record()])
        loaded = store.load(sid)
        assert loaded.problems == [], loaded.problems
        assert loaded.messages[-1].content == "after"
        assert store.summary(sid).messages == len(loaded.messages)
        for raw in (root / f"{sid}.jsonl").read_bytes().splitlines():
            json.loads(raw)


def test_sigkill_of_a_rewriter_leaves_the_session_whole(tmp_path):
    root = tmp_path / "s"
    store = new_store(root, "r")
    store.append("r", [Message(USER, f"m{i} " + "y" * 5000, "apollo", 1.0 + i).to_record()
                       for i in range(300)])
    rng = random.Random(99)
    for _ in range(12):
        proc = spawn(REWRITER, root, "r", tmp_path / "never", root / "r.jsonl")
        proc.stdout.readline()
        time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=300)
        loaded = store.load("r")
        assert loaded.problems == []
        assert [m.content.split(" ")[0] for m in loaded.messages] == [f"m{i}" for i in range(300)]


def test_torn_tail_is_ignored_then_cut_and_kept_aside(tmp_path):
    root = tmp_path / "s"
    store = new_store(root, "t")
    store.append("t", [Message(USER, "whole", "apollo", 1.0).to_record()])
    torn = b'{"role":"user","content":"half a li'
    with open(root / "t.jsonl", "ab") as f:
        f.write(torn)
    loaded = store.load("t")
    assert [m.content for m in loaded.messages] == ["whole"]
    assert [p.kind for p in loaded.problems] == ["torn tail"]
    assert [m.content for m in store.tail("t", 5)] == ["whole"]
    assert store.summary("t").messages == 1

    store.append("t", [Message(USER, "next", "apollo", 2.0).to_record()])
    loaded = store.load("t")
    assert [m.content for m in loaded.messages] == ["whole", "next"]
    assert loaded.problems == []
    kept = list((root / "backup").glob("t-*-torn.jsonl"))
    assert len(kept) == 1 and kept[0].read_bytes() == torn
    assert kept[0].stat().st_mode & 0o777 == 0o600


def test_a_torn_tail_longer_than_a_read_block(tmp_path):
    store = new_store(tmp_path, "t")
    for i in range(3):
        store.append("t", [Message(USER, f"m{i}", "apollo", 1.0 + i).to_record()])
    with open(tmp_path / "t.jsonl", "ab") as f:
        f.write(b'{"role":"user","content":"' + b"z" * 200_000)
    assert [m.content for m in store.tail("t", 2)] == ["m1", "m2"]
    assert [m.content for m in store.tail("t", 9)] == ["m0", "m1", "m2"]


def test_permissions_and_no_symlink_following(tmp_path):
    root = tmp_path / "s"
    store = new_store(root, "p")
    store.append("p", [Message(USER, "x", "apollo", 1.0).to_record()])
    store.backup("p", "test")
    assert root.stat().st_mode & 0o777 == 0o700
    for folder in (root / ".locks", root / "backup"):
        assert folder.stat().st_mode & 0o777 == 0o700
    for path in root.rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o777 == 0o600, path

    outside = tmp_path / "victim.txt"
    outside.write_text("precious\n")
    (root / "evil.jsonl").symlink_to(outside)
    with pytest.raises(StorageError):
        store.append("evil", [{"t": "meta", "x": 1}])
    with pytest.raises(StorageError):
        store.load("evil")
    assert outside.read_text() == "precious\n"


def test_session_size_limit_writes_nothing(tmp_path):
    store = FileStore(tmp_path, max_session_bytes=2000)
    store.create({"id": "small", "owner": "apollo"})
    before = (tmp_path / "small.jsonl").read_bytes()
    with pytest.raises(LimitError, match="prune"):
        store.append("small", [Message(USER, "x" * 3000, "apollo", 1.0).to_record()])
    assert (tmp_path / "small.jsonl").read_bytes() == before


LINE = st.one_of(
    st.binary(max_size=60),
    st.just(b"[" * 100_000),
    st.just(b'{"t":"msg"}'),
    st.just(b'{"t":"msg","role":"user","content":1,"ai":"a","time":1}'),
    st.just(b'{"t":"msg","role":"user","content":"c","ai":"a","time":"yesterday"}'),
    st.just(b'{"t":"meta","updated":"never","created":1e400}'),
    st.builds(lambda t: json.dumps({"t": "msg", "role": "user", "content": t, "ai": "apollo",
                                    "time": 5.0}).encode(), st.text(max_size=20)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(LINE, max_size=8))
def test_garbage_lines_never_break_loading_or_listing(tmp_path_factory, lines):
    root = tmp_path_factory.mktemp("fuzz")
    store = new_store(root, "f")
    with open(root / "f.jsonl", "ab") as f:
        f.write(b"".join(line.replace(b"\n", b" ") + b"\n" for line in lines))
    loaded = store.load("f")  # problems are collected, never raised
    assert all(isinstance(m.content, str) for m in loaded.messages)
    store.tail("f", 3)
    store.summaries()
    store.append("f", [Message(USER, "still works", "apollo", 9.0).to_record()])
    assert store.load("f").messages[-1].content == "still works"


def test_a_message_read_from_a_record_has_every_field_and_reads_back_equal():
    """Reading builds messages without their __init__ (for speed): a field added to Message
    and forgotten there would be missing from every message read from a log."""
    from dataclasses import fields

    from aish.messages import Message, Timing, Usage

    original = Message("assistant", "hi", "apollo", 5.0, id="m1", usage=Usage(3, 4),
                       interrupted=True, model="m", cut=True, parent="p", ref="main",
                       note="merge", source="s", timing=Timing(0.1, 0.5, ((0.2, 1),)), pp=7)
    record = original.to_record()
    record["pp"] = 7  # a store's hint, written by the store beside the record
    read = Message.from_record(record, pos=9)
    assert set(vars(read)) == {f.name for f in fields(Message)}
    assert read == original and read.to_record() == original.to_record()
    assert (read.parent, read.ref, read.timing, read.pos, read.pp) == ("p", "main",
                                                                       original.timing, 9, 7)
