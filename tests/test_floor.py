"""Turn-taking on a branch: while a reply streams there, the branch's floor is held; a second
prompt waits for it and goes on after, a holder killed mid-reply frees it by expiry, and the
pipe face gives up after `sessions.floor_wait_seconds` and talks on a new branch instead."""

from __future__ import annotations

import getpass
import os
import signal
from pathlib import Path

import follow_support
import pytest
from conftest import run
from follow_support import Gate, Program, new_session, until

from aish import config as config_module
from aish.floor import being_answered
from aish.sessions import Sessions
from aish.store import open_store

PIECES = ["first ", "reply ", "held ", "back."]


store_env = follow_support.store_env  # the fixture: files, Redis, then a Redis Cluster


def sessions_of(env: dict) -> Sessions:
    config = config_module.load(env)
    return Sessions(open_store(config), config)


def main_path(env: dict, sid: str, branch: str = "main") -> list[str]:
    loaded = open_store(config_module.load(env)).load(sid)
    return [m.content for m in loaded.path(loaded.tree.head(branch))]


def held_reply(env: dict, server) -> tuple[str, Gate, Program]:
    """A session whose next reply (to "one", asked in the background) is held back after
    its first piece until the gate is released."""
    sid = new_session(env)
    gate = Gate(PIECES)
    server.chunks = gate
    first = Program(env, "apollo", "--session", sid, input="one")
    until(lambda: gate.requests == 1, "the first request is streaming")
    return sid, gate, first


def test_a_second_prompt_waits_for_the_floor_and_goes_on_after(store_env, server):
    sid, gate, first = held_reply(store_env, server)
    assert being_answered(sessions_of(store_env), sid) == [
        f"being answered: apollo for {getpass.getuser()} on main"]
    second = Program(store_env, "apollo", "--session", sid, input="two")
    second.wait_for(rf"{getpass.getuser()} is asking apollo… \(waiting", "stderr")
    assert gate.requests == 1  # it waits: its message is not even stored yet
    assert "two" not in main_path(store_env, sid)
    gate.release()
    assert first.finish() == 0, first.stderr
    assert second.finish() == 0, second.stderr
    # One after the other on main, no branch needed and nothing lost.
    assert main_path(store_env, sid) == ["start", "ok: start", "one", "".join(PIECES), "two",
                                         "".join(PIECES)]
    assert sessions_of(store_env).floor_holders(sid) == []  # released at the end


def test_a_holder_killed_mid_reply_frees_the_floor(store_env, server):
    store_env = {**store_env, "AISH_FLOOR_TTL": "1"}
    sid, gate, first = held_reply(store_env, server)
    until(lambda: sessions_of(store_env).floor_holders(sid), "the floor is held")
    os.kill(first.proc.pid, signal.SIGKILL)
    first.finish()
    # Nobody renews it any more: free once its lease ran out (files: at once, on this host).
    until(lambda: sessions_of(store_env).floor_holders(sid) == [], "the floor is free")
    second = run(store_env, "apollo", "--session", sid, input="two")
    gate.release()
    assert second.returncode == 0, second.stderr.decode()
    # The dead holder's message stays unanswered; the next prompt follows it on main.
    assert main_path(store_env, sid)[-3:] == ["one", "two", "".join(PIECES)]
    assert b"goes on branch" not in second.stderr


def test_two_editors_at_one_head_make_one_head_and_one_sibling_and_both_are_told(store_env,
                                                                                   server):
    """The pipe face waits up to its bound, then takes a new branch; the holder hears of it
    once its reply is done."""
    sid, gate, first = held_reply(store_env, server)
    second = run(store_env, "apollo", "--session", sid, input="two", AISH_FLOOR_WAIT="0.2")
    assert second.returncode == 0, second.stderr.decode()
    err = second.stderr.decode()
    assert "is asking apollo" in err
    assert f"branch main of session {sid} is busy" in err and "goes on branch main-2" in err
    gate.release()
    assert first.finish() == 0, first.stderr
    assert (f"{getpass.getuser()}'s prompt did not wait for this reply on branch main of "
            f"session {sid}; it went on branch main-2") in first.stderr
    assert main_path(store_env, sid) == ["start", "ok: start", "one", "".join(PIECES)]
    assert main_path(store_env, sid, "main-2") == ["start", "ok: start", "two",
                                                   "".join(PIECES)]
    loaded = open_store(config_module.load(store_env)).load(sid)
    assert set(loaded.tree.refs) == {"main", "main-2"} and loaded.problems == []
    assert len(loaded.messages) == 6  # nothing lost, nothing stored twice
    if "redis" not in open_store(config_module.load(store_env)).location(sid):
        floors = Path(config_module.load(store_env).session_dir) / ".floors"
        assert list(floors.iterdir()) == []  # the note was read and removed with the lease


def test_floor_config_is_checked(home):
    config = config_module.load(home)
    assert config.floor_wait_seconds == 120 and config.floor_ttl_seconds == 15
    assert config_module.load({**home, "AISH_FLOOR_TTL": "0"}).floor_ttl_seconds == 0
    with pytest.raises(config_module.ConfigError, match="floor_wait_seconds"):
        config_module.load({**home, "AISH_FLOOR_WAIT": "-3"})


def test_a_damaged_or_foreign_lease_never_keeps_a_branch_shut(store_env):
    from aish.floor import Holder, stale

    sessions = sessions_of(store_env)
    session = sessions.create("apollo")
    from aish.messages import Message

    session.add(Message("user", "hi", "apollo", 1.0))
    floor = sessions.floor
    me = Holder.me("apollo", "main", 15)
    if hasattr(floor.store, "session_key"):
        floor.store.client.set(floor._key(session.id, "main"), b"not a lease")
    else:
        path = floor._path(session.id, "main")
        path.write_text("{not json")
    assert floor.take(session.id, me, 15) is None  # taken, over what was there
    other = Holder.me("athena", "main", 15)
    assert floor.take(session.id, other, 15) == me  # held now: the holder is reported
    floor.release(session.id, other)  # not its lease: nothing happens
    assert being_answered(sessions, session.id) == [me.answered]
    floor.release(session.id, me)
    assert being_answered(sessions, session.id) == []
    # A lease of another machine is stale only once it expired.
    far = Holder("bob", "apollo", "main", 1, "elsewhere.example", me.until, "t")
    assert not stale(far) and stale(far, now=me.until + 1)
