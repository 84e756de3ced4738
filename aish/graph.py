"""Lanes in the style of ``git log --graph``, newest first: the layout behind
``aish --history ID --graph``.

Pure: it knows only ids and their children, so it can be tested on random trees. The order is
git's topological one for a tree: a side is drawn whole, from its newest message down, before
the message it forks from, and the sides of a fork come in the order given (the caller puts the
most recently active first). Every message's lane is the rightmost one on its row, so a lane
never passes through a message; the lanes waiting for a forking message are the rightmost ones
and join it from the right, one column a row (``|/ /`` then ``|/``), so lanes never cross.

A row's ``cells`` hold two characters a lane: the lane's mark (``*`` a message, ``|`` a lane
going on, ``' '`` none) and the gap on its right (``/`` where the lane right of it moves one
column left). Rows come lazily, so the first screen costs only what leads to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

NODE, LANE, JOIN = "*", "|", "/"


@dataclass(frozen=True)
class Row:
    cells: str  # two characters a lane, trailing blanks cut
    node: str | None = None  # the message on this row; None on a row that only joins lanes
    column: int = -1  # the message's lane


def order(roots: Sequence[str], children: Mapping[str, Sequence[str]]
          ) -> Iterator[tuple[str, str | None]]:
    """(message, parent) with every side before the message it forks from; each id once."""
    seen: set[str] = set()
    stack: list[tuple[str, str | None, bool]] = [(r, None, False) for r in reversed(roots)]
    while stack:  # no recursion: a log may be thousands of messages deep
        node, parent, done = stack.pop()
        if done:
            yield node, parent
            continue
        if node in seen:  # a repeated id or a loop in a damaged log
            continue
        seen.add(node)
        stack.append((node, parent, True))
        stack.extend((kid, node, False) for kid in reversed(children.get(node, ())))


def layout(roots: Sequence[str], children: Mapping[str, Sequence[str]]) -> Iterator[Row]:
    """The rows: one per message, and between them rows that join lanes into a fork."""
    lanes: list[str | None] = []  # what each lane waits for: the parent of its last message
    for node, parent in order(roots, children):
        # Only lanes at the right end can wait for ``node``: those opened for its own sides.
        column = len(lanes)
        while column and lanes[column - 1] == node:
            column -= 1
        while len(lanes) > column + 1:  # the sides join, the nearest first
            yield Row(_join(len(lanes), column))
            lanes.pop(column + 1)
        if column == len(lanes):
            lanes.append(node)  # a newest message: its lane opens here
        yield Row(_cells(len(lanes), column), node, column)
        if parent is None:
            lanes.pop()  # a root: its lane ends
        else:
            lanes[column] = parent


def _cells(count: int, column: int) -> str:
    return " ".join(NODE if i == column else LANE for i in range(count))


def _join(count: int, column: int) -> str:
    """Lane ``column + 1`` joins ``column``; every lane right of it moves one column left."""
    left = " ".join(LANE for _ in range(column + 1))
    return left + "".join(JOIN + " " for _ in range(column + 1, count)).rstrip()


@dataclass(frozen=True)
class Folded:
    cells: str  # the lanes going on past the folded messages
    count: int


def fold(rows: Iterable[Row], plain: Callable[[str], bool], keep: int
         ) -> Iterator[Row | Folded]:
    """``rows`` with long straight stretches folded: a count stands for messages that are
    ``plain`` (one child, no branch head) drawn one under another in one lane, keeping the
    ``keep`` newest and the oldest of each stretch."""
    stretch: list[Row] = []

    def flush() -> Iterator[Row | Folded]:
        if len(stretch) > keep + 2:  # folding one line saves nothing
            yield from stretch[:keep]
            yield Folded(stretch[0].cells.replace(NODE, LANE), len(stretch) - keep - 1)
            yield stretch[-1]
        else:
            yield from stretch
        stretch.clear()

    for item in rows:
        if item.node is not None and plain(item.node) and (
                not stretch or stretch[-1].column == item.column):
            stretch.append(item)
            continue
        yield from flush()
        if item.node is not None and plain(item.node):
            stretch.append(item)
        else:
            yield item
    yield from flush()


# -- text --------------------------------------------------------------------------------------

def cut_cells(text: str, room: int, ellipsis: str) -> str:
    """``text`` in at most ``room`` terminal cells: wide characters (CJK, emoji) count two and
    are never cut in half; an ellipsis marks a cut."""
    # The common case: one cell a character (control characters take none: counted below).
    if text.isascii() and text.isprintable():
        if len(text) <= room:
            return text
        room -= cells(ellipsis)
        return text[:room] + ellipsis if room >= 0 else ""
    from rich.cells import cell_len

    if cell_len(text) <= room:
        return text
    room -= cell_len(ellipsis)
    if room < 0:
        return ""
    out, used = [], 0
    for char in text:
        width = cell_len(char)
        if used + width > room:
            break
        out.append(char)
        used += width
    return "".join(out) + ellipsis


def cells(text: str) -> int:
    """How many terminal cells ``text`` takes."""
    if text.isascii() and text.isprintable():
        return len(text)
    from rich.cells import cell_len

    return cell_len(text)
