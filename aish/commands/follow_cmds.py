"""Watching a session live: `aish --follow-session ID [--branch B]`, and `follow` in session
mode.

A follower shows the last few exchanges, then every message others store and every reply
being streamed, piece by piece, as it arrives, through the renderer the shell shows replies
with (plain text, flushed per piece, when stdout is no terminal). It stops on Ctrl-C, or on
`q` at a terminal; session mode then prompts again.

Each follower keeps where it is (aish.follow_cursor), so that ``--resume`` after a follower
was stopped or killed shows, instead of the recap, every event it had not shown yet, once.
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
CUT_MARK = "[reply cut: writer gone]"

BRANCH = Arg("--branch", "only this branch (default: every branch; in session mode, yours)",
             metavar="NAME", completes="branch")
LAST = Arg("--last", f"show the last N exchanges first (default {RECAP})", type=positive_int,
           metavar="N")
RESUME = Arg("--resume", "go on where your last follower of this session stopped: what it "
             "had not shown yet, nothing twice (instead of the last exchanges)",
             flag=True)


@command("follow-session", "aish", "Watch a session live: others' messages and the reply "
         "being streamed, as they arrive (Ctrl-C stops).",
         args=(Arg("ID", "the session", completes="session"), BRANCH, LAST, RESUME),
         example="aish --follow-session sess_k3f9x2 --branch main")
def follow_session(ctx: Context, args) -> int:
    follow(ctx, args.id, args.branch, RECAP if args.last is None else args.last, args.resume)
    return 0


@command("follow", "session", "Watch this session live on your branch (others' messages and "
         "replies as they stream); Ctrl-C or q comes back here.",
         args=(BRANCH, LAST, RESUME), example="follow")
def follow_here(ctx: Context, args) -> int:
    state = args.state
    session = state.session
    if not session.stored:
        session.save()
    if not session.stored:
        ctx.out.note("No messages yet: the session is stored with its first message.")
        return 0
    follow(ctx, session.id, args.branch or session.branch,
           RECAP if args.last is None else args.last, args.resume)
    session.summary = ctx.sessions.summary(session.id)  # others moved it meanwhile
    return 0


def follow(ctx: Context, sid: str, branch: str | None, recap: int, resume: bool = False) -> None:
    """Show ``sid`` (only ``branch``, when given) live until Ctrl-C or `q`; ``resume``: from
    where this user's last follower of it stopped, instead of its last ``recap`` exchanges."""
    sessions = ctx.sessions
    if ctx.config.storage_type == "redis" and ctx.config.stream_length == 0:
        ctx.out.warn("sessions.storage.stream_length is 0: writers publish nothing to follow")
    view = _View(ctx, sid, branch)
    view.head()  # a session or branch that does not exist: one line, before anything else
    feed = sessions.follow_feed(sid)
    place = _Place(ctx, view, feed)
    saved = place.saved() if resume else None
    resumed = saved is not None and feed.resume(saved.get("feed"))
    if not resumed:
        feed.mark()  # before the recap's read: whatever is stored after it is shown after it
    where = f" (branch {branch})" if branch else ""
    with _keys(ctx) as keys:
        stop = "Ctrl-C or q stops" if keys.active else "Ctrl-C stops"
        ctx.out.note(f"Following session {sid}{where}; {stop}")
        if resume:
            ctx.out.note("Going on where your last follower stopped" if resumed else
                         "No earlier follower of this session to go on from: from now")
        try:
            if resumed and saved is not None:
                if feed.trimmed():
                    ctx.out.warn("some events may have been trimmed from the session's "
                                 "stream before they were shown (sessions.storage."
                                 "stream_length); what is left follows")
                view.reopen(saved.get("streaming"))
            else:
                # Kept before anything is shown: a follower stopped during its recap has a
                # place to go on from (the mark, from which nothing was shown yet).
                place.save()
                view.recap(recap)
            place.save()
            while not keys.quit():
                events = feed.read(0.2 if keys.active else 5.0)
                for event in events:
                    view.show(event)
                if events:
                    place.save()
        except KeyboardInterrupt:
            pass
        finally:
            view.close()
            feed.close()
    ctx.out.note(f"Stopped following session {view.sid}")


