"""`tree` in session mode: the session's whole tree, full-screen, to move about in and pick a
message to continue from.

The tree is laid out as `aish --history` draws it: a run (a straight stretch) is one column; at
a fork the column goes on with the checked-out branch's side (else the newest) and every other
side is nested under the forking message. Long runs start folded to their first message, their
latest exchange and the branch heads on them; a ``⋯ N more ⋯`` row stands for the rest.

Only the rows on screen are drawn (:class:`_Rows` hands prompt_toolkit one line at a time), so
opening a 10,000-message session costs a walk of the tree, not 10,000 rendered lines. Every row
passes through :func:`aish.sanitize.sanitize`: model text reaches the screen inert.

Keys (also on the help line): Up/Down (k/j) move, PgUp/PgDn and Home/End (g/G) jump; Left (h)
folds the run or goes to the fork above it, Right (l) unfolds it or goes into the first side
hanging below; Space or z folds and unfolds, as Enter does on a ``more`` row; `/` searches
(Enter jumps to the next match, n / N to the next / previous one); Enter on a message picks it;
q or Esc leaves with nothing picked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aish.history import History, Style, shown, trunk_of
from aish.history import row as row_text
from aish.sanitize import sanitize

if TYPE_CHECKING:
    from prompt_toolkit.formatted_text import StyleAndTextTuples

FOLD_ABOVE = 10  # runs longer than this start folded
PAGE = 10  # rows PgUp/PgDn move when the screen's height is not known yet
HELP = ("\u2191\u2193 move  \u2190\u2192 fold/unfold  space/z fold  / search  n/N next/prev  "
        "Enter continue here  q quit")


@dataclass(frozen=True)
class Segment:
    """One run of the layout: its messages, in order, and how deep it is nested."""

    start: str  # the run's first message: its fold key
    ids: tuple[str, ...]
    depth: int  # 0: a root's column; 1 and more: a side nested under a fork
    side: bool = False  # a side nested under its fork, not the column going on after it


@dataclass(frozen=True)
class Row:
    id: str  # the message shown; for a ``more`` row the first one it stands for
    segment: int  # index into TreeNav.segments
    more: int = 0  # > 0: a row standing for this many folded messages
    side: bool = False  # the first row of a nested side


class TreeNav:
    """What the view shows and where the cursor is; the keys call its methods."""

    def __init__(self, history: History, *, ascii: bool = False, now: float | None = None):
        self.history = history
        self.style = Style(width=80, ascii=ascii, fold=True,
                           now=time.time() if now is None else now,
                           sanitize=sanitize, text=lambda text: text)
        self.current = _path_to(history, history.refs.get(history.current, ""))
        self.segments = _layout(history, self.current)
        self.sides = {i for i, s in enumerate(self.segments) if s.side}
        self._order: dict[str, int] | None = None
        self._segment_of: dict[str, int] | None = None
        self.folded = {i for i, s in enumerate(self.segments) if len(s.ids) > FOLD_ABOVE}
        self.rows: list[Row] = []
        self.row_of: dict[str, int] = {}
        self.cursor = 0
        self.query = ""
        self.status = ""
        self._lowered: dict[str, str] = {}
        self._relayout()
        head = history.refs.get(history.current, "")
        self.go_to(head or (self.rows[0].id if self.rows else ""))

    # -- rows -------------------------------------------------------------------------------
    def _relayout(self) -> None:
        rows: list[Row] = []
        nodes = self.history.nodes
        for index, segment in enumerate(self.segments):
            side = index in self.sides
            if index in self.folded:
                run = [nodes[mid] for mid in segment.ids]
                at = 0
                for item in shown(self.history, run, True):
                    if isinstance(item, int):
                        rows.append(Row(segment.ids[at], index, more=item))
                        at += item
                    else:
                        rows.append(Row(item.message.id, index, side=side and at == 0))
                        at += 1
            else:
                rows.extend(Row(mid, index, side=side and i == 0)
                            for i, mid in enumerate(segment.ids))
        self.rows = rows
        self.row_of = {r.id: i for i, r in enumerate(rows) if not r.more}

    def line(self, index: int, width: int) -> StyleAndTextTuples:
        """Row ``index`` as prompt_toolkit fragments, cut to ``width``."""
        item = self.rows[index]
        depth = self.segments[item.segment].depth
        indent = "  " * depth
        if item.side:
            indent = "  " * (depth - 1) + ("+ " if self.style.ascii else "\u2514 ")
        classes = []
        if item.more:
            text = self.style.folded(item.more)
            classes.append("class:tree.more")
        else:
            node = self.history.nodes[item.id]
            text = row_text(self.history, node, len(indent), Style(
                width, self.style.ascii, True, self.style.now, self.style.sanitize,
                self.style.text)).replace("\t", " ")
            if item.id in self.current:
                classes.append("class:tree.current")
            if item.id in self.history.heads:
                classes.append("class:tree.head")
        if index == self.cursor:
            classes.append("class:tree.cursor")
        text = sanitize(indent + text)[:max(width, 0)]
        return [(" ".join(classes), text.ljust(width) if index == self.cursor else text)]

    def title(self) -> str:
        h = self.history
        count, branches = len(h.nodes), len(h.refs)
        return sanitize(f"session {h.sid}: {count} message{'' if count == 1 else 's'}, "
                        f"{branches} branch{'' if branches == 1 else 'es'}; this shell is on "
                        f"{h.current}")

    @property
    def order(self) -> dict[str, int]:
        """Every message's place in the layout with nothing folded (made when first needed:
        opening the view does without it)."""
        if self._order is None:
            self._order = {mid: i for i, mid in enumerate(
                mid for segment in self.segments for mid in segment.ids)}
        return self._order

    @property
    def segment_of(self) -> dict[str, int]:
        if self._segment_of is None:
            self._segment_of = {mid: i for i, segment in enumerate(self.segments)
                                for mid in segment.ids}
        return self._segment_of

    @property
    def row(self) -> Row | None:
        return self.rows[self.cursor] if self.rows else None

    # -- moving -----------------------------------------------------------------------------
    def move(self, step: int) -> None:
        if self.rows:
            self.cursor = min(max(self.cursor + step, 0), len(self.rows) - 1)

    def go_to(self, mid: str) -> None:
        """Put the cursor on message ``mid``, unfolding its run if it is folded away."""
        if mid not in self.history.nodes:
            return
        if mid not in self.row_of:
            self.folded.discard(self.segment_of[mid])
            self._relayout()
        self.cursor = self.row_of[mid]

    def left(self) -> None:
        """Fold the cursor's run; when it is folded already (or too short), go to the fork
        it hangs from."""
        item = self.row
        if item is None:
            return
        if self._foldable(item.segment) and item.segment not in self.folded:
            self.toggle()
            return
        parent = self.history.nodes[self.segments[item.segment].start].message.parent or ""
        if parent in self.history.nodes:
            self.go_to(parent)
        else:
            self.cursor = 0

    def right(self) -> None:
        """Unfold the cursor's run; when it is open, go into the first side below."""
        item = self.row
        if item is None:
            return
        if item.segment in self.folded:
            self.toggle()
            return
        kids = [] if item.more else self.history.nodes[item.id].children
        if len(kids) > 1:
            nested = [k for k in kids if k in self.row_of and self.row_of[k] > self.cursor
                      and self.rows[self.row_of[k]].side]
            if nested:
                self.cursor = min(self.row_of[k] for k in nested)

    def unfold_all(self) -> None:
        self.folded.clear()
        mid = self.row.id if self.row else ""
        self._relayout()
        self.go_to(mid)

    def _foldable(self, segment: int) -> bool:
        ids = self.segments[segment].ids
        run = [self.history.nodes[mid] for mid in ids]
        return len(shown(self.history, run, True)) < len(run)

    def toggle(self) -> None:
        """Fold or unfold the cursor's run, keeping the cursor on its message (on a fold that
        hides it, on the ``more`` row standing for it)."""
        item = self.row
        if item is None:
            return
        index = item.segment
        if index in self.folded:
            self.folded.discard(index)
        elif self._foldable(index):
            self.folded.add(index)
        else:
            self.status = "nothing to fold: the run is short"
            return
        self._relayout()
        if item.id in self.row_of:
            self.cursor = self.row_of[item.id]
        else:
            position = self.order[item.id]
            self.cursor = max(i for i, r in enumerate(self.rows)
                              if r.segment == index and self.order[r.id] <= position)

    # -- search -----------------------------------------------------------------------------
    def search(self, query: str, step: int = 1) -> bool:
        """Go to the next (``step`` 1) or previous (-1) message whose text holds ``query``
        (any case), from the cursor on, round the end; False when none does."""
        self.query = query or self.query
        needle = self.query.lower()
        if not needle:
            return False
        ids = list(self.order)
        here = self.order[self.row.id] if self.row else -1
        if self.row and self.row.more and step > 0:
            here -= 1  # the first message a ``more`` row stands for is not shown yet
        count = len(ids)
        for offset in range(1, count + 1):
            mid = ids[(here + step * offset) % count]
            if needle in self._lower(mid):
                self.go_to(mid)
                matches = sum(needle in self._lower(m) for m in ids)
                self.status = (f"{matches} match{'' if matches == 1 else 'es'} for "
                               f"{self.query!r} (n next, N previous)")
                return True
        self.status = f"no message matches {self.query!r}"
        return False

    def _lower(self, mid: str) -> str:
        if mid not in self._lowered:
            self._lowered[mid] = self.history.nodes[mid].message.content.lower()
        return self._lowered[mid]


