"""The floor of a branch: who is being answered on it right now.

While a specialist answers on a branch, the branch's floor is held by a lease, so that a second
prompt on the same branch waits for the reply instead of racing it (the race itself would lose
nothing: the compare-and-set of the head keeps the loser's exchange on a branch of its own, but
two people talking over each other is rarely what either wants).

- Redis: ``aish:{ID}:floor:BRANCH`` holds the holder as JSON, taken with ``SET ... NX PX ttl``,
  renewed and released by scripts that first check the holder's token, so a lease that expired
  and was taken by someone else is never renewed or freed by its former holder.
- Files: ``.floors/ID.BRANCH.json`` in the sessions folder, read and written under the
  session's lock; a lease is stale when it expired, or when its process is gone on this host.
  Each take sweeps the session's stale leases (and the live files of replies whose writer
  died), so a killed holder leaves nothing behind once the session is written to again.

A lease lives ``ttl`` seconds and is renewed every third of that while its holder lives (a
thread, so a model that thinks long before its first token keeps the floor too); a holder
killed mid-reply frees the floor when its lease expires (files: at once, on its own host).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from aish.errors import StorageError
from aish.ids import ID_PATTERN

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_NOTES = 50  # notes kept for one holder: a flood of waiting prompts says enough in 50
_NOTE_MS = 3_600_000  # a note outlives its lease by this much, for a holder that is slow

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _is_token(text: str) -> bool:
    return len(text) == 16 and all(c in "0123456789abcdef" for c in text)


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container): its number, then
        return str(os.getuid())


@dataclass(frozen=True)
class Holder:
    """Who holds a branch's floor, and until when (seconds since the epoch)."""

    user: str
    ai: str
    branch: str
    pid: int
    host: str
    until: float
    token: str
    # The branch's head when the floor was taken (before the holder's message): where a
    # prompt that gives up waiting starts its own branch, so it never inherits a question
    # that is not its own. None: not known (a lease written without it).
    head: str | None = None

    @classmethod
    def me(cls, ai: str, branch: str, ttl: float, head: str | None = None) -> Holder:
        return cls(_user(), ai, branch, os.getpid(), socket.gethostname(), time.time() + ttl,
                   secrets.token_hex(8), head)

    def dump(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def load(cls, raw: bytes | str | None) -> Holder | None:
        """A holder read back; None for anything that is not one (never raises)."""
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            head = data.get("head")
            holder = cls(str(data["user"]), str(data["ai"]), str(data["branch"]),
                         int(data["pid"]), str(data["host"]), float(data["until"]),
                         str(data["token"]), head if isinstance(head, str) else None)
        except (ValueError, TypeError, KeyError, RecursionError):
            return None
        return holder

    def renewed(self, ttl: float) -> Holder:
        return Holder(self.user, self.ai, self.branch, self.pid, self.host, time.time() + ttl,
                      self.token, self.head)

    @property
    def asking(self) -> str:
        """What a waiting prompt shows: "alice is asking apollo"."""
        return f"{self.user} is asking {self.ai}"

    @property
    def answered(self) -> str:
        """What `--who` shows: "being answered: apollo for alice on main"."""
        return f"being answered: {self.ai} for {self.user} on {self.branch}"


class RedisFloor:
    def __init__(self, store):
        self.store = store
        client = store.client
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def _key(self, sid: str, branch: str) -> str:
        return self.store.session_key(sid, f"floor:{branch}")

    def take(self, sid: str, holder: Holder, ttl: float) -> Holder | None:
        """Take the floor for ``holder``; None when taken, else who holds it."""
        key = self._key(sid, holder.branch)
        with self.store.connection.guard("take the floor of a branch"):
            for _ in range(20):
                if self.store.client.set(key, holder.dump(), px=max(1, int(ttl * 1000)),
                                         nx=True):
                    return None
                raw = self.store.client.get(key)
                current = Holder.load(raw)
                if current is not None:
                    return current
                if raw is not None:  # not a holder at all: no lease, so no reason to wait
                    self._release(keys=[key], args=[raw])
        raise StorageError(f"the floor of branch {holder.branch} of session {sid} keeps "
                           "changing hands; try again")

    def renew(self, sid: str, holder: Holder, ttl: float) -> bool:
        with self.store.connection.guard("renew the floor of a branch"):
            return bool(self._renew(keys=[self._key(sid, holder.branch)],
                                    args=[holder.dump(), max(1, int(ttl * 1000))]))

    def release(self, sid: str, holder: Holder) -> list[str]:
        """Free the floor ``holder`` holds; returns the notes others left it (`note_passed`)."""
        with self.store.connection.guard("free the floor of a branch"):
            self._release(keys=[self._key(sid, holder.branch)], args=[holder.dump()])
        return self._passed(sid, holder)

    def _passed_key(self, sid: str, holder: Holder) -> str:
        # Not under floor:*, which `holders` reads as leases.
        return self.store.session_key(sid, f"passed:{holder.token}")

    def note_passed(self, sid: str, holder: Holder, text: str) -> None:
        key = self._passed_key(sid, holder)
        with self.store.connection.guard("tell the holder of a floor"):
            pipe = self.store.client.pipeline(transaction=False)
            pipe.rpush(key, text)
            pipe.pexpire(key, int(max(holder.until - time.time(), 0) * 1000) + _NOTE_MS)
            pipe.execute()

    def _passed(self, sid: str, holder: Holder) -> list[str]:
        key = self._passed_key(sid, holder)
        with self.store.connection.guard("read what happened while a floor was held"):
            pipe = self.store.client.pipeline(transaction=True)
            pipe.lrange(key, 0, _NOTES - 1)
            pipe.delete(key)
            found, _ = pipe.execute()
        return [_text(item) for item in found]

    def holders(self, sid: str) -> list[Holder]:
        pattern = self._key(sid, "*")
        with self.store.connection.guard("read the floors of a session"):
            keys = sorted(self.store.session_scan(sid, pattern))
            found = [Holder.load(self.store.client.get(key)) for key in keys]
        return [holder for holder in found if holder is not None]


class FileFloor:
    def __init__(self, store):
        self.store = store

    def _folder(self, create: bool):
        from pathlib import Path

        return self.store.private_dir(".floors") if create else Path(self.store.root) / ".floors"

    def _path(self, sid: str, branch: str, create: bool = True):
        return self._folder(create) / f"{sid}.{branch}.json"

    def _read(self, path) -> Holder | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            return Holder.load(f.read(4096))

    def _write(self, path, holder: Holder) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(holder.dump())
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):  # a full disk leaves no half-written lease
                os.unlink(tmp)
            raise

    def take(self, sid: str, holder: Holder, ttl: float) -> Holder | None:
        with self.store.session_lock(sid):
            path = self._path(sid, holder.branch)
            self.sweep(sid)
            # A holder killed mid-reply left its streamed pieces too: followers see it end.
            from aish.follow import live_dir, sweep_live

            sweep_live(live_dir(self.store), sid)
            current = self._read(path)
            if current is not None and not stale(current):
                return current
            self._write(path, holder)
        return None

    def sweep(self, sid: str) -> list[str]:
        """Remove the leases of ``sid`` nobody holds any more (their holders killed or
        expired) and the half-written ones of processes gone, under the session's lock held
        by the caller; a live holder's lease is never touched. Returns the names removed."""
        folder = self._folder(create=False)
        try:
            names = os.listdir(folder)
        except OSError:
            return []
        removed: list[str] = []
        passed: list[str] = []
        for name in names:
            if name.startswith(f"{sid}.") and name.endswith(".json"):
                holder = self._read(folder / name)
                # Ids hold dots too: "a.b.main.json" is session a.b's, never a's "b.main".
                gone = holder is not None and f"{sid}.{holder.branch}.json" == name \
                    and stale(holder)
            elif name.startswith(f".{sid}.") and name.endswith(".tmp"):
                pid = name[:-4].rpartition(".")[2]
                gone = pid.isdigit() and not _alive(int(pid))
            elif name.startswith(f"{sid}.") and name.endswith(".passed"):
                if _is_token(name[len(sid) + 1:-7]):  # never session a.b's note as a's
                    passed.append(name)
                continue
            else:
                continue
            if gone:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(folder / name)
                    removed.append(name)
        if passed:  # what was meant for a holder that is gone: nobody to tell any more
            tokens = {h.token for h in self.holders(sid)}
            for name in passed:
                if name[len(sid) + 1:-7] not in tokens:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(folder / name)
                        removed.append(name)
        return removed

    def renew(self, sid: str, holder: Holder, ttl: float) -> bool:
        path = self._path(sid, holder.branch, create=False)
        with self.store.session_lock(sid):
            current = self._read(path)
            if current is None or current.token != holder.token:
                return False
            self._write(path, current.renewed(ttl))
        return True

    def release(self, sid: str, holder: Holder) -> list[str]:
        """Free the floor ``holder`` holds; returns the notes others left it (`note_passed`),
        read under the same lock, while the lease still keeps them from a sweep."""
        path = self._path(sid, holder.branch, create=False)
        with self.store.session_lock(sid):
            notes = self._passed(sid, holder)
            current = self._read(path)
            if current is not None and current.token == holder.token:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        return notes

    def _passed_path(self, sid: str, holder: Holder, create: bool = False):
        return self._folder(create) / f"{sid}.{holder.token}.passed"

    def note_passed(self, sid: str, holder: Holder, text: str) -> None:
        with self.store.session_lock(sid):
            fd = os.open(self._passed_path(sid, holder, create=True),
                         os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as f:
                f.write(json.dumps(text) + "\n")

    def _passed(self, sid: str, holder: Holder) -> list[str]:
        """The notes left for ``holder``, removed as they are read (the caller holds the
        session's lock)."""
        path = self._passed_path(sid, holder)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return []
        with os.fdopen(fd, "rb") as f:
            raw = f.read(1 << 16)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        found = []
        for line in raw.splitlines()[:_NOTES]:
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                text = json.loads(line)
                if isinstance(text, str):
                    found.append(text)
        return found

    def holders(self, sid: str) -> list[Holder]:
        folder = self._folder(create=False)
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            return []
        found = []
        start = f"{sid}."
        for name in names:
            branch = name[len(start):-5]
            if name.startswith(start) and name.endswith(".json") and ID_PATTERN.fullmatch(branch):
                holder = self._read(folder / name)
                # Ids hold dots too: "a.b.main.json" is session a.b's, never a's "b.main".
                if holder is not None and holder.branch == branch and not stale(holder):
                    found.append(holder)
        return found


def stale(holder: Holder, now: float | None = None) -> bool:
    """A file lease nobody holds any more: expired, or its process is gone on this host."""
    if (time.time() if now is None else now) > holder.until:
        return True
    if holder.host != socket.gethostname():
        return False  # another machine's process: only its expiry tells
    return not _alive(holder.pid)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except (OverflowError, ValueError):
        return False
    return True


def floor_for(store) -> RedisFloor | FileFloor:
    if hasattr(store, "session_key"):
        return RedisFloor(store)
    return FileFloor(store)


class Lease:
    """A floor held by this process, renewed every third of its ttl until released."""

    def __init__(self, floor, sid: str, holder: Holder, ttl: float):
        self.floor, self.sid, self.holder, self.ttl = floor, sid, holder, ttl
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="aish-floor", daemon=True)
        self._thread.start()

    def _keep(self) -> None:
        while not self._done.wait(self.ttl / 3):
            try:
                if not self.floor.renew(self.sid, self.holder, self.ttl):
                    return  # lost (expired and taken): the reply goes on; CAS keeps it safe
            except Exception:  # noqa: BLE001 - a store that hiccups: the next renewal tries
                continue

    def release(self) -> list[str]:
        """Free the floor; returns what others were told while it was held (their prompts
        that went on branches of their own), for this holder to be told too."""
        self._done.set()
        self._thread.join(timeout=5)
        try:
            return self.floor.release(self.sid, self.holder)
        except Exception:  # noqa: BLE001 - an unreachable store: the lease expires
            return []


