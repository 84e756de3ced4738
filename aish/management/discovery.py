"""Branching a session at a message into a new session (search lives in aish.search_index)."""

from __future__ import annotations

from aish.errors import UsageError
from aish.ids import check_id
from aish.management.integrity import load_intact
from aish.store.base import path_in


def fork(sessions, sid: str, at: int, output: str | None, branch: str = "main"):
    """A new session holding the first ``at`` messages of ``branch`` of ``sid`` (its path
    from the root); the original is kept."""
    found = load_intact(sessions, check_id(sid), "fork")
    summary = sessions.summary(sid)
    head = summary.head(branch)
    by_id = {m.id: m for m in found.messages}
    path = path_in(by_id, head.id) if head else []
    if not 1 <= at <= len(path):
        raise UsageError(f"--at must be between 1 and {len(path)} for session {sid}")
    kept = path[:at]
    participants = list(dict.fromkeys([summary.owner, *(m.ai for m in kept)]))
    return sessions.derive(
        summary.owner, output, action="fork", details={"source": sid, "at": at},
        named=output is not None,
        context_window=summary.context_window(sessions.config.context_window),
        origin={"fork": f"{sid} at message {at}"}, messages=kept,
        extra_meta={"participants": participants,
                    "shared": bool(summary.header.shared) or len(participants) > 1
                    or output is not None})
