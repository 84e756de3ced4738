"""The file store: one append-only JSON-lines log per session, safe for concurrent processes.

Design (docs/storage.md): an exclusive ``flock`` on a lock file that is never
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
import json
import os
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from aish.errors import ConfigError, LimitError, SessionExists, SessionNotFound, StorageError
from aish.ids import ID_PATTERN, check_id
from aish.messages import Message
from aish.store import listcache
from aish.store.base import (
    FORMAT_VERSION,
    TOMBSTONE_SECONDS,
    Loaded,
    PlainCodec,
    Problem,
    Summary,
    UnusableLog,
    dump_line,
    find_message,
    fold_records,
    follow_alias,
    is_count,
    merge_tombstones,
    open_doc,
    parse_aliases,
    parse_line,
    parse_tombstone,
    rewrite_records,
    seal_doc,
    walk,
)
from aish.store.listcache import Row
from aish.store.refs import MAIN, Head

DOC_KINDS = ("templates", "checkpoints")
# Every directory aish writes in below the store's root; each must be a real one of the user's.
SUBDIRS = ("backup", *DOC_KINDS, ".locks", "tombstones")
ALIASES_FILE = "aliases.json"  # former id -> new id, written by renames
ALIASES_LOCK = ".aliases.lock"  # no session id starts with a dot: never a session's lock
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
    return _sha256(text.encode("utf-8", "surrogatepass"))


def _sha256(data: bytes) -> str:
    # Python's own SHA-256 where it has one: hashlib loads OpenSSL first, which costs a
    # listing more than reading every cache it checks. The digests are the same.
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found, no-redef]
        except ImportError:
            from hashlib import sha256  # type: ignore[assignment]
    return sha256(data).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and any missing parents 0700 whatever the umask (mkdir's mode is masked)."""
    missing = []
    while not os.path.lexists(path):
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            continue  # made by another process meanwhile; checked by the caller
        except OSError as exc:
            raise StorageError(f"cannot create {folder}: {exc.strerror}") from None
        with contextlib.suppress(OSError):
            os.chmod(folder, 0o700)


