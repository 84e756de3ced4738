"""Session mode in-process: the session commands, the escape, leaving and saving, retry.

Lines come from a StreamLines (as in `printf ... | aish --session apollo`) and replies from a
scripted provider, so every case is exact and fast; the pty tests cover the terminal itself.
"""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest
from fakes import Scripted

from aish.commands.context import Context
from aish.commands.session_cmds import parse_session_line
from aish.errors import UsageError
from aish.output import Output
from aish.shell.lines import StreamLines
from aish.shell.session_mode import SessionMode


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    out = Output(stdout=io.StringIO(), stderr=io.StringIO(), environ={})
    # No automatic titles: the scripted provider's replies are counted.
    return Context(environ={"HOME": str(home), "AISH_AUTO_TITLE": "false"}, out=out,
                   now=lambda: 1_700_000_000.0)


def run(ctx, script: str, *, provider=None, auto_save=None, session=None):
    """Run session mode over ``script``; return (session, stdout, stderr, provider)."""
    specialist = ctx.specialist("apollo")
    session = session or ctx.sessions.create("apollo")
    session.auto_save = auto_save
    provider = provider or Scripted()
    mode = SessionMode(ctx, specialist, session, StreamLines(io.StringIO(script)), provider)
    assert mode.run() == 0
    out, err = ctx.out.stdout.getvalue(), ctx.out.stderr.getvalue()
    ctx.out.stdout.seek(0), ctx.out.stdout.truncate()
    ctx.out.stderr.seek(0), ctx.out.stderr.truncate()
    return session, out, err, provider


def stored(ctx, sid):
    return ctx.store.load(sid).messages


def test_banner_reply_and_exit_ends(ctx):
    session, out, err, _ = run(ctx, "Hello\nexit\n")
    assert err.splitlines()[:3] == [
        "Welcome to session mode with apollo-ai",
        f"Session ID: {session.id}",
        "Type 'exit' to end session, 'save' to save context",
    ]
    assert "apollo> reply 1" in out
    assert err.rstrip().endswith("Session ended")
    assert ctx.sessions.summary(session.id).meta["state"] == "ended"
    assert [m.content for m in stored(ctx, session.id)] == ["Hello", "reply 1"]


def test_end_of_input_leaves_session_active(ctx):
    session, _, err, _ = run(ctx, "Hello\n")
    assert f"Left session {session.id}; it stays active" in err
    assert ctx.sessions.summary(session.id).meta["state"] == "active"


def test_context_and_info(ctx):
    session, out, _, _ = run(ctx, "one\ntwo\ncontext\ninfo\n")
    assert "Using 2/10 context window" in out
    assert "Oldest message: just now" in out
    assert f"Session: {session.id}" in out
    assert "Messages: 4" in out
    assert "Context used: 2/10" in out


def test_slash_forms_and_backslash_escape(ctx):
    session, out, _, provider = run(ctx, "/context\n\\context is what I mean\n\\n stays\n")
    assert "Using 0/10 context window" in out
    contents = [m.content for m in stored(ctx, session.id) if m.role == "user"]
    assert contents == ["context is what I mean", "\\n stays"]
    assert len(provider.chats) == 2


def test_command_word_with_bad_arguments_points_to_escape(ctx):
    session, _, err, provider = run(ctx, "clear my doubts about monads\n")
    assert "aish: error:" in err and "backslash" in err
    assert provider.chats == [] and stored(ctx, session.id) == []


def test_parse_session_line():
    assert parse_session_line("   ")[0] == "empty"
    kind, cmd, tokens = parse_session_line("save checkpoint-1")
    assert (kind, cmd.name, tokens) == ("command", "save", ["checkpoint-1"])
    kind, cmd, tokens = parse_session_line("/clear --keep-last 5")
    assert (kind, cmd.name, tokens) == ("command", "clear", ["--keep-last", "5"])
    assert parse_session_line("quit")[1].name == "exit"
    assert parse_session_line("\\save the whales") == ("message", "save the whales", None)
    assert parse_session_line("/usr/bin/env is odd") == ("message", "/usr/bin/env is odd", None)
    assert parse_session_line("Saved me") == ("message", "Saved me", None)
    with pytest.raises(UsageError):
        parse_session_line("save 'unclosed")


