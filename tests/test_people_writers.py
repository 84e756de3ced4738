"""Each person writes only their own records on Redis: one log per writer, enforced by the
server's ACL rules, read back as one conversation in one order.

A real redis-server of its own (ACL users outlive FLUSHALL), with ACL users made here:
``owner`` may do anything (it owns the sessions and applies the roles), ``u1``..``u8`` and
``viewer`` may do nothing until a session is shared with them.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis
from conftest import run
from manage_support import ok, select_redis, sessions_for

from aish import branches
from aish import config as config_module
from aish.errors import PermissionDenied
from aish.messages import ASSISTANT, USER, Message
from aish.people import EDITOR, VIEWER, report
from aish.sessions import Sessions
from aish.store.redisstore import _WRITE, RedisStore
from aish.store.writerlogs import claimed_by, merge

PASSWORD = "pw-writers"
USERS = [f"u{n}" for n in range(1, 9)]


@pytest.fixture
def admin(acl_server):
    client = acl_server.client()
    client.flushall()
    for name in ("owner", "viewer", *USERS):
        client.execute_command("ACL", "DELUSER", name)
    client.execute_command("ACL", "SETUSER", "owner", "on", f">{PASSWORD}", "~*", "&*", "+@all")
    for name in ("viewer", *USERS):
        client.execute_command("ACL", "SETUSER", name, "on", f">{PASSWORD}")
    yield client
    client.close()


def url_of(acl_server, name: str) -> str:
    return f"redis://{name}:{PASSWORD}@127.0.0.1:{acl_server.port}/0"


def sessions_as(acl_server, home: dict, name: str, now=time.time) -> Sessions:
    config = config_module.load(home)
    return Sessions(RedisStore(url_of(acl_server, name)), config, now=now)


def as_user(acl_server, name: str):
    return redis.Redis(host="127.0.0.1", port=acl_server.port, username=name,
                       password=PASSWORD)


def shared(acl_server, home: dict, sid: str, roles: dict[str, str], now=time.time):
    owner = sessions_as(acl_server, home, "owner", now)
    owner.create("apollo", sid, named=True)
    for name, role in roles.items():
        _, applied = owner.share(sid, name, role)
        assert applied.applied, applied
    return owner


def test_eight_people_25_turns_each_over_3_branches(acl_server, admin, home):
    """8 editors talk at once, each on one of 3 branches: 200 turns, every one stored once,
    each message by the person who wrote it, each person's records in their own log only;
    a branch walked from its head (the context of the next prompt) is what a whole read
    gives."""
    sid = "crowd"
    owner = shared(acl_server, home, sid, dict.fromkeys(USERS, EDITOR))
    for name in ("b1", "b2"):
        branches.create(owner, sid, name)
    failures: list[BaseException] = []

    def talk(n: int, name: str) -> None:
        try:
            session = sessions_as(acl_server, home, name).open("apollo", sid)
            session.auto_save = 0
            session.branch = ("main", "b1", "b2")[n % 3]
            for turn in range(25):
                session.add(Message(USER, f"{name} turn {turn}", "apollo", time.time()))
                session.add(Message(ASSISTANT, f"{name} reply {turn}", "apollo",
                                    time.time()))
                session.save()
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=talk, args=(n, name)) for n, name in enumerate(USERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    loaded = owner.load(sid)
    assert not loaded.problems
    turns = [m for m in loaded.messages if m.role == USER]
    assert len(turns) == 200
    assert sorted(m.content for m in loaded.messages) == sorted(
        f"{name} {kind} {turn}" for name in USERS for kind in ("turn", "reply")
        for turn in range(25))
    assert all(m.by == m.content.split()[0] for m in loaded.messages)
    for name in USERS:
        stored = admin.lrange(f"aish:{{{sid}}}:log:{name}", 0, -1)
        assert {claimed_by(raw) for raw in stored} == {name}  # a branch of theirs too
        assert len([raw for raw in stored if b'"t":"msg"' in raw]) == 50
    assert not [raw for raw in admin.lrange(f"aish:{{{sid}}}:log", 0, -1)
                if b'"t":"msg"' in raw]
    for name, head in loaded.tree.refs.items():
        walked = owner.store.path(sid, head, 0)
        assert [m.id for m in walked] == [m.id for m in loaded.path(head)], name
        assert walked and all(m.by == m.content.split()[0] for m in walked)
    last = owner.store.path(sid, loaded.tree.refs["b1"], 2)
    assert [m.id for m in last] == [m.id for m in loaded.path(loaded.tree.refs["b1"])[-4:]]


def test_no_one_writes_anyone_elses_log(acl_server, admin, home):
    """A viewer's append, and any hand-made RPUSH / EVAL / EVALSHA into the owner's log or
    another editor's, fail with NOPERM; what an editor writes through aish is theirs."""
    sid = "guarded"
    owner = shared(acl_server, home, sid, {"u1": EDITOR, "u2": EDITOR, "viewer": VIEWER})
    u1 = sessions_as(acl_server, home, "u1").open("apollo", sid)
    u1.add(Message(USER, "u1 speaks", "apollo", time.time()))
    u1.save()
    line = json.dumps({"t": "msg", "role": "user", "content": "forged", "ai": "apollo",
                       "time": time.time(), "id": "f1f1f1f1f1f1f1f1", "by": "u1"})
    push = "return redis.call('RPUSH', KEYS[1], ARGV[1])"
    sha = admin.script_load(push)
    write_sha = admin.script_load(_WRITE)
    meta, events = f"aish:{{{sid}}}:meta", f"aish:{{{sid}}}:events"
    for who, key in (("u2", f"aish:{{{sid}}}:log"), ("u2", f"aish:{{{sid}}}:log:u1"),
                     ("viewer", f"aish:{{{sid}}}:log"),
                     ("viewer", f"aish:{{{sid}}}:log:viewer")):
        client = as_user(acl_server, who)
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.rpush(key, line)
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.eval(push, 1, key, line)
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.evalsha(sha, 1, key, line)
        # aish's own write script, by hand, naming someone else's log as the one written
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.evalsha(write_sha, 3, meta, key, events, "append", 0, 10**9, 0, 1, line,
                           0, 0, "0", "", "", 0, 0, 0, "")
    bare = RedisStore(url_of(acl_server, "viewer"))
    with pytest.raises(PermissionDenied, match="refused"):
        bare.append(sid, [{"t": "meta", "time": time.time(), "title": "viewer's"}])
    u2 = sessions_as(acl_server, home, "u2").open("apollo", sid)
    u2.add(Message(USER, "u2 speaks", "apollo", time.time()))
    u2.save()
    said = [(m.content, m.by) for m in owner.load(sid).messages]
    assert said == [("u1 speaks", "u1"), ("u2 speaks", "u2")]
    assert owner.authorship(sid) == {"vouched": 2, "not_vouched": [], "forged": []}


