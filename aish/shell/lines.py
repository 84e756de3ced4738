"""Where the shell's lines come from.

On a terminal, a prompt_toolkit prompt (:class:`PromptLines`) with completion, persistent
history, multi-line input, $EDITOR and a toolbar. Otherwise a plain stream
(:class:`StreamLines`): `aish < script` runs the script's command lines, and
`printf 'Hello\\ncontext\\nexit\\n' | aish --session apollo` drives session mode. Both raise
EOFError at the end of input and KeyboardInterrupt on Ctrl-C, so the loops treat them alike.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

from aish.errors import AishError

Fragments = list[tuple[str, str]]


@dataclass(frozen=True)
class Ask:
    """One prompt: its text, what Tab completes (``shell`` or ``session``), the toolbar, the
    text it starts with, and whether Alt-Left / Alt-Right flip (older, newer side of a fork)."""

    message: Fragments
    scope: str = "shell"
    toolbar: Callable[[], Fragments] | None = None
    default: str = ""
    flips: tuple[bool, bool] = (False, False)


class KeyCommand(Exception):
    """A key that runs a command line (``line``) instead of editing; ``text`` is what was
    typed so far, for the next prompt to start with."""

    def __init__(self, line: str, text: str = ""):
        super().__init__(line)
        self.line = line
        self.text = text


class LineSource(Protocol):
    interactive: bool

    def read(self, ask: Ask) -> str: ...

    def confirm(self, question: str, default: bool = True) -> bool: ...


def answer_is_yes(answer: str, default: bool) -> bool:
    answer = answer.strip().lower()
    if not answer:
        return default
    return answer in ("y", "yes")


class StreamLines:
    """Lines from a stream, without prompts (script mode)."""

    interactive = False

    def __init__(self, stream: TextIO):
        self.stream = stream

    def read(self, ask: Ask | None = None) -> str:
        line = self.stream.readline()
        if not line:
            raise EOFError
        return line.rstrip("\r\n")

    def confirm(self, question: str, default: bool = True) -> bool:
        """The next line answers; at the end of input the default holds."""
        try:
            return answer_is_yes(self.read(), default)
        except EOFError:
            return default


def history_file() -> Path:
    """Input history lives in the platform's user state dir (honours HOME and XDG_STATE_HOME)."""
    import platformdirs

    return Path(platformdirs.user_state_dir("aish")) / "history"


def _private_file(path: Path) -> Path:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    os.close(fd)
    return path


class PromptLines:
    """A prompt_toolkit prompt shared by the shell and session mode (one history for both)."""

    interactive = True

    def __init__(self, theme, vocabulary, *, color: bool = True, history: Path | None = None,
                 private_sessions: bool = False, input=None, output=None):
        """``private_sessions``: session-mode input is remembered in memory only (with
        encryption on, messages must not reach the history file in clear)."""
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory, History, InMemoryHistory
        from prompt_toolkit.key_binding import merge_key_bindings
        from prompt_toolkit.output import ColorDepth

        from aish.shell.completion import make_completer
        from aish.shell.keys import continuation, flip_bindings, load_bindings

        try:
            stored: History = FileHistory(str(_private_file(history or history_file())))
        except OSError:
            stored = InMemoryHistory()  # an unwritable state dir must not stop the shell
        self._io = {"input": input, "output": output}
        self._color_depth = None if color else ColorDepth.MONOCHROME
        self._style = theme.prompt_style
        self._completers = {scope: make_completer(scope, vocabulary)
                            for scope in ("shell", "session")}
        def prompt_session(history):
            return PromptSession(
                history=history,
                key_bindings=merge_key_bindings([load_bindings(), flip_bindings(self._flips)]),
                enable_open_in_editor=True,
                complete_while_typing=False,
                prompt_continuation=continuation,
                style=self._style,
                include_default_pygments_style=False,
                color_depth=self._color_depth,
                reserve_space_for_menu=6,
                **self._io,
            )

        self._ask = Ask([])
        self._session = prompt_session(stored)
        self._sessions = {"shell": self._session,
                          "session": prompt_session(InMemoryHistory()) if private_sessions
                          else self._session}

    def read(self, ask: Ask) -> str:
        self._ask = ask
        return self._sessions[ask.scope].prompt(ask.message, completer=self._completers[ask.scope],
                                    bottom_toolbar=ask.toolbar, default=ask.default)

    def navigate(self, history) -> str | None:
        """The full-screen tree of `tree` on this prompt's terminal; the message picked."""
        import sys

        from aish.shell.tree_view import navigate

        encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
        return navigate(history, input=self._io["input"], output=self._io["output"],
                        color_depth=self._color_depth, ascii=encoding != "utf8")

    def _flips(self, step: int) -> bool:
        return self._ask.flips[step > 0]

    def confirm(self, question: str, default: bool = True) -> bool:
        """Ask a yes/no question (kept out of history); Ctrl-D takes the default."""
        from prompt_toolkit import PromptSession

        hint = " [Y/n] " if default else " [y/N] "
        asker: PromptSession[str] = PromptSession(style=self._style,
                                                  color_depth=self._color_depth, **self._io)
        try:
            return answer_is_yes(asker.prompt([("class:prompt", question + hint)]), default)
        except EOFError:
            return default


def open_lines(ctx) -> LineSource:
    """The line source for ``ctx``: a prompt on a terminal, else the stream itself."""
    import sys

    if not ctx.stdin_is_tty:
        stream = ctx.stdin if ctx.stdin is not None else sys.stdin
        # A closed stdin (`aish <&-`) is None in Python: no lines at all, like an empty one.
        return StreamLines(stream if stream is not None else io.StringIO(""))
    from aish.shell.completion import ContextVocabulary

    color = ctx.out.color and "NO_COLOR" not in ctx.environ
    return PromptLines(shell_theme(ctx), ContextVocabulary(ctx), color=color,
                       private_sessions=_encrypted(ctx))


def _encrypted(ctx) -> bool:
    try:
        return bool(ctx.config.encrypt)
    except AishError:  # a broken config is reported where it is used; stay on the safe side
        return True


def shell_theme(ctx):
    """The configured theme; its problems are shown once as warnings."""
    from aish.theme import load_theme

    theme = load_theme(ctx.config.theme, ctx.environ)
    for problem in theme.problems:
        ctx.out.warn(problem)
    return theme
