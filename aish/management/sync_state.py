"""What this user's device remembers of its syncs, per transport: when it last synced, each
session's metadata as it stood then (the base a later sync compares both sides with, so that a
key changed on one side only is taken from that side) and the other devices' branch heads it
took in (so that a branch moved here since, an undo say, is not moved back to them). Losing it
costs one sync where this device's metadata wins every difference and other devices' heads
are taken in again. It also keeps, per session, a fingerprint of the metadata of every log
that session's last quiet sync saw (sizes, change times, chain heads), so that a sync with
nothing new to do reads no log at all."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

STATE_FILE = "sync-state.json"
LOCK_FILE = ".sync.lock"


@contextlib.contextmanager
def one_sync_at_a_time(home: Path):
    """Hold this device's sync lock: two syncs at once would both extend the device's logs
    from the same record, breaking their chains. Another sync waits for this one."""
    import fcntl

    from aish.errors import StorageError
    from aish.store.filestore import make_private_dirs

    make_private_dirs(Path(home))
    path = Path(home) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StorageError(f"cannot open {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class SyncState:
    def __init__(self, home: Path):
        self.path = Path(home) / STATE_FILE
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            data = {}
        self.data: dict = data if isinstance(data, dict) else {}

    def _of(self, transport: str) -> dict:
        entry = self.data.get(transport)
        if not isinstance(entry, dict):
            entry = self.data[transport] = {}
        return entry

    def base(self, transport: str, sid: str) -> dict:
        meta = self._of(transport).get("meta", {})
        found = meta.get(sid) if isinstance(meta, dict) else None
        return found if isinstance(found, dict) else {}

    def set_base(self, transport: str, sid: str, meta: dict) -> None:
        entry = self._of(transport)
        if not isinstance(entry.get("meta"), dict):
            entry["meta"] = {}
        entry["meta"][sid] = meta

    def seen_heads(self, transport: str, sid: str) -> dict[str, dict[str, str]]:
        """Other devices' branch heads as the last sync took them in: device -> name -> id."""
        heads = self._of(transport).get("heads", {})
        found = heads.get(sid) if isinstance(heads, dict) else None
        return found if isinstance(found, dict) else {}

    def set_seen_heads(self, transport: str, sid: str, heads: dict[str, dict[str, str]]) -> None:
        entry = self._of(transport)
        if not isinstance(entry.get("heads"), dict):
            entry["heads"] = {}
        entry["heads"][sid] = heads

    def idle(self, transport: str, sid: str) -> dict:
        """What an idle sync of ``sid`` compares (``print``) and reports (``remote``,
        ``diverged``), as the last sync that found nothing to do there left it."""
        idle = self._of(transport).get("idle", {})
        found = idle.get(sid) if isinstance(idle, dict) else None
        return found if isinstance(found, dict) else {}

    def set_idle(self, transport: str, sid: str, entry: dict | None) -> None:
        bucket = self._of(transport)
        if not isinstance(bucket.get("idle"), dict):
            bucket["idle"] = {}
        if entry is None:
            bucket["idle"].pop(sid, None)
        else:
            bucket["idle"][sid] = entry

    def synced(self, transport: str, when: float) -> None:
        self._of(transport)["last"] = when

    def last(self) -> dict[str, float]:
        return {k: v["last"] for k, v in self.data.items()
                if isinstance(v, dict) and isinstance(v.get("last"), int | float)}

    def save(self) -> None:
        from aish.store.filestore import make_private_dirs

        make_private_dirs(self.path.parent)
        tmp = self.path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.data, f, sort_keys=True)
            os.replace(tmp, self.path)
        except OSError:  # only a cache of the last sync: the next one works without it
            with contextlib.suppress(OSError):
                os.unlink(tmp)