def test_save_writes_and_keeps_checkpoint(ctx):
    session, _, err, _ = run(ctx, "Hello\nsave\nsave checkpoint-1\n", auto_save=0)
    assert "Session saved to ~/.aish/sessions/" in err
    assert "Checkpoint checkpoint-1 saved to" in err
    assert [m.content for m in stored(ctx, session.id)] == ["Hello", "reply 1"]
    doc = ctx.store.get_doc("checkpoints", f"{session.id}/checkpoint-1")
    assert doc["session"]["id"] == session.id and doc["checkpoint"] == "checkpoint-1"
    assert [r["content"] for r in doc["messages"]] == ["Hello", "reply 1"]
    # A checkpoint is a --save-session document: --restore-session takes it back.
    from aish.management.restore import restore

    restored = restore(ctx.sessions, json.dumps(doc).encode())
    assert [m.content for m in stored(ctx, restored[0].id)] == ["Hello", "reply 1"]


def test_bad_checkpoint_name_is_refused(ctx):
    _, _, err, _ = run(ctx, "save ../evil\n")
    assert "invalid checkpoint name" in err
    assert not (Path(ctx.environ["HOME"]) / ".aish" / "sessions" / "evil.json").exists()


def test_clear_keep_last_keeps_backup(ctx):
    session, _, err, _ = run(ctx, "one\ntwo\nthree\nclear --keep-last 1\ncontext\n")
    assert [m.content for m in stored(ctx, session.id)] == ["three", "reply 3"]
    assert "Cleared 4 messages; kept the last 1 pair" in err
    backups = list((Path(ctx.environ["HOME"]) / ".aish" / "sessions" / "backup").glob("*clear*"))
    assert len(backups) == 1 and "one" in backups[0].read_text()


def test_clear_all_then_talk_on(ctx):
    session, out, _, provider = run(ctx, "one\nclear\nagain\ncontext\n")
    assert [m.content for m in stored(ctx, session.id)] == ["again", "reply 2"]
    assert "Using 1/10 context window" in out
    # The cleared exchange is no longer sent to the model.
    assert [m.content for m in provider.chats[-1] if m.role != "system"] == ["again"]


def test_export_is_a_document_restore_takes_back(ctx, tmp_path, aish):
    session, _, _, _ = run(ctx, "Hello\nexport mine.json\n")
    data = json.loads((tmp_path / "mine.json").read_text())
    assert data["format"] == "aish-session"
    restored = aish("aish", "--restore-session", str(tmp_path / "mine.json"))
    assert restored.returncode == 0, restored.stderr
    listing = aish("aish", "--list-sessions", "--all").stdout.decode()
    assert session.id in listing  # (expired: the test clock is in 2023)


def test_export_writes_private_json(ctx, tmp_path):
    session, _, err, _ = run(ctx, "Hello\nexport\nexport out/\n")
    assert "cannot export to out/: no such folder" in err
    assert f"Session exported to {session.id}.json" in err
    (tmp_path / "out").mkdir()
    run(ctx, "export out/\n", session=session)
    for path in (tmp_path / f"{session.id}.json", tmp_path / "out" / f"{session.id}.json"):
        data = json.loads(path.read_text())
        assert data["session"]["id"] == session.id
        assert [m["content"] for m in data["messages"]] == ["Hello", "reply 1"]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_auto_save_off_asks_before_leaving(ctx):
    # The answer "n" discards; nothing but the header was ever written.
    session, _, err, _ = run(ctx, "Hello\nexit\nn\n", auto_save=0)
    assert "2 unsaved messages discarded" in err
    assert stored(ctx, session.id) == []
    # Answering yes (or the script ending) saves them.
    session, _, err, _ = run(ctx, "Hello\nexit\ny\n", auto_save=0)
    assert [m.content for m in stored(ctx, session.id)] == ["Hello", "reply 1"]
    session, _, _, _ = run(ctx, "Hello\n", auto_save=0)
    assert len(stored(ctx, session.id)) == 2


