"""What every session store provides, and the record format they share.

A session is a log of records, one JSON object each:
- ``{"t": "meta", ...}`` — the first one holds the session's identity and settings; later ones
  update keys (state, context_window, shared, participants, ...).
- ``{"t": "msg", ...}`` — a message (see `aish.messages.Message.to_record`).

A store appends records atomically and keeps a *summary* (meta folded with counts) so that
listing sessions and checking sharing rules never reads a whole history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Protocol

from aish.messages import Message

FORMAT_VERSION = 1
MAX_LINE_CHARS = 16 * 1024 * 1024  # a longer line is reported as a problem, never parsed


@dataclass
class Summary:
    """A session's metadata plus counts, derivable from its records at any time."""

    meta: dict = field(default_factory=dict)
    messages: int = 0
    user_messages: int = 0
    by_ai: dict = field(default_factory=dict)  # assistant replies per specialist
    tokens: int = 0
    last_time: float = 0.0

    @property
    def id(self) -> str:
        return self.meta.get("id", "")

    @property
    def updated(self) -> float:
        return max(self.last_time, float(self.meta.get("updated", 0) or 0),
                   float(self.meta.get("created", 0) or 0))

    def fold(self, record: dict) -> None:
        """Apply one record; used both incrementally on append and when rebuilding."""
        kind = record.get("t")
        if kind == "meta":
            update = {k: v for k, v in record.items() if k != "t"}
            self.meta.update(update)
        elif kind == "msg":
            self.messages += 1
            if record.get("role") == "user":
                self.user_messages += 1
            else:
                ai = record.get("ai", "?")
                self.by_ai[ai] = self.by_ai.get(ai, 0) + 1
            usage = record.get("usage") or {}
            if isinstance(usage, dict):
                self.tokens += int(usage.get("prompt_tokens", 0) or 0)
                self.tokens += int(usage.get("completion_tokens", 0) or 0)
        time = record.get("time")
        if isinstance(time, int | float) and not isinstance(time, bool):
            self.last_time = max(self.last_time, float(time))

    def to_json(self) -> dict:
        return {"meta": self.meta, "messages": self.messages, "user_messages": self.user_messages,
                "by_ai": self.by_ai, "tokens": self.tokens, "last_time": self.last_time}

    @classmethod
    def from_json(cls, data: dict) -> Summary:
        return cls(data["meta"], data["messages"], data["user_messages"], data["by_ai"],
                   data["tokens"], data["last_time"])


@dataclass(frozen=True)
class Problem:
    line: int  # 1-based line (or list index) in the stored log; 0 when not line-specific
    kind: str  # "torn tail", "bad json", "bad record", "out of order", "missing meta", ...
    detail: str = ""

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.kind}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class Loaded:
    meta: dict
    messages: list[Message]
    problems: list[Problem]
    raw_bad: list[str] = field(default_factory=list)  # text of lines that could not be used


def parse_line(text: str) -> dict:
    """Parse one stored line into a record dict; raises ValueError with a short reason."""
    if len(text) > MAX_LINE_CHARS:
        raise ValueError("line too long")
    try:
        record = json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"bad json: {exc.msg}") from None
    if not isinstance(record, dict) or record.get("t") not in ("meta", "msg"):
        raise ValueError("not a session record")
    return record


def dump_line(record: dict) -> bytes:
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def fold_records(records: list[tuple[int, dict]], problems: list[Problem]) -> Loaded:
    """Turn parsed records into meta + messages, collecting problems instead of raising."""
    meta: dict = {}
    messages: list[Message] = []
    last_time = float("-inf")
    for line, record in records:
        if record["t"] == "meta":
            meta.update({k: v for k, v in record.items() if k != "t"})
            continue
        try:
            message = Message.from_record(record)
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(Problem(line, "bad record", str(exc)[:120]))
            continue
        if message.time < last_time - 1:  # one second of clock skew between writers is normal
            problems.append(Problem(line, "out of order", "message older than the one before"))
        last_time = max(last_time, message.time)
        messages.append(message)
    if not meta.get("id"):
        problems.insert(0, Problem(0, "missing meta", "no session header record"))
    return Loaded(meta, messages, problems)


class Codec(Protocol):
    """Transforms message records on their way to and from storage (e.g. encryption)."""

    def seal(self, record: dict) -> dict: ...

    def open(self, record: dict) -> dict: ...


class PlainCodec:
    def seal(self, record: dict) -> dict:
        return record

    def open(self, record: dict) -> dict:
        return record


class Store(Protocol):
    """The operations the session core needs; `file` and `redis` implement them."""

    def exists(self, sid: str) -> bool: ...
    def create(self, meta: dict, messages: list[Message] = ...) -> Summary: ...
    def append(self, sid: str, records: list[dict]) -> Summary: ...
    def summary(self, sid: str) -> Summary: ...
    def summaries(self) -> list[Summary]: ...
    def ids(self) -> list[str]: ...
    def load(self, sid: str) -> Loaded: ...
    def tail(self, sid: str, pairs: int) -> list[Message]: ...
    def raw_lines(self, sid: str) -> list[str]: ...
    def replace(self, sid: str, meta: dict, messages: list[Message]) -> Summary: ...
    def delete(self, sid: str) -> None: ...
    def backup(self, sid: str, reason: str) -> str: ...
    def location(self, sid: str) -> str: ...
    def put_doc(self, kind: str, name: str, data: dict) -> str: ...
    def get_doc(self, kind: str, name: str) -> dict | None: ...
    def list_docs(self, kind: str) -> list[str]: ...
