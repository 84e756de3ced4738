"""What only the Redis store has: its key layout, sliding TTLs, bounded tail reads, server errors
and the optional dependency. Everything it shares with the file store is in
test_store_contract.py."""

from __future__ import annotations

import builtins
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from conftest import free_port, run
from redis_support import redis_client

from aish.config import load
from aish.errors import ConfigError, SessionNotFound, StorageError
from aish.messages import ASSISTANT, USER, Message
from aish.sessions import EXPIRED, Sessions
from aish.store import open_store
from aish.store.redisstore import RETENTION_DAYS, RedisStore

T0 = 1_700_000_000.0


@pytest.fixture(params=["redis", "redis-cluster"])
def server_url(request) -> str:
    """A flushed single server's URL, then a flushed 3-master cluster's."""
    return request.getfixturevalue("redis_cluster_url" if request.param == "redis-cluster"
                                   else "redis_url")


def meta(sid: str) -> dict:
    return {"id": sid, "owner": "apollo", "created": T0, "participants": ["apollo"]}


def user(text: str, t: float = T0) -> Message:
    return Message(USER, text, "apollo", t)


def test_keys_are_hash_tagged_a_hash_and_a_list(server_url):
    store = RedisStore(server_url)
    store.create(meta("tagged"), [user("hi")])
    client = redis_client(server_url)
    assert sorted(sorted(client.scan_iter("*"))) == [b"aish:{tagged}:events", b"aish:{tagged}:log",
                                        b"aish:{tagged}:meta"]
    assert client.type("aish:{tagged}:log") == b"list"
    assert client.type("aish:{tagged}:events") == b"stream"
    assert client.type("aish:{tagged}:meta") == b"hash"
    fields = client.hgetall("aish:{tagged}:meta")
    assert fields[b"n:messages"] == b"1" and fields[b"m:owner"] == b'"apollo"'
    # one cluster slot for every key of a session, backups included
    store.backup("tagged", "prune")
    slots = {_slot(k) for k in sorted(client.scan_iter("aish:{tagged}*"))}
    assert len(slots) == 1


def _slot(key: bytes) -> bytes:
    start = key.index(b"{")
    return key[start + 1:key.index(b"}", start)]


def test_ttl_is_timeout_plus_retention(server_url):
    store = RedisStore(server_url, timeout_minutes=60)
    store.create(meta("ttl"), [])
    client = redis_client(server_url)
    expected = (60 * 60 + RETENTION_DAYS * 86400) * 1000
    for key in ("aish:{ttl}:log", "aish:{ttl}:meta"):
        assert expected - 5000 < client.pttl(key) <= expected


def test_ttl_slides_on_every_write_and_idle_sessions_vanish(server_url):
    # Condition-based, not timed: each write must reset the TTL (the remaining time goes back
    # up after it went down), and an idle session must vanish once its TTL runs out.
    store = RedisStore(server_url, timeout_minutes=1, retention_days=0)  # 60 s
    client = redis_client(server_url)
    store.create(meta("slide"), [])
    for _ in range(3):
        first = client.pttl("aish:{slide}:log")
        # Let enough of the TTL pass that the write's own milliseconds cannot hide the reset.
        while client.pttl("aish:{slide}:log") >= first - 200:
            time.sleep(0.01)
        passed = client.pttl("aish:{slide}:log")
        store.append("slide", [user("still here", time.time()).to_record()])
        assert client.pttl("aish:{slide}:log") > passed
        assert client.pttl("aish:{slide}:meta") > passed
    before = client.pttl("aish:{slide}:meta")
    while client.pttl("aish:{slide}:meta") >= before:
        time.sleep(0.01)
    passed = client.pttl("aish:{slide}:meta")
    store.append("slide", [{"t": "meta", "state": "ended"}])  # meta writes slide it too
    assert client.pttl("aish:{slide}:meta") > passed
    brief = RedisStore(server_url, timeout_minutes=1 / 60, retention_days=0)  # 1 s
    brief.append("slide", [user("last words", time.time()).to_record()])
    assert client.pttl("aish:{slide}:log") <= 1000
    store = brief
    while store.exists("slide"):  # idle: Redis drops it when the TTL runs out
        time.sleep(0.05)
    assert sorted(client.scan_iter("aish:{slide}:*")) == []
    with pytest.raises(SessionNotFound):
        store.load("slide")


