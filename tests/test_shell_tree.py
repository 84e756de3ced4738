"""The conversation tree in session mode: branch, switch, branches, undo, redo, regenerate, edit,
flip and its keys, the toolbar, and lost races told after the reply.

Lines come from a StreamLines (or a real prompt_toolkit prompt on a pipe, for the keys) and
replies from the scripted provider of the session tests, which numbers its replies and records
what it was sent: "the context follows the side shown" is checked on what the model gets.
"""

# The session tests' `ctx` fixture is imported by name, which ruff reads as a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from test_shell_session import Scripted, ctx, run  # noqa: F401 - ctx is a fixture

from aish.forks import Tree
from aish.messages import ASSISTANT, USER, Message
from aish.shell.lines import PromptLines, StreamLines
from aish.shell.session_mode import SessionMode
from aish.shell.toolbar import plain
from aish.store.base import Loaded
from aish.theme import load_theme


def sent(provider, index=-1) -> list[str]:
    """The messages (persona left out) of request ``index``."""
    return [m.content for m in provider.chats[index][1:]]


def path(ctx, sid, branch="main") -> list[str]:
    loaded = ctx.store.load(sid)
    return [m.content for m in loaded.path(loaded.tree.head(branch))]


def editor(tmp_path: Path, body: str) -> str:
    script = tmp_path / "fake-editor"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return str(script)


def test_branch_and_switch_talk_on_their_own_paths(ctx):
    session, out, err, provider = run(ctx, "q1\nbranch alt\nq2\nswitch main\nq3\nbranches\n")
    assert "Now on branch alt (made at the head of main)" in err
    assert "Now on branch main (2 messages)" in err
    assert sent(provider) == ["q1", "reply 1", "q3"]  # q2 is on alt only
    assert path(ctx, session.id, "alt") == ["q1", "reply 1", "q2", "reply 2"]
    assert path(ctx, session.id) == ["q1", "reply 1", "q3", "reply 3"]
    rows = [line.split()[:2] for line in out.splitlines() if "messages" in line]
    assert rows[0] == ["*", "main"] and rows[1][0] == "alt"
    # The shell's view is its own: the pipe face's checkout stays where it was.
    run(ctx, "switch alt\n", session=session)
    assert session.branch == "alt"
    assert ctx.checkouts.get(session.location) == "main"


def test_branch_and_switch_refuse_clearly(ctx):
    session, _, err, provider = run(ctx, "branch early\nq1\nbranch ../x\nswitch nowhere\n"
                                    "branch main\n",
                                    session=ctx.sessions.create("apollo", lazy=True))
    errors = [line for line in err.splitlines() if line.startswith("aish: error:")]
    assert len(errors) == 4, err
    assert "branch needs a message first" in errors[0]
    assert "no branch nowhere" in errors[2]
    assert "already has a branch main" in errors[3]
    assert path(ctx, session.id) == ["q1", "reply 1"]


def test_undo_takes_back_from_the_context_and_redo_brings_it_back(ctx):
    session, _, err, provider = run(ctx, "q1\nq2\nundo\nq3\n")
    assert "Undid 1 exchange: branch main is back at 2 messages" in err
    assert sent(provider) == ["q1", "reply 1", "q3"]
    session, _, err, provider = run(ctx, "undo\nredo\nq4\n", session=session)
    assert "Redone: branch main has 4 messages again" in err
    assert sent(provider) == ["q1", "reply 1", "q3", "reply 3", "q4"]
    _, _, err, _ = run(ctx, "undo 9\nredo\n", session=session)
    assert "only 3 exchange(s) to undo" in err
    assert "nothing to redo" in err


def test_regenerate_streams_a_second_reply_and_flip_shows_the_first(ctx):
    session, out, err, provider = run(ctx, "q1\nregenerate\nflip\n")
    assert sent(provider) == ["q1"]  # asked again with the same context
    assert out.count("apollo> reply 2") == 1
    assert "Message 2 of branch main: 2/2" in err
    loaded = ctx.store.load(session.id)
    replies = [m.content for m in loaded.messages if m.role == ASSISTANT]
    assert replies == ["reply 1", "reply 2"]  # both kept

    session, out, err, provider = run(ctx, "flip prev\nflip prev\nq2\n", session=session)
    assert "Message 2: 1/2" in err
    assert "apollo> reply 1" in out
    assert "no older side at message 2 (1/2)" in err
    assert sent(provider) == ["q1", "reply 1", "q2"]  # the context follows the side shown
    refs = [r for r in map(json.loads, filter(None, ctx.store.raw_lines(session.id)))
            if r.get("t") == "ref" and r.get("op") == "switch"]
    assert len(refs) == 1 and refs[0]["name"] == "main"


