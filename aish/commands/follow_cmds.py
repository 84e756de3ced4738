"""Watching a session live: `aish --follow-session ID [--branch B]`, and `follow` in session
mode.

A follower shows the last few exchanges, then every message others store and every reply
being streamed, piece by piece, as it arrives, through the renderer the shell shows replies
with (plain text, flushed per piece, when stdout is no terminal). It stops on Ctrl-C, or on
`q` at a terminal; session mode then prompts again.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING, Any

from aish.commands.context import Context
from aish.commands.registry import Arg, command, positive_int
from aish.errors import SessionNotFound

if TYPE_CHECKING:
    from aish.follow import Event
    from aish.messages import Message

RECAP = 2  # exchanges shown before the live part
PREVIEW_ROWS = 6  # as the shell: the open block of each streaming reply, at a terminal
REFRESH_PER_SECOND = 12.5
MAIN = "main"

BRANCH = Arg("--branch", "only this branch (default: every branch; in session mode, yours)",
             metavar="NAME", completes="branch")
LAST = Arg("--last", f"show the last N exchanges first (default {RECAP})", type=positive_int,
           metavar="N")


@command("follow-session", "aish", "Watch a session live: others' messages and the reply "
         "being streamed, as they arrive (Ctrl-C stops).",
         args=(Arg("ID", "the session", completes="session"), BRANCH, LAST),
         example="aish --follow-session sess_k3f9x2 --branch main")
def follow_session(ctx: Context, args) -> int:
    follow(ctx, args.id, args.branch, RECAP if args.last is None else args.last)
    return 0


@command("follow", "session", "Watch this session live on your branch (others' messages and "
         "replies as they stream); Ctrl-C or q comes back here.",
         args=(BRANCH, LAST), example="follow")
def follow_here(ctx: Context, args) -> int:
    state = args.state
    session = state.session
    if not session.stored:
        session.save()
    if not session.stored:
        ctx.out.note("No messages yet: the session is stored with its first message.")
        return 0
    follow(ctx, session.id, args.branch or session.branch,
           RECAP if args.last is None else args.last)
    session.summary = ctx.sessions.summary(session.id)  # others moved it meanwhile
    return 0


def follow(ctx: Context, sid: str, branch: str | None, recap: int) -> None:
    """Show ``sid`` (only ``branch``, when given) live until Ctrl-C or `q`."""
    sessions = ctx.sessions
    if ctx.config.storage_type == "redis" and ctx.config.stream_length == 0:
        ctx.out.warn("sessions.storage.stream_length is 0: writers publish nothing to follow")
    view = _View(ctx, sid, branch)
    view.head()  # a session or branch that does not exist: one line, before anything else
    feed = sessions.follow_feed(sid)
    feed.mark()  # before the recap's read: whatever is stored after it is shown after it
    where = f" (branch {branch})" if branch else ""
    with _keys(ctx) as keys:
        stop = "Ctrl-C or q stops" if keys.active else "Ctrl-C stops"
        ctx.out.note(f"Following session {sid}{where}; {stop}")
        try:
            view.recap(recap)
            while not keys.quit():
                for event in feed.read(0.2 if keys.active else 5.0):
                    view.show(event)
        except KeyboardInterrupt:
            pass
        finally:
            view.close()
            feed.close()
    ctx.out.note(f"Stopped following session {sid}")


class _View:
    """What a follower has shown: replies still streaming and messages already on screen."""

    def __init__(self, ctx: Context, sid: str, branch: str | None):
        self.ctx, self.sid, self.branch = ctx, sid, branch
        self.open: dict[str, list] = {}  # reply id -> [renderer, the text shown so far]
        self.done: set[str] = set()
        self._live: Any = None  # at a terminal: the open blocks of the replies streaming now

    def head(self):
        head = self.ctx.sessions.summary(self.sid).head(self.branch or MAIN)
        if head is None:
            raise SessionNotFound(f"session {self.sid} has no branch {self.branch}",
                                  hint=f"see aish --list-branches {self.sid}")
        return head

    def recap(self, pairs: int) -> None:
        sessions = self.ctx.sessions
        head = self.head()
        shown = sessions.path(self.sid, head, pairs) if pairs else []
        for message in shown:
            self._whole(message)
        # Older messages are there already: a stored message seen again is never shown twice.
        self.done.update(m.id for m in sessions.path(self.sid, head, pairs + 1))

    def _wanted(self, branch: str | None) -> bool:
        return self.branch is None or (branch or MAIN) == self.branch

    def _label(self, ai: str, branch: str | None) -> str:
        if self.branch is None and branch and branch != MAIN:
            return f"{ai} [{branch}]> "
        return f"{ai}> "

    def show(self, event: Event) -> None:
        kind = event.kind
        if kind == "msg" and event.message is not None:
            self._message(event.message)
        elif kind == "chunk":
            self._piece(event)
        elif kind == "end":
            self._end(event.reply)
        elif kind == "ref" and event.record is not None:
            op = event.record.get("op")
            if op not in (None, "keep") and self._wanted(event.branch):
                self.ctx.out.note(f"(branch {event.branch}: {op})")
        elif kind == "rewrite":
            self.close()
            self.ctx.out.note(f"(session {self.sid} was rewritten; its end again:)")
            self.done.clear()
            self.recap(RECAP)

    def _message(self, message: Message) -> None:
        if message.id in self.done or not self._wanted(message.ref):
            return
        self.done.add(message.id)
        streaming = self.open.pop(message.id, None)
        if streaming is None:
            self._whole(message)
            return
        renderer, shown = streaming
        if message.content.startswith(shown):  # the rest the pieces did not bring
            renderer.feed(message.content[len(shown):])
        renderer.finish()
        self._preview_done()

    def _whole(self, message: Message) -> None:
        if message.role == "user":
            self.ctx.out.data(f"user to {message.ai}> {message.content}")
            return
        renderer = self.ctx.out.reply_renderer(prefix=self._label(message.ai, message.ref))
        renderer.feed(message.content)
        renderer.finish()

    def _piece(self, event: Event) -> None:
        if event.reply in self.done or not self._wanted(event.branch):
            return
        streaming = self.open.get(event.reply)
        if streaming is None:
            renderer = self.ctx.out.reply_renderer(prefix=self._label(event.ai, event.branch))
            streaming = self.open[event.reply] = [renderer, ""]
            if renderer.markdown:
                self._preview()
        streaming[0].feed(event.text)
        streaming[1] += event.text

    def _end(self, reply: str) -> None:
        """The reply stopped streaming; when it was not stored (the request failed) what
        arrived stays on screen as it is."""
        streaming = self.open.pop(reply, None)
        if streaming is not None:
            self.done.add(reply)
            streaming[0].finish()
            self._preview_done()

    def close(self) -> None:
        for renderer, _shown in list(self.open.values()):
            with contextlib.suppress(Exception):
                renderer.finish()
        self.open.clear()
        self._preview_done()

    def _preview(self) -> None:
        """Show the open block of each streaming reply below what is printed, as the shell
        does while a reply streams (a Markdown block is printed once it is complete)."""
        if self._live is not None:
            return
        from rich.console import Group
        from rich.live import Live

        def previews():
            return Group(*[renderer.live_preview(PREVIEW_ROWS)
                           for renderer, _shown in list(self.open.values())])

        self._live = Live(console=self.ctx.out.console(), get_renderable=previews,
                          refresh_per_second=REFRESH_PER_SECOND, transient=True)
        self._live.start()

    def _preview_done(self) -> None:
        if self._live is not None and not self.open:
            live, self._live = self._live, None
            live.stop()


class _Keys:
    """`q` typed at the terminal while following; the terminal is given back as it was."""

    def __init__(self, fd: int | None):
        self.fd = fd
        self.saved: list | None = None

    @property
    def active(self) -> bool:
        return self.saved is not None

    def __enter__(self) -> _Keys:
        if self.fd is None:
            return self
        import termios
        import tty

        try:
            self.saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)  # keys without Enter; Ctrl-C still interrupts
        except (termios.error, OSError):
            self.saved = None
        return self

    def quit(self) -> bool:
        if self.saved is None or self.fd is None:
            return False
        import select

        readable, _, _ = select.select([self.fd], [], [], 0)
        if not readable:
            return False
        try:
            typed = os.read(self.fd, 64)
        except OSError:
            return False
        return b"q" in typed.lower()

    def __exit__(self, *exc) -> None:
        if self.saved is not None and self.fd is not None:
            import termios

            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


def _keys(ctx: Context) -> _Keys:
    if ctx.stdin is not None or not ctx.stdin_is_tty or sys.stdin is None:
        return _Keys(None)
    try:
        return _Keys(sys.stdin.fileno())
    except (AttributeError, ValueError, OSError):
        return _Keys(None)
