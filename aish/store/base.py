"""What every session store provides, and the record format they share.

A session is a log of records, one JSON object each:
- ``{"t": "meta", ...}`` — the first one holds the session's identity and settings; later ones
  update keys (state, context_window, shared, participants, ...).
- ``{"t": "msg", ...}`` — a message (see `aish.messages.Message.to_record`);
- ``{"t": "ref", ...}`` — a branch head moved (see `aish.store.refs`).

A store appends records atomically and keeps a *summary* (meta folded with counts) so that
listing sessions and checking sharing rules never reads a whole history.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace

from aish.errors import StorageError
from aish.header import (  # noqa: F401 - re-exported
    MAX_TIME,
    Header,
    fold_meta,
    is_count,
    is_name,
    is_time,
)
from aish.messages import Message
from aish.records import FrozenRecord, Record
from aish.store.refs import MAIN, Head, RefState

TYPE_CHECKING = False  # importing typing costs every command 2-3 ms: annotations only
if TYPE_CHECKING:
    from typing import Any, Protocol
else:
    Protocol = object  # the interfaces below are for the type checker; nothing subclasses them

FORMAT_VERSION = 1
MAX_LINE_CHARS = 16 * 1024 * 1024  # a longer line is reported as a problem, never parsed


def _count(value) -> int:
    """A token count from a stored record; anything that is not a sane count counts 0."""
    return value if is_count(value) else 0


def _time(value) -> float:
    """A time from a stored record; anything that is not a plausible timestamp counts 0.

    A hand-edited or garbled log must never break listing (``float("x")``, ``float(10**400)``).
    """
    return float(value) if is_time(value) else 0.0


def _snapshot(value: Any) -> Any:
    """A copy of a meta value that later changes to the original, at any depth, do not reach
    (scalars are shared: a meta holds few containers, and this runs once per session listed)."""
    if isinstance(value, dict):
        return {k: _snapshot(v) if isinstance(v, dict | list) else v for k, v in value.items()}
    if isinstance(value, list):
        return [_snapshot(v) if isinstance(v, dict | list) else v for v in value]
    return value


class Summary(Record):
    """A session's metadata plus counts, derivable from its records at any time."""

    _fields = ("meta", "messages", "user_messages", "by_ai", "tokens", "last_time", "tree")

    def __init__(self, meta: dict | None = None, messages: int = 0, user_messages: int = 0,
                 by_ai: dict | None = None, tokens: int = 0, last_time: float = 0.0,
                 tree: RefState | None = None) -> None:
        self.meta = {} if meta is None else meta
        self.messages = messages
        self.user_messages = user_messages
        self.by_ai = {} if by_ai is None else by_ai  # assistant replies per specialist
        self.tokens = tokens
        self.last_time = last_time
        self.tree = RefState() if tree is None else tree

    # Header values read through one tolerant decoder: a hand-edited or damaged header must
    # never break listing or info; --validate-session reports such values and
    # --repair-session fixes them.
    @property
    def header(self) -> Header:
        # Decoded once per state of ``meta``: a listing reads the header a dozen times per
        # session. ``meta`` is a plain dict callers may update, so the cached header is used
        # only while a copy of the meta it was decoded from still equals it, top-level value
        # types included (``1 == True``, yet a header decodes them apart).
        meta = self.meta
        cached = self.__dict__.get("_header")
        if (cached is not None and cached[0] == meta
                and cached[1] == tuple(map(type, meta.values()))):
            return cached[2]
        header = Header.decode(meta)[0]
        self.__dict__["_header"] = (_snapshot(meta), tuple(map(type, meta.values())), header)
        return header

    @property
    def id(self) -> str:
        return self.header.id  # stores set it to the id they hold

    @property
    def updated(self) -> float:
        header = self.header
        return max(self.last_time, header.updated or 0.0, header.created or 0.0)

    @property
    def created(self) -> float:
        return self.header.created or 0.0

    @property
    def owner(self) -> str:
        return self.header.owner or "?"

    @property
    def participants(self) -> list[str]:
        header = self.header
        return list(header.participants) or [header.owner or "?"]

    @property
    def origin(self) -> dict:
        return dict(self.header.origin or {})

    def context_window(self, default: int) -> int:
        window = self.header.context_window
        return default if window is None else window

    def context_used(self, default: int) -> int:
        """Pairs of the session that fall in its window (what list, info and stats show)."""
        window = self.context_window(default)
        return self.user_messages if window == 0 else min(self.user_messages, window)

    def head(self, branch: str) -> Head | None:
        return self.tree.head(branch)

    def fold(self, record: dict, pos: int | None = None, strict: bool = False) -> None:
        """Apply one record stored at ``pos``; used both incrementally on append and when
        rebuilding. ``strict``: a ref move that does not apply raises RefMoved first."""
        self.tree.fold(record, pos, strict)
        kind = record.get("t")
        if kind == "meta":
            fold_meta(self.meta, record)
        elif kind == "msg":
            self.messages += 1
            if record.get("role") == "user":
                self.user_messages += 1
            else:
                ai = record.get("ai")
                ai = ai if isinstance(ai, str) else "?"  # a damaged record must not break listing
                self.by_ai[ai] = self.by_ai.get(ai, 0) + 1
            usage = record.get("usage") or {}
            if isinstance(usage, dict):
                self.tokens += _count(usage.get("prompt_tokens"))
                self.tokens += _count(usage.get("completion_tokens"))
        self.last_time = max(self.last_time, _time(record.get("time")))

    def to_json(self) -> dict:
        return {"meta": self.meta, "messages": self.messages, "user_messages": self.user_messages,
                "by_ai": self.by_ai, "tokens": self.tokens, "last_time": self.last_time,
                "tree": self.tree.to_json()}

    @classmethod
    def from_json(cls, data: object) -> Summary:
        """A summary read back from a cache; raises ValueError on any doubt about a field.

        A cache is only trusted whole: the caller rebuilds it from the log instead.
        """
        if not isinstance(data, dict):
            raise ValueError("not a summary")
        meta, by_ai = data.get("meta"), data.get("by_ai")
        # Checked below before any arithmetic: JSON values of unknown type until then.
        counts: list[Any] = [data.get(k) for k in ("messages", "user_messages", "tokens")]
        if not (isinstance(meta, dict) and isinstance(meta.get("id"), str)
                and isinstance(by_ai, dict) and all(is_count(n) for n in counts)
                and all(isinstance(k, str) and is_count(n) for k, n in by_ai.items())
                and counts[1] + sum(by_ai.values()) == counts[0]
                and is_time(data.get("last_time"))):
            raise ValueError("not a summary")
        return cls(meta, counts[0], counts[1], by_ai, counts[2], float(data["last_time"]),
                   RefState.from_json(data.get("tree")))


