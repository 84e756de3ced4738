"""Test support for the Redis, store-contract and security suites.

- `redis_server`: a real ``redis-server`` on 127.0.0.1 and a free port, no persistence, started
  once per test session (fakeredis is no substitute: it has no real Lua, TTLs or concurrency).
  Without the binary the Redis tests are skipped, and the skip is announced on the terminal
  (not only in pytest's summary), because a green run without them proves much less.
- `redis_url`: that server's URL, flushed before each test.

Console-script tests that need replies without the model use the `server` fixture (conftest.py:
the scripted OpenAI-compatible server in fault_server.py).

Test modules import the fixtures they use: ``from redis_support import redis_url  # noqa``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SKIP_REASON = (
    "REDIS TESTS SKIPPED: no redis-server binary on PATH. The Redis backend is NOT tested. "
    "Install it (apt-get install -y redis-server) and run again."
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _announce(request, text: str) -> None:
    capture = request.config.pluginmanager.getplugin("capturemanager")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if capture is None or reporter is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line("!" * 100, red=True, bold=True)
        reporter.write_line(text, red=True, bold=True)
        reporter.write_line("!" * 100, red=True, bold=True)


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, db=0)


def start_redis(workdir, port: int | None = None) -> RedisServer:
    """A new redis-server (no persistence) on ``port`` or a free one, answering pings."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(SKIP_REASON)
    port = port or _free_port()
    Path(workdir).mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(workdir), "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    server = RedisServer(port, process)
    deadline = time.time() + 20
    while True:
        try:
            if server.client().ping():
                return server
        except Exception:
            if process.poll() is not None or time.time() > deadline:
                process.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)


def stop_redis(server: RedisServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def redis_server(request, tmp_path_factory):
    if shutil.which("redis-server") is None:
        _announce(request, SKIP_REASON)
        pytest.skip(SKIP_REASON)
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    stop_redis(server)


@pytest.fixture(scope="module")
def acl_server(tmp_path_factory):
    """A server of the test module's own, for tests that make ACL users: users outlive
    FLUSHALL, so the suite's shared server is left alone."""
    server = start_redis(tmp_path_factory.mktemp("redis-acl"))
    yield server
    stop_redis(server)


@pytest.fixture
def redis_url(redis_server) -> str:
    client = redis_server.client()
    client.flushall()
    client.close()
    return redis_server.url