def test_expired_sessions_stay_until_retention_ends(server_url, tmp_path):
    """Idle longer than the timeout: expired (as in the file store), still continued by id."""
    config = load({"HOME": str(tmp_path), "AISH_SESSION_TIMEOUT": "1"})
    clock = [T0]
    sessions = Sessions(RedisStore(server_url, timeout_minutes=1), config, now=lambda: clock[0])
    s = sessions.create("apollo")
    clock[0] += 120
    assert sessions.listing(include_all=True)[0][1] == EXPIRED
    assert sessions.listing() == []
    assert sessions.open("apollo", s.id).id == s.id
    assert sessions.listing()[0][0].id == s.id


def test_backups_live_for_the_retention_period(server_url):
    store = RedisStore(server_url, timeout_minutes=60, retention_days=2)
    store.create(meta("bk"), [user("keep me")])
    where = store.backup("bk", "clear")
    key = where.split()[-1]
    assert where.startswith(server_url + " aish:{bk}:backup:") and key.endswith("-clear")
    client = redis_client(server_url)
    assert 0 < client.pttl(key) <= (3600 + 2 * 86400) * 1000
    store.delete("bk")
    assert b"keep me" in store.read_backup(where)
    assert store.read_backup(key) == store.read_backup(where)
    assert store.backups("bk") == [where]
    assert store.read_backup("redis://x/0 aish:{bk}:log") is None  # not a backup key
    assert store.read_backup("/etc/passwd") is None


def test_tail_reads_only_the_end_of_a_long_session(server_url, monkeypatch):
    store = RedisStore(server_url)
    store.create(meta("long"), [])
    records = []
    for i in range(3000):
        records.append(user(f"q{i}", T0 + 2 * i).to_record())
        records.append(Message(ASSISTANT, f"a{i}", "apollo", T0 + 2 * i + 1).to_record())
    for start in range(0, len(records), 500):
        store.append("long", records[start:start + 500])
    ranges = []
    real = store.client.lrange

    def spy(key, start, stop):
        ranges.append((start, stop))
        return real(key, start, stop)

    monkeypatch.setattr(store.client, "lrange", spy)
    tail = store.tail("long", 3)
    assert [m.content for m in tail] == ["q2997", "a2997", "q2998", "a2998", "q2999", "a2999"]
    fetched = sum(stop - start + 1 for start, stop in ranges)
    assert fetched <= 64 and all(start >= 0 for start, _ in ranges)
    ranges.clear()
    assert len(store.tail("long", 100)) == 200
    assert sum(stop - start + 1 for start, stop in ranges) < 500


def test_tail_is_consistent_while_others_append(server_url):
    store = RedisStore(server_url)
    store.create(meta("moving"), [user(f"m{i}", T0 + i) for i in range(200)])
    other = RedisStore(server_url)
    real = store.client.lrange
    calls = []

    def append_between(key, start, stop):
        calls.append(1)
        other.append("moving", [user(f"late{len(calls)}", T0 + 1000).to_record()])
        return real(key, start, stop)

    store.client.lrange = append_between
    tail = store.tail("moving", 100)
    assert [m.content for m in tail] == [f"m{i}" for i in range(100, 200)]


def test_summary_stays_equal_to_the_log(server_url):
    """The hash is maintained incrementally; it must equal what folding the log gives."""
    from aish.store.base import Summary, parse_line

    store = RedisStore(server_url)
    store.create(meta("fold"), [user("a")])
    store.append("fold", [Message(ASSISTANT, "b", "athena", T0 + 1).to_record(),
                          {"t": "meta", "shared": True, "participants": ["apollo", "athena"]}])
    store.append("fold", [user("c", T0 + 2).to_record()])
    rebuilt = Summary()
    for index, line in enumerate(store.raw_lines("fold")[:-1]):
        rebuilt.fold(parse_line(line), index)  # positions are list indices
    got = store.summary("fold")
    assert got.to_json() == rebuilt.to_json()


def test_password_never_shown(redis_url):
    store = RedisStore(redis_url.replace("redis://", "redis://:hunter2-secret@"))
    assert "hunter2" not in store.location("x") and "hunter2" not in store.url
    with pytest.raises(StorageError) as failed:
        RedisStore("redis://:hunter2-secret@127.0.0.1:1/0").summaries()
    assert "hunter2" not in str(failed.value)
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in str(failed.value)