class Problem(FrozenRecord):
    """Something wrong found in a stored log."""

    _fields = ("line", "kind", "detail")
    line: int  # 1-based line (or list index) in the stored log; 0 when not line-specific
    kind: str  # "torn tail", "bad json", "bad record", "out of order", "missing meta", ...
    detail: str

    def __init__(self, line: int, kind: str, detail: str = "") -> None:
        self._set(line, kind, detail)

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.kind}" + (f" ({self.detail})" if self.detail else "")


class Loaded(Record):
    """A session read whole: its header, messages, branches and what was wrong."""

    _fields = ("meta", "messages", "problems", "raw_bad", "mark", "tree")

    def __init__(self, meta: dict, messages: list[Message], problems: list[Problem],
                 raw_bad: list[str] | None = None, mark: object = None,
                 tree: RefState | None = None) -> None:
        self.meta = meta
        self.messages = messages
        self.problems = problems
        self.raw_bad = [] if raw_bad is None else raw_bad  # lines that could not be used
        # Where this read ended, for ``Store.replace(..., since=mark)``: records appended after
        # it by other processes are kept after the rewritten content instead of being lost.
        self.mark = mark
        self.tree = RefState() if tree is None else tree

    def with_messages(self, messages: list[Message]) -> Loaded:
        """The same read with other messages."""
        return Loaded(self.meta, messages, self.problems, self.raw_bad, self.mark, self.tree)

    def ref_ids(self) -> dict[str, str]:
        """Every branch and the message it points at, ``main`` always included (for rewrites
        and copies, which then state it explicitly)."""
        main = self.tree.head(MAIN)
        return {MAIN: main.id if main else "",
                **{name: head.id for name, head in self.tree.refs.items()}}

    def by_id(self) -> dict[str, Message]:
        return {m.id: m for m in self.messages}

    def path(self, head: Head | None) -> list[Message]:
        """The messages from the root to ``head``, oldest first (a parent that is missing ends
        the path: --validate-session reports it)."""
        return path_in(self.by_id(), head.id if head else "")


