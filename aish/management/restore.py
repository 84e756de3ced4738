"""`--restore-session`: put checked sessions (see `aish.management.intake`) into the store.

An existing session is never replaced silently: a session whose id is taken is restored under a
new id (``ID-restored``, ``ID-restored-2``, ...), and the caller reports it; ``force`` replaces
it instead, after keeping a backup. Restoring respects the limit on active sessions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from aish.compaction import reindex
from aish.errors import LimitError, Refused, StorageError, UsageError
from aish.ids import check_id, new_id
from aish.management.intake import Prepared, prepare, read_input
from aish.messages import Message
from aish.sessions import ACTIVE, ENDED


@dataclass
class Restored:
    id: str
    source_id: str | None
    messages: int
    skipped: list[str]
    renamed: bool = False  # its id was taken, so it got a new one
    replaced: bool = False
    appended: bool = False  # a recovery file's messages added to the session they came from
    backup: str | None = None  # the replaced session's backup

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _free_id(sessions, base: str, taken: set[str]) -> str:
    for n in range(1, 1000):
        suffix = "-restored" if n == 1 else f"-restored-{n}"
        candidate = base[: 64 - len(suffix)] + suffix
        if candidate not in taken and not sessions.exists(candidate):
            return candidate
    return new_id()  # pragma: no cover - a thousand restored copies of one session


def copied(messages: list[Message], user: str) -> list[Message]:
    """Restored messages keep who wrote them; one that names someone else than ``user`` (who
    restores it) is marked as ``user``'s copy, so that no store counts where the copy is
    stored as proof of who wrote it."""
    return [replace(m, copied_by=user) if m.by and m.by != user else m for m in messages]


def _would_be_active(meta: dict, now: float, timeout_minutes: float) -> bool:
    return meta.get("state") != ENDED and now - meta["updated"] <= timeout_minutes * 60


def restore(sessions, data: bytes, *, target: str | None = None, force: bool = False,
            skip_corrupted: bool = False, source: str = "stdin") -> list[Restored]:
    """Restore every session in ``data``; nothing is written unless all of them pass the checks.

    Raises only AishError subclasses, whatever ``data`` holds.
    """
    from aish.errors import SessionExists

    if target is not None:
        check_id(target)
    config, now = sessions.config, sessions.now()
    incoming = read_input(data, sessions.codec)
    if target is not None and len(incoming) != 1:
        raise UsageError("--as needs a document with exactly one session")
    prepared = [prepare(i, config, now, skip_corrupted) for i in incoming]
    for item in prepared:
        item.messages = copied(item.messages, sessions.user)

    plan: list[tuple[Prepared, str, str]] = []  # (session, target id, "create" | "replace")
    taken: set[str] = set()
    for item in prepared:
        if target is not None:
            sid, mode = target, "create"
            if sessions.exists(target):
                if not force:
                    raise Refused(f"session {target} already exists",
                                  hint="add --force to replace it; a backup is kept first")
                mode = "replace"
        else:
            sid = item.source_id or new_id()
            mode = "create"
            if sid in taken:
                sid = _free_id(sessions, sid, taken)
            elif sessions.exists(sid):
                if item.unsaved and not force:
                    mode = "append"
                elif force:
                    mode = "replace"
                else:
                    sid = _free_id(sessions, sid, taken)
        taken.add(sid)
        plan.append((item, sid, mode))

    adding = 0
    for item, sid, mode in plan:
        if _would_be_active(item.meta, now, config.timeout_minutes) and (
                mode == "create" or sessions.state(sessions.summary(sid)) != ACTIVE):
            adding += 1
    if adding:
        active = len(sessions.listing())
        if active + adding > config.max_sessions:
            raise LimitError(
                f"restoring would exceed the limit of active sessions ({active} active, "
                f"{adding} to restore, limit {config.max_sessions})",
                hint="end some with 'aish --end-session ID' or remove old ones with "
                "'aish --cleanup-sessions', or raise AISH_MAX_SESSIONS")

    results = []
    for item, sid, mode in plan:
        meta = {**item.meta, "id": sid}
        result = Restored(sid, item.source_id, len(item.messages), item.skipped,
                          renamed=target is None and item.source_id not in (None, sid))
        details = {"source": source, "from_id": item.source_id}
        if mode == "append":
            # Messages added back to a session that still exists bring nothing deleted back.
            result.messages = sessions.restore_missing(sid, item.messages, meta.get("owner"),
                                                       replaced=False, backup=None, **details)
            result.appended = True
        elif mode == "replace":
            # Backup, then replace; messages appended meanwhile are kept, not lost.
            result.backup = sessions.restore_over(sid, meta, item.messages,
                                                  sessions.load(sid).mark, item.refs,
                                                  replaced=True, **details)
            result.replaced = True
        else:
            for _ in range(20):
                try:
                    sessions.restore_new(meta, item.messages, item.refs, sign=item.unsaved,
                                         replaced=False, backup=None, **details)
                    break
                except SessionExists:  # taken meanwhile by another process
                    if target is not None:
                        raise Refused(f"session {sid} already exists",
                                      hint="add --force to replace it") from None
                    sid = _free_id(sessions, item.source_id or sid, taken)
                    taken.add(sid)
                    meta["id"] = result.id = sid
                    result.renamed = True
            else:  # pragma: no cover - twenty ids taken by others as we chose them
                raise StorageError(f"could not find a free id to restore {item.label} under")
        if not result.appended:
            reindex(sessions, sid)  # the summaries' places in the log just written
        results.append(result)
    return results

