"""This machine's identity for sync: a random id and a human name, kept in ``~/.aish/device.json``.

Every record a device puts in a sync transport is written under its id only, so two devices
never write the same file or key; the name is what people see (``main@laptop``). The id is
random rather than derived from the host, so that two machines cloned from one image, or one
renamed, stay distinct. ``AISH_DEVICE_NAME`` overrides the stored name (tests, users who want
another label) without changing the id.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from aish.errors import StorageError

DEVICE_FILE = "device.json"
ENV_NAME = "AISH_DEVICE_NAME"
_ID = re.compile(r"[0-9a-f]{16}")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]+")
MAX_NAME = 24  # ``NAME@DEVICE`` must stay a valid branch name for any NAME up to 40 characters


@dataclass(frozen=True)
class Device:
    id: str
    name: str


def clean_name(text: str) -> str:
    """A device name usable inside a branch name: letters, digits, ``-`` and ``_``."""
    name = _NOT_NAME.sub("-", text.split(".")[0]).strip("-_")[:MAX_NAME].strip("-_")
    return name or "device"


def this_device(home: Path, environ: dict, create: bool = True) -> Device:
    """The device ``home`` (``~/.aish``) belongs to, made on first use (0600) unless
    ``create`` is false: then a provisional identity is returned and nothing is written."""
    path = Path(home) / DEVICE_FILE
    stored = _read(path)
    override = environ.get(ENV_NAME, "").strip()
    if stored is None:
        stored = Device(secrets.token_hex(8), clean_name(socket.gethostname()))
        if create:
            stored = _write(path, stored)
    return Device(stored.id, clean_name(override)) if override else stored


def _read(path: Path) -> Device | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot read {path}: {exc}",
                           hint="remove it: a new device identity is made") from None
    if not (isinstance(data, dict) and isinstance(data.get("id"), str)
            and _ID.fullmatch(data["id"]) and isinstance(data.get("name"), str)):
        raise StorageError(f"{path} is damaged", hint="remove it: a new device identity is made")
    return Device(data["id"], clean_name(data["name"]))


def _write(path: Path, device: Device) -> Device:
    """Store ``device`` unless another process made one first; return what is stored."""
    from aish.store.filestore import make_private_dirs

    make_private_dirs(path.parent)
    tmp = path.with_name(f".{DEVICE_FILE}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"id": device.id, "name": device.name}, f)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # never replaces an identity another process just made
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return _read(path) or device