def path_in(by_id: dict[str, Message], head: str) -> list[Message]:
    out: list[Message] = []
    seen: set[str] = set()
    while head and head in by_id and head not in seen:  # ``seen``: a damaged log's cycle
        seen.add(head)
        message = by_id[head]
        out.append(message)
        head = message.parent or ""
    out.reverse()
    return out


def parse_aliases(data: object) -> dict[str, str]:
    """A store's alias map (former id -> the id it was renamed to) as read back; entries that
    are not two valid ids are dropped, never raised (a damaged map only loses its damage)."""
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if is_name(k) and is_name(v) and k != v}


def follow_alias(aliases: dict[str, str], sid: str, exists: Callable[[str], bool]) -> str | None:
    """The session a former id ``sid`` names now (through renames of renames), or None when
    it leads to no stored session (a loop of renames included)."""
    seen = {sid}
    current = sid
    while current in aliases:
        current = aliases[current]
        if current in seen:
            return None
        seen.add(current)
        if exists(current):
            return current
    return None


class UnusableLog(StorageError):
    """A session's log that aish will not read or write (a symbolic link, not a file, ...)."""


# How long a deletion is remembered for `--sync-sessions` (seconds): long enough for every
# machine to sync once, after which a copy that still holds the content is not taken back.
TOMBSTONE_SECONDS = 30 * 86400.0


def merge_tombstones(a: dict | None, b: dict | None) -> dict | None:
    """One tombstone from two records of deletions in the same session (either may be None).

    Every deletion keeps its own time, so that a restore clears exactly what came before it:
    ``removed``: when the whole session was removed (0: never); ``messages``: message id -> when
    a prune dropped it; ``cleared``: when it was last restored on purpose; ``time``: the latest
    of them (what the retention period counts from); ``ops``: the operations involved.
    """
    if not a or not b:
        either = a or b
        return dict(either) if either else None
    messages = dict(a["messages"])
    for mid, when in b["messages"].items():
        messages[mid] = max(when, messages.get(mid, 0.0))
    return {"id": a["id"], "time": max(a["time"], b["time"]),
            "ops": list(dict.fromkeys([*a["ops"], *b["ops"]])),
            "removed": max(a["removed"], b["removed"]), "messages": messages,
            "cleared": max(a["cleared"], b["cleared"])}


def tombstone(sid: str, op: str, when: float, removed: bool = False,
              messages: Iterable[str] = (), cleared: bool = False) -> dict:
    """The record of one deletion (or, with ``cleared``, of a restore that undoes the earlier)."""
    return {"id": sid, "time": when, "ops": [op], "removed": when if removed else 0.0,
            "messages": dict.fromkeys(messages, when), "cleared": when if cleared else 0.0}


def in_force(record: dict, born: float = 0.0) -> tuple[bool, set[str]]:
    """What a tombstone still deletes from a copy made (created or restored) at ``born``:
    (the whole session?, the ids of messages)."""
    cutoff = max(record["cleared"], born)
    return (record["removed"] > cutoff,
            {mid for mid, when in record["messages"].items() if when > cutoff})


