"""`aish --export-key FILE` / `aish --import-key FILE`: move an encrypted store's key between
devices on purpose.

Synced records stay sealed in transit, so a second device can open them only with the same
key. The key is derived from a secret and a per-store salt; the file carries the derived key
with the salt, the scrypt cost and the key check, so the importing device can open (and
create) a store sealed under it without knowing the first device's passphrase. The file is
made 0600, never over an existing one; an import never replaces a store's different key.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from aish.errors import Refused, StorageError, UsageError

FORMAT = "aish-key/v1"
_MAX_KEY_FILE = 64 * 1024


def export_key(config, environ, target: Path) -> str:
    """Write the configured store's key to ``target``; returns the key's id."""
    from aish.store.crypto import key_id, store_key

    if not config.encrypt:
        raise UsageError("encryption is off: there is no key to export",
                         hint="turn on sessions.storage.encrypt first")
    key, params = store_key(config, environ)
    doc = {"format": FORMAT, "key": base64.b64encode(key).decode("ascii"),
           "params": json.loads(params.to_json()), "id": key_id(key),
           "note": "the encryption key of aish sessions: keep it as secret as a password"}
    _write_new(Path(target).expanduser(), (json.dumps(doc, indent=1) + "\n").encode())
    return key_id(key)


def import_key(config, target: Path) -> tuple[str, bool]:
    """Take the key in ``target`` for the configured store; returns (its id, whether the
    store's encryption settings were made from it)."""
    from aish.management.sync_transport import read_regular
    from aish.store.crypto import KEYS_DIR, Params, key_id, key_matches, params_store

    path = Path(target).expanduser()
    try:
        doc = json.loads(read_regular(path, _MAX_KEY_FILE))
        key = base64.b64decode(doc["key"], validate=True)
        params = Params.from_json(json.dumps(doc["params"]), str(path))
    except FileNotFoundError:
        raise UsageError(f"no key file at {path}") from None
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, RecursionError, StorageError):
        raise UsageError(f"{path} is not a key file written by aish --export-key") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or len(key) != 32 \
            or not key_matches(key, params.check):
        raise UsageError(f"{path} is not a key file written by aish --export-key",
                         hint="its key does not pass its own key check")
    where = params_store(config)
    stored = where.read()
    made = False
    if stored is None:
        stored = where.create(params)
        made = stored == params
    if not key_matches(key, stored.check):
        raise Refused(f"the sessions here are already encrypted with another key "
                      f"(settings: {where.where})",
                      hint="importing it would leave them unreadable; nothing was changed")
    kid = key_id(key)
    keys = Path(config.home) / KEYS_DIR
    from aish.store.filestore import make_private_dirs

    make_private_dirs(keys)
    destination = keys / f"{kid}.key"
    if not destination.exists():
        _write_new(destination, json.dumps({"format": FORMAT, "key": doc["key"]}).encode())
    return kid, made


def _write_new(path: Path, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise Refused(f"{path} already exists", hint="choose another file name; "
                      "aish never overwrites a key file") from None
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise StorageError(f"cannot write {path}: {exc.strerror}") from None


