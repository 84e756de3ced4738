"""The parsed config file, kept beside it so that a command does not load the YAML parser.

Importing and running the YAML parser costs more than most management commands' own work. The
cache holds the file's exact text with what it parsed to, and is used only when the file's
text now is that text, byte for byte: an edit of any kind (same size, same second) is a miss.
It is a cache: unreadable, damaged or foreign, it is ignored and written again.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path

TYPE_CHECKING = False  # importing typing costs every command 2-3 ms: annotations only
if TYPE_CHECKING:
    from typing import Any

CACHE_NAME = ".config-cache.json"
VERSION = 1
MAX_CACHE_BYTES = 1 << 20  # the config is capped at 64 KiB; its cache is a few times that


def parsed(file: Path, text: str, home: Path, parse: Callable[[str], Any]) -> Any:
    """What ``parse(text)`` returns for the config ``file``, from the cache in ``home`` when it
    was made from this very text."""
    cache = home / CACHE_NAME
    found = _read(cache)
    if (isinstance(found, dict) and found.get("v") == VERSION and found.get("file") == str(file)
            and found.get("text") == text and "data" in found):
        return found["data"]
    data = parse(text)
    if "api_key" not in text:  # a key is never copied out of the file the user keeps it in
        _pending[:] = [(cache, {"v": VERSION, "file": str(file), "text": text, "data": data})]
    return data


_pending: list[tuple[Path, dict]] = []


def flush() -> None:
    """Write the cache a load left pending: the face calls this when a command succeeded, so
    a refused command still writes nothing."""
    while _pending:
        _write(*_pending.pop())


def _read(cache: Path) -> object:
    try:
        fd = os.open(cache, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            return json.loads(f.read(MAX_CACHE_BYTES + 1))
    except (OSError, ValueError, RecursionError):
        return None


def _write(cache: Path, doc: dict) -> None:
    """Write the cache only when JSON gives back exactly what the parser made (a date, a set or
    a tuple would come back as something else), atomically and 0600."""
    try:
        payload = json.dumps(doc)
    except (TypeError, ValueError, RecursionError):
        return
    if len(payload) > MAX_CACHE_BYTES or repr(json.loads(payload)) != repr(doc):
        return
    if not cache.parent.is_dir() or cache.parent.is_symlink():
        return  # never create the folder (nor write through a link) just for a cache
    tmp = cache.with_name(f"{CACHE_NAME}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(payload)
        os.replace(tmp, cache)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
