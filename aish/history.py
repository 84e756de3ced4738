"""A session's whole history as a tree: the model behind `aish --history` and the exports.

Part of the session core's read side: one read of the log arranged as nodes (each message with
its number on the path from the root, as --edit and --at count), edges and refs. A *run* is a
straight stretch of the tree: it goes on while a message has exactly one child and ends at a
fork (several children) or a leaf. Drawing lays a run out as one column and nests each side of
a fork under it, so a long conversation with a few regenerations stays narrow.

Only the drawing functions use Rich, imported there, so building the model stays cheap.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, NamedTuple

from aish.compaction import conversation
from aish.messages import USER, Message
from aish.store.base import Loaded
from aish.store.refs import MAIN
from aish.store.skeleton import WIDEST, first_line  # noqa: F401 - re-exported to the faces

if TYPE_CHECKING:
    from aish.graph import Folded, Row

FOLD_KEEP_LAST = 2  # messages kept at the end of a folded run: the latest exchange
Text = Callable[[str], str]  # what text passes through before it is shown (redaction)


class Node(NamedTuple):
    """One message of the tree (a named tuple: a long log makes thousands of them, and a
    frozen dataclass costs several times more to build)."""

    message: Message
    number: int  # on the path from the root, from 1
    children: tuple[str, ...]  # oldest first

    @property
    def tokens(self) -> int | None:
        usage = self.message.usage
        return None if usage is None else usage.prompt_tokens + usage.completion_tokens

    def who(self, arrow: str = "\u2192") -> str:
        # Names come from the log, which another writer (a shared Redis, a synced folder) may
        # have filled with terminal escapes: they are shown as visible marks, never sent.
        from aish.sanitize import sanitize

        m = self.message
        if m.role == USER:  # the person who wrote it; "user" in logs older than that
            return sanitize(f"{m.by or 'user'} {arrow} {m.ai}")
        return sanitize(f"{m.ai} (note)" if m.note else m.ai)


@dataclass
class History:
    sid: str
    nodes: dict[str, Node]  # in drawing order
    roots: list[str]  # top-level messages (a damaged log may have more than one)
    refs: dict[str, str]  # branch -> head message id ("" = at the root)
    current: str  # this user's checked-out branch
    only: str | None = None  # the branch shown, when only one is
    heads: dict[str, list[str]] = field(default_factory=dict)  # message id -> branches there

    def __post_init__(self) -> None:
        for name, head in sorted(self.refs.items()):
            self.heads.setdefault(head, []).append(name)

    def run_from(self, start: str) -> list[Node]:
        """The straight run that starts at ``start``."""
        run = [self.nodes[start]]
        while len(run[-1].children) == 1 and len(run) <= len(self.nodes):
            run.append(self.nodes[run[-1].children[0]])
        return run

    def to_json(self, text: Text, content: bool = False) -> dict:
        from aish.costs import message_tokens

        nodes = []
        for node in self.nodes.values():
            m = node.message
            own, estimated = message_tokens(m)
            item = {"id": m.id, "parent": m.parent or "", "number": node.number,
                    "role": m.role, "ai": m.ai, "time": m.time, "tokens": node.tokens,
                    "message_tokens": own, "message_tokens_estimated": estimated,
                    "first_line": text(first_line(m.content))}
            if m.note:
                item["note"] = m.note
            if m.by:
                item["by"] = m.by
            if content:
                item["content"] = text(m.content)
            nodes.append(item)
        edges = [{"from": n.message.id, "to": child}
                 for n in self.nodes.values() for child in n.children]
        return {"session": self.sid, "current": self.current,
                **({"branch": self.only} if self.only else {}),
                "nodes": nodes, "edges": edges, "refs": dict(sorted(self.refs.items()))}


def build(loaded: Loaded, sid: str, current: str, branch: str | None = None) -> History:
    """The history of ``loaded``: every message, or only ``branch``'s path."""
    refs = {name: head.id for name, head in loaded.tree.refs.items()}
    if MAIN not in refs:  # a log written before branches: main is its newest message
        head = loaded.tree.head(MAIN)
        refs[MAIN] = head.id if head else ""
    if branch is not None:
        path = loaded.path(loaded.tree.head(branch))
        on_path = {m.id: Node(m, i, (path[i].id,) if i < len(path) else ())
                   for i, m in enumerate(path, 1)}
        return History(sid, on_path, [path[0].id] if path else [],
                       {branch: refs.get(branch, "")}, current, branch)
    # A compaction's summary stands beside the path, not in the conversation: it is no node
    # (no number, no side of a fork, nothing to continue from); info tells what it covers.
    messages = conversation(loaded.messages)
    # The tree as `aish.forks.Tree` arranges it (children oldest first, log order breaking
    # ties), made here in one pass: this is most of what building costs on a long log.
    by_id = {m.id: m for m in messages}
    children: dict[str, list[Message]] = {}
    for message in messages:
        parent = message.parent or ""
        kids = children.get(parent)
        if kids is None:
            children[parent] = [message]
        else:
            kids.append(message)
    by_time = attrgetter("time")
    for kids in children.values():
        if len(kids) > 1:
            kids.sort(key=by_time)  # stable: the same time keeps log order
    nodes: dict[str, Node] = {}
    roots = [m.id for m in children.get("", [])]
    # A message whose parent is missing (a damaged log) still shows, as a root of its own.
    roots += [m.id for m in messages if m.parent and m.parent not in by_id]
    below = children.get
    for root in roots:
        stack = [(by_id[root], 1)]
        while stack:  # no recursion: a log may be thousands of messages deep
            message, number = stack.pop()
            while message.id not in nodes:  # seen: a damaged log's cycle or repeated id
                kids = below(message.id)
                if kids is None:
                    nodes[message.id] = Node(message, number, ())
                    break
                if len(kids) == 1:  # a straight run: followed here, not through the stack
                    kid = kids[0]
                    if kid.id in nodes:
                        nodes[message.id] = Node(message, number, ())
                        break
                    nodes[message.id] = Node(message, number, (kid.id,))
                    message, number = kid, number + 1
                    continue
                kids = [k for k in kids if k.id not in nodes]
                nodes[message.id] = Node(message, number, tuple(k.id for k in kids))
                stack.extend((k, number + 1) for k in reversed(kids))
                break
    for name in list(refs):
        if refs[name] and refs[name] not in nodes:
            refs[name] = ""  # a head the log does not hold: shown at the root
    return History(sid, nodes, roots, refs, current)


