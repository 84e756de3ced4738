"""Test support for the Redis, store-contract and security suites.

- `redis_server`: a real ``redis-server`` on 127.0.0.1 and a free port, no persistence, started
  once per test session (fakeredis is no substitute: it has no real Lua, TTLs or concurrency).
  Without the binary the Redis tests are skipped, and the skip is announced on the terminal
  (not only in pytest's summary), because a green run without them proves much less.
- `redis_url`: that server's URL, flushed before each test.
- `fake_openai`: a tiny OpenAI-compatible chat endpoint on loopback that streams a scripted
  reply (or fails on request) and records every request, so console-script tests can run an
  exchange without the model.

Test modules import the fixtures they use: ``from redis_support import redis_url  # noqa``.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


@pytest.fixture
def redis_url(redis_server) -> str:
    client = redis_server.client()
    client.flushall()
    client.close()
    return redis_server.url


# -- a scripted OpenAI-compatible endpoint ----------------------------------------------------


@dataclass
class FakeOpenAI:
    base_url: str
    reply: str = "Hello from the fake endpoint."
    fail_status: int | None = None  # answer every request with this HTTP status
    requests: list = field(default_factory=list)
    headers: list = field(default_factory=list)


def _handler(state: FakeOpenAI):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep the test output clean
            pass

        def do_GET(self):  # /v1/models
            self._json(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            state.requests.append(body)
            state.headers.append({k.lower(): v for k, v in self.headers.items()})
            if state.fail_status:
                # A hostile endpoint: it echoes the credentials it was sent in its error.
                auth = self.headers.get("Authorization", "")
                self._json(state.fail_status, {"error": {
                    "message": f"invalid credentials {auth}", "type": "invalid_request_error"}})
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            base = {"id": "c1", "object": "chat.completion.chunk", "created": 0,
                    "model": body.get("model", "fake")}
            words = state.reply.split(" ")
            for i, word in enumerate(words):
                text = word + (" " if i < len(words) - 1 else "")
                self._event({**base, "choices": [
                    {"index": 0, "delta": {"content": text}, "finish_reason": None}]})
            self._event({**base, "choices": [
                {"index": 0, "delta": {}, "finish_reason": "stop"}]})
            self._event({**base, "choices": [], "usage": {
                "prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}})
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

        def _event(self, data: dict) -> None:
            self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
            self.wfile.flush()

        def _json(self, status: int, data: dict) -> None:
            payload = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@pytest.fixture
def fake_openai():
    port = _free_port()
    state = FakeOpenAI(f"http://127.0.0.1:{port}/v1")
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
