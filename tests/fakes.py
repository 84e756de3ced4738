"""The one fake provider, for tests that drive the session core or session mode in-process.

Tests that run the real program use the scripted OpenAI-compatible server instead
(tests/fault_server.py), so that the provider under test is the real one.
"""

from __future__ import annotations

from collections.abc import Callable

from aish.errors import ProviderError
from aish.messages import Chunk, Usage


class Scripted:
    """A provider that records every chat it is sent (``chats``) and answers it.

    The answer is ``reply`` (a text, or a function of the chat that makes one; default
    ``reply N``, N counting the requests) in one piece and a
    finished chunk with usage (5, 2); or exactly ``chunks``, for streams that are cut short or
    odd. The first ``fail`` requests raise a ProviderError ("connection refused") instead.
    ``context_length`` (the model's context) and ``context_limit`` (the prompt budget the
    session must keep to), if given, size the session's window as a real provider's would.
    """

    endpoint = "scripted"
    model = "scripted-model"

    def __init__(self, reply: str | Callable[[list], str] | None = None, *,
                 chunks: list[Chunk] | None = None, fail: int = 0,
                 context_length: int | None = None, context_limit: int | None = None):
        self.reply = reply
        self.chunks = chunks
        self.fail = fail
        self.chats: list[list] = []
        self.options: list[dict] = []  # the per-call options of each request, in order
        if context_length is not None:
            self.context_length = context_length
        if context_limit is not None:
            self.context_limit = context_limit

    def stream(self, chat, specialist, **options):
        self.chats.append(chat)
        self.options.append(options)
        if self.fail:
            self.fail -= 1
            raise ProviderError(self.endpoint, "connection refused")
        if self.chunks is not None:
            yield from self.chunks
            return
        if callable(self.reply):
            text = self.reply(chat)
        else:
            text = self.reply if self.reply is not None else f"reply {len(self.chats)}"
        yield Chunk(text)
        yield Chunk(finished=True, usage=Usage(5, 2))
