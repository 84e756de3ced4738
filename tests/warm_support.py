"""Helpers for the warm-process tests: a private runtime folder per test, starting a daemon and
waiting until it listens, finding it and its children, and stopping it afterwards."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import pytest

DEADLINE = 120.0  # a safety net for the polls below, never what a test asserts


def wait_until(condition, what: str, deadline: float = DEADLINE):
    end = time.monotonic() + deadline
    while True:
        got = condition()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """Running (a zombie, which nobody may reap in a container, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Warm:
    """The runtime folder of one test and the daemon serving it."""

    def __init__(self, runtime: Path):
        self.runtime = runtime
        self.folder = runtime / "aish"
        self.sock = self.folder / "warm.sock"
        self.lock = self.folder / "warm.lock"
        self.log = self.folder / "warm.log"
        self.seen: set[int] = set()

    def env(self, env: dict) -> dict:
        return {**env, "AISH_WARM": "1", "XDG_RUNTIME_DIR": str(self.runtime)}

    def pid(self) -> int | None:
        try:
            pid = int(self.lock.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        self.seen.add(pid)
        return pid if alive(pid) else None

    def listening(self) -> bool:
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(self.sock))
            except OSError:
                return False
        return True

    def start(self, env: dict) -> int:
        """Start a daemon for ``env`` (as a first command would) and wait until it listens."""
        from aish.warm import spawn

        old = self.pid()
        with patched_environ(env):
            spawn.start(os.environ, None)
        wait_until(lambda: self.listening() and self.pid() not in (None, old),
                   "the warm process to listen")
        pid = self.pid()
        assert pid is not None
        return pid

    def children(self) -> list[int]:
        pid = self.pid()
        if pid is None:
            return []
        found = []
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(p) for p in (task / "children").read_text().split()]
        return [p for p in found if alive(p)]

    def served(self) -> int:
        """How many commands daemons of this folder have run."""
        try:
            return self.log.read_text().count(" runs a command")
        except OSError:
            return 0

    def stop(self) -> None:
        for pid in {*self.seen, self.pid() or 0} - {0}:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        for pid in self.seen:
            wait_until(lambda pid=pid: not alive(pid), f"daemon {pid} to leave")


@contextlib.contextmanager
def patched_environ(env: dict):
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def warm():
    """A private runtime folder (short: a socket path has at most 107 bytes), stopped after."""
    runtime = Path(tempfile.mkdtemp(prefix="aw-", dir="/tmp"))
    os.chmod(runtime, 0o700)
    state = Warm(runtime)
    yield state
    state.stop()
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def private_runtime_folder():
    """Programs a test runs with an environment of its own making (not the `home` fixture's,
    which turns the warm process off) would start daemons in the user's real runtime folder;
    this session's get a folder of their own, and its daemons are stopped at the end."""
    runtime = Path(tempfile.mkdtemp(prefix="aw-session-", dir="/tmp"))
    os.chmod(runtime, 0o700)
    saved = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    yield runtime
    if saved is None:
        os.environ.pop("XDG_RUNTIME_DIR", None)
    else:
        os.environ["XDG_RUNTIME_DIR"] = saved
    state = Warm(runtime)
    state.pid()
    state.stop()
    shutil.rmtree(runtime, ignore_errors=True)

