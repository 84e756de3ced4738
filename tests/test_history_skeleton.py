"""The skeleton cache (``.ID.skel``) behind `aish --history` and the shell's `tree`: whatever
happened to the log or to the cache, what it gives equals a full read of the log, and drawing
from it draws the same tree."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import REPO, run

from aish.config import load as load_config
from aish.history import Style, build, first_line, graph_lines, tree_lines
from aish.messages import ASSISTANT, USER, Message, Usage, new_message_id
from aish.store import open_store, skeleton
from aish.store.filestore import FileStore
from aish.store.refs import MAIN

SID = "s1"


def meta(sid: str = SID) -> dict:
    now = time.time()
    return {"id": sid, "owner": "apollo", "created": now, "updated": now, "context_window": 10,
            "participants": ["apollo"], "shared": False, "state": "active"}


def exchange(store: FileStore, branch: str, text: str, **reply) -> None:
    head = store.summary(SID).head(branch)
    parent = head.id if head else ""
    question = Message(USER, f"{text}\nsecond line", "apollo", time.time(), id=new_message_id(),
                       parent=parent, ref=branch)
    answer = Message(ASSISTANT, f"re {text}", "apollo", time.time(), id=new_message_id(),
                     parent=question.id, ref=branch, usage=Usage(3, 4), **reply)
    store.append(SID, [question.to_record(), answer.to_record()])


def grow(store: FileStore, rng: random.Random, exchanges: int) -> None:
    names = list(store.summary(SID).tree.names())
    for n in range(exchanges):
        if rng.random() < 0.2:
            main = store.path(SID, store.summary(SID).head(MAIN), 0)
            at = rng.choice(main).id if main else ""
            names.append(f"b{len(names)}-{n}")
            store.append(SID, [{"t": "ref", "name": names[-1], "to": at, "op": "branch",
                                "time": time.time()}])
        wide = "\u4e2d\u6587 " * rng.randrange(3)  # two cells a character
        exchange(store, rng.choice(names), f"{len(names)}:{n} {wide}")


def shape(messages: list[Message]) -> list[tuple]:
    """What the skeleton keeps of each message."""
    return [(m.id, m.parent or "", m.role, m.ai, m.time, first_line(m.content), m.usage, m.note,
             m.pos) for m in messages]


def drawn(loaded, width: int = 80) -> list[str]:
    history = build(loaded, SID, MAIN)
    style = Style(width, False, True, time.time(), lambda t: t, lambda t: t.replace("k", "K"))
    return ([line.plain for line in tree_lines(history, style)]
            + [line.plain for line in graph_lines(history, style, False)])


def same_as_full_read(store: FileStore, sid: str = SID) -> None:
    sketch, full = store.skeleton(sid), store.load(sid)
    assert sketch is not None
    assert shape(sketch.messages) == shape(full.messages)
    assert sketch.tree.refs == full.tree.refs and sketch.tree.last == full.tree.last
    assert drawn(sketch) == drawn(full)


@pytest.fixture
def store(tmp_path) -> FileStore:
    store = FileStore(tmp_path / "sessions")
    store.create(meta())
    return store


def cache(store: FileStore, sid: str = SID) -> Path:
    return skeleton.path_for(store.root, sid)


def test_extended_by_appends_equals_a_full_read(store):
    rng = random.Random(5)
    for _ in range(6):
        grow(store, rng, 8)
        same_as_full_read(store)
    # Each read after appends added one chunk for what was appended, not a new whole file.
    assert cache(store).read_bytes().count(b"\n") == 6
    assert len(store.skeleton(SID).messages) == 96


def test_written_anew_in_one_chunk_past_the_chunk_limit(store):
    for n in range(skeleton.MAX_CHUNKS + 2):
        exchange(store, MAIN, f"q{n}")
        store.skeleton(SID)
    assert cache(store).read_bytes().count(b"\n") < skeleton.MAX_CHUNKS
    same_as_full_read(store)


@pytest.mark.parametrize("damage", ["flip", "cut", "garbage", "empty", "types", "foreign"])
def test_a_damaged_cache_is_rebuilt(store, damage):
    grow(store, random.Random(1), 10)
    store.skeleton(SID)
    path = cache(store)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    elif damage == "cut":
        data = data[: len(data) - 7]
    elif damage == "garbage":
        data = bytearray(b"\x00\xff not a cache at all\n")
    elif damage == "empty":
        data = bytearray()
    else:  # a checksum that holds over values of the wrong type, or another session's cache
        import json

        body = json.loads(bytes(data).split(b" ", 1)[1])
        if damage == "types":
            body["entries"][3][4] = "yesterday"
        else:
            body["sid"] = "s2"
        text = json.dumps(body).encode()
        data = bytearray(skeleton._crc(text).encode() + b" " + text + b"\n")
    path.write_bytes(bytes(data))
    same_as_full_read(store)
    assert store.skeleton(SID) is not None and path.read_bytes() != bytes(data)


def test_a_rewrite_of_the_log_is_noticed(store):
    grow(store, random.Random(2), 10)
    store.skeleton(SID)
    full = store.load(SID)
    kept = [m for m in full.messages if "1:" not in m.content]
    store.replace(SID, full.meta, kept, refs=full.ref_ids() | {"main": kept[-1].id})
    same_as_full_read(store)
    assert len(store.skeleton(SID).messages) == len(kept)


def test_a_log_cut_back_and_written_over_is_noticed(store):
    """An append undone (a full disk) after a reader saw it, then other records written in
    the same place: the cache must not keep what the log no longer holds."""
    exchange(store, MAIN, "q1")
    log = store.root / f"{SID}.jsonl"
    before = log.read_bytes()
    exchange(store, MAIN, "seen, then undone")
    store.skeleton(SID)
    log.write_bytes(before)
    exchange(store, MAIN, "written over it, at least as long")
    exchange(store, MAIN, "q3")
    same_as_full_read(store)
    assert not [m for m in store.skeleton(SID).messages if "undone" in m.content]


def test_a_torn_tail_is_left_out_until_it_is_cut(store):
    exchange(store, MAIN, "q1")
    log = store.root / f"{SID}.jsonl"
    with open(log, "ab") as f:
        f.write(b'{"t":"msg","role":"user","content":"half a li')
    same_as_full_read(store)
    exchange(store, MAIN, "q2")  # the writer cuts the torn tail off first
    same_as_full_read(store)
    assert len(store.skeleton(SID).messages) == 4


def test_a_damaged_message_in_the_log_means_a_full_read(store):
    exchange(store, MAIN, "q1")
    with open(store.root / f"{SID}.jsonl", "ab") as f:
        f.write(b'{"t":"msg","role":"user","content":7,"ai":"apollo","time":1,"id":"x1",'
                b'"ref":"main","parent":""}\n')
    assert store.skeleton(SID) is None
    assert store.skeleton(SID) is None  # from the cache too, which says so


def test_renames_take_the_cache_away(store):
    exchange(store, MAIN, "q1")
    store.skeleton(SID)
    store.rename(SID, "s9")
    assert not cache(store).exists()
    exchange_in = store.load("s9")
    sketch = store.skeleton("s9")
    assert sketch is not None and shape(sketch.messages) == shape(exchange_in.messages)
    store.delete("s9")
    assert not cache(store, "s9").exists()


def test_a_cache_that_cannot_be_written_changes_nothing(store, monkeypatch):
    exchange(store, MAIN, "q1")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", full_disk)  # imported where it writes
    same_as_full_read(store)
    assert not cache(store).exists()


def test_long_and_wide_first_lines_draw_as_from_the_log(store):
    long = "word " * 3000 + "sk-abcdefghijklmnopqrstuvwx"
    wide = "\u4e2d" * (skeleton.FIRST_LINE_CHARS + 5)
    for text in (long, wide, "\n\n  \t indented \x1b[31m red \x1b[0m", ""):
        head = store.summary(SID).head(MAIN)
        store.append(SID, [Message(USER, text, "apollo", time.time(), parent=head.id,
                                   ref=MAIN).to_record()])
    sketch, full = store.skeleton(SID), store.load(SID)
    for width in (40, 120, skeleton.WIDEST):
        assert drawn(sketch, width) == drawn(full, width)


APPENDER = """
import sys, time
sys.path.insert(0, {repo!r})
from aish.messages import USER, Message
from aish.store.filestore import FileStore
store = FileStore({root!r})
for n in range({count}):
    head = store.summary("s1").head("main")
    store.append("s1", [Message(USER, f"w{{n}}", "apollo", time.time(), parent=head.id,
                                ref="main").to_record()])
