"""What `--session-info` and `--list-branches` count in a session, kept so that they can be
brought up to date message by message: the cost of a report then follows what was appended
since the last one, not the session's length.

A :class:`Tally` holds the session-wide counts (tokens per model and specialist, messages per
person, compaction summaries, the last user message) and, for some messages, a
:class:`PathTally`: the counts of the path from the root to that message. A message's path
tally is its parent's plus itself, so a branch's figures are its head's path tally, whatever
the branch's length. Only the messages a report can ask for next keep theirs: the newest
:data:`WINDOW` in log order (where the next message's parent almost always is) and every
branch head and redo target. A message whose parent has none is a miss: the caller counts
from the whole log instead, which is always right.

Pure: no store, no provider. Prices are applied when reporting (`priced`), so the counts hold
whatever the configuration says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from aish.context import estimate_tokens
from aish.messages import ASSISTANT, SUMMARY_NOTE, USER, Message

WINDOW = 64  # newest messages that keep their path tally and token estimate

# Tokens of replies, grouped by (model or "", specialist): enough to price them later by
# model or by the specialist's provider. Values: [input, output, estimated, replies].
Groups = dict[tuple[str, str], list[int]]


class Miss(Exception):
    """A message's parent is not among the tallied ones: count from the whole log."""


class PathTally:
    """Counts of the path from the root to one message: its length, the newest message's
    time, the specialists that answered on it (in order of first answer) and its replies'
    tokens."""

    __slots__ = ("n", "time", "speakers", "groups")

    def __init__(self, n: int = 0, time: float = 0.0, speakers: list[str] | None = None,
                 groups: Groups | None = None) -> None:
        self.n = n
        self.time = time
        self.speakers = [] if speakers is None else speakers
        self.groups = {} if groups is None else groups

    def then(self, m: Message, tokens: tuple[int, int, int] | None) -> PathTally:
        """This path with ``m`` after it (``tokens``: its reply counts, None for no reply)."""
        speakers = self.speakers
        if m.role != USER and m.ai not in speakers:
            speakers = [*speakers, m.ai]
        groups = self.groups
        if tokens is not None:
            groups = {k: list(v) for k, v in groups.items()}
            add(groups, (m.model or "", m.ai), tokens)
        return PathTally(self.n + 1, m.time, speakers, groups)

    def to_json(self) -> list:
        return [self.n, self.time, self.speakers, groups_json(self.groups)]

    @classmethod
    def from_json(cls, data: object) -> PathTally:
        if not (isinstance(data, list) and len(data) == 4 and type(data[0]) is int
                and type(data[1]) in (int, float) and isinstance(data[2], list)
                and all(type(s) is str for s in data[2])):
            raise ValueError("not a path tally")
        return cls(data[0], float(data[1]), data[2], groups_of(data[3]))


ROOT = PathTally()  # the path of the root: nothing on it


