"""The specialist command (`apollo ...`) and the basic aish commands: list, end, help, version."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aish.commands.context import Context
from aish.commands.registry import REGISTRY, Arg, command, positive_int
from aish.errors import SessionNotFound, UsageError
from aish.ids import ID_PATTERN, check_id
from aish.sanitize import valid_unicode

if TYPE_CHECKING:
    from aish.providers.base import Provider
    from aish.recent import Last

NEW = "\0new"  # `--session` given without an id

@dataclass(frozen=True)
class Opening:
    """Which session a command works in and how to open it: what `apollo --session ...` and
    `aish --session NAME` both ask for, read once from their parsed options."""

    sid: str | None = None  # None: a new session
    create_missing: bool = False  # a `--session-id` names it: create it when missing
    shared: bool = False
    template: str | None = None
    context_window: int | None = None
    extend_context: int | None = None
    auto_save: int | None = None
    lazy: bool = True  # a new session is stored with its first message
    overflow: str | None = None  # this session's own: "drop" or "summarize" (compaction)


SESSION_ONLY = ("get_id", "end", "shared", "template", "context_window", "extend_context",
                "auto_save", "retry", "branch", "regenerate", "edit", "overflow")


def _overflow(text: str) -> str:
    from aish.compaction import OVERFLOWS

    if text not in OVERFLOWS:
        raise UsageError(f"--overflow: expected {' or '.join(OVERFLOWS)}, got {text!r}")
    return text


# Options for one exchange, shared by `apollo ...` and `aish -c ...`.
SYSTEM = Arg("--system", "an instruction for this message on top of the persona (not stored)",
             metavar="TEXT", short="-s")
ATTACH = Arg("--attach", "add this file's text to the message (repeatable)", metavar="FILE",
             short="-a", many=True, completes="path")
CODE = Arg("--code", "print only the code blocks of the reply (all of it is stored)", flag=True)
PROVIDER = Arg("--provider", "openai or local", metavar="NAME")
MODEL = Arg("--model", "model name (openai) or GGUF path (local)", metavar="MODEL")
MESSAGE = Arg("message", "the message (default: stdin)", nargs="*", metavar="MESSAGE")
ONE_EXCHANGE = ("system", "attach", "code")  # options that need a message to go with
RECAP = 2  # pairs shown when session mode takes up the last session again


@command(
    "ask", "specialist", "Ask a specialist; with --session, within a session that remembers.",
    args=(
        Arg("--session", "session mode; no ID starts a new session, an ID continues it",
            nargs="?", const=NEW, metavar="ID", completes="session"),
        Arg("--session-id", "use the session with this id or name, creating it if missing",
            metavar="ID", completes="session"),
        Arg("--continue", "continue the last session you talked in with this specialist",
            flag=True, short="-c"),
        Arg("--get-id", "print only the session id (the message is still sent and stored)",
            flag=True),
        Arg("--end", "end the session", flag=True),
        Arg("--context-window", "window of N message pairs (0 = unlimited)", type=positive_int,
            metavar="N"),
        Arg("--extend-context", "raise the session's window by N pairs", type=positive_int,
            metavar="N"),
        Arg("--overflow", "pairs leaving the window: drop, or summarize them first (kept "
            "in the session)", type=_overflow, metavar="MODE"),
        Arg("--shared", "join another specialist's session", flag=True),
        Arg("--template", "start the new session from a template", metavar="NAME",
            completes="template"),
        Arg("--auto-save", "write every N messages (0 = only on save)", type=positive_int,
            metavar="N"),
        Arg("--retry", "send the session's last unanswered message again", flag=True),
        Arg("--branch", "talk on this branch of the session (made at the current head if "
            "new)", metavar="NAME"),
        Arg("--regenerate", "a new reply to the last message; both replies are kept",
            flag=True),
        Arg("--edit", "replace message N (yours) with this message and answer it; the "
            "original stays on its own path", type=positive_int, metavar="N"),
        SYSTEM, ATTACH, CODE, PROVIDER, MODEL, MESSAGE,
    ),
    example='echo "Hello" | apollo --session --get-id',
)
def ask(ctx: Context, args) -> int:
    specialist = ctx.specialist(args.specialist)
    words = list(args.message)
    named = args.session
    if named not in (None, NEW) and not ID_PATTERN.fullmatch(named) and " " in named.strip():
        words.insert(0, named)  # `apollo --session "what is x?"`: a message, not an id
        named = NEW
    for given in (args.session_id, named):
        if given not in (None, NEW):
            check_id(given)  # `../x`, "" or control characters: a usage error, nothing written
    if args.session_id is not None and named not in (None, NEW) and named != args.session_id:
        raise UsageError(f"--session {named} and --session-id {args.session_id} name two "
                         "different sessions", hint="give one of them")
    resume = getattr(args, "continue")
    if resume and (args.session_id is not None or named not in (None, NEW)):
        raise UsageError("-c/--continue takes up your last session; it cannot name one too",
                         hint="drop -c, or the session id")
    if resume and args.template:
        raise UsageError("--template starts a new session; -c continues one")
    in_session = named is not None or args.session_id is not None or resume
    sid = args.session_id or (named if named != NEW else None)
    if not in_session:
        given = [name for name in SESSION_ONLY if getattr(args, name) not in (None, False)]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise UsageError(f"{flag} needs --session or --session-id")
    text = " ".join(words) if words else None
    if text is not None and valid_unicode(text) != text:
        ctx.out.warn("the message is not valid UTF-8; invalid bytes were replaced")
        text = valid_unicode(text)
    if text is not None and args.retry:
        raise UsageError("--retry sends the unanswered message again; it takes no message")
    if text is not None and args.regenerate:
        raise UsageError("--regenerate answers the last message again; it takes no message")
    if sum(1 for flag in (args.retry, args.regenerate, args.edit is not None) if flag) > 1:
        raise UsageError("use one of --retry, --regenerate and --edit")
    if args.attach and (args.retry or args.regenerate):
        raise UsageError("--attach adds to a new message; --retry and --regenerate send none")
    if args.code and args.get_id:
        raise UsageError("--get-id prints only the id; --code prints the reply's code")
    if text is None and not args.end and not args.retry and not args.regenerate \
            and not ctx.stdin_is_tty:
        text = ctx.read_stdin().rstrip("\n") or None
    if text is not None and not text.strip():
        text = None  # `apollo ""`, `echo " " | apollo`: nothing to ask; never sent or stored
    if args.attach:
        from aish.attachments import attach

        text = attach(ctx.config, text, args.attach)
    if text is not None:
        from aish.sessions import check_message

        check_message(ctx.config, text)  # before a session is created for it
    if not in_session:
        if text is None:
            if ctx.stdin_is_tty and not ctx.interactive:
                _needs_message(args)
                session = ctx.sessions.create(specialist.name, lazy=True)
                return _enter_session_mode(ctx, specialist, session, args.provider,
                                           args.model)
            raise UsageError("no message given", hint="pass it as arguments or on stdin")
        return _one_shot(ctx, specialist, text, args)

    new = sid is None and not resume
    if resume:
        sid = (getattr(args, "last", None) or last_session(ctx, specialist.name)).sid
    if args.end and text is None and not args.retry:
        return _end(ctx, specialist, sid)
    # `--get-id` asks for the session to exist now, before any message.
    try:
        session = _open_session(ctx, specialist, Opening(
            sid, args.session_id is not None, args.shared, args.template, args.context_window,
            args.extend_context, args.auto_save, lazy=not args.get_id, overflow=args.overflow))
    except SessionNotFound as exc:
        if sid == named and not resume and not sid.startswith("sess_"):
            # `apollo --session hello` reads "hello" as an id; a newcomer meant a message.
            exc.hint = (f"see 'aish --list-sessions --all'; to send {sid!r} as the first "
                        f"message of a new session: {specialist.name} --session -- {sid}")
        raise
    _choose_branch(ctx, session, args.branch)
    if args.get_id:
        ctx.out.data(session.id)
    if args.edit is not None and text is None:
        raise UsageError("--edit N needs the new text", hint=f'echo "new text" | '
                         f"{specialist.name} --session {session.id} --edit {args.edit}")
    if args.regenerate or args.edit is not None:
        from aish import branches

        if args.regenerate:
            branches.rewind_to_regenerate(session)
            args.retry = True  # the branch now ends with the message to answer again
        else:
            branches.rewind_to_edit(session, args.edit)
    if text is None and not args.retry:
        if (ctx.stdin_is_tty or ctx.interactive) and not args.get_id:
            _needs_message(args)
            return _enter_session_mode(ctx, specialist, session, args.provider, args.model,
                                       recap=RECAP if resume else 0)
        if not session.stored:  # nothing to keep: an empty session is not left behind
            raise UsageError("no message given; no session was created",
                             hint=f"pass it as arguments or on stdin, or add --get-id to "
                             f"create an empty session: {specialist.name} --session --get-id")
        session.save()
        if not args.get_id:
            ctx.out.note(f"Session {session.id} is ready (no message was given)")
        return 0
    try:
        _exchange(ctx, specialist, session, text, args, show=not args.get_id)
    finally:
        session.save()
        for notice in session.notices:
            ctx.out.warn(notice)
    if args.end:
        ctx.sessions.end(session.id, specialist.name)
        ctx.out.note(f"Session {session.id} ended")
    elif new and not args.get_id and ctx.out.stderr_tty:
        # A person at a terminal learns the id of the session just started; a script asks
        # for it with --get-id.
        ctx.out.note(f"session: {session.id} (continue with --session {session.id} or -c)")
    return 0


def _needs_message(args) -> None:
    """Options for one exchange make no sense for a whole session mode."""
    for name in ONE_EXCHANGE:
        if getattr(args, name):
            raise UsageError(f"--{name} goes with a message",
                             hint="pass the message as arguments or on stdin")


def last_session(ctx: Context, ai: str | None) -> Last:
    """The session this user last talked in with ``ai`` (None: with any specialist)."""
    found = ctx.recent.last(ai, ctx.sessions.location)
    who = f" with {ai}-ai" if ai else ""
    if found is None:
        raise SessionNotFound(f"no earlier session{who} to continue",
                              hint=f"start one: {ai or 'apollo'} --session")
    if not ctx.sessions.exists(found.sid):
        renamed = ctx.sessions.resolve(found.sid)  # renamed since: -c follows it
        if renamed is not None:
            from dataclasses import replace

            return replace(found, sid=renamed)
        raise SessionNotFound(f"your last session{who}, {found.sid}, no longer exists",
                              hint=f"start a new one: {found.ai} --session, or see "
                              "'aish --list-sessions --all'")
    return found


def _end(ctx: Context, specialist, sid: str | None) -> int:
    """`apollo --session ID --end`: end it without reviving it first (no limit check)."""
    if not sid:
        raise UsageError("--end needs a session id", hint="apollo --session ID --end")
    ctx.sessions.end(sid, specialist.name)
    ctx.out.note(f"Session {sid} ended")
    return 0


def _open_session(ctx: Context, specialist, opening: Opening):
    sessions = ctx.sessions
    sid = opening.sid
    if opening.template:
        if sid and sessions.exists(sid):
            raise UsageError("--template starts a new session; it cannot apply to " + sid)
        from aish.templates import start_from_template

        session = start_from_template(sessions, opening.template, specialist.name, sid,
                                      opening.context_window)
    elif sid:
        session = sessions.open(specialist.name, sid, shared=opening.shared,
                                create_missing=opening.create_missing,
                                context_window=opening.context_window, lazy=opening.lazy)
    else:
        session = sessions.create(specialist.name, context_window=opening.context_window,
                                  lazy=opening.lazy)
    if opening.extend_context:
        session.extend_context(opening.extend_context)
    if opening.overflow and session.meta.get("overflow") != opening.overflow:
        session.set_meta(overflow=opening.overflow)
    session.auto_save = opening.auto_save
    return session


def _choose_branch(ctx: Context, session, wanted: str | None) -> None:
    """Put ``session`` on ``wanted`` (made at the checked-out head if new), else on the branch
    this user has checked out."""
    from aish.branches import check_branch

    checked_out = ctx.checkouts.get(session.location) if session.stored else "main"
    if session.stored and session.summary.head(checked_out) is None:
        checked_out = "main"  # a checkout of a branch this store does not have
    if wanted is None:
        session.branch = checked_out
        return
    check_branch(wanted)
    if session.stored and session.summary.head(wanted) is None:
        from aish import branches

        session.branch = checked_out
        branches.create(ctx.sessions, session.id, wanted, None, checked_out)
        session.summary = ctx.sessions.summary(session.id)
        ctx.out.note(f"New branch {wanted} of session {session.id}, at the head of "
                     f"{checked_out}")
    session.branch = wanted


def _provider(ctx: Context, specialist, args) -> Provider:
    from aish.commands.exchange import EVENTS, make

    # The shell shows its own spinner; it hears only of retries.
    return make(ctx, specialist, getattr(args, "provider", None), getattr(args, "model", None),
                events=("retry",) if ctx.interactive else EVENTS)


def _exchange(ctx: Context, specialist, session, text, args, show: bool = True,
              retry_hint: str | None = None, remember: bool = True):
    from aish.commands import exchange

    present: exchange.Present = exchange.plain if show else exchange.silent
    live = False
    if args.code:
        present = exchange.code
    elif show and ctx.present_reply:  # the shell: rendered, with a live preview
        present, live = ctx.present_reply, True
    if retry_hint is None:
        retry_hint = (f"your message is kept in session {session.id}; retry with: "
                      f"{specialist.name} --session {session.id} --retry")
    exchange.send(ctx, session, specialist, None if args.retry else text,
                  lambda: _provider(ctx, specialist, args), present=present, live=live,
                  retry_hint=retry_hint, system=args.system, remember=remember)


def _one_shot(ctx: Context, specialist, text: str, args) -> int:
    """A question outside any session, kept (unless `sessions.log_oneshots` is off) as an ended
    session of one exchange: out of the way of listings and limits, there for `-c`."""
    from aish.sessions import ENDED

    logged = ctx.config.log_oneshots
    session = ctx.sessions.create(specialist.name, lazy=True, counted=False,
                                  extra_meta={"state": ENDED, "oneshot": True})
    if not logged:
        session.auto_save = 0  # and never saved: nothing is stored
    try:
        _exchange(ctx, specialist, session, text, args, remember=logged,
                  retry_hint=None if logged else "nothing was stored")
    finally:
        if logged:
            session.save()
    return 0


def _enter_session_mode(ctx: Context, specialist, session, provider: str | None = None,
                        model: str | None = None, recap: int = 0) -> int:
    """``recap``: show the last that many pairs first (a session taken up again with -c)."""
    if ctx.enter_session is None:
        raise UsageError("interactive session mode is not available here",
                         hint=f"send a message: echo hi | {specialist.name} --session {session.id}")
    more = {"recap": recap} if recap else {}
    return ctx.enter_session(ctx, specialist, session, provider=provider, model=model, **more)


@command("session", "aish", "Interactive session mode with a specialist.",
         args=(Arg("NAME", "the specialist", completes="specialist"),
               Arg("--session-id", "continue (or create) this session", metavar="ID",
                   completes="session"),
               Arg("--continue", "take up the last session you talked in with it", flag=True,
                   short="-c"),
               Arg("--shared", "join another specialist's session", flag=True),
               Arg("--context-window", "window of N pairs", type=positive_int, metavar="N"),
               Arg("--auto-save", "write every N messages (0 = only on save)",
                   type=positive_int, metavar="N"),
               Arg("--template", "start from a template", metavar="NAME", completes="template")),
         example="aish --session hermes --session-id learn-rust")
def session_mode(ctx: Context, args) -> int:
    specialist = ctx.specialist(args.name)
    resume = getattr(args, "continue")
    if resume and (args.session_id is not None or args.template):
        flag = "--session-id" if args.session_id is not None else "--template"
        raise UsageError(f"-c/--continue takes up your last session; it cannot go with {flag}")
    if args.session_id is not None:
        check_id(args.session_id)
    sid = last_session(ctx, specialist.name).sid if resume else args.session_id
    opening = Opening(sid, args.session_id is not None, args.shared, args.template,
                      args.context_window, auto_save=args.auto_save)
    session = _open_session(ctx, specialist, opening)
    _choose_branch(ctx, session, None)  # the shell starts where this user left the session
    return _enter_session_mode(ctx, specialist, session, recap=RECAP if resume else 0)


@command("continue", "aish", "Continue the last session you talked in, with any specialist.",
         args=(SYSTEM, ATTACH, CODE, PROVIDER, MODEL, MESSAGE),
         example='aish -c "and how would that look in Go?"')
def continue_last(ctx: Context, args) -> int:
    """`aish -c ...`: what `SPECIALIST -c ...` does, for whichever specialist spoke last."""
    found = last_session(ctx, None)
    full = REGISTRY.require("specialist", "ask").parse([], prog=found.ai)
    vars(full).update(vars(args), specialist=found.ai, last=found)
    setattr(full, "continue", True)
    return ask(ctx, full)


@command("end-session", "aish", "End a session (it stays on disk and can be continued).",
         args=(Arg("ID", "the session", completes="session"),),
         example="aish --end-session sess_k3f9x2")
def end_session(ctx: Context, args) -> int:
    ctx.sessions.end(args.id)
    ctx.out.note(f"Session {args.id} ended")
    return 0


@command("version", "aish", "Print the version.")
def version(ctx: Context, args) -> int:
    from aish import __version__

    ctx.out.data(f"aish {__version__}")
    return 0


@command("help", "aish", "Show commands, or help for one command.",
         args=(Arg("TOPIC", "a command or specialist", nargs="?", completes="command"),),
         aliases=("h",))
def help_command(ctx: Context, args) -> int:
    from aish.commands.helptext import render_help

    ctx.out.data(render_help(ctx, args.topic))
    return 0


__all__ = ["REGISTRY"]
