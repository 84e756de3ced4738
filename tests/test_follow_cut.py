"""A writer killed (SIGKILL) mid-reply: its followers see the partial reply closed with a
visible mark once the writer is known gone (Redis: its floor lease expired; files: its live
file no longer locked), and go on following. Real processes: the writer streams through the
scripted server, held after its first piece, and is killed there; the follower runs beside
it. On the file store, a single redis-server and a Redis Cluster."""

from __future__ import annotations

import os
import re
import signal

import pytest
from conftest import run
from follow_support import PIECES, WHOLE, Gate, Program, new_session
from manage_support import select_redis
from redis_support import URL_FIXTURES

from aish.commands.follow_cmds import CUT_MARK


@pytest.fixture(params=["file", "redis", "redis-cluster"])
def store_env(request, env):
    if request.param != "file":
        select_redis(env, request.getfixturevalue(URL_FIXTURES[request.param]))
    return {**env, "AISH_FLOOR_TTL": "1"}  # a killed holder's lease goes within a second


def ask_and_see(env: dict, sid: str, follower: Program, text: str, reply: str) -> None:
    """Ask ``text`` in ``sid`` and wait for the follower to show it and its whole ``reply``."""
    done = run(env, "apollo", "--session", sid, input=text)
    assert done.returncode == 0, done.stderr.decode()
    follower.wait_for(rf"user to apollo> {text}\napollo> {reply}\n")


def test_a_reply_whose_writer_is_killed_is_marked_cut_and_following_goes_on(store_env, server):
    sid = new_session(store_env)
    follower = Program(store_env, "aish", "--follow-session", sid)
    gate = Gate(PIECES)
    try:
        follower.wait_for(r"apollo> ok: start\n")
        server.chunks = gate
        writer = Program(store_env, "apollo", "--session", sid, input="tell me slowly")
        follower.wait_for(rf"user to apollo> tell me slowly\napollo> {PIECES[0]}")
        os.kill(writer.proc.pid, signal.SIGKILL)
        writer.finish()
        follower.wait_for(rf"apollo> {PIECES[0]}\n{re.escape(CUT_MARK)}\n")
        gate.release()  # the scripted server's request handler goes on, to nobody
        server.chunks = None
        ask_and_see(store_env, sid, follower, "after", "ok: after")
    finally:
        gate.release()
        follower.stop()
    shown = follower.stdout
    assert shown.count(CUT_MARK) == 1 and shown.count("tell me slowly") == 1
    assert shown.index(CUT_MARK) < shown.index("user to apollo> after")


def test_a_reply_that_is_stored_is_never_marked_cut(store_env, server):
    """The writer stores its reply, ends it and only then lets go of its lease (files: of its
    live file's lock): a follower that looks while the reply streams, or as it ends, never
    takes it for a cut one."""
    sid = new_session(store_env)
    follower = Program(store_env, "aish", "--follow-session", sid)
    try:
        follower.wait_for(r"apollo> ok: start\n")
        server.delay = 0.3  # looked at while the reply streams
        server.chunks = PIECES
        ask_and_see(store_env, sid, follower, "slowly", WHOLE)
        server.chunks = None
        ask_and_see(store_env, sid, follower, "last", "ok: last")  # nothing after the end
    finally:
        follower.stop()
    assert CUT_MARK not in follower.stdout
