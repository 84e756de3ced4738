"""The conversation tree inside session mode: branch, switch, undo, redo, regenerate, edit,
branches, flip (what Alt-Left / Alt-Right run) and tree (the full-screen view the shell face
lends through ``SessionState.navigate``).

The shell's branch is its own view: `switch` and `branch` move it without touching the
user's checkout (`aish --checkout`), which only says where the pipe face writes. Every change
to the tree is a ref move in `aish.branches` / `aish.forks`, checked against where the branch
was, so a branch moved by another terminal meanwhile gives one clear error, never a lost turn.
Unsaved messages are written first: they belong to the branch they were typed on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aish.commands.branch_cmds import branch_lines
from aish.commands.context import Context
from aish.commands.registry import Arg, command, positive_int
from aish.commands.session_cmds import SessionState
from aish.errors import UsageError

if TYPE_CHECKING:
    from aish.forks import Fork, Tree
    from aish.messages import Message

NEXT, PREV = "next", "prev"


def _saved(state: SessionState, what: str):
    """The session with its unsaved messages written and its branch heads read afresh."""
    session = state.session
    session.save()
    if not session.stored:
        raise UsageError(f"{what} needs a message first: the session is stored with its "
                         "first message")
    session.summary = session.sessions.summary(session.id)
    return session


def _count(session) -> int:
    return len(session.sessions.path(session.id, session.stored_head, 0))


def auto_name(taken, base: str) -> str:
    """A branch name not in ``taken``: ``BASE-2``, ``BASE-3``, ... (as a lost race names the
    branch it keeps an exchange on)."""
    base = base[:56]  # room for "-N": the name must stay a valid branch name
    number = 2
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"


@command("branch", "session", "Make branch NAME (none: BRANCH-2, ...) at the newest message "
         "and continue on it.",
         args=(Arg("NAME", "the new branch", nargs="?"),), example="branch try-rust")
def branch(ctx: Context, args) -> int:
    from aish import branches

    state: SessionState = args.state
    session = _saved(state, "branch")
    name = args.name or auto_name(session.summary.tree.refs, session.branch)
    branches.create(session.sessions, session.id, name, None, session.branch)
    was, session.branch = session.branch, name
    session.summary = session.sessions.summary(session.id)
    ctx.out.note(f"Now on branch {name} (made at the head of {was}); 'switch {was}' "
                 "goes back")
    return 0


@command("switch", "session", "Continue on branch NAME (this shell only; --checkout is not "
         "changed).", args=(Arg("NAME", "the branch", completes="branch"),),
         example="switch main")
def switch(ctx: Context, args) -> int:
    from aish.branches import check_branch, head_of

    state: SessionState = args.state
    session = _saved(state, "switch")
    check_branch(args.name)
    head_of(session.summary, args.name)  # it must exist
    if args.name == session.branch:
        ctx.out.note(f"Already on branch {args.name}")
        return 0
    session.branch = args.name
    ctx.out.note(f"Now on branch {args.name} ({_count(session)} messages)")
    return 0


@command("branches", "session", "List this session's branches (* marks this shell's).")
def branches_command(ctx: Context, args) -> int:
    from aish import branches

    session = _saved(args.state, "branches")
    rows = branches.listing(session.sessions.counted(session.id))
    ctx.out.data("\n".join(branch_lines(rows, session.branch, ctx.now())))
    return 0


@command("undo", "session", "Take back the last N exchanges (default 1); 'redo' brings them "
         "back.", args=(Arg("N", "exchanges to undo", type=positive_int, nargs="?"),),
         example="undo 2")
def undo(ctx: Context, args) -> int:
    from aish import branches

    session = _saved(args.state, "undo")
    count = 1 if args.n is None else args.n
    branches.undo(session.sessions, session.id, session.branch, count)
    session.summary = session.sessions.summary(session.id)
    ctx.out.note(f"Undid {count} exchange{'s' if count != 1 else ''}: branch {session.branch} "
                 f"is back at {_count(session)} messages ('redo' brings it forward again)")
    return 0


@command("redo", "session", "Bring back what the last undo took back.")
def redo(ctx: Context, args) -> int:
    from aish import branches

    session = _saved(args.state, "redo")
    branches.redo(session.sessions, session.id, session.branch)
    session.summary = session.sessions.summary(session.id)
    ctx.out.note(f"Redone: branch {session.branch} has {_count(session)} messages again")
    return 0


@command("regenerate", "session", "A new reply to your last message; the old one stays beside "
         "it.")
def regenerate(ctx: Context, args) -> int:
    from aish.branches import rewind_to_regenerate

    state: SessionState = args.state
    rewind_to_regenerate(_saved(state, "regenerate"))
    state.send(None)
    return 0


@command("edit", "session", "Edit your message N in $EDITOR and send it in its place (the "
         "original stays).",
         args=(Arg("N", "the message number on this branch (from 1)", type=positive_int),),
         example="edit 3")
def edit(ctx: Context, args) -> int:
    from aish.branches import message_at, rewind_to_edit
    from aish.messages import USER

    state: SessionState = args.state
    session = _saved(state, "edit")
    path = session.sessions.path(session.id, session.stored_head, 0)
    message = message_at(path, args.n, session.id, session.branch, lowest=1)
    if message is None or message.role != USER:
        raise UsageError(f"message {args.n} of branch {session.branch} is not one of yours",
                         hint="edit takes the number of a message you sent")
    text = edit_text(ctx, message.content, f"{session.id}-{args.n}")
    if not text.strip():
        ctx.out.note("The text is empty: nothing was sent")
        return 0
    if text.strip() == message.content.strip():
        ctx.out.note(f"Message {args.n} is unchanged: nothing was sent")
        return 0
    rewind_to_edit(session, args.n)
    state.send(text.strip())
    return 0


def edit_text(ctx: Context, text: str, name: str) -> str:
    """``text`` as the user leaves it in their editor ($VISUAL, else $EDITOR), edited in a
    temporary file only they can read (mkstemp makes it 0600)."""
    import contextlib
    import os
    import shlex
    import subprocess
    import tempfile

    from aish.errors import StorageError

    editor = ctx.environ.get("VISUAL") or ctx.environ.get("EDITOR")
    if not editor or not editor.strip():
        raise UsageError("edit needs an editor: set $EDITOR (or $VISUAL)")
    try:
        command = shlex.split(editor)
    except ValueError as exc:
        raise UsageError(f"cannot read the editor command {editor!r}: {exc}") from None
    fd, path = tempfile.mkstemp(prefix=f"aish-{name}-", suffix=".md")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        try:
            done = subprocess.run([*command, path], env={**os.environ, **ctx.environ},
                                  check=False)
        except OSError as exc:
            raise UsageError(f"cannot run the editor {command[0]}: "
                             f"{exc.strerror or exc}") from None
        if done.returncode != 0:
            raise UsageError(f"the editor exited with status {done.returncode}; nothing was "
                             "sent")
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError as exc:
            raise StorageError(f"cannot read the edited text: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


# -- forks -------------------------------------------------------------------------------------
def tree_view(state: SessionState) -> tuple[Tree, Fork] | None:
    """The session's tree and the fork in view on the shell's branch (None: no fork)."""
    from aish.forks import Tree, fork_in_view

    session = state.session
    if not session.stored:
        return None
    # The tree depends only on the messages stored, not on where refs point, so it is read
    # again only when the log holds other messages than when it was last read: once per
    # exchange, not on every prompt or key.
    summary = session.summary
    held = (session.id, summary.messages, summary.last_time, summary.tokens)
    if state.tree is None or state.tree[0] != held:
        state.tree = (held, Tree.of(session.sessions.load(session.id)))
    tree = state.tree[1]
    assert isinstance(tree, Tree)
    head = session.stored_head.id
    flipping = state.flipping[0] if state.flipping and state.flipping[1] == head else None
    fork = fork_in_view(tree, head, flipping)
    return (tree, fork) if fork is not None else None


@command("flip", "session", "Show the next / previous side of the newest fork (Alt-Right / "
         "Alt-Left).",
         args=(Arg("WAY", "next or prev (none: say which side is shown)", nargs="?",
                   metavar="next|prev"),), example="flip prev")
def flip_command(ctx: Context, args) -> int:
    from aish.forks import flip

    state: SessionState = args.state
    if args.way not in (None, NEXT, PREV):
        raise UsageError(f"flip: expected next or prev, got {args.way!r}")
    session = _saved(state, "flip")
    view = tree_view(state)
    if view is None:
        ctx.out.note(f"No fork on branch {session.branch}: nothing to flip through "
                     "(regenerate or edit makes one)")
        return 0
    tree, fork = view
    if args.way is None:
        ctx.out.note(f"Message {fork.number} of branch {session.branch}: {fork.label} "
                     "(flip next / flip prev, or Alt-Right / Alt-Left)")
        return 0
    step = 1 if args.way == NEXT else -1
    sibling, head = flip(session.sessions, session.id, session.branch, session.stored_head,
                         tree, fork, step)
    session.summary = session.sessions.summary(session.id)
    state.flipping = (fork.parent, head.id)
    ctx.out.note(f"Message {fork.number}: {fork.index + step + 1}/{len(fork.siblings)}")
    show_side(ctx, tree.path(head.id)[fork.number - 1:])
    return 0


SHOWN = 2  # messages of a side shown when flipping to it: the sibling and its answer


def show_side(ctx: Context, messages: list[Message]) -> None:
    """The first messages of the side now in view, as they were shown when they were new."""
    from aish.messages import USER

    for message in messages[:SHOWN]:
        if message.role == USER:
            ctx.out.data(f"you> {message.content}")
            continue
        renderer = ctx.out.reply_renderer(prefix=f"{message.ai}> ")
        renderer.feed(message.content)
        renderer.finish()
    if len(messages) > SHOWN:
        more = len(messages) - SHOWN
        ctx.out.note(f"(and {more} later message{'s' if more != 1 else ''} on this side)")


def tell_notices(ctx: Context, session) -> None:
    """What the session core had to tell about its writes (a lost race), once each."""
    while session.notices:
        ctx.out.warn(session.notices.pop(0))


# -- the full-screen tree ----------------------------------------------------------------------
@command("tree", "session", "Browse the session's tree full-screen; Enter on a message "
         "continues from it (on yours: asks it again).")
def tree_command(ctx: Context, args) -> int:
    from aish.history import build

    state: SessionState = args.state
    if state.navigate is None:
        raise UsageError("tree needs a terminal", hint="aish --history ID draws the tree")
    session = _saved(state, "tree")
    # Reading a long log is most of what opening the tree costs: it is read again only when
    # it holds other messages or its branches point elsewhere than the last time.
    summary = session.summary
    held = (session.id, summary.messages, summary.last_time, summary.tokens,
            tuple(sorted((name, head.id) for name, head in summary.tree.refs.items())))
    if state.loaded is None or state.loaded[0] != held:
        state.loaded = (held, session.sessions.load(session.id))
    history = build(state.loaded[1], session.id, session.branch)
    picked = state.navigate(history)
    if picked is None:
        return 0
    continue_from(ctx, state, history, picked)
    return 0


def continue_from(ctx: Context, state: SessionState, history, picked: str) -> None:
    """Move the shell's view to a branch whose head is ``picked`` (an assistant's message) or,
    for a message of the user's, its parent with the message put back in the prompt. A branch
    already there is used (this shell's first), else a new one is made there."""
    from aish.branches import move
    from aish.messages import USER

    session = state.session
    node = history.nodes[picked]
    target, draft = picked, ""
    if node.message.role == USER:
        target, draft = node.message.parent or "", node.message.content
    number = history.nodes[target].number if target else 0
    here = history.heads.get(target, [])
    was = session.branch
    if was in here:
        ctx.out.note(f"Still on branch {was}, at message {number}")
    elif here:
        session.branch = here[0]
        ctx.out.note(f"Now on branch {here[0]} (its head is message {number}); "
                     f"'switch {was}' goes back")
    else:
        name = auto_name(history.refs, was)
        move(session.sessions, session.id, name, history.nodes[target].message if target
             else None, "branch", None, create=True)
        session.branch = name
        ctx.out.note(f"Now on new branch {name}, made at message {number}; 'switch {was}' "
                     "goes back")
    session.summary = session.sessions.summary(session.id)
    state.flipping = None
    if draft:  # only once the branch is there: a refused move leaves the prompt empty
        state.draft = draft
        ctx.out.note(f"Your message {node.number} is in the prompt: edit it, or press Enter "
                     "to ask it again")
