"""Keeping the session store tidy: cleanup of ended and expired sessions, removal of one
specialist's sessions, and pruning a session to its recent pairs — each with a backup first."""

from __future__ import annotations

from dataclasses import dataclass

from aish.context import pairs_of
from aish.errors import SessionNotFound, UsageError
from aish.humanize import iso
from aish.management.integrity import clean_meta, is_name, load_intact
from aish.people import OWNER
from aish.sessions import ACTIVE
from aish.specialists import ai_key


@dataclass
class Removal:
    id: str
    ai: str  # the owner, as `apollo-ai`
    state: str
    messages: int
    updated: float
    backup: str | None = None  # None in a dry run

    def to_json(self) -> dict:
        return {"id": self.id, "ai": self.ai, "state": self.state, "messages": self.messages,
                "updated": iso(self.updated), "backup": self.backup}


def remove_session(sessions, sid: str, reason: str, ai: str | None = None) -> str:
    """Delete a session after keeping a backup of it; returns the backup's location."""
    return sessions.remove(sid, reason, ai)


def _removal(summary, state: str) -> Removal:
    return Removal(summary.id, f"{summary.owner}-ai", state, summary.messages,
                   summary.updated)


def cleanup(sessions, older_than: float | None = None, dry_run: bool = False) -> list[Removal]:
    """Remove ended and expired sessions (idle for more than ``older_than`` seconds, if given;
    one without any message goes whatever its age, as it holds nothing to keep)."""
    now = sessions.now()
    removed = []
    for summary, state in sessions.listing(include_all=True):
        if state == ACTIVE or not sessions.may(summary, OWNER):  # others' are theirs to remove
            continue
        if older_than is not None and now - summary.updated <= older_than and summary.messages:
            continue
        removal = _removal(summary, state)
        if not dry_run:
            try:  # continued since we listed it? then it is active again: leave it
                if sessions.state(sessions.summary(summary.id)) == ACTIVE:
                    continue
            except SessionNotFound:
                continue
            removal.backup = remove_session(sessions, summary.id, "cleanup",
                                            summary.header.owner)
        removed.append(removal)
    return removed


def remove_for_ai(sessions, ai: str, dry_run: bool = False) -> list[Removal]:
    """Remove every session a specialist owns (`apollo` and `apollo-ai` alike), in any state."""
    key = ai_key(ai)
    if not is_name(key):
        raise UsageError(f"invalid specialist name {ai!r}"[:100])
    removed = []
    for summary, state in sessions.listing(include_all=True):
        if summary.header.owner != key or not sessions.may(summary, OWNER):
            continue
        removal = _removal(summary, state)
        if not dry_run:
            try:
                removal.backup = remove_session(sessions, summary.id, "remove", key)
            except SessionNotFound:
                continue
        removed.append(removal)
    return removed


@dataclass
class Pruned:
    id: str
    kept_pairs: int
    total_pairs: int
    kept_messages: int
    total_messages: int
    backup: str | None  # None when there was nothing to prune

    def to_json(self) -> dict:
        return dict(self.__dict__)


def prune(sessions, sid: str, keep: int) -> Pruned:
    """Keep the last ``keep`` pairs of a session (each user message with its replies)."""
    if keep < 0:
        raise UsageError("--keep-recent needs a whole number >= 0")
    from aish.compaction import carried_index, conversation, covered, is_summary, reindex, unpinned

    found = load_intact(sessions, sid, "prune")
    said = conversation(found.messages)
    groups = pairs_of(said)
    kept_ids = {m.id for group in (groups[-keep:] if keep else []) for m in group}
    total = len(said)
    if len(groups) <= keep:
        return Pruned(sid, len(groups), len(groups), total, total, None)
    # Text pruned must not live on in summary form: a summary of any message pruned goes too.
    by_id = {m.id: m for m in found.messages}
    kept_ids |= {m.id for m in found.messages
                 if is_summary(m) and covered(m, by_id) <= kept_ids}
    dropped = [m.id for m in found.messages if m.id not in kept_ids]
    from aish.branches import keep_only

    kept, refs = keep_only(found.messages, found.refs,
                           [m for m in found.messages if m.id in kept_ids])
    kept = unpinned(kept)
    backup = sessions.rewrite(sid, carried_index(clean_meta(found.meta), kept), kept, "prune",
                              ai=found.owner, since=found.mark, dropped=dropped, refs=refs)
    reindex(sessions, sid)
    return Pruned(sid, min(keep, len(groups)), len(groups), len(conversation(kept)), total,
                  backup)

