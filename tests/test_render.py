"""aish.render: streamed replies are rendered once per block, coloured, and harmless."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.theme import Theme

from aish.render import Block, BlockSplitter, StreamRenderer

REPLY = """\
# Plan

First paragraph ALPHA with **bold** and `code`.

- item BRAVO
- item CHARLIE

```python
def delta(x):
    return x + 1  # ECHO
```

Last paragraph FOXTROT.
"""
MARKERS = ["Plan", "ALPHA", "BRAVO", "CHARLIE", "delta", "ECHO", "FOXTROT"]

HOSTILE = (
    "Copy this \x1b]52;c;aGVsbG8=\x07 and click "
    "\x1b]8;;https://evil.example/\x1b\\here\x1b]8;;\x1b\\ or [there](https://evil.example/).\n"
    "\x1b[2J\x1b[?1049hDCS \x1bP1$tx\x1b\\ csi8 \x9b2J bidi \u202etxt.exe\n"
    "safe\rEVIL\n\n"
    "```sh\necho \x1b]0;title\x07 \x1b[31mred\n```\n"
)
ROOT = Path(__file__).resolve().parent.parent
SGR = re.compile(r"\x1b\[[0-9;]*m")


def colour_console(**kwargs: object) -> Console:
    return Console(
        file=io.StringIO(), force_terminal=True, color_system="truecolor", width=80, **kwargs
    )


def plain_console() -> Console:
    return Console(file=io.StringIO(), force_terminal=False, no_color=True, width=80)


def render(
    text: str, console: Console, chunk: int = 3, preview: bool = False, **kwargs: object
) -> str:
    """Stream ``text`` through a renderer; with ``preview``, also print its live preview
    after every chunk, as the shell's live area draws it."""
    renderer = StreamRenderer(console, **kwargs)
    for start in range(0, len(text), chunk):
        renderer.feed(text[start : start + chunk])
        if preview:
            console.print(renderer.live_preview())
    renderer.finish()
    return console.file.getvalue()


def test_code_fence_is_syntax_highlighted_on_a_colour_terminal() -> None:
    out = render(REPLY, colour_console())
    assert re.search(r"\x1b\[[0-9;]*38;2;\d+;\d+;\d+", out), "expected truecolor foreground"
    assert "```" not in out
    plain = SGR.sub("", out)
    assert "def delta(x):" in plain


def test_theme_changes_the_code_colours() -> None:
    assert render(REPLY, colour_console()) != render(REPLY, colour_console(), code_theme="friendly")


def test_no_escape_at_all_without_colour() -> None:
    out = render(REPLY, plain_console())
    assert "\x1b" not in out
    for marker in MARKERS:
        assert marker in out


def test_plain_mode_prints_sanitised_text_as_it_arrives() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=80)
    renderer = StreamRenderer(console, markdown=False, prefix="apollo> ")
    renderer.feed("Hello **wor")
    assert console.file.getvalue() == "apollo> Hello **wor"
    renderer.feed("ld**\x1b[2J\n")
    renderer.feed("bye")
    renderer.finish()
    assert console.file.getvalue() == "apollo> Hello **world**\u241b\nbye\n"


# Ends inside a paragraph, so the live preview shows hostile text that is not printed yet.
HOSTILE_UNFINISHED = HOSTILE + (
    "\nStill open: \x1b]52;c;aGVsbG8=\x07 \x1b]8;;https://evil.example/\x1b\\link"
    "\x1b]8;;\x1b\\ \x1b[2J\x1bP1$tx\x1b\\ \x9b2J \u202eexe safe\rEVIL"
)


