"""Helpers for the follow and floor tests: programs run in the background with their output
gathered as it comes, and replies held back until a test lets them go."""

from __future__ import annotations

import re
import subprocess
import threading
import time

import pytest
from conftest import BIN, run
from manage_support import select_redis
from redis_support import URL_FIXTURES

DEADLINE = 120.0  # a safety net for waits on conditions, never the assertion itself
PIECES = ["Streaming ", "slowly, ", "piece ", "by ", "piece."]  # a reply streamed in pieces
WHOLE = "".join(PIECES)


@pytest.fixture(params=["file", "redis", "redis-cluster"])
def store_env(request, env):
    """The test's environment on the file store, then on a real redis-server, then on a
    3-master Redis Cluster (``AISH_TEST_STORE`` says which)."""
    if request.param.startswith("redis"):
        select_redis(env, request.getfixturevalue(URL_FIXTURES[request.param]))
    return {**env, "AISH_TEST_STORE": request.param}


def new_session(env: dict) -> str:
    """A new stored session with one exchange ("start"); its id."""
    done = run(env, "apollo", "--session", "--get-id", input="start")
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


class Gate:
    """``server.chunks`` for the scripted server: the first request's reply stops after its
    first piece until `release`; every later request streams at once."""

    def __init__(self, pieces: list[str]):
        self.pieces = pieces
        self.opened = threading.Event()
        self.requests = 0
        self._lock = threading.Lock()

    def __iter__(self):
        with self._lock:
            self.requests += 1
            first = self.requests == 1
        for number, piece in enumerate(self.pieces):
            if first and number == 1:
                self.opened.wait(DEADLINE)
            yield piece

    def release(self) -> None:
        self.opened.set()


class Program:
    """A console script in the background; its stdout and stderr gathered as they arrive."""

    def __init__(self, env: dict, *args: str, input: str | None = None):
        self.proc = subprocess.Popen([str(BIN / args[0]), *args[1:]], env=env,
                                     stdin=subprocess.PIPE if input is not None
                                     else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [threading.Thread(target=self._gather, args=(s, into), daemon=True)
                         for s, into in ((self.proc.stdout, self.out),
                                         (self.proc.stderr, self.err))]
        for thread in self._threads:
            thread.start()
        if input is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(input.encode())
            self.proc.stdin.close()

    @staticmethod
    def _gather(stream, into: list[str]) -> None:
        for chunk in iter(lambda: stream.read1(65536), b""):
            into.append(chunk.decode("utf-8", "replace"))

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def wait_for(self, pattern: str, stream: str = "stdout") -> re.Match:
        regex = re.compile(pattern)
        deadline = time.monotonic() + DEADLINE
        while True:
            text = self.stdout if stream == "stdout" else self.stderr
            found = regex.search(text)
            if found:
                return found
            if self.proc.poll() is not None and not any(t.is_alive() for t in self._threads):
                raise AssertionError(f"ended before {pattern!r}:\n{self.stdout}\n{self.stderr}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r}:\n{self.stdout}\n{self.stderr}")
            time.sleep(0.02)

    def finish(self) -> int:
        code = self.proc.wait(timeout=DEADLINE)
        for thread in self._threads:
            thread.join(timeout=DEADLINE)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=DEADLINE)
        for thread in self._threads:
            thread.join(timeout=DEADLINE)


def until(condition, what: str):
    """Wait for ``condition()`` to be true (its value is returned)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.02)
