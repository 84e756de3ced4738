"""`aish --sync-sessions`: the local file store and Redis catch up with each other, both ways,
and no message is ever stored twice."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from conftest import run

from aish.config import load
from aish.management.sync import merge_messages, open_pair, sync
from aish.messages import ASSISTANT, USER, Message
from aish.sessions import EXPIRED, state_of
from aish.store.filestore import FileStore
from aish.store.redisstore import RedisStore

T0 = 1_700_000_000.0


def m(content: str, t: float, role: str = USER, mid: str | None = None) -> Message:
    return Message(role, content, "apollo", T0 + t, **({"id": mid} if mid else {}))


def meta(sid: str, **extra) -> dict:
    return {"id": sid, "owner": "apollo", "created": T0, "updated": T0, "state": "active",
            "participants": ["apollo"], "shared": False, "context_window": 10, **extra}


@pytest.fixture
def pair(tmp_path, redis_url):
    return FileStore(tmp_path / "sessions"), RedisStore(redis_url)


def contents(store, sid: str) -> list[str]:
    return [x.content for x in store.load(sid).messages]


def test_copies_what_one_side_lacks_and_then_has_nothing_to_do(pair):
    local, remote = pair
    local.create(meta("laptop-only"), [m("a", 1), m("b", 2, ASSISTANT)])
    remote.create(meta("team-only"), [m("c", 1)])
    changes = sync(local, remote)
    assert {(c.id, c.direction, c.action, c.messages) for c in changes} == {
        ("laptop-only", "push", "copy", 2), ("team-only", "pull", "copy", 1)}
    assert contents(remote, "laptop-only") == ["a", "b"]
    assert contents(local, "team-only") == ["c"]
    assert local.load("team-only").messages == remote.load("team-only").messages
    assert sync(local, remote) == []


def test_appends_new_messages_without_duplicates(pair):
    local, remote = pair
    shared = [m("q1", 1), m("a1", 2, ASSISTANT)]
    local.create(meta("s"), shared)
    remote.create(meta("s"), shared)
    remote.append("s", [m("q2", 3).to_record(), m("a2", 4, ASSISTANT).to_record()])
    (change,) = sync(local, remote)
    assert (change.direction, change.action, change.messages) == ("pull", "append", 2)
    assert change.backup is None  # an append rewrites nothing
    assert contents(local, "s") == ["q1", "a1", "q2", "a2"]
    for _ in range(3):
        assert sync(local, remote) == []
    assert local.summary("s").messages == remote.summary("s").messages == 4


def test_diverged_sides_are_merged_in_time_order(pair):
    local, remote = pair
    base = [m("q1", 1), m("a1", 2, ASSISTANT)]
    local.create(meta("d"), base)
    remote.create(meta("d"), base)
    local.append("d", [m("offline q", 10).to_record(), m("offline a", 11, ASSISTANT).to_record()])
    remote.append("d", [m("team q", 5).to_record(), m("team a", 6, ASSISTANT).to_record()])
    changes = sync(local, remote)
    want = ["q1", "a1", "team q", "team a", "offline q", "offline a"]
    assert contents(local, "d") == contents(remote, "d") == want
    by_direction = {c.direction: c for c in changes}
    assert by_direction["push"].action == "append"  # Redis only lacked later messages
    assert by_direction["pull"].action == "rewrite" and by_direction["pull"].backup
    assert Path(by_direction["pull"].backup).exists()
    assert sync(local, remote) == []
    assert local.load("d").problems == [] and remote.load("d").problems == []


def test_meta_follows_the_later_side_and_unites_participants(pair):
    local, remote = pair
    local.create(meta("x"), [m("q", 1)])
    remote.create(meta("x"), [m("q", 1, mid=local.load("x").messages[0].id)])
    remote.append("x", [{"t": "meta", "participants": ["apollo", "athena"], "shared": True},
                        {"t": "meta", "state": "ended", "updated": T0 + 50}])
    local.append("x", [{"t": "meta", "participants": ["apollo", "hermes"], "shared": True}])
    sync(local, remote)
    for store in pair:
        got = store.load("x").meta
        assert got["state"] == "ended" and got["shared"] is True
        assert sorted(got["participants"]) == ["apollo", "athena", "hermes"]
        assert contents(store, "x") == ["q"]
    assert sync(local, remote) == []


def test_push_only_pull_only_and_dry_run(pair):
    local, remote = pair
    local.create(meta("mine"), [m("a", 1)])
    remote.create(meta("theirs"), [m("b", 1)])
    assert [c.action for c in sync(local, remote, dry_run=True)] == ["copy", "copy"]
    assert local.ids() == ["mine"] and remote.ids() == ["theirs"]
    sync(local, remote, push=True, pull=False)
    assert remote.ids() == ["mine", "theirs"] and local.ids() == ["mine"]
    sync(local, remote, push=False, pull=True)
    assert local.ids() == ["mine", "theirs"]


def test_only_named_sessions(pair):
    local, remote = pair
    local.create(meta("one"), [])
    local.create(meta("two"), [])
    sync(local, remote, ids=["two"])
    assert remote.ids() == ["two"]


def test_sync_does_not_revive_expired_sessions(pair):
    local, remote = pair
    local.create(meta("old"), [m("long ago", 1)])
    sync(local, remote)
    now = T0 + 3 * 3600
    assert state_of(remote.summary("old"), now, 60) == EXPIRED
    remote.append("old", [m("still old", 2).to_record()])
    sync(local, remote)
    assert state_of(local.summary("old"), now, 60) == EXPIRED


def test_templates_are_copied_not_overwritten(pair):
    local, remote = pair
    local.put_doc("templates", "review", {"name": "review", "messages": []})
    remote.put_doc("templates", "plan", {"name": "plan", "messages": []})
    remote.put_doc("templates", "review", {"name": "review", "messages": [], "theirs": True})
    sync(local, remote)
    assert local.list_docs("templates") == remote.list_docs("templates") == ["plan", "review"]
    assert "theirs" not in local.get_doc("templates", "review")


def test_merge_messages_keeps_each_sides_order():
    a = [m("1", 1, mid="1"), m("3", 3, mid="3"), m("2-skewed", 2.5, mid="2s")]
    b = [m("1", 1, mid="1"), m("2", 2, mid="2"), m("4", 4, mid="4")]
    assert [x.id for x in merge_messages(a, b)] == ["1", "2", "3", "2s", "4"]
    assert merge_messages(a, a) == a
    assert merge_messages([], b) == b


def test_encrypted_stores_sync_with_their_own_salts(tmp_path, redis_url, monkeypatch):
    monkeypatch.setenv("AISH_ENCRYPTION_KEY", "team passphrase")
    config = replace(load({"HOME": str(tmp_path)}), encrypt=True, redis_url=redis_url)
    local, remote = open_pair(config, None)
    local.create(meta("secret"), [m("the secret plan", 1)])
    sync(local, remote)
    assert contents(remote, "secret") == ["the secret plan"]
    client = redis.Redis.from_url(redis_url)
    raw = client.lrange("aish:{secret}:log", 0, -1)
    assert not any(b"secret plan" in item for item in raw)
    files = (tmp_path / ".aish" / "sessions").glob("*.jsonl")
    assert not any(b"secret plan" in p.read_bytes() for p in files)
    salts = {json.loads((tmp_path / ".aish" / "sessions" / ".crypto.json").read_text())["salt"],
             json.loads(client.get("aish:crypto"))["salt"]}
    assert len(salts) == 2


def test_sync_through_the_cli(home, tmp_path, redis_url, server):
    """A laptop works offline on files, pushes, the team continues in Redis, the laptop pulls."""
    laptop = {**home, "OPENAI_BASE_URL": server.base, "OPENAI_API_KEY": "k"}
    cfg = Path(home["HOME"]) / ".aish" / "config.yaml"
    cfg.write_text(cfg.read_text() + f"sessions:\n  storage: {{type: file, url: '{redis_url}'}}\n")
    desktop = {**laptop, "HOME": str(tmp_path / "desktop")}
    (tmp_path / "desktop" / ".aish").mkdir(parents=True)
    (tmp_path / "desktop" / ".aish" / "config.yaml").write_text(
        f"sessions:\n  storage: {{type: redis, url: '{redis_url}'}}\n")

    def ok(env, *args, input=None):
        result = run(env, *args, input=input, timeout=600)
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout.decode()

    sid = ok(laptop, "apollo", "--session", "--get-id", input="written offline").strip()
    pushed = json.loads(ok(laptop, "aish", "--sync-sessions", "--json"))
    assert [(c["id"], c["action"], c["direction"]) for c in pushed] == [(sid, "copy", "push")]
    ok(desktop, "apollo", "--session", sid, input="written on the desktop")
    text = ok(laptop, "aish", "--sync", "--store")  # the same as --sync-sessions
    assert sid in text and "appended" in text
    local = FileStore(Path(home["HOME"]) / ".aish" / "sessions")
    users = [x.content for x in local.load(sid).messages if x.role == USER]
    assert users == ["written offline", "written on the desktop"]
    again = run(laptop, "aish", "--sync-sessions")
    assert b"in sync" in again.stderr and again.stdout == b""
    entries = [json.loads(line) for line in
               (Path(home["HOME"]) / ".aish" / "audit.log").read_text().splitlines()]
    assert [(e["action"], e["direction"]) for e in entries if e["action"] == "sync"] == [
        ("sync", "push"), ("sync", "pull")]


def test_sync_needs_a_url(home):
    result = run(home, "aish", "--sync-sessions")
    assert result.returncode == 2 and b"--url" in result.stderr
    result = run(home, "aish", "--sync", "--store")
    assert result.returncode == 2 and b"--store redis://" in result.stderr


def test_store_copy_and_device_sync_are_told_apart(home, tmp_path, redis_url):
    tmp_path = tmp_path / "transport"
    tmp_path.mkdir()
    mixed = run(home, "aish", "--sync", "--store", redis_url, "--dir", str(tmp_path))
    assert mixed.returncode == 2 and b"--store copies between session stores" in mixed.stderr
    lone = run(home, "aish", "--sync", "--push", "--dir", str(tmp_path))
    assert lone.returncode == 2 and b"--push and --pull go with --store" in lone.stderr
    for result in (mixed, lone):
        assert b"Traceback" not in result.stderr
    assert not any(tmp_path.iterdir())  # nothing was written to the folder