@pytest.mark.parametrize(
    ("markdown", "preview"), [(True, False), (False, False), (True, True), (False, True)]
)
def test_hostile_escapes_never_reach_the_terminal(markdown: bool, preview: bool) -> None:
    out = render(HOSTILE_UNFINISHED, colour_console(), markdown=markdown, preview=preview)
    assert "\x1b]" not in out
    assert "\x07" not in out
    assert "\x1bP" not in out
    assert "\r" not in out
    assert "\x9b" not in out
    assert "\u202e" not in out
    assert "aGVsbG8=" not in out
    assert "\x1b" not in SGR.sub("", out), "only SGR colour sequences may be emitted"
    assert "EVIL" in out and "safe" in out


def test_markdown_links_are_not_terminal_hyperlinks() -> None:
    out = render("Read [the docs](https://example.com/docs).\n", colour_console())
    assert "\x1b]8" not in out
    assert "https://example.com/docs" in SGR.sub("", out), "the real target must be visible"


def test_each_block_is_printed_once_whatever_the_chunking() -> None:
    whole = render(REPLY, colour_console(), chunk=len(REPLY))
    for chunk in (1, 2, 5, 17):
        assert render(REPLY, colour_console(), chunk=chunk) == whole
    plain = SGR.sub("", whole)
    for marker in MARKERS:
        assert plain.count(marker) == 1, marker


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, len(REPLY)), max_size=30))
def test_output_does_not_depend_on_chunk_boundaries(cuts: list[int]) -> None:
    points = sorted({0, len(REPLY), *cuts})
    console = plain_console()
    renderer = StreamRenderer(console)
    for start, end in pairwise(points):
        renderer.feed(REPLY[start:end])
    renderer.finish()
    assert console.file.getvalue() == render(REPLY, plain_console(), chunk=len(REPLY))


def test_blocks_are_separated_by_one_blank_line() -> None:
    out = render("Intro.\n\n- a\n- b\n\n1. c\n2. d\n\nEnd.\n", plain_console())
    lines = [line.rstrip() for line in out.splitlines()]
    assert lines == ["Intro.", "", " • a", " • b", "", " 1 c", " 2 d", "", "End."]


def test_output_appears_before_the_reply_ends() -> None:
    console = plain_console()
    renderer = StreamRenderer(console)
    renderer.feed("First block.\n\nSecond bl")
    assert "First block." in console.file.getvalue()
    assert "Second" not in console.file.getvalue()
    renderer.finish()
    assert "Second bl" in console.file.getvalue()


def feed_in_chunks(renderer: StreamRenderer, text: str, size: int = 4) -> None:
    for start in range(0, len(text), size):
        renderer.feed(text[start : start + size])


def test_long_code_fence_is_shown_in_pieces_without_loss() -> None:
    code = "".join(f"value_{i} = {i}\n" for i in range(100))
    half = code.index("value_50")
    console = plain_console()
    renderer = StreamRenderer(console)
    feed_in_chunks(renderer, "```python\n" + code[:half])
    assert "value_39 = 39" in console.file.getvalue(), "a long fence must show progress"
    feed_in_chunks(renderer, code[half:] + "```\n")
    renderer.finish()
    shown = [line.strip() for line in console.file.getvalue().splitlines() if line.strip()]
    assert shown == [f"value_{i} = {i}" for i in range(100)]