# -- drawing -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Style:
    width: int
    ascii: bool
    fold: bool
    now: float
    sanitize: Callable[[str], str]
    text: Text  # redaction

    @property
    def ellipsis(self) -> str:
        return "..." if self.ascii else "\u2026"

    @property
    def arrow(self) -> str:
        return "->" if self.ascii else "\u2192"

    def folded(self, count: int) -> str:
        dots = "..." if self.ascii else "\u22ef"
        return f"{dots} {count} more {dots}"


def when(stamp: float, now: float) -> str:
    local = _time.localtime(stamp)
    if _time.strftime("%Y-%m-%d", local) == _time.strftime("%Y-%m-%d", _time.localtime(now)):
        return _time.strftime("%H:%M", local)
    return _time.strftime("%m-%d", local)


def tags(history: History, names: list[str]) -> str:
    return " ".join(f"[{n}{'*' if n == history.current else ''}]" for n in names)


def cut(text: str, room: int, ellipsis: str) -> str:
    """``text`` in ``room`` terminal cells (CJK and emoji take two, never cut in half)."""
    from aish.graph import cut_cells

    return cut_cells(text, room, ellipsis)


def row(history: History, node: Node, indent: int, style: Style) -> str:
    """One message's line: number, time, who, first line (cut to fit), tokens, branch tags."""
    from aish.graph import cells as cell_len

    m = node.message
    start = f"{node.number} {when(m.time, style.now)} {node.who(style.arrow)}: "
    end = ""
    if node.tokens:
        end += f" {node.tokens}t"
    if m.id in history.heads:
        end += " " + tags(history, history.heads[m.id])
    first = style.sanitize(style.text(first_line(m.content)))
    room = style.width - indent - cell_len(start) - cell_len(end)
    if room < 8:  # narrow: the time goes first
        start = f"{node.number} {node.who(style.arrow)}: "
        room = style.width - indent - cell_len(start) - cell_len(end)
    return start + cut(first, max(room, 0), style.ellipsis) + end


def shown(history: History, run: list[Node], fold: bool) -> list[Node | int]:
    """The run's rows: nodes, and counts standing for stretches folded away. Kept: the first,
    the last few, and every branch head."""
    if not fold:
        return list(run)
    keep = {0, *range(max(len(run) - FOLD_KEEP_LAST, 0), len(run))}
    keep |= {i for i, n in enumerate(run) if n.message.id in history.heads}
    out: list[Node | int] = []
    i = 0
    while i < len(run):
        if i in keep:
            out.append(run[i])
            i += 1
            continue
        j = i
        while j < len(run) and j not in keep:
            j += 1
        out.extend([run[i]] if j - i == 1 else [j - i])  # folding one line saves nothing
        i = j
    return out


def title(history: History, style: Style) -> str:
    count = len(history.nodes)
    branches = len(history.refs)
    what = (f"branch {history.only}" if history.only
            else f"{branches} branch{'' if branches == 1 else 'es'}")
    text = f"session {history.sid}: {count} message{'' if count == 1 else 's'}, {what}"
    at_root = tags(history, history.heads.get("", []))
    return cut(text, style.width - len(at_root) - 1, style.ellipsis) + (
        " " + at_root if at_root else "")


def trunk_of(history: History, kids: tuple[str, ...], on_current: set[str]) -> str:
    """The side of a fork drawn straight on: the one leading to the checked-out branch's
    head, else the newest."""
    return next((k for k in kids if k in on_current), kids[-1])


GUIDES = ("├── ", "│   ", "└── ", "    ")
ASCII_GUIDES = ("+-- ", "|   ", "`-- ", "    ")  # where box drawing may not show


