"""`tree` in session mode: the full-screen navigator of the session's tree.

The view's model (`TreeNav`) is driven directly for moving, folding and searching; the real
Application runs on a prompt_toolkit pipe (create_pipe_input / DummyOutput) for the keys; session
mode runs it from the `tree` command for what Enter does (a branch head, a prompt refilled); and
the real `aish` runs it in tmux, as a user sees it.
"""

# The session tests' `ctx` fixture is imported by name, which ruff reads as a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from test_shell_session import Scripted, ctx, run  # noqa: F401 - ctx is a fixture
from test_shell_tree import NoWords, Recording, path

from aish.history import build
from aish.messages import ASSISTANT, USER, Message
from aish.shell.lines import StreamLines
from aish.shell.session_mode import SessionMode
from aish.shell.tree_view import FOLD_ABOVE, TreeNav, make_app
from aish.store.base import Loaded
from aish.theme import load_theme

DOWN, UP, LEFT, RIGHT = "\x1b[B", "\x1b[A", "\x1b[D", "\x1b[C"


def chain(count: int, parent: str = "", start: int = 0, prefix: str = "m") -> list[Message]:
    out = []
    for i in range(start, start + count):
        role = USER if i % 2 == 0 else ASSISTANT
        out.append(Message(role, f"{prefix} {i}", "apollo", 1000.0 + i, id=f"{prefix}{i}",
                           parent=parent))
        parent = out[-1].id
    return out


def history_of(messages: list[Message], refs: dict[str, str] | None = None):
    loaded = Loaded({}, messages, [])
    history = build(loaded, "sess_test01", "main")
    if refs is not None:
        history.refs = refs
        history.heads = {}
        history.__post_init__()
    return history


def texts(nav: TreeNav) -> list[str]:
    return [nav.line(i, 200)[0][1].rstrip() for i in range(len(nav.rows))]


def forked():
    """main: 30 messages; alt: a second reply to message 4 (m3), and one more exchange."""
    main = chain(30)
    alt = chain(2, parent="m3", start=4, prefix="a")
    return history_of(main + alt, {"main": "m29", "alt": "a5"})


def test_the_view_opens_on_the_branch_head_with_long_runs_folded():
    nav = TreeNav(forked())
    assert nav.row.id == "m29"
    lines = texts(nav)
    assert len(lines) < 30 + 2  # folded: not every message has a row
    assert any("more" in line for line in lines)
    assert lines[nav.cursor].endswith("[main*]")
    assert any(line.endswith("[alt]") for line in lines)
    # The side hangs below the fork (message 4), before main goes on with message 5.
    fork = next(i for i, line in enumerate(lines) if line.startswith("4 "))
    assert lines[fork + 1].lstrip().startswith("\u2514 5 ") and "a 4" in lines[fork + 1]
    assert lines[fork + 3].startswith("5 ") and "m 4" in lines[fork + 3]
    assert nav.line(nav.cursor, 80)[0][0].split() == ["class:tree.current", "class:tree.head",
                                                      "class:tree.cursor"]


def test_moving_and_folding():
    nav = TreeNav(forked())
    main_run = nav.segment_of["m4"]
    assert main_run in nav.folded
    nav.move(-1)
    assert nav.row.id == "m28"
    nav.move(-1)
    assert nav.row.more == 30 - 4 - 1 - 2  # m5..m27 folded away
    nav.toggle()  # unfold: the cursor stays on the first message it stood for
    assert main_run not in nav.folded and nav.row.id == "m5"
    assert [r.id for r in nav.rows if r.segment == main_run] == [f"m{i}" for i in range(4, 30)]
    nav.move(3)
    assert nav.row.id == "m8"
    nav.left()  # open run: Left folds it, the cursor lands on what stands for m8
    assert main_run in nav.folded and nav.row.more
    nav.left()  # folded: Left goes to the fork the run hangs from
    assert nav.row.id == "m3"
    nav.right()  # at a fork: into the side below it
    assert nav.row.id == "a4"
    nav.unfold_all()
    assert not nav.folded and len(nav.rows) == 32 and nav.row.id == "a4"
    nav.move(-10**6)
    assert nav.cursor == 0
    nav.move(10**6)
    assert nav.cursor == len(nav.rows) - 1


