"""`aish --sync --to redis://…`: the same device logs, one Redis key per device and session."""

from __future__ import annotations

import json

from conftest import run
from redis_support import redis_server, redis_url  # noqa: F401
from sync_support import contents, ok, say


def to(env, url, *args):
    return run(env, "aish", "--sync", "--to", url, *args)


def test_round_trip_through_redis(laptop, desktop, redis_url, redis_server):  # noqa: F811
    say(laptop, "s1", "one", "two")
    ok(to(laptop, redis_url))
    client = redis_server.client()
    keys = sorted(k.decode() for k in client.keys("aish:sync:{s1}:*"))
    assert len(keys) == 1  # one key per device: only laptop wrote
    out = ok(to(desktop, redis_url))
    assert "4 messages pulled" in out
    say(desktop, "s1", "three")
    ok(to(desktop, redis_url))
    ok(to(laptop, redis_url))
    assert contents(laptop, "s1") == contents(desktop, "s1")
    assert len(contents(laptop, "s1")) == 6
    assert len(client.keys("aish:sync:{s1}:*")) == 2
    for env in (laptop, desktop):
        assert "Up to date" in ok(to(env, redis_url))
    status = ok(run(desktop, "aish", "--sync-status", "--to", redis_url))
    assert "s1" in status and "in sync" in status and "last sync with" in status


def test_a_tampered_redis_record_is_detected(laptop, desktop, redis_url,  # noqa: F811
                                             redis_server):  # noqa: F811
    say(laptop, "s1", "one", "two")
    ok(to(laptop, redis_url))
    client = redis_server.client()
    (key,) = client.keys("aish:sync:{s1}:*")
    entry = json.loads(client.lindex(key, 1))
    entry["r"]["content"] = "one, edited"
    client.lset(key, 1, json.dumps(entry, separators=(",", ":")) + "\n")
    verify = run(desktop, "aish", "--sync", "--verify", "--to", redis_url)
    assert verify.returncode == 1 and b"bad hash at seq 2" in verify.stdout
    out = ok(to(desktop, redis_url))
    assert "bad hash at seq 2" in out
    ok(to(laptop, redis_url))  # repaired by its writer
    ok(to(desktop, redis_url))
    assert contents(desktop, "s1") == ["one", "answer to one", "two", "answer to two"]
    assert run(desktop, "aish", "--sync", "--verify", "--to", redis_url).returncode == 0


def test_a_device_keeping_its_sessions_in_redis_syncs_through_a_folder(  # noqa: F811
        laptop, desktop, redis_url, tmp_path):  # noqa: F811
    from manage_support import select_redis
    from sync_support import sync

    select_redis(laptop, redis_url)
    say(laptop, "s1", "kept in redis")
    shared = tmp_path / "shared"
    ok(sync(laptop, shared))
    ok(sync(desktop, shared))
    assert contents(desktop, "s1") == ["kept in redis", "answer to kept in redis"]
    say(desktop, "s1", "back")
    ok(sync(desktop, shared))
    ok(sync(laptop, shared))
    assert contents(laptop, "s1") == contents(desktop, "s1")
    assert "Up to date" in ok(sync(laptop, shared))
