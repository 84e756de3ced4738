"""Validate and repair: find every problem in a stored session, and rewrite a damaged one keeping
every complete message. The damaged original is kept whole in the backup, so nothing a repair
sets aside is lost.

The store reports what it meets while reading (torn tail, bad records, missing fields, wrong
order, a missing header); this module adds the checks on the header's values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from aish.errors import AishError, StorageError
from aish.header import (  # noqa: F401 - MAX_TIME, is_count re-exported
    MAX_TIME,
    RECORD_KEYS,
    Header,
    is_count,
    is_name,
    is_time,
)
from aish.messages import Message
from aish.store.base import Loaded, Problem, UnusableLog

# Problems that lose nothing when the session is read: its messages are all there.
LOSSLESS = frozenset({"out of order", "bad meta", "missing parent", "bad ref", "bad parent"})


def clean_meta(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k not in RECORD_KEYS}


class DamagedSession(AishError):
    """A command that would drop damaged content refuses instead, naming the first problem."""

    def __init__(self, sid: str, problems: list[Problem], doing: str, hint: str):
        more = f"; {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
        super().__init__(f"cannot {doing} session {sid}: it is damaged: {problems[0]}{more}",
                         hint=hint)
        self.problems = problems


@dataclass
class Inspection:
    sid: str
    meta: dict
    messages: list[Message]
    problems: list[Problem]
    mark: object = None  # the store's read mark, for a rewrite that keeps later appends
    unusable: UnusableLog | None = None  # why the log could not be read at all
    refs: dict[str, str] = field(default_factory=dict)  # named branches -> message ids

    def usable(self) -> Inspection:
        """This inspection, for a command that goes on to write: an unusable log stops it."""
        if self.unusable is not None:
            raise self.unusable
        return self

    @property
    def damage(self) -> list[Problem]:
        """Problems that drop content when the session is read (all but order and header values)."""
        return [p for p in self.problems if p.kind not in LOSSLESS]

    @property
    def header(self) -> Header:
        return Header.decode(self.meta)[0]

    @property
    def owner(self) -> str | None:
        return self.header.owner


def meta_problems(sid: str, meta: dict, has_messages: bool = True) -> list[Problem]:
    """What is wrong with a session header's values (a missing header is the store's finding).

    A session without messages may lack an owner: the first specialist to continue it owns it.
    """
    if not meta.get("id"):
        return []
    _, found = Header.decode(meta, sid=sid, owner_required=has_messages)
    return [Problem(0, "bad meta", detail) for detail in found]


def inspect(sessions, sid: str) -> Inspection:
    """Read a session and list every problem, in file order (header problems first)."""
    unusable = None
    try:
        loaded = sessions.load(sid)
    except UnusableLog as exc:  # a linked or unreadable log: a problem to report, not a crash
        unusable = exc
        loaded = Loaded({}, [], [Problem(0, "unusable log", str(exc))])
    problems = list(loaded.problems) + meta_problems(sid, loaded.meta, bool(loaded.messages))
    problems += tree_problems(loaded)
    problems.sort(key=lambda p: p.line)
    return Inspection(sid, loaded.meta, loaded.messages, problems, loaded.mark, unusable,
                      loaded.ref_ids())


def load_intact(sessions, sid: str, doing: str, *, skip_corrupted: bool = False,
                hint: str | None = None) -> Inspection:
    """Read a session for a command that must not silently drop damaged content."""
    found = inspect(sessions, sid).usable()
    if found.damage and not skip_corrupted:
        raise DamagedSession(sid, found.damage, doing, hint or (
            f"see aish --validate-session {sid}; repair it with aish --repair-session {sid}"))
    return found


def tree_problems(loaded: Loaded) -> list[Problem]:
    """Links that lead nowhere: a parent that is not stored, a branch at a missing message, a
    message that follows itself (a loop)."""
    by_id = loaded.by_id()
    found = []
    for message in loaded.messages:
        if message.parent and message.parent not in by_id:
            found.append(Problem(0, "missing parent", f"message {message.id} follows "
                                 f"{message.parent[:20]}, which is not stored"))
    for name, target in loaded.ref_ids().items():
        if target and target not in by_id:
            found.append(Problem(0, "bad ref", f"branch {name[:40]} points at "
                                 f"{target[:20]}, which is not stored"))
    if looping(loaded.messages, by_id):
        found.append(Problem(0, "bad parent", "some messages are their own ancestors"))
    return found


def looping(messages: list[Message], by_id: dict[str, Message]) -> set[str]:
    """Ids of messages whose ancestry never reaches the root (each walked once)."""
    rooted: set[str] = set()
    bad: set[str] = set()
    for message in messages:
        trail: list[str] = []
        on_trail: set[str] = set()
        at: Message | None = message
        while at is not None and at.id not in rooted and at.id not in bad:
            if at.id in on_trail:
                bad.update(trail)
                break
            trail.append(at.id)
            on_trail.add(at.id)
            at = by_id.get(at.parent) if at.parent else None
        else:
            (bad if at is not None and at.id in bad else rooted).update(trail)
    return bad


def mend_tree(messages: list[Message], refs: dict[str, str]
              ) -> tuple[list[Message], dict[str, str]]:
    """``messages`` with every missing or looping parent replaced by the message stored before
    it (what parents meant before branches), and ``refs`` without those pointing nowhere (a
    branch moves to the newest message written on it, if any)."""
    from dataclasses import replace

    by_id = {m.id: m for m in messages}
    bad = looping(messages, by_id)
    mended: list[Message] = []
    for message in messages:
        if (message.parent and message.parent not in by_id) or message.id in bad:
            message = replace(message, parent=mended[-1].id if mended else "")
        mended.append(message)
    if bad:  # a loop may survive one pass when it runs through earlier messages
        mended = [replace(m, parent=mended[i - 1].id if i else "") if m.id in bad else m
                  for i, m in enumerate(mended)]
    fixed_refs = {}
    for name, target in refs.items():
        if not target or target in by_id:
            fixed_refs[name] = target
            continue
        written = [m.id for m in mended if m.ref == name]
        if written:
            fixed_refs[name] = written[-1]
    return mended, fixed_refs


# -- repair ------------------------------------------------------------------------------------

@dataclass
class Repair:
    sid: str
    problems: list[Problem]  # what was found before the repair
    kept: int  # messages kept
    set_aside: int  # stored lines that held no usable record (kept in the backup only)
    reordered: bool
    backup: str | None  # None when there was nothing to repair
    owner: str | None = None  # None: the first specialist to continue the session owns it
    modes_fixed: list[str] = field(default_factory=list)  # paths made private (0600/0700)


def _sort_key(message: Message) -> float:
    return message.time if math.isfinite(message.time) else 0.0


def repaired_meta(sid: str, meta: dict, messages: list[Message], default_window: int,
                  now: float) -> dict:
    """A header that passes `meta_problems`, keeping every valid value of ``meta``."""
    header, _ = Header.decode(clean_meta(meta))
    owner = header.owner
    if owner is None and messages and is_name(messages[0].ai):
        owner = messages[0].ai
    names = ([owner] if owner else []) + list(header.participants) + [m.ai for m in messages]
    participants = tuple(dict.fromkeys(n for n in names if is_name(n)))
    created = header.created
    if created is None:
        times = [m.time for m in messages if is_time(m.time)]
        created = min(times) if times else now
    origin = header.origin
    if origin is None and "origin" in meta:  # kept readable rather than dropped
        origin = {"note": str(meta["origin"])[:200]}
    # An owner stays unset when nothing says whose it was: the first to continue it takes it.
    return replace(
        header, id=sid, owner=owner, participants=participants, created=created,
        context_window=default_window if header.context_window is None
        else header.context_window,
        shared=len(participants) > 1 if header.shared is None else header.shared,
        origin=origin).to_meta()


def repair(sessions, sid: str) -> Repair:
    """Rewrite a damaged session from its complete messages, in time order, with a sound header.

    The backup taken first holds the original byte for byte, unusable lines included.
    """
    fixed = sessions.fix_modes(sid)
    found = inspect(sessions, sid).usable()
    if not found.problems:
        return Repair(sid, [], len(found.messages), 0, False, None, found.owner, fixed)
    messages = sorted(found.messages, key=_sort_key)
    reordered = messages != found.messages
    meta = repaired_meta(sid, found.meta, messages, sessions.config.context_window,
                         sessions.now())
    set_aside = sum(1 for p in found.damage if p.line)
    messages, refs = mend_tree(messages, found.refs)
    backup = sessions.rewrite(sid, meta, messages, "repair", ai=meta.get("owner"),
                              since=found.mark, refs=refs)
    after = inspect(sessions, sid)
    if after.problems:  # only if another process damaged it again meanwhile
        raise StorageError(f"session {sid} still has problems after repair ({after.problems[0]})",
                           hint=f"the original is kept in {backup}; run the repair again")
    return Repair(sid, found.problems, len(messages), set_aside, reordered, backup,
                  meta.get("owner"), fixed)