def test_flip_keeps_to_its_fork_while_flipping(ctx):
    """After `edit 1`, the old side has its own fork (a regenerate); flipping to it must not
    start flipping that inner fork instead."""
    session, _, _, provider = run(ctx, "q1\nq2\nregenerate\n")
    run(ctx, "undo 2\nnew q1\n", session=session, provider=provider)
    assert path(ctx, session.id) == ["new q1", "reply 4"]
    _, out, err, _ = run(ctx, "flip prev\nflip\nflip next\n", session=session)
    assert "Message 1: 1/2" in err
    assert "you> q1" in out and "apollo> reply 1" in out
    assert "(and 2 later messages on this side)" in err
    assert "Message 1 of branch main: 1/2" in err  # still the outer fork
    assert path(ctx, session.id) == ["new q1", "reply 4"]


def test_edit_sends_the_edited_text_in_place_of_the_message(ctx, tmp_path):
    seen = tmp_path / "seen"
    ctx.environ["EDITOR"] = editor(tmp_path, f'stat -c %a "$1" > {seen}; cat "$1" >> {seen}; '
                                   'printf "q1, edited\\n" > "$1"')
    session, out, err, provider = run(ctx, "q1\nq2\nedit 1\n")
    assert seen.read_text() == "600\nq1\n"  # the old text, readable by its owner only
    assert sent(provider) == ["q1, edited"]
    assert "apollo> reply 3" in out
    assert path(ctx, session.id) == ["q1, edited", "reply 3"]
    assert "q2" in [m.content for m in ctx.store.load(session.id).messages]  # kept
    assert not list(Path(tempfile.gettempdir()).glob(f"aish-{session.id}-*"))


@pytest.mark.parametrize("body, note", [
    (":", "Message 1 is unchanged: nothing was sent"),
    (': > "$1"', "The text is empty: nothing was sent"),
    ("exit 3", "the editor exited with status 3; nothing was sent"),
])
def test_edit_that_changes_nothing_sends_nothing(ctx, tmp_path, body, note):
    ctx.environ["VISUAL"] = editor(tmp_path, body)
    session, _, err, provider = run(ctx, "q1\nedit 1\n")
    assert note in err
    assert len(provider.chats) == 1
    assert path(ctx, session.id) == ["q1", "reply 1"]


def test_edit_without_an_editor_or_of_a_reply_is_one_error(ctx):
    ctx.environ.pop("EDITOR", None), ctx.environ.pop("VISUAL", None)
    session, _, err, provider = run(ctx, "q1\nedit 1\nedit 2\nedit 7\n")
    errors = [line for line in err.splitlines() if line.startswith("aish: error:")]
    assert errors[0] == "aish: error: edit needs an editor: set $EDITOR (or $VISUAL)"
    assert "message 2 of branch main is not one of yours" in errors[1]
    assert "7 is not one of them" in errors[2]
    assert len(provider.chats) == 1


class Racing(Scripted):
    """While answering the first message, another terminal answers on the same branch."""

    def __init__(self, context):
        super().__init__()
        self.ctx = context
        self.sid = ""

    def stream(self, chat, specialist):
        if not self.chats:
            other = self.ctx.sessions.open("apollo", self.sid)
            other.add(Message(USER, "elsewhere", "apollo", 1.0))
            other.add(Message(ASSISTANT, "answered elsewhere", "apollo", 2.0))
            other.save()
        yield from super().stream(chat, specialist)


def test_a_lost_race_is_told_after_the_reply_and_the_shell_follows(ctx):
    session = ctx.sessions.create("apollo")
    provider = Racing(ctx)
    provider.sid = session.id
    session, out, err, _ = run(ctx, "q1\nq2\n", session=session, provider=provider)
    lines = err.splitlines()
    warning = next(i for i, line in enumerate(lines) if line.startswith("aish: warning:"))
    assert "another exchange reached branch main" in lines[warning]
    assert "kept on branch main-2" in lines[warning]
    assert path(ctx, session.id, "main-2") == ["q1", "reply 1", "q2", "reply 2"]
    assert path(ctx, session.id) == ["q1", "elsewhere", "answered elsewhere"]


