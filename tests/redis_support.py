"""Test support for the Redis, store-contract and security suites.

- `redis_server`: a real ``redis-server`` on 127.0.0.1 and a free port, no persistence, started
  once per test session (fakeredis is no substitute: it has no real Lua, TTLs or concurrency).
  Without the binary the Redis tests are skipped, and the skip is announced on the terminal
  (not only in pytest's summary), because a green run without them proves much less.
- `redis_url`: that server's URL, flushed before each test.
- `redis_cluster`, `redis_cluster_url`: the same for a 3-master Redis Cluster on loopback
  (``redis-server --cluster-enabled yes`` and ``redis-cli --cluster create``), started once.

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
    _wait_for_ping(server)
    return server


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


# -- a 3-master Redis Cluster on loopback ---------------------------------------------------


@dataclass
class RedisCluster:
    """Three masters sharing the 16384 slots, no replicas; ``url`` names one of them with the
    cluster scheme (aish finds the others through it)."""

    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def client(self):
        from redis.cluster import RedisCluster as Client

        return Client(host="127.0.0.1", port=self.nodes[0].port)


def _cluster_ready(nodes: list[RedisServer]) -> bool:
    """Every node says the cluster is whole: all slots served, all three nodes known."""
    for node in nodes:
        client = node.client()
        try:
            info = client.execute_command("CLUSTER", "INFO")
        finally:
            client.close()
        text = info.decode() if isinstance(info, bytes) else str(info)
        fields = dict(line.split(":", 1) for line in text.split() if ":" in line)
        if (fields.get("cluster_state") != "ok" or fields.get("cluster_slots_ok") != "16384"
                or fields.get("cluster_known_nodes") != str(len(nodes))):
            return False
    return True


def _cluster_port() -> int:
    """A free port whose cluster bus port (the port + 10000) is free and in range too."""
    while True:
        port = _free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def start_cluster(workdir, masters: int = 3) -> RedisCluster:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        pytest.skip(SKIP_REASON)
    nodes: list[RedisServer] = []
    try:
        for n in range(masters):
            port = _cluster_port()
            folder = Path(workdir) / f"node{n}"
            folder.mkdir(parents=True, exist_ok=True)
            process = subprocess.Popen(
                [server, "--bind", "127.0.0.1", "--port", str(port), "--cluster-enabled", "yes",
                 "--cluster-config-file", str(folder / "nodes.conf"), "--dir", str(folder),
                 "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            nodes.append(RedisServer(port, process))
        for node in nodes:
            _wait_for_ping(node)
        subprocess.run(
            [cli, "--cluster", "create", *[f"127.0.0.1:{node.port}" for node in nodes],
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=120)
        deadline = time.time() + 600  # a safety net on a busy machine, not a measure
        while not _cluster_ready(nodes):
            if time.time() > deadline:
                raise RuntimeError("the Redis Cluster did not become ready")
            time.sleep(0.05)
    except BaseException:
        for node in nodes:
            stop_redis(node)
        raise
    return RedisCluster(nodes)


def _wait_for_ping(server: RedisServer) -> None:
    deadline = time.time() + 300  # a safety net on a busy machine, not a measure
    while True:
        try:
            if server.client().ping():
                return
        except Exception:
            if server.process.poll() is not None or time.time() > deadline:
                server.process.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)


@pytest.fixture(scope="session")
def redis_cluster(request, tmp_path_factory):
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        _announce(request, SKIP_REASON)
        pytest.skip(SKIP_REASON)
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    for node in cluster.nodes:
        stop_redis(node)


@pytest.fixture
def redis_cluster_url(redis_cluster) -> str:
    """The cluster's URL, every master flushed before each test."""
    for node in redis_cluster.nodes:
        client = node.client()
        client.flushall()
        client.close()
    return redis_cluster.url


def redis_client(url: str):
    """A redis-py client for a plain or a cluster URL (a test's own reads of what aish stored)."""
    from aish.store.rediscluster import cluster_url

    plain = cluster_url(url)
    if plain is None:
        import redis

        return redis.Redis.from_url(url)
    from redis.cluster import RedisCluster as Client

    return Client.from_url(plain)


# The URL fixture of each Redis kind a backend-parametrised test runs on.
URL_FIXTURES = {"redis": "redis_url", "redis-cluster": "redis_cluster_url"}
