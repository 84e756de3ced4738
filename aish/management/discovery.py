"""Search across sessions, and branching a session at a message."""

from __future__ import annotations

from dataclasses import dataclass

from aish.errors import UsageError
from aish.ids import check_id
from aish.management.integrity import load_intact
from aish.store.base import path_in


@dataclass
class Hit:
    session: str
    index: int  # 1-based position of the message in its session
    role: str
    ai: str
    time: float
    snippet: str

    def to_json(self) -> dict:
        return {"session": self.session, "message": self.index, "role": self.role,
                "ai": f"{self.ai}-ai", "time": self.time, "snippet": self.snippet}


def snippet(text: str, at: int, length: int, width: int = 80) -> str:
    """The words around a match, on one line."""
    start = max(0, at - (width - length) // 2)
    piece = " ".join(text[start:start + width].split())
    return ("…" if start > 0 else "") + piece + ("…" if start + width < len(text) else "")


def search(sessions, text: str, ai: str | None = None, limit: int = 50) -> list[Hit]:
    """Messages containing ``text`` (case-insensitive), newest sessions first."""
    if not text.strip():
        raise UsageError("--search-sessions needs some text to look for")
    needle = text.casefold()
    hits: list[Hit] = []
    for summary, _ in sessions.listing(include_all=True):
        if ai and ai not in summary.participants:
            continue
        for index, message in enumerate(sessions.load(summary.id).messages, start=1):
            at = message.content.casefold().find(needle)
            if at < 0:
                continue
            hits.append(Hit(summary.id, index, message.role, message.ai, message.time,
                            snippet(message.content, at, len(text))))
            if len(hits) >= limit:
                return hits
    return hits


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
