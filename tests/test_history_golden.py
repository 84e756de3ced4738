"""Snapshots of `aish --history` and `aish --history --graph` at 40, 80 and 120 columns, with
colour (stdout a terminal) and with NO_COLOR, for a session whose text holds CJK, emoji and
escape sequences. The command runs in process with a fixed clock and TZ=UTC, so the snapshots
are stable; the session is written through the store with fixed times.

On a difference the test prints a diff; ``AISH_UPDATE_GOLDEN=1`` rewrites the snapshots (look at
them before committing: they are what a user sees). In the colour snapshots ESC is written as
``\\e`` so they can be read; the sanitiser's own mark for a neutralised sequence is ``␛``.
"""

from __future__ import annotations

import difflib
import io
import os
import re
import time
from pathlib import Path

import pytest

from aish import config as config_module
from aish.commands.context import Context
from aish.commands.dispatch import run as dispatch
from aish.messages import ASSISTANT, USER, Message, Usage
from aish.output import Output
from aish.store import open_store

GOLDEN = Path(__file__).resolve().parent / "golden" / "history"
SID = "sess_golden01"
START = 1_767_225_600.0  # 2026-01-01 00:00 UTC
NOW = START + 3 * 3600  # the same day, so rows show HH:MM
HOSTILE = ("red \x1b[31mALERT\x1b[0m copy \x1b]52;c;cm0gLXJmIH4=\x07 bell \x07 "
           "title \x1b]0;pwned\x1b\\ end")


class Tty(io.StringIO):
    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


def exchange(records: list, parent: str, ref: str, question: str, answer: str, n: int) -> str:
    q = Message(USER, question, "apollo", START + 120 * n, id=f"m{n:02d}q", parent=parent, ref=ref)
    a = Message(ASSISTANT, answer, "apollo", START + 120 * n + 30, id=f"m{n:02d}a",
                parent=q.id, ref=ref, usage=Usage(10 + n, 5 + n))
    records += [q.to_record(), a.to_record()]
    return a.id


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """main: seven exchanges, the last reply regenerated; ``try-rust`` forks after message 2
    with two exchanges and ``py`` there too with one (three sides); ``nihongo`` forks after
    message 4 with one."""
    home = tmp_path_factory.mktemp("golden") / "home"
    (home / ".aish").mkdir(parents=True)
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "")}
    store = open_store(config_module.load(env))
    store.create({"id": SID, "owner": "apollo", "created": START, "updated": START,
                  "context_window": 10, "participants": ["apollo"], "shared": False,
                  "state": "active"})
    records: list = []
    head = exchange(records, "", "main", "Bonjour! 你好世界, how do I parse 日本語 logs? 🎉🚀",
                    "Use a regex per line 👍 then group by 時間", 1)
    fork2 = head
    head = exchange(records, head, "main", HOSTILE, "Those were escape sequences \x1b[2J", 2)
    fork4 = head
    for n, (q, a) in enumerate([("And the tests?", "Write one per format"),
                                ("Emoji 👩‍👩‍👧 family and flags 🇫🇷", "They are wide"),
                                ("Make it faster", "Read the file once"),
                                ("Now stream it", "Use a generator"),
                                ("Summarise all of this for me in one short paragraph please",
                                 "Parse, group, stream")], 3):
        head = exchange(records, head, "main", q, a, n)
    store.append(SID, records)
    records = [{"t": "ref", "name": "try-rust", "to": fork2, "op": "branch",
                "time": START + 2000}]
    rust = exchange(records, fork2, "try-rust", "Rewrite it in Rust", "Here is a Rust version", 9)
    exchange(records, rust, "try-rust", "Add error handling", "Use Result and ?", 10)
    records.append({"t": "ref", "name": "py", "to": fork2, "op": "branch",
                    "time": START + 2200})
    exchange(records, fork2, "py", "Or in Python 3.13?", "Use re and itertools 🐍", 12)
    records.append({"t": "ref", "name": "nihongo", "to": fork4, "op": "branch",
                    "time": START + 2500})
    exchange(records, fork4, "nihongo", "日本語で説明してください", "はい、正規表現を使います", 11)
    # The last reply regenerated: a second answer to message 15, main moves to it.
    again = Message(ASSISTANT, "In short: parse, group and stream 🚀", "apollo", START + 3000,
                    id="m07b", parent="m07q", ref="main", usage=Usage(40, 12))
    records += [{"t": "ref", "name": "main", "from": "m07a", "to": "m07q", "op": "move",
                 "time": START + 2990}, again.to_record()]
    store.append(SID, records)
    return env


def render(env: dict, monkeypatch, *argv: str, width: int, colour: bool) -> str:
    environ = {**env, **({} if colour else {"NO_COLOR": "1"})}
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.setenv("LINES", "50")
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("COLORTERM", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    time.tzset()
    stdout = Tty()
    ctx = Context(environ=environ, out=Output(stdout, io.StringIO(), environ),
                  now=lambda: NOW)
    try:
        assert dispatch(ctx, ["--history", SID, *argv]) == 0
    finally:
        monkeypatch.undo()
        time.tzset()
    return stdout.getvalue()


CASES = [(name, argv, width, colour)
         for name, argv in (("tree", ()), ("tree-all", ("--all",)), ("graph", ("--graph",)),
                            ("graph-all", ("--graph", "--all")))
         for width in (40, 80, 120) for colour in (False, True)
         if not (name.endswith("-all") and width == 40 and colour)]


@pytest.mark.parametrize(("name", "argv", "width", "colour"), CASES,
                         ids=[f"{c[0]}-{c[2]}-{'colour' if c[3] else 'plain'}" for c in CASES])
def test_snapshot(session, monkeypatch, name, argv, width, colour):
    out = render(session, monkeypatch, *argv, width=width, colour=colour)
    # Neutralised on the way: the only escape sequences left are the drawing's own colours.
    assert not re.search(r"\x1b(?!\[[0-9;]*m)", out)
    assert "\x07" not in out and "cm0gLXJmIH4=" not in out and "pwned" not in out
    assert "red ␛ALERT␛ copy ␛ bell ␇ title ␛ end" in out or width == 40
    if colour:
        assert "\x1b[" in out
    else:
        assert "\x1b" not in out
    if width > 40:
        assert "你好世界" in out and "🎉🚀" in out  # wide text is shown, measured by cells
    from rich.cells import cell_len

    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert all(cell_len(line) <= width for line in plain.splitlines()), plain
    shown = out.replace("\x1b", "\\e")
    path = GOLDEN / f"{name}-{width}-{'colour' if colour else 'plain'}.txt"
    if os.environ.get("AISH_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(shown, encoding="utf-8")
    expected = path.read_text(encoding="utf-8") if path.exists() else ""
    if shown != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), shown.splitlines(True),
                                            str(path), "now"))
        pytest.fail(f"{path.name} differs (AISH_UPDATE_GOLDEN=1 rewrites it):\n{diff}")
