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


def render(text: str, console: Console, chunk: int = 3, **kwargs: object) -> str:
    renderer = StreamRenderer(console, **kwargs)
    for start in range(0, len(text), chunk):
        renderer.feed(text[start : start + chunk])
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


@pytest.mark.parametrize("markdown", [True, False])
def test_hostile_escapes_never_reach_the_terminal(markdown: bool) -> None:
    out = render(HOSTILE, colour_console(), markdown=markdown)
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


def test_importing_render_does_not_import_rich_markdown() -> None:
    code = "import sys, aish.render; print('rich.markdown' in sys.modules)"
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert found.stdout.strip() == "False"
