"""Encrypted stores sync sealed records only; the key moves between devices on purpose, with
`--export-key` and `--import-key`."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from conftest import run
from sync_support import (
    all_contents,
    contents,
    device_env,
    encrypt,
    ok,
    say,
    sessions_of,
    sync,
)

SECRET = "the vault code is 4721"


@pytest.fixture
def laptop(home, tmp_path):
    return encrypt(device_env(tmp_path, "laptop", home), "laptop passphrase")


def files_of(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_encrypted_sessions_travel_sealed_and_open_with_the_imported_key(laptop, home,
                                                                         tmp_path, shared):
    say(laptop, "s1", SECRET)
    ok(sync(laptop, shared))
    travelled = files_of(shared)
    assert travelled and not any(b"4721" in p.read_bytes() for p in travelled)
    assert any(b'"enc":"v1.' in p.read_bytes() for p in travelled)
    assert not any(b"laptop passphrase" in p.read_bytes() for p in travelled)

    key_file = tmp_path / "usb" / "aish.key"
    key_file.parent.mkdir()
    ok(run(laptop, "aish", "--export-key", str(key_file)))
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert b"laptop passphrase" not in key_file.read_bytes()
    # A new device without the passphrase: the imported key opens what laptop sealed.
    desktop = encrypt(device_env(tmp_path, "desktop", home), None)
    ok(run(desktop, "aish", "--import-key", str(key_file)))
    out = ok(sync(desktop, shared))
    assert "created here" in out
    assert contents(desktop, "s1") == [SECRET, f"answer to {SECRET}"]
    say(desktop, "s1", "and the safe?")
    ok(sync(desktop, shared))
    ok(sync(laptop, shared))
    assert contents(laptop, "s1")[-2:] == ["and the safe?", "answer to and the safe?"]
    assert not any(b"the safe" in p.read_bytes() for p in files_of(shared))


def test_a_device_with_another_key_is_not_imported(laptop, home, tmp_path, shared):
    say(laptop, "s1", SECRET)
    ok(sync(laptop, shared))
    key_file = tmp_path / "aish.key"
    ok(run(laptop, "aish", "--export-key", str(key_file)))
    desktop = encrypt(device_env(tmp_path, "desktop", home), "another passphrase")
    say(desktop, "d1", "mine")
    out = ok(sync(desktop, shared))
    assert "laptop seals its sessions with another key" in out
    assert not sessions_of(desktop).exists("s1")
    # Importing would leave desktop's own sessions unreadable: refused, nothing changed.
    crypto = Path(desktop["HOME"]) / ".aish" / "sessions" / ".crypto.json"
    before = crypto.read_bytes()
    refused = run(desktop, "aish", "--import-key", str(key_file))
    assert refused.returncode != 0 and b"another key" in refused.stderr
    assert b"Traceback" not in refused.stderr
    assert crypto.read_bytes() == before
    assert all_contents(desktop, "d1") == {"mine", "answer to mine"}


def test_export_refuses_to_overwrite_and_needs_encryption(laptop, home, tmp_path):
    say(laptop, "s1", SECRET)
    key_file = tmp_path / "aish.key"
    key_file.write_text("something else")
    refused = run(laptop, "aish", "--export-key", str(key_file))
    assert refused.returncode != 0 and b"already exists" in refused.stderr
    assert key_file.read_text() == "something else"
    plain = device_env(tmp_path, "plain", home)
    proc = run(plain, "aish", "--export-key", str(tmp_path / "other.key"))
    assert proc.returncode != 0 and b"encryption is off" in proc.stderr
    assert not (tmp_path / "other.key").exists()
    bad = run(plain, "aish", "--import-key", str(key_file))
    assert bad.returncode != 0 and b"not a key file" in bad.stderr
    assert b"Traceback" not in bad.stderr


def test_messages_stored_before_encryption_travel_sealed(home, tmp_path, shared):
    plain = device_env(tmp_path, "laptop", home)
    say(plain, "s1", SECRET)  # written before encryption was turned on
    laptop = encrypt(plain, "laptop passphrase")
    say(laptop, "s1", "sealed from the start")
    ok(sync(laptop, shared))
    travelled = b"".join(p.read_bytes() for p in files_of(shared))
    assert b"4721" not in travelled and b"sealed from the start" not in travelled
