"""What a command handler works with: streams, configuration and the session core, built lazily
so that a command pays only for what it uses."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from functools import cached_property

from aish.errors import LimitError
from aish.output import Output
from aish.records import Record

TYPE_CHECKING = False  # importing typing costs every command 2-3 ms: annotations only
if TYPE_CHECKING:
    from typing import TextIO


class Context(Record):
    """What a command runs with; every part is made on first use."""

    _fields: tuple[str, ...] = ("environ", "stdin", "out", "now", "interactive",
                                "present_reply", "enter_session", "in_session")

    def __init__(self, environ: dict | None = None, stdin: TextIO | None = None,
                 out: Output | None = None, now: Callable[[], float] = time.time,
                 interactive: bool = False, present_reply: Callable | None = None,
                 enter_session: Callable | None = None, in_session: object = None) -> None:
        self.environ = dict(os.environ) if environ is None else environ
        self.stdin = stdin
        self.out = Output() if out is None else out
        self.now = now
        self.interactive = interactive  # True inside the aish> shell
        # Hooks a face installs, so that commands never import a face:
        # present_reply(ctx, name, produce) shows a streamed reply (produce(on_text) streams
        # it); enter_session(ctx, specialist, session, provider=, model=) runs interactive
        # session mode.
        self.present_reply = present_reply
        self.enter_session = enter_session
        # session mode's SessionState while it runs (Tab completes branches)
        self.in_session = in_session

    @cached_property
    def config(self):
        from aish import config

        loaded = config.load(self.environ)
        for warning in loaded.warnings:
            self.out.warn(warning)
        self.out.theme_name = loaded.theme
        return loaded

    @cached_property
    def store(self):
        from aish.store import open_store

        return open_store(self.config, warn=self.out.warn)

    @cached_property
    def audit(self):
        from aish.audit import AuditLog

        return AuditLog(self.config.audit_log)

    @cached_property
    def sessions(self):
        from aish.sessions import Sessions

        return Sessions(self.store, self.config, now=self.now, audit=self.audit)

    @cached_property
    def checkouts(self):
        """Which branch of each session this user works on (local to this user)."""
        from aish.checkout import Checkouts

        return Checkouts(self.config.home / "checkouts.json")

    @cached_property
    def recent(self):
        """The session this user last talked in, per specialist (local to this user)."""
        from aish.recent import LastSessions

        return LastSessions(self.config.home / "last-sessions.json")

    @cached_property
    def specialists(self):
        from aish.specialists import roster

        return roster(self.config.specialists, source=str(self.config.file))

    def specialist(self, name: str):
        from aish.specialists import resolve

        return resolve(name, self.specialists)

    @property
    def stdin_is_tty(self) -> bool:
        stream = self.stdin if self.stdin is not None else sys.stdin
        try:
            return stream is not None and stream.isatty()
        except (AttributeError, ValueError):
            return False

    def ask_line(self, question: str) -> str:
        """One line typed by the user at a terminal, after ``question`` on stderr ("" at EOF)."""
        self.out.note(question.rstrip())
        stream = self.stdin if self.stdin is not None else sys.stdin
        try:
            return stream.readline() if stream is not None else ""
        except (OSError, ValueError, KeyboardInterrupt):
            return ""

    def read_stdin(self) -> str:
        """All of stdin as text, bounded by the stdin limit; invalid UTF-8 is replaced (noted)."""
        stream = self.stdin if self.stdin is not None else sys.stdin
        if stream is None or self.stdin_is_tty:
            return ""
        limit = self.config.max_stdin_bytes
        raw_stream = getattr(stream, "buffer", None)
        try:
            data = raw_stream.read(limit + 1) if raw_stream else stream.read(limit + 1)
        except (OSError, ValueError):
            return ""
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        if len(data) > limit:
            raise LimitError(f"stdin is larger than the limit of {limit} bytes",
                             hint="raise sessions.limits.max_stdin_bytes")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            self.out.warn("stdin is not valid UTF-8; invalid bytes were replaced")
            return data.decode("utf-8", "replace")