"""


def test_reads_while_another_process_appends(store):
    exchange(store, MAIN, "q1")
    count = 150
    writer = subprocess.Popen([sys.executable, "-c", APPENDER.format(
        repo=str(REPO), root=str(store.root), count=count)], env={**os.environ})
    seen = []
    try:
        while writer.poll() is None or not seen:
            sketch = store.skeleton(SID)
            assert sketch is not None
            seen.append([m.id for m in sketch.messages])
            parents = {m.id for m in sketch.messages} | {""}
            assert all(m.parent in parents for m in sketch.messages)
    finally:
        writer.wait(timeout=600)
    assert writer.returncode == 0
    final = [m.id for m in store.load(SID).messages]
    assert all(ids == final[:len(ids)] for ids in seen)  # every read a prefix of the log
    same_as_full_read(store)
    assert len(final) == 2 + count


def test_encrypted_sessions_keep_no_skeleton(home, sessions_dir):
    """First lines are message text: with encryption on nothing of them is kept in the clear;
    the history is drawn from the log, opened with the key."""
    env = {**home, "AISH_ENCRYPTION_KEY": "a passphrase for the test"}
    config = Path(home["HOME"]) / ".aish" / "config.yaml"
    config.write_text(config.read_text() + "sessions:\n  storage:\n    encrypt: true\n")
    sid = "vault"
    os.environ["AISH_ENCRYPTION_KEY"] = env["AISH_ENCRYPTION_KEY"]  # read by the codec
    try:
        store = open_store(load_config(env))
    finally:
        del os.environ["AISH_ENCRYPTION_KEY"]
    store.create(meta(sid))
    store.append(sid, [Message(USER, "a private question", "apollo", time.time(),
                               parent="", ref=MAIN).to_record()])
    assert store.skeleton(sid) is None
    shown = run(env, "aish", "--history", sid)
    assert shown.returncode == 0, shown.stderr.decode()
    assert "a private question" in shown.stdout.decode()
    assert not list(sessions_dir.glob(".*.skel"))
    assert not any(b"private question" in p.read_bytes() for p in sessions_dir.rglob("*")
                   if p.is_file())


def test_history_draws_from_the_cache_and_keeps_it(home, sessions_dir):
    store = FileStore(sessions_dir)
    store.create(meta())
    exchange(store, MAIN, "first question")
    shown = run(home, "aish", "--history", SID, COLUMNS="100")
    assert shown.returncode == 0, shown.stderr.decode()
    assert "first question" in shown.stdout.decode()
    assert cache(store).exists()
    # What is drawn comes from the cache: a message only the cache holds shows.
    fake = skeleton.entry(Message(USER, "only in the cache", "apollo", time.time(),
                                  id="f" * 16, parent=""))
    log_path = store.root / f"{SID}.jsonl"
    ino = os.stat(log_path).st_ino
    with open(log_path, "rb") as log:
        cached = skeleton.read(cache(store), SID, ino, log, os.path.getsize(log_path))
        assert cached is not None
        tail = skeleton._tail(log, cached.to)
    cache(store).write_bytes(skeleton._chunk(SID, ino, 0, cached.to, tail,
                                             [*cached.entries, fake], 0))
    shown = run(home, "aish", "--history", SID, COLUMNS="100")
    assert "only in the cache" in shown.stdout.decode()
    # --json reads the log itself.
    as_json = run(home, "aish", "--history", SID, "--json")
    assert "only in the cache" not in as_json.stdout.decode()
