"""Which branch of each session this user works on: kept locally, never in the session.

A checkout is a view, not a property of the session: two people (or two machines) on one
shared session each keep their own, so one person's checkout never moves another's. The file
is a small JSON map from the session's location in its store to a branch name; losing it only
means going back to ``main``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from aish.store.refs import MAIN

_LIMIT = 1 << 20  # a larger file is not ours: ignored


class Checkouts:
    def __init__(self, path: Path):
        self.path = path

    def _read(self) -> dict[str, str]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return {}
        with os.fdopen(fd, "rb") as f:
            raw = f.read(_LIMIT + 1)
        try:
            data = json.loads(raw) if len(raw) <= _LIMIT else {}
        except (ValueError, RecursionError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}

    def get(self, location: str) -> str:
        return self._read().get(location, MAIN)

    def set(self, location: str, branch: str) -> None:
        data = self._read()
        if branch == MAIN:
            data.pop(location, None)
        else:
            data[location] = branch
        from aish.store.filestore import make_private_dirs

        make_private_dirs(self.path.parent)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".checkouts-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1, sort_keys=True)
            os.replace(tmp, self.path)  # another process's write may win; either is whole
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
