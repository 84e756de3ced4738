"""Tab completion (the pure function, then through a real PromptSession) and key bindings,
driven with prompt_toolkit's pipe input."""

from __future__ import annotations

import threading
import time

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from aish.commands.dispatch import load_commands
from aish.shell.completion import complete_path, suggest
from aish.shell.lines import Ask, PromptLines
from aish.theme import load_theme

load_commands()


class Vocab:
    def specialists(self):
        return {"apollo": "builds", "athena": "reviews", "hermes": "teaches",
                "prometheus": "plans"}

    def sessions(self):
        return ["sess_abc123", "sess_abd999", "learn-rust"]

    def templates(self):
        return ["code-review"]

    def paths(self, prefix):
        return [p for p in ("notes/", "notes.md") if p.startswith(prefix)]


def words(text, scope="shell"):
    return [s.text for s in suggest(text, scope, Vocab())]


def test_first_word_offers_specialists_commands_and_flags():
    assert words("ap") == ["apollo"]
    assert words("he") == ["hermes", "help"]
    assert set(words("")) >= {"apollo", "athena", "help", "exit", "--list-sessions"}
    assert "--list-sessions" in words("--list")
    assert all(w.startswith("--") for w in words("-"))


def test_replacement_starts_at_the_word():
    (only,) = suggest("apollo --sess", "shell", Vocab())[:1]
    assert only.start == -len("--sess")


def test_specialist_flags_and_values():
    assert words("apollo --sess") == ["--session", "--session-id"]
    assert words("apollo --session ") == ["sess_abc123", "sess_abd999", "learn-rust"]
    assert words("apollo --session sess_ab") == ["sess_abc123", "sess_abd999"]
    assert words("athena-ai --session-id l") == ["learn-rust"]
    assert words("apollo --template ") == ["code-review"]
    assert words("apollo --context-window ") == []  # a number: nothing to offer
    # Flags already given are not offered again.
    assert "--shared" not in words("apollo --shared --")


def test_aish_commands_complete_their_arguments():
    assert words("--end-session ") == ["sess_abc123", "sess_abd999", "learn-rust"]
    assert words("aish --end-session sess_abc") == ["sess_abc123"]
    assert words("--session ") == ["apollo", "athena", "hermes", "prometheus"]
    assert words("--session hermes --session-id l") == ["learn-rust"]
    assert words("--list-sessions --") == ["--all", "--json"]
    assert words("help ath") == ["athena"]


def test_session_scope():
    assert words("", "session")[:4] == ["branch", "branches", "clear", "context"]
    assert words("co", "session") == ["context"]
    assert words("/sa", "session") == ["/save"]
    assert words("clear --", "session") == ["--keep-last"]
    assert words("export no", "session") == ["notes/", "notes.md"]
    assert words("\\sa", "session") == []
    assert words("tell me about ", "session") == []


def test_complete_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "doc.json").write_text("{}")
    (tmp_path / ".hidden").write_text("")
    assert complete_path("do") == ["doc.json", "docs/"]
    assert complete_path("") == ["doc.json", "docs/"]
    assert complete_path(".h") == [".hidden"]
    assert complete_path(f"{tmp_path}/docs") == [f"{tmp_path}/docs/"]


def type_slowly(pipe, *parts: str, pause: float = 0.15) -> None:
    """Send keys in parts from a thread: completion runs between keystrokes, as for a person."""

    def typing():
        for part in parts:
            pipe.send_text(part)
            time.sleep(pause)

    threading.Thread(target=typing, daemon=True).start()


@pytest.fixture
def prompt(tmp_path):
    with create_pipe_input() as pipe:
        lines = PromptLines(load_theme("default"), Vocab(), history=tmp_path / "history",
                            input=pipe, output=DummyOutput())
        yield pipe, lines


def test_tab_completes_through_the_prompt(prompt):
    pipe, lines = prompt
    type_slowly(pipe, "apol\t", "--session-i\t", "learn\t", "\r")
    assert lines.read(Ask([("", "aish> ")], "shell")) == "apollo --session-id learn-rust "


def test_tab_in_session_scope(prompt):
    pipe, lines = prompt
    type_slowly(pipe, "/cont\t", "\r")
    assert lines.read(Ask([("", "> ")], "session")) == "/context "


def test_escape_enter_inserts_a_newline(prompt):
    pipe, lines = prompt
    pipe.send_text("first line\x1b\rsecond line\r")
    assert lines.read(Ask([("", "> ")], "session")) == "first line\nsecond line"


def test_history_is_kept_in_the_file(prompt, tmp_path):
    pipe, lines = prompt
    pipe.send_text("--version\r")
    lines.read(Ask([("", "> ")]))
    assert "--version" in (tmp_path / "history").read_text()
    # Up recalls it in a new prompt session reading the same file.
    with create_pipe_input() as pipe2:
        again = PromptLines(load_theme("default"), Vocab(), history=tmp_path / "history",
                            input=pipe2, output=DummyOutput())
        pipe2.send_text("\x1b[A\r")
        assert again.read(Ask([("", "> ")])) == "--version"


def test_ctrl_c_and_ctrl_d(prompt):
    pipe, lines = prompt
    pipe.send_text("half a line\x03")
    with pytest.raises(KeyboardInterrupt):
        lines.read(Ask([("", "> ")]))
    pipe.send_text("\x04")
    with pytest.raises(EOFError):
        lines.read(Ask([("", "> ")]))


def test_confirm(prompt):
    pipe, lines = prompt
    pipe.send_text("n\r")
    assert lines.confirm("Save?") is False
    pipe.send_text("\r")
    assert lines.confirm("Save?") is True
    pipe.send_text("\x04")
    assert lines.confirm("Save?") is True
