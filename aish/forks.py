"""Forks on a branch's path: where the conversation split, and flipping between the sides.

Part of the session core, beside `aish.branches`. A fork is a message (or the root) on the
path from the root to a branch's head that has more than one child; its children are the
*siblings*, oldest first. `regenerate` makes one (two replies to one message), so does `edit`
(two versions of one message), and so does a message sent after an undo.

Flipping moves the branch's head — a ref move with op ``switch``, by compare-and-set like every
other — to the newest message under another sibling, so the context sent next is that side's
path. Nothing is deleted: the side left stays in the log and can be flipped back to.
"""

from __future__ import annotations

from dataclasses import dataclass

from aish.messages import Message
from aish.store.base import Loaded, path_in
from aish.store.refs import Head


@dataclass(frozen=True)
class Fork:
    parent: str  # the message the siblings answer ("" = the root)
    number: int  # the siblings' message number on the path (from 1)
    siblings: tuple[Message, ...]  # children of ``parent``, oldest first
    index: int  # the sibling the path goes through

    @property
    def label(self) -> str:
        return f"{self.index + 1}/{len(self.siblings)}"

    def can_flip(self, step: int) -> bool:
        return 0 <= self.index + step < len(self.siblings)


@dataclass(frozen=True)
class Tree:
    """One read of a session's log, arranged for walking down as well as up."""

    by_id: dict[str, Message]
    children: dict[str, list[Message]]  # parent id ("" = root) -> children, oldest first

    @classmethod
    def of(cls, loaded: Loaded) -> Tree:
        from aish.compaction import is_summary

        children: dict[str, list[Message]] = {}
        for message in loaded.messages:  # log order breaks ties in time
            if is_summary(message):  # beside the path, never a side to flip to or follow
                continue
            children.setdefault(message.parent or "", []).append(message)
        for kids in children.values():
            kids.sort(key=lambda m: m.time)  # stable: same time keeps log order
        return cls(loaded.by_id(), children)

    def path(self, head: str) -> list[Message]:
        return path_in(self.by_id, head)

    def forks(self, head: str) -> list[Fork]:
        """The forks on the path to ``head``, oldest first."""
        out = []
        path = self.path(head)
        # A damaged log's path may start below a parent that is not stored: it starts there.
        parent = path[0].parent or "" if path else ""
        for number, message in enumerate(path, 1):
            kids = self.children.get(parent, [])
            index = next((i for i, m in enumerate(kids) if m.id == message.id), None)
            if len(kids) > 1 and index is not None:
                out.append(Fork(parent, number, tuple(kids), index))
            parent = message.id
        return out

    def newest_under(self, message: Message) -> Message:
        """The newest message below ``message`` (itself when it has none), following the
        newest child at each step: where that side of the conversation last was."""
        seen = {message.id}
        while self.children.get(message.id):
            message = self.children[message.id][-1]
            if message.id in seen:  # a damaged log's cycle
                break
            seen.add(message.id)
        return message


def fork_in_view(tree: Tree, head: str, flipping: str | None = None) -> Fork | None:
    """The fork the shell shows: the one at ``flipping`` (a fork's parent being flipped
    through) while it is on the path, else the newest fork on the path."""
    forks = tree.forks(head)
    if flipping is not None:
        for fork in forks:
            if fork.parent == flipping:
                return fork
    return forks[-1] if forks else None


def flip(sessions, sid: str, branch: str, expected: Head, tree: Tree, fork: Fork, step: int
         ) -> tuple[Message, Message]:
    """Move ``branch`` to the side ``step`` siblings away at ``fork``; returns (the sibling
    now in view, the branch's new head). A branch moved meanwhile raises StorageError."""
    from aish.branches import move
    from aish.errors import UsageError

    if not fork.can_flip(step):
        raise UsageError(f"no {'newer' if step > 0 else 'older'} side at message "
                         f"{fork.number} ({fork.label})")
    sibling = fork.siblings[fork.index + step]
    target = tree.newest_under(sibling)
    move(sessions, sid, branch, target, "switch", expected)
    return sibling, target
