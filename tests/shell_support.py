"""Helpers for the shell tests: a pty driver for the real `aish`. Replies come from the scripted
OpenAI-compatible server in tests/fault_server.py (``FaultServer(chunks=..., delay=...)``)."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pexpect
import pytest

BIN = Path(sys.executable).parent

# Control sequences as a terminal sees them (CSI, OSC, two-character ESC x), plus CR.
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[ -~]|\r")
CPR_REQUEST = "\x1b[6n"


def strip_controls(text: str) -> str:
    return _CONTROL.sub("", text)


def shell_env(home: dict, **extra: str) -> dict:
    """The `home` fixture's environment, made fit for a pty: a real TERM, isolated state dir."""
    env = {k: v for k, v in home.items() if not k.startswith("XDG_")}
    env["TERM"] = "xterm-256color"
    env.pop("NO_COLOR", None)
    env.update(extra)
    return env


class Term:
    """The real `aish` (or another console script) in a pseudo-terminal.

    Output is kept whole (``raw``) and with control sequences removed (``text``); `expect`
    searches the text after the previous match. Cursor-position requests are answered the
    way a terminal would, so prompt_toolkit draws its toolbar and menus.
    """

    def __init__(self, env: dict, *args: str, program: str = "aish", cwd: str | None = None,
                 rows: int = 40, cols: int = 120):
        self.child = pexpect.spawn(str(BIN / program), list(args), env=env, cwd=cwd,
                                   encoding="utf-8", codec_errors="replace",
                                   dimensions=(rows, cols))
        self.rows = rows
        self._raw: list[str] = []
        self._answered = 0
        self._mark = 0
        self.eof = False

    @property
    def raw(self) -> str:
        return "".join(self._raw)

    @property
    def text(self) -> str:
        return strip_controls(self.raw)

    def _pump(self, timeout: float) -> None:
        try:
            data = self.child.read_nonblocking(65536, timeout)
        except pexpect.TIMEOUT:
            return
        except pexpect.EOF:
            self.eof = True
            return
        self._raw.append(data)
        asked = self.raw.count(CPR_REQUEST)
        if asked > self._answered:
            self.child.send(f"\x1b[{self.rows - 8};1R" * (asked - self._answered))
            self._answered = asked

    def expect(self, pattern: str, timeout: float = 180) -> re.Match:
        """Wait for ``pattern`` (a regex) in the text after the previous match."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            found = regex.search(self.text, self._mark)
            if found:
                self._mark = found.end()
                return found
            if self.eof:
                raise AssertionError(f"aish ended before {pattern!r}; output:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} within {timeout}s; output:\n{self.tail()}")
            self._pump(0.1)

    def settle(self, seconds: float = 0.3) -> None:
        """Read whatever arrives for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.eof:
            self._pump(0.05)

    def send(self, keys: str) -> None:
        self.child.send(keys)

    def line(self, text: str) -> None:
        self.child.send(text + "\r")

    def tail(self, chars: int = 3000) -> str:
        return self.text[-chars:]

    def wait(self, timeout: float = 180) -> int:
        deadline = time.monotonic() + timeout
        while not self.eof:
            if time.monotonic() > deadline:
                raise AssertionError(f"aish did not exit; output:\n{self.tail()}")
            self._pump(0.1)
        self.child.close()
        return self.child.exitstatus

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


def session_records(sessions_dir: Path, sid: str) -> list[dict]:
    path = sessions_dir / f"{sid}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def term_env(home):
    """``home`` set up for the shell under a pty (see `shell_env`)."""
    return shell_env(home)


@pytest.fixture
def terms():
    """Start Terms through this list; any still running at the end are killed."""
    started: list[Term] = []
    yield started
    for term in started:
        term.close()
