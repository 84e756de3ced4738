"""Properties of the lane layout behind `aish --history --graph`, on random trees (forests, as a
damaged log may have several roots): every message is drawn exactly once, every child's lane
runs unbroken down to its parent's row, and no lane passes through a message (a message's row
has its mark in its own lane only). Folding keeps the same messages' order and accounts for
every one it leaves out.

AISH_FUZZ_EXAMPLES sets the number of examples per test (a nightly run asks for 10,000)."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from aish.graph import JOIN, LANE, NODE, Folded, Row, cut_cells, fold, layout

EXAMPLES = int(os.environ.get("AISH_FUZZ_EXAMPLES") or 200)
FUZZ = settings(max_examples=EXAMPLES, deadline=None)


@st.composite
def forests(draw):
    """(roots, children, parent): node i's parent is one of the nodes before it, or none."""
    size = draw(st.integers(1, 40))
    parent: dict[str, str | None] = {}
    children: dict[str, list[str]] = {}
    roots: list[str] = []
    for i in range(size):
        node = f"n{i}"
        up = draw(st.one_of(st.none(), st.integers(0, i - 1))) if i else None
        if up is None:
            roots.append(node)
            parent[node] = None
        else:
            parent[node] = f"n{up}"
            children.setdefault(f"n{up}", []).append(node)
    for kids in children.values():  # any order of the sides is drawn correctly
        kids[:] = draw(st.permutations(kids))
    return draw(st.permutations(roots)), children, parent


def follow(rows: list[Row], start: int, column: int) -> int:
    """The row a lane leaving ``rows[start]`` at ``column`` reaches a message on."""
    for index in range(start + 1, len(rows)):
        cells = rows[index].cells.ljust(2 * column + 1)
        mark = cells[2 * column]
        if mark == NODE:
            return index
        if mark == LANE:
            continue
        assert mark == " " and column and cells[2 * column - 1] == JOIN, (
            f"the lane in column {column} breaks on row {index}: {rows[index].cells!r}")
        column -= 1  # it moves one column left
    raise AssertionError(f"the lane from row {start} runs off the bottom")


@FUZZ
@given(forests())
def test_every_message_once_every_edge_drawn_no_lane_through_a_message(forest):
    roots, children, parent = forest
    rows = list(layout(roots, children))
    drawn = [r.node for r in rows if r.node is not None]
    assert sorted(drawn) == sorted(parent)  # every message exactly once
    at = {r.node: i for i, r in enumerate(rows) if r.node is not None}
    for index, r in enumerate(rows):
        assert set(r.cells) <= {NODE, LANE, JOIN, " "}
        assert not r.cells.endswith(" ")
        if r.node is None:
            assert NODE not in r.cells
            continue
        # Its own mark only, in its own lane: no lane is drawn through a message.
        assert r.cells.count(NODE) == 1 and r.cells[2 * r.column] == NODE
        assert set(r.cells[1::2]) <= {" "}
        up = parent[r.node]
        if up is None:  # a root: its lane ends, nothing below continues it
            below = rows[index + 1].cells if index + 1 < len(rows) else ""
            assert len(below) <= 2 * r.column or below[2 * r.column] != LANE
        else:
            assert follow(rows, index, r.column) == at[up], (r.node, up)
    # Newest first: every message below all of its children.
    for child, up in parent.items():
        if up is not None:
            assert at[child] < at[up]


@FUZZ
@given(forests(), st.data())
def test_folding_keeps_order_and_counts_what_it_hides(forest, data):
    roots, children, parent = forest
    rows = list(layout(roots, children))
    plain = {n: data.draw(st.booleans()) and len(children.get(n, ())) == 1 for n in parent}
    out = list(fold(rows, plain.__getitem__, 2))
    kept = [r for r in out if isinstance(r, Row)]
    hidden = sum(r.count for r in out if isinstance(r, Folded))
    assert [r for r in rows if r in kept] == kept  # same order, nothing made up
    assert len(kept) + hidden == len(rows)
    folded_away = [r for r in rows if r not in kept]
    assert all(r.node is not None and plain[r.node] for r in folded_away)
    assert all(r in kept for r in rows if r.node is not None and not plain[r.node])


@FUZZ
@given(st.text(max_size=40), st.integers(0, 50))
def test_cutting_by_cells_fits_and_keeps_whole_characters(text, room):
    from rich.cells import cell_len

    out = cut_cells(text, room, "...")
    assert cell_len(out) <= max(room, 0) or out == ""
    if cell_len(text) <= room:
        assert out == text
    else:
        assert out == "" or (out.endswith("...") and text.startswith(out[:-3]))
