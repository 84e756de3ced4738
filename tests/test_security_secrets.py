"""API keys from the environment or the config file never reach session files, exports,
templates, logs or error messages — not even when the endpoint echoes them back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis
from conftest import run

KEY = "sk-test-SECRET123"


def everything_under(home: str, skip: tuple[str, ...] = ()) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in Path(home).rglob("*")
            if p.is_file() and p.name not in skip}


def leaks(home: str, outputs: list[bytes], skip: tuple[str, ...] = ()) -> list[str]:
    found = [str(p) for p, data in everything_under(home, skip).items() if KEY.encode() in data]
    found += [f"output {i}" for i, out in enumerate(outputs) if KEY.encode() in out]
    return found


def exercise(env: dict) -> list[bytes]:
    """Every path that writes or prints: a failing exchange, retry, and the management
    commands that copy session content somewhere."""
    outputs = []

    def go(*args, input=None):
        result = run(env, *args, input=input, timeout=600)
        outputs.extend([result.stdout, result.stderr])
        return result

    failed = go("apollo", "--session-id", "leak-check", input="keep this message")
    assert failed.returncode == 4, failed.stderr
    assert b"HTTP 401" in failed.stderr or b"401" in failed.stderr
    assert b"keep this message" not in failed.stderr
    assert go("apollo", "--session-id", "leak-check", "--retry").returncode == 4
    assert go("apollo", "a one-shot question").returncode == 4
    for args in (("aish", "--list-sessions", "--all", "--json"),
                 ("aish", "--session-info", "leak-check"),
                 ("aish", "--save-session", "leak-check"),
                 ("aish", "--export-session", "leak-check"),
                 ("aish", "--export-sessions"),
                 ("aish", "--save-template", "tpl", "leak-check"),
                 ("aish", "--session-stats")):
        result = go(*args)
        assert result.returncode == 0, (args, result.stderr)
    saved = outputs[-2 * 4]  # --save-session's stdout, for a restore
    assert go("aish", "--restore-session", "--as", "restored", input=saved).returncode == 0
    assert go("aish", "--prune-session", "restored", "--keep-recent", "1").returncode == 0
    return outputs


@pytest.fixture
def endpoint(server):
    server.mode = "401"  # and its error quotes the API key it received
    return server


def test_key_from_the_environment_never_written_or_shown(home, endpoint):
    env = {**home, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": endpoint.base}
    outputs = exercise(env)
    assert any(KEY in h.get("authorization", "") for h in endpoint.headers)  # it was sent
    assert leaks(env["HOME"], outputs) == []
    assert (Path(env["HOME"]) / ".aish" / "audit.log").exists()


def test_key_from_the_config_file_never_copied(home, endpoint):
    cfg = Path(home["HOME"]) / ".aish" / "config.yaml"
    cfg.write_text(f"providers:\n  openai:\n    base_url: {endpoint.base}\n"
                   f"    api_key: {KEY}\n    max_retries: 0\n")
    cfg.chmod(0o600)
    outputs = exercise(home)
    assert any(KEY in h.get("authorization", "") for h in endpoint.headers)
    assert leaks(home["HOME"], outputs, skip=("config.yaml",)) == []


def test_key_never_reaches_redis(home, endpoint, redis_url):
    cfg = Path(home["HOME"]) / ".aish" / "config.yaml"
    cfg.write_text(cfg.read_text() + f"sessions:\n  storage: {{type: redis, url: '{redis_url}'}}\n")
    env = {**home, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": endpoint.base}
    outputs = exercise(env)
    assert leaks(env["HOME"], outputs) == []
    client = redis.Redis.from_url(redis_url)
    for key in client.keys("*"):
        assert KEY.encode() not in (client.dump(key) or b""), key


def test_refused_connection_names_the_endpoint_not_the_key(home):
    env = {**home, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    result = run(env, "apollo", "--session-id", "offline", input="hello")
    assert result.returncode == 4
    assert b"127.0.0.1:9" in result.stderr
    assert leaks(env["HOME"], [result.stdout, result.stderr]) == []


@pytest.mark.parametrize(("mode", "has_key", "warned"), [
    (0o644, True, True), (0o640, True, True), (0o600, True, False), (0o644, False, False)])
def test_config_readable_by_others_with_a_key_is_warned_about(home, mode, has_key, warned):
    cfg = Path(home["HOME"]) / ".aish" / "config.yaml"
    cfg.write_text("providers:\n  openai:\n"
                   + (f"    api_key: {KEY}\n" if has_key else "    model: gpt-4o-mini\n"))
    os.chmod(cfg, mode)
    result = run(home, "aish", "--list-sessions")
    assert result.returncode == 0
    assert (b"readable by others" in result.stderr) == warned
    if warned:
        assert b"chmod 600" in result.stderr and str(cfg).encode() in result.stderr
    assert KEY.encode() not in result.stderr + result.stdout
