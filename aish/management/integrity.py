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
LOSSLESS = frozenset({"out of order", "bad meta"})


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
    problems.sort(key=lambda p: p.line)
    return Inspection(sid, loaded.meta, loaded.messages, problems, loaded.mark, unusable)


def load_intact(sessions, sid: str, doing: str, *, skip_corrupted: bool = False,
                hint: str | None = None) -> Inspection:
    """Read a session for a command that must not silently drop damaged content."""
    found = inspect(sessions, sid).usable()
    if found.damage and not skip_corrupted:
        raise DamagedSession(sid, found.damage, doing, hint or (
            f"see aish --validate-session {sid}; repair it with aish --repair-session {sid}"))
    return found


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
    backup = sessions.rewrite(sid, meta, messages, "repair", ai=meta.get("owner"),
                              since=found.mark)
    after = inspect(sessions, sid)
    if after.problems:  # only if another process damaged it again meanwhile
        raise StorageError(f"session {sid} still has problems after repair ({after.problems[0]})",
                           hint=f"the original is kept in {backup}; run the repair again")
    return Repair(sid, found.problems, len(messages), set_aside, reordered, backup,
                  meta.get("owner"), fixed)
