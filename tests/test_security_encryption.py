"""Encryption at rest: content unreadable without the key, on disk and in Redis; a missing or
wrong key is a clear error that touches nothing; the key comes from the keyring or a passphrase.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import keyring
import pytest
import redis
from conftest import run
from keyring.backend import KeyringBackend

from aish.config import load
from aish.errors import ConfigError, StorageError
from aish.messages import ASSISTANT, USER, Message
from aish.store import open_store
from aish.store.crypto import EncryptedCodec, codec_for

SECRET = "the vault code is 7-7-3-1"
PASS = "correct horse battery staple"


class MemoryKeyring(KeyringBackend):
    priority = 1

    def __init__(self):
        super().__init__()
        self.data = {}

    def get_password(self, service, username):
        return self.data.get((service, username))

    def set_password(self, service, username, password):
        self.data[(service, username)] = password

    def delete_password(self, service, username):
        self.data.pop((service, username), None)


@pytest.fixture
def no_keyring(monkeypatch):
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    monkeypatch.delenv("AISH_ENCRYPTION_KEY", raising=False)
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def memory_keyring(monkeypatch):
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    monkeypatch.delenv("AISH_ENCRYPTION_KEY", raising=False)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture(params=["file", "redis"])
def config(request, tmp_path, no_keyring):
    base = replace(load({"HOME": str(tmp_path / "home")}), encrypt=True)
    if request.param == "redis":
        base = replace(base, storage_type="redis",
                       redis_url=request.getfixturevalue("redis_url"))
    return base


def snapshot(config) -> dict:
    """Every byte the store holds (files under HOME, or every Redis key), to prove "untouched"."""
    if config.storage_type == "redis":
        client = redis.Redis.from_url(config.redis_url)
        return {key: client.dump(key) for key in client.keys("*")}
    root = config.home.parent
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and p.name != "audit.log"}


def everything(config) -> bytes:
    if config.storage_type == "redis":
        client = redis.Redis.from_url(config.redis_url)
        out = []
        for key in client.keys("*"):
            kind = client.type(key)
            if kind == b"list":
                out += client.lrange(key, 0, -1)
            elif kind == b"hash":
                out += [b"%s=%s" % kv for kv in client.hgetall(key).items()]
            elif kind == b"stream":  # the events followers read: sealed like the log
                out += [b"%s=%s" % kv for _, fields in client.xrange(key)
                        for kv in fields.items()]
            else:
                out.append(client.get(key))
        return b"\n".join(out)
    return b"\n".join(p.read_bytes() for p in config.home.parent.rglob("*") if p.is_file())


def write_session(store, sid="vault"):
    store.create({"id": sid, "owner": "apollo", "created": 1.0}, [Message(USER, SECRET, "apollo",
                                                                          1.0)])
    store.append(sid, [Message(ASSISTANT, SECRET + "!", "apollo", 2.0).to_record()])
    store.put_doc("templates", "vault-tpl", {"messages": [Message(USER, SECRET, "apollo",
                                                                  1.0).to_record()]})
    store.backup(sid, "prune")


def test_passphrase_encrypts_content_at_rest(config, monkeypatch):
    monkeypatch.setenv("AISH_ENCRYPTION_KEY", PASS)
    store = open_store(config)
    write_session(store)
    at_rest = everything(config)
    assert SECRET.encode() not in at_rest and PASS.encode() not in at_rest
    assert b"enc" in at_rest
    assert [m.content for m in open_store(config).load("vault").messages] == [SECRET,
                                                                              SECRET + "!"]
    assert open_store(config).get_doc("templates", "vault-tpl")["messages"][0]["content"] == SECRET


def test_settings_hold_a_salt_and_a_check_never_the_key(config, monkeypatch):
    monkeypatch.setenv("AISH_ENCRYPTION_KEY", PASS)
    open_store(config)
    if config.storage_type == "redis":
        raw = redis.Redis.from_url(config.redis_url).get("aish:crypto")
    else:
        path = config.session_dir / ".crypto.json"
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        raw = path.read_bytes()
    params = json.loads(raw)
    assert set(params) >= {"salt", "check", "kdf", "n", "r", "p", "cipher"}
    assert params["kdf"] == "scrypt" and params["cipher"] == "AES-256-GCM"
    assert PASS.encode() not in raw


def test_wrong_key_is_refused_before_anything_is_touched(config, monkeypatch):
    monkeypatch.setenv("AISH_ENCRYPTION_KEY", PASS)
    write_session(open_store(config))
    before = snapshot(config)
    monkeypatch.setenv("AISH_ENCRYPTION_KEY", "not the passphrase")
    with pytest.raises(ConfigError) as wrong:
        open_store(config)
    assert "wrong encryption key" in str(wrong.value)
    assert "AISH_ENCRYPTION_KEY" in str(wrong.value)
    assert "not the passphrase" not in str(wrong.value)
    assert snapshot(config) == before


def test_missing_key_is_refused_before_anything_is_created(config):
    with pytest.raises(ConfigError) as missing:
        open_store(config)
    assert "no key" in str(missing.value) and "AISH_ENCRYPTION_KEY" in str(missing.value)
    assert snapshot(config) == {} or not config.session_dir.exists()


def test_missing_key_for_existing_data(config, monkeypatch):
    monkeypatch.setenv("AISH_ENCRYPTION_KEY", PASS)
    write_session(open_store(config))
    before = snapshot(config)
    monkeypatch.delenv("AISH_ENCRYPTION_KEY")
    with pytest.raises(ConfigError, match="already encrypted"):
        open_store(config)
    assert snapshot(config) == before


def test_turning_encryption_off_is_refused_clearly(config, monkeypatch):
    monkeypatch.setenv("AISH_ENCRYPTION_KEY", PASS)
    write_session(open_store(config))
    before = snapshot(config)
    with pytest.raises(ConfigError, match="encrypted"):
        open_store(replace(config, encrypt=False))
    assert snapshot(config) == before


def test_a_plain_codec_never_mistakes_sealed_content():
    from aish.store.base import PlainCodec

    sealed = EncryptedCodec(os.urandom(32)).seal(Message(USER, "x", "apollo", 1.0).to_record())
    with pytest.raises(StorageError, match="encrypted"):
        PlainCodec().open(sealed)


def test_keyring_key_is_created_once_and_reused(tmp_path, memory_keyring):
    config = replace(load({"HOME": str(tmp_path)}), encrypt=True)
    store = open_store(config)
    created = memory_keyring.data[("aish", "session-key")]
    assert len(created) >= 32
    write_session(store)
    assert open_store(config).load("vault").messages[0].content == SECRET
    assert memory_keyring.data[("aish", "session-key")] == created
    assert created.encode() not in everything(config)


def test_a_changed_keyring_secret_is_a_wrong_key(tmp_path, memory_keyring):
    config = replace(load({"HOME": str(tmp_path)}), encrypt=True)
    write_session(open_store(config))
    memory_keyring.data[("aish", "session-key")] = "something else"
    with pytest.raises(ConfigError, match="wrong encryption key") as wrong:
        open_store(config)
    assert "keyring" in str(wrong.value)


def test_keyring_is_not_filled_for_data_encrypted_with_a_passphrase(tmp_path, memory_keyring,
                                                                     monkeypatch):
    config = replace(load({"HOME": str(tmp_path)}), encrypt=True)
    monkeypatch.setenv("AISH_ENCRYPTION_KEY", PASS)
    write_session(open_store(config))
    monkeypatch.delenv("AISH_ENCRYPTION_KEY")
    with pytest.raises(ConfigError, match="already encrypted"):
        open_store(config)
    assert memory_keyring.data == {}


def test_passphrase_wins_over_the_keyring(tmp_path, memory_keyring, monkeypatch):
    config = replace(load({"HOME": str(tmp_path)}), encrypt=True)
    monkeypatch.setenv("AISH_ENCRYPTION_KEY", PASS)
    write_session(open_store(config))
    assert memory_keyring.data == {}


def test_tampered_records_are_reported_not_trusted(tmp_path, monkeypatch, no_keyring):
    monkeypatch.setenv("AISH_ENCRYPTION_KEY", PASS)
    config = replace(load({"HOME": str(tmp_path)}), encrypt=True)
    store = open_store(config)
    store.create({"id": "t", "owner": "apollo"}, [Message(USER, "first", "apollo", 1.0),
                                                  Message(ASSISTANT, "second", "apollo", 2.0)])
    log = config.session_dir / "t.jsonl"
    lines = log.read_text().splitlines()
    first, second = json.loads(lines[1]), json.loads(lines[2])
    first["enc"], second["enc"] = second["enc"], first["enc"]  # swap ciphertexts
    log.write_text("\n".join([lines[0], json.dumps(first), json.dumps(second)]) + "\n")
    loaded = open_store(config).load("t")
    assert loaded.messages == []
    assert [p.kind for p in loaded.problems] == ["bad record", "bad record"]
    assert "integrity" in loaded.problems[0].detail


def test_damaged_settings_are_a_clear_error(tmp_path, monkeypatch, no_keyring):
    monkeypatch.setenv("AISH_ENCRYPTION_KEY", PASS)
    config = replace(load({"HOME": str(tmp_path)}), encrypt=True)
    open_store(config)
    params = config.session_dir / ".crypto.json"
    for damage in ("{", '{"n": 3}', json.dumps({**json.loads(params.read_text()),
                                                "n": 2**40})):
        params.write_text(damage)
        with pytest.raises(StorageError, match="damaged"):
            codec_for(config)


# -- through the real program ------------------------------------------------------------------


@pytest.fixture
def encrypted_home(home, server):
    cfg = Path(home["HOME"]) / ".aish" / "config.yaml"
    cfg.write_text(cfg.read_text() + "sessions:\n  storage: {encrypt: true}\n")
    return {**home, "OPENAI_BASE_URL": server.base, "OPENAI_API_KEY": "k",
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


def test_cli_round_trip_and_wrong_key(encrypted_home, server):
    env = {**encrypted_home, "AISH_ENCRYPTION_KEY": PASS}
    server.reply = "I will remember the vault."
    made = run(env, "apollo", "--session-id", "vault", input=SECRET)
    assert made.returncode == 0, made.stderr
    root = Path(env["HOME"])
    assert not any(SECRET.encode() in p.read_bytes() for p in root.rglob("*") if p.is_file())
    server.reply = "Recalled."
    again = run(env, "apollo", "--session-id", "vault", input="what is the code?")
    assert again.returncode == 0, again.stderr
    assert SECRET in [m["content"] for m in server.requests[-1]["messages"]]
    saved = run(env, "aish", "--save-session", "vault")
    assert saved.returncode == 0 and SECRET.encode() in saved.stdout  # export is plain text

    files = {p: p.read_bytes() for p in (root / ".aish" / "sessions").rglob("*") if p.is_file()}
    wrong = run({**env, "AISH_ENCRYPTION_KEY": "guess"}, "apollo", "--session-id", "vault",
                input="another message")
    assert wrong.returncode == 8
    assert b"wrong encryption key" in wrong.stderr and b"Traceback" not in wrong.stderr
    missing = run(encrypted_home, "aish", "--list-sessions")
    assert missing.returncode == 8 and b"AISH_ENCRYPTION_KEY" in missing.stderr
    after = {p: p.read_bytes() for p in (root / ".aish" / "sessions").rglob("*") if p.is_file()}
    assert after == files
