"""The audit log: one JSON line per operation on a session — who, what, which, when.

Written with O_APPEND in one write call, so concurrent processes interleave whole lines.
Auditing never breaks the operation it records: a failure to write is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path


class AuditLog:
    def __init__(self, path: Path | None):
        self.path = path
        # Who, as the store knows the person (an ACL user on Redis), beside the OS user: set
        # by the session core once it has a store.
        self.by: Callable[[], str] | None = None

    def record(self, action: str, session: str | None, ai: str | None = None, **extra) -> None:
        if self.path is None:
            return
        import getpass  # only a command that writes the audit log pays for it

        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "user": user, "pid": os.getpid(),
                 "action": action, "session": session, "ai": ai, **extra}
        if self.by is not None:
            with contextlib.suppress(Exception):  # auditing never breaks what it records
                entry.setdefault("by", self.by())
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                if os.fstat(fd).st_mode & 0o077:  # created by hand or copied: make it private
                    os.fchmod(fd, 0o600)
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError:
            pass


    def entries(self, sessions: set[str] | frozenset[str]) -> list[dict]:
        """The entries about any of ``sessions`` (a session's current id and its former ones:
        entries written before a rename name the id it had then), oldest first."""
        if self.path is None:
            return []
        try:
            with open(self.path, "rb") as f:
                lines = f.read().splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(entry, dict) and entry.get("session") in sessions:
                out.append(entry)
        return out


NULL_AUDIT = AuditLog(None)
