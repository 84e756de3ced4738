"""`-c/--continue`: the last session this user talked in, per specialist (`apollo -c`) or with
any (`aish -c`), kept across processes; the new session's id on a terminal's stderr; one-off
questions logged as ended one-offs. Replies come from the scripted server (`env`, `server`)."""

from __future__ import annotations

import json
import shlex
import stat
from pathlib import Path

from conftest import run
from shell_support import Term, shell_env

from aish.errors import NOT_FOUND, USAGE
from aish.store.filestore import FileStore


def new_session(env, ai: str, text: str) -> str:
    done = run(env, ai, "--session", "--get-id", input=text)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


def say(env, *args: str, input: str | None = None):
    done = run(env, *args, input=input)
    assert done.returncode == 0, done.stderr.decode()
    return done


def sent_users(server) -> list[str]:
    return [m["content"] for m in server.last_messages if m["role"] == "user"]


def one_line_error(done) -> str:
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aish: error: "), lines
    return lines[0]


def test_c_continues_the_last_session_per_specialist_and_with_any(env, server, sessions_dir):
    a = new_session(env, "apollo", "a1")
    b = new_session(env, "athena", "b1")
    new_session(env, "hermes", "h1")
    say(env, "athena", "--session", b, "b2")  # athena's last is still b
    assert say(env, "apollo", "-c", "a2").stdout.decode() == "ok: a2\n"
    assert sent_users(server) == ["a1", "a2"]
    say(env, "athena", "--continue", input="b3\n")
    assert sent_users(server) == ["b1", "b2", "b3"]
    # `aish -c`: whoever was talked to last (athena), in that session, as that specialist.
    say(env, "aish", "-c", "any1")
    assert sent_users(server) == ["b1", "b2", "b3", "any1"]
    assert server.last_messages[0]["content"].startswith("You are Athena")
    say(env, "apollo", "-c", "a3")
    say(env, "aish", "--continue", input="any2")
    assert sent_users(server) == ["a1", "a2", "a3", "any2"]
    store = FileStore(sessions_dir)
    assert len(store.ids()) == 3  # nothing new was started
    assert [m.content for m in store.load(a).messages if m.role == "user"] == [
        "a1", "a2", "a3", "any2"]


def test_the_memory_is_a_private_file_of_this_user(env, server, home):
    sid = new_session(env, "apollo", "hi")
    path = Path(home["HOME"]) / ".aish" / "last-sessions.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [e["sid"] for e in json.loads(path.read_text())["entries"]] == [sid]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".last-sessions-")]
    path.write_text("{not json")  # a damaged file only forgets
    done = run(env, "apollo", "-c", "again")
    assert done.returncode == NOT_FOUND and "no earlier session with apollo-ai" in \
        one_line_error(done)
    say(env, "apollo", "--session", sid, "back")
    assert say(env, "apollo", "-c", "and on").stdout.decode() == "ok: and on\n"


def test_nothing_to_continue_or_removed_is_one_line(env, server, sessions_dir):
    done = run(env, "aish", "-c", "hello")
    assert done.returncode == NOT_FOUND
    assert "no earlier session to continue" in one_line_error(done)
    sid = new_session(env, "apollo", "hi")
    done = run(env, "athena", "-c", "hello")
    assert done.returncode == NOT_FOUND and "with athena-ai" in one_line_error(done)
    say(env, "aish", "--remove-sessions", "--ai", "apollo")
    before = len(server.requests)
    done = run(env, "apollo", "-c", "hello")
    assert done.returncode == NOT_FOUND
    assert f"your last session with apollo-ai, {sid}, no longer exists" in one_line_error(done)
    assert len(server.requests) == before and FileStore(sessions_dir).ids() == []


def test_c_reopens_an_ended_session(env, server, sessions_dir):
    sid = new_session(env, "apollo", "hi")
    say(env, "apollo", "--session", sid, "--end")
    say(env, "apollo", "-c", "still there?")
    summary = FileStore(sessions_dir).summary(sid)
    assert summary.header.state.value == "active" and summary.user_messages == 2