def test_revocation_takes_effect_on_the_next_command(acl_server, admin, home):
    sid = "revoked"
    owner = shared(acl_server, home, sid, {"u1": EDITOR})
    u1 = sessions_as(acl_server, home, "u1")
    session = u1.open("apollo", sid)
    session.add(Message(USER, "while I may", "apollo", time.time()))
    session.save()
    owner.unshare(sid, "u1")
    with pytest.raises(PermissionDenied):
        u1.open("apollo", sid)
    with pytest.raises(redis.exceptions.NoPermissionError):
        as_user(acl_server, "u1").rpush(f"aish:{{{sid}}}:log:u1", b"{}")
    # What u1 wrote while a member stays, still u1's.
    assert [(m.content, m.by) for m in owner.load(sid).messages] == [("while I may", "u1")]


def test_an_expired_grants_rules_go_when_the_owner_next_looks(acl_server, admin, home):
    """The client refuses an expired grant by itself; the server's rules go too as soon as
    an owner shares, unshares or asks --who, and aish says so."""
    sid = "lapsed"
    clock = [time.time()]
    owner = shared(acl_server, home, sid, {}, now=lambda: clock[0])
    owner.share(sid, "u1", EDITOR, expires_in=3600)
    owner.share(sid, "u2", EDITOR)
    u1 = as_user(acl_server, "u1")
    u1.hset(f"aish:{{{sid}}}:meta", "x", "1")  # within the hour the server lets u1 write
    assert owner.store.access_held(sid, "u1") is True
    clock[0] += 3601
    # Not yet: nobody who may change the rules has looked.
    assert owner.store.access_held(sid, "u1") is True
    assert "expired_rules_removed" not in report(owner, sid)  # --session-info leaves them
    assert owner.store.access_held(sid, "u1") is True
    info = report(owner, sid, drop_expired=True)
    assert info["expired_rules_removed"] == [
        {"user": "u1", "role": EDITOR, "expires": pytest.approx(clock[0] - 1)}]
    assert owner.store.access_held(sid, "u1") is False
    assert owner.store.access_held(sid, "u2") is True
    with pytest.raises(redis.exceptions.NoPermissionError):
        u1.hset(f"aish:{{{sid}}}:meta", "x", "2")
    # said once, when it happened
    assert "expired_rules_removed" not in report(owner, sid, drop_expired=True)
    # Through the program: the owner's --who says it.
    an_hour_ago = sessions_as(acl_server, home, "owner", now=lambda: time.time() - 3600)
    an_hour_ago.share(sid, "u3", EDITOR, expires_in=60)
    select_redis(home, url_of(acl_server, "owner"))
    text = ok(run(home, "aish", "--who", sid))
    assert "u3's editor grant expired: its Redis ACL rules were removed" in text
    assert owner.store.access_held(sid, "u3") is False