def test_auto_save_every_n_saves_on_leaving(ctx):
    session, _, _, _ = run(ctx, "one\n", auto_save=5)
    assert len(stored(ctx, session.id)) == 2


def test_info_shows_unsaved_messages(ctx):
    _, out, _, _ = run(ctx, "one\ninfo\ny\n", auto_save=0)
    assert "Unsaved messages: 2" in out


def test_provider_failure_keeps_message_and_retry_answers(ctx):
    provider = Scripted(fail=1)
    session, out, err, _ = run(ctx, "Hello\nretry\n", provider=provider)
    assert "aish: error: scripted: connection refused" in err and "retry" in err
    assert [m.content for m in stored(ctx, session.id)] == ["Hello", "reply 2"]
    assert "apollo> reply 2" in out


def test_help_lists_session_commands_from_registry(ctx):
    _, out, _, _ = run(ctx, "help\n/help clear\n")
    for word in ("save [NAME]", "context", "clear [--keep-last N]", "info", "export [PATH]",
                 "exit", "\\save the whales"):
        assert word in out
    assert "keep the last N message pairs" in out


def test_session_commands_appear_in_aish_help(aish):
    result = aish("aish", "--help")
    text = result.stdout.decode()
    assert "Inside session mode:" in text and "clear [--keep-last N]" in text


# -- lazy sessions: stored with their first message -------------------------------------------

def test_a_lazy_session_is_stored_only_with_its_first_message(ctx):
    session = ctx.sessions.create("apollo", lazy=True, context_window=4)
    session.extend_context(2)  # settings before the first message are kept in memory
    _, out, err, _ = run(ctx, "info\ncontext\nsave\nclear\nexit\n", session=session)
    assert (out + err).count("No messages yet: the session is stored with its first message.") == 3
    assert "Using 0/6 context window" in out
    assert f"Left session {session.id}; it had no messages, so nothing was stored" in err
    assert ctx.store.ids() == []
    run(ctx, "Hello\n", session=session)
    assert ctx.store.ids() == [session.id]
    assert ctx.sessions.summary(session.id).context_window(10) == 6
    assert [m.content for m in stored(ctx, session.id)] == ["Hello", "reply 1"]


def test_a_named_lazy_session_keeps_its_name_and_auto_save_off_still_asks(ctx):
    session = ctx.sessions.open("apollo", "learn-rust", create_missing=True, lazy=True)
    assert ctx.store.ids() == []
    _, _, err, _ = run(ctx, "Hello\nexit\nn\n", session=session, auto_save=0)
    assert "2 unsaved messages discarded" in err and ctx.store.ids() == []
    run(ctx, "Hello\nexit\ny\n", session=session, auto_save=0)
    assert ctx.store.ids() == ["learn-rust"]
    assert ctx.sessions.summary("learn-rust").meta["state"] == "ended"


def test_leaving_a_removed_session_keeps_the_unsaved_messages(ctx):
    session = ctx.sessions.create("apollo")
    session.auto_save = 0
    specialist = ctx.specialist("apollo")
    mode = SessionMode(ctx, specialist, session, StreamLines(io.StringIO("Hello\nexit\ny\n")),
                       Scripted())
    mode.handle("Hello")
    removed = ctx.store.remove(session.id, "remove")  # another terminal removes it meanwhile
    assert mode.run() == 5  # a script learns that something could not be saved
    err = ctx.out.stderr.getvalue()
    line = next(x for x in err.splitlines() if "could not save" in x)
    assert line.startswith(f"aish: error: could not save 3 messages: session {session.id} "
                           "not found; kept in ")
    path = line.split("kept in ", 1)[1].split(" ", 1)[0].replace("~", ctx.environ["HOME"], 1)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    records = [json.loads(x) for x in Path(path).read_text().splitlines()]
    assert records[0]["t"] == "meta" and records[0]["id"] == session.id
    assert [r["content"] for r in records[1:]] == ["Hello", "reply 1", "Hello"]
    assert ctx.store.backups(session.id) == [removed]  # not one of the session's backups


