"""The tally cache: what `--session-info` and `--list-branches` count (`aish.tallies`), kept
beside the log as ``.ID.tally`` so that a report reads only what was appended since the last.

One line, ``CRC32 JSON``, rewritten whole when the log has grown. Like the skeleton it is only
a cache, used when it describes this very log: the same session id and inode, no more bytes
than the log holds, and a checksum of the log's last covered bytes that still matches.
Anything else — a flipped byte, a foreign file, a log rewritten or cut back, a new message
whose parent it does not know — is a miss: the report counts from the whole log and the cache
is written anew from that. A failed write leaves the file as it was.

No message text is kept, but an encrypted store keeps no tally all the same: who spoke to
which model when is part of what encryption hides.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from aish.messages import Message
from aish.store import cachefile
from aish.store.base import parse_line
from aish.tallies import Miss, Tally

TYPE_CHECKING = False  # importing typing costs every command 2-3 ms: annotations only
if TYPE_CHECKING:
    from typing import BinaryIO

VERSION = 1
_READ_LIMIT = 64 * 1024 * 1024


def path_for(root: Path, sid: str) -> Path:
    return root / f".{sid}.tally"


def covered(path: Path, sid: str, log: BinaryIO, keep: Iterable[str],
            open_record: Callable[[dict], dict]) -> Tally | None:
    """The tally of the complete lines of ``log`` (the log of ``sid``, open for reading),
    from the cache brought up to date and written back; None on a miss (see the module).
    ``keep``: the messages whose path tallies must be known (branch heads, redo targets);
    ``open_record``: the store's reading of a message record, as a full read does it."""
    keep = [k for k in keep if k]
    ino = os.fstat(log.fileno()).st_ino
    log.seek(0, os.SEEK_END)
    size = log.tell()
    found = _read(path, sid, ino, log, size)
    if found is None:
        return None
    tally, start = found
    log.seek(start)
    data = log.read(size - start)
    end = start + data.rfind(b"\n") + 1
    if end > start:
        try:
            fold(tally, data[:end - start], start, open_record)
        except Miss:
            return None
        tally.trim(keep)
        write(path, sid, ino, end, log, tally)
    if any(tally.path(k) is None for k in keep):
        return None
    return tally


def fold(tally: Tally, data: bytes, start: int, open_record: Callable[[dict], dict]) -> None:
    """Count the messages of ``data`` (complete lines of the log from byte ``start``), taking
    and skipping records exactly as a full read does."""
    for pos, raw in cachefile.log_lines(data, start):
        try:
            record = parse_line(raw.decode("utf-8"))
            if record["t"] != "msg":
                continue
            message = Message.from_record(open_record(record), pos, tally.last)
        except (UnicodeDecodeError, KeyError, TypeError, ValueError, OverflowError):
            continue  # a full read reports it and goes on without it
        tally.add(message)


def write(path: Path, sid: str, ino: int, end: int, log: BinaryIO, tally: Tally) -> None:
    """Keep ``tally`` as the count of the first ``end`` bytes of the log (inode ``ino``)."""
    body = json.dumps({"v": VERSION, "sid": sid, "ino": ino, "to": end,
                       "tail": cachefile.tail_crc(log, end), "tally": tally.to_json()},
                      ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    cachefile.replace(path, cachefile.crc(body).encode() + b" " + body + b"\n", ".tally-")


def _read(path: Path, sid: str, ino: int, log: BinaryIO, size: int) -> tuple[Tally, int] | None:
    found = cachefile.read_regular(path, _READ_LIMIT)
    if found is None:
        return None
    data = found[0]
    crc, _, body = data.rstrip(b"\n").partition(b" ")
    try:
        if not data.endswith(b"\n") or crc.decode("ascii") != cachefile.crc(body):
            return None
        found = json.loads(body)
        if not (isinstance(found, dict) and found.get("v") == VERSION
                and found.get("sid") == sid and found.get("ino") == ino
                and type(found.get("to")) is int and 0 <= found["to"] <= size
                and found.get("tail") == cachefile.tail_crc(log, found["to"])):
            return None
        return Tally.from_json(found.get("tally")), found["to"]
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def carry(old_path: Path, new_path: Path, old: str, new: str, log: BinaryIO) -> None:
    """Keep the tally of session ``old``, whose log (open as ``log``) is now ``new``'s, as the
    new session's; nothing when it does not check out."""
    ino = os.fstat(log.fileno()).st_ino
    log.seek(0, os.SEEK_END)
    found = _read(old_path, old, ino, log, log.tell())
    if found is not None:
        write(new_path, new, ino, found[1], log, found[0])
