"""Helpers for the conversation-tree tests: an instant provider for the session core in process,
running the program, and its environment with either store selected."""

from __future__ import annotations

import pytest
from conftest import run
from fakes import Scripted
from manage_support import select_redis


def Echo():  # noqa: N802 - used like the class it stands for
    """The fake provider answering ``re: <the last message>`` at once."""
    return Scripted(lambda chat: f"re: {chat[-1].content}")


def ok(env, *args, input=None):
    """Run a console script that must succeed; its result."""
    result = run(env, *args, input=input)
    assert result.returncode == 0, result.stderr.decode()
    return result


@pytest.fixture(params=["file", "redis"])
def store_env(request, env):
    """``env`` (pointed at the scripted server) keeping sessions in files or in Redis."""
    if request.param == "redis":
        select_redis(env, request.getfixturevalue("redis_url"))
    return env
