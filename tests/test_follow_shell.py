"""`follow` in session mode, in a real pty: others' messages appear as they are stored, and
Ctrl-C or `q` comes back to the session prompt, with the terminal as it was."""

from __future__ import annotations

from conftest import run
from follow_support import Gate, Program, until
from shell_support import Term, shell_env

from aish import config as config_module
from aish.store import open_store


def new_session(env: dict) -> str:
    done = run(env, "apollo", "--session", "--get-id", input="start")
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


def test_follow_shows_others_and_ctrl_c_or_q_return_to_the_prompt(env, terms):
    sid = new_session(env)
    t = Term(shell_env(env), "--session", sid, program="apollo")
    terms.append(t)
    t.expect(r"\(session: ")
    t.line("follow")
    t.expect(r"Following session .*; Ctrl-C or q stops")
    t.expect(r"apollo> ok: start")  # the recap
    done = run(env, "apollo", "--session", sid, input="from elsewhere")
    assert done.returncode == 0, done.stderr.decode()
    t.expect(r"user to apollo> from elsewhere")
    t.expect(r"ok: from elsewhere")
    t.send("\x03")
    t.expect(f"Stopped following session {sid}")
    t.expect(r"apollo \(session\)> ")
    t.line("follow --last 0")
    t.expect(r"Following session")
    t.send("q")
    t.expect(f"Stopped following session {sid}")
    t.expect(r"apollo \(session\)> ")
    # The prompt works as before: typed text is echoed and sent.
    t.line("back here")
    t.expect(r"ok: back here")
    t.line("exit")
    t.expect("Session ended")
    assert t.wait() == 0


def test_the_shell_waits_for_the_floor_and_says_who_holds_it(env, terms, server):
    sid = new_session(env)
    t = Term(shell_env(env), "--session", sid, program="apollo")
    terms.append(t)
    t.expect(r"\(session: ")
    gate = Gate(["held ", "reply"])
    server.chunks = gate
    other = Program(env, "apollo", "--session", sid, input="first")
    until(lambda: gate.requests == 1, "the other reply is streaming")
    t.line("second")
    t.expect(r"is asking apollo… \(waiting for that reply to finish\)")
    assert gate.requests == 1
    t.send("\x03")  # giving up: nothing is stored, and the next prompt holds the message
    t.expect(r"not sent: stopped waiting for the reply on branch main")
    t.expect(r"apollo \(session\)> second")
    t.send("\r")
    t.expect(r"is asking apollo… \(waiting for that reply to finish\)")
    gate.release()
    assert other.finish() == 0, other.stderr
    t.expect(r"apollo> held reply")
    until(lambda: gate.requests == 2, "the shell's request went out after")
    t.line("exit")
    t.expect("Session ended")
    assert t.wait() == 0
    loaded = open_store(config_module.load(env)).load(sid)
    assert [m.content for m in loaded.messages if m.role == "user"] == ["start", "first",
                                                                        "second"]


def test_at_a_terminal_the_streaming_reply_shows_before_it_is_complete(env, terms, server):
    sid = new_session(env)
    t = Term(shell_env(env), "--follow-session", sid)
    terms.append(t)
    t.expect(r"Following session .*; Ctrl-C or q stops")
    t.expect(r"ok: start")
    gate = Gate(["a first paragraph ", "that goes on\n\nand a second one."])
    server.chunks = gate
    other = Program(env, "apollo", "--session", sid, input="talk")
    t.expect(r"user to apollo> talk")
    t.expect(r"apollo> a first paragraph")  # the open block, before the rest was sent
    assert gate.requests == 1 and not gate.opened.is_set()
    gate.release()
    assert other.finish() == 0, other.stderr
    t.expect(r"and a second one\.")
    t.send("q")
    t.expect(f"Stopped following session {sid}")
    assert t.wait() == 0