class Tally:
    """Session-wide counts and the path tallies of the messages a report may need."""

    __slots__ = ("groups", "by", "notes", "last_user", "last", "est", "paths", "order")

    def __init__(self) -> None:
        self.groups: Groups = {}
        self.by: dict[str, int] = {}  # conversation messages per ``by`` ("": none recorded)
        self.notes: dict[str, int] = {}  # compaction summaries per specialist
        self.last_user: list | None = None  # [by or "", ai, time] of the newest user message
        self.last = ""  # the newest message's id: the parent of one stored without a parent
        self.est: dict[str, int] = {}  # token estimates of the newest messages' text
        self.paths: dict[str, PathTally] = {}
        self.order: list[str] = []  # the newest messages' ids, oldest first

    def add(self, m: Message, known: Callable[[str], Message | None] | None = None) -> None:
        """Count ``m``, the next message of the log. ``known``: every message of the log by
        id, when the whole log is at hand (a parent it does not name is missing from the log,
        as a full read sees it); without it a parent that is not among the newest is a
        :class:`Miss`."""
        if m.note == SUMMARY_NOTE:
            self.notes[m.ai] = self.notes.get(m.ai, 0) + 1
        else:
            self.by[m.by or ""] = self.by.get(m.by or "", 0) + 1
        if m.role == USER:
            self.last_user = [m.by or "", m.ai, m.time]
        parent = m.parent or ""
        tokens = None
        if m.role == ASSISTANT and not m.note:
            tokens = self._reply_tokens(m, parent, known)
            add(self.groups, (m.model or "", m.ai), tokens)
        before = ROOT if not parent else self.paths.get(parent)
        if before is None and known is not None and known(parent) is None:
            before = ROOT  # a missing parent ends the path, as a full read walks it
        if before is not None:
            self.paths[m.id] = before.then(m, tokens)
        else:
            self.paths.pop(m.id, None)  # its path is unknown here: a head there is a miss
        self.est[m.id] = estimate_tokens(m.content)
        self.order.append(m.id)
        self.last = m.id

    def _reply_tokens(self, m: Message, parent: str,
                      known: Callable[[str], Message | None] | None) -> tuple[int, int, int]:
        """Input, output and estimated tokens of a reply, as `aish.costs.Totals.add` counts
        them (the input of an unreported reply is estimated from the message it answers)."""
        if m.usage is not None:
            return m.usage.prompt_tokens, m.usage.completion_tokens, 0
        if not parent:
            prompt = 0
        elif parent in self.est:
            prompt = self.est[parent]
        elif known is not None:
            found = known(parent)
            prompt = estimate_tokens(found.content) if found is not None else 0
        else:
            raise Miss(parent)
        out = estimate_tokens(m.content)
        return prompt, out, prompt + out

    def path(self, head: str) -> PathTally | None:
        """The path tally of the branch whose head is ``head`` ("": the root); None: unknown."""
        return ROOT if not head else self.paths.get(head)

    def trim(self, keep: Iterable[str]) -> None:
        """Forget all but the newest :data:`WINDOW` messages, and the path tallies of ``keep``
        (the branch heads and redo targets a report may ask for)."""
        self.order = self.order[-WINDOW:]
        recent = set(self.order)
        self.est = {k: v for k, v in self.est.items() if k in recent}
        wanted = recent | set(keep)
        self.paths = {k: v for k, v in self.paths.items() if k in wanted}

    def to_json(self) -> dict:
        return {"groups": groups_json(self.groups), "by": self.by, "notes": self.notes,
                "last_user": self.last_user, "last": self.last, "est": self.est,
                "order": self.order, "paths": {k: v.to_json() for k, v in self.paths.items()}}

    @classmethod
    def from_json(cls, data: object) -> Tally:
        """The tally :meth:`to_json` wrote; ValueError for anything else."""
        if not isinstance(data, dict):
            raise ValueError("not a tally")
        out = cls()
        out.groups = groups_of(data.get("groups"))
        out.by = _counts(data.get("by"))
        out.notes = _counts(data.get("notes"))
        last_user = data.get("last_user")
        if last_user is not None and not (
                isinstance(last_user, list) and len(last_user) == 3
                and type(last_user[0]) is str and type(last_user[1]) is str
                and type(last_user[2]) in (int, float)):
            raise ValueError("not a tally")
        out.last_user = last_user
        last, order, paths = data.get("last"), data.get("order"), data.get("paths")
        if not (type(last) is str and isinstance(order, list)
                and all(type(i) is str for i in order) and isinstance(paths, dict)):
            raise ValueError("not a tally")
        out.last, out.order = last, order
        out.est = _counts(data.get("est"))
        out.paths = {k: PathTally.from_json(v) for k, v in paths.items()}
        return out


class Counted:
    """A session's header and branches with its tally; ``messages``: the log read whole, when
    it was (a branch whose head has no path tally is then walked in it)."""

    __slots__ = ("meta", "tree", "tally", "messages")

    def __init__(self, meta: dict, tree, tally: Tally, messages: list[Message] | None = None
                 ) -> None:
        self.meta = meta
        self.tree = tree
        self.tally = tally
        self.messages = messages

    def path(self, head: str) -> PathTally:
        """The path tally of the branch whose head is ``head`` (a head or redo target of
        ``tree``: a tally from the cache knows every one, else the log was read whole)."""
        found = self.tally.path(head)
        if found is None:  # a log whose links point forward: walked as a full read walks it
            from aish.store.base import path_in

            found = along(path_in({m.id: m for m in self.messages or ()}, head))
        return found


def along(path: list[Message]) -> PathTally:
    """The path tally of ``path`` (a path from the root, as `aish.store.base.path_in` walks
    it: each message's parent is the one before it, the first's is missing or the root)."""
    tally = Tally()
    for m in path:
        tally.add(m, lambda _parent: None)
    return tally.paths[path[-1].id] if path else ROOT


def heads(tree) -> list[str]:
    """The messages a report on branches asks for: every head and redo target."""
    out = [tree.last.id, *(h.id for h in tree.refs.values())]
    out += [h.id for stack in tree.redo.values() for h in stack]
    return [i for i in out if i]


def of_messages(messages: list[Message]) -> Tally:
    """The tally of a log read whole (every path known)."""
    by_id = {m.id: m for m in messages}
    out = Tally()
    for m in messages:
        out.add(m, by_id.get)
    return out


def add(groups: Groups, key: tuple[str, str], tokens: tuple[int, int, int]) -> None:
    row = groups.setdefault(key, [0, 0, 0, 0])
    row[0] += tokens[0]
    row[1] += tokens[1]
    row[2] += tokens[2]
    row[3] += 1


def groups_json(groups: Groups) -> list[list]:
    return [[model, ai, *row] for (model, ai), row in groups.items()]


def groups_of(data: object) -> Groups:
    if not isinstance(data, list):
        raise ValueError("not token groups")
    out: Groups = {}
    for item in data:
        if not (isinstance(item, list) and len(item) == 6 and type(item[0]) is str
                and type(item[1]) is str and all(type(v) is int for v in item[2:])):
            raise ValueError("not token groups")
        out[(item[0], item[1])] = list(item[2:])
    return out


def _counts(data: object) -> dict[str, int]:
    if not (isinstance(data, dict) and all(type(v) is int for v in data.values())):
        raise ValueError("not counts")
    return data
