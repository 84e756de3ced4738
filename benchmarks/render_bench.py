"""How the cost of streaming a reply through StreamRenderer grows with its length.

Run ``python benchmarks/render_bench.py``. A reply of paragraphs, lists and code fences is
fed in ~4-character chunks (about one token each) into a colour terminal console writing
to memory. Microseconds per token should stay roughly flat as the reply grows: the
renderer is linear, unlike re-rendering the whole reply on every chunk (rich.live).

The second pair of columns adds the live preview the shell shows under the printed blocks
(``StreamRenderer.live_preview``: the last rows of the block still open), rendered every
``PREVIEW_EVERY`` tokens. The shell redraws it 12.5 times a second, so that is a redraw
for every 4 tokens at 50 tokens a second; its cost must not grow with the reply either.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

CHARS_PER_TOKEN = 4
SIZES = (2_500, 5_000, 10_000, 20_000)
PREVIEW_EVERY = 4  # tokens between two redraws of the live preview
REPEATS = 3  # the best of a few runs, so that a busy machine blurs the figures less

_SECTION = """\
## Step {n}

This paragraph explains step {n} in some detail, with **bold** words, `inline code` and a
[link](https://example.com/{n}) so that inline rendering has work to do as well.

- first point about step {n}
- second point, which is a little longer than the first one
- third point

```python
def step_{n}(items: list[int]) -> int:
    \"\"\"Add up the items for step {n}.\"\"\"
    total = 0
    for item in items:
        total += item * {n}
    return total
```

"""


def make_reply(tokens: int) -> str:
    """A Markdown reply of about ``tokens`` tokens (``CHARS_PER_TOKEN`` characters each)."""
    wanted = tokens * CHARS_PER_TOKEN
    parts: list[str] = []
    size = 0
    n = 0
    while size < wanted:
        section = _SECTION.format(n=n)
        parts.append(section)
        size += len(section)
        n += 1
    return "".join(parts)[:wanted]


def stream(reply: str, preview_every: int = 0) -> float:
    """Seconds to stream ``reply`` through a renderer in token-sized chunks, rendering its
    live preview every ``preview_every`` tokens (never if 0)."""
    from rich.console import Console

    from aish.render import StreamRenderer

    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    renderer = StreamRenderer(console)
    preview = renderer.live_preview() if preview_every else None
    started = time.perf_counter()
    for token, start in enumerate(range(0, len(reply), CHARS_PER_TOKEN), 1):
        renderer.feed(reply[start : start + CHARS_PER_TOKEN])
        if preview_every and token % preview_every == 0:
            for _segment in console.render(preview):
                pass
    renderer.finish()
    return time.perf_counter() - started


def run(sizes: tuple[int, ...] = SIZES) -> list[tuple[int, float, float]]:
    """Return ``(tokens, seconds, seconds with the live preview)`` for each size."""
    stream(make_reply(200), PREVIEW_EVERY)  # warm up: imports, Pygments lexer and styles
    results = []
    for tokens in sizes:
        reply = make_reply(tokens)
        blocks = min(stream(reply) for _ in range(REPEATS))
        with_preview = min(stream(reply, PREVIEW_EVERY) for _ in range(REPEATS))
        results.append((tokens, blocks, with_preview))
    return results


def main() -> None:
    print(f"{'':>8} {'blocks only':>19}   {'+ live preview':>19}")
    print(f"{'tokens':>8} {'seconds':>9} {'us/token':>9}   {'seconds':>9} {'us/token':>9}")
    for tokens, seconds, with_preview in run():
        print(
            f"{tokens:>8} {seconds:>9.3f} {seconds / tokens * 1e6:>9.1f}"
            f"   {with_preview:>9.3f} {with_preview / tokens * 1e6:>9.1f}"
        )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
    main()