def tree_lines(history: History, style: Style):
    """Rich lines (one a row, lazily, so the first screen goes out before the rest is laid
    out) of the tree. A run is drawn as one column; at a fork the column goes on with one side
    (the checked-out branch's, else the newest) and every other side is nested under the
    forking message, each under a ``side i/n`` label when there are several, so which rows
    belong to which side is never ambiguous."""
    from rich.text import Text as RichText

    fork, through, last, blank = ASCII_GUIDES if style.ascii else GUIDES
    current = history.refs.get(history.current, "")
    on_current = set()
    while current and current in history.nodes and current not in on_current:
        on_current.add(current)
        current = history.nodes[current].message.parent or ""

    def column(cursor: str, depth: int):
        """(text, style, what hangs below it) for each line of the column from ``cursor``."""
        while True:
            run = history.run_from(cursor)
            items = shown(history, run, style.fold)
            kids = run[-1].children
            for index, item in enumerate(items):
                if isinstance(item, int):
                    yield style.folded(item), "dim", None
                    continue
                below = sides(kids, depth) if index == len(items) - 1 and len(kids) > 1 else None
                yield (row(history, item, 4 * depth, style),
                       "bold" if item.message.id in history.heads else "", below)
            if len(kids) <= 1:
                return
            cursor = trunk_of(history, kids, on_current)

    def sides(kids: tuple[str, ...], depth: int):
        others = [k for k in kids if k != trunk_of(history, kids, on_current)]
        if len(others) == 1:
            yield from column(others[0], depth + 1)
            return
        for kid in reversed(others):
            yield f"side {kids.index(kid) + 1}/{len(kids)}", "dim", column(kid, depth + 2)

    def marked(lines):  # each line with whether it is the last of its level
        previous = None
        for item in lines:
            if previous is not None:
                yield previous, False
            previous = item
        if previous is not None:
            yield previous, True

    top = RichText(title(history, style), style="bold", no_wrap=True, overflow="crop", end="")
    yield top
    levels = [marked(line for root in history.roots for line in column(root, 1))]
    ended: list[bool] = []  # for each open level, whether the line it hangs from was the last
    while levels:  # no recursion: a log may hold thousands of forks
        step = next(levels[-1], None)
        if step is None:
            levels.pop()
            if ended:
                ended.pop()
            continue
        (text, kind, below), is_last = step
        line = RichText(no_wrap=True, overflow="crop", end="")
        for done in ended:
            line.append(blank if done else through, "dim")
        line.append(last if is_last else fork, "dim")
        line.append(text, kind)
        yield line
        if below is not None:
            levels.append(marked(below))
            ended.append(is_last)


# -- lanes (--graph) ---------------------------------------------------------------------------

LANE_COLOURS = ("red", "green", "yellow", "blue", "magenta", "cyan")


def newest_first(history: History) -> tuple[list[str], dict[str, Sequence[str]]]:
    """Roots and children ordered by their newest message below (the most recently active side
    first), as the lanes draw them."""
    latest: dict[str, float] = {}
    for key, node in reversed(history.nodes.items()):  # drawing order has parents first
        stamp = node.message.time
        for kid in node.children:
            stamp = max(stamp, latest.get(kid, stamp))
        latest[key] = stamp

    def ordered(ids) -> list[str]:
        return sorted(ids, key=lambda i: -latest.get(i, 0.0))

    return ordered(history.roots), {i: ordered(n.children) if len(n.children) > 1 else n.children
                                    for i, n in history.nodes.items()}


def graph_lines(history: History, style: Style, colour: bool):
    """Rich lines (one a row, lazily) of ``history`` in lanes, newest first: the title, then
    for each message its lane marks and line, between them the rows where sides join."""
    from rich.cells import cell_len
    from rich.text import Text as RichText

    from aish.graph import Folded, fold, layout

    def line() -> RichText:
        return RichText(no_wrap=True, overflow="crop", end="")

    def lanes(text: RichText, cells: str) -> None:
        for i, char in enumerate(cells):
            # A join mark belongs to the lane that moves into the gap's left column.
            lane = i // 2 + (1 if i % 2 else 0)
            paint = colour and char != " "
            text.append(char, LANE_COLOURS[lane % len(LANE_COLOURS)] if paint else "")

    first = line()
    first.append(title(history, style), "bold")
    yield first
    roots, children = newest_first(history)
    laid = layout(roots, children)
    rows: Iterator[Row | Folded] = laid
    if style.fold:  # a message is asked about as its row comes, not all first
        rows = fold(laid, lambda i: len(history.nodes[i].children) == 1
                    and i not in history.heads, FOLD_KEEP_LAST)
    for item in rows:
        text = line()
        lanes(text, item.cells)
        if isinstance(item, Folded):
            text.append(" " + style.folded(item.count), "dim")
        elif item.node is not None:
            indent = cell_len(item.cells) + 1
            node = history.nodes[item.node]
            text.append(" " + row(history, node, indent, style),
                        "bold" if item.node in history.heads else "")
        yield text
