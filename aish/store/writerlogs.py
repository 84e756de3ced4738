"""One Redis session kept in several logs, one per writer, read as the one log it stands for.

The session's owner writes ``aish:{ID}:log``; every other named writer writes only
``aish:{ID}:log:USER``, which the server's ACL rules let no one else write. So who wrote a
record is where it is, not what it says: a record in bob's log is bob's whatever its ``by``
claims, and nothing bob can send lands in anyone else's log.

Order: the write script stamps each record of a writer's log with its place in the session
(``{"q":N,...}``: how many records the session held before it). The owner's log is not
stamped (a session with one writer is stored exactly as before): its records fill, in their
order, the places the stamps leave free. Walking back from the end, the next record is the
writer record whose stamp is that place, else the owner's next one; stamps a hand edit broke
still give one order (every record once), never an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from aish.store.authors import SIGNER_PATTERN
from aish.store.base import dump_line

_STAMP = re.compile(rb'\{"q":(\d{1,18}),')
_MAX_CHUNK = 4096
WRITER_FIELD = b"wn:"  # meta hash field per writer: how many records its log holds


def writers(fields: dict) -> list[str]:
    """The writers with a log of their own, from the session's meta hash fields."""
    out = []
    for key in fields:
        if isinstance(key, bytes) and key.startswith(WRITER_FIELD):
            name = key[len(WRITER_FIELD):].decode("utf-8", "replace")
            if SIGNER_PATTERN.fullmatch(name):
                out.append(name)
    return sorted(out)


def place(raw: bytes) -> int:
    """A writer record's stamped place (-1: none)."""
    match = _STAMP.match(raw)
    return int(match.group(1)) if match else -1


def unstamped(raw: bytes) -> bytes:
    """A writer record as it was written, without the place the write script stamped on it."""
    match = _STAMP.match(raw)
    return b"{" + raw[match.end():] if match else raw


def claimed_by(raw: bytes) -> object:
    """The ``by`` a stored record claims (None: none, or not a record)."""
    try:
        record = json.loads(unstamped(raw))
    except (ValueError, RecursionError):
        return None
    return record.get("by") if isinstance(record, dict) else None


def as_written(raw: bytes, writer: str) -> bytes:
    """A writer's record as one log holds it: without its stamp, and naming the writer as its
    author (a record claiming someone else is shown as the writer's)."""
    body = unstamped(raw)
    try:
        record = json.loads(body)
    except (ValueError, RecursionError):
        return body
    if not isinstance(record, dict) or record.get("t") not in ("msg", "ref") \
            or record.get("by") == writer:
        return body
    record["by"] = writer
    return dump_line(record)[:-1]


class MergedMedium:
    """The session's records by place, for `aish.store.base.walk`: merged from the end of
    every log down to the place asked for, so a walk near the end reads only what it needs.

    ``logs``: (writer, key, length), the owner's log first (writer ""). ``filled``: the whole
    lists already read (a load), else records are fetched in growing chunks.
    """

    def __init__(self, client, logs: list[tuple[str, str, int]],
                 filled: list[list[bytes]] | None = None):
        self.client = client
        self.logs = logs
        self.length = sum(n for _, _, n in logs)
        self.buffers: list[dict[int, bytes]] = (
            [dict(enumerate(items)) for items in filled] if filled is not None
            else [{} for _ in logs])
        self.next_at = [n - 1 for _, _, n in logs]
        self.sizes = [8] * len(logs)
        self.cache: dict[int, bytes] = {}
        self.below = self.length - 1  # the highest place not yet merged

    def _get(self, log: int, index: int) -> bytes | None:
        buffer = self.buffers[log]
        if index not in buffer and self.client is not None:
            start = max(0, index - self.sizes[log] + 1)
            for offset, item in enumerate(self.client.lrange(self.logs[log][1], start, index)):
                buffer[start + offset] = item
            self.sizes[log] = min(self.sizes[log] * 2, _MAX_CHUNK)
        return buffer.get(index)

    def _merge_to(self, pos: int) -> None:
        while self.below >= pos:
            best, best_place = -1, -1
            for log in range(1, len(self.logs)):
                if self.next_at[log] < 0:
                    continue
                raw = self._get(log, self.next_at[log])
                if raw is None:  # cut meanwhile (a rewrite): nothing more there
                    self.next_at[log] = -1
                    continue
                if best < 0 or place(raw) > best_place:
                    best, best_place = log, place(raw)
            owner_left = self.next_at[0] >= 0 and self._get(0, self.next_at[0]) is not None
            if best >= 0 and (best_place >= self.below or not owner_left):
                raw = self._get(best, self.next_at[best])
                self.cache[self.below] = as_written(raw or b"", self.logs[best][0])
                self.next_at[best] -= 1
            elif owner_left:
                self.cache[self.below] = self._get(0, self.next_at[0]) or b""
                self.next_at[0] -= 1
            else:
                return
            self.below -= 1

    def at(self, pos: int) -> bytes | None:
        if not 0 <= pos < self.length:
            return None
        self._merge_to(pos)
        return self.cache.get(pos)

    def before(self, pos: int | None) -> Iterator[tuple[bytes, int]]:
        index = (self.length if pos is None else min(pos, self.length)) - 1
        while index >= 0:
            self._merge_to(index)
            if index not in self.cache:
                return
            yield self.cache[index], index
            index -= 1


def merge(owner: list[bytes], others: dict[str, list[bytes]]) -> list[bytes]:
    """Every record of the session in its order, from whole lists already read."""
    names = sorted(others)
    logs = [("", "", len(owner))] + [(name, "", len(others[name])) for name in names]
    medium = MergedMedium(None, logs, [owner] + [others[name] for name in names])
    return [raw for raw, _ in medium.before(None)][::-1]
