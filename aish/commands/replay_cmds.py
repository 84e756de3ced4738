"""`aish --replay-session`: watch a conversation again, at the pace it was written, or
(--as, --model: `aish.reask`) ask every question of it again on a new branch.

The branch's path is played through the same renderer the shell uses (`aish.playback` makes
the timed frames and plays them). On a terminal the keys of :data:`KEYS_HELP` steer it, with
stdin in cbreak mode, restored on every way out. Piped, the transcript is written at once as
plain text. Text goes through `aish.redact` (unless --no-redact); what was redacted is reported
on stderr.
"""

from __future__ import annotations

import sys

from aish.commands.branch_cmds import ON_BRANCH, SESSION
from aish.commands.context import Context
from aish.commands.history_cmds import NO_REDACT, load_history, report_redactions
from aish.commands.registry import JSON, Arg, command
from aish.errors import UsageError
from aish.playback import Screen

KEYS_HELP = ("keys: space pause/resume, . step (while paused), n/p next/previous message, "
             "Left/Right back/forward 5 s, q quit")
PREVIEW_ROWS = 6


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise UsageError(f"expected a number above 0, got {text!r}")
    return value


def _seconds(text: str) -> float:
    if text.strip() == "0":
        return 0.0
    return _positive(text)


def _number(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"expected a message number (1, 2, ...), got {text!r}")
    return int(text)


REASK = (Arg("--as", "ask every question of the branch again, of this specialist",
             metavar="NAME", dest="as_", completes="specialist"),
         Arg("--model", "ask every question of the branch again, of this model", metavar="M"),
         Arg("--into-branch", "with --as/--model: the new branch (default: replay-NAME)",
             metavar="NAME"),
         Arg("--compare", "with --as/--model: each turn's old and new answer, tokens and "
             "latency, and the first turn where they differ", flag=True),
         Arg("--provider", "with --as/--model: openai or local", metavar="NAME"))


@command("replay-session", "aish",
         "Play a session's conversation again at the pace it was written (keys on a "
         "terminal; piped, the transcript at once); with --as or --model, ask every "
         "question again on a new branch.",
         args=(SESSION, ON_BRANCH,
               Arg("--from", "the first message played (its number on the path)",
                   type=_number, metavar="N", dest="start"),
               Arg("--to", "the last message played", type=_number, metavar="M"),
               Arg("--speed", "play X times as fast", type=_positive, metavar="X"),
               Arg("--idle-limit", "the longest pause, in seconds (default 2)",
                   type=_seconds, metavar="S"),
               NO_REDACT, *REASK, JSON),
         example="aish --replay-session sess_abc123 --speed 2")
def replay_session(ctx: Context, args) -> int:
    asking = args.as_ or args.model or args.into_branch or args.compare
    # The two halves share one option set: an option the chosen one ignores is an error.
    other = (["--speed", "--idle-limit"] if asking else ["--provider", "--json"])
    given = [name for name, value in zip(other, (
        (args.speed, args.idle_limit) if asking else (args.provider, args.json)), strict=True)
        if value not in (None, False)]
    if given:
        raise UsageError(f"{given[0]} goes " + ("with playing a session, not with --as/--model"
                                                if asking else "with --as or --model"))
    if asking:
        from aish.reask import ask_again

        return ask_again(ctx, args)
    from aish import playback
    from aish.exports import path_of
    from aish.redact import Redactor

    history = load_history(ctx, args.id, args.branch)
    branch = args.branch or (history.current if history.current in history.refs else "main")
    if args.start and args.to and args.to < args.start:
        raise UsageError(f"--to {args.to} comes before --from {args.start}")
    path = [node for node in path_of(history, branch)
            if (args.start or 1) <= node.number <= (args.to or node.number)]
    if not path:
        ctx.out.note(f"aish: nothing to replay: branch {branch} of {args.id} has no messages"
                     + (" in that range" if args.start or args.to else ""))
        return 0
    redactor = Redactor(not args.no_redact)
    idle = playback.IDLE_LIMIT if args.idle_limit is None else args.idle_limit
    frames = playback.frames([node.message for node in path], speed=args.speed or 1.0,
                             idle_limit=idle, text=redactor)
    screen = LiveScreen(ctx.out.console(), lambda prefix: ctx.out.reply_renderer(prefix))
    stdin = ctx.stdin or sys.stdin
    try:
        if not ctx.out.stdout_tty:
            for frame in frames:
                screen.show(frame)
        else:
            ctx.out.note(KEYS_HELP if _isatty(stdin) else "aish: not a terminal for keys: "
                         "playing to the end (Ctrl-C stops)")
            play_on_terminal(frames, screen, stdin)
    finally:
        screen.close()
    report_redactions(ctx, redactor)
    return 0


def play_on_terminal(frames, screen: LiveScreen, stdin) -> None:
    from aish.playback import Player

    if not _isatty(stdin):
        Player(frames, screen.show, screen.reset).run()
        return
    with RawKeys(stdin.fileno()) as keys:
        Player(frames, screen.show, screen.reset, keys=keys).run()


class LiveScreen(Screen):
    """The player's screen on a terminal: the shell's live preview of the open block below a
    reply while it plays, as in session mode."""

    live = None

    def began(self, renderer) -> None:
        if renderer.markdown:
            from rich.live import Live

            self.live = Live(console=self.console, transient=True,
                             get_renderable=lambda: renderer.live_preview(PREVIEW_ROWS),
                             refresh_per_second=12.5)
            self.live.start()

    def ended(self) -> None:
        live, self.live = self.live, None
        if live is not None:
            live.stop()


class RawKeys:
    """stdin in cbreak mode (no echo, a key at a time; Ctrl-C still interrupts), restored on
    leaving however that happens; calling it waits up to a timeout for one key."""

    def __init__(self, fd: int):
        self.fd = fd
        self._saved: list | None = None
        self._pending = ""

    def __enter__(self) -> RawKeys:
        import termios
        import tty

        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        return self

    def __exit__(self, *exc) -> None:
        import termios

        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)

    def __call__(self, timeout: float | None) -> str | None:
        import os
        import select

        if not self._pending:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if not ready:
                return None
            data = os.read(self.fd, 64)
            if not data:  # the terminal went away: nothing more will come
                return "q"
            self._pending = data.decode("utf-8", "replace")
        if self._pending.startswith("\x1b[") and len(self._pending) >= 3:
            key, self._pending = self._pending[:3], self._pending[3:]
        else:
            key, self._pending = self._pending[:1], self._pending[1:]
        return key


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
