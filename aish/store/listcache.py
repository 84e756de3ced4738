"""The rows a listing of sessions shows, and the one file that keeps them for the file store.

Listing 10,000 sessions by reading each one's summary costs a file open, a JSON parse and a
checksum per session. ``SESSION_DIR/.list-cache`` keeps every session's row in one file, each
under the key of the log it was read from (size, mtime, ctime, inode): a listing is one
directory scan and one read of this file, and only the rows whose log changed are read again.
The key is taken before the row is read, so a write that lands meanwhile leaves a row that no
longer matches its log: at worst it is read again next time, never shown stale.

It is only a cache: a row whose key does not match is never used, and a file that is missing,
damaged (its CRC does not match), of another version or unreadable is ignored and written anew.
It holds nothing the logs' headers and `.idx` summaries do not keep in clear already (meta
records are never sealed, encryption on or off) and no message text.
"""

from __future__ import annotations

import binascii
import contextlib
import json
import os
import stat
import sys
from collections.abc import Iterable

from aish.header import State, is_count, is_time

CACHE_NAME = ".list-cache"
VERSION = 1
MAX_BYTES = 256 << 20  # far above 1,000,000 rows; a larger file is not ours, so not read

# The log's size, mtime, ctime and inode: an append changes the size, a rewrite the inode, and
# ctime (which no one can set back) a file put back in place with its old size and mtime.
Key = tuple[int, int, int, int]


def key_of(st: os.stat_result) -> Key:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def used_of(pairs: int, window: int) -> int:
    """Pairs that fall in a context window of ``window`` pairs (0: unlimited)."""
    return pairs if window == 0 else min(pairs, window)


class Row:
    """What a listing shows of one session and sorts it by, decoded once from its summary."""

    __slots__ = ("id", "title", "owner", "participants", "shared", "oneshot", "messages",
                 "pairs", "window", "created", "updated", "ended")

    def __init__(self, sid: str, title: str | None, owner: str, participants: list[str],
                 shared: bool, oneshot: bool, messages: int, pairs: int, window: int | None,
                 created: float, updated: float, ended: bool):
        self.id = sid
        self.title = title
        self.owner = owner
        self.participants = participants
        self.shared = shared
        self.oneshot = oneshot
        self.messages = messages
        self.pairs = pairs
        self.window = window  # None: the session keeps the configured default
        self.created = created
        self.updated = updated
        self.ended = ended

    @classmethod
    def of(cls, summary) -> Row:
        header = summary.header
        return cls(summary.id, header.title, summary.owner, summary.participants,
                   bool(header.shared), bool(header.oneshot), summary.messages,
                   summary.user_messages, header.context_window, summary.created,
                   summary.updated, header.state is State.ENDED)

    def context_window(self, default: int) -> int:
        return default if self.window is None else self.window

    def context_used(self, default: int) -> int:
        return used_of(self.pairs, self.context_window(default))

    def to_json(self) -> list:
        return [self.id, self.title, self.owner, self.participants, self.shared, self.oneshot,
                self.messages, self.pairs, self.window, self.created, self.updated, self.ended]

    @classmethod
    def from_json(cls, data: list) -> Row:
        """A row read back from the cache; ValueError on any doubt about a value."""
        (sid, title, owner, participants, shared, oneshot, messages, pairs, window, created,
         updated, ended) = data
        if not (isinstance(sid, str) and (title is None or isinstance(title, str))
                and isinstance(owner, str) and isinstance(participants, list)
                and all(isinstance(p, str) for p in participants)
                and type(shared) is bool and type(oneshot) is bool and type(ended) is bool
                and is_count(messages) and is_count(pairs)
                and (window is None or is_count(window)) and is_time(created)
                and is_time(updated)):
            raise ValueError("not a listing row")
        return cls(sid, title, owner, participants, shared, oneshot, messages, pairs, window,
                   float(created), float(updated), ended)


def read(root: str) -> dict[str, tuple[Key, Row]]:
    """Each row the cache in ``root`` holds with its key, by session id; none when the file is
    not a whole, current cache of ours. Read line by line (the CRC as it goes): a listing of
    thousands of sessions never holds the file's text and its rows at once."""
    path = os.path.join(root, CACHE_NAME)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return {}
    rows: dict[str, tuple[Key, Row]] = {}
    try:
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return {}
            doc = json.loads(f.readline(200))
            if not (isinstance(doc, dict) and doc.get("v") == VERSION
                    and is_count(doc.get("bytes")) and doc["bytes"] <= MAX_BYTES):
                return {}
            crc, size = 0, 0
            decode = json.JSONDecoder().decode
            intern = sys.intern
            for line in f:
                crc, size = binascii.crc32(line, crc), size + len(line)
                if size > doc["bytes"]:
                    return {}
                try:
                    data = decode(line.decode("utf-8"))
                    key = tuple(data[:4])
                    row = Row.from_json(data[4:])
                except (ValueError, TypeError, RecursionError):
                    continue  # one odd line only costs its row being read again
                if len(key) == 4 and all(type(n) is int for n in key):
                    row.owner = intern(row.owner)  # a few names, shared by thousands of rows
                    row.participants = [intern(p) for p in row.participants]
                    rows.setdefault(row.id, (key, row))
    except (OSError, ValueError, RecursionError):
        return {}
    if crc != doc.get("crc") or size != doc["bytes"]:
        return {}
    return rows


def write(root: str, rows: Iterable[tuple[Key, Row]]) -> None:
    """Replace the cache in ``root`` with ``rows`` atomically, 0600; any failure leaves the
    old file (or none), which the next listing checks the same way."""
    try:
        body = "".join(json.dumps([*key, *row.to_json()], separators=(",", ":")) + "\n"
                       for key, row in rows).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError, UnicodeError):
        return
    head = json.dumps({"v": VERSION, "bytes": len(body), "crc": binascii.crc32(body)})
    path = os.path.join(root, CACHE_NAME)
    tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
    except OSError:
        return  # a read-only store: the listing stands without its cache
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(head.encode() + b"\n")
            f.write(body)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