def test_c_with_a_named_session_is_a_usage_error(env, server, sessions_dir):
    new_session(env, "apollo", "hi")
    for args in (("apollo", "-c", "--session", "sess_abc123", "x"),
                 ("apollo", "-c", "--session-id", "mine", "x"),
                 ("apollo", "-c", "--template", "t", "x"),
                 ("aish", "--session", "apollo", "-c", "--session-id", "mine")):
        done = run(env, *args)
        assert done.returncode == USAGE, args
        assert "-c/--continue" in one_line_error(done) or "--template" in done.stderr.decode()
    assert len(FileStore(sessions_dir).ids()) == 1 and len(server.requests) == 1


def test_new_session_id_on_stderr_only_at_a_terminal(env, server, tmp_path, terms):
    piped = say(env, "apollo", "--session", input="hello")
    assert piped.stdout.decode() == "ok: hello\n" and b"session:" not in piped.stderr
    out = tmp_path / "reply.txt"
    script = f"echo hello there | apollo --session > {shlex.quote(str(out))}"
    term = Term(shell_env(env), "-c", script, program="/bin/bash")
    terms.append(term)
    found = term.expect(r"session: (sess_\w+) \(continue with --session (sess_\w+) or -c\)")
    assert found[1] == found[2]
    assert term.wait() == 0
    assert out.read_text() == "ok: hello there\n"  # stdout holds the reply alone
    assert "session:" not in term.text[: found.start()]
    # Continuing a session, or asking for the id, prints no such line.
    term = Term(shell_env(env), "-c", f"echo more | apollo --session {found[1]} > /dev/null; "
                f"echo hi | apollo --session --get-id; echo done", program="/bin/bash")
    terms.append(term)
    term.expect(r"sess_\w+")  # --get-id's id on stdout
    term.expect("done")
    assert term.wait() == 0 and "session:" not in term.text


def test_session_mode_c_shows_the_last_exchanges_first(env, server, terms):
    sid = new_session(env, "apollo", "first question")
    say(env, "apollo", "--session", sid, "second question")
    say(env, "apollo", "--session", sid, "third \x1b[31mquestion")
    say(env, "athena", "elsewhere")  # another specialist's one-off changes nothing for apollo
    term = Term(shell_env(env), "--session", "apollo", "-c")
    terms.append(term)
    term.expect(f"Session ID: {sid}")
    term.expect("Last exchanges:")
    term.expect(r"you: second question\s+apollo-ai: ok: second question")
    term.expect(r"you: third .*question\s+apollo-ai: ok: third")
    term.expect(r"apollo \(session: ")
    assert "first question" not in term.text
    term.line("fourth")
    term.expect("ok: fourth")
    assert sent_users(server)[-4:] == ["first question", "second question",
                                      "third \x1b[31mquestion", "fourth"]
    term.send("\x04")
    assert term.wait() == 0


def test_one_offs_are_logged_ended_and_hidden(env, server, sessions_dir):
    a = new_session(env, "apollo", "in a session")
    assert say(env, "athena", "a quick one").stdout.decode() == "ok: a quick one\n"
    say(env, "hermes", input="and another\n")
    store = FileStore(sessions_dir)
    oneoffs = [s for s in (store.summary(i) for i in store.ids()) if s.id != a]
    assert sorted(s.owner for s in oneoffs) == ["athena", "hermes"]
    assert all(s.header.oneshot and s.header.state.value == "ended" and s.messages == 2
               for s in oneoffs)
    listed = say(env, "aish", "--list-sessions").stdout.decode()
    assert a in listed and not any(s.id in listed for s in oneoffs)
    rows = json.loads(say(env, "aish", "--list-sessions", "--json").stdout)
    assert [r["id"] for r in rows] == [a]
    everything = say(env, "aish", "--list-sessions", "--all").stdout.decode().splitlines()
    marks = {line.split()[0]: line.split()[2] for line in everything[1:]}
    assert marks == {a: "active", **{s.id: "one-off" for s in oneoffs}}
    rows = json.loads(say(env, "aish", "--list-sessions", "--all", "--json").stdout)
    assert {r["id"]: (r["state"], r.get("oneshot")) for r in rows} == {
        a: ("active", None), **{s.id: ("ended", True) for s in oneoffs}}
    # Cleanup removes them as it removes ended sessions.
    say(env, "aish", "--cleanup-sessions")
    assert FileStore(sessions_dir).ids() == [a]


