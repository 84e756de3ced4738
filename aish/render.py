"""Streaming Markdown rendering of a model reply, in time linear in its length.

``rich.live`` with a ``Markdown`` renderable re-parses and re-draws the whole reply on
every chunk, which is quadratic: a long reply gets slower and slower. Instead the stream
is cut into Markdown blocks as it arrives (:class:`BlockSplitter`, pure text logic) and
each finished block is rendered once and printed (:class:`StreamRenderer`). A block ends
at a blank line outside a code fence, or at the closing fence. A block that stays open
for long (a code fence over ``max_code_lines`` lines, a paragraph over ``max_chars``
characters) is printed in pieces so the user still sees progress.

Fenced code is highlighted with Pygments through ``rich.syntax.Syntax``, as
``rich.markdown`` does it, but here directly so that a long fence printed in pieces looks
like one block (padding above the first piece and below the last only). Each piece is
lexed on its own, so a construct spanning a piece boundary (a long docstring) may be
coloured wrongly after the boundary; a paragraph cut in pieces may likewise lose an inline
span (``**bold**``) that straddles the cut. Those are the price of never re-rendering.

Until its block is complete, the text of the open block is not lost from view: the
interactive shell keeps a live area below the printed blocks (a spinner, see
``aish.shell.reply``) that shows :meth:`StreamRenderer.live_preview`, the last few lines of
the open block as plain text. The preview is bounded (a few rows of the terminal's width),
so each redraw costs the same however long the reply or the open block has grown, and the
live area's refresh rate bounds how often it is drawn: total cost stays linear. When the
block completes it is printed rendered above the live area and leaves the preview.

Every chunk goes through :class:`~aish.sanitize.StreamSanitizer` before anything else,
and links are rendered as ``text (url)`` rather than OSC 8 hyperlinks, so nothing in a
reply can make the terminal do more than show coloured text.

rich is imported only inside the methods that draw, so importing this module stays cheap
for commands that never render a reply.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aish.sanitize import StreamSanitizer, sanitize

if TYPE_CHECKING:
    from collections.abc import Iterator

    from rich.console import Console, ConsoleOptions, RenderableType
    from rich.segment import Segment
    from rich.text import Text

__all__ = ["Block", "BlockSplitter", "StreamRenderer"]

PREFIX_STYLE = "aish.reply_prefix"

_FENCE_OPEN = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}(?!.*`)|~{3,})(?P<info>.*)$")
_FENCE_CLOSE = re.compile(r"^ *(?P<fence>`{3,}|~{3,})[ \t]*$")


@dataclass(frozen=True)
class Block:
    """One piece of the reply that is ready to print.

    ``opens`` is false for the second and later pieces of a block that was printed in
    pieces; ``closes`` is false for every piece but the last.
    """

    kind: str  # "markdown" or "code"
    text: str
    language: str = ""
    opens: bool = True
    closes: bool = True


@dataclass
class _Fence:
    char: str
    length: int
    indent: int
    language: str


class BlockSplitter:
    """Cut streamed Markdown text into blocks, each handed out exactly once.

    Work per character is constant: a line is joined once, when its newline arrives, and
    a block is joined once, when it is handed out.
    """

    def __init__(self, *, max_code_lines: int = 40, max_chars: int = 2000) -> None:
        self.max_code_lines = max_code_lines
        self.max_chars = max_chars
        self._line: list[str] = []  # pieces of the line still being received
        self._line_chars = 0
        self._lines: list[str] = []  # complete lines of the open block
        self._chars = 0
        self._fence: _Fence | None = None
        self._continuing = False  # part of the open block has been handed out already

    def feed(self, text: str) -> list[Block]:
        """Take more (sanitised) text; return the blocks it completed."""
        out: list[Block] = []
        *complete, rest = text.split("\n")
        for piece in complete:
            self._line.append(piece)
            line = "".join(self._line)
            self._line, self._line_chars = [], 0
            self._take_line(line, out)
        if rest:
            self._line.append(rest)
            self._line_chars += len(rest)
            if self._fence is None and self._line_chars > self.max_chars:
                self._cut_long_line(out)
        return out

    def tail(self, max_lines: int = 6, max_chars: int = 600) -> str:
        """The end of the open block, not handed out yet: its last ``max_lines`` lines and
        at most ``max_chars`` characters of them (the first line shown may be cut at the
        left, and then starts with ``…``). For a fence, the code lines without the fence.

        The cost is bounded by ``max_lines`` and ``max_chars``, not by the length of the
        block or of its lines (a table or a fence line can grow long), so the tail can be
        taken on every redraw.
        """
        if max_lines <= 0 or max_chars <= 0:
            return ""
        shown: list[str] = []  # last line first
        budget = max_chars
        cut = False
        if self._line:  # the line still being received
            partial = _last_chars(self._line, budget)
            cut = self._line_chars > len(partial)
            shown.append(partial)
            budget -= len(partial)
        lines = self._lines
        index = len(lines)
        while index > 0 and len(shown) < max_lines and not cut:
            if shown:
                budget -= 1  # the newline after this line
            if budget <= 0:
                break
            index -= 1
            line = lines[index]
            if len(line) > budget:
                line, cut = line[len(line) - budget :], True
            shown.append(line)
            budget -= len(line)
        if cut and shown[-1]:
            shown[-1] = "…" + shown[-1][1:]
        return "\n".join(reversed(shown))

    def finish(self) -> list[Block]:
        """End of the reply: return whatever is still open, closed."""
        out: list[Block] = []
        if self._line:
            line = "".join(self._line)
            self._line, self._line_chars = [], 0
            self._take_line(line, out)
        if self._fence is not None:
            self._emit_code(out, closes=True)
        else:
            self._emit_markdown(out, closes=True)
        return out

    def _take_line(self, line: str, out: list[Block]) -> None:
        fence = self._fence
        if fence is not None:
            close = _FENCE_CLOSE.match(line)
            if close and close["fence"][0] == fence.char and len(close["fence"]) >= fence.length:
                self._emit_code(out, closes=True)
                self._fence = None
                return
            self._lines.append(_dedent(line, fence.indent))
            if len(self._lines) >= self.max_code_lines:
                self._emit_code(out, closes=False)
            return
        opening = _FENCE_OPEN.match(line)
        if opening:
            self._emit_markdown(out, closes=True)
            info = opening["info"].strip()
            self._fence = _Fence(
                char=opening["fence"][0],
                length=len(opening["fence"]),
                indent=len(opening["indent"]),
                language=info.split()[0] if info else "",
            )
        elif not line.strip():
            self._emit_markdown(out, closes=True)
        else:
            self._lines.append(line)
            self._chars += len(line) + 1
            if self._chars > self.max_chars and not self._lines[0].lstrip().startswith("|"):
                # A table cut in two loses its header, so tables are left whole.
                self._emit_markdown(out, closes=False)

    def _cut_long_line(self, out: list[Block]) -> None:
        """Hand out most of a line that has grown past ``max_chars`` without a newline."""
        line = "".join(self._line)
        cut = line.rfind(" ")
        if cut <= 0:
            cut = len(line)
        self._lines.append(line[:cut])
        rest = line[cut + 1 :]
        self._line, self._line_chars = ([rest], len(rest)) if rest else ([], 0)
        self._emit_markdown(out, closes=False)

    def _emit_markdown(self, out: list[Block], *, closes: bool) -> None:
        if self._lines:
            text = "\n".join(self._lines)
            out.append(Block("markdown", text, opens=not self._continuing, closes=closes))
            self._continuing = not closes
        elif closes:
            self._continuing = False
        self._lines, self._chars = [], 0

    def _emit_code(self, out: list[Block], *, closes: bool) -> None:
        assert self._fence is not None
        text = "\n".join(self._lines)
        if closes:
            text = text.rstrip("\n")  # as rich.markdown does: no blank lines at the end
        language = self._fence.language
        out.append(Block("code", text, language, opens=not self._continuing, closes=closes))
        self._continuing = not closes
        self._lines, self._chars = [], 0


def _last_chars(pieces: list[str], count: int) -> str:
    """The last ``count`` characters of ``"".join(pieces)``, joining no more than that."""
    taken: list[str] = []
    for piece in reversed(pieces):
        if len(piece) >= count:
            taken.append(piece[len(piece) - count :])
            break
        taken.append(piece)
        count -= len(piece)
    return "".join(reversed(taken))


def _dedent(line: str, indent: int) -> str:
    """Remove up to ``indent`` leading spaces, as CommonMark does inside a fence."""
    stripped = line.lstrip(" ")
    return line[min(indent, len(line) - len(stripped)) :]


class StreamRenderer:
    """Print a streamed model reply to ``console``, sanitised, as it arrives.

    With ``markdown=True`` each finished block is rendered as Markdown (code fences
    highlighted with ``code_theme``), and :meth:`preview` / :meth:`live_preview` show the
    end of the block still open. With ``markdown=False`` (NO_COLOR, not a terminal) the
    sanitised text is written as it comes. ``prefix`` (e.g. ``"apollo> "``) is printed
    once before the first output, in the theme's ``aish.reply_prefix`` style if it has one.

    :meth:`preview` and :meth:`live_preview` may be used from another thread (a live
    display's refresh thread) while :meth:`feed` runs: the splitter is only touched under a
    lock, and the lock is never held while printing, so it cannot deadlock against the live
    display's own lock.
    """

    def __init__(
        self,
        console: Console,
        *,
        code_theme: str = "monokai",
        prefix: str | None = None,
        markdown: bool = True,
    ) -> None:
        self.console = console
        self.code_theme = code_theme
        self.prefix = prefix
        self.markdown = markdown
        self._sanitizer = StreamSanitizer()
        self._splitter = BlockSplitter()
        self._started = False  # prefix printed / something printed
        self._blocks_printed = 0
        self._ends_with_newline = True
        self._lock = threading.Lock()  # guards the splitter, _hold and _preview
        # Blocks were handed out by the splitter and are not printed yet: the preview keeps
        # showing what it showed, so their text does not vanish from the screen meanwhile.
        self._hold = False
        self._preview = ""
        self._preview_separate = False

    def feed(self, chunk: str) -> None:
        """Take the next streamed piece of raw model text."""
        self._show(self._sanitizer.feed(chunk), final=False)

    def finish(self) -> None:
        """The reply is complete: print what is still buffered."""
        self._show(self._sanitizer.flush(), final=True)
        if not self.markdown and self._started and not self._ends_with_newline:
            self.console.out("")

    def preview(self, max_lines: int = 6, max_chars: int = 600) -> str:
        """The end of the block still open, as sanitised plain text (see
        :meth:`BlockSplitter.tail`); empty without Markdown, where text is printed as it
        comes. Its cost is bounded by ``max_lines`` and ``max_chars``."""
        return self._preview_state(max_lines, max_chars)[0]

    def _preview_state(self, max_lines: int, max_chars: int) -> tuple[str, bool]:
        """The preview, and whether a blank line must separate it from what is printed."""
        if not self.markdown:
            return "", False
        with self._lock:
            if not self._hold:
                splitter = self._splitter
                self._preview = sanitize(splitter.tail(max_lines, max_chars))
                self._preview_separate = bool(self._blocks_printed) and not splitter._continuing
            return self._preview, self._preview_separate

    def live_preview(self, rows: int = 6) -> RenderableType:
        """A renderable for a live display: the last ``rows`` terminal rows of
        :meth:`preview` (after the prefix while nothing is printed yet), nothing when no
        block is open. Each render costs the same however long the reply is."""
        return _Preview(self, rows)

    def _show(self, text: str, *, final: bool) -> None:
        if not self.markdown:
            if text:
                self._start(inline=True)
                self.console.out(text, end="", highlight=False)
                self._ends_with_newline = text.endswith("\n")
            return
        blocks: list[Block] = []
        with self._lock:
            if text:
                blocks = self._splitter.feed(text)
            if final:
                blocks += self._splitter.finish()
            self._hold = bool(blocks)
        try:
            for number, block in enumerate(blocks, 1):
                self._print_block(block, last=number == len(blocks))
        finally:
            self._hold = False

    def _prefix_label(self) -> Text:
        from rich.errors import MissingStyle
        from rich.text import Text

        try:
            style = self.console.get_style(PREFIX_STYLE)
        except MissingStyle:
            style = None
        return Text(sanitize(self.prefix or ""), style=style or "")

    def _start(self, *, inline: bool) -> None:
        """Print the prefix before the first output: on the same line in plain mode."""
        if self._started:
            return
        self._started = True
        if self.prefix:
            self.console.print(self._prefix_label(), end="" if inline else "\n",
                               soft_wrap=True)

    def _print_block(self, block: Block, *, last: bool) -> None:
        from rich.markdown import Markdown
        from rich.syntax import Syntax

        if block.kind == "markdown" and not block.text.strip():
            return
        beside = not self._started and bool(self.prefix) and _starts_beside(block)
        if beside:
            self._started = True  # the prefix goes in front of the paragraph's first line
        self._start(inline=False)
        if block.opens and self._blocks_printed:
            self.console.print()
        self._blocks_printed += 1
        if block.kind == "code":
            top = 1 if block.opens else 0
            bottom = 1 if block.closes and (block.text or block.opens) else 0
            syntax = Syntax(
                block.text,
                block.language or "text",
                theme=self.code_theme,
                word_wrap=True,
                padding=(top, 1, bottom, 1),
            )
            lines = self.console.render_lines(syntax, new_lines=True)
        else:
            text = _md_escape(sanitize(self.prefix or "")) + block.text if beside else block.text
            markdown = Markdown(text, code_theme=self.code_theme, hyperlinks=False)
            lines = _trim_leading_blank(self.console.render_lines(markdown, new_lines=True))
            if beside and lines:
                lines[0] = self._style_prefix(lines[0])
        # Rendered: from now on the preview may drop this block's text, since the print
        # below redraws a live display under it in the same write.
        if last:
            self._hold = False
        self._print_lines(lines)

    def _style_prefix(self, line: list[Segment]) -> list[Segment]:
        """The first line of a paragraph that starts with the prefix, the prefix in its style."""
        from rich.segment import Segment

        style = self._prefix_label().style
        if not style:
            return line
        left = len(sanitize(self.prefix or ""))
        out = []
        for segment in line:
            if left > 0 and not segment.control:
                head, tail = segment.text[:left], segment.text[left:]
                left -= len(head)
                out.append(Segment(head, self.console.get_style(style)
                                   if isinstance(style, str) else style))
                if tail:
                    out.append(Segment(tail, segment.style))
            else:
                out.append(segment)
        return out

    def _print_lines(self, lines: list[list[Segment]]) -> None:
        from rich.segment import Segments

        self.console.print(Segments([segment for line in lines for segment in line]))


class _Preview:
    """What :meth:`StreamRenderer.live_preview` returns; computed afresh on every render."""

    def __init__(self, renderer: StreamRenderer, rows: int) -> None:
        self.renderer = renderer
        self.rows = rows

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[Text | Segment]:
        from rich.segment import Segment
        from rich.text import Text

        renderer = self.renderer
        width = max(options.max_width, 1)
        tail, separate = renderer._preview_state(self.rows, self.rows * width)
        if not tail:
            return
        text = Text(tail, end="")
        if renderer.prefix and not renderer._started:  # the reply starts beside the prefix
            text = Text.assemble(renderer._prefix_label(), text, end="")
        elif separate:  # where the block will be printed: after one blank line
            yield Text("")
        text.expand_tabs()
        for line in text.wrap(console, width, overflow="fold")[-self.rows :]:
            yield Segment(line.plain)  # already wrapped: not through Text again
            yield Segment.line()


# A first block that opens with one of these starts on the line after the prefix: a heading,
# table, list, quote, fence, indented code, HTML or a rule would not survive a prefix before it.
_OWN_LINE = re.compile(r"( {4}|\t)| {0,3}(#|\||[-*+](\s|$)|\d+[.)](\s|$)|>|```|~~~|<"
                       r"|(\*\s*){3}|(_\s*){3})")
_SETEXT = re.compile(r"\s*(=+|-+)\s*$")


def _starts_beside(block: Block) -> bool:
    if block.kind != "markdown" or not block.opens:
        return False
    lines = block.text.lstrip("\n").split("\n", 2)
    if _OWN_LINE.match(lines[0]):
        return False
    return not (len(lines) > 1 and _SETEXT.match(lines[1]))  # a `Title\n===` heading


def _md_escape(text: str) -> str:
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|>~<&])", r"\\\1", text)


def _trim_leading_blank(lines: list[list[Segment]]) -> list[list[Segment]]:
    """Drop leading blank lines: we put one blank line between blocks ourselves.

    rich starts a list rendered on its own with a blank line, which would double the
    separator when the list is a block of its own.
    """
    start = 0
    while start < len(lines) and all(_is_blank(segment) for segment in lines[start]):
        start += 1
    return lines[start:]


def _is_blank(segment: Segment) -> bool:
    style = segment.style
    return not segment.text.strip() and not (style and style.bgcolor)
