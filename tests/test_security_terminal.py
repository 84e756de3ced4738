"""Stored and model text never drives the terminal: every command that prints session content,
run in a real pty, shows no escape sequence from it (OSC 52 clipboard writes, OSC 8 links,
clear-screen, bidi tricks)."""

from __future__ import annotations

import time
from pathlib import Path

import pexpect
import pytest
from conftest import BIN

from aish.messages import ASSISTANT, USER, Message
from aish.store.filestore import FileStore
from aish.store.redisstore import RedisStore

OSC52 = "\x1b]52;c;cm0gLXJmIH4=\x07"
HOSTILE = f"before{OSC52}\x1b[2J\x1b]8;;http://evil.example/\x07link\x1b]8;;\x07\u202eright\r"
PAYLOADS = ("]52;", "[2J", "]8;;")


@pytest.fixture(params=["file", "redis"])
def hostile(request, home, server):
    """A HOME whose store holds a session full of escape sequences, as another machine (or a
    hostile model) could have left it."""
    cfg = Path(home["HOME"]) / ".aish" / "config.yaml"
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        cfg.write_text(cfg.read_text() + f"sessions:\n  storage: {{type: redis, url: '{url}'}}\n")
        store = RedisStore(url)
    else:
        store = FileStore(Path(home["HOME"]) / ".aish" / "sessions")
    now = time.time()
    store.create({"id": "evil", "owner": "apollo", "created": now, "updated": now,
                  "state": "active", "shared": True, "context_window": 10,
                  "participants": ["apollo", f"mallory{OSC52}"],
                  "origin": {"template": f"t{OSC52}"}},
                 [Message(USER, HOSTILE, "apollo", now),
                  Message(ASSISTANT, HOSTILE, f"mallory{OSC52}", now + 1)])
    return {**home, "NO_COLOR": "1", "OPENAI_BASE_URL": server.base,
            "OPENAI_API_KEY": "k", "TERM": "xterm"}


def in_pty(env: dict, *args: str, input: str | None = None) -> tuple[int, str]:
    program, *rest = args
    child = pexpect.spawn(str(BIN / program), rest, env=env, encoding="utf-8",
                          codec_errors="replace", timeout=60, dimensions=(50, 200))
    if input is not None:
        child.sendline(input)
        child.sendeof()
    output = child.read()
    child.close()
    return child.exitstatus, output


COMMANDS = [
    ("aish", "--session-info", "evil"),
    ("aish", "--session-info", "evil", "--json"),
    ("aish", "--list-sessions", "--all"),
    ("aish", "--list-sessions", "--all", "--json"),
    ("aish", "--save-session", "evil"),
    ("aish", "--export-session", "evil"),
    ("aish", "--export-sessions"),
    ("aish", "--session-stats"),
    ("aish", "--validate-session", "evil"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[1:]))
def test_reports_in_a_terminal_show_no_escape_sequences(hostile, command):
    status, output = in_pty(hostile, *command)
    assert status in (0, 1), output  # validate may report problems (1)
    assert "\x1b" not in output, repr(output)
    assert "\u202e" not in output
    assert "evil" in output or "mallory" in output  # the command did print the session


def test_a_hostile_reply_is_neutralised_as_it_streams(hostile, server):
    server.reply = f"Sure.{OSC52} Done\x1b[2J now"
    status, output = in_pty({k: v for k, v in hostile.items() if k != "NO_COLOR"},
                            "apollo", "--session-id", "fresh", "hello")
    assert status == 0, output
    for payload in PAYLOADS:
        assert "\x1b" + payload not in output, repr(output)
    assert "Sure." in output and "Done" in output


def test_errors_that_quote_input_are_neutralised(hostile):
    status, output = in_pty(hostile, "aish", "--session-info", f"x{OSC52}")
    assert status == 2
    assert "\x1b" not in output, repr(output)


def test_raw_text_stays_raw_when_piped(hostile):
    """Outside a terminal the stored text is data: a pipe gets it byte for byte in JSON."""
    from conftest import run

    result = run(hostile, "aish", "--save-session", "evil")
    assert result.returncode == 0
    assert b"\\u001b]52" in result.stdout or OSC52.encode() in result.stdout
