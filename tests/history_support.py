"""Shared by the history tests: a session with a branch and a regenerated reply, made once per
module through the real program with the scripted server (it answers ``ok: <last message>``)."""

from __future__ import annotations

import os

import pytest
from conftest import BIN, TEST_CONFIG, run
from fault_server import FaultServer

SECRET = "sk-abcdefghijklmnopqrstuvwx"


def ok(env, *args, input=None, **extra):
    result = run(env, *args, input=input, **extra)
    assert result.returncode == 0, result.stderr.decode()
    return result


def fails(env, code, *args):
    result = run(env, *args)
    assert result.returncode == code, (result.returncode, result.stderr.decode())
    line = result.stderr.decode().strip()
    assert "Traceback" not in line and len(line.splitlines()) == 1, line
    return line


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """(env, sid): main has q1..q5 with the last reply regenerated; ``alt`` starts after
    message 2 with one exchange. The first question carries an API key."""
    home = tmp_path_factory.mktemp("history") / "home"
    (home / ".aish").mkdir(parents=True)
    (home / ".aish" / "config.yaml").write_text(TEST_CONFIG)
    os.chmod(home / ".aish" / "config.yaml", 0o600)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AISH_", "OPENAI_")) and k not in ("NO_COLOR", "COLUMNS")}
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
               OPENAI_API_KEY="test-key")
    with FaultServer(lifetime=3600) as server:
        env["OPENAI_BASE_URL"] = server.base
        sid = ok(env, "apollo", "--session", "--get-id",
                 input=f"q1 my key is {SECRET}").stdout.decode().strip()
        for question in ("q2", "q3", "q4", "q5"):
            ok(env, "apollo", "--session", sid, input=question)
        ok(env, "aish", "--branch-session", sid, "alt", "--at", "2")
        ok(env, "apollo", "--session", sid, "--branch", "alt",
           input="other way, a long question that goes on well past forty columns")
        ok(env, "apollo", "--session", sid, "--regenerate")
    del env["OPENAI_BASE_URL"]  # drawing needs no model
    return env, sid
