"""The session this user last talked in, per specialist: what `apollo -c` and `aish -c` continue.

Kept locally (``~/.aish/last-sessions.json``), never in the store: on a shared store each user
continues their own last conversation. An entry names the session's location in its store too,
so that pointing aish at another store (another directory, Redis) does not continue a session
of the same id that happens to live there. The file is rewritten whole on each message sent in
a session; losing it only means `-c` has nothing to continue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aish import localstate
from aish.header import is_name, is_time

KEEP = 64  # entries kept: the newest per (specialist, session) pair


@dataclass(frozen=True)
class Last:
    sid: str
    ai: str
    location: str
    time: float


class LastSessions:
    def __init__(self, path: Path):
        self.path = path

    def _read(self) -> list[Last]:
        data = localstate.read(self.path)
        entries = data.get("entries") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            return []
        out = []
        for e in entries:
            if (isinstance(e, dict) and is_name(e.get("sid")) and is_name(e.get("ai"))
                    and isinstance(e.get("location"), str) and is_time(e.get("time"))):
                out.append(Last(e["sid"], e["ai"], e["location"], float(e["time"])))
        return sorted(out, key=lambda e: e.time)

    def note(self, sid: str, ai: str, location: str, time: float) -> None:
        """``ai`` has just sent a message in ``sid``, stored at ``location``."""
        kept = [e for e in self._read() if (e.sid, e.ai) != (sid, ai)]
        kept = (kept + [Last(sid, ai, location, time)])[-KEEP:]
        localstate.write(self.path, {"entries": [vars(e) for e in kept]})

    def last(self, ai: str | None, location_of: Callable[[str], str]) -> Last | None:
        """The newest entry for ``ai`` (None: any specialist) in the store whose locations
        ``location_of`` gives."""
        for entry in reversed(self._read()):
            if (ai is None or entry.ai == ai) and location_of(entry.sid) == entry.location:
                return entry
        return None
