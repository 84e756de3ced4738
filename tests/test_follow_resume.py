"""A follower that goes away and comes back: `aish --follow-session ID --resume` after the
follower was killed with SIGKILL mid-reply shows every event it had not shown, once, in order,
and nothing it had; a follower of a session that is renamed goes on under the new id. Each on
the file store and on a real redis-server, with real processes."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import follow_support
from conftest import run
from follow_support import PIECES, WHOLE, Gate, Program, new_session, until
from manage_support import select_redis

from aish import config as config_module
from aish.follow_cursor import Cursors
from aish.messages import Message
from aish.sessions import Sessions
from aish.store import open_store

store_env = follow_support.store_env  # the fixture: file store, then Redis


def ok(env: dict, *argv: str, input: str | None = None):
    done = run(env, *argv, input=input)
    assert done.returncode == 0, (argv, done.stderr.decode())
    return done


def kept_place(env: dict, sid: str) -> dict:
    """What this user's follower of ``sid`` saved of where it is ({} before it saved)."""
    config = config_module.load(env)
    location = open_store(config).location(sid)
    return Cursors(config.home / "following").load(location) or {}


def test_a_follower_killed_mid_reply_and_resumed_shows_each_event_once_in_order(store_env,
                                                                               server):
    sid = new_session(store_env)
    first = Program(store_env, "aish", "--follow-session", sid, "--resume")
    first.wait_for(r"No earlier follower of this session", "stderr")
    first.wait_for(r"apollo> ok: start\n")  # no place kept yet: the recap, as without --resume
    ok(store_env, "apollo", "--session", sid, input="before")
    first.wait_for(r"apollo> ok: before\n")
    gate = Gate(PIECES)
    server.chunks = gate
    asking = Program(store_env, "apollo", "--session", sid, input="tell me slowly")
    first.wait_for(r"apollo> Streaming ")
    until(lambda: [r for r in kept_place(store_env, sid).get("streaming", {}).values()
                   if r["shown"] == len(PIECES[0])], "the place covers the first piece")
    os.kill(first.proc.pid, signal.SIGKILL)
    first.finish()
    # Nobody follows while the reply goes on, is stored, and another exchange is stored.
    gate.release()
    assert asking.finish() == 0, asking.stderr
    server.chunks = None
    ok(store_env, "apollo", "--session", sid, input="while away")
    second = Program(store_env, "aish", "--follow-session", sid, "--resume")
    try:
        second.wait_for(r"Going on where your last follower stopped", "stderr")
        second.wait_for(r"apollo> ok: while away\n")
        ok(store_env, "apollo", "--session", sid, input="after")
        second.wait_for(r"apollo> ok: after\n")
    finally:
        second.stop()
    assert "ok: start" not in second.stdout  # no recap: it goes on, it does not start again
    shown = first.stdout + second.stdout
    assert shown == ("user to apollo> start\napollo> ok: start\n"
                     "user to apollo> before\napollo> ok: before\n"
                     f"user to apollo> tell me slowly\napollo> {PIECES[0]}"
                     f"apollo> … {WHOLE[len(PIECES[0]):]}\n"
                     "user to apollo> while away\napollo> ok: while away\n"
                     "user to apollo> after\napollo> ok: after\n"), shown


def test_a_resumed_follower_goes_on_when_its_connection_is_killed(redis_url, env, request):
    """Both halves of a follower's going away on Redis: restarted from its kept place, then
    its connection killed by the server; nothing is lost or repeated."""
    select_redis(env, redis_url)
    sid = new_session(env)
    first = Program(env, "aish", "--follow-session", sid)
    first.wait_for(r"apollo> ok: start\n")
    until(lambda: kept_place(env, sid), "the follower keeps its place")  # saved after printing
    first.stop()  # stopped between events: its place is the newest event
    ok(env, "apollo", "--session", sid, input="one")
    second = Program(env, "aish", "--follow-session", sid, "--resume")
    client = request.getfixturevalue("redis_server").client()
    try:
        second.wait_for(r"apollo> ok: one\n")
        killed = until(lambda: [int(c["id"]) for c in client.client_list()
                                if c.get("cmd") == "xread"], "the follower reads")
        client.client_kill_filter(_id=killed[0])
        ok(env, "apollo", "--session", sid, input="two")
        second.wait_for(r"apollo> ok: two\n")
    finally:
        second.stop()
    assert second.stdout == ("user to apollo> one\napollo> ok: one\n"
                             "user to apollo> two\napollo> ok: two\n")


