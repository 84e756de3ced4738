"""A store as one person sees it: every write names its author, and every operation on a
session checks that person's role first.

`Sessions` wraps its store in this, so every path into storage — talking, branching, merging,
pruning, renaming — passes the same check without each caller remembering it. The check is the
client's; on Redis the server's ACL rules enforce the same roles for hand-made commands too.
Everything this does not decide passes to the store unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from aish.messages import Message
from aish.people import EDITOR, OWNER, VIEWER, identity, require
from aish.store.base import Loaded, Summary
from aish.store.refs import Head

AUTHORED = ("msg", "ref")  # the records that say who wrote them


def _none(_sid: str) -> None:
    """A cache a store does not keep."""
    return None


class PeopleStore:
    def __init__(self, store, now: Callable[[], float]):
        self._store = store
        self._now = now
        self._user: str | None = None

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def __repr__(self) -> str:
        return repr(self._store)

    @property
    def inner(self):
        """The store itself, for code that must see it bare (sync copies records as stored)."""
        return self._store

    @property
    def user(self) -> str:
        if self._user is None:
            self._user = identity(self._store)
        return self._user

    def whoami(self) -> str:
        return self.user

    def _check(self, meta: dict, sid: str, needed: str, what: str) -> None:
        require(meta, sid, self.user, needed, self._now(), what)

    def _check_stored(self, sid: str, needed: str, what: str) -> Summary:
        summary = self._store.summary(sid)
        self._check(summary.meta, sid, needed, what)
        return summary

    def _signed(self, records: list[dict]) -> list[dict]:
        user = self.user
        return [{**r, "by": user} if r.get("t") in AUTHORED and not r.get("by") else r
                for r in records]

    # -- reads: any member ---------------------------------------------------------------
    def summary(self, sid: str) -> Summary:
        summary = self._store.summary(sid)
        self._check(summary.meta, sid, VIEWER, "read")
        return summary

    def load(self, sid: str) -> Loaded:
        loaded = self._store.load(sid)
        self._check(loaded.meta, sid, VIEWER, "read")
        return loaded

    def skeleton(self, sid: str) -> Loaded | None:
        found = getattr(self._store, "skeleton", _none)(sid)
        if found is not None:
            self._check(found.meta, sid, VIEWER, "read")
        return found

    def tallies(self, sid: str):
        found = getattr(self._store, "tallies", _none)(sid)
        if found is not None:
            self._check(found.meta, sid, VIEWER, "read")
        return found

    def raw_lines(self, sid: str) -> list[str]:
        self._check_stored(sid, VIEWER, "read")
        return self._store.raw_lines(sid)

    def path(self, sid: str, head: Head | None, pairs: int) -> list[Message]:
        self._check_stored(sid, VIEWER, "read")
        return self._store.path(sid, head, pairs)

    def tail(self, sid: str, pairs: int) -> list[Message]:
        self._check_stored(sid, VIEWER, "read")
        return self._store.tail(sid, pairs)

    # -- writes ----------------------------------------------------------------------------
    def create(self, meta: dict, messages: Sequence[Message] = (),
               refs: dict[str, str] | None = None, sign: bool = True) -> Summary:
        """``sign``: name this person as the author of messages that name none (not for a
        restore, whose unsigned messages were written before authors were recorded)."""
        user = self.user
        signed = [m if m.by or not sign else replace(m, by=user) for m in messages]
        return self._store.create(meta, signed, refs)

    def append(self, sid: str, records: list[dict]) -> Summary:
        manages = any(r.get("t") == "meta" and ("members" in r or "member" in r)
                      for r in records)
        if manages:
            self._check_stored(sid, OWNER, "manage the members of")
        else:
            self._check_stored(sid, EDITOR, "write to")
        return self._store.append(sid, self._signed(records))

    def replace(self, sid: str, meta: dict, messages: list[Message], since: object = None,
                refs: dict[str, str] | None = None) -> Summary:
        self._check_stored(sid, OWNER, "rewrite")
        return self._store.replace(sid, meta, messages, since=since, refs=refs)

    def remove(self, sid: str, reason: str) -> str:
        self._check_stored(sid, OWNER, "remove")
        return self._store.remove(sid, reason)

    def rename(self, old: str, new: str) -> Summary:
        self._check_stored(old, OWNER, "rename")
        return self._store.rename(old, new)

    def add_tombstone(self, record: dict) -> None:
        # Deleting content is the owner's; a tombstone that only clears earlier deletions
        # (a restore) is written by whoever restores the session.
        sid = record.get("id")
        if (record.get("removed") or record.get("messages")) and isinstance(sid, str) \
                and self._store.exists(sid):
            self._check_stored(sid, OWNER, "delete from")
        self._store.add_tombstone(record)
