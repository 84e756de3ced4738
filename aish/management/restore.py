"""`--restore-session`: put checked sessions (see `aish.management.intake`) into the store.

An existing session is never replaced silently: a session whose id is taken is restored under a
new id (``ID-restored``, ``ID-restored-2``, ...), and the caller reports it; ``force`` replaces
it instead, after keeping a backup. Restoring respects the limit on active sessions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from aish.errors import LimitError, Refused, StorageError, UsageError
from aish.ids import check_id, new_id
from aish.management.intake import Prepared, prepare, read_input
from aish.management.integrity import ACTIVE, ENDED
from aish.messages import Message
from aish.store.base import tombstone
from aish.store.refs import RefMoved


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


def _free_id(store, base: str, taken: set[str]) -> str:
    for n in range(1, 1000):
        suffix = "-restored" if n == 1 else f"-restored-{n}"
        candidate = base[: 64 - len(suffix)] + suffix
        if candidate not in taken and not store.exists(candidate):
            return candidate
    return new_id()  # pragma: no cover - a thousand restored copies of one session


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
    store, config, now = sessions.store, sessions.config, sessions.now()
    incoming = read_input(data, getattr(store, "codec", None))
    if target is not None and len(incoming) != 1:
        raise UsageError("--as needs a document with exactly one session")
    prepared = [prepare(i, config, now, skip_corrupted) for i in incoming]

    plan: list[tuple[Prepared, str, str]] = []  # (session, target id, "create" | "replace")
    taken: set[str] = set()
    for item in prepared:
        if target is not None:
            sid, mode = target, "create"
            if store.exists(target):
                if not force:
                    raise Refused(f"session {target} already exists",
                                  hint="add --force to replace it; a backup is kept first")
                mode = "replace"
        else:
            sid = item.source_id or new_id()
            mode = "create"
            if sid in taken:
                sid = _free_id(store, sid, taken)
            elif store.exists(sid):
                if item.unsaved and not force:
                    mode = "append"
                elif force:
                    mode = "replace"
                else:
                    sid = _free_id(store, sid, taken)
        taken.add(sid)
        plan.append((item, sid, mode))

    adding = 0
    for item, sid, mode in plan:
        if _would_be_active(item.meta, now, config.timeout_minutes) and (
                mode == "create" or sessions.state(store.summary(sid)) != ACTIVE):
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
        owner = meta.get("owner")
        result = Restored(sid, item.source_id, len(item.messages), item.skipped,
                          renamed=target is None and item.source_id not in (None, sid))
        if mode == "append":
            # Only what the session does not hold yet (message ids are stable), in order.
            have = {m.id for m in store.load(sid).messages}
            missing = [m for m in item.messages if m.id not in have]
            if missing:
                _append_missing(store, sid, missing, have)
            result.messages = len(missing)
            result.appended = True
        elif mode == "replace":
            # Backup, then replace; messages appended meanwhile are kept, not lost.
            mark = store.load(sid).mark
            result.backup = sessions.rewrite(sid, meta, item.messages, "restore", owner,
                                             since=mark, refs=item.refs)
            result.replaced = True
        else:
            for _ in range(20):
                try:
                    store.create(meta, item.messages, item.refs)
                    break
                except SessionExists:  # taken meanwhile by another process
                    if target is not None:
                        raise Refused(f"session {sid} already exists",
                                      hint="add --force to replace it") from None
                    sid = _free_id(store, item.source_id or sid, taken)
                    taken.add(sid)
                    meta["id"] = result.id = sid
                    result.renamed = True
            else:  # pragma: no cover - twenty ids taken by others as we chose them
                raise StorageError(f"could not find a free id to restore {item.label} under")
        # Deletions recorded before now no longer apply to it, here or (through
        # --sync-sessions) on any other store: it was restored on purpose. Messages added back
        # to a session that still exists bring nothing deleted back with them.
        if mode != "append":
            store.add_tombstone(tombstone(sid, "restore", sessions.now(), cleared=True))
        sessions.audit.record("restore", sid, owner, source=source, from_id=item.source_id,
                              replaced=result.replaced, backup=result.backup)
        results.append(result)
    return results


def _append_missing(store, sid: str, missing: list[Message], have: set[str]) -> None:
    """Add messages a session lacks (a recovery file's): on the branch they were written for
    when it is still where they left it, else on a new branch beside it, so nothing written
    since is moved."""
    try:
        store.append(sid, [m.to_record() for m in missing])
        return
    except RefMoved:
        pass
    known = have | {m.id for m in missing}
    fixed = [replace(m, ref=None) if m.parent in known else replace(m, ref=None, parent="")
             for m in missing]
    taken = set(store.summary(sid).tree.refs)
    number = 1
    while f"restored-{number}" in taken:
        number += 1
    name = f"restored-{number}"
    store.append(sid, [m.to_record() for m in fixed]
                 + [{"t": "ref", "name": name, "to": fixed[-1].id, "op": "branch"}])
