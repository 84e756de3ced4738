"""Hostile input through the real console scripts: huge stdin, invalid UTF-8, over-long messages
and sessions that would grow past their limit — each a clear error (or a note), never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run

from aish.store.filestore import FileStore
from aish.store.redisstore import RedisStore


@pytest.fixture(params=["file", "redis"])
def env(request, home, server):
    """A HOME on either backend, replies from the fake endpoint."""
    storage = "{type: file}"
    url = None
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        storage = f"{{type: redis, url: '{url}'}}"
    cfg = Path(home["HOME"]) / ".aish" / "config.yaml"
    cfg.write_text(cfg.read_text() + f"sessions:\n  storage: {storage}\n")
    env = {**home, "OPENAI_BASE_URL": server.base, "OPENAI_API_KEY": "k"}
    env["_store"] = url or str(Path(home["HOME"]) / ".aish" / "sessions")
    return env


def store_of(env: dict):
    where = env["_store"]
    return RedisStore(where) if where.startswith("redis://") else FileStore(Path(where))


def limits(env: dict, **values: int) -> None:
    cfg = Path(env["HOME"]) / ".aish" / "config.yaml"
    body = ", ".join(f"{k}: {v}" for k, v in values.items())
    cfg.write_text(cfg.read_text() + f"  limits: {{{body}}}\n")


def no_traceback(result) -> None:
    assert b"Traceback" not in result.stderr, result.stderr.decode()


def test_stdin_over_the_limit(env):
    limits(env, max_stdin_bytes=1000)
    result = run(env, "apollo", "--session", "--get-id", input=b"x" * 5000)
    assert result.returncode == 6
    assert b"stdin is larger than the limit of 1000 bytes" in result.stderr
    assert b"max_stdin_bytes" in result.stderr
    assert result.stdout == b""
    no_traceback(result)
    assert store_of(env).ids() == []  # nothing was created


def test_stdin_over_the_default_limit(env):
    result = run(env, "apollo", "--session-id", "big", input=b"y" * (4 * 1024 * 1024 + 1))
    assert result.returncode == 6 and b"stdin is larger" in result.stderr
    no_traceback(result)


def test_stdin_just_under_the_limit_is_accepted(env, server):
    limits(env, max_stdin_bytes=1000)
    result = run(env, "apollo", "--session-id", "fits", input=b"z" * 999)
    assert result.returncode == 0, result.stderr
    assert store_of(env).load("fits").messages[0].content == "z" * 999


def test_invalid_utf8_is_replaced_and_noted(env, server):
    server.reply = "noted"
    result = run(env, "apollo", "--session-id", "bytes",
                 input=b"caf\xe9 \xff\xfe and \xc3\x28 but also \xe2\x9c\x93 fine")
    assert result.returncode == 0, result.stderr
    assert b"not valid UTF-8" in result.stderr
    no_traceback(result)
    stored = store_of(env).load("bytes").messages[0].content
    assert stored == "caf\ufffd \ufffd\ufffd and \ufffd( but also \u2713 fine"
    sent = server.requests[-1]["messages"][-1]["content"]
    assert sent == stored


def test_nul_and_control_bytes_on_stdin_are_kept_as_text(env, server):
    result = run(env, "apollo", "--session-id", "ctl", input=b"a\x00b\x1b[2Jc\x07")
    assert result.returncode == 0, result.stderr
    assert store_of(env).load("ctl").messages[0].content == "a\x00b\x1b[2Jc\x07"


def test_message_over_the_limit(env):
    limits(env, max_message_chars=50)
    result = run(env, "apollo", "--session-id", "long", input="w" * 51)
    assert result.returncode == 6
    assert b"message too long (51 characters, limit 50)" in result.stderr
    no_traceback(result)
    store = store_of(env)
    assert not store.exists("long") or store.load("long").messages == []


def test_session_over_the_size_limit(env, server):
    limits(env, max_session_bytes=3000)
    server.reply = "short"
    for i in range(3):
        assert run(env, "apollo", "--session-id", "grows", input=f"m{i} " + "p" * 400
                   ).returncode == 0
    result = run(env, "apollo", "--session-id", "grows", input="q" * 2000)
    assert result.returncode == 6
    assert b"session size limit" in result.stderr and b"--prune-session" in result.stderr
    no_traceback(result)
    loaded = store_of(env).load("grows")  # still whole and loadable
    assert loaded.problems == [] and len(loaded.messages) == 6
    listing = run(env, "aish", "--list-sessions", "--json")
    assert [r["id"] for r in json.loads(listing.stdout)] == ["grows"]


def test_restore_of_huge_input_is_refused(env):
    limits(env, max_stdin_bytes=1000, max_session_bytes=2000)
    result = run(env, "aish", "--restore-session", input=b"[" + b" " * 10000 + b"]")
    assert result.returncode == 6
    no_traceback(result)


def test_deeply_nested_json_on_restore(env):
    result = run(env, "aish", "--restore-session", input=b"[" * 100000)
    assert result.returncode != 0
    no_traceback(result)