def test_short_runs_start_open_and_very_short_ones_do_not_fold():
    nav = TreeNav(history_of(chain(FOLD_ABOVE), {"main": f"m{FOLD_ABOVE - 1}"}))
    assert not nav.folded and len(nav.rows) == FOLD_ABOVE
    nav.toggle()  # z: it folds on demand, the cursor staying on the head
    assert len(nav.rows) == 4 and nav.rows[1].more == FOLD_ABOVE - 3
    assert nav.row.id == f"m{FOLD_ABOVE - 1}"
    nav.toggle()
    assert len(nav.rows) == FOLD_ABOVE
    short = TreeNav(history_of(chain(3), {"main": "m2"}))
    short.toggle()
    assert len(short.rows) == 3 and "nothing to fold" in short.status


def test_search_jumps_to_matches_unfolding_them_and_wraps():
    messages = chain(40)
    messages[20] = Message(ASSISTANT, "the Needle here", "apollo", 1020.0, id="m20",
                           parent="m19")
    messages[35] = Message(ASSISTANT, "another needle", "apollo", 1035.0, id="m35",
                           parent="m34")
    nav = TreeNav(history_of(messages, {"main": "m39"}))
    assert "m20" not in nav.row_of  # folded away at first
    assert nav.search("NEEDLE")
    assert nav.row.id == "m20" and "2 matches for 'NEEDLE'" in nav.status
    nav.search("")  # n: the next one
    assert nav.row.id == "m35"
    nav.search("")  # round the end
    assert nav.row.id == "m20"
    nav.search("", -1)
    assert nav.row.id == "m35"
    assert not nav.search("absent") and nav.row.id == "m35"
    assert "no message matches 'absent'" in nav.status


def test_model_text_cannot_reach_the_terminal_as_escapes():
    hostile = Message(ASSISTANT, "\x1b]52;c;c2VjcmV0\x07ok \x1b[2J\u202e done", "apollo",
                      1001.0, id="m1", parent="m0")
    nav = TreeNav(history_of([chain(1)[0], hostile], {"main": "m1"}))
    shown = "".join(text for i in range(len(nav.rows)) for _, text in nav.line(i, 80))
    assert "\x1b" not in shown and "\u202e" not in shown and "\x07" not in shown
    assert "ok" in shown and "done" in shown


def keys_on_app(history, keys: str):
    nav = TreeNav(history)
    with create_pipe_input() as pipe:
        app = make_app(nav, input=pipe, output=DummyOutput())
        pipe.send_text(keys)
        return app.run(), nav


@pytest.mark.parametrize("keys, picked", [
    ("\r", "m29"),  # Enter where it opens: the branch head
    (UP + UP + "\r" + UP + "\r", "m4"),  # Enter on a `more` row unfolds it
    ("k" + "j" + "/a 5\r\r", "a5"),  # search, then Enter picks the match
    ("/m 1\rn\r", "m10"),  # round the end to "m 1", then n: "m 10"
    ("q", None),
    ("\x1b", None),  # Esc alone (told from an escape sequence once nothing follows it)
    ("/zzz\x1b" + "q", None),  # Esc leaves the search, q leaves the view
])
def test_the_keys_in_the_application(keys, picked):
    result, _ = keys_on_app(forked(), keys)
    assert result == picked


def test_left_right_and_space_in_the_application():
    _, nav = keys_on_app(forked(), UP + UP + " " + "q")
    assert nav.segment_of["m5"] not in nav.folded and nav.row.id == "m5"
    _, nav = keys_on_app(forked(), UP + UP + " " + LEFT + LEFT + RIGHT + "q")
    assert nav.row.id == "a4"


# -- in session mode -----------------------------------------------------------------------------

def session_with_fork(ctx):
    """main: q1 reply 1 (regenerated: reply 2); q2 reply 3."""
    session, _, _, _ = run(ctx, "q1\nregenerate\nq2\n")
    return session


