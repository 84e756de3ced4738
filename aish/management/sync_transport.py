"""Where synced records travel: a folder (Syncthing, Dropbox, rsync, a USB stick) or Redis.

Both are dumb: every log and manifest in them has one writer, the device it is named after, so
a copy tool that moves whole files, or a server that only stores keys, can never make two
devices' writes collide.

Folder::

    PATH/aish-sync/v1/SESSION_ID/DEVICE_ID.jsonl   one device's records of one session
    PATH/aish-sync/v1/_store/DEVICE_ID.jsonl       its deletions and renames (store-wide)
    PATH/aish-sync/v1/_devices/DEVICE_ID.json      its manifest: name, key id, records per log

Redis: ``aish:sync:{SESSION_ID}:DEVICE_ID`` (a list of the same lines), the set
``aish:sync:{SESSION_ID}`` of devices that wrote there, ``aish:sync:sessions``, and the
manifest ``aish:sync:manifest:DEVICE_ID`` listed in ``aish:sync:devices``.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from aish.errors import StorageError, UsageError
from aish.ids import ID_PATTERN

STORE_LOG = "_store"  # no session id starts with "_"
MANIFESTS = "_devices"
_MAX_MANIFEST = 4 << 20


def _log_name(value: str) -> bool:
    return value == STORE_LOG or (ID_PATTERN.fullmatch(value) is not None and ".." not in value)


def read_regular(path: Path, limit: int = -1) -> bytes:
    """A file's bytes, never through a link, and nothing from a device or a pipe (which could
    block or never end): what a shared folder holds is not trusted to be what aish wrote."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        return f.read(limit) if stat.S_ISREG(os.fstat(fd).st_mode) else b""


class FolderTransport:
    def __init__(self, path: Path):
        self.where = str(Path(path).expanduser())
        self.root = Path(self.where) / "aish-sync" / "v1"
        if os.path.lexists(self.where) and not Path(self.where).is_dir():
            raise UsageError(f"--dir {self.where} is not a folder")

    @property
    def key(self) -> str:
        return f"dir:{Path(self.where).resolve()}"

    def _file(self, sid: str, device: str) -> Path:
        return self.root / sid / f"{device}.jsonl"

    def sessions(self) -> list[str]:
        try:
            return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.is_symlink()
                          and _log_name(p.name))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageError(f"cannot read {self.root}: {exc.strerror}") from None

    def devices(self, sid: str) -> list[str]:
        try:
            return sorted(p.stem for p in (self.root / sid).glob("*.jsonl")
                          if p.is_file() and not p.is_symlink())
        except OSError:
            return []

    def stamps(self, sid: str) -> dict[str, str]:
        """Per device, a token that changes whenever its log of ``sid`` does, from metadata
        only (size, change time, inode): what an idle sync reads instead of the logs."""
        out = {}
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.root / sid):
                if entry.name.endswith(".jsonl") and entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    out[entry.name[:-6]] = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
        return out

    def read(self, sid: str, device: str) -> bytes:
        try:
            return read_regular(self._file(sid, device))
        except FileNotFoundError:
            return b""
        except OSError as exc:
            raise StorageError(f"cannot read {self._file(sid, device)}: {exc.strerror}") from None

    def _folder(self, *parts: str) -> Path:
        from aish.store.filestore import make_private_dirs

        folder = self.root.joinpath(*parts)
        make_private_dirs(folder)
        return folder

    def append(self, sid: str, device: str, data: bytes) -> None:
        self._folder(sid)
        path = self._file(sid, device)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc.strerror}") from None

    def rewrite(self, sid: str, device: str, data: bytes) -> None:
        self._write(self._folder(sid), f"{device}.jsonl", data)

    def _write(self, folder: Path, name: str, data: bytes) -> None:
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, folder / name)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StorageError(f"cannot write {folder / name}: {exc.strerror}") from None

    def manifests(self) -> dict[str, bytes]:
        """Each device's manifest as stored (read and checked by `sync_chain`)."""
        out = {}
        with contextlib.suppress(OSError):
            for path in sorted((self.root / MANIFESTS).glob("*.json")):
                if not path.is_symlink():
                    with contextlib.suppress(OSError):
                        out[path.stem] = read_regular(path, _MAX_MANIFEST)
        return out

    def put_manifest(self, device: str, data: bytes) -> None:
        self._write(self._folder(MANIFESTS), f"{device}.json", data)


