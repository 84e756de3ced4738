"""Branch heads: named refs that move only by compare-and-set, folded from the log's records.

A session's log is a tree: each message names its ``parent``. A branch is a named *ref* to its
newest message. Refs move in two ways, both recorded in the log, so the log is also the ref log:

- a message stored with ``ref: NAME`` moves NAME from the message's parent to the message (one
  with neither ``ref`` nor ``parent``, as older versions wrote, moves ``main`` when it follows
  main's head);
- a ``{"t": "ref", "name", "from", "to", "op"}`` record moves NAME to ``to`` (undo, redo, a
  new branch, a fast-forward merge). ``from`` absent or null: NAME must not exist yet; ``"*"``:
  unconditional (written only by rewrites, which restate every ref after the new content).

A move applies only if NAME's current value equals its ``from``. Stores check that under their
lock (or inside their write script) before writing, and refuse the whole write otherwise, so no
two writers ever both believe they moved a ref; folding applies the same rule again, so a log
always folds to the same refs. Before any ref record or ref-moving message exists, ``main`` is
the last message of the log, which is how logs written before branches existed read.

Positions (``pos``) are where the store keeps a record (a byte offset, a list index). They are
hints for walking from a head to the root without reading the whole log, always checked against
the message id found there.
"""

from __future__ import annotations

import functools
import re
from collections import namedtuple

from aish.errors import StorageError
from aish.ids import BRANCH_PATTERN
from aish.records import Record

TYPE_CHECKING = False  # importing typing costs every command 2-3 ms: annotations only

MAIN = "main"
ANY = "*"  # the ``from`` of an unconditional move


# Heads and moves are made once per stored record while a log is folded: plain named tuples,
# which cost a fraction of a frozen dataclass to build. The type checker reads the typed
# declarations; what runs is the same tuple made by collections, without importing typing.
if TYPE_CHECKING:
    from typing import NamedTuple

    class Head(NamedTuple):
        id: str  # "" = a branch with no message yet (it starts at the root)
        pos: int | None = None

    class Move(NamedTuple):
        name: str
        frm: str | None  # None: create; ANY: unconditional
        to: str
        pos: int | None
        op: str
        soft: bool = False  # a message written without branches in mind: skipped, not refused
else:
    Head = namedtuple("Head", "id pos", defaults=(None,))
    Move = namedtuple("Move", "name frm to pos op soft", defaults=(False,))


class RefMoved(StorageError):
    """A ref was not where a write expected it: another writer moved it first."""

    def __init__(self, name: str, current: Head | None):
        super().__init__(f"branch {name} moved meanwhile")
        self.name = name
        self.current = current


_MESSAGE_ID = re.compile(r"[A-Za-z0-9_.-]{0,64}")  # "" is the root


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def _name(value) -> str | None:
    """A branch name as commands accept it; anything else in a log moves no branch."""
    return value if isinstance(value, str) and _sound_name(value) else None


@functools.lru_cache(maxsize=1024)  # a log names a few branches thousands of times
def _sound_name(value: str) -> bool:
    return BRANCH_PATTERN.fullmatch(value) is not None and ".." not in value


def message_id(value) -> str | None:
    return value if isinstance(value, str) and _MESSAGE_ID.fullmatch(value) else None


