"""Pure message values shared by the session core and the providers.

Identity and storage are concerns of the store; a Message is just what was said, by whom, when.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace

from aish.records import FrozenRecord

TYPE_CHECKING = False  # importing typing costs every command 2-3 ms: annotations only
if TYPE_CHECKING:
    from typing import TypeGuard

USER = "user"
ASSISTANT = "assistant"
SUMMARY_NOTE = "summary"  # the ``note`` of a compaction's record (see `aish.compaction`)
ROLES = (USER, ASSISTANT)


def new_message_id() -> str:
    import secrets  # here, not at the top: loading it costs every read of a session

    return secrets.token_hex(8)


class Usage(FrozenRecord):
    """Tokens a reply cost, as the provider reported them."""

    _fields = ("prompt_tokens", "completion_tokens")
    prompt_tokens: int
    completion_tokens: int

    def __init__(self, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        self._set(prompt_tokens, completion_tokens)

    def to_record(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}


MAX_MARKS = 32  # samples kept per reply, however long it is


class Timing(FrozenRecord):
    """How a reply arrived, for playing it back at its own pace: seconds from the request to
    the first text (``first``) and to the end (``end``), and sparse samples ``(seconds,
    characters so far)``, oldest first."""

    _fields = ("first", "end", "marks")
    first: float
    end: float
    marks: tuple[tuple[float, int], ...]

    def __init__(self, first: float, end: float, marks: tuple[tuple[float, int], ...] = ()
                 ) -> None:
        self._set(first, end, marks)

    def to_record(self) -> dict:
        return {"first": round(self.first, 3), "end": round(self.end, 3),
                "marks": [[round(t, 3), n] for t, n in self.marks]}

    @classmethod
    def from_record(cls, value) -> Timing | None:
        """The timing stored as ``value``; None when absent or malformed (a reply is never
        lost over its timing)."""
        if not isinstance(value, dict):
            return None
        first, end, marks = value.get("first"), value.get("end"), value.get("marks", [])
        if not (_seconds(first) and _seconds(end)) or not isinstance(marks, list):
            return None
        kept: list[tuple[float, int]] = []
        for mark in marks[:MAX_MARKS * 2]:
            if not (isinstance(mark, list | tuple) and len(mark) == 2 and _seconds(mark[0])
                    and isinstance(mark[1], int) and not isinstance(mark[1], bool)
                    and mark[1] >= 0):
                return None
            kept.append((float(mark[0]), mark[1]))
        return cls(float(first), float(end), tuple(kept))


def _seconds(value: object) -> TypeGuard[int | float]:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and 0 <= value < 1e9)  # NaN fails both comparisons


class Stopwatch:
    """Times one streamed reply at constant cost per chunk: every ``step``-th chunk is a mark,
    and when :data:`MAX_MARKS` are kept every other one goes and ``step`` doubles."""

    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        self.start = clock()
        self.first: float | None = None
        self.marks: list[tuple[float, int]] = []
        self.chars = 0
        self.step = 1
        self._chunks = 0

    def text(self, count: int) -> None:
        """``count`` more characters arrived."""
        now = self.clock() - self.start
        if self.first is None:
            self.first = now
        self.chars += count
        self._chunks += 1
        if self._chunks % self.step == 0:
            if len(self.marks) >= MAX_MARKS:
                del self.marks[::2]  # amortised O(1): halving happens once per doubling
                self.step *= 2
                if self._chunks % self.step:
                    return
            self.marks.append((now, self.chars))

    def timing(self) -> Timing:
        end = self.clock() - self.start
        return Timing(end if self.first is None else self.first, end, tuple(self.marks))


@dataclass(frozen=True)
class Message:
    """One stored message of a session."""

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
    timing: Timing | None = field(default=None, compare=False)  # how a reply streamed
    # The person who wrote it (the store's user: an ACL user, an OS account); None in records
    # written before messages named one. Not part of equality, like the links.
    by: str | None = field(default=None, compare=False)
    # Who copied it into this store when that is someone else than ``by`` (a restore): the
    # store can vouch that this person wrote the copy, never that ``by`` said it.
    copied_by: str | None = field(default=None, compare=False)
    # Where the store keeps it (a byte offset, a list index): a hint for walking to it again,
    # not part of the record and never compared.
    pos: int | None = field(default=None, compare=False, repr=False)
    pp: int | None = field(default=None, compare=False, repr=False)  # the parent's, likewise
    # A "summary" note (a compaction) stands for messages 1..``covers`` of the path to its
    # ``source``. A reply names the summary its context began with (``summary``, stored at
    # ``summary_at``), so the next context finds it without walking past its window.
    covers: int | None = None
    summary: str | None = field(default=None, compare=False)
    summary_at: int | None = field(default=None, compare=False, repr=False)

    def to_record(self) -> dict:
        # Identity, not equality: `0.0 in (None, False)` is true and would drop a time of 0.
        record = {k: v for k, v in asdict(self).items()
                  if v is not None and v is not False and k not in ("pos", "pp", "timing")}
        usage = self.usage
        if usage is not None:  # a plain record, which asdict copies as it is
            record["usage"] = usage.to_record() if isinstance(usage, Usage) else dict(usage)
        if self.timing is not None:
            record["timing"] = self.timing.to_record()
        record["t"] = "msg"
        return record

    @classmethod
    def from_record(cls, record: dict, pos: int | None = None,
                    follows: str | None = None) -> Message:
        """Build a message from a stored record; raises ValueError/TypeError if malformed.
        ``pos``: where the store keeps it; ``follows``: the parent of a record written without
        one (the message stored before it), when the caller knows it."""
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
        if parent is None:
            parent = follows
        elif not isinstance(parent, str):
            raise TypeError("parent must be a string")
        if ref is not None and not isinstance(ref, str):
            raise TypeError("ref must be a string")
        note, source = record.get("note"), record.get("source")
        if note is not None and not isinstance(note, str):
            raise TypeError("note must be a string")
        if source is not None and not isinstance(source, str):
            raise TypeError("source must be a string")
        by = record.get("by")
        by = by if isinstance(by, str) else None  # a bad author never makes a message unreadable
        copied_by = record.get("copied_by")
        copied_by = copied_by if isinstance(copied_by, str) else None
        pp = _index(record.get("pp"))
        covers = _index(record.get("covers"))
        summary = record.get("summary")
        summary = summary if isinstance(summary, str) and summary else None
        # Every field is checked above, so the value is filled in directly: a frozen
        # dataclass's __init__ sets its fields one call at a time, the larger part of
        # reading a long log.
        message = object.__new__(cls)
        message.__dict__.update(
            role=role, content=content, ai=ai, time=float(time), id=mid, usage=usage,
            interrupted=bool(record.get("interrupted")), model=model,
            cut=bool(record.get("cut")), parent=parent, ref=ref, note=note, source=source,
            timing=Timing.from_record(record.get("timing")), by=by, copied_by=copied_by,
            pos=pos, pp=pp, covers=covers, summary=summary,
            summary_at=_index(record.get("summary_at")) if summary else None)
        return message


def _index(value: object) -> int | None:
    """A stored count or position; anything else (a hand edit, damage) reads as none."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class ChatMessage(FrozenRecord):
    """What a provider receives: an OpenAI-style role and text."""

    _fields = ("role", "content")
    role: str  # "system", "user" or "assistant"
    content: str

    def __init__(self, role: str, content: str) -> None:
        self._set(role, content)


class Chunk(FrozenRecord):
    """A piece of a streamed reply. The last chunk has ``finished=True`` and may carry usage,
    the model that answered and why it stopped (``"length"``: at the max_tokens limit)."""

    _fields = ("text", "finished", "usage", "model", "finish_reason")
    text: str
    finished: bool
    usage: Usage | None
    model: str | None
    finish_reason: str | None

    def __init__(self, text: str = "", finished: bool = False, usage: Usage | None = None,
                 model: str | None = None, finish_reason: str | None = None) -> None:
        self._set(text, finished, usage, model, finish_reason)

    @property
    def cut(self) -> bool:
        return self.finish_reason == "length"


def relinked(messages: Iterable[Message], parent: str = "", ref: str = "main") -> list[Message]:
    """``messages`` as one straight branch ``ref`` after ``parent``: for copies into a session
    that holds none of their original parents (a fork, a template, a merge of sessions)."""
    out = []
    for message in messages:
        # A copy leaves the compactions behind: a reply's pointer to one would lead nowhere.
        out.append(replace(message, parent=parent, ref=ref, pos=None, pp=None, summary=None,
                           summary_at=None))
        parent = message.id
    return out
