"""The file store: one append-only JSON-lines log per session, safe for concurrent processes.

Design (see shared/notes/storage.md): an exclusive ``flock`` on a lock file that is never
replaced serialises writers; appends use O_APPEND and are fsynced before success is reported;
a torn tail left by a killed writer is cut (and kept aside in backup/) by the next writer and
ignored by readers; rewrites go through a temp file, ``os.replace`` and a directory fsync.
A small ``.idx`` summary beside each log makes listing and sharing checks cheap; it is a cache,
checked against the log's size and rebuilt whenever it does not match.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from aish.errors import ConfigError, LimitError, SessionExists, SessionNotFound, StorageError
from aish.ids import ID_PATTERN, check_id
from aish.messages import Message
from aish.store.base import (
    FORMAT_VERSION,
    Loaded,
    PlainCodec,
    Problem,
    Summary,
    dump_line,
    fold_records,
    is_count,
    open_doc,
    parse_line,
    seal_doc,
)

DOC_KINDS = ("templates", "checkpoints")
CRYPTO_FILE = ".crypto.json"  # salt and key check of an encrypted store (aish.store.crypto)
_BLOCK = 64 * 1024


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _checksum(summary) -> str:
    """A digest of a cached summary: a flipped byte or a changed value makes the cache a miss
    (a damaged value may still have a plausible type)."""
    text = json.dumps(summary, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _guarded(method):
    @functools.wraps(method)
    def call(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except OSError as exc:  # EACCES, ENOTDIR, EROFS, EIO, ... on any path of the store
            where = exc.filename or "the session store"
            raise StorageError(f"cannot access {where}: {exc.strerror or exc}") from None
    return call


def _os_errors_as_storage_errors(cls):
    """Every public operation reports an OS error as one StorageError line naming the path and
    the cause (a directory owned by another user, a path that is a file, ...), never a
    traceback."""
    for name, member in list(vars(cls).items()):
        if callable(member) and (name == "__init__" or not name.startswith("_")):
            setattr(cls, name, _guarded(member))
    return cls


@_os_errors_as_storage_errors
class FileStore:
    def __init__(self, root: Path, codec=None, max_session_bytes: int = 64 * 1024 * 1024):
        self.root = Path(root)
        self.codec = codec or PlainCodec()
        self.max_session_bytes = max_session_bytes
        if codec is None and (self.root / CRYPTO_FILE).exists():
            raise ConfigError(f"the sessions in {self.root} are encrypted",
                              hint="set sessions.storage.encrypt: true and provide the key")

    # -- paths ---------------------------------------------------------------------------
    def _dir(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {path}: {exc.strerror}") from None
        return path

    def _log(self, sid: str) -> Path:
        return self.root / f"{check_id(sid)}.jsonl"

    def _idx(self, sid: str) -> Path:
        return self.root / f".{check_id(sid)}.idx"

    def location(self, sid: str) -> str:
        return str(self._log(sid))

    @contextlib.contextmanager
    def _locked(self, sid: str, exclusive: bool):
        if not exclusive:
            with self._read_locked(sid):
                yield
            return
        lock = self._dir(".locks") / f"{check_id(sid)}.lock"
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot open lock {lock}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _read_locked(self, sid: str):
        """A shared lock on the existing lock file, opened read-only; without one (a read-only
        store, a copy without .locks) read unlocked: appends never expose a partial line to a
        reader that ignores a torn tail, and rewrites replace the log in one rename."""
        lock = self.root / ".locks" / f"{check_id(sid)}.lock"
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    # -- reading -------------------------------------------------------------------------
    def exists(self, sid: str) -> bool:
        return self._log(sid).exists()

    def ids(self) -> list[str]:
        # os.listdir, unlike glob, reports a directory it may not read (or a path that is a
        # file) instead of listing nothing; only a store not created yet holds no session.
        try:
            listed = os.listdir(self.root)
        except FileNotFoundError:
            return []
        # A stray file whose name is no valid id is not a session (and must not break listing).
        names = (n[:-6] for n in listed if n.endswith(".jsonl"))
        return sorted(n for n in names if ID_PATTERN.fullmatch(n) and ".." not in n)

    def _read_bytes(self, sid: str) -> bytes:
        try:
            fd = os.open(self._log(sid), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise SessionNotFound(f"session {sid} not found") from None
        except OSError as exc:
            raise StorageError(f"cannot read session {sid} ({self._log(sid)}): {exc.strerror}"
                               ) from None
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def raw_lines(self, sid: str) -> list[str]:
        """The log's lines as text (undecoded bytes replaced), torn tail included, for validate."""
        with self._locked(sid, exclusive=False):
            data = self._read_bytes(sid)
        return data.decode("utf-8", "replace").split("\n")

    def _parse(self, data: bytes) -> tuple[list[tuple[int, dict]], list[Problem], list[str]]:
        lines = data.split(b"\n")
        problems: list[Problem] = []
        bad: list[str] = []
        if lines and lines[-1]:
            problems.append(Problem(len(lines), "torn tail", "last line has no newline"))
            bad.append(lines[-1].decode("utf-8", "replace"))
        records = []
        for number, raw in enumerate(lines[:-1], start=1):
            if not raw.strip():
                continue
            try:
                record = parse_line(raw.decode("utf-8"))
                if record["t"] == "msg":
                    record = self.codec.open(record)
            except UnicodeDecodeError:
                problems.append(Problem(number, "bad record", "not UTF-8"))
                bad.append(raw.decode("utf-8", "replace"))
                continue
            except ValueError as exc:
                problems.append(Problem(number, "bad record", str(exc)))
                bad.append(raw.decode("utf-8", "replace"))
                continue
            records.append((number, record))
        return records, problems, bad

    def load(self, sid: str) -> Loaded:
        with self._locked(sid, exclusive=False):
            data = self._read_bytes(sid)
            ino = os.stat(self._log(sid)).st_ino
        records, problems, bad = self._parse(data)
        loaded = fold_records(records, problems)
        loaded.raw_bad = bad
        loaded.mark = (ino, data.rfind(b"\n") + 1)  # the log file and its complete part read
        return loaded

    def tail(self, sid: str, pairs: int) -> list[Message]:
        """The last ``pairs`` user messages and everything after them, read from the end.

        Reading backwards keeps the cost of a new message independent of the session's length.
        """
        if pairs <= 0:
            return self.load(sid).messages
        out: list[Message] = []
        users = 0
        with self._locked(sid, exclusive=False):
            try:
                f = open(self._log(sid), "rb")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                raise SessionNotFound(f"session {sid} not found") from None
            with f:
                pos = f.seek(0, os.SEEK_END)
                carry = b""
                first = True
                while pos > 0 and users < pairs:
                    size = min(_BLOCK, pos)
                    pos -= size
                    f.seek(pos)
                    lines = (f.read(size) + carry).split(b"\n")
                    carry = lines.pop(0) if pos > 0 else b""
                    if first and lines:
                        lines.pop()  # b"" after the final newline, or a torn tail to ignore
                        first = False
                    # (no lines: this block lies inside a long torn tail, now in ``carry``)
                    for raw in reversed(lines):
                        message = self._message(raw)
                        if message is None:
                            continue
                        out.append(message)
                        if message.role == "user":
                            users += 1
                            if users == pairs:
                                break
        out.reverse()
        return out

    def _message(self, raw: bytes) -> Message | None:
        if not raw.strip():
            return None
        try:
            record = parse_line(raw.decode("utf-8"))
            if record["t"] != "msg":
                return None
            return Message.from_record(self.codec.open(record))
        except (UnicodeDecodeError, ValueError, KeyError, TypeError, OverflowError):
            return None

    def summary(self, sid: str) -> Summary:
        log = self._log(sid)
        try:
            size = log.stat().st_size
        except FileNotFoundError:
            raise SessionNotFound(f"session {sid} not found") from None
        cached = self._read_idx(sid, size)
        if cached is not None:
            return cached
        with self._locked(sid, exclusive=False):
            return self._rebuild_idx(sid)

    def summaries(self) -> list[Summary]:
        out = []
        for sid in self.ids():
            try:
                out.append(self.summary(sid))
            except SessionNotFound:  # removed while we listed
                continue
        return out

    def _read_idx(self, sid: str, size: int) -> Summary | None:
        try:
            data = json.loads(self._idx(sid).read_text(encoding="utf-8"))
            if (isinstance(data, dict) and is_count(data.get("size")) and data["size"] == size
                    and data.get("v") == FORMAT_VERSION
                    and data.get("check") == _checksum(data.get("summary"))):
                summary = Summary.from_json(data.get("summary"))
                if summary.meta["id"] == sid:
                    return summary
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            pass
        return None  # missing, stale or damaged: the caller rebuilds it from the log

    def _rebuild_idx(self, sid: str) -> Summary:
        data = self._read_bytes(sid)
        complete = data[: data.rfind(b"\n") + 1]
        summary = Summary()
        for raw in complete.split(b"\n"):
            if not raw.strip():
                continue
            try:
                summary.fold(parse_line(raw.decode("utf-8")))
            except (UnicodeDecodeError, ValueError):
                continue
        # The file holding the log names the session, whatever a damaged header says (which
        # --validate-session reports); appends through this summary go to that file.
        summary.meta["id"] = sid
        self._write_idx(sid, len(complete), summary)
        return summary

    def _write_idx(self, sid: str, size: int, summary: Summary) -> None:
        content = summary.to_json()
        payload = json.dumps({"v": FORMAT_VERSION, "size": size, "summary": content,
                              "check": _checksum(content)})
        try:
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".idx-")
        except OSError:
            return  # the index is only a cache; the next reader rebuilds it
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(payload)
            os.replace(tmp, self._idx(sid))
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # a full disk must not keep a half-written cache around

    # -- writing -------------------------------------------------------------------------
    def _encode(self, records: list[dict]) -> bytes:
        return b"".join(
            dump_line(self.codec.seal(r) if r.get("t") == "msg" else r) for r in records
        )

    def create(self, meta: dict, messages: list[Message] = ()) -> Summary:
        sid = check_id(meta["id"])
        self._dir()
        records = [{"t": "meta", "v": FORMAT_VERSION, **meta}] + [m.to_record() for m in messages]
        with self._locked(sid, exclusive=True):
            if self._log(sid).exists():
                raise SessionExists(f"session {sid} already exists")
            self._write_whole(sid, self._encode(records))
            return self._rebuild_idx(sid)

    def append(self, sid: str, records: list[dict]) -> Summary:
        payload = self._encode(records)
        log = self._log(sid)
        with self._locked(sid, exclusive=True):
            try:
                fd = os.open(log, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:
                raise SessionNotFound(f"session {sid} not found") from None
            except OSError as exc:
                raise StorageError(f"cannot open session {sid} ({log}): {exc.strerror}") from None
            try:
                size = os.fstat(fd).st_size
                size = self._cut_torn_tail(sid, fd, size)
                if size + len(payload) > self.max_session_bytes:
                    raise LimitError(
                        f"session {sid} would exceed the session size limit "
                        f"({self.max_session_bytes} bytes)",
                        hint="prune it with aish --prune-session ID --keep-recent N",
                    )
                summary = self._read_idx(sid, size)
                if summary is None:
                    summary = self._rebuild_idx(sid)
                try:
                    _write_all(fd, payload)
                    os.fsync(fd)
                except OSError:
                    # A full disk or an I/O error mid-write: put the log back exactly as it
                    # was, so no torn line makes later rewrites refuse the session.
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, size)
                        os.fsync(fd)
                    raise
            except OSError as exc:
                raise StorageError(f"cannot write session {sid} ({log}): {exc.strerror}") from None
            finally:
                os.close(fd)
            for record in records:
                summary.fold(record)
            self._write_idx(sid, size + len(payload), summary)
            return summary

    def _cut_torn_tail(self, sid: str, fd: int, size: int) -> int:
        """If a killed writer left a line without its newline, keep it aside and cut it off."""
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return size
        start = max(0, size - _BLOCK)
        while True:
            chunk = os.pread(fd, size - start, start)
            cut = chunk.rfind(b"\n")
            if cut >= 0 or start == 0:
                keep = start + cut + 1 if cut >= 0 else 0
                break
            start = max(0, start - _BLOCK)
        torn = os.pread(fd, size - keep, keep)
        self._keep_backup(sid, "torn", torn)
        os.ftruncate(fd, keep)
        return keep

    def _write_private(self, path: Path, data: bytes, exclusive: bool = False) -> None:
        """Write ``path`` whole or not at all (temp file, fsync, rename, directory fsync).

        ``exclusive``: fail with FileExistsError instead of replacing an existing file.
        """
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            os.fchmod(fd, 0o600)
            _write_all(fd, data)
            os.fsync(fd)
            os.close(fd)
            fd = -1
            if exclusive:
                os.link(tmp, path)  # atomic, and refuses to replace
                os.unlink(tmp)
            else:
                os.replace(tmp, path)
            _fsync_dir(path.parent)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _write_whole(self, sid: str, data: bytes) -> None:
        try:
            self._write_private(self._log(sid), data)
        except OSError as exc:
            raise StorageError(f"cannot write session {sid} ({self._log(sid)}): "
                               f"{exc.strerror}") from None

    def replace(self, sid: str, meta: dict, messages: list[Message],
                since: object = None) -> Summary:
        """Rewrite the log as ``meta`` + ``messages``.

        ``since`` is the ``mark`` of the load the new content was computed from: records other
        processes appended after that load are kept, after the new content; if the log was
        itself rewritten since, StorageError asks for a new attempt and nothing changes. Without
        ``since`` the content is replaced exactly as given.
        """
        meta = {k: v for k, v in meta.items() if k not in ("t", "v")}
        records = [{"t": "meta", "v": FORMAT_VERSION, **meta, "id": sid}]
        records += [m.to_record() for m in messages]
        with self._locked(sid, exclusive=True):
            payload = self._encode(records)
            if since is not None:
                payload += self._appended_since(sid, since)
            self._write_whole(sid, payload)
            return self._rebuild_idx(sid)

    def _appended_since(self, sid: str, since: object) -> bytes:
        """The complete lines appended to the log after ``since`` (a ``Loaded.mark``)."""
        try:
            ino, offset = since  # type: ignore[misc]
            if os.stat(self._log(sid)).st_ino != ino:
                raise StorageError(f"session {sid} was rewritten by another process meanwhile",
                                   hint="run the command again")
            data = self._read_bytes(sid)
        except FileNotFoundError:
            return b""
        except (TypeError, ValueError):
            raise ValueError(f"not a mark of this store: {since!r}") from None
        return data[offset: data.rfind(b"\n") + 1] if len(data) > offset else b""

    def delete(self, sid: str) -> None:
        with self._locked(sid, exclusive=True):
            for path in (self._log(sid), self._idx(sid)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        with contextlib.suppress(OSError):
            _fsync_dir(self.root)

    def remove(self, sid: str, reason: str) -> str:
        """Back up and delete under one exclusive lock, so nothing appended in between is lost;
        returns the backup's location."""
        with self._locked(sid, exclusive=True):
            backup = self._keep_backup(sid, reason, self._read_bytes(sid))
            for path in (self._log(sid), self._idx(sid)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        with contextlib.suppress(OSError):
            _fsync_dir(self.root)
        return str(backup)

    def backup(self, sid: str, reason: str) -> str:
        with self._locked(sid, exclusive=False):
            data = self._read_bytes(sid)
        return str(self._keep_backup(sid, reason, data))

    def _keep_backup(self, sid: str, reason: str, data: bytes) -> Path:
        """Write a new backup file; never replaces one (two in the same second get -2, -3)."""
        stamp = time.strftime("%Y%m%dT%H%M%S")
        folder = self._dir("backup")
        n = 1
        while True:
            suffix = "" if n == 1 else f"-{n}"
            path = folder / f"{sid}-{stamp}-{reason}{suffix}.jsonl"
            try:
                self._write_private(path, data, exclusive=True)
                return path
            except FileExistsError:
                n += 1

    def backups(self, sid: str) -> list[str]:
        """Locations of the session's backups (torn-tail fragments included), oldest first."""
        prefix = check_id(sid) + "-"
        folder = self.root / "backup"
        found = []
        for path in folder.glob(f"{sid}-*.jsonl") if folder.is_dir() else ():
            stamp = path.name[len(prefix):].split("-", 1)[0]
            if len(stamp) == 15 and stamp[8] == "T" and (stamp[:8] + stamp[9:]).isdigit():
                with contextlib.suppress(OSError):
                    found.append((stamp, path.stat().st_mtime_ns, str(path)))
        return [location for *_, location in sorted(found)]

    def read_backup(self, location: str) -> bytes | None:
        """A backup's content (JSON lines) from what `backup` returned, or None if it is none."""
        path = Path(location)
        try:
            if path.parent.resolve() != (self.root / "backup").resolve():
                return None
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            return f.read(self.max_session_bytes + 1)

    # -- named documents: templates and checkpoints --------------------------------------
    def _doc_path(self, kind: str, name: str) -> Path:
        if kind not in DOC_KINDS:
            raise ValueError(kind)
        parts = [check_id(p, "name") for p in name.split("/")]
        return self._dir(kind, *parts[:-1]) / f"{parts[-1]}.json"

    def put_doc(self, kind: str, name: str, data: dict) -> str:
        path = self._doc_path(kind, name)
        data = seal_doc(self.codec, data)  # a template's messages are as private as a session's
        # ASCII JSON: a lone surrogate in a message (possible from a model) cannot break it.
        self._write_private(path, json.dumps(data, indent=2).encode())
        return str(path)

    def get_doc(self, kind: str, name: str) -> dict | None:
        try:
            data = json.loads(self._doc_path(kind, name).read_text(encoding="utf-8"))
            return open_doc(self.codec, data) if isinstance(data, dict) else data
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as exc:
            raise StorageError(f"{kind[:-1]} {name} is unreadable: {exc}") from None

    def list_docs(self, kind: str) -> list[str]:
        folder = self.root / kind
        if not folder.is_dir():
            return []
        # A stray file with a hostile name (escape sequences, ...) is not a document of ours.
        return sorted(p.stem for p in folder.glob("*.json") if ID_PATTERN.fullmatch(p.stem))
