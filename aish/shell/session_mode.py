"""Session mode: a conversation with one specialist in one session, as the README shows it.

    Welcome to session mode with apollo-ai
    Session ID: sess_def456
    Type 'exit' to end session, 'save' to save context
    apollo (session: sess_def456)> Hello
    apollo> Hi! ...
    apollo (session)> exit
    Session ended

A line is a session command (`save`, `/save`, ... from the registry's ``session`` scope) or a
message; `\\save the whales` sends a message that starts with a command word. `exit` ends the
session; Ctrl-D (or the end of a piped script) leaves it active. With auto-save off, leaving
with unsaved messages asks first.

The shell keeps its own view of the session's tree: the branch it talks on (`branch`, `switch`;
the toolbar names it when it is not main) and, at a fork, which side is shown (Alt-Left /
Alt-Right run `flip`, and the toolbar shows `fork 2/3`). Lines the session core adds to
``session.notices`` (a lost race) are printed after the line that caused them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aish.commands.tree_session_cmds as tree_cmds  # registers branch, undo, ... here too
from aish.commands.session_cmds import SessionState, parse_session_line, tilde
from aish.errors import AishError, Interrupted, ProviderError, UsageError
from aish.shell.lines import Ask, KeyCommand, LineSource, open_lines
from aish.shell.toolbar import session_toolbar

if TYPE_CHECKING:
    from aish.providers.base import Provider

ESCAPE_HINT = ("type 'help' for session commands, or send the line as a message with a leading "
               "backslash: \\{line}")


def _shorten(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def run_session_mode(ctx, specialist, session, *, provider: str | None = None,
                     model: str | None = None, recap: int = 0) -> int:
    """Session mode on the shell's line source, or a new prompt (or stdin script) of its own.

    ``provider`` and ``model`` are the `--provider` / `--model` flags, when the caller has them;
    ``recap``: how many of the last pairs to show first (a session taken up again).
    """
    lines = getattr(ctx, "lines", None) or open_lines(ctx)
    mode = SessionMode(ctx, specialist, session, lines, flags=(provider, model))
    mode.recap = recap
    return mode.run()


class SessionMode:
    """One run of session mode; ``provider`` may be given directly (tests use a scripted one),
    else it is chosen as for the pipe face, with ``flags`` = (--provider, --model)."""

    def __init__(self, ctx, specialist, session, lines: LineSource,
                 provider: Provider | None = None,
                 flags: tuple[str | None, str | None] = (None, None)):
        self.ctx = ctx
        self.flags = flags
        self.lines = lines
        self.state = SessionState(session, specialist, send=self.send,
                                  navigate=getattr(lines, "navigate", None))
        self._provider: Provider | None = provider
        self._provider_error: ProviderError | None = None
        self._first_prompt = True
        self._toolbar: list[tuple[str, str]] = []
        self._flips = (False, False)  # Alt-Left / Alt-Right have a side to go to
        self._draft = ""  # what was typed when a key ran a command, for the next prompt
        self.failed = False  # something could not be saved or ended when leaving
        self.recap = 0  # pairs of the conversation so far to show before the first prompt

    @property
    def session(self):
        return self.state.session

    @property
    def specialist(self):
        return self.state.specialist

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> int:
        outer, self.ctx.in_session = self.ctx.in_session, self.state
        try:
            return self._loop()
        finally:
            self.ctx.in_session = outer

    def _loop(self) -> int:
        out = self.ctx.out
        out.note(f"Welcome to session mode with {self.specialist.ai_name}")
        out.note(f"Session ID: {self.session.id}")
        out.note("Type 'exit' to end session, 'save' to save context")
        self._show_recap()
        self._make_provider()
        while True:
            self._refresh_toolbar()
            try:
                line = self.lines.read(self._ask())
            except KeyCommand as key:
                line, self._draft = key.line, key.text
            except KeyboardInterrupt:
                self.ctx.out.note("(type 'exit' to end the session, or Ctrl-D to leave it)")
                continue
            except EOFError:
                if self._leave(end=False):
                    return self._status()
                continue
            self.handle(line)
            if self.state.draft:  # `tree` on a message of yours: ask it again
                self._draft, self.state.draft = self.state.draft, ""
            if self.state.leave:
                self.state.leave = False
                if self._leave(end=True):
                    return self._status()

    def _show_recap(self) -> None:
        """The last few messages, one shortened line each, to pick the thread up again."""
        if not self.recap or not self.session.stored:
            return
        from aish.messages import USER

        shown = self.session.recent(self.recap)[-2 * self.recap:]
        if shown:
            self.ctx.out.note("Last exchanges:")
        for message in shown:
            who = "you" if message.role == USER else f"{message.ai}-ai"
            self.ctx.out.note(f"  {who}: {_shorten(' '.join(message.content.split()), 200)}")

    def _status(self) -> int:
        from aish.errors import STORAGE

        return STORAGE if self.failed else 0

    def handle(self, line: str) -> None:
        """Run one line: a command or a message. Errors print one line; the session goes on."""
        out = self.ctx.out
        try:
            kind, value, tokens = parse_session_line(line)
            if kind == "empty":
                return
            self._first_prompt = False
            if kind == "message":
                self.send(value)
                return
            try:
                args = value.parse(tokens, prog=value.name)
            except UsageError as exc:
                exc.hint = ESCAPE_HINT.format(line=_shorten(line.strip()))
                raise
            args.state = self.state
            value.handler(self.ctx, args)
        except AishError as exc:
            out.error(str(exc))
        except KeyboardInterrupt:
            out.note("(interrupted)")
        finally:
            tree_cmds.tell_notices(self.ctx, self.session)

    def send(self, text: str | None) -> None:
        """Send a message (None: the unanswered one again) and stream the reply."""
        from aish.commands.exchange import send
        from aish.shell.reply import show_streaming

        try:
            send(self.ctx, self.session, self.specialist, text, self._provider_or_raise,
                 present=show_streaming, live=True,
                 retry_hint="your message is kept in the session; type 'retry' to send it again")
        except Interrupted:  # Ctrl-C while another reply held the branch: nothing was stored
            if text:
                self.state.draft = text  # the next prompt starts with it, to send again
            raise

    # -- leaving ---------------------------------------------------------------------------
    def _leave(self, *, end: bool) -> bool:
        """Save (or ask), then end or just leave; False only when the user chose to stay.

        Leaving always works: when the store cannot take the messages (Redis stopped, the
        session removed elsewhere) they are kept in a recovery file and one line says so.
        """
        out = self.ctx.out
        session = self.session
        count = session.unsaved
        plural = "s" if count != 1 else ""
        if count and not session.save_every:
            try:
                keep = self.lines.confirm(f"Save {count} unsaved message{plural} before leaving?")
            except KeyboardInterrupt:
                out.note("(still in the session)")
                return False
            if not keep:
                session.pending.clear()
                out.note(f"{count} unsaved message{plural} discarded")
        if session.pending:
            try:
                session.save()
                tree_cmds.tell_notices(self.ctx, session)
                if not session.save_every:
                    out.note(f"Session saved to {tilde(session.location, self.ctx.environ)}")
            except AishError as exc:
                self._rescue(str(exc))
                return True
            except KeyboardInterrupt:  # a store that hangs must not trap the user either
                self._rescue("interrupted while saving")
                return True
        if not session.stored:
            out.note(f"Left session {session.id}; it had no messages, so nothing was stored")
            return True
        try:
            if end:
                session.sessions.end(session.id, self.specialist.name)
                out.note("Session ended")
            else:
                out.note(f"Left session {session.id}; it stays active "
                         f"(continue with: {self.specialist.name} --session {session.id})")
        except AishError as exc:
            self.failed = True
            out.error(f"could not end session {session.id}: {exc}")
        except KeyboardInterrupt:
            self.failed = True
            out.error(f"could not end session {session.id}: interrupted")
        return True

    def _rescue(self, reason: str) -> None:
        """One line on what could not be saved, and where it was kept instead."""
        from aish.management.rescue import keep_unsaved

        self.failed = True
        count = self.session.unsaved
        what = f"could not save {count} message{'s' if count != 1 else ''}: {reason}"
        try:
            path = keep_unsaved(self.session)
        except AishError as again:
            self.ctx.out.error(f"{what}; they are lost ({again})")
            return
        shown = tilde(path, self.ctx.environ)
        self.ctx.out.error(f"{what}; kept in {shown} (restore with: aish --restore-session "
                           f"{shown})")

    # -- prompt, toolbar, provider ---------------------------------------------------------
    def _ask(self) -> Ask:
        name = self.specialist.name
        where = f"(session: {self.session.id})" if self._first_prompt else "(session)"
        message = [("class:prompt", f"{name} "), ("class:prompt.session", where),
                   ("class:prompt", "> ")]
        draft, self._draft = self._draft, ""
        return Ask(message, "session", toolbar=lambda: self._toolbar, default=draft,
                   flips=self._flips)

    def _refresh_toolbar(self) -> None:
        if not self.lines.interactive:
            return
        session = self.session
        try:
            used, size = session.window_use()
        except AishError:
            used, size = 0, session.context_window
        model = getattr(self._provider, "model", None)
        unsaved = session.unsaved if not session.save_every else 0
        try:
            fork = tree_cmds.tree_view(self.state)
        except AishError:
            fork = None
        self._flips = (fork[1].can_flip(-1), fork[1].can_flip(1)) if fork else (False, False)
        self._toolbar = session_toolbar(session.id, used, size, self.specialist.name, model,
                                        unsaved, session.branch, fork[1].label if fork else None,
                                        session.summary.header.title)

    def _make_provider(self) -> Provider | None:
        """The provider, made once; a failure is shown once and retried on the next message."""
        if self._provider is not None:
            return self._provider
        from aish.commands.exchange import make

        try:
            # Its spinner is all it shows while a reply is awaited.
            self._provider = make(self.ctx, self.specialist, *self.flags, events=())
            self._provider_error = None
        except ProviderError as exc:
            if self._provider_error is None:
                self.ctx.out.error(str(exc))
            self._provider_error = exc
        return self._provider

    def _provider_or_raise(self) -> Provider:
        provider = self._make_provider()
        if provider is None:
            assert self._provider_error is not None  # _make_provider keeps why it failed
            raise self._provider_error
        return provider
