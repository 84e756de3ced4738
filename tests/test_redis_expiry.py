"""Every key of a Redis session expires at one moment, or none does: the owner's log, each
writer's own log, the meta hash and the events stream share one deadline whoever writes, a
writer that cannot renew the others' logs keeps them all from expiring, and the owner's next
write gives them one deadline again. On a single server and on a Cluster.

Real redis-servers with ACL users made here (``owner`` may do anything, ``u1`` and ``u2`` only
what a share gives them); the short TTLs are a store's own (timeout and retention), and expiry
is waited for as a condition, never slept through.
"""

from __future__ import annotations

import time

import pytest
import redis
from redis_support import redis_client

from aish import config as config_module
from aish.messages import USER, Message
from aish.people import EDITOR
from aish.sessions import Sessions
from aish.store.redisstore import RedisStore

PASSWORD = "pw-expiry"
WRITERS = ("u1", "u2")
# Counts the keys that exist, in one step: no key can expire between two of the looks.
_COUNT = "local n = 0 for _, k in ipairs(KEYS) do n = n + redis.call('EXISTS', k) end return n"
SAFETY_NET = 120.0  # seconds; only a broken expiry waits that long


def make_users(clients) -> None:
    for client in clients:
        for name in ("owner", *WRITERS):
            client.execute_command("ACL", "DELUSER", name)
        client.execute_command("ACL", "SETUSER", "owner", "on", f">{PASSWORD}", "~*", "&*",
                               "+@all")
        for name in WRITERS:
            client.execute_command("ACL", "SETUSER", name, "on", f">{PASSWORD}")


def drop_users(clients) -> None:
    for client in clients:
        for name in ("owner", *WRITERS):
            client.execute_command("ACL", "DELUSER", name)


@pytest.fixture
def plain(acl_server):
    client = acl_server.client()
    client.flushall()
    make_users([client])
    yield f"redis://{{user}}:{PASSWORD}@127.0.0.1:{acl_server.port}/0", client
    client.close()


@pytest.fixture
def cluster(redis_cluster_url, redis_cluster):
    nodes = [node.client() for node in redis_cluster.nodes]
    make_users(nodes)
    port = redis_cluster.nodes[0].port
    yield (f"redis+cluster://{{user}}:{PASSWORD}@127.0.0.1:{port}",
           redis_client(redis_cluster_url))
    drop_users(nodes)
    for node in nodes:
        node.close()


def sessions_as(url: str, home: dict, name: str, **ttl) -> Sessions:
    return Sessions(RedisStore(url.format(user=name), **ttl), config_module.load(home))


def speak(url: str, home: dict, name: str, sid: str, text: str) -> None:
    session = sessions_as(url, home, name).open("apollo", sid)
    session.add(Message(USER, text, "apollo", time.time()))
    session.save()


def session_keys(client, sid: str) -> list[bytes]:
    found = sorted(client.scan_iter(match=f"aish:{{{sid}}}:*", count=1000))
    return [k for k in found if b":floor:" not in k and b":passed:" not in k]


def deadlines(client, keys) -> set[int]:
    return {client.pexpiretime(key) for key in keys}