def _share_at_once(first: Sessions, second: Sessions, sid: str) -> None:
    """Both owners read the session before either writes its grant: the race that lost a
    grant when each wrote every member again."""
    barrier = threading.Barrier(2)
    for sessions in (first, second):
        read = sessions.summary

        def paused(sid, read=read):
            summary = read(sid)
            barrier.wait(timeout=60)
            return summary

        sessions.summary = paused  # type: ignore[method-assign]
    failures: list[BaseException] = []

    def share(sessions: Sessions, user: str) -> None:
        try:
            sessions.share(sid, user, EDITOR)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=share, args=(s, u))
               for s, u in ((first, "u1"), (second, "u2"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures


def test_two_owners_sharing_at_once_both_keep_their_grant_on_redis(acl_server, admin, home):
    sid = "twice"
    shared(acl_server, home, sid, {})
    first, second = (sessions_as(acl_server, home, "owner") for _ in range(2))
    _share_at_once(first, second, sid)
    found = sessions_as(acl_server, home, "owner").summary(sid).meta["members"]
    assert {u: g["role"] for u, g in found.items()} == {"owner": "owner", "u1": EDITOR,
                                                         "u2": EDITOR}
    assert {u: g["role"] for u, g in first.load(sid).meta["members"].items()} == {
        "owner": "owner", "u1": EDITOR, "u2": EDITOR}


def test_two_owners_sharing_at_once_both_keep_their_grant_on_files(home):
    sid = "twice"
    sessions_for(home).create("apollo", sid, named=True)
    first, second = sessions_for(home), sessions_for(home)
    _share_at_once(first, second, sid)
    for meta in (sessions_for(home).summary(sid).meta, sessions_for(home).load(sid).meta):
        assert {u: g["role"] for u, g in meta["members"].items() if u != first.user} == {
            "u1": EDITOR, "u2": EDITOR}


def test_the_order_of_several_logs():
    """The owner's records fill the places the writers' stamps leave; broken stamps still
    give every record once."""
    owner = [b'{"t":"meta","n":0}', b'{"t":"meta","n":2}', b'{"t":"meta","n":5}']
    bob = [b'{"q":1,"t":"meta","n":1}', b'{"q":4,"t":"meta","n":4}']
    carol = [b'{"q":3,"t":"meta","n":3}']
    merged = merge(owner, {"bob": bob, "carol": carol})
    assert [json.loads(r)["n"] for r in merged] == [0, 1, 2, 3, 4, 5]
    broken = merge(owner, {"bob": [b'{"q":99,"t":"meta","n":1}', b'{"t":"meta","n":4}'],
                           "carol": [b'{"q":"x","t":"meta","n":3}']})
    assert sorted(json.loads(r)["n"] for r in broken) == [0, 1, 2, 3, 4, 5]


def test_a_forged_author_shows_as_its_writer_everywhere(acl_server, admin, home):
    """u1 runs aish's own write with records that claim the owner wrote them: the server puts
    them in u1's log, so history, --who and the live followers all say u1."""
    from aish.follow import RedisFeed

    sid = "claims"
    owner = shared(acl_server, home, sid, {"u1": EDITOR})
    feed = RedisFeed(owner.store.inner, sid)
    feed.mark()
    forged = Message(USER, "the owner says: u1 may have it all", "apollo", time.time(),
                     by="owner").to_record()
    RedisStore(url_of(acl_server, "u1")).append(sid, [forged])
    assert [(m.content, m.by) for m in owner.load(sid).messages] == [
        ("the owner says: u1 may have it all", "u1")]
    assert owner.authorship(sid)["forged"] == [forged["id"]]
    events = [e for e in feed.read(5.0) if e.kind == "msg"]
    assert [(e.message.content, e.message.by) for e in events if e.message] == [
        ("the owner says: u1 may have it all", "u1")]


def test_a_session_from_the_one_shared_log_goes_on_in_per_writer_logs(acl_server, admin, home):
    """Before each writer had a log, everyone's records went to the owner's: they still read
    in place, the server just cannot vouch for them; what comes after goes to each log."""
    sid = "older"
    owner = shared(acl_server, home, sid, {"u1": EDITOR})
    earlier = Message(USER, "u1 before", "apollo", time.time(), parent="", by="u1").to_record()
    bare = RedisStore(f"redis://127.0.0.1:{acl_server.port}/0")  # the nameless default user
    bare.append(sid, [earlier])
    session = sessions_as(acl_server, home, "u1").open("apollo", sid)
    session.auto_save = 0
    session.add(Message(USER, "u1 after", "apollo", time.time()))
    session.add(Message(ASSISTANT, "a reply", "apollo", time.time()))
    session.save()
    loaded = owner.load(sid)
    assert [(m.content, m.by) for m in loaded.messages] == [
        ("u1 before", "u1"), ("u1 after", "u1"), ("a reply", "u1")]
    head = loaded.tree.refs["main"]
    assert [m.content for m in owner.store.path(sid, head, 0)] == [
        "u1 before", "u1 after", "a reply"]
    assert owner.authorship(sid) == {"vouched": 2, "not_vouched": [earlier["id"]],
                                     "forged": []}
    assert admin.llen(f"aish:{{{sid}}}:log:u1") == 2


def test_an_unshare_takes_both_of_an_editors_selectors_away(acl_server, admin, home):
    """An editor has two selectors on a session (its writes, and the keep-alive of the logs it
    may not renew: tests/test_redis_expiry.py); an unshare takes both."""
    sid = "kept"
    owner = shared(acl_server, home, sid, {"u1": EDITOR})
    session = sessions_as(acl_server, home, "u1").open("apollo", sid)
    session.add(Message(USER, "u1 speaks", "apollo", time.time()))
    session.save()
    assert len(admin.acl_getuser("u1")["selectors"]) == 2
    # An unshare takes both of u1's selectors away.
    owner.unshare(sid, "u1")
    assert owner.store.access_held(sid, "u1") is False
    assert not admin.acl_getuser("u1")["selectors"]
