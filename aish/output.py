"""The one place that writes to the terminal.

Replies and data go to stdout, everything else to stderr. All text is sanitised on its way out
(model and file text may carry escape sequences, and `apollo ... | cat` reaches a terminal too),
so output is plain text with no control sequences; JSON is written as ASCII, which sanitising
leaves untouched. Colour is only for the shell, where Rich is loaded.

Writing never fails a command. A stream that cannot encode a character (``PYTHONIOENCODING=
ascii``, latin-1) gets ASCII marks from the sanitiser and ``?`` for the rest. A reader that
leaves (``| head -c 1``, quitting ``less``) makes stdout a sink: later writes are dropped so the
reply is still read to the end and stored, and the face reports it with :attr:`broken_pipe`.
A stdout that refuses writes (``> /dev/full``) becomes a sink the same way, and the face names
the cause from :attr:`stdout_error`, so it is not taken for a failure of the session store.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from aish.sanitize import StreamSanitizer, marks_for, sanitize

TYPE_CHECKING = False  # importing typing costs every command 2-3 ms: annotations only
if TYPE_CHECKING:
    from typing import TextIO


class Output:
    def __init__(self, stdout: TextIO | None = None, stderr: TextIO | None = None,
                 environ: Mapping[str, str] | None = None):
        # A stream closed by the caller (`>&-`, `2>&-`) is None in Python: write nowhere
        # instead of failing, so the command still runs and exits with its own code.
        self.stdout = stdout or sys.stdout or open(os.devnull, "w")  # noqa: SIM115
        self.stderr = stderr or sys.stderr or open(os.devnull, "w")  # noqa: SIM115
        environ = os.environ if environ is None else environ
        self.stdout_tty = _isatty(self.stdout)
        self.stderr_tty = _isatty(self.stderr)
        self.color = "NO_COLOR" not in environ and self.stdout_tty
        self._stream: StreamSanitizer | None = None
        self._console = None
        self.broken_pipe = False  # stdout's reader went away; stdout now goes to devnull
        self.stdout_error: str | None = None  # why stdout could not be written, if it failed
        # Marks the sanitiser may use: ␛ and � only where the stream can encode them.
        self._out_marks = marks_for(getattr(self.stdout, "encoding", None))
        self._err_marks = marks_for(getattr(self.stderr, "encoding", None))
        self._waiting = ""  # the "waiting for ..." note on a terminal's stderr, until erased

    # -- stdout ----------------------------------------------------------------------------
    def data(self, text: str = "", end: str = "\n") -> None:
        """Write text on stdout (ids, listings, JSON), sanitised."""
        self._write(self.stdout, sanitize(text, self._out_marks) + end)

    def reply_chunk(self, text: str) -> None:
        """Write a piece of a streamed reply on stdout as it arrives."""
        if self._stream is None:
            self._stream = StreamSanitizer(self._out_marks)
        self._write(self.stdout, self._stream.feed(text))

    def reply_end(self) -> None:
        if self._stream is None:  # nothing arrived (e.g. the provider failed): no blank line
            return
        text = self._stream.flush() + "\n"
        self._stream = None
        self._write(self.stdout, text)

    def _write(self, stream: TextIO, text: str) -> None:
        if stream is self.stdout and self.broken_pipe:
            return
        try:
            try:
                stream.write(text)
            except UnicodeEncodeError:  # e.g. an emoji on latin-1, a lone surrogate on UTF-8
                encoding = getattr(stream, "encoding", None) or "ascii"
                stream.write(text.encode(encoding, "replace").decode(encoding))
            stream.flush()
        except BrokenPipeError:
            if stream is self.stdout:
                self.drop_stdout()
        except OSError as exc:  # `> /dev/full`, a full disk, a quota: the store may be fine
            if stream is self.stdout:
                self.stdout_error = exc.strerror or exc.__class__.__name__
                self.drop_stdout()
        except ValueError:  # the stream was closed under us: nothing to write to
            pass

    def drop_stdout(self) -> None:
        """Send stdout to devnull, so later writes and the interpreter's final flush of what is
        still buffered go nowhere instead of raising again."""
        self.broken_pipe = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):  # not a real file (a test's StringIO)
            pass

    # -- stderr ----------------------------------------------------------------------------
    def note(self, text: str) -> None:
        """Progress and status on stderr."""
        self._write(self.stderr, sanitize(text, self._err_marks) + "\n")

    def provider_event(self, kind: str, text: str) -> None:
        """What a provider reports while it waits: each ``retry`` as a note; on a terminal, a
        ``waiting`` note that the first token (``answered``) or an error erases."""
        if self._waiting and self.stderr_tty:
            self._write(self.stderr, "\r\x1b[K")
        if kind == "retry":
            self.note(f"aish: {text}")
        elif kind == "waiting":
            self._waiting = sanitize(text, self._err_marks) + "..."
        elif kind == "answered":
            self._waiting = ""
        if self._waiting and self.stderr_tty:
            self._write(self.stderr, self._waiting)

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
            self._console = Console(file=_Guarded(self), no_color=not self.color, **extra,
                                    force_terminal=self.stdout_tty or None,
                                    highlight=False, theme=load_theme(self.theme_name).rich)
        return self._console

    theme_name = "default"

    def aside(self, text: str) -> None:
        """A dim line among the shell's rendered replies, on its console so it stays in order
        with them."""
        from rich.text import Text

        self.console().print(Text(text, style="dim"))

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


class _Guarded:
    """stdout as Rich sees it: writes go through :meth:`Output._write`, so the shell's rendered
    replies cannot fail on an encoding or a reader that left either."""

    def __init__(self, out: Output) -> None:
        self._out = out

    def write(self, text: str) -> int:
        self._out._write(self._out.stdout, text)
        return len(text)

    def flush(self) -> None:
        pass  # every write is flushed

    def __getattr__(self, name: str):  # isatty, fileno, encoding, ...
        return getattr(self._out.stdout, name)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
