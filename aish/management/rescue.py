"""Keeping messages the store would not take when a session is left.

When the store cannot be written (Redis stopped, the session removed from another terminal),
leaving session mode still works: the unsaved messages go to a session log (JSON lines, as the
file store writes) in the session dir's ``backup/`` folder, so `aish --restore-session PATH`
takes them back. With encryption on, their content is sealed with the store's key, as in the
store. The name (``ID-unsaved-STAMP.jsonl``) keeps it out of the session's own backups, since it
holds only the messages that were not saved.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from aish.errors import StorageError
from aish.store.base import FORMAT_VERSION, PlainCodec, dump_line
from aish.store.filestore import FileStore


def keep_unsaved(session) -> str:
    """Write ``session``'s unsaved messages to a new private file; returns its path."""
    sessions = session.sessions
    codec = sessions.codec or PlainCodec()
    meta = {"t": "meta", "v": FORMAT_VERSION, **session.meta, "updated": sessions.now(),
            "unsaved": True}
    data = dump_line(meta) + b"".join(dump_line(codec.seal(m.to_record()))
                                      for m in session.pending)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    # Checked as the file store checks its own folders: never written through a link.
    folder = FileStore(Path(sessions.config.session_dir), codec=codec).private_dir("backup")
    try:
        for n in range(1, 100):
            path = folder / f"{session.id}-unsaved-{stamp}{'' if n == 1 else f'-{n}'}.jsonl"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                continue
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            return str(path)
    except OSError as exc:
        raise StorageError(f"cannot write {folder}: {exc.strerror}") from None
    raise StorageError(f"cannot write {folder}: too many recovery files this second")