def _path_to(history: History, head: str) -> set[str]:
    on_path: set[str] = set()
    while head and head in history.nodes and head not in on_path:
        on_path.add(head)
        head = history.nodes[head].message.parent or ""
    return on_path


def _layout(history: History, on_current: set[str]) -> list[Segment]:
    """The runs in the order they are shown: a fork's nested sides right after it, then the
    column going on with its trunk."""
    segments: list[Segment] = []
    nodes = history.nodes
    pending = [(start, 0, False) for start in reversed(history.roots)]
    while pending:  # no recursion: a log may hold thousands of forks
        start, depth, side = pending.pop()
        ids = [start]
        while len(nodes[ids[-1]].children) == 1 and len(ids) <= len(nodes):
            ids.append(nodes[ids[-1]].children[0])
        segments.append(Segment(start, tuple(ids), depth, side))
        kids = nodes[ids[-1]].children
        if len(kids) <= 1:
            continue
        trunk = trunk_of(history, kids, on_current)
        pending.append((trunk, depth, False))
        pending.extend((k, depth + 1, True) for k in reversed(kids) if k != trunk)
    return segments


# -- the application ---------------------------------------------------------------------------

def make_app(nav: TreeNav, *, input=None, output=None, color_depth=None):
    """The full-screen Application over ``nav``; it returns the picked message id or None."""
    from prompt_toolkit.application import Application
    from prompt_toolkit.buffer import Buffer
    from prompt_toolkit.filters import Condition
    from prompt_toolkit.key_binding import KeyBindings
    from prompt_toolkit.layout import ConditionalContainer, HSplit, Layout, Window
    from prompt_toolkit.layout.controls import BufferControl, FormattedTextControl
    from prompt_toolkit.styles import Style as PromptStyle

    searching = [False]
    is_searching = Condition(lambda: searching[0])
    browsing = ~is_searching
    body = Window(_Rows(nav), wrap_lines=False, always_hide_cursor=True)

    def accept(buffer) -> bool:
        searching[0] = False
        app.layout.focus(body)
        nav.search(buffer.text)
        return False  # keep nothing: the next `/` starts empty

    query = Buffer(multiline=False, accept_handler=accept)
    bindings = KeyBindings()

    def key(*keys: str, filter=browsing, **kwargs):
        return bindings.add(*keys, filter=filter, **kwargs)

    def page() -> int:
        info = body.render_info
        return max(info.window_height - 1, 1) if info else PAGE

    @key("up")
    @key("k")
    def _up(event) -> None:
        nav.move(-1)

    @key("down")
    @key("j")
    def _down(event) -> None:
        nav.move(1)

    @key("pageup")
    def _page_up(event) -> None:
        nav.move(-page())

    @key("pagedown")
    def _page_down(event) -> None:
        nav.move(page())

    @key("home")
    @key("g")
    def _home(event) -> None:
        nav.move(-len(nav.rows))

    @key("end")
    @key("G")
    def _end(event) -> None:
        nav.move(len(nav.rows))

    @key("left")
    @key("h")
    def _left(event) -> None:
        nav.left()

    @key("right")
    @key("l")
    def _right(event) -> None:
        nav.right()

    @key(" ")
    @key("z")
    def _toggle(event) -> None:
        nav.toggle()

    @key("enter")
    def _pick(event) -> None:
        item = nav.row
        if item is None:
            return
        if item.more:
            nav.toggle()
            return
        event.app.exit(result=item.id)

    @key("/")
    def _search(event) -> None:
        searching[0] = True
        query.reset()
        event.app.layout.focus(query)

    @key("n")
    def _next(event) -> None:
        nav.search("", 1)

    @key("N")
    def _previous(event) -> None:
        nav.search("", -1)

    @key("q")
    @key("escape", eager=True)
    @key("c-c")
    def _quit(event) -> None:
        event.app.exit(result=None)

    @key("escape", filter=is_searching, eager=True)
    @key("c-c", filter=is_searching)
    def _cancel(event) -> None:
        searching[0] = False
        event.app.layout.focus(body)

    def footer():
        return [("class:tree.help", (nav.status + "  \u2502  " if nav.status else "") + HELP)]

    layout = Layout(HSplit([
        Window(FormattedTextControl(lambda: [("class:tree.title", nav.title())]), height=1),
        body,
        ConditionalContainer(HSplit([
            Window(BufferControl(query, input_processors=[_Slash()]), height=1)]),
            filter=is_searching),
        Window(FormattedTextControl(footer), height=1),
    ]), focused_element=body)
    style = PromptStyle.from_dict({
        "tree.title": "bold", "tree.help": "reverse", "tree.more": "italic",
        "tree.current": "fg:ansigreen", "tree.head": "bold", "tree.cursor": "reverse",
    })
    app: Application = Application(layout=layout, key_bindings=bindings, style=style,
                                   full_screen=True, input=input, output=output,
                                   color_depth=color_depth, include_default_pygments_style=False)
    return app


def navigate(history: History, *, input=None, output=None, color_depth=None,
             ascii: bool = False) -> str | None:
    """Show ``history`` full-screen until a message is picked (its id) or the user leaves."""
    nav = TreeNav(history, ascii=ascii)
    return make_app(nav, input=input, output=output, color_depth=color_depth).run()


def _Rows(nav: TreeNav):
    """A control that hands prompt_toolkit only the rows it draws."""
    from prompt_toolkit.data_structures import Point
    from prompt_toolkit.layout.controls import UIContent, UIControl

    class Rows(UIControl):
        def create_content(self, width: int, height: int) -> UIContent:
            return UIContent(get_line=lambda i: nav.line(i, width), line_count=len(nav.rows),
                             cursor_position=Point(0, nav.cursor), show_cursor=False)

        def is_focusable(self) -> bool:
            return True

    return Rows()


def _Slash():
    """Shows the search field as ``/text``."""
    from prompt_toolkit.layout.processors import BeforeInput

    return BeforeInput("/")
