"""The user guide's examples as a newcomer runs them, and the edges such a newcomer hits: the real
programs in a pipe or a pty, replies from the scripted server (tests/fault_server.py)."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from shell_support import BIN, Term, session_records

from aish.errors import CONFIG, NOT_FOUND, STORAGE, USAGE


def one_error_line(result: subprocess.CompletedProcess) -> str:
    err = result.stderr.decode()
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aish: error: "), err
    return lines[0]


def test_the_guides_interactive_session_mode_transcript(env, terms, sessions_dir):
    """`aish --session apollo`, two messages, `save`, `context`, `exit`, as the guide shows."""
    t = Term({**env, "TERM": "xterm-256color"}, "--session", "apollo")
    terms.append(t)
    t.expect("Welcome to session mode with apollo-ai")
    sid = t.expect(r"Session ID: (sess_[a-z0-9]+)").group(1)
    t.expect("Type 'exit' to end session, 'save' to save context")
    t.line("Hello, I need help with database design")
    t.expect("apollo> ok: Hello, I need help with database design")
    t.line("It's a social media platform")
    t.expect("apollo> ok: It's a social media platform")
    t.line("save")
    t.expect(rf"Session saved to ~/.aish/sessions/{sid}")
    t.line("context")
    t.expect(r"Using 2/10 context window")
    t.line("exit")
    t.expect("Session ended")
    assert t.wait() == 0
    assert [r["content"] for r in session_records(sessions_dir, sid) if r["t"] == "msg"] == [
        "Hello, I need help with database design", "ok: Hello, I need help with database design",
        "It's a social media platform", "ok: It's a social media platform"]


def test_session_mode_help_keeps_every_description_in_its_column(env):
    """A usage longer than the column puts its description on the next line, as `aish --help`
    does, instead of pushing it out of line."""
    result = subprocess.run([str(BIN / "aish")], input=b"apollo --session\nhelp\nexit\n",
                            capture_output=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    start = lines.index("Session commands (also as /save, /context, ...):") + 1
    entries = lines[start:lines.index("", start)]
    assert any(line.startswith("  follow [--branch NAME]") for line in entries)
    column = 29  # "  " + a 26-character usage column + " "
    for i, line in enumerate(entries):
        if line.startswith(" " * column):
            continue  # the description under a long usage
        if line[column - 1] == " " and line[column] != " ":
            continue  # usage and description on one line
        # A usage too long for its column stands alone; its description follows, in line.
        follower = entries[i + 1]
        assert follower.startswith(" " * column) and follower[column] != " ", (line, follower)


def test_a_pipeline_typed_at_the_aish_prompt_points_to_the_system_shell(env, terms):
    t = Term({**env, "TERM": "xterm-256color"})
    terms.append(t)
    t.expect("aish> ")
    t.line('echo "Hello" | apollo --session --get-id')
    t.expect(r"unknown command or specialist 'echo' \(pipes and redirections are your "
             r"system shell's: run the line there, outside aish")
    t.expect("aish> ")
    t.line("exit")
    assert t.wait() == 0


def test_session_and_session_id_naming_two_sessions_is_a_usage_error(aish, env, sessions_dir):
    result = aish("apollo", "--session", "first", "--session-id", "second", "hi")
    assert result.returncode == USAGE
    line = one_error_line(result)
    assert "--session first and --session-id second name two different sessions" in line
    assert not list(sessions_dir.glob("*.jsonl")) if sessions_dir.exists() else True
    # The guide's own spelling, `--session --session-id NAME`, and the same id twice still work.
    for argv in (["--session", "--session-id", "second"],
                 ["--session", "second", "--session-id", "second"]):
        assert aish("apollo", *argv, "hi", **env).returncode == 0
    assert len([r for r in session_records(sessions_dir, "second") if r["t"] == "msg"]) == 4


def test_a_word_after_session_that_names_no_session_shows_the_message_form(aish, env):
    result = aish("apollo", "--session", "hello", **env)
    assert result.returncode == NOT_FOUND
    line = one_error_line(result)
    assert "session hello not found" in line
    assert "apollo --session -- hello" in line
    started = aish("apollo", "--session", "--", "hello", **env)  # the form it suggests works
    assert started.returncode == 0 and started.stdout.decode() == "ok: hello\n"


def test_listing_columns_stay_aligned_with_long_names_and_unlimited_windows(aish, env):
    long_name = "n" * 64
    for argv in (["--session-id", long_name], ["--session", "--context-window", "0"],
                 ["--session-id", "short"]):
        assert aish("apollo", *argv, "hi", **env).returncode == 0
    result = aish("aish", "--list-sessions")
    assert result.returncode == 0
    header, *rows = result.stdout.decode().splitlines()
    assert len(rows) == 3
    ai_at = header.index(" AI ") + 1
    window_end = header.index("WINDOW") + len("WINDOW")
    for row in rows:
        assert row[ai_at:].startswith("apollo-ai"), (header, row)
        assert row[:window_end].endswith(("1/10", "1/unlimited")), (header, row)
    assert any(row.startswith(long_name + " ") for row in rows)


def test_a_stdout_that_refuses_writes_is_named_and_the_exchange_is_kept(aish, env, home,
                                                                         sessions_dir):
    with open("/dev/full", "wb") as full:
        reply = subprocess.run([str(BIN / "apollo"), "--session-id", "kept", "a long message "
                                "that streams in several pieces"], stdout=full,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
                               timeout=600)
        listing = subprocess.run([str(BIN / "aish"), "--list-sessions"], stdout=full,
                                 stderr=subprocess.PIPE, env=home, timeout=600)
    for result in (reply, listing):
        assert result.returncode == STORAGE
        assert one_error_line(result) == \
            "aish: error: cannot write standard output: No space left on device"
    info = json.loads(aish("aish", "--session-info", "kept", "--json").stdout)
    assert info["messages"] == 2
    contents = [r["content"] for r in session_records(sessions_dir, "kept") if r["t"] == "msg"]
    assert contents[1] == "ok: a long message that streams in several pieces"


def test_config_errors_name_no_bound_the_value_is_within(aish):
    result = aish("aish", "--list-sessions", AISH_MAX_SESSIONS="0")
    assert result.returncode == CONFIG
    line = one_error_line(result)
    assert line.endswith("sessions.limits.max_sessions: expected a whole number >= 1, got 0")
    huge = aish("aish", "--list-sessions", AISH_DEFAULT_CONTEXT="9" * 20)
    assert re.search(r"expected a whole number >= 0 up to 2\*\*53, got '9+'$",
                     one_error_line(huge))


def test_a_blank_message_is_no_message_and_nothing_is_sent(aish, env, server):
    for argv, stdin in ((["apollo", ""], None), (["apollo"], "   \n"),
                        (["apollo", "--session"], " \t \n")):
        result = aish(*argv, input=stdin, **env)
        assert result.returncode == USAGE, result.stderr.decode()
        assert "no message given" in one_error_line(result)
    assert server.requests == []
    assert json.loads(aish("aish", "--list-sessions", "--all", "--json").stdout) == []


@pytest.mark.parametrize(("config", "argv", "expected"), [
    ("sessions:\n  defaults: {auto_save: maybe}\n", ["aish", "--list-sessions"],
     "sessions.defaults.auto_save: expected true, false or a whole number >= 0, got 'maybe'"),
    # A specialist called `help` would hide `aish help`; `aish` or `exit` could not be reached.
    ("specialists:\n  help: {persona: a helper}\n", ["aish", "help"],
     "specialists: 'help' is a word of aish's own"),
])
def test_config_mistakes_a_newcomer_makes_are_named(aish, home, config, argv, expected):
    with open(f"{home['HOME']}/.aish/config.yaml", "a") as f:
        f.write(config)
    result = aish(*argv)
    assert result.returncode == CONFIG
    assert expected in one_error_line(result)


def test_a_missing_generated_id_gets_no_message_hint(aish):
    result = aish("apollo", "--session", "sess_abc123", "hi")
    assert result.returncode == NOT_FOUND
    line = one_error_line(result)
    assert "session sess_abc123 not found" in line and "first message" not in line


def test_the_shell_with_stdin_closed_is_an_empty_script(home):
    for argv in ("aish", "aish --session apollo"):
        result = subprocess.run(["sh", "-c", f'exec {BIN}/{argv} <&-'], capture_output=True,
                                env=home, timeout=600)
        assert result.returncode == 0, result.stderr.decode()
        assert "Traceback" not in result.stderr.decode()


def test_help_shows_that_the_session_id_may_be_left_out(aish):
    """`echo "Hello" | apollo --session` is the guide's first example: help must not read as if
    --session needed an ID."""
    text = aish("apollo", "--help").stdout.decode()
    assert text.startswith("usage: apollo [--session [ID]] [--session-id ID] ")
    assert "\n  --session [ID]  " in text


def test_a_double_dash_ends_aishs_own_options(aish, env):
    result = aish("aish", "--", "apollo", "hi", **env)
    assert result.returncode == 0 and result.stdout.decode() == "ok: hi\n"
    refused = aish("aish", "--", "--list-sessions")
    assert refused.returncode == USAGE
    assert "after '--' comes a specialist's name, not '--list-sessions'" in one_error_line(refused)


def test_an_endpoint_that_is_no_url_is_said_at_once_and_the_message_kept(aish, server):
    result = aish("apollo", "--session-id", "noturl", "hi",
                  OPENAI_BASE_URL="me:s3cret@localhost:8080/v1", OPENAI_API_KEY="k")
    assert result.returncode == 4
    line = one_error_line(result)
    assert "localhost:8080/v1: not an http:// or https:// URL (from environment " \
        "OPENAI_BASE_URL)" in line
    assert "s3cret" not in line and "retrying" not in result.stderr.decode()
    info = json.loads(aish("aish", "--session-info", "noturl", "--json").stdout)
    assert info["messages"] == 1  # kept, to retry once the URL is fixed
    retried = aish("apollo", "--session", "noturl", "--retry", OPENAI_BASE_URL=server.base,
                   OPENAI_API_KEY="k")
    assert retried.returncode == 0 and retried.stdout.decode() == "ok: hi\n"