def tree_run(ctx, session, tmp_path, keys: str):
    """Session mode on a real prompt over a pipe: `tree`, then ``keys`` in the tree."""
    provider = Scripted(reply="again")
    with create_pipe_input() as pipe:
        lines = Recording(load_theme("default"), NoWords(), history=tmp_path / "history",
                          input=pipe, output=DummyOutput())
        pipe.send_text("tree\r" + keys)
        mode = SessionMode(ctx, ctx.specialist("apollo"), session, lines, provider)
        assert mode.run() == 0
    err = ctx.out.stderr.getvalue()
    ctx.out.stderr.seek(0), ctx.out.stderr.truncate()
    return lines, err, provider


def test_enter_on_a_reply_makes_a_branch_there_and_continues_on_it(ctx, tmp_path):
    session = session_with_fork(ctx)
    # reply 1 is the side nested under q1 (main goes on with reply 2): search finds it.
    lines, err, provider = tree_run(ctx, session, tmp_path, "/reply 1\r\rnext\rexit\r")
    assert "Now on new branch main-2, made at message 2" in err
    assert [m.content for m in provider.chats[-1][1:]] == ["q1", "reply 1", "next"]
    assert path(ctx, session.id, "main-2") == ["q1", "reply 1", "next", "again"]
    assert path(ctx, session.id) == ["q1", "reply 2", "q2", "reply 3"]


def test_enter_on_a_branch_head_switches_to_that_branch(ctx, tmp_path):
    session = session_with_fork(ctx)
    run(ctx, "undo\nbranch\nswitch main\nredo\n", session=session)  # main-2 at reply 2
    assert path(ctx, session.id, "main-2") == ["q1", "reply 2"]
    _, err, _ = tree_run(ctx, session, tmp_path, "/reply 2\r\rexit\r")
    assert "Now on branch main-2 (its head is message 2); 'switch main' goes back" in err
    assert session.branch == "main-2"
    assert sorted(ctx.store.load(session.id).tree.refs) == ["main", "main-2"]


def test_enter_on_your_message_puts_it_back_in_the_prompt(ctx, tmp_path):
    session = session_with_fork(ctx)
    lines, err, provider = tree_run(ctx, session, tmp_path, "/q2\r\r\rexit\r")
    assert "Your message 3 is in the prompt" in err
    assert "Now on new branch main-2, made at message 2" in err
    assert lines.asked[1][1] == "q2"  # the prompt after `tree` starts with the message
    assert path(ctx, session.id, "main-2") == ["q1", "reply 2", "q2", "again"]
    assert path(ctx, session.id) == ["q1", "reply 2", "q2", "reply 3"]


def test_leaving_the_tree_changes_nothing(ctx, tmp_path):
    session = session_with_fork(ctx)
    before = ctx.store.load(session.id).tree.refs
    lines, err, _ = tree_run(ctx, session, tmp_path, "kkq" + "exit\r")
    assert ctx.store.load(session.id).tree.refs == before and session.branch == "main"
    assert lines.asked[1][1] == "" and "branch" not in err.split("Welcome")[-1].lower()


def test_tree_without_a_terminal_is_one_error(ctx):
    session, _, err, _ = run(ctx, "q1\ntree\n/tree\n")
    assert err.count("aish: error: tree needs a terminal") == 2


def test_branch_without_a_name_picks_one(ctx):
    session, _, err, _ = run(ctx, "q1\nbranch\nswitch main\nbranch\n")
    assert "Now on branch main-2" in err and "Now on branch main-3" in err
    assert sorted(ctx.store.load(session.id).tree.refs) == ["main", "main-2", "main-3"]


def test_a_script_still_reads_its_lines(ctx):
    specialist = ctx.specialist("apollo")
    session = ctx.sessions.create("apollo")
    mode = SessionMode(ctx, specialist, session, StreamLines(io.StringIO("q1\n")), Scripted())
    assert mode.state.navigate is None and mode.run() == 0


# -- the real shell in tmux ----------------------------------------------------------------------

