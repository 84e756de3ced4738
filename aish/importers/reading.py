"""Reading another tool's files as hostile input: bounded, non-blocking, regular files only.

A path may name a FIFO or a device (which would block or never end), a file larger than memory,
bytes that are not UTF-8, or JSON nested until the parser's stack runs out. Every read here is
capped by one byte budget shared by all the files of one import, and every failure is an
AishError with one line for the user.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from aish.errors import LimitError, SessionNotFound
from aish.importers.model import BadSource

MAX_FILES = 10_000  # files read from one directory


class Budget:
    """The bytes one import may still read."""

    def __init__(self, limit: int):
        self.limit = limit
        self.left = limit

    def take(self, size: int, what: str) -> None:
        if size > self.left:
            raise LimitError(f"{what}: the input is larger than the limit of {self.limit:,} "
                             "bytes", hint="import fewer conversations at a time, or raise "
                             "sessions.limits.max_import_bytes")
        self.left -= size


def existing(path: str) -> Path:
    file = Path(path).expanduser()
    try:
        file.stat()
    except FileNotFoundError:
        raise SessionNotFound(f"{path}: no such file or directory") from None
    except OSError as exc:
        raise BadSource(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:  # a NUL in the name (a shell line can hold one; argv cannot)
        raise BadSource(f"{path!r} is not a file name") from None
    return file


def is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.stat().st_mode)
    except OSError:
        return False


def read_bytes(path: Path, budget: Budget) -> tuple[bytes, float]:
    """The whole of regular file ``path`` and its modification time."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise BadSource(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise BadSource(f"{path} is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise BadSource(f"{path} is not a regular file")
        budget.take(info.st_size, str(path))  # refused before reading when it is too big
        budget.left += info.st_size
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(budget.left + 1)  # it may have grown since
        budget.take(len(data), str(path))
    except OSError as exc:
        raise BadSource(f"cannot read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return data, info.st_mtime


def read_text(path: Path, budget: Budget) -> tuple[str, float]:
    data, mtime = read_bytes(path, budget)
    try:
        return data.decode("utf-8-sig"), mtime
    except UnicodeDecodeError as exc:
        raise BadSource(f"{path} is not UTF-8 text (byte {exc.start})") from None


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed")


def load_json(text: str, where: str):
    """The JSON value in ``text``; NaN/Infinity and nesting past the stack are refused."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise BadSource(f"{where}: JSON nested too deeply") from None
    except ValueError as exc:
        raise BadSource(f"{where}: not valid JSON ({str(exc).splitlines()[0][:80]})") from None


def _entries(folder: Path, kind: str, keep) -> list[Path]:
    """The entries of ``folder`` that ``keep`` takes, by name, at most MAX_FILES of them."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise BadSource(f"cannot list {folder}: {exc.strerror or exc}") from None
    out = []
    for entry in entries:
        try:
            if keep(entry):
                out.append(Path(entry.path))
        except OSError:  # gone, or unreadable, since it was listed
            continue
    if len(out) > MAX_FILES:
        raise LimitError(f"{folder} holds more than {MAX_FILES:,} {kind} to import",
                         hint="import them a few at a time")
    return out


def files_in(folder: Path, accept=lambda path: True) -> list[Path]:
    """The regular files directly in ``folder`` that ``accept`` takes, by name; links and
    anything else are left out."""
    return _entries(folder, "files", lambda entry: entry.is_file(follow_symlinks=False)
                    and accept(Path(entry.path)))


def folders_in(folder: Path) -> list[Path]:
    """The real (not linked) folders directly in ``folder``, by name."""
    return _entries(folder, "folders", lambda entry: entry.is_dir(follow_symlinks=False))
