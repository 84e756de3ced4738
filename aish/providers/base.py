"""What the session core and the command layer need from a provider, as a type.

Only typing lives here, so importing it costs nothing; callers still import it under
``TYPE_CHECKING`` so that the annotation never pulls in a provider package at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aish.messages import ChatMessage, Chunk
    from aish.specialists import Specialist

# notify(kind, text): "waiting", "answered" or "retry", told to the face while a reply is awaited.
Notify = Callable[[str, str], object]


class Provider(Protocol):
    """A source of replies: streams `Chunk`s for a chat, the last one marked finished."""

    notify: Notify

    @property
    def endpoint(self) -> str:
        """Where replies come from, as shown in errors (never with credentials)."""

    @property
    def model(self) -> str | None:
        """The model answering; None until an endpoint has said which it serves."""

    @property
    def max_tokens(self) -> int:
        """Every reply's token budget."""

    @property
    def context_length(self) -> int | None:
        """The model's context in tokens; None when unknown."""

    @property
    def context_limit(self) -> int | None:
        """Tokens the prompt may use (context less room for the reply); None when unknown."""

    def stream(self, chat: list[ChatMessage], specialist: Specialist, *,
               max_tokens: int | None = None, quiet: bool = False,
               retries: int | None = None) -> Iterator[Chunk]:
        """Stream a reply to ``chat``. Per call, for side jobs on the session's model (a
        title, a summary): ``max_tokens`` caps this reply instead of the configured budget,
        ``quiet`` keeps the face from hearing of waits and retries, ``retries`` replaces the
        configured number of retries. The provider's own settings are never changed."""
