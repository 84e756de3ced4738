"""What only a Redis Cluster asks of the Redis store: sessions spread over the masters, a
rename across slots in steps (resumed when interrupted, undone when the new id is taken),
and clear errors for a cluster named the wrong way or not reachable. The store contract
suite (test_store_contract.py) runs on the cluster as well."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from redis_support import redis_client

from aish.config import check_redis_url
from aish.errors import ConfigError, PermissionDenied, SessionExists, StorageError
from aish.messages import USER, Message
from aish.store import rediscluster
from aish.store.redisstore import RedisStore

T0 = 1_700_000_000.0


def meta(sid: str) -> dict:
    return {"id": sid, "owner": "apollo", "created": T0, "participants": ["apollo"]}


def user(text: str, t: float = T0) -> Message:
    return Message(USER, text, "apollo", t)


def node_of(client, sid: str) -> str:
    node = client.get_node_from_key(f"aish:{{{sid}}}:meta")
    return f"{node.host}:{node.port}"


def ids_on_different_masters(client, count: int) -> list[str]:
    """``count`` ids whose sessions live on ``count`` different masters."""
    found: dict[str, str] = {}
    n = 0
    while len(found) < count:
        sid = f"s{n}"
        found.setdefault(node_of(client, sid), sid)
        n += 1
    return list(found.values())


def test_sessions_spread_over_the_masters_and_are_all_listed(redis_cluster_url):
    store = RedisStore(redis_cluster_url)
    client = redis_client(redis_cluster_url)
    sids = ids_on_different_masters(client, 3)
    for sid in sids:
        store.create(meta(sid), [user(f"hello {sid}")])
        store.backup(sid, "prune")
    assert store.ids() == sorted(sids)
    assert sorted(s.id for s in store.summaries()) == sorted(sids)
    for sid in sids:
        assert len(store.backups(sid)) == 1
    # Each session's keys stay on its own master, in one slot.
    for sid in sids:
        keys = list(client.scan_iter(match=f"aish:{{{sid}}}:*"))
        assert len({client.keyslot(k) for k in keys}) == 1 and len(keys) >= 3


def test_rename_moves_a_session_to_another_master(redis_cluster_url):
    store = RedisStore(redis_cluster_url)
    client = redis_client(redis_cluster_url)
    old, new = ids_on_different_masters(client, 2)
    store.create(meta(old), [user("one"), user("two")])
    store.backup(old, "prune")
    store.rename(old, new)
    assert store.ids() == [new] and store.aliases() == {old: new}
    assert [m.content for m in store.load(new).messages] == ["one", "two"]
    assert store.summary(new).meta["renamed_from"] == old
    assert len(store.backups(new)) == 1 and store.backups(old) == []
    assert list(client.scan_iter(match=f"aish:{{{old}}}:*")) == []


def one_session_two_masters(url: str, text: str):
    """A store, a client, and a session ``old`` (holding ``text``) with an id ``new`` whose
    slot is on another master."""
    store = RedisStore(url)
    client = redis_client(url)
    old, new = ids_on_different_masters(client, 2)
    store.create(meta(old), [user(text)])
    return store, client, old, new


def test_an_interrupted_rename_is_finished_by_running_it_again(redis_cluster_url,
                                                               monkeypatch):
    store, client, old, new = one_session_two_masters(redis_cluster_url, "kept")
    store.backup(old, "prune")

    def crash(*args):
        raise KeyboardInterrupt  # the process dies after the session was published

    with monkeypatch.context() as patch:
        patch.setattr(rediscluster, "_copy_key", crash)
        with pytest.raises(KeyboardInterrupt):
            store.rename(old, new)
    assert client.get(f"aish:{{{old}}}:renaming") == new.encode()
    assert not store.exists(old)
    store.rename(old, new)
    assert store.ids() == [new] and store.alias(old) == new
    assert [m.content for m in store.load(new).messages] == ["kept"]
    assert len(store.backups(new)) == 1
    # The rename record is there once, not once per run.
    assert sum('"renamed_from"' in line for line in store.raw_lines(new)) == 1
    # A writer still holding the old id follows the rename.
    assert store.append(old, [user("late").to_record()]).id == new
    assert list(client.scan_iter(match=f"aish:{{{old}}}:*")) == []


def test_a_new_id_taken_during_the_rename_leaves_the_session_as_it_was(redis_cluster_url,
                                                                       monkeypatch):
    store, client, old, new = one_session_two_masters(redis_cluster_url, "mine")
    real_eval = store.client.eval

    def taken_first(script, *args):
        if script == rediscluster._PUBLISH:  # another writer creates the new id just now
            RedisStore(redis_cluster_url).create(meta(new), [user("theirs")])
        return real_eval(script, *args)

    monkeypatch.setattr(store.client, "eval", taken_first)
    with pytest.raises(SessionExists):
        store.rename(old, new)
    assert store.ids() == sorted([old, new]) and store.aliases() == {}
    assert [m.content for m in store.load(old).messages] == ["mine"]
    assert [m.content for m in store.load(new).messages] == ["theirs"]
    assert client.get(f"aish:{{{old}}}:renaming") is None
    store.append(old, [user("still writable").to_record()])


def test_a_plain_url_to_a_cluster_node_says_how_to_name_a_cluster(redis_cluster, tmp_path):
    first = redis_cluster.nodes[0]
    client = redis_cluster.client()
    elsewhere = next(f"s{n}" for n in range(1000)
                     if node_of(client, f"s{n}") != f"127.0.0.1:{first.port}")
    with pytest.raises(StorageError) as refused:
        RedisStore(f"redis://127.0.0.1:{first.port}/0").create(meta(elsewhere), [])
    assert "node of a Redis Cluster" in str(refused.value)
    assert "redis+cluster://" in (refused.value.hint or "")


def test_cluster_urls_are_checked():
    check_redis_url("redis+cluster://127.0.0.1:7000", "test")
    check_redis_url("rediss+cluster://user:pw@10.0.0.1:7000/0", "test")
    with pytest.raises(ConfigError, match="only database 0"):
        check_redis_url("redis+cluster://127.0.0.1:7000/3", "test")


def test_the_cli_lists_and_renames_on_a_cluster(home, redis_cluster_url):
    cfg = Path(home["HOME"]) / ".aish" / "config.yaml"
    cfg.write_text(cfg.read_text()
                   + f"sessions:\n  storage: {{type: redis, url: '{redis_cluster_url}'}}\n")
    client = redis_client(redis_cluster_url)
    old, new = ids_on_different_masters(client, 2)
    RedisStore(redis_cluster_url).create(meta(old), [user("over the cluster")])

    def aish(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "aish", *args], env=home,
                              capture_output=True, timeout=600)

    listed = aish("--list-sessions", "--all")
    assert listed.returncode == 0, listed.stderr
    assert old.encode() in listed.stdout
    renamed = aish("--rename-session", old, new)
    assert renamed.returncode == 0, renamed.stderr
    assert RedisStore(redis_cluster_url).ids() == [new]


def test_an_unreachable_cluster_is_one_clear_line(home):
    from conftest import free_port

    port = free_port()
    cfg = Path(home["HOME"]) / ".aish" / "config.yaml"
    cfg.write_text(cfg.read_text() + "sessions:\n  storage: {type: redis, url: "
                   f"'redis+cluster://127.0.0.1:{port}'}}\n")
    result = subprocess.run([sys.executable, "-m", "aish", "--list-sessions"], env=home,
                            capture_output=True, timeout=600)
    assert result.returncode != 0
    assert f"redis+cluster://127.0.0.1:{port}".encode() in result.stderr
    assert b"Traceback" not in result.stderr


def test_roles_are_applied_on_every_node(redis_cluster, redis_cluster_url):
    """Cluster nodes do not share ACL rules: a viewer is refused a write wherever it lands."""
    nodes = [node.client() for node in redis_cluster.nodes]
    for node in nodes:
        node.execute_command("ACL", "SETUSER", "viewer1", "reset", "on", ">pw-viewer1")
    try:
        owner = RedisStore(redis_cluster_url)
        sids = ids_on_different_masters(redis_client(redis_cluster_url), 3)
        for sid in sids:
            owner.create(meta(sid), [user("hello")])
            assert owner.grant_access(sid, "viewer1", "viewer").applied
        for node in nodes:
            rules = str(node.execute_command("ACL", "GETUSER", "viewer1"))
            assert all(sid in rules for sid in sids)
        viewer = RedisStore(redis_cluster_url.replace("//", "//viewer1:pw-viewer1@"))
        for sid in sids:
            assert [m.content for m in viewer.load(sid).messages] == ["hello"]
            with pytest.raises(PermissionDenied):
                viewer.append(sid, [user("not allowed").to_record()])
    finally:
        for node in nodes:
            node.execute_command("ACL", "DELUSER", "viewer1")
            node.close()


def test_sync_round_trip_through_a_cluster(laptop, desktop, redis_cluster_url):
    """`--sync --to redis+cluster://…`: each device log is one key; the indexes live in
    other slots, written apart from it."""
    from conftest import run
    from sync_support import contents, ok, say

    say(laptop, "s1", "one", "two")
    ok(run(laptop, "aish", "--sync", "--to", redis_cluster_url))
    assert "4 messages pulled" in ok(run(desktop, "aish", "--sync", "--to", redis_cluster_url))
    assert contents(laptop, "s1") == contents(desktop, "s1")
    assert "Up to date" in ok(run(laptop, "aish", "--sync", "--to", redis_cluster_url))
