"""Any OpenAI-compatible chat-completions endpoint, through the official `openai` client."""

from __future__ import annotations

from collections.abc import Iterator

from aish.errors import ProviderError
from aish.messages import ChatMessage, Chunk, Usage
from aish.providers import generation_options

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"


def _key_from_keyring() -> str | None:
    try:
        import keyring

        return keyring.get_password("aish", "openai")
    except Exception:  # no keyring module or no backend: simply no key from there
        return None


class OpenAIProvider:
    def __init__(self, base_url: str, api_key: str, model: str, options: dict,
                 timeout: float = 60.0, max_retries: int = 2):
        self.base_url = base_url
        self.endpoint = _without_credentials(base_url)  # shown in errors
        self._api_key = api_key
        self.model = model
        self.options = options
        self.timeout = timeout
        self.max_retries = max_retries

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIProvider({self.base_url!r}, model={self.model!r})"

    @classmethod
    def from_settings(cls, settings: dict, specialist, env, model: str | None = None):
        base_url = settings.get("base_url") or env.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        key = settings.get("api_key") or env.get("OPENAI_API_KEY")
        if not key:
            key = _key_from_keyring() if base_url == DEFAULT_BASE_URL else None
        if not key and base_url == DEFAULT_BASE_URL:
            raise ProviderError(base_url, "no API key (set OPENAI_API_KEY or store one in the "
                                "keyring as service 'aish', user 'openai')")
        model = (model or specialist.model or settings.get("model") or env.get("OPENAI_MODEL")
                 or DEFAULT_MODEL)
        try:
            timeout = float(settings.get("timeout", 60))
            retries = int(settings.get("max_retries", 2))
        except (TypeError, ValueError):
            raise ProviderError(base_url, "providers.openai.timeout/max_retries must be numbers"
                                ) from None
        return cls(base_url, key or "no-key", model, generation_options(settings, specialist),
                   timeout, retries)

    def _fail(self, cause: str) -> ProviderError:
        if self._api_key and self._api_key != "no-key":
            cause = cause.replace(self._api_key, "***")
        return ProviderError(self.endpoint, cause)

    def stream(self, chat: list[ChatMessage], specialist) -> Iterator[Chunk]:
        import openai

        client = openai.OpenAI(base_url=self.base_url, api_key=self._api_key,
                               timeout=self.timeout, max_retries=self.max_retries)
        messages = [{"role": m.role, "content": m.content} for m in chat]
        finish = None
        usage = None
        started = False  # the endpoint answered with headers: later failures break the stream
        try:
            stream = client.chat.completions.create(
                model=self.model, messages=messages, stream=True,
                stream_options={"include_usage": True}, **self.options)
            started = True
            with stream:
                for event in stream:
                    if event.usage:
                        usage = Usage(event.usage.prompt_tokens or 0,
                                      event.usage.completion_tokens or 0)
                    for choice in event.choices or []:
                        text = choice.delta.content if choice.delta else None
                        if text:
                            yield Chunk(text)
                        if choice.finish_reason:
                            finish = choice.finish_reason
        except openai.APITimeoutError:
            raise self._fail(f"timed out after {self.timeout:g}s") from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            if started:
                raise self._fail(f"the reply stream broke ({_short(cause)})") from None
            raise self._fail(f"cannot connect ({_short(cause)})") from None
        except openai.APIStatusError as exc:
            raise self._fail(f"HTTP {exc.status_code}: {_status_text(exc)}") from None
        except openai.APIError as exc:
            raise self._fail(_short(exc)) from None
        except Exception as exc:  # a stream cut mid-way, or garbage in it
            if not _is_transport_error(exc):
                raise
            raise self._fail(f"the reply stream broke ({_short(exc)})") from None
        if finish is None:
            raise self._fail("the reply stream ended before it finished")
        yield Chunk(finished=True, usage=usage)


def _without_credentials(url: str) -> str:
    """`https://user:pass@host/v1` → `https://host/v1`: errors name the endpoint, not secrets."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "the configured endpoint"
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _is_transport_error(exc: BaseException) -> bool:
    """Errors of the HTTP stack under the openai client (httpx or its successor), or bad data."""
    module = type(exc).__module__.split(".")[0]
    return module.startswith(("httpx", "httpcore", "h11")) or isinstance(exc, OSError | ValueError)


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0][:200]


def _status_text(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        message = body.get("message") or (body.get("error") or {}).get("message")
        if message:
            return str(message)[:200]
    return {429: "rate limited", 500: "server error", 401: "unauthorized",
            404: "not found"}.get(exc.status_code, _short(exc))
