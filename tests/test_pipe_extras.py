"""Pipe-face extras: `-s/--system` (an instruction for one exchange, never stored), `-a/--attach`
(files' text added to the message, checked before anything is stored) and `--code` (only the
reply's fenced code on stdout, the whole reply stored). Against the scripted server."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run

from aish.errors import CONFIG, LIMIT, USAGE
from aish.store.filestore import FileStore


def ok(env, *args: str, input: str | None = None):
    done = run(env, *args, input=input)
    assert done.returncode == 0, done.stderr.decode()
    return done


def stored(sessions_dir: Path) -> list:
    store = FileStore(sessions_dir) if sessions_dir.exists() else None
    return [] if store is None else [m for i in store.ids() for m in store.load(i).messages]


def configure(home, text: str) -> None:
    config = Path(home["HOME"]) / ".aish" / "config.yaml"
    config.write_text(config.read_text() + text)


def test_system_is_sent_after_the_persona_and_not_stored(env, server, sessions_dir):
    sid = ok(env, "apollo", "--session", "--get-id", input="first").stdout.decode().strip()
    ok(env, "apollo", "--session", sid, "-s", "Answer in one word.", "second")
    messages = server.last_messages
    assert messages[0]["role"] == "system" and messages[0]["content"].startswith("You are Apollo")
    assert messages[1] == {"role": "system", "content": "Answer in one word."}
    assert [m["content"] for m in messages[2:]] == ["first", "ok: first", "second"]
    ok(env, "apollo", "--system", "Be formal.", input="a one-off")
    assert server.last_messages[1] == {"role": "system", "content": "Be formal."}
    ok(env, "apollo", "--session", sid, "third")
    assert [m["role"] for m in server.last_messages].count("system") == 1
    assert not any("one word" in m.content or "formal" in m.content
                   for m in stored(sessions_dir))


def test_attachments_are_added_to_the_message(env, server, sessions_dir, tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\nremember the milk\n")
    code = tmp_path / "main.py"
    code.write_text("print('hi')")
    ok(env, "apollo", "-a", str(notes), "--attach", str(code), input="summarise these\n")
    expected = (f"summarise these\n\n--- FILE {notes} ---\n# Notes\nremember the milk\n\n"
                f"--- FILE {code} ---\nprint('hi')")
    assert server.last_messages[-1] == {"role": "user", "content": expected}
    assert [m.content for m in stored(sessions_dir) if m.role == "user"] == [expected]
    ok(env, "apollo", "-a", str(code))  # no text of its own: the file is the message
    assert server.last_messages[-1]["content"] == f"--- FILE {code} ---\nprint('hi')"


@pytest.mark.parametrize("case", ["missing", "directory", "binary", "latin1", "large", "long"])
def test_a_bad_attachment_is_one_line_and_stores_nothing(env, server, home, sessions_dir,
                                                         tmp_path, case):
    path = tmp_path / "file"
    code = USAGE
    if case == "directory":
        path.mkdir()
    elif case == "binary":
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    elif case == "latin1":
        path.write_bytes("caf\xe9".encode("latin-1"))
    elif case == "large":
        configure(home, "sessions:\n  limits: {max_attach_bytes: 10}\n")
        path.write_text("x" * 11)
        code = LIMIT
    elif case == "long":  # within the attachment limit, but the message grows too long
        configure(home, "sessions:\n  limits: {max_message_chars: 40}\n")
        path.write_text("y" * 30)
        code = LIMIT
    for args in (("apollo", "-a", str(path), "look"),
                 ("apollo", "--session", "-a", str(path), "look"),
                 ("apollo", "--session-id", "named", "-a", str(path), "look")):
        done = run(env, *args)
        assert done.returncode == code, (args, done.stderr)
        lines = done.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("aish: error: "), lines
        assert ("cannot attach" in lines[0]) == (case != "long")
    assert server.requests == [] and stored(sessions_dir) == []


def test_attach_limit_is_a_checked_config_key(env, server, home):
    configure(home, "sessions:\n  limits: {max_attach_bytes: 0}\n")
    done = run(env, "apollo", "hi")
    assert done.returncode == CONFIG and "max_attach_bytes" in done.stderr.decode()


LONG = [f"line {n}" for n in range(45)]
FORTY = [f"row {n}" for n in range(40)]
REPLY = ("Here is the plan.\n\n```python\nprint(1)\n\nprint(2)\n```\n\nThen run:\n"
         "~~~ sh\nmake test\n~~~\nA fence with a fence inside:\n````md\n```\nnested\n```\n"
         "````\n```\n" + "\n".join(LONG) + "\n```\n```\n" + "\n".join(FORTY) + "\n```\n"
         "That is all.")
CODE = ("print(1)\n\nprint(2)\n\nmake test\n\n```\nnested\n```\n\n" + "\n".join(LONG) + "\n\n"
        + "\n".join(FORTY) + "\n")


@pytest.mark.parametrize("piece", [1, 7, 4000])
def test_code_prints_only_the_fenced_code(env, server, sessions_dir, piece):
    server.reply = REPLY
    server.piece_size = piece
    done = ok(env, "apollo", "--code", "a plan")
    assert done.stdout.decode() == CODE
    assert done.stderr == b""
    assert [m.content for m in stored(sessions_dir) if m.role == "assistant"] == [REPLY]


def test_code_with_no_code_says_so_on_stderr(env, server, sessions_dir):
    server.reply = "Just words, ``inline`` only."
    sid = ok(env, "apollo", "--session", "--get-id", input="hi").stdout.decode().strip()
    done = ok(env, "apollo", "--session", sid, "--code", "explain")
    assert done.stdout == b""
    assert "without a code block" in done.stderr.decode()
    assert FileStore(sessions_dir).load(sid).messages[-1].content == server.reply
    both = run(env, "apollo", "--session", "--get-id", "--code", "x")
    assert both.returncode == USAGE
