"""Files attached to a message (`apollo -a notes.md "summarise"`): their text is added to the
message, each under a line naming it, so the session keeps exactly what was sent.

Every file is read and checked before anything is stored: a missing, unreadable, binary or
too large file is a one-line error and the message is not sent.
"""

from __future__ import annotations

import os

from aish.config import Config
from aish.errors import LimitError, UsageError


def attach(config: Config, text: str | None, paths: list[str]) -> str:
    """``text`` (None: no text of its own) followed by the files' text."""
    parts = [text] if text else []
    for path in paths:
        body = _read(path, config.max_attach_bytes)
        parts.append(f"--- FILE {path} ---\n{body.rstrip(chr(10))}")
    return "\n\n".join(parts)


def _read(path: str, limit: int) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            raw = f.read(limit + 1)
    except FileNotFoundError:
        raise UsageError(f"cannot attach {path!r}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"cannot attach {path!r}: it is a directory") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)[:80]
        raise UsageError(f"cannot attach {path!r}: {reason}") from None
    if len(raw) > limit:
        raise LimitError(f"cannot attach {path!r}: larger than the limit of {limit} bytes",
                         hint="raise sessions.limits.max_attach_bytes")
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        body = ""
    if "\0" in body or (raw and not body):
        raise UsageError(f"cannot attach {path!r}: not UTF-8 text (a binary file?)")
    return body