def test_resume_without_a_kept_place_or_with_a_damaged_one_starts_from_now(store_env):
    sid = new_session(store_env)
    config = config_module.load(store_env)
    path = Cursors(config.home / "following").path(open_store(config).location(sid))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"location": "elsewhere", "feed": {"last": "1-0"}}')
    follower = Program(store_env, "aish", "--follow-session", sid, "--resume")
    try:
        follower.wait_for(r"No earlier follower of this session", "stderr")
        follower.wait_for(r"apollo> ok: start\n")
    finally:
        follower.stop()
    assert "Traceback" not in follower.stderr


def test_a_follower_goes_on_under_the_new_id_of_a_renamed_session(store_env):
    sid = new_session(store_env)
    follower = Program(store_env, "aish", "--follow-session", sid)
    try:
        follower.wait_for(r"apollo> ok: start\n")
        ok(store_env, "aish", "--rename-session", sid, "renamed-notes")
        ok(store_env, "apollo", "--session", "renamed-notes", input="after the rename")
        follower.wait_for(r"user to apollo> after the rename\napollo> ok: after the rename\n")
        follower.wait_for(rf"\(session {sid} is now renamed-notes\)", "stderr")
        os.kill(follower.proc.pid, signal.SIGINT)  # as Ctrl-C
        assert follower.finish() == 0
    finally:
        follower.stop()
    assert "Stopped following session renamed-notes" in follower.stderr
    assert follower.stdout.count("after the rename") == 2  # the question and its reply, once
    # Its place is kept under the new id, so --resume finds it there.
    assert kept_place(store_env, "renamed-notes")["feed"]


def test_a_resumed_follower_says_when_what_it_missed_was_trimmed(redis_url, env):
    cfg = Path(env["HOME"]) / ".aish" / "config.yaml"
    cfg.write_text(cfg.read_text() + "sessions:\n  storage: {type: redis, url: "
                   f"'{redis_url}', stream_length: 5}}\n")
    sid = new_session(env)
    first = Program(env, "aish", "--follow-session", sid)
    first.wait_for(r"apollo> ok: start\n")
    first.stop()
    config = config_module.load(env)
    session = Sessions(open_store(config), config).open("apollo", sid)
    for n in range(40):  # more than the stream keeps
        session.add(Message("user", f"m{n}", "apollo", float(n)))
    second = Program(env, "aish", "--follow-session", sid, "--resume")
    try:
        second.wait_for(r"some events may have been trimmed", "stderr")
        second.wait_for(r"user to apollo> m39\n")  # what is left is shown
    finally:
        second.stop()
    assert "m0\n" not in second.stdout


def test_a_file_follower_resumed_after_a_rewrite_hears_the_rewrite(home):
    from manage_support import sessions_for

    sessions = sessions_for(home)
    session = sessions.create("apollo")
    session.add(Message("user", "one", "apollo", 1.0))
    feed = sessions.follow_feed(session.id)
    feed.mark()
    kept = feed.position()
    feed.close()
    loaded = sessions.load(session.id)
    sessions.rewrite(session.id, loaded.meta, loaded.messages, "prune", since=loaded.mark)
    again = sessions.follow_feed(session.id)
    assert again.resume(kept) and not again.resume({"ino": True, "offset": 0, "pieces": {}})
    assert again.resume(kept)
    assert [e.kind for e in until(lambda: again.read(0.5), "the rewrite")] == ["rewrite"]
    again.close()


def test_a_follower_keeps_its_place_before_it_shows_anything(env):
    sid = new_session(env)
    follower = Program(env, "aish", "--follow-session", sid)
    try:
        follower.wait_for(r"apollo> ok: start\n")  # its recap is on screen: a place is kept
        assert kept_place(env, sid)
    finally:
        follower.stop()