def test_with_encryption_on_the_kept_messages_are_sealed_and_restorable(ctx, aish, home,
                                                                       monkeypatch):
    config = Path(home["HOME"]) / ".aish" / "config.yaml"
    config.write_text(config.read_text() + "sessions:\n  storage: {encrypt: true}\n")
    key = {"AISH_ENCRYPTION_KEY": "correct horse battery staple"}
    monkeypatch.setenv("AISH_ENCRYPTION_KEY", key["AISH_ENCRYPTION_KEY"])
    ctx = Context(environ={"HOME": home["HOME"], "AISH_AUTO_TITLE": "false", **key},
                  out=ctx.out)
    session = ctx.sessions.create("apollo")
    mode = SessionMode(ctx, ctx.specialist("apollo"), session,
                       StreamLines(io.StringIO("the walrus-4471 secret\nexit\n")), Scripted())
    mode.handle("Hello")
    ctx.store.remove(session.id, "remove")
    assert mode.run() == 5
    line = next(x for x in ctx.out.stderr.getvalue().splitlines() if "could not save" in x)
    path = Path(line.split("kept in ", 1)[1].split(" ", 1)[0].replace("~", home["HOME"], 1))
    assert b"walrus-4471" not in path.read_bytes()
    restored = aish("aish", "--restore-session", str(path), **key)
    assert restored.returncode == 0, restored.stderr.decode()
    shown = aish("aish", "--export-sessions", **key).stdout.decode()
    assert "walrus-4471" in shown


def test_ctrl_c_while_a_hung_store_saves_still_leaves(ctx, monkeypatch):
    session = ctx.sessions.create("apollo")
    mode = SessionMode(ctx, ctx.specialist("apollo"), session,
                       StreamLines(io.StringIO("exit\ny\n")), Scripted())
    session.auto_save = 0
    mode.handle("Hello")

    def hung(*_args):
        raise KeyboardInterrupt  # what Ctrl-C does to a write that does not come back

    monkeypatch.setattr(ctx.store, "append", hung)
    assert mode.run() == 5
    err = ctx.out.stderr.getvalue()
    assert "could not save 2 messages: interrupted while saving; kept in " in err


def test_kept_messages_go_back_into_the_session_they_came_from(ctx, aish):
    # The store refused the save (here: the session was removed), then the session exists again
    # (restored from its backup): restoring the recovery file adds just the unsaved messages.
    session = ctx.sessions.create("apollo")
    session.auto_save = 0
    mode = SessionMode(ctx, ctx.specialist("apollo"), session,
                       StreamLines(io.StringIO("exit\ny\n")), Scripted())
    mode.handle("first")
    session.save()
    mode.handle("second")
    removed = ctx.store.remove(session.id, "remove")
    assert mode.run() == 5
    line = next(x for x in ctx.out.stderr.getvalue().splitlines() if "could not save" in x)
    path = line.split("kept in ", 1)[1].split(" ", 1)[0].replace("~", ctx.environ["HOME"], 1)
    assert aish("aish", "--restore-session", removed).returncode == 0
    back = aish("aish", "--restore-session", path)
    assert back.returncode == 0, back.stderr
    assert b"Added 2 unsaved messages back to session" in back.stderr
    contents = [m.content for m in ctx.store.load(session.id).messages]
    assert contents == ["first", "reply 1", "second", "reply 2"]
    assert len(ctx.store.ids()) == 1  # no `-restored` copy


def test_a_message_is_kept_when_the_provider_cannot_be_built(ctx):
    # --provider openai with no key and no endpoint: every send fails before any request.
    session = ctx.sessions.create("apollo")
    lines = StreamLines(io.StringIO("remember this\nsave\n"))
    mode = SessionMode(ctx, ctx.specialist("apollo"), session, lines, flags=("openai", None))
    assert mode.run() == 0
    err = ctx.out.stderr.getvalue()
    assert err.count("no API key") == 2, err  # once on entering, once for the message
    assert "your message is kept in the session; type 'retry' to send it again" in err
    assert [(m.role, m.content) for m in stored(ctx, session.id)] == [("user", "remember this")]