def parse_tombstone(raw: bytes | str, sid: str) -> dict | None:
    """A stored tombstone, or None when it does not decode (a damaged one deletes nothing)."""
    try:
        data = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    messages = data.get("messages")
    messages = messages if isinstance(messages, dict) else {}
    ops = data.get("ops")
    return {"id": sid, "time": _time(data.get("time")),
            "ops": [o for o in ops if isinstance(o, str)] if isinstance(ops, list) else [],
            "removed": _time(data.get("removed")),
            "messages": {m: _time(t) for m, t in messages.items() if isinstance(m, str)},
            "cleared": _time(data.get("cleared"))}


_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # the C scanner alone
RECORD_KINDS = ("meta", "msg", "ref")  # a tuple: a hand-edited "t" may be unhashable


def parse_line(text: str) -> dict:
    """Parse one stored line into a record dict; raises ValueError with a short reason."""
    if len(text) > MAX_LINE_CHARS:
        raise ValueError("line too long")
    # A line as aish writes it (one object, nothing around it) takes the short way; anything
    # else is read exactly as json.loads reads it, errors included.
    try:
        record, end = _scan(text, 0)
    except (StopIteration, json.JSONDecodeError):
        end = -1
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if end != len(text):
        try:
            record = json.loads(text)
        except RecursionError:
            raise ValueError("nested too deeply") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"bad json: {exc.msg}") from None
    if not isinstance(record, dict) or record.get("t") not in RECORD_KINDS:
        raise ValueError("not a session record")
    return record


