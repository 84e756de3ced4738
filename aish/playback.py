"""Playing a conversation back at the pace it was written: messages become timed frames, and a
player shows each frame when it is due.

:func:`frames` is pure: a path's messages (already redacted by the caller) become
:class:`Frame` values, each with the time it is due, counted from the start of playback. A
reply with recorded :class:`~aish.messages.Timing` appears at its own pace (its first text, its
marks, its end); one recorded without it is typed at ``rate`` characters a second. The pause
before each frame is capped at ``idle_limit`` and then divided by ``speed``, as asciinema does
it, so a night between two questions plays as a moment.

:class:`Player` shows frames through callbacks, waiting with an injectable ``clock`` and
``sleep`` (or ``keys``: a function that waits up to a timeout for a key), so a test under a
fake clock gets an exact sequence. Keys: space pauses and resumes, ``.`` steps one frame while
paused, ``n``/``p`` go to the next/previous message, Left/Right go back/forward
:data:`SEEK_SECONDS`, ``q`` quits. Going back clears the screen (``reset``) and shows what came
before the new position at once.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aish.messages import USER, Message

if TYPE_CHECKING:
    from aish.render import StreamRenderer

USER_LINE, REPLY, TEXT, END = "user", "reply", "text", "end"
FALLBACK_RATE = 200.0  # characters a second, for replies recorded without timing
FALLBACK_PIECE = 10  # characters per frame when typing at that rate
IDLE_LIMIT = 2.0
SEEK_SECONDS = 5.0
LEFT, RIGHT = "\x1b[D", "\x1b[C"


@dataclass(frozen=True)
class Frame:
    at: float  # seconds from the start of playback
    kind: str  # USER_LINE (the prompt line), REPLY (a reply starts), TEXT (a piece), END
    index: int  # the message's place among those played, from 0
    text: str = ""  # USER_LINE: the message; TEXT: the piece; REPLY: the speaker's prefix


def prompt_line(message: Message, text: str) -> str:
    """A user message as the session-mode prompt showed it when it was typed."""
    return f"{message.ai} (session)> {text}"


def reply_prefix(message: Message) -> str:
    return f"{message.ai} (note)> " if message.note else f"{message.ai}> "


def frames(messages: Sequence[Message], *, speed: float = 1.0,
           idle_limit: float | None = IDLE_LIMIT, rate: float = FALLBACK_RATE,
           text: Callable[[str], str] = lambda s: s) -> list[Frame]:
    """The frames that play ``messages`` (see the module's doc); ``text`` is applied to every
    message's content first (redaction)."""
    raw: list[tuple[float, str, int, str]] = []  # recorded times, before caps and speed
    clock = 0.0  # recorded seconds, relative to the first message
    previous: Message | None = None
    for index, message in enumerate(messages):
        content = text(message.content)
        if previous is not None and message.role == USER:
            clock += max(0.0, message.time - previous.time)
        if message.role == USER:
            raw.append((clock, USER_LINE, index, prompt_line(message, content)))
        else:
            start = clock
            pieces, end = _pieces(message, content, rate)
            first = pieces[0][0] if pieces else end
            raw.append((start + first, REPLY, index, reply_prefix(message)))
            raw += [(start + at, TEXT, index, piece) for at, piece in pieces]
            raw.append((start + end, END, index, ""))
            clock = start + end  # a reply is stored when it ends: the next gap counts from there
        previous = message
    out: list[Frame] = []
    last_raw = at = 0.0
    for when, kind, index, piece in raw:
        pause = max(0.0, when - last_raw)
        if idle_limit is not None:
            pause = min(pause, idle_limit)
        at += pause / speed
        last_raw = max(last_raw, when)
        out.append(Frame(round(at, 6), kind, index, piece))
    return out


def _pieces(message: Message, content: str,
            rate: float) -> tuple[list[tuple[float, str]], float]:
    """``content`` cut in timed pieces, and when it ends: at the recorded marks (scaled to the
    length of the shown text, which redaction may change), or typed at ``rate``."""
    timing = message.timing
    if timing is None:
        out, at = [], 0.0
        for start in range(0, len(content), FALLBACK_PIECE):
            piece = content[start:start + FALLBACK_PIECE]
            out.append((at, piece))
            at += len(piece) / rate
        return out, at
    recorded = max(len(message.content), 1)
    points = [(t, min(len(content), round(n * len(content) / recorded)))
              for t, n in timing.marks]
    points.append((max(timing.end, timing.first), len(content)))
    out, done, last = [], 0, timing.first
    for t, count in points:
        t = max(t, last)
        if count > done:
            out.append((t, content[done:count]))
            done = count
        last = t
    return out, last


class Player:
    """Shows ``frames`` when they are due; see the module's doc for the keys."""

    def __init__(self, frames: Sequence[Frame], show: Callable[[Frame], None],
                 reset: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = _time.monotonic,
                 sleep: Callable[[float], None] = _time.sleep,
                 keys: Callable[[float | None], str | None] | None = None):
        self.frames = list(frames)
        self.show = show
        self.reset = reset
        self.clock = clock
        self.sleep = sleep
        self.keys = keys
        self.pos = 0  # the next frame to show
        self.paused = False
        self._base = 0.0  # clock() - playback time, while playing
        self._paused_at = 0.0  # the playback time, while paused

    # -- playback time ---------------------------------------------------------------------
    def now(self) -> float:
        return self._paused_at if self.paused else self.clock() - self._base

    def _set_now(self, at: float) -> None:
        if self.paused:
            self._paused_at = at
        else:
            self._base = self.clock() - at

    def _wait(self, timeout: float | None) -> str | None:
        if self.keys is not None:
            return self.keys(timeout)
        if timeout is not None:
            self.sleep(timeout)
        return None

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> None:
        self._base = self.clock()
        while self.pos < len(self.frames):
            if self.paused:
                key = self._wait(None)
            else:
                due = self.frames[self.pos].at - self.now()
                if due <= 0:
                    self._step()
                    continue
                key = self._wait(due)
            if key == "q":
                return
            if key is not None:
                self.press(key)

    def _step(self) -> None:
        self.show(self.frames[self.pos])
        self.pos += 1

    def press(self, key: str) -> None:
        if key == " ":
            at = self.now()
            self.paused = not self.paused
            self._set_now(at)
        elif key == ".":
            if not self.paused:
                self.press(" ")
            if self.pos < len(self.frames):
                self._set_now(self.frames[self.pos].at)
                self._step()
        elif key == "n":
            current = self.frames[self.pos - 1].index if self.pos else -1
            target = next((i for i in range(self.pos, len(self.frames))
                           if self.frames[i].index > current), len(self.frames))
            self._to_message(target)
        elif key == "p":
            current = self.frames[self.pos - 1].index if self.pos else 0
            wanted = max(current - 1, 0)
            self._to_message(next(i for i, f in enumerate(self.frames) if f.index == wanted))
        elif key in (LEFT, RIGHT):
            at = max(0.0, self.now() + (SEEK_SECONDS if key == RIGHT else -SEEK_SECONDS))
            target = next((i for i, f in enumerate(self.frames) if f.at > at),
                          len(self.frames))
            self.seek(target, at)

    def _to_message(self, target: int) -> None:
        self.seek(target)
        # Paused, the message's first line (a reply's first piece) shows where play now is.
        while self.paused and self.pos < len(self.frames):
            self._step()
            if self.frames[self.pos - 1].kind != REPLY:
                break

    def seek(self, target: int, at: float | None = None) -> None:
        """Go to frame ``target`` (shown next); playback time ``at`` (default: that frame's)."""
        if target < self.pos:
            self.reset()
            self.pos = 0
        while self.pos < target:
            self._step()
        if at is None:
            at = self.frames[target].at if target < len(self.frames) else self.now()
        self._set_now(at)


class Screen:
    """Shows frames on a Rich ``console`` as the shell would: the prompt line, then the reply
    after its prefix through a renderer made by ``renderer(prefix)`` (a StreamRenderer).
    :meth:`began` and :meth:`ended` are hooks around each reply."""

    def __init__(self, console, renderer: Callable[[str], StreamRenderer]):
        self.console = console
        self.make = renderer
        self.renderer: StreamRenderer | None = None

    def show(self, frame: Frame) -> None:
        if frame.kind == USER_LINE:
            from rich.text import Text

            from aish.sanitize import sanitize

            self.end_reply()
            self.console.print(Text(sanitize(frame.text), style="aish.prompt"), soft_wrap=True)
        elif frame.kind == REPLY:
            self.end_reply()
            self.renderer = self.make(frame.text)
            self.began(self.renderer)
        elif frame.kind == TEXT and self.renderer is not None:
            self.renderer.feed(frame.text)
        elif frame.kind == END:
            self.end_reply()

    def began(self, renderer: StreamRenderer) -> None:
        pass

    def ended(self) -> None:
        pass

    def end_reply(self) -> None:
        renderer, self.renderer = self.renderer, None
        try:
            if renderer is not None:
                renderer.finish()
        finally:
            self.ended()

    def reset(self) -> None:
        """Going back: a clean screen, on which what came before is shown again."""
        self.ended()
        self.renderer = None
        self.console.clear()

    close = end_reply