class Tmux:
    """One tmux server of its own (its own socket) running one program in a window."""

    def __init__(self, tmp_path, env: dict, *command: str):
        self.socket = str(tmp_path / "tmux.sock")
        self.env = env
        self.run("new-session", "-d", "-x", "120", "-y", "40", "-s", "t", *command)

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-f", "/dev/null", "-S", self.socket, *args],
                              env=self.env, check=True, capture_output=True, text=True,
                              timeout=60).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "t")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "t", *keys)

    def wait_for(self, text: str, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} on screen within {timeout}s:\n{screen}")
            time.sleep(0.1)  # polling the screen, not waiting for a state

    def close(self) -> None:
        subprocess.run(["tmux", "-f", "/dev/null", "-S", self.socket, "kill-server"], env=self.env,
                       capture_output=True, timeout=60)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_tree_in_the_real_shell(env, server, tmp_path, aish):
    import itertools

    from shell_support import BIN, shell_env

    count = itertools.count(1)
    server.reply = lambda body: f"answer {next(count)}"
    tmux = Tmux(tmp_path, shell_env(env), str(BIN / "aish"), "--session", "apollo")
    try:
        screen = tmux.wait_for("(session: sess_")
        sid = screen.split("(session: ")[1].split(")")[0]
        for n in range(1, 7):
            tmux.keys(f"question {n}", "Enter")
            tmux.wait_for(f"answer {n}")
        tmux.keys("/tree", "Enter")
        tmux.wait_for("Enter continue here")
        screen = tmux.wait_for("[main*]")
        assert "more" in screen  # twelve messages: the run starts folded
        tmux.keys("Up", "Up", "Up", "Space")  # unfold
        tmux.wait_for("question 2")
        tmux.keys("/")
        tmux.keys("-l", "answer 3")
        tmux.keys("Enter")
        tmux.wait_for("1 match for 'answer 3'")
        tmux.keys("Enter")
        tmux.wait_for("Now on new branch main-2, made at message 6")
        tmux.keys("forked here", "Enter")
        tmux.wait_for("answer 7")
        tmux.keys("exit", "Enter")
        tmux.wait_for("Session ended")
    finally:
        tmux.close()
    rows = json.loads(aish("aish", "--list-branches", sid, "--json").stdout)
    assert {r["name"]: r["messages"] for r in rows} == {"main": 12, "main-2": 8}


def test_enter_on_the_first_message_starts_a_branch_at_the_root(ctx, tmp_path):
    session = session_with_fork(ctx)
    lines, err, _ = tree_run(ctx, session, tmp_path, "/q1\r\r" + "\x15" + "q0\rexit\r")
    assert "Now on new branch main-2, made at message 0" in err
    assert lines.asked[1][1] == "q1"  # Ctrl-U cleared it and "q0" was asked instead
    assert path(ctx, session.id, "main-2") == ["q0", "again"]


class Picking(StreamLines):
    """A line source with a `navigate` that picks nothing, counting the views it was asked
    to show."""

    interactive = False

    def __init__(self, text: str):
        super().__init__(io.StringIO(text))
        self.shown: list[int] = []

    def navigate(self, history):
        self.shown.append(len(history.nodes))
        return None


def test_the_tree_reads_the_log_again_only_when_it_changed(ctx, monkeypatch):
    loads = []
    load = type(ctx.store).load
    monkeypatch.setattr(type(ctx.store), "load", lambda self, sid: loads.append(sid)
                        or load(self, sid))
    session = ctx.sessions.create("apollo")
    lines = Picking("q1\ntree\ntree\nq2\ntree\nundo\ntree\n")
    SessionMode(ctx, ctx.specialist("apollo"), session, lines, Scripted()).run()
    assert lines.shown == [2, 2, 4, 4]
    assert len(loads) == 3  # once, again after q2, again after undo moved main


def test_the_tree_on_the_redis_store(ctx, redis_url, tmp_path):
    from pathlib import Path

    from test_shell_leaving import use_redis

    (Path(ctx.environ["HOME"]) / ".aish").mkdir(parents=True, exist_ok=True)
    (Path(ctx.environ["HOME"]) / ".aish" / "config.yaml").write_text("")
    use_redis(Path(ctx.environ["HOME"]), redis_url)
    assert type(ctx.store).__name__ == "RedisStore"
    session = session_with_fork(ctx)
    _, err, _ = tree_run(ctx, session, tmp_path, "/reply 1\r\rnext\rexit\r")
    assert "Now on new branch main-2, made at message 2" in err
    assert path(ctx, session.id, "main-2") == ["q1", "reply 1", "next", "again"]
