"""`--merge-sessions A,B --output ID`: one shared session holding the messages of several,
interleaved by time, each still attributed to the specialist that spoke.

The originals are kept, unless ``replace`` asks the merged session to take their place: then
each original is backed up first, and the output may be one of them (rewritten in place).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace

from aish.compaction import carried_index, conversation
from aish.errors import LimitError, Refused, UsageError
from aish.header import Header, is_name
from aish.ids import check_id
from aish.management.hygiene import remove_session
from aish.management.integrity import load_intact
from aish.messages import Message, new_message_id, relinked
from aish.store.base import dump_line


@dataclass
class Merged:
    id: str
    sources: list[str]
    messages: int
    participants: list[str]
    rewritten: bool = False  # the output was one of the sources, rewritten in place
    backups: dict[str, str] = field(default_factory=dict)  # source id -> backup
    removed: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"id": self.id, "sources": self.sources, "messages": self.messages,
                "participants": [f"{p}-ai" for p in self.participants],
                "rewritten": self.rewritten, "removed": self.removed, "backups": self.backups}


def parse_ids(text: str) -> list[str]:
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if len(ids) < 2:
        raise UsageError("--merge-sessions needs two or more session ids separated by commas",
                         hint="aish --merge-sessions sess_123,sess_456 --output sess_combined")
    for sid in ids:
        check_id(sid)
    if len(set(ids)) != len(ids):
        raise UsageError("--merge-sessions names a session twice")
    return ids


def interleave(histories: list[list[Message]]) -> list[Message]:
    """Merge histories by time, keeping each one's own order; exact duplicates (a message both
    sessions got from one template, say) are kept once, and clashing message ids are renewed."""
    merged: list[Message] = []
    seen: set[Message] = set()
    ids: set[str] = set()
    for message in heapq.merge(*histories, key=lambda m: m.time):
        if message in seen:
            continue
        seen.add(message)
        if message.id in ids:
            message = replace(message, id=new_message_id())
        ids.add(message.id)
        merged.append(message)
    return merged


def _window(headers: list[Header], default: int) -> int:
    windows = [h.context_window for h in headers if h.context_window is not None]
    if 0 in windows:
        return 0  # one of them was unlimited
    return max(windows, default=default)


def merge(sessions, ids: list[str], output: str, *, replace_sources: bool = False) -> Merged:
    check_id(output, "output session id")
    if output not in ids and sessions.exists(output):
        raise Refused(f"session {output} already exists",
                      hint="choose a new --output id (or name one of the merged sessions and "
                      "add --replace)")
    if output in ids and not replace_sources:
        raise Refused(f"--output {output} is one of the sessions being merged",
                      hint="choose a new --output id, or add --replace to rewrite it "
                      "(a backup is kept first)")
    found = [load_intact(sessions, sid, "merge") for sid in ids]
    # Several sessions' messages in time order: one straight branch in the merged session.
    # A compaction's summary stands for its own session's path, which the merge interleaves
    # with others: it is left out, as a fork or a template leaves it.
    messages = relinked(interleave([conversation(f.messages) for f in found]))
    headers = [f.header for f in found]
    owner = headers[0].owner or (messages[0].ai if messages else None)
    names: list[str | None] = [owner]
    for header in headers:
        names += [header.owner, *header.participants]
    participants = list(dict.fromkeys(n for n in names + [m.ai for m in messages] if is_name(n)))
    if owner is None:
        raise UsageError("the merged sessions hold no messages and name no owner")
    window = _window(headers, sessions.config.context_window)
    origin = {"merged": ", ".join(ids)}  # shown by `--session-info` as "Origin: merged a, b"
    size = sum(len(dump_line(m.to_record())) for m in messages)
    if size > sessions.config.max_session_bytes:
        raise LimitError(f"the merged session would hold {size:,} bytes, over the session size "
                         f"limit ({sessions.config.max_session_bytes:,} bytes)",
                         hint="prune the sessions first with aish --prune-session ID "
                         "--keep-recent N")
    result = Merged(output, list(ids), len(messages), participants)
    if output in ids:
        source = found[ids.index(output)]
        meta = carried_index(replace(source.header, owner=owner,
                                     participants=tuple(participants), shared=True,
                                     context_window=window, origin=origin).to_meta(), messages)
        result.backups[output] = sessions.rewrite(output, meta, messages, "merge", ai=owner,
                                                  since=source.mark, sources=list(ids))
        result.rewritten = True
    else:
        sessions.derive(owner, output, action="merge", details={"sources": list(ids)},
                        context_window=window, origin=origin, messages=messages,
                        extra_meta={"participants": participants, "shared": True})
    if replace_sources:
        for sid in ids:
            if sid != output:
                result.backups[sid] = remove_session(sessions, sid, "merge", owner)
                result.removed.append(sid)
    return result