def test_a_server_that_wants_a_password(tmp_path):
    port = free_port()  # not a neighbour of another server's: those may be taken
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                             "--save", "", "--appendonly", "no", "--requirepass", "s3cret-pw",
                             "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:  # until it answers (it may start slowly on a busy machine)
            try:
                redis.Redis(port=port, password="s3cret-pw").ping()
                break
            except redis.RedisError:
                assert proc.poll() is None, "the password-protected redis-server ended"
                time.sleep(0.05)
        with pytest.raises(StorageError) as refused:
            RedisStore(f"redis://:wrong-pw@127.0.0.1:{port}/0").ids()
        assert "wrong-pw" not in str(refused.value) and "s3cret" not in str(refused.value)
        store = RedisStore(f"redis://:s3cret-pw@127.0.0.1:{port}/0")
        store.create(meta("auth"), [user("hi")])
        assert store.ids() == ["auth"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_bad_url_is_a_config_error():
    with pytest.raises(ConfigError, match="sessions.storage.url"):
        RedisStore("http://example.com/")
    with pytest.raises(ConfigError) as unknown:
        RedisStore("redis://:pw-in-url@localhost/0?nonsense_option=1")
    assert "pw-in-url" not in str(unknown.value)


def test_open_store_picks_redis(redis_url, tmp_path):
    config = load({"HOME": str(tmp_path)})
    from dataclasses import replace

    store = open_store(replace(config, storage_type="redis", redis_url=redis_url))
    assert isinstance(store, RedisStore)
    store.create(meta("picked"), [])
    assert not (tmp_path / ".aish" / "sessions").exists()


def test_missing_redis_client_says_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_redis(name, *args, **kwargs):
        if name == "redis" or name.startswith("redis."):
            raise ImportError("No module named 'redis'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_redis)
    with pytest.raises(ConfigError) as missing:
        RedisStore("redis://127.0.0.1:6379/0")
    assert "pip install 'aish[redis]'" in str(missing.value)


def test_missing_redis_client_through_the_cli(home, tmp_path):
    """The real program, with redis-py hidden: a clear line, the config exit code."""
    (tmp_path / "blocker").mkdir()
    (tmp_path / "blocker" / "redis.py").write_text("raise ImportError('hidden for the test')\n")
    cfg = f"{home['HOME']}/.aish/config.yaml"
    with open(cfg, "a") as f:
        f.write("sessions:\n  storage: {type: redis, url: 'redis://127.0.0.1:1/0'}\n")
    env = {**home, "PYTHONPATH": str(tmp_path / "blocker")}
    result = subprocess.run([sys.executable, "-m", "aish", "--list-sessions"], env=env,
                            capture_output=True, timeout=600)
    assert result.returncode == 8, result.stderr
    assert b"pip install 'aish[redis]'" in result.stderr
    assert b"Traceback" not in result.stderr


def test_unreachable_server_through_the_cli(home):
    cfg = f"{home['HOME']}/.aish/config.yaml"
    with open(cfg, "a") as f:
        f.write("sessions:\n  storage: {type: redis, url: 'redis://127.0.0.1:1/0'}\n")
    result = subprocess.run([sys.executable, "-m", "aish", "--list-sessions"], env=home,
                            capture_output=True, timeout=600)
    assert result.returncode == 5
    assert b"cannot reach Redis at redis://127.0.0.1:1/0" in result.stderr
    assert b"Traceback" not in result.stderr


def test_restore_from_a_redis_backup_through_the_cli(home, server_url):
    """A rewrite keeps its backup as a key; `--restore-session` takes its location (or the id)."""
    cfg = Path(home["HOME"]) / ".aish" / "config.yaml"
    cfg.write_text(cfg.read_text()
                   + f"sessions:\n  storage: {{type: redis, url: '{server_url}'}}\n")
    store = RedisStore(server_url)
    now = time.time()
    store.create({**meta("work"), "created": now, "updated": now},
                 [Message(USER if i % 2 == 0 else ASSISTANT, f"m{i}", "apollo", now + i)
                  for i in range(6)])
    pruned = run(home, "aish", "--prune-session", "work", "--keep-recent", "1")
    assert pruned.returncode == 0, pruned.stderr
    assert len(store.load("work").messages) == 2
    (location,) = store.backups("work")
    assert location.startswith(server_url + " aish:{work}:backup:")
    restored = run(home, "aish", "--restore-session", location, "--as", "again", "--json")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)[0]["id"] == "again"
    assert [m.content for m in store.load("again").messages] == [f"m{i}" for i in range(6)]
    by_id = run(home, "aish", "--restore-session", "work", "--force")
    assert by_id.returncode == 0, by_id.stderr
    assert len(store.load("work").messages) == 6