class Recording(PromptLines):
    """A real prompt on a pipe that keeps each prompt's toolbar and starting text."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked: list[tuple[str, str]] = []

    def read(self, ask):
        self.asked.append((plain(ask.toolbar()) if ask.toolbar else "", ask.default))
        return super().read(ask)


class NoWords:
    def specialists(self):
        return {}

    def sessions(self):
        return []

    def templates(self):
        return []

    def paths(self, prefix):
        return []


def test_alt_left_and_right_flip_in_the_prompt_and_keep_the_draft(ctx, tmp_path):
    session = ctx.sessions.create("apollo")
    provider = Scripted()
    with create_pipe_input() as pipe:
        lines = Recording(load_theme("default"), NoWords(), history=tmp_path / "history",
                          input=pipe, output=DummyOutput())
        pipe.send_text("q1\rregenerate\rbranch alt\r"
                       "dra\x1b[1;3D"  # Alt-Left (xterm): the older reply, draft kept
                       "ft\x1b\x1b[C"  # Esc Right (other terminals): back to the newer
                       "\rexit\r")
        mode = SessionMode(ctx, ctx.specialist("apollo"), session, lines, provider)
        assert mode.run() == 0
    toolbars = [toolbar for toolbar, _ in lines.asked]
    assert "fork" not in toolbars[1] and "branch" not in toolbars[1]
    assert "fork 2/2" in toolbars[2] and "branch" not in toolbars[2]
    assert "branch alt" in toolbars[3] and "fork 2/2" in toolbars[3]
    assert "fork 1/2" in toolbars[4] and lines.asked[4][1] == "dra"
    assert "fork 2/2" in toolbars[5] and lines.asked[5][1] == "draft"
    assert sent(provider) == ["q1", "reply 2", "draft"]
    assert path(ctx, session.id, "alt") == ["q1", "reply 2", "draft", "reply 3"]
    assert path(ctx, session.id) == ["q1", "reply 2"]
    assert "fork 2/2" in toolbars[6]  # talking on keeps the fork on the path


def test_keys_do_nothing_without_a_side_to_go_to(ctx, tmp_path):
    session = ctx.sessions.create("apollo")
    with create_pipe_input() as pipe:
        lines = Recording(load_theme("default"), NoWords(), history=tmp_path / "history",
                          input=pipe, output=DummyOutput())
        pipe.send_text("q1\rab\x1b[1;3D\x1b[1;3Cc\rexit\r")
        mode = SessionMode(ctx, ctx.specialist("apollo"), session, lines, Scripted())
        assert mode.run() == 0
    assert [m.content for m in ctx.store.load(session.id).messages if m.role == USER][1] \
        .endswith("c")
    assert len(lines.asked) == 3  # q1, the second message, exit: no key left a prompt


def test_fork_of_a_tree():
    def msg(mid, parent, t):
        return Message(USER, mid, "apollo", t, id=mid, parent=parent)

    loaded = Loaded({}, [msg("a", "", 1), msg("b", "a", 2), msg("c", "a", 3), msg("d", "c", 4),
                         msg("e", "c", 4), msg("f", "", 0.5)], [])
    tree = Tree.of(loaded)
    forks = tree.forks("e")
    assert [(f.parent, f.number, f.label) for f in forks] == [("", 1, "2/2"), ("a", 2, "2/2"),
                                                              ("c", 3, "2/2")]
    assert [m.id for m in forks[-1].siblings] == ["d", "e"]  # same time: log order
    assert tree.newest_under(loaded.messages[0]).id == "e"
    assert tree.forks("f")[0].label == "1/2"


def test_the_tree_on_a_terminal(env, server, terms, tmp_path, aish):
    """The real `aish` in a pty: regenerate, Alt-Left / Alt-Right in the toolbar, branch, undo
    and edit through $EDITOR, against the scripted server."""
    import itertools
    import re

    from shell_support import Term, shell_env

    count = itertools.count(1)
    server.reply = lambda body: f"answer {next(count)}"
    fake = editor(tmp_path, 'printf "first, edited" > "$1"')
    t = Term(shell_env(env, EDITOR=fake), "--session", "apollo")
    terms.append(t)
    sid = t.expect(r"Session ID: (sess_[a-z0-9]{6})").group(1)
    t.expect(re.escape(f"apollo (session: {sid})> "))
    t.line("first")
    t.expect(r"apollo> answer 1")
    t.expect(r"window 1/10")
    t.line("regenerate")
    t.expect(r"apollo> answer 2")
    t.expect(r"fork 2/2")
    t.send("\x1b[1;3D")  # Alt-Left
    t.expect(r"Message 2: 1/2")
    t.expect(r"apollo> answer 1")
    t.expect(r"fork 1/2")
    t.send("\x1b[1;3C")  # Alt-Right
    t.expect(r"apollo> answer 2")
    t.expect(r"fork 2/2")
    t.line("branch alt")
    t.expect(r"Now on branch alt")
    t.expect(r"branch alt │ fork 2/2")
    t.line("second")
    t.expect(r"apollo> answer 3")
    assert [m["content"] for m in server.last_messages[1:]] == ["first", "answer 2", "second"]
    t.line("undo")
    t.expect(r"Undid 1 exchange: branch alt is back at 2 messages")
    t.line("edit 1")
    t.expect(r"apollo> answer 4")
    assert [m["content"] for m in server.last_messages[1:]] == ["first, edited"]
    t.line("exit")
    t.expect("Session ended")
    assert t.wait() == 0
    rows = json.loads(aish("aish", "--list-branches", sid, "--json").stdout)
    assert {r["name"]: r["messages"] for r in rows} == {"main": 2, "alt": 2}


def test_tab_completes_the_branches_of_the_session_in_view(ctx):
    from aish.shell.completion import ContextVocabulary, suggest

    vocab = ContextVocabulary(ctx)
    assert vocab.branches() == []  # outside session mode: no session to ask
    session = ctx.sessions.create("apollo")
    mode = SessionMode(ctx, ctx.specialist("apollo"), session,
                       StreamLines(io.StringIO("q1\nbranch try-rust\nbranch try-go\n")),
                       Scripted())
    seen = []
    original = mode.handle

    def handle(line):
        original(line)
        seen.append([s.text for s in suggest("switch try", "session", vocab)])

    mode.handle = handle
    mode.run()
    assert seen[-1] == ["try-go", "try-rust"]
    assert [s.text for s in suggest("switch ", "session", vocab)] == []  # session mode left


def test_help_in_session_mode_describes_the_session_commands(ctx):
    _, out, _, _ = run(ctx, "help\nhelp undo\n")
    overview, _, rest = out.partition("usage: undo [N]")
    for word in ("branch [NAME]", "switch NAME", "branches", "undo [N]", "redo", "regenerate",
                 "edit N", "flip [next|prev]", "tree"):
        assert f"  {word} " in overview, word
    assert "Alt-Left / Alt-Right" in overview
    assert "'redo' brings them back" in rest and "--undo" not in rest


def test_the_tree_commands_on_the_redis_store(ctx, redis_url):
    from test_shell_leaving import use_redis

    (Path(ctx.environ["HOME"]) / ".aish").mkdir(parents=True, exist_ok=True)
    (Path(ctx.environ["HOME"]) / ".aish" / "config.yaml").write_text("")
    use_redis(Path(ctx.environ["HOME"]), redis_url)
    assert type(ctx.store).__name__ == "RedisStore"
    session, out, err, provider = run(ctx, "q1\nregenerate\nflip prev\nbranch alt\nq2\nundo\n"
                                      "switch main\nq3\n")
    assert "Message 2: 1/2" in err and "apollo> reply 1" in out
    assert sent(provider) == ["q1", "reply 1", "q3"]  # main flipped back to the first reply
    assert path(ctx, session.id, "alt") == ["q1", "reply 1"]  # q2 undone
    assert path(ctx, session.id) == ["q1", "reply 1", "q3", "reply 4"]


def test_the_fork_indicator_reads_the_log_again_only_when_it_changed(ctx, monkeypatch):
    class Prompting(StreamLines):
        interactive = True  # so the toolbar is computed before every line

    loads = []
    load = type(ctx.store).load
    monkeypatch.setattr(type(ctx.store), "load", lambda self, sid: loads.append(sid)
                        or load(self, sid))
    session = ctx.sessions.create("apollo")
    lines = Prompting(io.StringIO("q1\n\n\n\nq2\n\n\n"))
    SessionMode(ctx, ctx.specialist("apollo"), session, lines, Scripted()).run()
    assert len(loads) == 3  # at the start, after q1, after q2: not on the empty lines
