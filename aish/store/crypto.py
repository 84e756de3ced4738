"""Encryption at rest: message ``content`` sealed with AES-256-GCM before it reaches a store.

Where the key comes from (the first that applies):

1. ``AISH_ENCRYPTION_KEY``: a passphrase. Explicit beats implicit, and it is how a team or one
   person's several machines share a Redis store: everyone sets the same passphrase.
2. The OS keyring, service ``aish``, user ``session-key``. When a keyring backend works and the
   store has no encrypted data yet, a random secret is created there on first use. Putting a
   team passphrase there (``keyring set aish session-key``) works like (1).

Either secret goes through scrypt with a random per-store salt. The salt, the scrypt cost and a
*key check value* (a constant encrypted under the derived key) are kept beside the data
(``SESSION_DIR/.crypto.json`` for the file store, the ``aish:crypto`` key in Redis); the key
itself never is. `codec_for` derives the key and opens the check value before any store exists,
so a missing or wrong key fails with a clear error and nothing is read or written.

A sealed record keeps its role, ai, time, id and usage in the clear (listing and the sharing
rules need them) and carries ``enc`` instead of ``content``. The message id, role and ai are
bound to the ciphertext as associated data, so content cannot be moved between messages.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aish.errors import ConfigError, StorageError
from aish.store.filestore import CRYPTO_FILE as PARAMS_FILE

ENV_KEY = "AISH_ENCRYPTION_KEY"
KEYRING_SERVICE = "aish"
KEYRING_USER = "session-key"
CIPHER = "AES-256-GCM"
PREFIX = "v1."  # version of the sealed-content format
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1  # ~0.1 s and 32 MiB per process start
_NONCE = 12
_TAG = 16
_CHECK_PLAIN = b"aish key check"
_CHECK_AAD = b"aish/key-check/v1"
_KEYRING_HOW = "the OS keyring (service 'aish', user 'session-key')"


class EncryptedCodec:
    """Seals and opens the ``content`` of message records with one AES-256-GCM key."""

    def __init__(self, key: bytes):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(key) != 32:
            raise ValueError("an AES-256 key has 32 bytes")
        self._aead = AESGCM(key)
        # Names the key without revealing it: sync compares it to tell whether another
        # device's sealed records can be opened here.
        self.key_id = key_id(key)
        import hashlib

        self._names = hashlib.sha256(b"aish names\0" + key).digest()

    def name_digest(self, text: str) -> str:
        """A digest of a name that only holders of the key can compute: where a store keeps
        a name in clear (headers, the audit log), a dictionary of likely names must not be
        able to reverse it."""
        import hashlib
        import hmac

        data = text.encode("utf-8", "surrogatepass")
        return hmac.new(self._names, data, hashlib.sha256).hexdigest()[:32]

    def __repr__(self) -> str:  # never show the key
        return "EncryptedCodec()"

    def seal(self, record: dict) -> dict:
        content = record.get("content")
        if record.get("t") != "msg" or not isinstance(content, str):
            return record
        out = {k: v for k, v in record.items() if k != "content"}
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, content.encode("utf-8", "surrogatepass"), _aad(out))
        out["enc"] = PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return out

    def open(self, record: dict) -> dict:
        """The record with its content back; ValueError when it cannot be opened.

        A record without ``enc`` was written before encryption was turned on and is returned
        as it is (it becomes encrypted the next time the session is rewritten).
        """
        if "enc" not in record:
            return record
        from cryptography.exceptions import InvalidTag

        enc = record["enc"]
        if not isinstance(enc, str) or not enc.startswith(PREFIX):
            raise ValueError("encrypted content in an unknown format")
        try:
            blob = base64.urlsafe_b64decode(enc[len(PREFIX):])
        except ValueError:
            raise ValueError("encrypted content is not valid base64") from None
        if len(blob) < _NONCE + _TAG:
            raise ValueError("encrypted content is too short")
        rest = {k: v for k, v in record.items() if k != "enc"}
        try:
            plain = self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], _aad(rest))
        except InvalidTag:
            raise ValueError("encrypted content fails its integrity check") from None
        rest["content"] = plain.decode("utf-8", "surrogatepass")
        return rest


def key_id(key: bytes) -> str:
    import hashlib

    return hashlib.sha256(b"aish key id\0" + key).hexdigest()[:16]


def _aad(record: dict) -> bytes:
    fields = [record.get("id"), record.get("role"), record.get("ai")]
    return json.dumps(fields, ensure_ascii=True, default=repr).encode("ascii")


# -- per-store parameters: salt, scrypt cost, key check value -------------------------------


@dataclass(frozen=True)
class Params:
    salt: bytes
    n: int
    r: int
    p: int
    check: str

    def to_json(self) -> str:
        return json.dumps({
            "v": 1, "cipher": CIPHER, "kdf": "scrypt", "n": self.n, "r": self.r, "p": self.p,
            "salt": base64.b64encode(self.salt).decode("ascii"), "check": self.check,
            "note": "salt and key check only; the key is in the keyring or AISH_ENCRYPTION_KEY",
        }, indent=2)

    @classmethod
    def from_json(cls, text: str | bytes, where: str) -> Params:
        damaged = StorageError(
            f"the encryption settings at {where} are damaged",
            hint="restore them from a backup; without them encrypted sessions cannot be read",
        )
        try:
            data = json.loads(text)
            n, r, p = data["n"], data["r"], data["p"]
            salt = base64.b64decode(data["salt"], validate=True)
            check = data["check"]
        except (ValueError, KeyError, TypeError, RecursionError):
            raise damaged from None
        sane = (
            data.get("cipher") == CIPHER and data.get("kdf") == "scrypt"
            and all(isinstance(x, int) and not isinstance(x, bool) for x in (n, r, p))
            and 2 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16
            and 16 <= len(salt) <= 64 and isinstance(check, str)
        )
        if not sane:
            raise damaged
        return cls(salt, n, r, p, check)


def derive_key(secret: str, params: Params) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    kdf = Scrypt(salt=params.salt, length=32, n=params.n, r=params.r, p=params.p)
    return kdf.derive(secret.encode("utf-8", "surrogatepass"))


def make_check(key: bytes) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(_NONCE)
    blob = nonce + AESGCM(key).encrypt(nonce, _CHECK_PLAIN, _CHECK_AAD)
    return PREFIX + base64.urlsafe_b64encode(blob).decode("ascii")


def key_matches(key: bytes, check: str) -> bool:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        blob = base64.urlsafe_b64decode(check[len(PREFIX):])
        plain = AESGCM(key).decrypt(blob[:_NONCE], blob[_NONCE:], _CHECK_AAD)
    except (InvalidTag, ValueError):
        return False
    return check.startswith(PREFIX) and plain == _CHECK_PLAIN


class _FileParams:
    """The parameters of a file store: ``SESSION_DIR/.crypto.json``, 0600."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.path = self.root / PARAMS_FILE
        self.where = str(self.path)
        self.store = str(self.root)

    def read(self) -> Params | None:
        try:
            return Params.from_json(self.path.read_bytes(), self.where)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {self.path}: {exc.strerror}") from None

    def create(self, params: Params) -> Params:
        """Store ``params`` unless another process got there first; return what is stored."""
        try:
            from aish.store.filestore import make_private_dirs

            make_private_dirs(self.root)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-crypto-")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    os.fchmod(f.fileno(), 0o600)
                    f.write(params.to_json())
                    f.flush()
                    os.fsync(f.fileno())
                os.link(tmp, self.path)  # atomic, and never replaces an existing file
            except FileExistsError:
                pass
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        except OSError as exc:
            raise StorageError(f"cannot write {self.path}: {exc.strerror}") from None
        stored = self.read()
        if stored is None:  # pragma: no cover - removed between link and read
            raise StorageError(f"{self.path} vanished while it was being created")
        return stored


