"""Keeping messages the store would not take when a session is left.

When the store cannot be written (Redis stopped, the session removed from another terminal),
leaving session mode still works: the unsaved messages go to a document in the session dir's
``backup/`` folder, in the `--save-session` format, so `aish --restore-session PATH` takes them
back. With encryption on, their content is sealed with the store's key, as in the store.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from aish.errors import StorageError
from aish.management.transfer import FORMAT, VERSION
from aish.store.base import seal_doc


def keep_unsaved(session, reason: str) -> str:
    """Write ``session``'s unsaved messages to a new private file; returns its path."""
    sessions = session.sessions
    meta = {**session.meta, "updated": sessions.now()}
    doc = {"format": FORMAT, "version": VERSION, "session": meta,
           "messages": [m.to_record() for m in session.pending], "unsaved_because": reason}
    codec = getattr(sessions.store, "codec", None)
    if codec is not None:
        doc = seal_doc(codec, doc)
    folder = Path(sessions.config.session_dir) / "backup"
    stamp = time.strftime("%Y%m%dT%H%M%S")
    data = json.dumps(doc, indent=2).encode()  # ASCII: a lone surrogate cannot break it
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for n in range(1, 100):
            path = folder / f"{session.id}-{stamp}-unsaved{'' if n == 1 else f'-{n}'}.json"
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
