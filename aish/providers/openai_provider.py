"""Any OpenAI-compatible chat-completions endpoint, through the official `openai` client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from aish.context import prompt_budget
from aish.errors import ConfigError, ProviderError
from aish.messages import ChatMessage, Chunk, Usage
from aish.providers import DEFAULT_MAX_TOKENS, generation_options

if TYPE_CHECKING:
    from aish.providers.base import Notify

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"


def _key_from_keyring() -> str | None:
    try:
        import keyring

        return keyring.get_password("aish", "openai")
    except Exception:  # no keyring module or no backend: simply no key from there
        return None


def clean_key(key: str | None, source: str) -> str | None:
    """The key without surrounding whitespace (a YAML ``|`` block or a shell ``$'...\\n'``
    leaves a newline that would end up in the Authorization header); one with whitespace
    inside is refused, naming where it came from and never showing it."""
    if key is None:
        return None
    key = str(key).strip()
    if any(c.isspace() for c in key):
        raise ConfigError(f"{source}: the API key contains whitespace",
                          hint="store it on one line, without spaces")
    return key or None


def key_forms(key: str) -> list[str]:
    """Every form a key can take inside an error message: raw, repr-escaped, URL-encoded."""
    from urllib.parse import quote, quote_plus

    forms = {key, key.strip(), repr(key)[1:-1], quote(key, safe=""), quote_plus(key)}
    forms |= {repr(f)[1:-1] for f in list(forms)}
    return sorted((f for f in forms if len(f) >= 4), key=len, reverse=True)


class OpenAIProvider:
    def __init__(self, base_url: str, api_key: str, model: str | None, options: dict,
                 timeout: float = 60.0, max_retries: int = 2,
                 context_length: int | None = None, raw_keys: tuple[str, ...] = ()):
        self.base_url = base_url
        self.endpoint = _without_credentials(base_url)  # shown in errors
        self._api_key = api_key
        self._masks = [f for k in {api_key, *raw_keys} if k and k != "no-key"
                       for f in key_forms(k)]
        self.model = model  # None: ask the endpoint which models it serves, on first use
        self.options = options
        self.max_tokens = int(options["max_tokens"])
        self.timeout = timeout
        self.max_retries = max_retries
        self.context_length = context_length
        # notify(kind, text) tells the face what is going on while we wait: "waiting" before
        # the first token, "answered" when it arrives, "retry" before another attempt.
        self.notify: Notify = lambda kind, text: None

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIProvider({self.base_url!r}, model={self.model!r})"

    @property
    def context_limit(self) -> int | None:
        return prompt_budget(self.context_length, self.max_tokens)

    @classmethod
    def from_settings(cls, settings: dict, specialist, env, model: str | None = None,
                      config_file: str = "config") -> OpenAIProvider:
        base_url = settings.get("base_url") or env.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        if not base_url.lower().startswith(("http://", "https://")):
            # Said now: the client would only retry it, and blame the connection each time.
            where = (f"{config_file}: providers.openai.base_url" if settings.get("base_url")
                     else "environment OPENAI_BASE_URL")
            shown = base_url.rsplit("@", 1)[-1][:80]  # `user:secret@host` is no URL either
            raise ProviderError(shown, f"not an http:// or https:// URL (from {where})")
        raw = [settings.get("api_key"), env.get("OPENAI_API_KEY")]
        key = (clean_key(raw[0], f"{config_file}: providers.openai.api_key")
               or clean_key(raw[1], "environment OPENAI_API_KEY"))
        if not key and base_url == DEFAULT_BASE_URL:
            raw.append(_key_from_keyring())
            key = clean_key(raw[-1], "keyring (service 'aish', user 'openai')")
        if not key and base_url == DEFAULT_BASE_URL:
            raise ProviderError(base_url, "no API key (set OPENAI_API_KEY or store one in the "
                                "keyring as service 'aish', user 'openai')")
        model = model or specialist.model or settings.get("model") or env.get("OPENAI_MODEL")
        if not model and base_url == DEFAULT_BASE_URL:
            model = DEFAULT_MODEL
        try:
            timeout = float(settings.get("timeout", 60))
            retries = int(settings.get("max_retries", 2))
        except (TypeError, ValueError):
            raise ProviderError(base_url, "providers.openai.timeout/max_retries must be numbers"
                                ) from None
        options = generation_options(settings, specialist)
        options.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        n_ctx = settings.get("n_ctx")
        return cls(base_url, key or "no-key", model, options, timeout, retries,
                   int(n_ctx) if n_ctx else None, tuple(str(k) for k in raw if k))

    def _mask(self, text: str) -> str:
        for form in self._masks:
            text = text.replace(form, "***")
        return text

    def _fail(self, cause: str) -> ProviderError:
        return ProviderError(self.endpoint, self._mask(cause))

    def _discover_model(self, client, deadline: float) -> str | None:
        """The first model the endpoint lists, so that a local server is not asked for (and
        does not label its replies with) a model it does not have. None if it cannot be asked
        now (the chat request will say why); asked again on the next request then."""
        import openai

        try:
            listing = client.models.list(timeout=max(0.1, deadline - time.monotonic()))
            first = next(iter(listing.data), None)
        except openai.APIStatusError:  # no /models here: the server will use its default
            first = None
        except openai.APIError:
            return None
        return first.id if first is not None and first.id else DEFAULT_MODEL

    def stream(self, chat: list[ChatMessage], specialist, *, max_tokens: int | None = None,
               quiet: bool = False, retries: int | None = None) -> Iterator[Chunk]:
        """Stream a reply. ``timeout`` bounds the whole wait for an answer, retries included:
        each attempt gets what is left of it, and a failure before the first token is tried
        again (``max_retries`` times, or ``retries`` for this call) after a pause, announced
        through ``notify`` unless ``quiet``. ``max_tokens``: this reply's budget."""
        import openai

        deadline = time.monotonic() + self.timeout
        attempts = (self.max_retries if retries is None else max(0, retries)) + 1
        client = openai.OpenAI(base_url=self.base_url, api_key=self._api_key,
                               timeout=self.timeout, max_retries=0)
        messages = [{"role": m.role, "content": m.content} for m in chat]
        notify = _silent if quiet else self.notify
        options = self.options if max_tokens is None else {**self.options,
                                                            "max_tokens": max_tokens}
        notify("waiting", f"waiting for {self.endpoint}")
        try:
            if self.model is None:
                self.model = self._discover_model(client, deadline)
            for attempt in range(1, attempts + 1):
                # Texts yielded in this attempt: once any, no retry (no repeats).
                got: list[bool] = []
                try:
                    yield from self._attempt(client, messages, deadline, got, options,
                                             notify)
                    return
                except _Retryable as failure:
                    pause = min(2.0 ** (attempt - 1), 8.0)
                    last = (got or attempt == attempts
                            or deadline - time.monotonic() <= pause + 0.05)
                    if last:
                        raise self._fail(failure.cause) from None
                    notify("retry", self._mask(
                        f"retrying in {pause:g}s (attempt {attempt + 1} of {attempts}): "
                        f"{failure.cause}"))
                    time.sleep(pause)
        finally:
            notify("answered", "")

    def _attempt(self, client, messages: list[dict], deadline: float, got: list,
                 options: dict, notify: Notify) -> Iterator[Chunk]:
        import openai

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Retryable(f"timed out after {self.timeout:g}s")
        finish = None
        usage = None
        model = None
        started = False  # the endpoint answered with headers: later failures break the stream
        try:
            stream = client.chat.completions.create(
                model=self.model or DEFAULT_MODEL, messages=messages, stream=True,
                stream_options={"include_usage": True}, timeout=remaining, **options)
            started = True
            with stream:
                for event in stream:
                    model = getattr(event, "model", None) or model
                    if event.usage:
                        usage = Usage(event.usage.prompt_tokens or 0,
                                      event.usage.completion_tokens or 0)
                    for choice in event.choices or []:
                        text = choice.delta.content if choice.delta else None
                        if text:
                            if not got:
                                notify("answered", "")
                            got.append(True)
                            yield Chunk(text)
                        if choice.finish_reason:
                            finish = choice.finish_reason
        except openai.APITimeoutError:
            raise _Retryable(f"timed out after {self.timeout:g}s") from None
        except openai.APIConnectionError as exc:
            origin = exc.__cause__ or exc
            if started:
                raise _Retryable(f"the reply stream broke ({_short(origin)})") from None
            raise _Retryable(f"cannot connect ({_short(origin)})") from None
        except openai.APIStatusError as exc:
            cause = f"HTTP {exc.status_code}: {_status_text(exc)}"
            if exc.status_code == 429 or exc.status_code >= 500:
                raise _Retryable(cause) from None
            raise self._fail(cause) from None
        except openai.APIError as exc:
            raise self._fail(_short(exc)) from None
        except Exception as exc:  # a stream cut mid-way, or garbage in it
            if not _is_transport_error(exc):
                raise
            raise _Retryable(f"the reply stream broke ({_short(exc)})") from None
        if finish is None:
            raise self._fail("the reply stream ended before it finished")
        if model:
            self.model = model  # what the endpoint says answered, shown from now on
        yield Chunk(finished=True, usage=usage, model=model or self.model, finish_reason=finish)


def _silent(_kind: str, _text: str) -> None:
    """What a quiet request tells the face: nothing."""


class _Retryable(Exception):
    """A failure worth another attempt while time is left (timeouts, 5xx, 429, transport)."""

    def __init__(self, cause: str):
        super().__init__(cause)
        self.cause = cause


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