def dump_line(record: dict) -> bytes:
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (e.g. from a model's JSON): escape it
        return (json.dumps(record, separators=(",", ":")) + "\n").encode("ascii")


def fold_records(records: list[tuple[int, dict]], problems: list[Problem],
                 positions: Callable[[int], int | None] = lambda _line: None) -> Loaded:
    """Turn parsed records into meta + messages + refs, collecting problems instead of raising.

    A message stored without a parent follows the message stored before it; it is given that
    parent here, so nothing above the store needs to know the older form. ``positions`` maps a
    record's line to where the store keeps it.
    """
    meta: dict = {}
    messages: list[Message] = []
    tree = RefState()
    last_time = float("-inf")
    for line, record in records:
        if record["t"] == "meta":
            fold_meta(meta, record)
            continue
        if record["t"] == "ref":
            tree.fold(record, positions(line))
            continue
        pos = positions(line)
        try:
            message = Message.from_record(record, pos, messages[-1].id if messages else "")
        except KeyError as exc:
            problems.append(Problem(line, "missing field", str(exc.args[0])[:60]))
            continue
        except (TypeError, ValueError, OverflowError) as exc:
            problems.append(Problem(line, "bad record", str(exc)[:120]))
            continue
        if message.time < last_time - 1:  # one second of clock skew between writers is normal
            problems.append(Problem(line, "out of order", "message older than the one before"))
        last_time = max(last_time, message.time)
        tree.fold(record, pos)
        messages.append(message)
    if not meta.get("id"):
        problems.insert(0, Problem(0, "missing meta", "no session header record"))
    return Loaded(meta, messages, problems, tree=tree)


class Medium(Protocol):
    """Raw access to a stored log, for walking a branch from its head without reading it all."""

    def at(self, pos: int) -> bytes | None: ...  # the record stored at ``pos``
    # Records before ``pos`` (None: the end of the log), newest first, with their positions.
    def before(self, pos: int | None) -> Iterator[tuple[bytes, int]]: ...


def walk(medium: Medium, decode: Callable[[bytes], Message | None], head: Head,
         pairs: int) -> list[Message] | None:
    """The path from the root to ``head``, limited to its last ``pairs`` user messages and what
    follows them (0: all), oldest first; None when the log must be read whole to find it.

    Each step tries the record right before the child (where a straight conversation keeps
    it), then the position the child names (``pp``), then scans back from the child; the cost
    is the path's length, not the session's.
    """
    out: list[Message] = []
    users = 0
    want: str | None = head.id  # None: the message stored before the last one (older logs)
    hint, scan_from = head.pos, None
    seen: set[str] = set()
    while want != "":
        found = _find(medium, decode, want, hint, scan_from)
        if found is not None and found[0].id in seen:
            return None  # a damaged log's loop: the caller reads it whole, which stops
        if found is not None:
            seen.add(found[0].id)
        if out and out[-1].parent is None:  # an older log's parent is whatever came before
            out[-1] = replace(out[-1], parent=found[0].id if found else "")
        if found is None:
            return out[::-1] if want is None else None
        message, pos = found
        out.append(replace(message, pos=pos))
        want, hint, scan_from = message.parent, message.pp, pos
        if message.role == "user":
            users += 1
            if users == pairs:
                if want is None:
                    found = _find(medium, decode, None, None, pos)
                    out[-1] = replace(out[-1], parent=found[0].id if found else "")
                break
    return out[::-1]


def find_message(medium: Medium, decode: Callable[[bytes], Message | None], head: Head
                 ) -> Message | None:
    """The message ``head`` names, with where it is stored: at its position when that holds,
    else scanned for from the end of the log (None: the log holds none)."""
    found = _find(medium, decode, head.id, head.pos, None) if head.id else None
    return None if found is None else replace(found[0], pos=found[1])


def _find(medium: Medium, decode: Callable[[bytes], Message | None], want: str | None,
          hint: int | None, scan_from: int | None) -> tuple[Message, int] | None:
    if hint is not None:
        raw = medium.at(hint)
        message = decode(raw) if raw is not None else None
        if message is not None and message.id == want:
            return message, hint
    for raw, pos in medium.before(scan_from):
        message = decode(raw)
        if message is not None and (want is None or message.id == want):
            return message, pos
    return None


class Codec(Protocol):
    """Transforms message records on their way to and from storage (e.g. encryption)."""

    def seal(self, record: dict) -> dict: ...

    def open(self, record: dict) -> dict: ...


class PlainCodec:
    def seal(self, record: dict) -> dict:
        return record

    def open(self, record: dict) -> dict:
        if "enc" in record:  # written with encryption on; reading it needs the key
            from aish.errors import StorageError

            raise StorageError("this session's messages are encrypted",
                               hint="turn on sessions.storage.encrypt and provide the key")
        return record


def _map_messages(data: dict, change) -> dict:
    messages = data.get("messages")
    if not isinstance(messages, list):
        return data
    return {**data, "messages": [change(r) if isinstance(r, dict) and r.get("t") == "msg"
                                 else r for r in messages]}


def seal_doc(codec: Codec, data: dict) -> dict:
    """Seal the message records a document (template, checkpoint) carries in ``messages``."""
    return _map_messages(data, codec.seal)


def open_doc(codec: Codec, data: dict) -> dict:
    """Undo `seal_doc`; raises ValueError when a sealed message cannot be opened."""
    return _map_messages(data, codec.open)


class Store(Protocol):
    """The operations the session core needs; `file` and `redis` implement them."""

    def exists(self, sid: str) -> bool: ...
    def create(self, meta: dict, messages: Sequence[Message] = ...,
               refs: dict[str, str] | None = ...) -> Summary: ...
    def append(self, sid: str, records: list[dict]) -> Summary: ...
    def summary(self, sid: str) -> Summary: ...
    def summaries(self) -> list[Summary]: ...
    def ids(self) -> list[str]: ...
    def load(self, sid: str) -> Loaded: ...
    # The session with only first lines, for drawing its tree; None: use `load`.
    def skeleton(self, sid: str) -> Loaded | None: ...
    # What reports count (`aish.tallies.Counted`), kept up to date; None: count from `load`.
    def tallies(self, sid: str): ...
    def tail(self, sid: str, pairs: int) -> list[Message]: ...
    def path(self, sid: str, head: Head | None, pairs: int) -> list[Message]: ...
    def message(self, sid: str, head: Head) -> Message | None: ...  # one, by id and position
    def raw_lines(self, sid: str) -> list[str]: ...
    def replace(self, sid: str, meta: dict, messages: list[Message],
                since: object = None, refs: dict[str, str] | None = None) -> Summary: ...
    def delete(self, sid: str) -> None: ...
    def remove(self, sid: str, reason: str) -> str: ...  # backup + delete, atomically
    def backup(self, sid: str, reason: str) -> str: ...
    def backups(self, sid: str) -> list[str]: ...  # locations, oldest first
    def read_backup(self, location: str) -> bytes | None: ...  # JSON lines; None: not a backup
    def location(self, sid: str) -> str: ...
    def put_doc(self, kind: str, name: str, data: dict) -> str: ...
    def get_doc(self, kind: str, name: str) -> dict | None: ...
    def list_docs(self, kind: str) -> list[str]: ...
    # Deletions remembered so that sync does not bring them back (see `merge_tombstones`).
    def tombstones(self) -> dict[str, dict]: ...
    def add_tombstone(self, record: dict) -> None: ...  # merged with the one stored
    # Renames: the log, summary and backups move to ``new`` in one step and ``old`` is kept as
    # an alias of it, so that a former id still finds the session.
    def rename(self, old: str, new: str) -> Summary: ...
    def aliases(self) -> dict[str, str]: ...
    def alias(self, sid: str) -> str | None: ...  # where a former id leads (None: nowhere)


def rewrite_records(sid: str, meta: dict, messages: Sequence[Message],
                    refs: dict[str, str] | None, encode: Callable[[dict], bytes],
                    by_bytes: bool) -> list[tuple[dict, bytes]]:
    """The records (and their stored form) of a log rewritten as ``meta`` + ``messages``,
    then one record per ref in ``refs`` (name -> message id) restating where it points.

    Each message names where its parent is (``pp``), so walking a branch stays cheap after a
    rewrite; positions count bytes (``by_bytes``, the file store) or records (Redis).
    """
    meta = {k: v for k, v in meta.items() if k not in ("t", "v")}
    out: list[tuple[dict, bytes]] = []
    where: dict[str, int] = {}
    pos = 0

    def add(record: dict) -> int:
        nonlocal pos
        line = encode(record)
        out.append((record, line))
        at, pos = pos, pos + (len(line) if by_bytes else 1)
        return at

    add({"t": "meta", "v": FORMAT_VERSION, **meta, "id": sid})
    for message in messages:
        record = message.to_record()
        if message.parent and message.parent in where:
            record["pp"] = where[message.parent]
        where[message.id] = add(record)
    if refs is not None:
        # A kept message no branch leads to (an older reply beside a regenerated one) stays
        # reachable from the ref log, as it was before the rewrite: a record moves its branch
        # there before every branch is restated below.
        reached = _reached(messages, refs.values())
        parents = {m.parent for m in messages}
        for message in messages:
            if message.id not in reached and message.id not in parents:
                add({"t": "ref", "name": message.ref or MAIN, "from": "*", "to": message.id,
                     "op": "keep", "at": where[message.id]})
    for name, target in (refs or {}).items():
        ref: dict[str, object] = {"t": "ref", "name": name, "from": "*", "to": target,
                                  "op": "keep"}
        if target in where:
            ref["at"] = where[target]
        add(ref)
    return out


def _reached(messages: Sequence[Message], heads: Iterable[str]) -> set[str]:
    """Ids of ``messages`` on the path from the root to any of ``heads``."""
    by_id = {m.id: m for m in messages}
    reached: set[str] = set()
    for head in heads:
        while head and head in by_id and head not in reached:
            reached.add(head)
            head = by_id[head].parent or ""
    return reached