def test_one_offs_count_toward_no_limit(env, server, sessions_dir):
    new_session(env, "apollo", "the one allowed")
    limited = {**env, "AISH_MAX_SESSIONS": "1"}
    refused = run(limited, "apollo", "--session", input="another")
    assert refused.returncode != 0 and "too many active sessions" in refused.stderr.decode()
    for n in range(3):
        assert say(limited, "apollo", f"q{n}").stdout.decode() == f"ok: q{n}\n"
    assert len(FileStore(sessions_dir).ids()) == 4


def test_c_after_a_one_off_reopens_it(env, server, sessions_dir):
    new_session(env, "apollo", "an older session")
    say(env, "apollo", "what is a monad?")
    say(env, "apollo", "-c", "an example please")
    assert sent_users(server) == ["what is a monad?", "an example please"]
    store = FileStore(sessions_dir)
    (reopened,) = [s for s in (store.summary(i) for i in store.ids()) if s.messages == 4]
    assert reopened.header.state.value == "active" and not reopened.header.oneshot
    listed = say(env, "aish", "--list-sessions").stdout.decode()
    assert reopened.id in listed


def test_log_oneshots_off_stores_nothing(env, server, home, sessions_dir):
    config = Path(home["HOME"]) / ".aish" / "config.yaml"
    config.write_text(config.read_text() + "sessions:\n  log_oneshots: false\n")
    assert say(env, "apollo", "not kept").stdout.decode() == "ok: not kept\n"
    assert not sessions_dir.exists() or FileStore(sessions_dir).ids() == []
    done = run(env, "apollo", "-c", "so?")
    assert done.returncode == NOT_FOUND
    config.write_text(config.read_text().replace("false", "maybe"))
    bad = run(env, "apollo", "x")
    assert bad.returncode == 8 and "sessions.log_oneshots" in bad.stderr.decode()


def test_a_failed_one_off_keeps_the_question_for_a_retry(env, server, sessions_dir):
    server.script = ["500"]
    done = run(env, "apollo", "will it fail?")
    assert done.returncode == 4
    (sid,) = FileStore(sessions_dir).ids()
    assert f"{sid} --retry" in done.stderr.decode()
    say(env, "apollo", "-c", "--retry")
    assert sent_users(server) == ["will it fail?"]
    assert FileStore(sessions_dir).summary(sid).messages == 2


def test_c_stays_within_the_store_it_was_talked_in(env, server, tmp_path):
    sid = new_session(env, "apollo", "in the default store")
    other = {**env, "AISH_SESSION_DIR": str(tmp_path / "elsewhere")}
    done = run(other, "apollo", "-c", "here?")
    assert done.returncode == NOT_FOUND and "no earlier session" in one_line_error(done)
    say(other, "apollo", "a session over there")
    say(env, "apollo", "-c", "back home")
    assert sent_users(server) == ["in the default store", "back home"]
    assert sid in say(env, "aish", "--list-sessions").stdout.decode()


def test_c_and_one_offs_on_a_redis_store(env, server, home, redis_url):
    configure = Path(home["HOME"]) / ".aish" / "config.yaml"
    configure.write_text(configure.read_text()
                         + f"sessions:\n  storage: {{type: redis, url: '{redis_url}'}}\n")
    say(env, "apollo", "a one-off on redis")
    assert say(env, "aish", "--list-sessions").stdout.strip() == b""
    everything = say(env, "aish", "--list-sessions", "--all").stdout.decode()
    assert "one-off" in everything
    say(env, "apollo", "-c", "continued on redis")
    assert sent_users(server) == ["a one-off on redis", "continued on redis"]
    rows = json.loads(say(env, "aish", "--list-sessions", "--json").stdout)
    assert [(r["state"], r["messages"], r.get("oneshot")) for r in rows] == [
        ("active", 4, None)]


def test_c_follows_a_rename(env, server, sessions_dir):
    a = new_session(env, "apollo", "a1")
    say(env, "aish", "--rename-session", a, "renamed-one")
    say(env, "apollo", "-c", "a2")
    say(env, "aish", "-c", "a3")
    assert sent_users(server) == ["a1", "a2", "a3"]
    store = FileStore(sessions_dir)
    assert store.ids() == ["renamed-one"]