def _read_regular(path: str | Path, limit: int) -> bytes:
    """A small file's bytes, never through a link nor from a device or pipe (which could block
    or never end); OSError otherwise, FileNotFoundError when it is missing."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        return f.read(limit)


def _fix_mode(path: Path, mode: int) -> bool:
    """Set the mode of ``path`` if it is a real file or directory of this user (a link is left
    alone, never followed); True when it changed."""
    try:
        st = os.lstat(path)
        if (stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid()
                or stat.S_IMODE(st.st_mode) == mode):
            return False
        os.chmod(path, mode)
        return True
    except OSError:
        return False


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
    def __init__(self, root: Path, codec=None, max_session_bytes: int = 64 * 1024 * 1024,
                 warn: Callable[[str], None] | None = None):
        self.root = Path(root)
        self.codec = codec or PlainCodec()
        self.max_session_bytes = max_session_bytes
        # Where warnings about the store go (the command's output); kept in ``warnings`` too.
        self.warn = warn
        self.warnings: list[str] = []
        self._warned: set[str] = set()
        self._root_checked = False
        if codec is None and (self.root / CRYPTO_FILE).exists():
            raise ConfigError(f"the sessions in {self.root} are encrypted",
                              hint="set sessions.storage.encrypt: true and provide the key")

    # -- warnings about the store itself (once per path and command) -------------------------
    def _warn_once(self, key: str, text: str) -> None:
        if key in self._warned:
            return
        self._warned.add(key)
        self.warnings.append(text)
        if self.warn is not None:
            self.warn(text)

    def _check_loose(self, path: Path, st: os.stat_result, is_dir: bool) -> None:
        mode = stat.S_IMODE(st.st_mode)
        if is_dir and mode & 0o022:
            what = "writable by others"
        elif not is_dir and mode & 0o077:
            what = "readable by others"
        else:
            return
        self._warn_once(str(path), f"{path} is {what} (mode {mode:04o}); "
                        "fix it with aish --repair-session ID")

    def _check_root(self) -> None:
        """Warn once about a store root others may write in (the root itself may be a link)."""
        if self._root_checked:
            return
        self._root_checked = True
        with contextlib.suppress(OSError):
            self._check_loose(self.root, os.stat(self.root), is_dir=True)

    # -- paths ---------------------------------------------------------------------------
    def private_dir(self, *parts: str) -> Path:
        """A folder of the store for others to write in (e.g. recovery files), checked as ours."""
        return self._dir(*parts)

    def _dir(self, *parts: str) -> Path:
        """The directory ``root/parts...``, created 0700; refused unless each part below the
        root is a real directory of this user, so that nothing is written through a link."""
        if not self.root.is_dir():
            make_private_dirs(self.root)
            if not self.root.is_dir():
                raise StorageError(f"cannot use {self.root}: it is not a directory")
        self._check_root()
        path = self.root
        for part in parts:
            path = path / part
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                make_private_dirs(path)
                st = os.lstat(path)
            except OSError as exc:
                raise StorageError(f"cannot use {path}: {exc.strerror}") from None
            self._check_own_dir(path, st)
        return path

    def _check_own_dir(self, path: Path, st: os.stat_result) -> None:
        if stat.S_ISLNK(st.st_mode):
            problem = "is a symbolic link"
        elif not stat.S_ISDIR(st.st_mode):
            problem = "is not a directory"
        elif st.st_uid != os.geteuid():
            problem = "belongs to another user"
        else:
            self._check_loose(path, st, is_dir=True)
            return
        raise StorageError(f"{path} {problem}; aish writes only in its own directories",
                           hint=f"move it away; aish recreates {path.name}/ itself")

    def _log(self, sid: str) -> Path:
        return self.root / f"{check_id(sid)}.jsonl"

    def _idx(self, sid: str) -> Path:
        return self.root / f".{check_id(sid)}.idx"

    def _caches(self, sid: str) -> tuple[Path, ...]:
        """What is kept beside the log, all derived from it: the summary, skeleton, tally."""
        from aish.store import tallycache

        return self._idx(sid), self._skel(sid), tallycache.path_for(self.root, check_id(sid))

    def _skel(self, sid: str) -> Path:
        from aish.store import skeleton  # drawing trees and writes: listing never needs it

        return skeleton.path_for(self.root, check_id(sid))

    def location(self, sid: str) -> str:
        return str(self._log(sid))

    def session_lock(self, sid: str):
        """The session's exclusive lock, for what must change together with its log (the
        floor lease of a branch)."""
        return self._locked(sid, exclusive=True)

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
        return os.path.lexists(self._log(sid))

    def ids(self) -> list[str]:
        # os.listdir, unlike glob, reports a directory it may not read (or a path that is a
        # file) instead of listing nothing; only a store not created yet holds no session.
        try:
            listed = os.listdir(self.root)
        except FileNotFoundError:
            return []
        self._check_root()
        found = []
        for name in listed:
            if not name.endswith(".jsonl"):
                continue
            sid = name[:-6]
            path = self.root / name
            # A stray file whose name is no valid id is not a session (and must not break listing).
            if not ID_PATTERN.fullmatch(sid) or ".." in sid:
                continue
            try:
                st = os.lstat(path)
            except FileNotFoundError:  # removed while we listed
                continue
            if not stat.S_ISREG(st.st_mode):
                # One link or odd file must not break every store-wide command: skip it, say so.
                self.skip(sid, self._unusable(sid, st).args[0])
                continue
            self._check_loose(path, st, is_dir=False)
            found.append(sid)
        return sorted(found)

    def dir_stamp(self) -> tuple[str, float] | None:
        """The sessions directory's change token and modification time: every write aish makes
        replaces a summary file in it, so an unchanged token means no session changed."""
        try:
            st = os.stat(self.root)
        except OSError:
            return None
        return f"{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}", st.st_mtime

    def stamps(self) -> dict[str, str]:
        """Each session's log size, change time and inode: a token that changes with every
        append or rewrite, read for the whole store from one directory scan (the search
        index compares them to find the sessions to catch up)."""
        out: dict[str, str] = {}
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return out
        for entry in entries:
            sid = entry.name[:-6]
            if not entry.name.endswith(".jsonl") or not ID_PATTERN.fullmatch(sid) or ".." in sid:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                out[sid] = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
            else:  # left out, and said so, as every store-wide command does
                self.skip(sid, self._unusable(sid, st).args[0])
        return out

    def skip(self, sid: str, reason: str) -> None:
        """Warn (once) that a store-wide command leaves this session out."""
        self._warn_once(f"skip:{sid}", f"skipping session {sid}: {reason}")

    def _unusable(self, sid: str, st: os.stat_result | None = None) -> UnusableLog:
        log = self._log(sid)
        if st is None:
            try:
                st = os.lstat(log)
            except OSError as exc:
                return UnusableLog(f"cannot read {log}: {exc.strerror}")
        kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
        return UnusableLog(f"{log} is {kind}; aish does not read or write through it",
                           hint="replace it with the session's real log file")

    def _read_bytes(self, sid: str) -> bytes:
        with os.fdopen(self._open_log(sid), "rb") as f:
            return f.read()

    def _open_log(self, sid: str) -> int:
        """The log opened for reading, never through a link; warns once if others may read it."""
        log = self._log(sid)
        try:
            fd = os.open(log, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            raise SessionNotFound(f"session {sid} not found") from None
        except OSError as exc:
            if not os.path.islink(log):
                # Not the log's own shape but access to it (permissions, a path that is a
                # file): a storage failure, which store-wide commands skip with a warning.
                raise StorageError(f"cannot read {log}: {exc.strerror}",
                                   hint="check the permissions of the session dir") from None
            raise self._unusable(sid) from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise self._unusable(sid, st)
        os.set_blocking(fd, True)
        self._check_root()
        self._check_loose(log, st, is_dir=False)
        return fd

    def raw_lines(self, sid: str) -> list[str]:
        """The log's lines as text (undecoded bytes replaced), torn tail included, for validate."""
        with self._locked(sid, exclusive=False):
            data = self._read_bytes(sid)
        return data.decode("utf-8", "replace").split("\n")

    def _parse(self, data: bytes, offsets: dict[int, int] | None = None
               ) -> tuple[list[tuple[int, dict]], list[Problem], list[str]]:
        """Records with their line numbers; ``offsets`` is filled with each line's offset."""
        lines = data.split(b"\n")
        problems: list[Problem] = []
        bad: list[str] = []
        if lines and lines[-1]:
            problems.append(Problem(len(lines), "torn tail", "last line has no newline"))
            bad.append(lines[-1].decode("utf-8", "replace"))
        records = []
        offset = 0
        for number, raw in enumerate(lines[:-1], start=1):
            if offsets is not None:
                offsets[number] = offset
            offset += len(raw) + 1
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
            ino = os.lstat(self._log(sid)).st_ino
        offsets: dict[int, int] = {}
        records, problems, bad = self._parse(data, offsets)
        loaded = fold_records(records, problems, offsets.get)
        loaded.raw_bad = bad
        loaded.mark = (ino, data.rfind(b"\n") + 1)  # the log file and its complete part read
        return loaded

    def skeleton(self, sid: str) -> Loaded | None:
        """The session as drawing its tree needs it, from the skeleton cache (`aish.store.
        skeleton`): every message with only its first line, heads from the summary. None when
        there is none to read: encryption on, or a damaged log (read it whole)."""
        if not isinstance(self.codec, PlainCodec):
            return None  # first lines are message text: never kept unsealed beside the log
        with self._locked(sid, exclusive=False):
            summary = self.summary(sid)
            from aish.store import skeleton

            with os.fdopen(self._open_log(sid), "rb") as f:
                try:
                    messages = skeleton.covered(self._skel(sid), sid, f)
                except skeleton.Unusable:
                    return None
        return None if messages is None else Loaded(summary.meta, messages, [],
                                                    tree=summary.tree)

    def tallies(self, sid: str):
        """What reports on the session count (`aish.tallies.Counted`), from the tally cache
        brought up to date (`aish.store.tallycache`), else counted from the whole log and the
        cache written anew. None when encryption is on: `load` it."""
        if not isinstance(self.codec, PlainCodec):
            return None
        from aish.store import tallycache
        from aish.tallies import Counted, heads, of_messages

        path = tallycache.path_for(self.root, check_id(sid))
        with self._locked(sid, exclusive=False):
            summary = self.summary(sid)
            with os.fdopen(self._open_log(sid), "rb") as f:
                try:
                    tally = tallycache.covered(path, sid, f, heads(summary.tree),
                                               self.codec.open)
                except StorageError:  # a sealed message: a full read says what is wrong
                    return None
                if tally is not None:
                    return Counted(summary.meta, summary.tree, tally)
                f.seek(0)
                data = f.read()
                offsets: dict[int, int] = {}
                records, problems, _bad = self._parse(data, offsets)
                loaded = fold_records(records, problems, offsets.get)
                tally = of_messages(loaded.messages)
                tally.trim(heads(loaded.tree))  # what a report asks for stays
                # A damaged record is read whole each time: the summary may have moved a
                # branch onto a message that a full read does not take.
                if not any(p.kind in ("bad record", "missing field") for p in problems):
                    tallycache.write(path, sid, os.fstat(f.fileno()).st_ino,
                                     data.rfind(b"\n") + 1, f, tally)
        return Counted(loaded.meta, loaded.tree, tally, loaded.messages)

    def tail(self, sid: str, pairs: int) -> list[Message]:
        """The last ``pairs`` user messages of ``main`` and what follows them (0: all)."""
        return self.path(sid, None, pairs)

    def path(self, sid: str, head: Head | None, pairs: int) -> list[Message]:
        """The path from the root to ``head`` (None: ``main``'s), limited to its last ``pairs``
        user messages and what follows them (0: all), oldest first.

        Walked from the head through parent links, so the cost of a new message does not grow
        with the session's length or its number of branches.
        """
        with self._locked(sid, exclusive=False):
            if head is None:
                head = self.summary(sid).head(MAIN) or Head("")
            f = os.fdopen(self._open_log(sid), "rb")  # noqa: SIM115 - closed below
            with f:
                found = walk(_LogMedium(f), self._message, head, pairs)
        if found is None:  # a hint led nowhere and the scan did not find it: read it all
            loaded = self.load(sid)
            found = loaded.path(head)
            if pairs > 0:
                found = _last_pairs(found, pairs)
        return found

    def message(self, sid: str, head: Head) -> Message | None:
        """The message ``head`` names: one record read where it says, else scanned for."""
        with self._locked(sid, exclusive=False):
            f = os.fdopen(self._open_log(sid), "rb")  # noqa: SIM115 - closed below
            with f:
                return find_message(_LogMedium(f), self._message, head)

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
        try:
            st = os.lstat(self._log(sid))
        except FileNotFoundError:
            raise SessionNotFound(f"session {sid} not found") from None
        except OSError as exc:
            raise StorageError(f"cannot read {self._log(sid)}: {exc.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise self._unusable(sid, st)
        self._check_root()
        self._check_loose(self._log(sid), st, is_dir=False)
        size = st.st_size
        cached = self._read_idx(sid, size)
        if cached is not None:
            return cached
        with self._locked(sid, exclusive=False):
            return self._rebuild_idx(sid)

    def _logs(self) -> Iterator[tuple[str, os.stat_result]]:
        """Each session's id and its log's lstat, by id, from one directory scan (names only
        are kept: a store of thousands of sessions pays for every object per session); a log
        that is a link or not a file is skipped, and said so."""
        try:
            with os.scandir(self.root) as scan:
                names = sorted(e.name for e in scan if e.name.endswith(".jsonl"))
        except FileNotFoundError:
            return
        self._check_root()
        root = os.fspath(self.root)
        for name in names:
            sid = name[:-6]
            if not ID_PATTERN.fullmatch(sid) or ".." in sid:
                continue  # a stray file whose name is no valid id is not a session
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:  # removed while we listed
                continue
            if not stat.S_ISREG(st.st_mode):
                self.skip(sid, self._unusable(sid, st).args[0])
                continue
            if stat.S_IMODE(st.st_mode) & 0o077:
                self._check_loose(Path(path), st, is_dir=False)
            yield sid, st

    def summaries(self) -> list[Summary]:
        """Every session's summary, as ``summary`` gives it for each of ``ids``, in one pass."""
        root = os.fspath(self.root)
        out = []
        for sid, st in self._logs():
            cached = self._read_idx_at(os.path.join(root, f".{sid}.idx"), sid, st.st_size)
            if cached is not None:
                out.append(cached)
            elif (summary := self._summary_or_skip(sid)) is not None:
                out.append(summary)
        return out

    def _summary_or_skip(self, sid: str) -> Summary | None:
        try:
            return self.summary(sid)
        except SessionNotFound:  # removed while we listed
            return None
        except StorageError as exc:  # unreadable: one session must not break listing
            self.skip(sid, str(exc))
            return None

    def list_rows(self) -> list[Row]:
        """What a listing shows of every session, by id: from the list cache where a row's
        key still matches its log, read from the session's summary otherwise (and the cache
        rewritten then)."""
        root = os.fspath(self.root)
        cached = listcache.read(root)
        entries: list[tuple[listcache.Key, Row]] = []
        stale = False
        for sid, st in self._logs():
            entry = cached.pop(sid, None)
            if entry is None or entry[0] != listcache.key_of(st):
                entry = self._row(sid)
                stale = stale or entry is not None  # an unreadable one is not rewritten for
            if entry is not None:
                entries.append(entry)
        if stale or cached:  # a row read again, or one of a session gone
            del cached
            listcache.write(root, entries)
        return [row for _, row in entries]

    def _row(self, sid: str) -> tuple[listcache.Key, Row] | None:
        """A session's listing row with the key of the log it was read from, both taken under
        the session's shared lock: writers change a log and its summary together under the
        exclusive one, so the row is never older than its key."""
        try:
            with self._read_locked(sid):
                key = listcache.key_of(os.lstat(self._log(sid)))
                summary = self.summary(sid)
        except (SessionNotFound, FileNotFoundError):  # removed while we listed
            return None
        except StorageError as exc:  # unreadable: one session must not break listing
            self.skip(sid, str(exc))
            return None
        except OSError as exc:
            self.skip(sid, f"cannot read {self._log(sid)}: {exc.strerror}")
            return None
        return key, Row.of(summary)

    def _read_idx(self, sid: str, size: int) -> Summary | None:
        return self._read_idx_at(self._idx(sid), sid, size)

    def _read_idx_at(self, path: str | Path, sid: str, size: int) -> Summary | None:
        try:
            data = json.loads(_read_regular(path, 1 << 20))
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
        offset = 0
        for raw in complete.split(b"\n"):
            pos, offset = offset, offset + len(raw) + 1
            if not raw.strip():
                continue
            try:
                summary.fold(parse_line(raw.decode("utf-8")), pos)
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
            import tempfile  # writes only: reads never pay for it

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
        return b"".join(self._lines(records))

    def _line(self, record: dict) -> bytes:
        return dump_line(self.codec.seal(record) if record.get("t") == "msg" else record)

    def _lines(self, records: list[dict]) -> list[bytes]:
        return [dump_line(self.codec.seal(r) if r.get("t") == "msg" else r) for r in records]

    def create(self, meta: dict, messages: Sequence[Message] = (),
               refs: dict[str, str] | None = None) -> Summary:
        """A new log holding ``meta``, ``messages`` and the branch heads ``refs``."""
        sid = check_id(meta["id"])
        self._dir()
        rewritten = rewrite_records(sid, meta, messages, refs, self._line, True)
        with self._locked(sid, exclusive=True):
            if os.path.lexists(self._log(sid)):
                raise SessionExists(f"session {sid} already exists")
            self._write_whole(sid, b"".join(line for _, line in rewritten))
            return self._rebuild_idx(sid)

    def append(self, sid: str, records: list[dict]) -> Summary:
        """Append ``records`` whole, or nothing: RefMoved when a ref move among them does not
        start where the ref now is (another writer moved it first).

        A writer that waited for the lock while the session was renamed finds no log under the
        old id: its records go to the session under its new id."""
        try:
            with self._locked(sid, exclusive=True):
                return self._append_locked(sid, records)
        except SessionNotFound:
            target = self.alias(sid)
            if target is None:
                raise
        with self._locked(target, exclusive=True):
            return self._append_locked(target, records)

    def _append_locked(self, sid: str, records: list[dict]) -> Summary:
        lines = self._lines(records)
        payload = b"".join(lines)
        log = self._log(sid)
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
            positions, at = [], size
            for line in lines:
                positions.append(at)
                at += len(line)
            trial = summary.tree.copy()
            for record, pos in zip(records, positions, strict=True):
                trial.fold(record, pos, strict=True)
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
        for record, pos in zip(records, positions, strict=True):
            summary.fold(record, pos)
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
        import tempfile

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
                since: object = None, refs: dict[str, str] | None = None) -> Summary:
        """Rewrite the log as ``meta`` + ``messages``.

        ``since`` is the ``mark`` of the load the new content was computed from: records other
        processes appended after that load are kept, after the new content; if the log was
        itself rewritten since, StorageError asks for a new attempt and nothing changes. Without
        ``since`` the content is replaced exactly as given.
        """
        with self._locked(sid, exclusive=True):
            rewritten = rewrite_records(sid, meta, messages, refs, self._line, True)
            payload = b"".join(line for _, line in rewritten)
            if since is not None:
                payload += self._appended_since(sid, since)
            self._write_whole(sid, payload)
            return self._rebuild_idx(sid)

    def _appended_since(self, sid: str, since: object) -> bytes:
        """The complete lines appended to the log after ``since`` (a ``Loaded.mark``)."""
        try:
            # A mark is opaque to callers; a foreign one fails to unpack (TypeError, below).
            mark: tuple[int, int] = since  # type: ignore[assignment]
            ino, offset = mark
            if os.lstat(self._log(sid)).st_ino != ino:
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
            for path in (self._log(sid), *self._caches(sid)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        with contextlib.suppress(OSError):
            _fsync_dir(self.root)

    def remove(self, sid: str, reason: str) -> str:
        """Back up and delete under one exclusive lock, so nothing appended in between is lost;
        returns the backup's location."""
        with self._locked(sid, exclusive=True):
            backup = self._keep_backup(sid, reason, self._read_bytes(sid))
            for path in (self._log(sid), *self._caches(sid)):
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

    # -- renames -------------------------------------------------------------------------
    def aliases(self) -> dict[str, str]:
        try:
            return parse_aliases(json.loads(_read_regular(self.root / ALIASES_FILE, 1 << 20)))
        except (OSError, ValueError, RecursionError):
            return {}

    def alias(self, sid: str) -> str | None:
        return follow_alias(self.aliases(), check_id(sid), self.exists)

    def rename(self, old: str, new: str) -> Summary:
        """Move session ``old`` to ``new`` under both locks (taken in name order, so two
        renames cannot wait on each other): the log is renamed in one step, so a crash leaves
        it under one of the two names, never none; ``old`` becomes an alias of ``new`` first,
        so a writer that waited on the old lock finds where the log went."""
        check_id(old)
        check_id(new)
        if old == new:
            raise SessionExists(f"session {old} already has that id")
        first, second = sorted((old, new))
        with self._locked(first, exclusive=True), self._locked(second, exclusive=True):
            try:
                st = os.lstat(self._log(old))
            except FileNotFoundError:
                raise SessionNotFound(f"session {old} not found") from None
            if not stat.S_ISREG(st.st_mode):
                raise self._unusable(old, st)
            if os.path.lexists(self._log(new)):
                raise SessionExists(f"session {new} already exists")
            summary = self._read_idx(old, st.st_size)
            self._set_alias(old, new)
            os.rename(self._log(old), self._log(new))
            _fsync_dir(self.root)
            # The caches that name the session are carried over, so that the renamed session
            # is not read whole again (the skeleton names it in every chunk: it is rebuilt).
            if summary is not None:
                summary.meta["id"] = new
                self._write_idx(new, st.st_size, summary)
            if isinstance(self.codec, PlainCodec):
                from aish.store import tallycache

                with os.fdopen(self._open_log(new), "rb") as f:
                    tallycache.carry(tallycache.path_for(self.root, old),
                                     tallycache.path_for(self.root, new), old, new, f)
            for path in self._caches(old):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            self._rename_backups(old, new)
            # The header names the new id from now on (a crash before this line is harmless:
            # the file's name is what names the session).
            return self._append_locked(new, [{"t": "meta", "id": new, "renamed_from": old}])

    def _rename_backups(self, old: str, new: str) -> None:
        for location in self.backups(old):
            path = Path(location)
            target = path.with_name(new + path.name[len(old):])
            try:
                os.link(path, target)  # refuses to replace a backup the new id already has
                os.unlink(path)
            except OSError:
                continue  # left under its old name: still a backup of the session's past
        with contextlib.suppress(OSError):
            _fsync_dir(self.root / "backup")

    def _set_alias(self, old: str, new: str) -> None:
        """Record ``old`` -> ``new``; ``new`` names a session again, so it is no alias."""
        lock = self._dir(".locks") / ALIASES_LOCK
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            aliases = self.aliases()
            aliases.pop(new, None)
            aliases[old] = new
            self._write_private(self.root / ALIASES_FILE,
                                json.dumps(aliases, indent=1, sort_keys=True).encode())
        finally:
            os.close(fd)

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
            data = json.loads(_read_regular(self._doc_path(kind, name), self.max_session_bytes))
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

    # -- tombstones: deletions that sync must not undo -----------------------------------
    def _tomb(self, sid: str) -> Path:
        return self.root / "tombstones" / f"{check_id(sid)}.json"

    def _read_tomb(self, sid: str, now: float) -> dict | None:
        try:
            record = parse_tombstone(_read_regular(self._tomb(sid), self.max_session_bytes), sid)
        except OSError:
            return None
        if record is None or now - record["time"] > TOMBSTONE_SECONDS:
            return None
        return record

    def tombstones(self) -> dict[str, dict]:
        folder = self.root / "tombstones"
        if not folder.is_dir() or folder.is_symlink():
            return {}
        now = time.time()
        out = {}
        for path in folder.glob("*.json"):
            if ID_PATTERN.fullmatch(path.stem) and ".." not in path.stem:
                record = self._read_tomb(path.stem, now)
                if record is not None:
                    out[path.stem] = record
        return out

    def add_tombstone(self, record: dict) -> None:
        sid = check_id(record["id"])
        folder = self._dir("tombstones")
        with self._locked(sid, exclusive=True):
            merged = merge_tombstones(self._read_tomb(sid, time.time()), record)
            try:
                self._write_private(folder / f"{sid}.json", json.dumps(merged).encode())
            except OSError as exc:
                raise StorageError(f"cannot record the deletion in {sid}: {exc.strerror}"
                                   ) from None

    # -- modes -----------------------------------------------------------------------------
    def fix_modes(self, sid: str) -> list[str]:
        """Make the store's directories 0700 and the session's files 0600; returns what changed.

        Links are left alone (never followed): a linked directory is refused when written in.
        """
        changed = []
        if self.root.is_dir() and _fix_mode(self.root, 0o700):
            changed.append(str(self.root))
        for name in SUBDIRS:
            if _fix_mode(self.root / name, 0o700):
                changed.append(str(self.root / name))
        files = [self._log(sid), self._idx(sid), self.root / ".locks" / f"{sid}.lock",
                 self._tomb(sid), *map(Path, self.backups(sid))]
        for path in files:
            # Through a linked directory the file is someone else's business: leave it.
            if path.parent != self.root and os.path.islink(path.parent):
                continue
            if _fix_mode(path, 0o600):
                changed.append(str(path))
        return changed


def _last_pairs(messages: list[Message], pairs: int) -> list[Message]:
    """The last ``pairs`` user messages of ``messages`` and everything after them."""
    users = 0
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "user":
            users += 1
            if users == pairs:
                return messages[index:]
    return messages


class _LogMedium:
    """Reads single records of an open log by offset, for `aish.store.base.walk`."""

    def __init__(self, f):
        self.f = f
        self.end = f.seek(0, os.SEEK_END)
        # The last block read: a walk reads each parent just before its child, so one block
        # serves many steps.
        self._start, self._block = 0, b""

    def _read(self, start: int, end: int) -> bytes:
        if self._start <= start and end <= self._start + len(self._block):
            return self._block[start - self._start:end - self._start]
        begin = min(start, max(0, end - _BLOCK))
        self.f.seek(begin)
        self._start, self._block = begin, self.f.read(end - begin)
        return self._block[start - begin:]

    def at(self, pos: int) -> bytes | None:
        if not 0 <= pos < self.end:
            return None
        if pos > 0:
            self.f.seek(pos - 1)
            if self.f.read(1) != b"\n":  # not the start of a line: a stale hint
                return None
        self.f.seek(pos)
        parts = []
        size = 4096  # most records are short: read a page first, then whole blocks
        while True:
            chunk = self.f.read(size)
            size = _BLOCK
            cut = chunk.find(b"\n")
            if cut >= 0:
                parts.append(chunk[:cut])
                return b"".join(parts)
            if not chunk:  # the torn tail: not a record
                return None
            parts.append(chunk)

    def before(self, pos: int | None) -> Iterator[tuple[bytes, int]]:
        """Complete lines starting before ``pos`` (None: the end), newest first."""
        f = self.f
        read_start = self.end if pos is None else min(pos, self.end)
        pending, limit = b"", 0  # pending[:limit]: read, not yet yielded
        if pos is None or read_start == self.end:
            # Only what ends with a newline is a record: skip a torn tail.
            while read_start > 0:
                start = max(0, read_start - _BLOCK)
                f.seek(start)
                chunk = f.read(read_start - start)
                cut = chunk.rfind(b"\n")
                if cut >= 0:
                    read_start = start + cut + 1
                    break
                read_start = start
        while limit > 0 or read_start > 0:
            idx = pending.rfind(b"\n", 0, limit - 1) if limit > 1 else -1
            while idx < 0 and read_start > 0:
                start = max(0, read_start - _BLOCK)
                pending = self._read(start, read_start) + pending[:limit]
                limit, read_start = len(pending), start
                idx = pending.rfind(b"\n", 0, limit - 1)
            begin = idx + 1
            line, at = pending[begin:limit - 1], read_start + begin
            limit = begin
            if line.strip():
                yield line, at
