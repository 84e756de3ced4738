"""The pipe face never loses a reply and never crashes on output, run through the real console
scripts against the scripted server: a reader that leaves early, Ctrl-C mid-reply, stdout that
is not UTF-8, and stdin that is not valid UTF-8."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
from conftest import BIN, run

from aish.errors import BROKEN_PIPE, INTERRUPTED

HOSTILE = "\x1b[31mred\x1b[0m \x1b]52;c;ZXZpbA==\x07 caf\u00e9 \u4e2d\u6587 \U0001f600 end"


def new_session(env: dict) -> str:
    made = run(env, "apollo", "--session", "--get-id", input="hello")
    assert made.returncode == 0, made.stderr.decode()
    return made.stdout.decode().strip()


def stored(env: dict, sid: str) -> list[dict]:
    saved = run(env, "aish", "--save-session", sid)
    assert saved.returncode == 0, saved.stderr.decode()
    return json.loads(saved.stdout)["messages"]


def start(env: dict, *args: str, **extra_env: str) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / args[0]), *args[1:]], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**env, **extra_env})


def test_reader_that_leaves_early_still_gets_the_reply_stored(env, server):
    sid = new_session(env)
    # Far more than a pipe holds, so the writer is still writing when the reader leaves.
    reply = "".join(f"line {i} of a long answer\n" for i in range(6000))
    server.reply = reply
    server.piece_size = 512
    proc = start(env, "apollo", "--session", sid)
    proc.stdin.write(b"tell me everything")
    proc.stdin.close()
    assert proc.stdout.read(1) == b"l"  # `| head -c 1`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == BROKEN_PIPE, err
    assert err == "", err  # no traceback, no "Exception ignored ... BrokenPipeError"
    messages = stored(env, sid)
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[2]["content"] == "tell me everything"
    assert messages[3]["content"] == reply
    assert not messages[3].get("interrupted")


def head(env: dict, command: str, count: int) -> tuple[bytes, int]:
    """``command | head -c count`` in bash: what head printed and the command's exit status."""
    result = subprocess.run(f"{command} | head -c {count}; echo \" ${{PIPESTATUS[0]}}\"",
                            shell=True, env=env, capture_output=True, timeout=120,
                            executable="/bin/bash")
    assert result.stderr == b"", result.stderr.decode()  # quiet: no traceback, no warning
    shown, _, status = result.stdout.rpartition(b" ")
    return shown, int(status)


def test_reader_that_leaves_a_one_shot_or_a_listing_exits_quietly(env, server):
    server.reply = "word " * 40000
    server.piece_size = 512
    assert head(env, f"{BIN}/apollo 'say a lot'", 3) == (b"wor", BROKEN_PIPE)
    for _ in range(3):
        new_session(env)
    shown, status = head(env, f"{BIN}/aish --list-sessions --all --json", 1)
    assert shown == b"[" and status in (0, BROKEN_PIPE)  # small output may fit the pipe


def test_ctrl_c_mid_reply_exits_130_and_keeps_what_arrived(env, server):
    sid = new_session(env)
    server.mode = "stall_mid"  # one piece, then nothing: the user gives up and presses Ctrl-C
    server.stall_seconds = 90
    server.reply = "first-piece and the rest never comes"
    proc = start(env, "apollo", "--session", sid)
    proc.stdin.write(b"a slow question")
    proc.stdin.close()
    shown = proc.stdout.read(6)
    assert shown == b"first-"  # the first chunk reached stdout
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == INTERRUPTED
    assert proc.stdout.read() == b"\n"  # the cut reply still ends its line
    lines = proc.stderr.read().decode().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0] and sid in lines[0], lines
    server.stop()  # let the stalled handler go
    last = stored(env, sid)[-1]
    assert last["role"] == "assistant" and last["content"] == "first-"
    assert last["interrupted"] is True


