"""How the cost of streaming a reply through StreamRenderer grows with its length.

Run ``python benchmarks/render_bench.py``. A reply of paragraphs, lists and code fences is
fed in ~4-character chunks (about one token each) into a colour terminal console writing
to memory. Microseconds per token should stay roughly flat as the reply grows: the
renderer is linear, unlike re-rendering the whole reply on every chunk (rich.live).
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

CHARS_PER_TOKEN = 4
SIZES = (2_500, 5_000, 10_000, 20_000)

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


def stream(reply: str) -> float:
    """Seconds to stream ``reply`` through a renderer in token-sized chunks."""
    from rich.console import Console

    from aish.render import StreamRenderer

    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    renderer = StreamRenderer(console)
    started = time.perf_counter()
    for start in range(0, len(reply), CHARS_PER_TOKEN):
        renderer.feed(reply[start : start + CHARS_PER_TOKEN])
    renderer.finish()
    return time.perf_counter() - started


def run(sizes: tuple[int, ...] = SIZES) -> list[tuple[int, float]]:
    """Return ``(tokens, seconds)`` for each size."""
    stream(make_reply(200))  # warm up: imports, Pygments lexer and style loading
    return [(tokens, stream(make_reply(tokens))) for tokens in sizes]


def main() -> None:
    print(f"{'tokens':>8} {'seconds':>9} {'us/token':>9}")
    for tokens, seconds in run():
        print(f"{tokens:>8} {seconds:>9.3f} {seconds / tokens * 1e6:>9.1f}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
    main()