def tell_holder(floor, sid: str, holder: Holder, branch: str) -> None:
    """Let ``holder`` know, once its reply is done, that a prompt waiting for its floor went
    on ``branch`` instead (both writers then know what happened to the turn)."""
    text = (f"{_user()}'s prompt did not wait for this reply on branch {holder.branch} of "
            f"session {sid}; it went on branch {branch}")
    with contextlib.suppress(Exception):  # only a notice is lost
        floor.note_passed(sid, holder, text)


def acquire(floor, sid: str, ai: str, branch: str, ttl: float, wait: float | None,
            on_wait: Callable[[Holder], None], head: Callable[[], str | None] = lambda: None,
            clock: Callable[[], float] = time.monotonic,
            pause: Callable[[float], None] = time.sleep) -> Lease | Holder:
    """The floor of ``branch``, waited for up to ``wait`` seconds (None: as long as it takes);
    ``on_wait`` hears of each holder waited for; ``head()`` is the branch's head now. Returns
    the lease, or the holder still there when the wait ran out."""
    deadline = None if wait is None else clock() + wait
    told: str | None = None
    delay = 0.05
    while True:
        holder = Holder.me(ai, branch, ttl, head())
        current = floor.take(sid, holder, ttl)
        if current is None:
            return Lease(floor, sid, holder, ttl)
        if current.token != told:
            told = current.token
            on_wait(current)
        if deadline is not None and clock() >= deadline:
            return current
        left = 0.5 if deadline is None else max(0.0, deadline - clock())
        pause(min(delay, left))
        delay = min(delay * 2, 0.5)


def being_answered(sessions, sid: str) -> list[str]:
    """Who is being answered on ``sid`` now, one line per busy branch ("being answered:
    apollo for alice on main"), for reports of who is in a session."""
    return [holder.answered for holder in sessions.floor_holders(sid)]
