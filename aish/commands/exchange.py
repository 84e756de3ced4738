"""One exchange in a session, the same for the pipe face and the shell: make the provider, send
the message, show the reply the face's way and say how it ended.

A message is never lost to a failure: when the provider cannot be made, the message is kept
unanswered, as `Session.exchange` keeps it when the request fails, and the error's hint says
how to send it again.

A face shows a reply with a presenter, ``present(ctx, name, produce)``, which calls
``produce(on_text)`` with its own ``on_text`` and returns what it returned: `plain` writes the
text on stdout as it arrives (the pipe face), `silent` shows nothing (`--get-id`), and the shell
lends a live one (rendered, with a spinner). After a live reply an interruption or an empty or
cut reply is a note and the session goes on; after a plain one an interruption is an error, so
that `> analysis.md` never passes for a whole answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aish.commands.context import Context
    from aish.providers.base import Notify, Provider
    from aish.sessions import Reply, Session
    from aish.specialists import Specialist

Present = Callable  # present(ctx, name, produce) -> what produce(on_text) returned


def plain(ctx: Context, name: str, produce):
    """The reply's text on stdout as it arrives, ended with a newline."""
    try:
        return produce(ctx.out.reply_chunk)
    finally:
        ctx.out.reply_end()


def silent(ctx: Context, name: str, produce):
    return produce(lambda _text: None)


def code(ctx: Context, name: str, produce):
    """Only the code of the reply (`--code`): what its Markdown fences hold, without the fence
    lines, as it arrives; blocks are parted by a blank line. A reply without code prints
    nothing on stdout and says so on stderr."""
    from aish.render import BlockSplitter

    splitter = BlockSplitter()
    shown = 0

    def show(blocks) -> None:
        nonlocal shown
        for block in blocks:
            if block.kind != "code" or not (block.opens or block.text):
                continue  # prose, or the empty end of a block printed in pieces
            if block.opens:
                ctx.out.reply_chunk("\n\n" if shown else "")
                shown += 1
            else:  # the next piece of a long block: its lines go on
                ctx.out.reply_chunk("\n")
            ctx.out.reply_chunk(block.text)

    try:
        finished = produce(lambda text: show(splitter.feed(text)))
    finally:
        show(splitter.finish())
        ctx.out.reply_end()
    if finished and not shown:
        ctx.out.note(f"({name} replied without a code block; the whole reply is in the "
                     f"session)")
    return finished


EVENTS = ("waiting", "answered", "retry")  # what a provider reports while a reply is awaited


def make(ctx: Context, specialist: Specialist, flag: str | None = None,
         model: str | None = None, *, events: tuple[str, ...] = EVENTS) -> Provider:
    """The provider for ``--provider`` / ``--model`` (flag > specialist > config > environment),
    telling the face the ``events`` it shows: a face with its own spinner shows no waiting."""
    from aish.providers import choose, make_provider

    name = choose(specialist, ctx.config, flag, ctx.environ)
    notify: Notify = ctx.out.provider_event if events == EVENTS else (
        lambda kind, text: ctx.out.provider_event(kind, text) if kind in events else None)
    return make_provider(name, specialist, ctx.config, model, ctx.environ, notify)


def send(ctx: Context, session: Session, specialist: Specialist, text: str | None,
         provider: Callable[[], Provider], *, present: Present, live: bool,
         retry_hint: str, system: str | None = None, remember: bool = True) -> Reply:
    """Send ``text`` (None: the session's unanswered message again) with the provider that
    ``provider()`` makes, and show the reply with ``present``; ``live`` when the face is the
    shell's; ``system``: an instruction for this exchange only. A `ProviderError` leaves with
    ``retry_hint`` as its hint. ``remember``: this is the session `-c` continues next (even
    when the request fails: `-c --retry` sends the kept message again)."""
    from aish.errors import ProviderError

    try:
        try:
            made = provider()
        except ProviderError:
            if text is not None:
                session.add_user(specialist, text)  # kept, unanswered, for a retry
            raise
        floor = _floor_wait(ctx, live)
        reply = present(ctx, specialist.name, lambda on_text: session.exchange(
            specialist, text, made, on_text=on_text, system=system, floor=floor))
    except ProviderError as exc:
        exc.hint = retry_hint
        if remember and (session.stored or session.pending):  # the message is kept
            _remember(ctx, session, specialist)
        raise
    if remember:
        _remember(ctx, session, specialist)
    _report(ctx, specialist, session, reply, made, live)
    # After the reply is shown (and kept): a title must never hold the answer back.
    from aish.titles import auto_title

    auto_title(session, specialist, made, reply)
    return reply


def _floor_wait(ctx: Context, live: bool):
    """While another reply streams on the branch: the shell waits for it as long as it takes
    (Ctrl-C gives up), the pipe face up to ``sessions.floor_wait_seconds``, then talks on a new
    branch. Either says who it waits for."""
    from aish.sessions import FloorWait

    if live:
        return FloorWait(None, lambda holder: ctx.out.aside(f"{holder.asking}… (waiting for "
                                                            f"that reply to finish)"))
    return FloorWait(ctx.config.floor_wait_seconds,
                     lambda holder: ctx.out.note(f"{holder.asking}… (waiting up to "
                                                 f"{ctx.config.floor_wait_seconds:g}s for that "
                                                 f"reply to finish)"))


def _remember(ctx: Context, session: Session, specialist: Specialist) -> None:
    try:
        ctx.recent.note(session.id, specialist.name, session.location, ctx.now())
    except OSError as exc:  # a read-only home must not stop the conversation
        ctx.out.warn(f"could not remember the last session for -c: {exc.strerror or exc}")


def _report(ctx: Context, specialist: Specialist, session: Session, reply: Reply,
            provider: Provider, live: bool) -> None:
    from aish.errors import Interrupted
    from aish.providers import cut_note

    if live:
        if reply.interrupted:
            ctx.out.note("(reply interrupted; what arrived is kept in the session)")
        elif not reply.text.strip():
            ctx.out.note(f"({specialist.name} sent an empty reply)")
        if reply.message.cut:
            ctx.out.aside(cut_note(provider))
        return
    if reply.message.cut:
        ctx.out.note(cut_note(provider))
    if reply.interrupted:
        raise Interrupted(f"interrupted: reply kept in session {session.id}, marked interrupted")