class _RedisParams:
    """The parameters of a Redis store: the ``aish:crypto`` key (no TTL)."""

    def __init__(self, url: str | None):
        from aish.store.redisstore import CRYPTO_KEY as REDIS_PARAMS_KEY
        from aish.store.redisstore import connect

        connection = connect(url)
        self.client, self.guard = connection.client, connection.guard
        self.key = REDIS_PARAMS_KEY
        self.where = f"{connection.url} {REDIS_PARAMS_KEY}"
        self.store = connection.url

    def read(self) -> Params | None:
        with self.guard("read the encryption settings"):
            raw = self.client.get(self.key)
        return None if raw is None else Params.from_json(raw, self.where)

    def create(self, params: Params) -> Params:
        with self.guard("store the encryption settings"):
            self.client.set(self.key, params.to_json(), nx=True)
        stored = self.read()
        if stored is None:  # pragma: no cover - deleted in between
            raise StorageError(f"{self.where} vanished while it was being created")
        return stored


def params_store(config):
    if config.storage_type == "redis":
        return _RedisParams(config.redis_url)
    return _FileParams(config.session_dir)


# -- the secret -------------------------------------------------------------------------------


def _keyring():
    """The keyring module when a real backend is available, else None."""
    try:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
    except Exception:  # no module, or a backend that breaks on load: simply no keyring
        return None
    if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 1) <= 0:
        return None
    return keyring