@pytest.mark.parametrize("encoding, expected", [
    ("ascii", "^[red^[ ^[ caf? ?? ? end"),
    ("latin-1", "^[red^[ ^[ caf\u00e9 ?? ? end"),
    ("cp1252", "^[red^[ ^[ caf\u00e9 ?? ? end"),
    ("utf-8", "\u241bred\u241b \u241b caf\u00e9 \u4e2d\u6587 \U0001f600 end"),
])
def test_stdout_that_is_not_utf8_gets_readable_output_and_the_reply_stored(
        env, server, encoding, expected):
    sid = new_session(env)
    server.reply = HOSTILE
    result = run(env, "apollo", "--session", sid, input="show me", PYTHONIOENCODING=encoding)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode(encoding) == expected + "\n"
    assert b"\x1b" not in result.stdout
    assert stored(env, sid)[-1]["content"] == HOSTILE  # verbatim, escapes and all
    one_shot = run(env, "apollo", "and once more", PYTHONIOENCODING=encoding)
    assert one_shot.returncode == 0 and one_shot.stdout.decode(encoding) == expected + "\n"


def test_invalid_utf8_on_stdin_is_replaced_and_noted(env, server):
    sid = new_session(env)
    piped = run(env, "apollo", "--session", sid, input=b"caf\xe9 \xff\xfe ok")
    assert piped.returncode == 0, piped.stderr.decode()
    assert b"not valid UTF-8" in piped.stderr and b"Traceback" not in piped.stderr
    assert stored(env, sid)[-2]["content"] == "caf\ufffd \ufffd\ufffd ok"

    lines = run(env, "aish", "--session", "apollo", "--session-id", "learn",
                input=b"first \xff line\nsecond line\nexit\n")
    err = lines.stderr.decode()
    assert lines.returncode == 0, err
    assert "not valid UTF-8" in err and "Traceback" not in err and "error" not in err, err
    users = [m["content"] for m in stored(env, "learn") if m["role"] == "user"]
    assert users == ["first \ufffd line", "second line"]
    assert server.requests[-2]["messages"][-1]["content"] == "first \ufffd line"


def test_lone_surrogates_never_poison_a_session(env, server):
    """Undecodable argv bytes and an unpaired surrogate in a stream are replaced on the way
    in, so the next request (which carries them as history) can still be sent."""
    server.reply = "bad \ud800 half"
    sid = new_session(env)
    again = run(env, "apollo", "--session", sid, "x\udcffy")  # argv holding the byte 0xff
    assert again.returncode == 0, again.stderr.decode()
    assert again.stdout.decode() == "bad \ufffd half\n"
    assert b"not valid UTF-8" in again.stderr
    assert [m["content"] for m in stored(env, sid)][1:] == [
        "bad \ufffd half", "x\ufffdy", "bad \ufffd half"]
    assert server.requests[-1]["messages"][-1]["content"] == "x\ufffdy"


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_session_mode_on_a_stdout_that_is_not_utf8(env, server, encoding):
    server.reply = HOSTILE
    result = run(env, "aish", "--session", "apollo", "--session-id", "narrow",
                 input="show me\nexit\n", PYTHONIOENCODING=encoding)
    assert result.returncode == 0, result.stderr.decode()
    shown = result.stdout.decode(encoding)
    assert "red" in shown and " end" in shown and "\x1b" not in shown
    assert [m["content"] for m in stored(env, "narrow")] == ["show me", HOSTILE]


def test_a_closed_stdout_or_stderr_is_no_traceback(env):
    # `>&-` / `2>&-`: Python sees no stream at all; aish writes nowhere and keeps its exit code.
    stored = subprocess.run("echo hi | apollo --session-id closed >&-", shell=True, env=env,
                            capture_output=True, timeout=600)
    assert stored.returncode == 0 and b"Traceback" not in stored.stderr, stored.stderr
    listed = subprocess.run("aish --list-sessions >&-", shell=True, env=env,
                            capture_output=True, timeout=600)
    assert listed.returncode == 0 and listed.stderr == b"", listed.stderr
    missing = subprocess.run("aish --session-info nosuch 2>&-", shell=True, env=env,
                             capture_output=True, timeout=600)
    assert missing.returncode == 3 and missing.stdout == b""
    saved = run(env, "aish", "--save-session", "closed")
    assert saved.returncode == 0 and b'"hi"' in saved.stdout
