"""A real `aish --sync --dir` killed with SIGKILL part-way, pushing and pulling, at several
points: the next run ends where an uninterrupted run ends, and every log is sound."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BIN, run
from sync_support import device_env, ok, sessions_of, sync

from aish.management.integrity import inspect
from aish.messages import ASSISTANT, USER, Message

SESSIONS = 60


def fill(env: dict, count: int) -> None:
    sessions = sessions_of(env)
    for n in range(count):
        session = sessions.open("apollo", f"k{n:03d}", create_missing=True)
        for text in ("one", "two"):
            session.add(Message(USER, f"{text} {n}", "apollo", time.time()))
            session.add(Message(ASSISTANT, f"answer {text} {n}", "apollo", time.time()))
        session.save()


def killed_when(env: dict, folder: Path, ready) -> int:
    """Start a sync and SIGKILL it as soon as ``ready()`` holds (or let it end, if it ends
    first: the next run must be right either way)."""
    proc = subprocess.Popen([str(BIN / "aish"), "--sync", "--dir", str(folder)], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None and not ready():
            time.sleep(0.002)  # polling a condition, not waiting for time to pass
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    return proc.returncode


def state(env: dict) -> dict:
    sessions = sessions_of(env)
    out = {}
    for sid in sessions.ids():
        loaded = sessions.load(sid)
        out[sid] = ({m.id: m.content for m in loaded.messages},
                    {n: h.id for n, h in loaded.tree.refs.items()},
                    getattr(loaded.tree.head("main"), "id", None))
        assert not inspect(sessions, sid).problems, sid
    return out


def pushed(folder: Path) -> int:
    root = folder / "aish-sync" / "v1"
    return sum(1 for _ in root.glob("k*/*.jsonl")) if root.exists() else 0


def held(env: dict) -> int:
    return sum(1 for _ in (Path(env["HOME"]) / ".aish" / "sessions").glob("k*.jsonl"))


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_sigkill_mid_sync_resumes_to_the_same_end(home, tmp_path, fraction):
    home = {**home, "AISH_MAX_SESSIONS": str(SESSIONS + 10)}
    laptop, desktop, server = (device_env(tmp_path, n, home)
                               for n in ("laptop", "desktop", "server"))
    shared = tmp_path / "shared"
    fill(laptop, SESSIONS)
    mark = int(SESSIONS * fraction)
    kills = [killed_when(laptop, shared, lambda: pushed(shared) >= mark)]  # pushing
    ok(sync(laptop, shared))
    assert pushed(shared) == SESSIONS
    kills.append(killed_when(desktop, shared, lambda: held(desktop) >= mark))  # pulling
    assert -signal.SIGKILL in kills  # at least one run really was cut short
    ok(sync(desktop, shared))
    ok(sync(server, shared))  # the same, uninterrupted
    assert state(desktop) == state(server) == state(laptop)
    assert len(state(desktop)) == SESSIONS
    for env in (laptop, desktop, server):
        assert "Up to date" in ok(sync(env, shared))
    assert "verified" in ok(run(desktop, "aish", "--sync", "--verify", "--dir", str(shared)))
    assert "OK" in ok(run(desktop, "aish", "--validate-session", f"k{mark:03d}"))
