"""Commands inside session mode: save, context, clear, info, export, retry, help, exit.

They are declared in the ``session`` scope of the one registry, so `aish --help`, the session
`help` and Tab completion all come from these declarations. Session mode parses a line against
them and calls the handler with ``args.state``: the open session, its specialist, and the way
back to session mode (``send`` a message, ``leave``). Nothing here touches the terminal except
through ``ctx.out``, so the commands work the same from a script piped into session mode.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aish.commands.context import Context
from aish.commands.manifest import load_all
from aish.commands.registry import REGISTRY, Arg, command, positive_int
from aish.errors import StorageError, UsageError
from aish.ids import check_id

if TYPE_CHECKING:
    from aish.sessions import Session
    from aish.specialists import Specialist

ESCAPE_HELP = ("To send a message that starts with a command word, begin it with a backslash: "
               "\\save the whales")
KEYS_HELP = ("Keys: Tab completes, Esc-Enter (Alt-Enter) starts a new line, Ctrl-X Ctrl-E edits "
             "in $EDITOR, Alt-Left / Alt-Right flip between the sides of a fork, Ctrl-C cancels "
             "a reply, Ctrl-D leaves without ending the session.")

NOT_YET = "No messages yet: the session is stored with its first message."


@dataclass
class SessionState:
    """What a session command acts on. Session mode owns one for as long as it runs."""

    session: Session
    specialist: Specialist
    send: Callable[[str | None], None] = lambda _text: None  # None = retry the unanswered one
    leave: bool = False  # set by `exit`: end the session and leave session mode
    # Set by `flip`: (the fork's parent, the head it moved to). While the head is still there
    # the keys keep flipping that fork, not a newer one inside the side now shown.
    flipping: tuple[str, str] | None = None
    tree: tuple[object, object] | None = None  # (what the log held, its forks.Tree): a cache
    # The full-screen tree the face can show (`tree`): given a history.History, it returns the
    # id of the message picked, or None. None here: no terminal to show it on.
    navigate: Callable[[object], str | None] | None = None
    draft: str = ""  # set by a command: the text the next prompt starts with
    loaded: tuple[object, Any] | None = None  # (what the log held, its Loaded): for `tree`


def tilde(path: str, environ: dict) -> str:
    """``path`` with the home directory shown as ``~``, as the README prints it."""
    home = environ.get("HOME")
    if home and (path == home or path.startswith(home.rstrip("/") + "/")):
        return "~" + path[len(home.rstrip("/")):]
    return path


def _ai(state: SessionState) -> str:
    return state.specialist.name


@command("save", "session", "Write the session now; with NAME also keep a named checkpoint.",
         args=(Arg("NAME", "checkpoint name", nargs="?"),), example="save checkpoint-1")
def save(ctx: Context, args) -> int:
    state: SessionState = args.state
    session = state.session
    if args.name is not None:
        check_id(args.name, "checkpoint name")
    if not session.stored and not session.pending:
        ctx.out.note(NOT_YET)
        return 0
    session.save()
    ctx.out.note(f"Session saved to {tilde(session.location, ctx.environ)}")
    if args.name is not None:
        from aish.management.integrity import inspect
        from aish.management.transfer import session_doc

        # The `--save-session` document, so `aish --restore-session PATH` takes a checkpoint.
        doc = {**session_doc(inspect(session.sessions, session.id)), "checkpoint": args.name,
               "saved": ctx.now()}
        path = session.sessions.put_doc("checkpoints", f"{session.id}/{args.name}", doc,
                                        action="checkpoint", sid=session.id, ai=_ai(state),
                                        name=args.name)
        ctx.out.note(f"Checkpoint {args.name} saved to {tilde(path, ctx.environ)}")
    return 0


@command("context", "session", "Show the context window in use, its oldest message and tokens.")
def context(ctx: Context, args) -> int:
    from aish.reports import context_report, format_context

    state: SessionState = args.state
    if state.session.token_limit is None:  # nothing sent yet: size it for the provider now
        from aish.commands.exchange import make
        from aish.errors import AishError

        try:
            provider = make(ctx, state.specialist, events=())  # nothing is sent: no waiting
            state.session.fit_to(provider, state.specialist)
        except AishError:  # no usable provider: the window as counted in pairs
            pass
    ctx.out.data(format_context(context_report(state.session, state.specialist, ctx.now())))
    return 0


@command("info", "session", "Show information about this session.")
def info(ctx: Context, args) -> int:
    from aish.reports import format_info, session_info

    session = args.state.session
    if not session.stored:
        ctx.out.data(f"Session: {session.id}\n{NOT_YET}")
        return 0
    text = format_info(session_info(session.sessions, session.id, ctx.environ,
                                    session.branch), ctx.now())
    if session.unsaved:
        text += f"\nUnsaved messages: {session.unsaved} (type 'save' to write them)"
    ctx.out.data(text)
    return 0


@command("clear", "session", "Clear the session's history (a backup is kept first).",
         args=(Arg("--keep-last", "keep the last N message pairs", type=positive_int,
                   metavar="N"),),
         example="clear --keep-last 5")
def clear(ctx: Context, args) -> int:
    from aish.context import pairs_of

    state: SessionState = args.state
    session = state.session
    keep = args.keep_last or 0
    if not session.stored:
        if not session.pending:
            ctx.out.note(NOT_YET)
            return 0
        session.save()  # clearing works on the stored log, with its backup
    loaded = session.sessions.load(session.id)
    groups = pairs_of(loaded.messages + list(session.pending))
    kept = groups[-keep:] if keep else []
    removed = sum(len(g) for g in groups) - sum(len(g) for g in kept)
    if not removed:
        ctx.out.note("Nothing to clear.")
        return 0
    from aish.branches import keep_only

    kept_messages = [m for g in kept for m in g]
    kept_ids = {m.id for m in kept_messages}
    kept_messages, refs = keep_only(loaded.messages, loaded.ref_ids(), kept_messages)
    backup = session.sessions.rewrite(session.id, loaded.meta, kept_messages, "clear", _ai(state),
                                      since=loaded.mark, refs=refs,
                                      dropped=[m.id for m in loaded.messages
                                               if m.id not in kept_ids])
    session.pending.clear()
    session.summary = session.sessions.summary(session.id)
    what = f"kept the last {len(kept)} pair{'s' if len(kept) != 1 else ''}" if kept else (
        "history is empty")
    ctx.out.note(f"Cleared {removed} message{'s' if removed != 1 else ''}; {what} "
                 f"(backup: {tilde(backup, ctx.environ)})")
    return 0


@command("export", "session", "Write the session as JSON to PATH (default ./SESSION_ID.json).",
         args=(Arg("PATH", "file or folder to write", nargs="?", completes="path"),),
         example="export ~/review.json")
def export(ctx: Context, args) -> int:
    from aish.management.transfer import save_session

    session = args.state.session
    if not session.stored:
        session.save()
        if not session.stored:
            raise UsageError(f"session {session.id} has nothing to export yet",
                             hint="it is stored with its first message")
    path = Path(args.path or f"{session.id}.json").expanduser()
    if path.is_dir() or (args.path or "").endswith("/"):
        if not path.is_dir():
            raise StorageError(f"cannot export to {args.path}: no such folder")
        path = path / f"{session.id}.json"
    # The same document as `aish --save-session`, so `aish --restore-session PATH` takes it
    # back; messages not saved yet are included, since the user sees them.
    doc = save_session(session.sessions, session.id, skip_corrupted=True, action="export")
    doc["messages"] += [m.to_record() for m in session.pending]
    write_private(path, json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    if doc.get("skipped"):
        ctx.out.warn(f"{len(doc['skipped'])} damaged record(s) left out; see "
                     f"aish --validate-session {session.id}")
    ctx.out.note(f"Session exported to {tilde(str(path), ctx.environ)}")
    return 0


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600), replacing the content."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # the file may have existed with wider permissions
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror}") from None


@command("retry", "session", "Send the last unanswered message again (after an error).")
def retry(ctx: Context, args) -> int:
    args.state.send(None)
    return 0


@command("help", "session", "Show the session commands, or help for one of them.",
         args=(Arg("TOPIC", "a command", nargs="?", completes="command"),))
def help_command(ctx: Context, args) -> int:
    if args.topic:
        from aish.commands.helptext import render_help

        ctx.out.data(render_help(ctx, args.topic, in_session=True))
        return 0
    ctx.out.data(session_help(_ai(args.state)))
    return 0


def session_help(ai: str) -> str:
    load_all()
    from aish.commands.helptext import entry

    lines = ["Session commands (also as /save, /context, ...):"]
    for cmd in REGISTRY.in_scope("session"):
        lines += entry(cmd.usage, cmd.help, 26)
    lines += ["", f"Anything else is sent to {ai}. {ESCAPE_HELP}", KEYS_HELP]
    return "\n".join(lines)


@command("exit", "session", "End the session and leave session mode (Ctrl-D leaves without "
         "ending it).", aliases=("quit",))
def exit_command(ctx: Context, args) -> int:
    args.state.leave = True
    return 0


def parse_session_line(line: str):
    """Classify a line typed in session mode.

    Returns ``("command", Command, tokens)`` or ``("message", text, None)``. A line whose first
    word is a session command (or its ``/`` form) is that command; a leading backslash before a
    command word sends the rest as a message (``\\save the whales``); anything else is a
    message, sent as typed.
    """
    import shlex

    text = line.strip()
    if not text:
        return "empty", "", None
    first = text.split(None, 1)[0]
    if first.startswith("\\"):
        word = first[1:]
        if _command_for(word) is not None:
            return "message", text[1:], None
        return "message", text, None
    found = _command_for(first)
    if found is None:
        return "message", text, None
    try:
        tokens = shlex.split(text)[1:]
    except ValueError as exc:
        raise UsageError(f"{first}: {exc}", hint=_escape_hint(text)) from None
    return "command", found, tokens


def _command_for(word: str):
    if word.startswith("/"):
        word = word[1:]
    load_all()  # session commands are registered by several modules
    return REGISTRY.get("session", word) if word else None


def _escape_hint(text: str) -> str:
    return f"to send this as a message, start it with a backslash: \\{text[:30]}"
