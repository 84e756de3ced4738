"""Where this user's follower of a session stopped, kept locally (``~/.aish/following/``), so
that ``--resume`` shows a restarted follower what it had not shown yet, and nothing twice.

One small file per followed session, named by a hash of the session's location in its store
(two stores may hold one id): the feed's position (the last stream id read, or the log's
and live files' offsets) and, for each reply that was streaming, how much of it was shown.
It is saved after what it covers was written out, so a follower killed in between shows at
most that last batch again, and never misses one. Losing the file only loses the resume.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from aish import localstate


class Cursors:
    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, location: str) -> Path:
        return self.folder / (hashlib.sha256(location.encode()).hexdigest()[:32] + ".json")

    def load(self, location: str) -> dict | None:
        data = localstate.read(self.path(location))
        if not isinstance(data, dict) or data.get("location") != location:
            return None
        return data

    def save(self, location: str, feed: dict, streaming: dict[str, dict]) -> None:
        localstate.write(self.path(location),
                         {"location": location, "feed": feed, "streaming": streaming})
