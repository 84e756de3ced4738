"""What the caches kept beside a session's log share: how a cache proves it describes this
very log (a checksum of the log's last covered bytes), and how one is written (whole, or not
at all)."""

from __future__ import annotations

import contextlib
import os
import zlib
from pathlib import Path

TYPE_CHECKING = False  # importing typing costs every command 2-3 ms: annotations only
if TYPE_CHECKING:
    from typing import BinaryIO

TAIL_BYTES = 4096  # the log's last covered bytes, checksummed


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
