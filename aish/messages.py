"""Pure message values shared by the session core and the providers.

Identity and storage are concerns of the store; a Message is just what was said, by whom, when.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace

USER = "user"
ASSISTANT = "assistant"
ROLES = (USER, ASSISTANT)


def new_message_id() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class Message:
    role: str  # "user" or "assistant"
    content: str
    ai: str  # the specialist that spoke, or that a user message was addressed to
    time: float  # seconds since the epoch
    id: str = field(default_factory=new_message_id)
    usage: Usage | None = None
    interrupted: bool = False  # a reply cut short by the user (Ctrl-C); what arrived is kept
    model: str | None = None  # the model that wrote a reply, as its endpoint reported it
    cut: bool = False  # the reply stopped at the max_tokens limit, not where the model ended it
    # The message this one follows ("" = none: it starts the conversation). None only in logs
    # written before branches existed, where it means the message stored before this one; the
    # loader fills it in, so code above the store always sees an explicit parent. Links are
    # not part of equality: two messages are equal when they say the same thing.
    parent: str | None = field(default=None, compare=False)
    ref: str | None = field(default=None, compare=False)  # the branch it moved when stored
    # A note is context added by aish, not said by anyone: "merge" for the summary of a branch
    # merged in. ``source``: what it came from (for a note, the head of the branch it
    # summarised; for a copy picked from another branch, the message it copies).
    note: str | None = None
    source: str | None = None
    # Where the store keeps it (a byte offset, a list index): a hint for walking to it again,
    # not part of the record and never compared.
    pos: int | None = field(default=None, compare=False, repr=False)
    pp: int | None = field(default=None, compare=False, repr=False)  # the parent's, likewise

    def to_record(self) -> dict:
        # Identity, not equality: `0.0 in (None, False)` is true and would drop a time of 0.
        record = {k: v for k, v in asdict(self).items()
                  if v is not None and v is not False and k not in ("pos", "pp")}
        record["t"] = "msg"
        return record

    @classmethod
    def from_record(cls, record: dict) -> Message:
        """Build a message from a stored record; raises ValueError/TypeError if malformed."""
        role = record["role"]
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        content, ai, time = record["content"], record["ai"], record["time"]
        if not isinstance(content, str) or not isinstance(ai, str):
            raise TypeError("content and ai must be strings")
        if isinstance(time, bool) or not isinstance(time, int | float):
            raise TypeError("time must be a number")
        usage = record.get("usage")
        if usage is not None:
            if not isinstance(usage, dict):
                raise TypeError("usage must be an object")
            usage = Usage(int(usage.get("prompt_tokens", 0)),
                          int(usage.get("completion_tokens", 0)))
        mid = record.get("id") or new_message_id()
        if not isinstance(mid, str):
            raise TypeError("id must be a string")
        model = record.get("model")
        if model is not None and not isinstance(model, str):
            raise TypeError("model must be a string")
        parent, ref = record.get("parent"), record.get("ref")
        if parent is not None and not isinstance(parent, str):
            raise TypeError("parent must be a string")
        if ref is not None and not isinstance(ref, str):
            raise TypeError("ref must be a string")
        note, source = record.get("note"), record.get("source")
        if note is not None and not isinstance(note, str):
            raise TypeError("note must be a string")
        if source is not None and not isinstance(source, str):
            raise TypeError("source must be a string")
        pp = record.get("pp")
        pp = pp if isinstance(pp, int) and not isinstance(pp, bool) and pp >= 0 else None
        return cls(role, content, ai, float(time), mid, usage, bool(record.get("interrupted")),
                   model, bool(record.get("cut")), parent, ref, note, source, pp=pp)


@dataclass(frozen=True)
class ChatMessage:
    """What a provider receives: an OpenAI-style role and text."""

    role: str  # "system", "user" or "assistant"
    content: str


@dataclass(frozen=True)
class Chunk:
    """A piece of a streamed reply. The last chunk has ``finished=True`` and may carry usage,
    the model that answered and why it stopped (``"length"``: at the max_tokens limit)."""

    text: str = ""
    finished: bool = False
    usage: Usage | None = None
    model: str | None = None
    finish_reason: str | None = None

    @property
    def cut(self) -> bool:
        return self.finish_reason == "length"


def relinked(messages: Iterable[Message], parent: str = "", ref: str = "main") -> list[Message]:
    """``messages`` as one straight branch ``ref`` after ``parent``: for copies into a session
    that holds none of their original parents (a fork, a template, a merge of sessions)."""
    out = []
    for message in messages:
        out.append(replace(message, parent=parent, ref=ref, pos=None, pp=None))
        parent = message.id
    return out
