"""Logs written before the conversation tree (tests/golden, made by the version at aee5a71 with
tests/golden/make_golden.py) read the same with the tree: the same messages, the same listing
and info figures, the same context sent to the model when continued, a clean validation, and
new messages that continue the old last message.

Each log is tried on the file store (the file copied in) and on a real redis-server (the log
list and summary hash restored exactly as the old RedisStore left them)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run
from manage_support import select_redis

from aish import config as config_module
from aish.store import open_store

GOLDEN = Path(__file__).resolve().parent / "golden"
EXPECTED = json.loads((GOLDEN / "expected.json").read_text())
NAMES = sorted(EXPECTED["file"])
# Depend on when the test runs (a golden session is long expired by now) or where it is kept.
VOLATILE = {"state", "location"}


def ok(env, *argv, input=None) -> str:
    done = run(env, *argv, input=input)
    assert done.returncode == 0, (argv, done.returncode, done.stderr.decode())
    assert b"Traceback" not in done.stderr
    return done.stdout.decode()


def golden_records(kind: str, name: str) -> list[dict]:
    if kind == "file":
        lines = (GOLDEN / f"{name}.jsonl").read_text().splitlines()
    else:
        lines = json.loads((GOLDEN / "redis" / f"{name}.json").read_text())["log"]
    return [json.loads(line) for line in lines]


def install(kind: str, name: str, env: dict, request) -> str:
    """Put golden session ``name`` where the store of ``env`` keeps it; returns its id."""
    sid = EXPECTED[kind][name]["id"]
    if kind == "file":
        folder = Path(env["HOME"]) / ".aish" / "sessions"
        folder.mkdir(mode=0o700, exist_ok=True)
        target = folder / f"{sid}.jsonl"
        target.write_bytes((GOLDEN / f"{name}.jsonl").read_bytes())
        os.chmod(target, 0o600)
        return sid
    url = request.getfixturevalue("redis_url")
    select_redis(env, url)
    dump = json.loads((GOLDEN / "redis" / f"{name}.json").read_text())
    assert dump["id"] == sid
    server = request.getfixturevalue("redis_server")
    client = server.client()
    client.rpush(f"aish:{{{sid}}}:log", *[line.encode() for line in dump["log"]])
    client.hset(f"aish:{{{sid}}}:meta", mapping=dump["meta"])
    client.close()
    return sid


def same_keys(old: dict, new: dict) -> tuple[dict, dict]:
    """What the old version showed, and the new version's values for the same keys."""
    keys = set(old) - VOLATILE
    return {k: old[k] for k in keys}, {k: new.get(k) for k in keys}


@pytest.fixture(params=["file", "redis"])
def kind(request) -> str:
    return request.param


@pytest.mark.parametrize("name", NAMES)
def test_an_old_log_reads_shows_and_continues_the_same(kind, name, env, server, request):
    expected = EXPECTED[kind][name]
    sid = install(kind, name, env, request)
    records = golden_records(kind, name)
    old_messages = [r for r in records if r["t"] == "msg"]

    store = open_store(config_module.load(env))
    loaded = store.load(sid)
    assert loaded.problems == []
    assert [(m.id, m.role, m.content, m.ai) for m in loaded.messages] == [
        (r["id"], r["role"], r["content"], r["ai"]) for r in old_messages]
    # Older logs have no parents: each message follows the one stored before it.
    assert [m.parent for m in loaded.messages] == [""] + [r["id"] for r in old_messages[:-1]]
    main = loaded.tree.head("main")
    assert main is not None and main.id == old_messages[-1]["id"]
    assert [m.id for m in loaded.path(main)] == [r["id"] for r in old_messages]
    assert [m.id for m in store.path(sid, store.summary(sid).head("main"), 0)] == [
        r["id"] for r in old_messages]

    rows = json.loads(ok(env, "aish", "--list-sessions", "--all", "--json"))
    assert [r["id"] for r in rows] == [sid]
    old, new = same_keys(expected["list"], rows[0])
    assert new == old
    info = json.loads(ok(env, "aish", "--session-info", sid, "--json"))
    old, new = same_keys(expected["info"], info)
    assert new == old
    report = json.loads(ok(env, "aish", "--validate-session", sid, "--json"))
    assert report["ok"] and report["problems"] == []
    assert report["messages"] == expected["validate"]["messages"]

    ok(env, expected["ai"], "--session", sid, input=EXPECTED["next"])
    assert server.last_messages == expected["sent"]  # the same context, on the wire

    after = store.load(sid)
    assert after.problems == []
    assert [m.id for m in after.messages[:len(old_messages)]] == [r["id"] for r in old_messages]
    question, reply = after.messages[len(old_messages):]
    assert question.content == EXPECTED["next"] and question.parent == old_messages[-1]["id"]
    assert reply.parent == question.id
    head = store.summary(sid).head("main")
    assert head is not None and head.id == reply.id
    assert [m.id for m in store.path(sid, head, 0)] == [r["id"] for r in old_messages] + [
        question.id, reply.id]
    report = json.loads(ok(env, "aish", "--validate-session", sid, "--json"))
    assert report["ok"] and report["problems"] == [] and report["messages"] == len(after.messages)


def test_a_branch_of_an_old_log_leaves_main_where_it_was(kind, env, server, request):
    """main of an older log is its last message only until a branch moves: talking on a new
    branch must not carry main along."""
    expected = EXPECTED[kind]["plain"]
    sid = install(kind, "plain", env, request)
    old_ids = [r["id"] for r in golden_records(kind, "plain") if r["t"] == "msg"]
    ok(env, "aish", "--branch-session", sid, "alt", "--at", "2")
    ok(env, "apollo", "--session", sid, "--branch", "alt", input="on alt")
    rows = {r["name"]: r for r in json.loads(ok(env, "aish", "--list-branches", sid, "--json"))}
    assert rows["alt"]["messages"] == 4
    assert rows["main"]["head"] == old_ids[-1] and rows["main"]["messages"] == len(old_ids)
    ok(env, "apollo", "--session", sid, input=EXPECTED["next"])
    assert server.last_messages == expected["sent"]


def test_the_branches_of_an_old_log_are_listed(kind, env, request):
    sid = install(kind, "plain", env, request)
    last = [r["id"] for r in golden_records(kind, "plain") if r["t"] == "msg"][-1]
    done = run(env, "aish", "--list-branches", sid)
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr.decode()
    (line,) = done.stdout.decode().splitlines()
    assert line.startswith("* main") and last in line and "6 messages" in line
