"""What the caches kept beside a session's log share: how a cache proves it describes this
very log (a checksum of the log's last covered bytes), and how one is written (whole, or not
at all)."""

from __future__ import annotations

import contextlib
import os
import stat
import zlib
from pathlib import Path

TYPE_CHECKING = False  # importing typing costs every command 2-3 ms: annotations only
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import BinaryIO

TAIL_BYTES = 4096  # the log's last covered bytes, checksummed


def read_regular(path: Path, limit: int) -> tuple[bytes, os.stat_result] | None:
    """The cache file's bytes and its status, read through no link and never blocking (a
    FIFO put in its place); None when it is missing, not a regular file or over ``limit``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        with os.fdopen(fd, "rb") as f:
            fd = -1
            return f.read(), st  # read(limit) would allocate the whole limit first
    except OSError:
        return None
    finally:
        if fd >= 0:
            os.close(fd)


def log_lines(data: bytes, start: int) -> Iterator[tuple[int, bytes]]:
    """Each complete, non-blank line of ``data`` (the log from byte ``start``) with its offset
    in the log: the lines a full read takes records from."""
    offset = start
    for raw in data.split(b"\n")[:-1]:
        pos, offset = offset, offset + len(raw) + 1
        if raw.strip():
            yield pos, raw


def crc(data: bytes) -> str:
    return f"{zlib.crc32(data):08x}"


def tail_crc(log: BinaryIO, size: int) -> str:
    """The checksum of the last :data:`TAIL_BYTES` of the log's first ``size`` bytes: a log cut
    back and written over since the cache was made no longer matches it."""
    start = max(0, size - TAIL_BYTES)
    log.seek(start)
    return crc(log.read(size - start))


def replace(path: Path, payload: bytes, prefix: str) -> None:
    """Write the cache whole, or leave it as it was (a full or read-only disk)."""
    try:
        import tempfile  # writes only: reads never pay for it

        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
