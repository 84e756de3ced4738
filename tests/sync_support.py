"""Two devices (two HOMEs named laptop and desktop) and a folder they share, for the sync tests.

Sessions are written in-process through `Sessions` (no model needed); sync runs through the real
console script, as a user runs it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import run

from aish import config as config_module
from aish.messages import ASSISTANT, USER, Message
from aish.sessions import Sessions
from aish.store import open_store


def device_env(tmp_path: Path, name: str, base: dict) -> dict:
    env = {**base, "HOME": str(tmp_path / name), "AISH_DEVICE_NAME": name}
    aish_dir = Path(env["HOME"]) / ".aish"
    aish_dir.mkdir(parents=True)
    (aish_dir / "config.yaml").write_text((Path(base["HOME"]) / ".aish" / "config.yaml")
                                          .read_text())
    os.chmod(aish_dir / "config.yaml", 0o600)
    return env


@pytest.fixture
def laptop(home, tmp_path):
    return device_env(tmp_path, "laptop", home)


@pytest.fixture
def desktop(home, tmp_path):
    return device_env(tmp_path, "desktop", home)


@pytest.fixture
def shared(tmp_path):
    return tmp_path / "shared"


def diverge(laptop: dict, desktop: dict, shared: Path) -> None:
    """One session both devices hold, then moved on by each while apart and synced."""
    say(laptop, "s1", "base")
    sync(laptop, shared)
    sync(desktop, shared)
    say(laptop, "s1", "from laptop")
    say(desktop, "s1", "from desktop")
    sync(laptop, shared)


def sessions_of(env: dict) -> Sessions:
    """The session core over ``env``'s store, with its key when encryption is on."""
    config = config_module.load(env)
    if not config.encrypt:
        return Sessions(open_store(config), config)
    from aish.store.crypto import codec_for
    from aish.store.filestore import FileStore

    return Sessions(FileStore(config.session_dir, codec=codec_for(config, env)), config)


def encrypt(env: dict, passphrase: str | None) -> dict:
    """``env`` with encryption on (and this passphrase, when given; no keyring either way)."""
    cfg = Path(env["HOME"]) / ".aish" / "config.yaml"
    cfg.write_text(cfg.read_text() + "sessions:\n  storage: {encrypt: true}\n")
    env = {**env, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    if passphrase:
        env["AISH_ENCRYPTION_KEY"] = passphrase
    return env


def say(env: dict, sid: str, *questions: str, ai: str = "apollo", branch: str = "main"
        ) -> None:
    """Add a question and its answer per ``questions`` on ``branch`` (which must exist) of
    the session (created when missing)."""
    sessions = sessions_of(env)
    session = sessions.open(ai, sid, create_missing=True)
    session.branch = branch
    for text in questions:
        now = time.time()
        session.add(Message(USER, text, ai, now))
        session.add(Message(ASSISTANT, f"answer to {text}", ai, now + 0.001))
    session.save()


def contents(env: dict, sid: str, branch: str = "main") -> list[str]:
    """The texts on ``branch`` of ``sid``, oldest first."""
    sessions = sessions_of(env)
    loaded = sessions.load(sid)
    return [m.content for m in loaded.path(loaded.tree.head(branch))]


def all_contents(env: dict, sid: str) -> set[str]:
    return {m.content for m in sessions_of(env).load(sid).messages}


def sync(env: dict, folder: Path, *args: str):
    return run(env, "aish", "--sync", "--dir", str(folder), *args)


def ok(proc) -> str:
    assert proc.returncode == 0, (proc.returncode, proc.stderr.decode())
    assert b"Traceback" not in proc.stderr
    return proc.stdout.decode() + proc.stderr.decode()


def logs(folder: Path, sid: str) -> list[Path]:
    return sorted((folder / "aish-sync" / "v1" / sid).glob("*.jsonl"))


def snapshot(*roots: Path) -> dict[str, bytes]:
    """Every file below ``roots`` and its bytes (caches aside), to show a run changed nothing."""
    out = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.name.endswith((".idx", ".lock", ".sqlite3",
                                                              ".config-cache.json")):
                out[str(path)] = path.read_bytes()
    return out