def keys_expire_together(url: str, client, home: dict, sid: str) -> None:
    owner = sessions_as(url, home, "owner")
    owner.create("apollo", sid, named=True)
    for name in WRITERS:
        _, applied = owner.share(sid, name, EDITOR)
        assert applied.applied, applied
    speak(url, home, "u2", sid, "u2 speaks")
    speak(url, home, "u1", sid, "u1 speaks")
    keys = session_keys(client, sid)
    assert {k.rsplit(b"}:", 1)[1] for k in keys} == {b"meta", b"log", b"log:u1", b"log:u2",
                                                     b"events"}
    # The writers' writes took the deadline the owner's last write gave every key.
    first = deadlines(client, keys)
    assert len(first) == 1 and first.pop() > 0

    # The owner's last write was long ago (less than half the TTL left): u1's write keeps
    # every key of the session, not only the logs u1 may not renew.
    soon = int(time.time() * 1000) + 10**7
    for key in keys:
        client.pexpireat(key, soon)
    speak(url, home, "u1", sid, "u1 again")
    assert deadlines(client, keys) == {-1}
    u1 = redis_client(url.format(user="u1"))
    for command in (("PEXPIRE", f"aish:{{{sid}}}:log", 1), ("DEL", f"aish:{{{sid}}}:log"),
                    ("RPUSH", f"aish:{{{sid}}}:log:u2", "x")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            u1.execute_command(*command)
    u1.close()

    # The owner writes again, with a TTL of a second: one deadline for all, and all go.
    brief = sessions_as(url, home, "owner", timeout_minutes=1 / 60, retention_days=0)
    brief.set_title(sid, "the owner writes again")
    assert session_keys(client, sid) == keys
    again = deadlines(client, keys)
    assert len(again) == 1 and again.pop() > 0
    all_go_at_once(client, sid, keys)


def all_go_at_once(client, sid: str, keys: list[bytes]) -> None:
    """Wait for the session's keys to expire, each look seeing all of them or none."""
    count = client.register_script(_COUNT)
    give_up = time.monotonic() + SAFETY_NET
    while (left := count(keys=keys)) != 0:
        assert left == len(keys), f"{left} of {len(keys)} keys of the session left"
        assert time.monotonic() < give_up, "the session never expired"
        time.sleep(0.05)
    assert session_keys(client, sid) == []


def a_writers_append_expires_with_the_rest(url: str, client, home: dict, sid: str) -> None:
    """Only writers talk after the owner's last write: their logs and the rest go together."""
    owner = sessions_as(url, home, "owner")
    owner.create("apollo", sid, named=True)
    for name in WRITERS:
        owner.share(sid, name, EDITOR)
    speak(url, home, "u2", sid, "u2 speaks")
    # The owner's last write gives the session 5 seconds; then u1 appends (its own TTL is
    # short too, so the owner's deadline is well over half of it away: u1 takes it).
    sessions_as(url, home, "owner", timeout_minutes=5 / 60, retention_days=0).set_title(
        sid, "soon gone")
    u1 = sessions_as(url, home, "u1", timeout_minutes=1 / 60, retention_days=0)
    session = u1.open("apollo", sid)
    session.add(Message(USER, "u1 speaks", "apollo", time.time()))
    session.save()
    keys = session_keys(client, sid)
    assert len(keys) == 5 and len(deadlines(client, keys)) == 1
    all_go_at_once(client, sid, keys)


def test_a_sessions_keys_expire_together_whoever_writes(plain, home):
    url, client = plain
    keys_expire_together(url, client, home, "together")
    a_writers_append_expires_with_the_rest(url, client, home, "writers")


def test_a_sessions_keys_expire_together_on_a_cluster(cluster, home):
    url, client = cluster
    keys_expire_together(url, client, home, "together")
    a_writers_append_expires_with_the_rest(url, client, home, "writers")


def test_a_streamed_piece_keeps_the_events_to_the_sessions_deadline(plain, home):
    """A piece of a reply published by a writer gives the events stream the session's deadline,
    not a TTL of its own that would outlive the rest."""
    url, client = plain
    owner = sessions_as(url, home, "owner")
    owner.create("apollo", "pieces", named=True)
    owner.share("pieces", "u1", EDITOR)
    speak(url, home, "u1", "pieces", "u1 speaks")
    keys = session_keys(client, "pieces")
    soon = int(time.time() * 1000) + 10**9
    for key in keys:
        client.pexpireat(key, soon)
    live = sessions_as(url, home, "u1").live_reply("pieces", "ab" * 8, "apollo", "main")
    live.feed("a piece")
    live.close()
    assert deadlines(client, keys) == {soon}
