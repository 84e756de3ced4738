"""Which branch of each session this user works on: kept locally, never in the session.

A checkout is a view, not a property of the session: two people (or two machines) on one
shared session each keep their own, so one person's checkout never moves another's. The file
is a small JSON map from the session's location in its store to a branch name; losing it only
means going back to ``main``.
"""

from __future__ import annotations

from pathlib import Path

from aish import localstate
from aish.store.refs import MAIN


class Checkouts:
    def __init__(self, path: Path):
        self.path = path

    def _read(self) -> dict[str, str]:
        data = localstate.read(self.path)
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
        localstate.write(self.path, data)
