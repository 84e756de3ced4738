"""Small JSON files of this user's own state beside the config (``~/.aish``): read bounded and
without following links, written whole (a temporary file renamed over the old one, mode 0600),
so a crash or a second process never leaves half a file. Losing one only forgets a preference.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

_LIMIT = 1 << 20  # a larger file is not ours: ignored


def read(path: Path) -> object:
    """What ``path`` holds, or None when it is missing, unreadable, too large or not JSON."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        raw = f.read(_LIMIT + 1)
    try:
        return json.loads(raw) if len(raw) <= _LIMIT else None
    except (ValueError, RecursionError):
        return None


def write(path: Path, data: object) -> None:
    import tempfile  # writes only: reading a per-user file never pays for it

    from aish.store.filestore import make_private_dirs

    make_private_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)  # another process's write may win; either is whole
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