def _secret(environ, store_has_data: bool) -> tuple[str, str]:
    """(secret, where it came from); ConfigError when there is none."""
    passphrase = environ.get(ENV_KEY, "")
    if passphrase:
        return passphrase, ENV_KEY
    keyring = _keyring()
    if keyring is not None:
        try:
            secret = keyring.get_password(KEYRING_SERVICE, KEYRING_USER)
            if not secret and not store_has_data:
                keyring.set_password(KEYRING_SERVICE, KEYRING_USER, secrets.token_urlsafe(32))
                secret = keyring.get_password(KEYRING_SERVICE, KEYRING_USER)
        except Exception:  # a locked or broken keyring is the same as none
            secret = None
        if secret:
            return secret, _KEYRING_HOW
    if store_has_data:
        raise ConfigError(
            "encryption is on (sessions.storage.encrypt) but no key is available for "
            "sessions that are already encrypted",
            hint=f"set {ENV_KEY} to their passphrase, or put it in {_KEYRING_HOW}",
        )
    raise ConfigError(
        "encryption is on (sessions.storage.encrypt) but no key is available",
        hint=f"set {ENV_KEY} to a passphrase, or use {_KEYRING_HOW}",
    )


def codec_for(config, environ=None) -> EncryptedCodec:
    """The codec for the store ``config`` selects, after checking the key against it.

    Raises ConfigError for a missing or wrong key and StorageError for unreadable settings;
    in both cases no session has been read or written.
    """
    return EncryptedCodec(store_key(config, environ)[0])


def store_key(config, environ=None) -> tuple[bytes, Params]:
    """The checked key of the store ``config`` selects, and the store's parameters."""
    environ = os.environ if environ is None else environ
    try:
        import cryptography  # noqa: F401
    except ImportError:
        raise ConfigError("sessions.storage.encrypt is on, but cryptography is not installed",
                          hint="pip install 'aish[crypto]'") from None
    where = params_store(config)
    params = where.read()
    if params is not None and not environ.get(ENV_KEY):
        imported = imported_key(config.home, params)
        if imported is not None:
            return imported, params
    secret, source = _secret(environ, params is not None)
    if params is None:
        fresh = Params(os.urandom(16), SCRYPT_N, SCRYPT_R, SCRYPT_P, "")
        key = derive_key(secret, fresh)
        fresh = Params(fresh.salt, fresh.n, fresh.r, fresh.p, make_check(key))
        params = where.create(fresh)
        if params != fresh:  # another process created them first: derive with its salt
            key = derive_key(secret, params)
    else:
        key = derive_key(secret, params)
    if not key_matches(key, params.check):
        imported = imported_key(config.home, params)
        if imported is not None:
            return imported, params
        raise ConfigError(
            f"wrong encryption key for the sessions at {where.store}",
            hint=f"the key came from {source}; nothing was read or written",
        )
    return key, params


# Keys brought from another device with `aish --import-key`, one file each, 0600: they open a
# store whose parameters came with them, without that device's passphrase.
KEYS_DIR = "keys"


def imported_key(home: Path, params: Params) -> bytes | None:
    """The imported key that opens a store with ``params``, if there is one."""
    folder = Path(home) / KEYS_DIR
    try:
        paths = sorted(folder.glob("*.key"))
    except OSError:
        return None
    for path in paths:
        try:
            key = base64.b64decode(json.loads(path.read_text(encoding="utf-8"))["key"])
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            continue
        if len(key) == 32 and key_matches(key, params.check):
            return key
    return None
