"""Saving and exporting sessions as JSON documents.

Document format (``--save-session``; ``--export-sessions`` wraps several in ``sessions``)::

    {"format": "aish-session", "version": 1, "session": {META}, "messages": [RECORD, ...],
     "refs": {BRANCH: MESSAGE_ID, ...}}

A damaged session is refused unless the caller asks to skip what is damaged; then the document
lists what was skipped under ``skipped``. `aish.management.restore` takes these documents back.
"""

from __future__ import annotations

from collections.abc import Iterator

from aish.errors import AishError, PermissionDenied, SessionNotFound
from aish.management.integrity import Inspection, clean_meta, inspect, load_intact

FORMAT = "aish-session"
ALL_FORMAT = "aish-sessions"
VERSION = 1


def session_doc(found: Inspection) -> dict:
    from aish.compaction import carried_index, unpinned

    # Positions belong to this log: compactions travel by id, and restore finds them anew.
    messages = unpinned(found.messages)
    meta = carried_index(clean_meta(found.meta), messages)
    meta.setdefault("id", found.sid)  # a header lost to damage, exported with --skip-corrupted
    doc = {"format": FORMAT, "version": VERSION, "session": meta,
           "messages": [m.to_record() for m in messages]}
    if found.refs:
        doc["refs"] = found.refs  # the named branches; without them it is one straight branch
    if found.damage:
        doc["skipped"] = [str(p) for p in found.damage]
    return doc


def save_session(sessions, sid: str, *, skip_corrupted: bool = False,
                 action: str = "save") -> dict:
    """One session as a document; a damaged one is refused unless ``skip_corrupted``."""
    found = load_intact(sessions, sid, action, skip_corrupted=skip_corrupted, hint=(
        f"add --skip-corrupted to {action} every valid message, or repair it first with "
        f"aish --repair-session {sid}"))
    sessions.record_read(action, sid, found.owner, skipped=len(found.damage))
    return session_doc(found)


def export_sessions(sessions, *, skip_corrupted: bool = False) -> Iterator[dict]:
    """Every stored session as a document, oldest id first; checks them all before yielding."""
    ids = sessions.ids()
    if not skip_corrupted:
        damaged = []
        for sid in ids:
            try:
                found = inspect(sessions, sid)
                if found.damage and found.unusable is None:
                    damaged.append(sid)
            except (SessionNotFound, PermissionDenied):  # others' sessions are not exported
                continue
        if damaged:
            shown = ", ".join(damaged[:5]) + (" ..." if len(damaged) > 5 else "")
            raise AishError(f"cannot export: {len(damaged)} damaged session(s): {shown}",
                            hint="add --skip-corrupted to export every valid message, or repair "
                            "them with aish --repair-session ID")
    for sid in ids:
        try:
            found = inspect(sessions, sid)
        except (SessionNotFound, PermissionDenied):  # removed meanwhile, or not ours to read
            continue
        if found.unusable is not None:  # unreadable: skipped (the store warns), never exported
            sessions.skip(sid, str(found.unusable))
            continue
        sessions.record_read("export", sid, found.owner, skipped=len(found.damage))
        yield session_doc(found)


def export_header(now: float) -> dict:
    return {"format": ALL_FORMAT, "version": VERSION, "exported": now}