class RedisTransport:
    def __init__(self, url: str):
        from aish.config import check_redis_url
        from aish.store.redisstore import connect

        check_redis_url(url, "--to")
        connection = connect(url)
        self.client, self.guard, self.where = connection.client, connection.guard, connection.url

    @property
    def key(self) -> str:
        return f"redis:{self.where}"

    @staticmethod
    def _log(sid: str, device: str) -> str:
        return f"aish:sync:{{{sid}}}:{device}"

    def sessions(self) -> list[str]:
        with self.guard("list synced sessions"):
            names = self.client.smembers("aish:sync:sessions")
        return sorted(n for n in (x.decode("utf-8", "replace") for x in names) if _log_name(n))

    def devices(self, sid: str) -> list[str]:
        with self.guard("list synced devices"):
            names = self.client.smembers(f"aish:sync:{{{sid}}}")
        return sorted(x.decode("utf-8", "replace") for x in names)

    def stamps(self, sid: str) -> dict[str, str]:
        """Per device, its log's length and last line (which holds the chain's hash so far)."""
        import hashlib

        devices = self.devices(sid)
        with self.guard("read synced log lengths"):
            pipe = self.client.pipeline(transaction=False)
            for device in devices:
                pipe.llen(self._log(sid, device))
                pipe.lindex(self._log(sid, device), -1)
            found = pipe.execute()
        return {d: f"{n}:{hashlib.sha256(last or b'').hexdigest()[:16]}"
                for d, n, last in zip(devices, found[::2], found[1::2], strict=True)}

    def read(self, sid: str, device: str) -> bytes:
        with self.guard("read a synced log"):
            items = self.client.lrange(self._log(sid, device), 0, -1)
        # Each item is one line; a torn item (no newline) is reported as a torn line.
        return b"".join(items)

    def _lines(self, data: bytes) -> list[bytes]:
        return data.splitlines(keepends=True)

    def append(self, sid: str, device: str, data: bytes) -> None:
        with self.guard("write a synced log"):
            # The session's keys in one step (one hash tag: one slot, also on a cluster), then
            # the store-wide index (another slot); adding to it again is harmless.
            pipe = self.client.pipeline(transaction=True)
            pipe.rpush(self._log(sid, device), *self._lines(data))
            pipe.sadd(f"aish:sync:{{{sid}}}", device)
            pipe.execute()
            self.client.sadd("aish:sync:sessions", sid)

    def rewrite(self, sid: str, device: str, data: bytes) -> None:
        with self.guard("repair a synced log"):
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self._log(sid, device))
            if data:
                pipe.rpush(self._log(sid, device), *self._lines(data))
            pipe.execute()

    def manifests(self) -> dict[str, bytes]:
        with self.guard("read the sync manifests"):
            devices = sorted(x.decode("utf-8", "replace")
                             for x in self.client.smembers("aish:sync:devices"))
            raws = [self.client.get(f"aish:sync:manifest:{d}") for d in devices]
        return {d: raw for d, raw in zip(devices, raws, strict=True) if raw is not None}

    def put_manifest(self, device: str, data: bytes) -> None:
        with self.guard("write the sync manifest"):
            # Two keys in two slots on a cluster: the manifest first, then the index naming it.
            self.client.set(f"aish:sync:manifest:{device}", data)
            self.client.sadd("aish:sync:devices", device)


def open_transport(to: str | None, folder: str | None):
    if to and folder:
        raise UsageError("give --to or --dir, not both")
    if to:
        return RedisTransport(to)
    if folder:
        return FolderTransport(Path(folder))
    raise UsageError("--sync needs a transport", hint="pass --dir PATH (a synced folder, a USB "
                     "stick) or --to redis://HOST:6379/0")
