"""What the daemon does once so that no child has to: a rehearsed request through the openai
client (its first call fills type caches that cost tens of milliseconds), and one TLS context
with the system's CA certificates, which the HTTP stack otherwise reads from disk for every
client it makes. Both are best-effort: a change in those libraries makes them do nothing."""

from __future__ import annotations

import contextlib
import json
import os

REHEARSAL_URL = "http://warm.invalid/v1"  # never resolved: a mock transport answers


def rehearse_openai() -> None:
    """One model listing and one streamed chat completion, answered in memory."""
    import httpx2
    import openai

    chunk = {"id": "warm", "object": "chat.completion.chunk", "created": 0, "model": "warm",
             "choices": [{"index": 0, "delta": {"role": "assistant", "content": "ok"},
                          "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    stream = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()

    def answer(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/models"):
            return httpx2.Response(200, json={"object": "list", "data": [
                {"id": "warm", "object": "model", "created": 0, "owned_by": "aish"}]})
        return httpx2.Response(200, content=stream,
                               headers={"content-type": "text/event-stream"})

    with httpx2.Client(transport=httpx2.MockTransport(answer)) as http, openai.OpenAI(
            base_url=REHEARSAL_URL, api_key="unused", max_retries=0, http_client=http
    ) as client:
        client.models.list()
        events = client.chat.completions.create(
            model="warm", messages=[{"role": "user", "content": "hi"}], stream=True,
            stream_options={"include_usage": True}, max_tokens=1, temperature=0.0, top_p=1.0)
        with events:
            for _ in events:
                pass


def share_tls_context() -> None:
    """Make the HTTP stack's default TLS context once, here, for every child. It depends only
    on the CA paths (compiled in, or SSL_CERT_FILE / SSL_CERT_DIR); a child whose environment
    names other certificates than the daemon's gets a context of its own, as before."""
    import httpcore2

    original = httpcore2.default_ssl_context
    if getattr(original, "_aish_shared", False):
        return
    made_for = _certificates()
    made = original()

    def default_ssl_context(*, _trust_env: bool = True):
        if _trust_env and _certificates() != made_for:
            return original(_trust_env=_trust_env)
        return made

    default_ssl_context._aish_shared = True  # type: ignore[attr-defined]
    httpcore2.default_ssl_context = default_ssl_context


def _certificates() -> tuple[str, str]:
    return os.environ.get("SSL_CERT_FILE", ""), os.environ.get("SSL_CERT_DIR", "")


def run() -> None:
    for step in (rehearse_openai, share_tls_context):
        with contextlib.suppress(Exception):
            step()
