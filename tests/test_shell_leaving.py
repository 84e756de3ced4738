"""Leaving session mode always works, and leaves no clutter behind.

- The store going away mid-session (Redis stopped, the session removed from another terminal)
  never traps the user: `exit`, `/exit` and Ctrl-D leave, one line says what could not be saved,
  and the unsaved messages are kept in a recovery file that `--restore-session` takes back.
- A session left without a message is never stored (no empty sessions pile up).

The real program in a pty (shell_support.Term) with a scripted OpenAI-compatible server.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fault_server import FaultServer
from redis_support import start_redis, stop_redis
from shell_support import Term

SID = r"(sess_[a-z0-9]{6})"
LEAVE_KEYS = {"exit": "exit\r", "/exit": "/exit\r", "ctrl-d": "\x04"}


def start(terms, env, *args) -> Term:
    term = Term(env, *args)
    terms.append(term)
    return term


def use_redis(home_dir: Path, url: str) -> None:
    config = home_dir / ".aish" / "config.yaml"
    config.write_text(config.read_text()
                      + f"sessions:\n  storage: {{type: redis, url: '{url}'}}\n")


def redis_values(client) -> bytes:
    """Every key and value in Redis, read by type (DUMP may compress)."""
    found = []
    for key in client.scan_iter():
        kind = client.type(key)
        found.append(key)
        if kind == b"string":
            found.append(client.get(key))
        elif kind == b"list":
            found += client.lrange(key, 0, -1)
        elif kind == b"hash":
            found += [b for pair in client.hgetall(key).items() for b in pair]
        elif kind == b"set":
            found += client.smembers(key)
        elif kind == b"zset":
            found += client.zrange(key, 0, -1)
        elif kind == b"stream":
            found += [repr(client.xrange(key)).encode()]
    return b"\n".join(found)


def recovery_files(sessions_dir: Path, sid: str) -> list[Path]:
    return sorted((sessions_dir / "backup").glob(f"{sid}-unsaved-*.jsonl"))


def kept_messages(path: Path) -> list[str]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records[0]["t"] == "meta"
    return [r["content"] for r in records[1:]]


def enter_and_talk(t: Term) -> str:
    """`apollo --session` at the aish prompt, one exchange; returns the session id."""
    t.expect("aish> ")
    t.line("apollo --session")
    sid = t.expect(rf"Session ID: {SID}").group(1)
    t.expect(r"\(session: ")
    t.line("first words")
    t.expect("noted")
    t.expect(re.escape("apollo (session)> "))
    return sid


@pytest.mark.parametrize("how", sorted(LEAVE_KEYS))
def test_redis_stopped_mid_session_still_lets_you_leave(how, term_env, terms, tmp_path, aish,
                                                        sessions_dir):
    server = start_redis(tmp_path / "redis")
    try:
        use_redis(Path(term_env["HOME"]), server.url)
        with FaultServer(chunks=["noted"]) as chat:
            t = start(terms, {**term_env, "OPENAI_BASE_URL": chat.base})
            sid = enter_and_talk(t)
            stop_redis(server)
            t.line("second words while redis is down")
            t.expect("cannot reach Redis")
            t.expect(re.escape("apollo (session)> "))
            t.send("\x03")  # Ctrl-C at the prompt says how to leave, and does not hang
            t.expect("type 'exit' to end the session, or Ctrl-D to leave it")
            t.send(LEAVE_KEYS[how])
            t.expect(r"could not save 1 message: cannot reach Redis at redis://127\.0\.0\.1:"
                     rf"{server.port}/0[^\n]*; kept in ~/\.aish/sessions/backup/{sid}-")
            t.expect("aish> ")  # back at the shell: leaving worked
            t.line("exit")
            assert t.wait() == 0
        kept = recovery_files(sessions_dir, sid)
        assert len(kept) == 1
        assert kept_messages(kept[0]) == ["second words while redis is down"]

        # Redis back (empty: it keeps nothing on disk): the kept message can be restored.
        server = start_redis(tmp_path / "redis", port=server.port)
        result = aish("aish", "--restore-session", str(kept[0]))
        assert result.returncode == 0, result.stderr.decode()
        assert sid in result.stdout.decode() + result.stderr.decode()
        client = server.client()
        assert b"second words while redis is down" in redis_values(client)
    finally:
        stop_redis(server)


@pytest.mark.parametrize("backend", ["file", "redis"])
def test_session_removed_from_another_terminal_still_lets_you_leave(backend, term_env, terms,
                                                                    aish, sessions_dir,
                                                                    request):
    if backend == "redis":
        use_redis(Path(term_env["HOME"]), request.getfixturevalue("redis_url"))
    with FaultServer(chunks=["noted"]) as chat:
        t = start(terms, {**term_env, "OPENAI_BASE_URL": chat.base})
        sid = enter_and_talk(t)
        removed = aish("aish", "--remove-sessions", "--ai", "apollo")
        assert removed.returncode == 0, removed.stderr.decode()
        assert sid in removed.stdout.decode() + removed.stderr.decode()
        t.line("are you still there?")
        t.expect(f"session {sid} not found")
        t.line("exit")
        t.expect(rf"could not save 1 message: session {sid} not found; kept in "
                 rf"~/\.aish/sessions/backup/{sid}-")
        t.expect("aish> ")
        t.send("\x04")
        assert t.wait() == 0
    kept = recovery_files(sessions_dir, sid)
    assert kept_messages(kept[0]) == ["are you still there?"]


@pytest.mark.parametrize("how", ["exit", "ctrl-d"])
def test_leaving_without_a_message_stores_nothing(how, term_env, terms, aish, sessions_dir):
    t = start(terms, term_env)
    t.expect("aish> ")
    t.line("apollo --session")
    sid = t.expect(rf"Session ID: {SID}").group(1)
    t.expect(r"\(session: ")
    t.send(LEAVE_KEYS[how])
    t.expect(f"Left session {sid}; it had no messages, so nothing was stored")
    t.expect("aish> ")
    t.line("exit")
    assert t.wait() == 0
    assert json.loads(aish("aish", "--list-sessions", "--all", "--json").stdout) == []
    assert not (sessions_dir / f"{sid}.jsonl").exists()


def test_a_session_is_stored_with_its_first_message(term_env, terms, aish, sessions_dir):
    with FaultServer(chunks=["noted"]) as chat:
        t = start(terms, {**term_env, "OPENAI_BASE_URL": chat.base})
        sid = enter_and_talk(t)
        assert (sessions_dir / f"{sid}.jsonl").exists()
        t.send("\x04")
        t.expect(f"Left session {sid}; it stays active")
        t.line("exit")
        assert t.wait() == 0
    listing = aish("aish", "--list-sessions").stdout.decode()
    assert re.search(rf"{sid}\s+apollo-ai\s+active\s+2", listing), listing


def test_piped_empty_input_creates_no_session(aish, sessions_dir):
    result = aish("apollo", "--session", input="\n")
    assert result.returncode == 2, result.stderr.decode()
    assert "no session was created" in result.stderr.decode()
    assert json.loads(aish("aish", "--list-sessions", "--all", "--json").stdout) == []
    script = aish("aish", "--session", "hermes", "--session-id", "learn-rust",
                  input="info\nexit\n")
    assert script.returncode == 0, script.stderr.decode()
    assert "nothing was stored" in script.stderr.decode() + script.stdout.decode()
    assert not (sessions_dir / "learn-rust.jsonl").exists()


# -- encryption on: session-mode input is never written in clear ---------------------------------

def everything_under(root: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("backend", ["file", "redis", "plain"])
def test_encrypted_session_input_stays_out_of_history(backend, term_env, terms, request):
    home_dir = Path(term_env["HOME"])
    config = home_dir / ".aish" / "config.yaml"
    storage = {"file": "{encrypt: true}", "plain": "{encrypt: false}"}.get(backend)
    if backend == "redis":
        url = request.getfixturevalue("redis_url")
        storage = f"{{type: redis, url: '{url}', encrypt: true}}"
    config.write_text(config.read_text() + f"sessions:\n  storage: {storage}\n")
    env = {**term_env, "AISH_ENCRYPTION_KEY": "correct horse battery staple",
           "XDG_STATE_HOME": str(home_dir / "state"), "XDG_DATA_HOME": str(home_dir / "data"),
           "XDG_CACHE_HOME": str(home_dir / "cache"), "XDG_CONFIG_HOME": str(home_dir / "cfg")}
    marker = "zebra-marker-4417"
    with FaultServer(chunks=["noted"]) as chat:
        t = start(terms, {**env, "OPENAI_BASE_URL": chat.base})
        t.expect("aish> ")
        t.line("apollo --session")
        t.expect(r"\(session: ")
        t.line(f"my secret is {marker}")
        t.expect("noted")
        t.expect(re.escape("apollo (session)> "))
        t.send("\x1b[A")  # the message is still recalled in this run, from memory
        t.expect(marker)
        t.send("\x15")
        t.line("exit")
        t.expect("Session ended")
        t.line("exit")
        assert t.wait() == 0
        assert marker in json.dumps(chat.requests)  # it was really sent
    history = home_dir / "state" / "aish" / "history"
    assert "apollo --session" in history.read_text()  # command lines are still remembered
    on_disk = everything_under(home_dir)
    if backend == "plain":  # what the check would catch: without encryption it is there
        assert marker.encode() in on_disk
        return
    assert marker.encode() not in on_disk
    if backend == "redis":
        from redis import Redis

        assert marker.encode() not in redis_values(Redis.from_url(url))
