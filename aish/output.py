"""The one place that writes to the terminal.

Replies and data go to stdout, everything else to stderr. All text is sanitised on its way out
(model and file text may carry escape sequences, and `apollo ... | cat` reaches a terminal too),
so output is plain text with no control sequences; JSON is written as ASCII, which sanitising
leaves untouched. Colour is only for the shell, where Rich is loaded.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from aish.sanitize import StreamSanitizer, sanitize


class Output:
    def __init__(self, stdout: TextIO | None = None, stderr: TextIO | None = None,
                 environ: dict | None = None):
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        environ = os.environ if environ is None else environ
        self.stdout_tty = _isatty(self.stdout)
        self.stderr_tty = _isatty(self.stderr)
        self.color = "NO_COLOR" not in environ and self.stdout_tty
        self._stream: StreamSanitizer | None = None
        self._console = None

    # -- stdout ----------------------------------------------------------------------------
    def data(self, text: str = "", end: str = "\n") -> None:
        """Write text on stdout (ids, listings, JSON), sanitised."""
        self.stdout.write(sanitize(text) + end)
        self.stdout.flush()

    def reply_chunk(self, text: str) -> None:
        """Write a piece of a streamed reply on stdout as it arrives."""
        if self._stream is None:
            self._stream = StreamSanitizer()
        self.stdout.write(self._stream.feed(text))
        self.stdout.flush()

    def reply_end(self) -> None:
        if self._stream is None:  # nothing arrived (e.g. the provider failed): no blank line
            return
        self.stdout.write(self._stream.flush() + "\n")
        self._stream = None
        self.stdout.flush()

    # -- stderr ----------------------------------------------------------------------------
    def note(self, text: str) -> None:
        """Progress and status on stderr."""
        self.stderr.write(sanitize(text) + "\n")
        self.stderr.flush()

    def warn(self, text: str) -> None:
        self.note(f"aish: warning: {text}")

    def error(self, text: str) -> None:
        self.note(f"aish: error: {text}")

    # -- the shell's rich console ----------------------------------------------------------
    def console(self):
        """A Rich console on stdout for the interactive shell (created on first use)."""
        if self._console is None:
            from rich.console import Console

            from aish.theme import load_theme

            # NO_COLOR: no escape sequences at all (rich would keep bold), same layout.
            extra = {} if self.color else {"color_system": None}
            self._console = Console(file=self.stdout, no_color=not self.color, **extra,
                                    force_terminal=self.stdout_tty or None,
                                    highlight=False, theme=load_theme(self.theme_name).rich)
        return self._console

    theme_name = "default"

    @property
    def reply_open(self) -> bool:
        """A reply was started and not ended (e.g. an error or Ctrl-C cut it short)."""
        return self._stream is not None

    def reply_renderer(self, prefix: str | None = None):
        """A StreamRenderer for one reply: Markdown layout on a terminal (NO_COLOR takes the
        colour away, not the layout), with highlighted code when colour is on."""
        from aish.render import StreamRenderer
        from aish.theme import load_theme

        return StreamRenderer(self.console(), code_theme=load_theme(self.theme_name).code,
                              prefix=prefix, markdown=self.stdout_tty)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