def test_long_paragraph_without_newline_is_shown_in_pieces_without_loss() -> None:
    words = [f"w{i}" for i in range(1500)]
    text = " ".join(words)
    console = plain_console()
    renderer = StreamRenderer(console)
    feed_in_chunks(renderer, text[: len(text) // 2])
    assert console.file.getvalue(), "a long paragraph must show progress"
    feed_in_chunks(renderer, text[len(text) // 2 :])
    renderer.finish()
    assert console.file.getvalue().split() == words


def test_prefix_is_printed_once_and_styled_from_the_theme() -> None:
    theme = Theme({"aish.reply_prefix": "bold magenta"})
    out = render(REPLY, colour_console(theme=theme), prefix="apollo> ")
    assert out.count("apollo> ") == 1
    assert out.startswith("\x1b[1;35mapollo> ")


@pytest.mark.parametrize("start, beside", [
    ("What kind of web app are you building?", True),
    ("Sure. **Bold** start and `code`.", True),
    ("# A heading", False),
    ("Title\n=====", False),
    ("| a | b |\n| - | - |\n| 1 | 2 |", False),
    ("```python\nx = 1\n```", False),
    ("- a list", False),
    ("1. a numbered list", False),
    ("> a quote", False),
])
def test_the_reply_starts_beside_the_prefix_unless_it_opens_with_a_block(start, beside) -> None:
    theme = Theme({"aish.reply_prefix": "bold magenta"})
    out = render(start + "\n\nMore text.\n", colour_console(theme=theme), prefix="apollo> ")
    lines = [SGR.sub("", line).rstrip() for line in out.splitlines()]
    assert out.startswith("\x1b[1;35mapollo> \x1b[0m")  # styled either way
    if beside:
        assert lines[0] == "apollo> " + re.sub(r"[*`]", "", start)
    else:
        assert lines[0] == "apollo>"
    assert out.count("apollo> ") == 1


def test_prefix_without_a_theme_style_is_plain() -> None:
    out = render(REPLY, plain_console(), prefix="apollo> ")
    assert out.startswith("apollo> \n")
    assert out.count("apollo> ") == 1


def test_nothing_is_printed_for_an_empty_reply() -> None:
    assert render("", colour_console(), prefix="apollo> ") == ""


def test_splitter_fences() -> None:
    splitter = BlockSplitter()
    blocks = splitter.feed("Text\n~~~~ rust ignore\nfn main() {}\n```\n~~~~~\nafter\n")
    blocks += splitter.finish()
    assert blocks == [
        Block("markdown", "Text"),
        Block("code", "fn main() {}\n```", "rust"),
        Block("markdown", "after"),
    ]


def test_splitter_closes_an_unfinished_fence() -> None:
    splitter = BlockSplitter()
    assert splitter.feed("```py\nx = 1\n") == []
    assert splitter.finish() == [Block("code", "x = 1", "py")]


def test_splitter_inline_triple_backticks_are_not_a_fence() -> None:
    splitter = BlockSplitter()
    blocks = splitter.feed("```a``` is inline\n```js\nno close") + splitter.finish()
    assert blocks == [Block("markdown", "```a``` is inline"), Block("code", "no close", "js")]


def test_tail_is_the_bounded_end_of_the_open_block() -> None:
    splitter = BlockSplitter()
    assert splitter.tail() == ""
    splitter.feed("Done.\n\n" + "".join(f"line {i}\n" for i in range(10)) + "partial wo")
    assert splitter.tail(max_lines=3) == "line 8\nline 9\npartial wo"
    assert splitter.tail(max_lines=3, max_chars=15) == "…e 9\npartial wo"
    assert splitter.tail(max_lines=1, max_chars=4) == "… wo"  # cut: marked
    splitter.feed("rd\n\n")  # the block is complete: handed out, no longer in the tail
    assert splitter.tail() == ""


def test_tail_of_a_huge_open_line_or_fence_stays_bounded() -> None:
    splitter = BlockSplitter()
    splitter.feed("```text\n" + "".join(f"code {i}\n" for i in range(39)))
    splitter.feed("x" * 100_000)  # one fence line, no newline yet: never cut in pieces
    tail = splitter.tail(max_lines=6, max_chars=600)
    assert len(tail) == 600 and tail == "…" + "x" * 599
    table = "| a | b |\n|---|---|\n" + "".join(f"| {i} | {i} |\n" for i in range(2000))
    splitter = BlockSplitter()
    splitter.feed(table)  # a table is never cut in pieces either
    assert splitter.tail(max_lines=2) == "| 1998 | 1998 |\n| 1999 | 1999 |"


def test_tail_matches_the_text_whatever_the_chunking() -> None:
    text = "Intro.\n\nalpha beta\ngamma delta epsilon\nzeta eta theta iota"
    for chunk in (1, 2, 3, 7, len(text)):
        splitter = BlockSplitter()
        for start in range(0, len(text), chunk):
            splitter.feed(text[start : start + chunk])
        assert splitter.tail(max_lines=2) == "gamma delta epsilon\nzeta eta theta iota"
        assert splitter.tail(max_lines=9, max_chars=15) == "…eta theta iota"


def test_preview_shows_the_open_block_until_it_is_printed() -> None:
    console = colour_console()
    renderer = StreamRenderer(console)
    renderer.feed("A long paragraph that has not")
    assert renderer.preview() == "A long paragraph that has not"
    assert console.file.getvalue() == "", "nothing printed while the paragraph is open"
    renderer.feed(" ended yet.\n\nNext")
    assert "ended yet." in console.file.getvalue()
    assert renderer.preview() == "Next"
    renderer.finish()
    assert renderer.preview() == ""


def test_preview_is_empty_without_markdown() -> None:
    renderer = StreamRenderer(plain_console(), markdown=False)
    renderer.feed("text printed as it comes")
    assert renderer.preview() == ""


def preview_rows(console: Console, renderer: StreamRenderer, rows: int) -> list[str]:
    lines = console.render_lines(renderer.live_preview(rows), pad=False)
    return ["".join(segment.text for segment in line) for line in lines]


def test_live_preview_is_a_few_rows_after_the_prefix_then_after_a_blank_line() -> None:
    console = Console(file=io.StringIO(), width=20, theme=Theme({"aish.reply_prefix": "bold"}))
    renderer = StreamRenderer(console, prefix="apollo> ")
    assert preview_rows(console, renderer, 3) == []  # nothing yet: the spinner alone
    words = [f"w{i:03}" for i in range(500)]
    feed_in_chunks(renderer, " ".join(words[:100]))
    shown = preview_rows(console, renderer, 3)
    assert len(shown) == 3 and all(len(row) <= 20 for row in shown)
    assert shown[-1].split()[-1] == "w099", "the newest words are shown"
    assert preview_rows(console, renderer, 30)[0].startswith("apollo> w000 ")  # beside it
    feed_in_chunks(renderer, "\n\n" + "\t".join(words[100:400]))
    assert console.file.getvalue().startswith("apollo> w000 ")
    shown = preview_rows(console, renderer, 3)
    assert shown[0] == "", "a blank line where the next block will be printed"
    assert len(shown) == 4 and all(len(row) <= 20 for row in shown)
    assert shown[-1].split()[-1] == "w399"
    assert "\t" not in "".join(shown)


def test_text_of_a_block_being_printed_stays_visible_until_it_is() -> None:
    """While a completed block is rendered, a live display's refresh must not drop its text
    from the preview before the block itself is on the screen."""
    from rich.console import RenderHook

    console = colour_console()
    renderer = StreamRenderer(console, prefix="apollo> ")
    seen: list[str] = []

    class Hook(RenderHook):  # what a live display would redraw with each print
        def process_renderables(self, renderables):  # noqa: ANN001, ANN201
            seen.append(renderer.preview())
            return renderables

    console.push_render_hook(Hook())
    feed_in_chunks(renderer, "First paragraph PRINTED here.")
    renderer.preview()  # a refresh: the screen shows the open paragraph
    renderer.feed("\n\nSecond")
    printed = [SGR.sub("", line).rstrip() for line in console.file.getvalue().splitlines()]
    assert printed[:1] == ["apollo> First paragraph PRINTED here."]
    # The paragraph is printed with the prefix in one write, and the live area is redrawn
    # with it: the preview moved on with that same print.
    assert seen == ["Second"]


def test_importing_render_does_not_import_rich_markdown() -> None:
    code = "import sys, aish.render; print('rich.markdown' in sys.modules)"
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert found.stdout.strip() == "False"
