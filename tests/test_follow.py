"""Following a session live (`aish --follow-session ID`): a second process's messages and the
reply it streams, piece by piece, in order, once each; in Redis resumed after the follower's
connection is killed, in files through the log and the live file beside it."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import follow_support
import pytest
from conftest import run
from follow_support import PIECES, WHOLE, Gate, Program, new_session, until
from manage_support import select_redis

from aish import config as config_module
from aish.store import open_store

store_env = follow_support.store_env  # the fixture: files, Redis, then a Redis Cluster


def ask_in_background(env: dict, sid: str, text: str) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def ask() -> None:
        result["done"] = run(env, "apollo", "--session", sid, input=text)

    thread = threading.Thread(target=ask)
    thread.start()
    return thread, result


def xread_clients(client) -> list[int]:
    return [int(c["id"]) for c in client.client_list() if c.get("cmd") == "xread"]


def test_a_follower_sees_a_second_process_and_its_reply_as_it_streams(store_env, server,
                                                                       request):
    sid = new_session(store_env)
    follower = Program(store_env, "aish", "--follow-session", sid)
    try:
        follower.wait_for(r"Following session", "stderr")
        follower.wait_for(r"user to apollo> start\napollo> ok: start")  # the recap first
        gate = Gate(PIECES)
        server.chunks = gate
        thread, result = ask_in_background(store_env, sid, "tell me slowly")
        follower.wait_for(r"user to apollo> tell me slowly\n")
        # Only the first piece has been sent, and the follower shows it before the rest.
        follower.wait_for(r"apollo> Streaming ")
        assert "slowly, " not in follower.stdout.split("tell me slowly")[-1]
        if store_env["AISH_TEST_STORE"] == "file":
            live = Path(store_env["HOME"]) / ".aish" / "sessions" / ".live"
            (piece_file,) = [p for p in live.iterdir() if p.name.startswith(sid + ".")]
            assert stat.S_IMODE(piece_file.stat().st_mode) == 0o600
        killed = None
        if store_env["AISH_TEST_STORE"] == "redis":
            # The follower's connection dies mid-reply; it resumes from the last id it saw.
            client = request.getfixturevalue("redis_server").client()
            killed = until(lambda: xread_clients(client), "the follower reads the stream")[0]
            client.client_kill_filter(_id=killed)
        gate.release()
        thread.join()
        assert result["done"].returncode == 0, result["done"].stderr.decode()
        follower.wait_for(rf"apollo> {WHOLE}\n")
        if killed is not None:
            until(lambda: [c for c in xread_clients(client) if c != killed], "a new connection")
        server.chunks = None
        assert run(store_env, "apollo", "--session", sid, input="and again").returncode == 0
        follower.wait_for(r"user to apollo> and again\napollo> ok: and again\n")
    finally:
        follower.stop()
    shown = follower.stdout
    # Each message once, in the order it was stored; nothing lost, nothing repeated.
    assert shown.count("tell me slowly") == 1 and shown.count(WHOLE) == 1
    assert shown.count("and again") == 2  # the question, and the reply that quotes it
    order = [shown.index(t) for t in ("ok: start", "tell me slowly", WHOLE, "and again")]
    assert order == sorted(order)
    if store_env["AISH_TEST_STORE"] == "file":
        assert list(live.iterdir()) == []  # the live file went once the reply was stored


def test_following_one_branch_leaves_the_others_out(store_env, server):
    sid = new_session(store_env)
    follower = Program(store_env, "aish", "--follow-session", sid, "--branch", "main")
    try:
        follower.wait_for(r"Following session .* \(branch main\)", "stderr")
        side = run(store_env, "apollo", "--session", sid, "--branch", "side", input="aside")
        assert side.returncode == 0, side.stderr.decode()
        assert run(store_env, "apollo", "--session", sid, input="on main").returncode == 0
        follower.wait_for(r"user to apollo> on main\napollo> ok: on main\n")
    finally:
        follower.stop()
    assert "aside" not in follower.stdout


def test_redis_events_are_written_with_each_append_and_bounded(redis_url, home):
    select_redis(home, redis_url)
    (Path(home["HOME"]) / ".aish" / "config.yaml").write_text(
        f"sessions:\n  storage: {{type: redis, url: '{redis_url}', stream_length: 5}}\n")
    config = config_module.load(home)
    assert config.stream_length == 5
    from aish.messages import Message
    from aish.sessions import Sessions

    sessions = Sessions(open_store(config), config)
    session = sessions.create("apollo")
    for n in range(40):
        session.add(Message("user", f"m{n}", "apollo", 0.0))
    import redis

    client = redis.Redis.from_url(redis_url)
    key = f"aish:{{{session.id}}}:events"
    entries = client.xrange(key)
    assert 5 <= len(entries) < 40  # trimmed, approximately, as it grows
    assert entries[-1][1][b"k"] == b"rec" and b'"m39"' in entries[-1][1][b"r"]
    assert client.pttl(key) > 0  # expires with the session's other keys


def test_follow_needs_an_existing_session(aish):
    done = aish("aish", "--follow-session", "nope")
    assert done.returncode != 0
    assert done.stderr.decode().count("\n") == 1 and b"not found" in done.stderr
    assert b"Traceback" not in done.stderr


def test_pieces_of_an_encrypted_store_are_sealed(home, server, tmp_path):
    """With encryption on, a streamed piece in the live file is as unreadable as the log."""
    from aish.follow import FileSink

    config = config_module.load(home)
    store = open_store(config)
    store.codec = _Sealing()
    store.private_dir(".live")
    sink = FileSink(store, "sess_x")
    sink.chunk("0123456789abcdef", "apollo", "main", "secret words")
    (path,) = (Path(config.session_dir) / ".live").iterdir()
    assert b"secret words" not in path.read_bytes() and b"SEALED" in path.read_bytes()
    sink.end("0123456789abcdef")
    assert not os.path.exists(path)


class _Sealing:
    def seal(self, record: dict) -> dict:
        return {**{k: v for k, v in record.items() if k != "content"}, "enc": "SEALED"}

    def open(self, record: dict) -> dict:
        return record


@pytest.mark.parametrize("notify", [True, False], ids=["inotify", "polling"])
def test_the_file_feed_waits_for_a_torn_tail_and_starts_again_after_a_rewrite(home, notify):
    import json

    from manage_support import sessions_for

    from aish.messages import Message

    sessions = sessions_for(home)
    session = sessions.create("apollo")
    session.add(Message("user", "one", "apollo", 1.0))
    feed = sessions.follow_feed(session.id)
    if not notify:
        feed.close()  # and so polls
    feed.mark()
    assert feed.read(0.05) == []
    session.add(Message("user", "two", "apollo", 2.0))
    (event,) = until(lambda: feed.read(0.5), "the new message")
    assert event.kind == "msg" and event.message.content == "two"
    log = Path(sessions.location(session.id))
    line = json.dumps({"t": "msg", "id": "00000000000000aa", "role": "user",
                       "content": "three", "ai": "apollo", "time": 3.0}) + "\n"
    with log.open("ab") as f:
        f.write(line[:20].encode())  # a writer caught mid-line
    assert feed.read(0.05) == []  # a torn tail waits for its newline
    with log.open("ab") as f:
        f.write(line[20:].encode())
    (event,) = until(lambda: feed.read(0.5), "the completed line")
    assert event.message.content == "three"
    loaded = sessions.load(session.id)
    sessions.rewrite(session.id, loaded.meta, loaded.messages[:1], "prune", since=loaded.mark)
    events = until(lambda: feed.read(0.5), "the rewrite")
    assert [e.kind for e in events] == ["rewrite"]
    session = sessions.open("apollo", session.id)
    session.add(Message("user", "after", "apollo", 4.0))
    (event,) = until(lambda: feed.read(0.5), "a message after the rewrite")
    assert event.message.content == "after"
    feed.close()
