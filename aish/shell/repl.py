"""The `aish>` shell: read a line, parse it like a command line, dispatch it through the same
registry as the pipe face, repeat.

    aish> apollo --session              # session mode (see session_mode.py)
    aish> athena what is CQRS?          # a one-shot question
    aish> --list-sessions               # any aish flag; a leading `aish` is optional

Errors print one line and the shell goes on; `exit`, `quit` or Ctrl-D leave. When stdin is not
a terminal the same loop runs the command lines of a script (`aish < script`), without banner
or prompts, and returns the status of the last command.
"""

from __future__ import annotations

import contextlib
import io
import shlex
from collections.abc import Callable

from aish import errors
from aish.commands.context import Context
from aish.shell.lines import Ask, Fragments, LineSource, open_lines
from aish.shell.toolbar import shell_toolbar

PROMPT = [("class:prompt", "aish> ")]
LEAVE = ("exit", "quit")


class ShellContext(Context):
    """A Context that also carries the shell's line source, so session mode entered from the
    shell (through the `ask` command) reads from the same prompt and history, or the same
    script."""

    _fields: tuple[str, ...] = (*Context._fields, "lines")

    def __init__(self, *, lines: LineSource | None = None, **parts) -> None:
        super().__init__(**parts)
        self.lines = lines


def run_shell(ctx: Context) -> int:
    from aish.shell.hooks import install

    shell = ShellContext(environ=ctx.environ, stdin=ctx.stdin, out=ctx.out, now=ctx.now,
                         interactive=True)
    install(shell, in_shell=True)
    shell.lines = open_lines(shell)
    if not shell.lines.interactive:
        shell.stdin = io.StringIO("")  # the script's lines are commands, not message bodies
    return loop(shell)


def loop(ctx: ShellContext) -> int:
    ctx.interactive = True
    lines = ctx.lines
    assert lines is not None, "run() opens the line source before the loop"
    if lines.interactive:
        _banner(ctx)
    status = 0
    while True:
        toolbar: Fragments = _toolbar(ctx) if lines.interactive else []
        try:
            line = lines.read(Ask(PROMPT, "shell", toolbar=_showing(toolbar)))
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        if line.strip() in LEAVE:
            break
        status = run_line(ctx, line)
    return 0 if lines.interactive else status


def run_line(ctx: Context, line: str) -> int:
    """Run one shell line; an error prints one line and returns its exit code."""
    from aish.commands.dispatch import run

    text = line.strip()
    if not text or text.startswith("#"):
        return 0
    try:
        return run(ctx, split_line(ctx, text))
    except errors.AishError as exc:
        _end_reply(ctx)
        ctx.out.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _end_reply(ctx)
        ctx.out.note("interrupted")
        return errors.INTERRUPTED


def split_line(ctx: Context, text: str) -> list[str]:
    """Split like a shell does; a question to a specialist may hold a lone apostrophe
    (`athena what's CQRS?`), so for those an unbalanced quote falls back to plain words."""
    try:
        return shlex.split(text)
    except ValueError as exc:
        first = text.split(None, 1)[0]
        if first.removesuffix("-ai") in ctx.specialists:
            return text.split()
        raise errors.UsageError(f"cannot parse the line: {exc}") from None


def _end_reply(ctx: Context) -> None:
    if ctx.out.reply_open:
        with contextlib.suppress(Exception):  # tidying up must never hide the real error
            ctx.out.reply_end()


def _banner(ctx: Context) -> None:
    from aish import __version__

    try:
        names = ", ".join(sorted(ctx.specialists))
    except errors.AishError:
        names = "?"
    ctx.out.note(f"aish {__version__} — AI specialists: {names}")
    ctx.out.note("Type 'help' for commands, 'apollo --session' to start a session, "
                 "Ctrl-D or 'exit' to leave.")


def _showing(fragments: Fragments) -> Callable[[], Fragments]:
    """A toolbar callback fixed to this prompt's fragments."""
    return lambda: fragments


def _toolbar(ctx: Context):
    try:
        active = len(ctx.sessions.listing())
    except errors.AishError:
        active = None
    return shell_toolbar(active)