def _pos(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def move_of(record: dict, pos: int | None, last: Head) -> Move | None:
    """The ref move a record makes (None: it moves no ref). ``last``: the last message before
    it, the parent of a message written without one."""
    kind = record.get("t")
    if kind == "msg":
        name, mid = _name(record.get("ref")), message_id(record.get("id"))
        if not mid:
            return None
        if not name:
            # Written by a version without branches: it continues main when it follows main's
            # head in the log, as every message did then.
            if "parent" in record:
                return None
            return Move(MAIN, last.id, mid, pos, "msg", soft=True)
        parent = record.get("parent")
        parent = parent if isinstance(parent, str) else last.id
        return Move(name, parent, mid, pos, "msg") if message_id(parent) is not None else None
    if kind == "ref":
        name, to = _name(record.get("name")), message_id(record.get("to"))
        if not name or to is None:
            return None
        frm = record.get("from")
        frm = frm if frm == ANY or message_id(frm) is not None else None
        op = _text(record.get("op")) or "move"
        return Move(name, frm, to, _pos(record.get("at")), op)
    return None


class RefState(Record):
    """Every ref's head, the last message (``main`` until main has a ref of its own) and, per
    ref, the heads an undo left (what redo returns to, newest first)."""

    _fields = ("refs", "last", "redo")

    def __init__(self, refs: dict[str, Head] | None = None, last: Head | None = None,
                 redo: dict[str, list[Head]] | None = None) -> None:
        self.refs = {} if refs is None else refs
        self.last = Head("") if last is None else last
        self.redo = {} if redo is None else redo

    def head(self, name: str) -> Head | None:
        if name in self.refs:
            return self.refs[name]
        return self.last if name == MAIN else None

    def names(self) -> list[str]:
        """Branch names, ``main`` first."""
        return [MAIN] + sorted(n for n in self.refs if n != MAIN)

    def copy(self) -> RefState:
        return RefState(dict(self.refs), self.last, {k: list(v) for k, v in self.redo.items()})

    def fold(self, record: dict, pos: int | None, strict: bool = False) -> None:
        """Apply one record. ``strict``: raise RefMoved instead of skipping a move whose
        ``from`` does not match (what a store does before it writes)."""
        move = move_of(record, pos, self.last)
        if move is not None:
            self.apply(move, strict)
        if move is not None and move.op == "msg":  # its id is checked already
            self.last = Head(move.to, pos)
        elif record.get("t") == "msg" and message_id(record.get("id")):
            self.last = Head(record["id"], pos)

    def apply(self, move: Move, strict: bool = False) -> bool:
        current = self.head(move.name)
        if move.frm == ANY:
            pass
        elif move.frm is None:
            if current is not None and (move.name != MAIN or move.name in self.refs):
                return self._refuse(move, current, strict)
        elif current is None or current.id != move.frm:
            return self._refuse(move, current, strict and not move.soft)
        if move.op not in ("undo", "redo", "keep"):  # most moves: what an undo left is gone
            self.redo.pop(move.name, None)
            self.refs[move.name] = Head(move.to, move.pos)
            return True
        stack = self.redo.setdefault(move.name, [])
        if move.op == "undo" and current is not None:
            stack.insert(0, current)
        elif move.op == "redo" and stack and stack[0].id == move.to:
            move = Move(move.name, move.frm, move.to, move.pos if move.pos is not None
                        else stack[0].pos, move.op)
            stack.pop(0)
        elif move.op != "keep":
            stack.clear()
        if not stack:
            self.redo.pop(move.name, None)
        self.refs[move.name] = Head(move.to, move.pos)
        return True

    @staticmethod
    def _refuse(move: Move, current: Head | None, strict: bool) -> bool:
        if strict:
            raise RefMoved(move.name, current)
        return False

    # -- caches ------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"refs": {n: [h.id, h.pos] for n, h in self.refs.items()},
                "last": [self.last.id, self.last.pos],
                "redo": {n: [[h.id, h.pos] for h in s] for n, s in self.redo.items()}}

    @classmethod
    def from_json(cls, data: object) -> RefState:
        """Read back from a cache; ValueError on any doubt (the caller rebuilds the cache)."""
        if not isinstance(data, dict):
            raise ValueError("not a ref state")

        def head(value) -> Head:
            if (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
                    and (value[1] is None or _pos(value[1]) is not None)):
                return Head(value[0], value[1])
            raise ValueError("not a head")

        refs, redo = data.get("refs"), data.get("redo")
        if not isinstance(refs, dict) or not isinstance(redo, dict):
            raise ValueError("not a ref state")
        return cls({str(n): head(h) for n, h in refs.items()}, head(data.get("last")),
                   {str(n): [head(h) for h in s] for n, s in redo.items()
                    if isinstance(s, list)})

    def to_fields(self) -> dict[str, str]:
        """The state as Redis hash fields (``r:NAME``, ``rd:NAME``, ``lm``)."""
        def enc(h: Head) -> str:
            return f"{h.id} {'' if h.pos is None else h.pos}"

        out = {f"r:{n}": enc(h) for n, h in self.refs.items()}
        out.update({f"rd:{n}": ";".join(enc(h) for h in s) for n, s in self.redo.items() if s})
        out["lm"] = enc(self.last)
        return out


def decode_head(text: str) -> Head:
    mid, _, pos = text.partition(" ")
    return Head(mid, int(pos) if pos.isdigit() else None)


def pin_main(state: RefState, when: float | None = None) -> list[dict]:
    """The record that gives ``main`` a ref of its own where it is now, when it has none yet
    (it still follows the last message): written before another branch moves, so that
    talking on that branch does not carry ``main`` along."""
    if MAIN in state.refs:
        return []
    record: dict = {"t": "ref", "name": MAIN, "from": state.last.id, "to": state.last.id,
                    "op": "keep"}
    if state.last.pos is not None:
        record["at"] = state.last.pos
    if when is not None:
        record["time"] = when
    return [record]
