"""Helpers for the conversation-tree tests: an instant provider for the session core in process,
and the program's environment with either store selected."""

from __future__ import annotations

import pytest
from manage_support import select_redis

from aish.messages import Chunk


class Echo:
    """A provider that answers ``re: <the last message>`` at once and remembers each chat."""

    endpoint = "echo"
    model = "echo"
    max_tokens = 24
    context_length = None
    context_limit = None

    def __init__(self):
        self.chats: list[list] = []

    def stream(self, chat, specialist):
        self.chats.append(chat)
        yield Chunk(text=f"re: {chat[-1].content}")
        yield Chunk(finished=True, model="echo")


@pytest.fixture(params=["file", "redis"])
def store_env(request, env):
    """``env`` (pointed at the scripted server) keeping sessions in files or in Redis."""
    if request.param == "redis":
        select_redis(env, request.getfixturevalue("redis_url"))
    return env