class _Place:
    """Where this follower is, saved after each batch of events it showed."""

    def __init__(self, ctx: Context, view: _View, feed) -> None:
        from aish.follow_cursor import Cursors

        self.ctx, self.view, self.feed = ctx, view, feed
        self.cursors = Cursors(ctx.config.home / "following")
        self._broken = False

    def saved(self) -> dict | None:
        return self.cursors.load(self.ctx.sessions.location(self.view.sid))

    def save(self) -> None:
        if self._broken:
            return
        try:
            self.cursors.save(self.ctx.sessions.location(self.view.sid), self.feed.position(),
                              self.view.streaming())
        except OSError as exc:  # following goes on; only --resume loses its place
            self._broken = True
            self.ctx.out.warn(f"cannot keep this follower's place ({exc.strerror or exc}); "
                              "--resume will not find it")


class _View:
    """What a follower has shown: replies still streaming and messages already on screen."""

    def __init__(self, ctx: Context, sid: str, branch: str | None):
        self.ctx, self.sid, self.branch = ctx, sid, branch
        self.open: dict[str, list] = {}  # reply id -> [renderer, text shown so far, ai, branch]
        # Replies an earlier follower showed part of (resumed): id -> (ai, branch, chars shown).
        self.earlier: dict[str, tuple[str, str, int]] = {}
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

    def reopen(self, streaming: object) -> None:
        """Take up the replies an earlier follower was showing when it stopped (``streaming``
        as `streaming` gave it): what arrives of them goes on from where it left off."""
        for reply, shown in (streaming.items() if isinstance(streaming, dict) else ()):
            if isinstance(shown, dict) and isinstance(shown.get("shown"), int):
                self.earlier[str(reply)] = (str(shown.get("ai", "")),
                                            str(shown.get("branch", "")), max(0, shown["shown"]))

    def streaming(self) -> dict[str, dict]:
        """How much of each reply streaming now was shown (for a follower that resumes)."""
        found = {reply: {"ai": ai, "branch": branch, "shown": count}
                 for reply, (ai, branch, count) in self.earlier.items()}
        for reply, (_renderer, shown, ai, branch) in self.open.items():
            count = self.earlier[reply][2] if reply in self.earlier else 0
            found[reply] = {"ai": ai, "branch": branch, "shown": count + len(shown)}
        return found

    def _opened(self, reply: str, ai: str, branch: str | None) -> list:
        """A new entry of `open`: [renderer, the text shown so far, ai, branch]."""
        prefix = self._label(ai, branch)
        if reply in self.earlier:
            prefix += "… "  # the rest of a reply shown in part before
        return [self.ctx.out.reply_renderer(prefix=prefix), "", ai, branch or ""]

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
        elif kind == "gone":
            self._cut(event.reply)
        elif kind == "ref" and event.record is not None:
            op = event.record.get("op")
            if op not in (None, "keep") and self._wanted(event.branch):
                self.ctx.out.note(f"(branch {event.branch}: {op})")
        elif kind == "rename":
            self.ctx.out.note(f"(session {self.sid} is now {event.text})")
            self.sid = event.text
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
        if streaming is None and message.id not in self.earlier:
            self._whole(message)
            return
        if streaming is None:
            streaming = self._opened(message.id, message.ai, message.ref)
        earlier = self.earlier.pop(message.id, None)
        before = earlier[2] if earlier is not None else 0
        renderer, shown = streaming[:2]
        if message.content[before:].startswith(shown):  # the rest the pieces did not bring
            renderer.feed(message.content[before + len(shown):])
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
            streaming = self.open[event.reply] = self._opened(event.reply, event.ai,
                                                              event.branch)
            if streaming[0].markdown:
                self._preview()
        streaming[0].feed(event.text)
        streaming[1] += event.text

    def _end(self, reply: str) -> None:
        """The reply stopped streaming; when it was not stored (the request failed) what
        arrived stays on screen as it is."""
        streaming = self.open.pop(reply, None)
        self.earlier.pop(reply, None)
        if streaming is not None:
            self.done.add(reply)
            streaming[0].finish()
            self._preview_done()

    def _cut(self, reply: str) -> None:
        """The reply's writer went away mid-reply (killed): what arrived stays, marked, and
        following goes on. Its pieces, should the writer come back after all, start anew."""
        streaming = self.open.pop(reply, None)
        earlier = self.earlier.pop(reply, None)
        if streaming is not None:
            streaming[0].finish()
            self._preview_done()
        if streaming is not None or earlier is not None:
            self.ctx.out.data(CUT_MARK)

    def close(self) -> None:
        for renderer, *_rest in list(self.open.values()):
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
                           for renderer, *_rest in list(self.open.values())])

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
