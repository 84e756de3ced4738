"""What every reader produces: conversations as a tree of turns, in the source's own terms.

Keys are the source's own ids for its messages (a ChatGPT node id, an llm message hash, a line
number), so that the ids aish gives the messages are derived from them and the same file always
gives the same messages.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from aish.errors import AishError
from aish.header import is_count, is_time


class BadSource(AishError):
    """A file given to import is not what its source writes, or is damaged."""


@dataclass(frozen=True)
class Turn:
    key: str  # the source's id for this message, unique within its conversation
    role: str  # "user" or "assistant"
    text: str
    time: float  # seconds since the epoch
    model: str | None = None
    parent: str | None = None  # the key of the turn it follows; "" none; None: the one before
    usage: tuple[int, int] | None = None  # (prompt tokens, completion tokens)


@dataclass
class Conversation:
    source_id: str  # the source's id for the conversation (a file name where it has none)
    title: str | None
    turns: list[Turn]
    branches: dict[str, str] = field(default_factory=dict)  # branch name -> key of its head
    created: float | None = None

    def digest(self) -> str:
        """A fingerprint of what the conversation says, to recognise the same one again."""
        body = [[t.key, t.role, t.text, t.time, t.model, t.parent] for t in self.turns]
        data = json.dumps([body, sorted(self.branches.items())], ensure_ascii=True)
        return hashlib.sha256(data.encode("ascii")).hexdigest()[:32]


T = TypeVar("T")
# What a reader meeting a shape it did not foresee may raise: the conversation is unreadable.
UNEXPECTED = (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError,
              UnicodeError, OverflowError)


def each(items: Iterable[T], convert: Callable[[T], Conversation],
         skipped: list[str] | None) -> list[Conversation]:
    """``convert`` applied to every item; with a ``skipped`` list, an item that is not a
    readable conversation is described there and left out instead of stopping the import."""
    out = []
    for item in items:
        try:
            out.append(convert(item))
        except (BadSource, *UNEXPECTED) as exc:
            if skipped is None:
                raise
            skipped.append(str(exc) if isinstance(exc, BadSource)
                           else f"unreadable ({type(exc).__name__})")
    return out


def message_id(source: str, conversation: str, key: str) -> str:
    """A stable 16-hex-digit message id for a source's message."""
    data = "\0".join((source, conversation, key)).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:16]


def text_or_none(value: object, limit: int = 200) -> str | None:
    """``value`` if it is a short string, else None (for names, models and ids)."""
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def time_or_none(value: object) -> float | None:
    return float(value) if is_time(value) else None


def tokens(prompt: object, completion: object) -> tuple[int, int] | None:
    if is_count(prompt) and is_count(completion):
        return prompt, completion
    return None


def straight(turns: list[Turn]) -> list[Turn]:
    """``turns`` as one branch: each follows the one before."""
    out, parent = [], ""
    for turn in turns:
        out.append(Turn(turn.key, turn.role, turn.text, turn.time, turn.model, parent,
                        turn.usage))
        parent = turn.key
    return out
