"""Per-call options of `Provider.stream`: a side job (a title, a summary) asks the session's own
provider for a small, quiet request without changing the provider's settings."""

from __future__ import annotations

import pytest
from fault_server import FaultServer

from aish.errors import ProviderError
from aish.messages import ChatMessage
from aish.providers.openai_provider import OpenAIProvider
from aish.specialists import roster

APOLLO = roster({})["apollo"]
CHAT = [ChatMessage("system", "be brief"), ChatMessage("user", "hello")]


def provider_for(server: FaultServer) -> tuple[OpenAIProvider, list[str]]:
    provider = OpenAIProvider(server.base, "test-key", "fault", {"max_tokens": 300},
                              timeout=20, max_retries=2)
    heard: list[str] = []
    provider.notify = lambda kind, _text: heard.append(kind)
    return provider, heard


def text_of(chunks) -> str:
    return "".join(c.text for c in chunks)


def test_max_tokens_and_quiet_apply_to_one_call_only():
    with FaultServer() as server:
        provider, heard = provider_for(server)
        assert text_of(provider.stream(CHAT, APOLLO, max_tokens=7, quiet=True)) == "ok: hello"
        assert server.requests[-1]["max_tokens"] == 7 and heard == []
        text_of(provider.stream(CHAT, APOLLO))  # the next request is the provider's own again
        assert server.requests[-1]["max_tokens"] == 300
        assert heard == ["waiting", "answered", "answered"]
        assert provider.options == {"max_tokens": 300} and provider.max_retries == 2


def test_retries_for_one_call():
    with FaultServer() as server:
        provider, heard = provider_for(server)
        server.script = ["500", "reply"]
        with pytest.raises(ProviderError, match="HTTP 500"):
            text_of(provider.stream(CHAT, APOLLO, retries=0, quiet=True))
        assert len(server.requests) == 1 and heard == []  # no retry, and nothing told
        server.script = ["500", "reply"]
        assert text_of(provider.stream(CHAT, APOLLO)) == "ok: hello"  # its own two retries
        assert len(server.requests) == 3 and "retry" in heard
