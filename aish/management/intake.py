"""Reading what `--restore-session` is given, treating it as hostile.

Accepted: a document written by `--save-session` or `--export-sessions`, or a JSON-lines session
log such as a backup in ``sessions/backup/``. Everything is checked before anything is written:
the size is bounded, JSON nesting and constants (NaN, Infinity) are refused, every value is
type-checked, strings must be valid Unicode (no lone surrogates), message and session sizes obey
the configured limits, and ids must pass `check_id`, so no id can name a path outside the session
directory. Every failure is an AishError with one line for the user.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from aish.compaction import INDEX_KEY, is_summary
from aish.errors import AishError, LimitError, SessionNotFound, UsageError
from aish.header import Header, fold_meta, is_count, is_name, is_time
from aish.ids import BRANCH_PATTERN, check_id
from aish.management.integrity import LOSSLESS, mend_tree
from aish.management.transfer import ALL_FORMAT, FORMAT, VERSION
from aish.messages import ROLES, Message, Timing, Usage, new_message_id
from aish.people import USER_PATTERN, members
from aish.specialists import ai_key
from aish.store.base import PlainCodec, Problem, dump_line, parse_line
from aish.store.refs import RefState
from aish.titles import clean_title

MAX_WINDOW = 1_000_000
MAX_PLAIN_CHARS = 4096  # an unknown header value longer than this is dropped
_MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}")
_SECRET_WORDS = ("key", "secret", "token", "password")


class BadInput(AishError):
    """What was given to restore is not a session we can take in."""


def stored_backup(sessions, path: str) -> tuple[bytes, str, str | None] | None:
    """(data, location, note) of the stored backup that ``path`` names, or None.

    ``path`` is either a location `Store.backup` returned (a file, or a Redis key), or it names
    a session: users restore with ``--restore-session ~/.aish/sessions/backup/ID.json``, and
    backups are kept as ``ID-STAMP-REASON``, so a missing ``ID.json`` (or a bare ``ID``) means
    the newest full backup of ID. Torn-tail fragments are not full backups.
    """
    data = sessions.read_backup(path)
    if data is not None:
        return data, path, None
    name = path.rstrip("/").rsplit("/", 1)[-1]
    stem = name.removesuffix(".jsonl").removesuffix(".json")
    if not is_name(stem):
        return None
    full = [loc for loc in sessions.backups(stem)
            if not loc.removesuffix(".jsonl").endswith("-torn")]
    data = sessions.read_backup(full[-1]) if full else None
    if data is None:
        return None
    return data, full[-1], f"{path} does not exist; restoring the newest backup of {stem}, " \
                           f"{full[-1]}"


def read_source(path: str | None, stdin, limit: int,
                sessions=None) -> tuple[bytes, str, str | None]:
    """(data, label, note) from ``path`` (a file, or a stored backup) or stdin, refusing more
    than ``limit`` bytes."""
    note = None
    if path in (None, "-"):
        if stdin is None or _isatty(stdin):
            raise UsageError("--restore-session needs a PATH or the document on stdin",
                             hint="aish --restore-session < my_session.json")
        stream = getattr(stdin, "buffer", stdin)
        try:
            data = stream.read(limit + 1)
        except (OSError, ValueError) as exc:
            raise AishError(f"cannot read stdin: {exc}") from None
        label = "stdin"
    elif Path(path).expanduser().exists():
        file = Path(path).expanduser()
        try:
            with open(file, "rb") as f:
                data = f.read(limit + 1)
        except IsADirectoryError:
            raise UsageError(f"{path} is a directory") from None
        except OSError as exc:
            raise AishError(f"cannot read {path}: {exc.strerror}") from None
        label = str(file)
    else:
        found = stored_backup(sessions, path) if sessions is not None else None
        if found is None:
            raise SessionNotFound(f"{path}: no such file or backup",
                                  hint="see the backups in the session directory's backup/")
        data, label, note = found
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    if len(data) > limit:
        raise LimitError(f"the input is larger than the limit of {limit:,} bytes",
                         hint="restore sessions one at a time, or raise "
                         "sessions.limits.max_import_bytes")
    return data, label, note


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@dataclass
class Incoming:
    """One session as found in the input, before any check of its values."""

    label: str  # "the document", "session 2 of the document", "the log"
    meta: dict
    records: list[tuple[int, object]]  # (position, raw record)
    problems: list[Problem] = field(default_factory=list)
    where: str = "message"  # what a position counts: "message" or "line"
    refs: object = None  # the branches it names (name -> message id), checked in `prepare`


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed")


def _loads(text: str):
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_input(data: bytes, codec=None) -> list[Incoming]:
    """The sessions in ``data``: a saved or exported document, or a JSON-lines log."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput("the input is not UTF-8 text") from None
    if not text.strip():
        raise BadInput("the input is empty")
    error: ValueError | None = None
    try:
        doc = _loads(text)
    except ValueError as exc:
        doc, error = None, exc
    if isinstance(doc, dict) and "format" in doc:
        return _from_document(doc)
    if error is not None or (isinstance(doc, dict) and doc.get("t") in ("meta", "msg")):
        log = _from_log(text, codec or PlainCodec())
        if log.records or log.meta:
            return [log]
        reason = str(error).splitlines()[0][:100] if error else "no session records"
        raise BadInput(f"the input is neither a session document nor a session log ({reason})")
    raise BadInput("the input is not an aish session document",
                   hint='expected {"format": "aish-session", ...} as written by --save-session')


def _from_document(doc: dict) -> list[Incoming]:
    fmt, version = doc.get("format"), doc.get("version")
    if fmt not in (FORMAT, ALL_FORMAT):
        raise BadInput(f"unknown document format {str(fmt)[:40]!r}",
                       hint=f"expected {FORMAT!r} or {ALL_FORMAT!r}")
    if not is_count(version) or version < 1:
        raise BadInput("the document has no valid version number")
    if version > VERSION:
        raise BadInput(f"the document was written by a newer aish (format version {version})")
    if fmt == FORMAT:
        return [_from_session(doc, "the document")]
    items = doc.get("sessions")
    if not isinstance(items, list):
        raise BadInput('the document\'s "sessions" is not a list')
    if not items:
        raise BadInput("the document holds no sessions")
    return [_from_session(item, f"session {n} of the document")
            for n, item in enumerate(items, start=1)]


def _from_session(item, label: str) -> Incoming:
    if not isinstance(item, dict):
        raise BadInput(f"{label} is not an object")
    meta, messages = item.get("session"), item.get("messages")
    if not isinstance(meta, dict):
        raise BadInput(f'{label}: "session" is not an object')
    if not isinstance(messages, list):
        raise BadInput(f'{label}: "messages" is not a list')
    return Incoming(label, meta, list(enumerate(messages, start=1)), refs=item.get("refs"))


def _from_log(text: str, codec) -> Incoming:
    lines = text.split("\n")
    meta: dict = {}
    records: list[tuple[int, object]] = []
    problems: list[Problem] = []
    tree = RefState()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = parse_line(line)
        except ValueError as exc:
            kind = "torn tail" if number == len(lines) else "bad record"
            problems.append(Problem(number, kind, str(exc)[:100]))
            continue
        tree.fold(record, None)
        if record["t"] == "meta":
            fold_meta(meta, record)
            continue
        if record["t"] == "ref":
            continue
        try:
            record = codec.open(record)
        except Exception:  # a codec is a plug-in: whatever it raises, this record is unusable
            problems.append(Problem(number, "bad record", "cannot be decoded"))
            continue
        records.append((number, record))
    if not meta:
        problems.insert(0, Problem(0, "missing meta", "no session header record"))
    refs = {name: head.id for name, head in tree.refs.items()}
    return Incoming("the log", meta, records, problems, where="line", refs=refs)


# -- checking restore input --------------------------------------------------------------------

class _Bad(Exception):
    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def _text_ok(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
        return False
    return True


def _message(raw, max_chars: int, seen: set[str]) -> Message:
    if not isinstance(raw, dict):
        raise _Bad("bad record", "not an object")
    if raw.get("t", "msg") != "msg":
        raise _Bad("bad record", "not a message record")
    for key in ("role", "content", "ai", "time"):
        if key not in raw:
            raise _Bad("missing field", key)
    role, content, ai, time = raw["role"], raw["content"], raw["ai"], raw["time"]
    if role not in ROLES:
        raise _Bad("bad field", "role must be 'user' or 'assistant'")
    if not isinstance(content, str):
        raise _Bad("bad field", "content must be text")
    if len(content) > max_chars:
        raise _Bad("too large", f"content has {len(content):,} characters (limit {max_chars:,})")
    if not _text_ok(content):
        raise _Bad("bad field", "content is not valid Unicode")
    if not is_name(ai) or not is_name(ai_key(ai)):
        raise _Bad("bad field", "ai must be a specialist name")
    if not is_time(time):
        raise _Bad("bad field", "time must be a timestamp")
    mid = raw.get("id")
    if not isinstance(mid, str) or not _MESSAGE_ID.fullmatch(mid) or mid in seen:
        mid = new_message_id()
    seen.add(mid)
    usage = raw.get("usage")
    tokens = None
    if isinstance(usage, dict):
        prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
        if is_count(prompt) and is_count(completion):
            tokens = Usage(prompt, completion)
    model = raw.get("model")
    if not (isinstance(model, str) and len(model) <= 200 and _text_ok(model)):
        model = None
    # Tree links: a value that is not a plausible id is dropped (the message then follows the
    # one before it), never trusted.
    parent, source = raw.get("parent"), raw.get("source")
    if not (parent == "" or (isinstance(parent, str) and _MESSAGE_ID.fullmatch(parent))):
        parent = None
    if not (isinstance(source, str) and _MESSAGE_ID.fullmatch(source)):
        source = None
    ref, note = raw.get("ref"), raw.get("note")
    ref = ref if is_name(ref) else None
    note = note if isinstance(note, str) and _KEY.fullmatch(note) else None
    # A compaction's count, and the summary a reply's context began with, by id alone: a
    # position in another log means nothing here.
    covers, summary = raw.get("covers"), raw.get("summary")
    covers = covers if is_count(covers) else None
    summary = summary if isinstance(summary, str) and _MESSAGE_ID.fullmatch(summary) else None
    # Who wrote it is kept as recorded history; a name that is not a user name reads as
    # unrecorded (the owner's). Who copied it is never taken from the input: restore says.
    by = raw.get("by")
    by = by if isinstance(by, str) and USER_PATTERN.fullmatch(by) else None
    return Message(role, content, ai_key(ai), float(time), mid, tokens,
                   raw.get("interrupted") is True, model, raw.get("cut") is True,
                   parent, ref, note, source, Timing.from_record(raw.get("timing")),
                   by=by, covers=covers, summary=summary)


def _plain(value) -> bool:
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int | float):
        return is_time(value) or is_count(value) or (isinstance(value, int) and abs(value) < 2**53)
    return isinstance(value, str) and len(value) <= MAX_PLAIN_CHARS and _text_ok(value)


def _compacted(value, messages: list[Message]) -> dict | None:
    """The header's index of each branch's newest summary, kept for summaries the input
    holds, without positions (restore finds them in the new log)."""
    if not isinstance(value, dict):
        return None
    summaries = {m.id for m in messages if is_summary(m)}
    out = {}
    for branch, entry in list(value.items())[:1000]:
        if not (isinstance(branch, str) and BRANCH_PATTERN.fullmatch(branch)
                and isinstance(entry, dict)):
            continue
        sid, source = entry.get("id"), entry.get("source")
        if (sid in summaries and isinstance(source, str)
                and _MESSAGE_ID.fullmatch(source)):
            out[branch] = {"id": sid, "source": source}
    return out or None


def _origin(value) -> dict | None:
    if not isinstance(value, dict):
        return None
    out = {}
    for key, item in list(value.items())[:16]:
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            continue
        if isinstance(item, list) and len(item) <= 64 and all(is_name(i) for i in item):
            out[key] = list(item)
        elif _plain(item):
            out[key] = item
    return out or None


def _meta(raw: dict, messages: list[Message], config, now: float) -> dict:
    header, _ = Header.decode(raw)  # anything unusable reads as missing and is rebuilt below
    owner = ai_key(header.owner) if header.owner else None
    if owner is None and messages:
        owner = messages[0].ai
    names = ([owner] if owner else []) + [ai_key(p) for p in header.participants[:1000]]
    names += [m.ai for m in messages]
    participants = tuple(dict.fromkeys(n for n in names if is_name(n)))
    created = header.created
    if created is None:
        created = messages[0].time if messages else now
    updated = header.updated
    if updated is None:
        updated = max([created] + [m.time for m in messages])
    window = header.context_window
    if window is None or window > MAX_WINDOW:
        window = config.context_window
    persona = header.persona
    if persona is not None and not (len(persona) <= config.max_message_chars
                                    and _text_ok(persona)):
        persona = None
    # Plain values a newer aish may have added to the header; never anything secret-looking.
    extra = {key: value for key, value in header.extra.items()
             if isinstance(key, str) and _KEY.fullmatch(key)
             and not any(word in key for word in _SECRET_WORDS) and _plain(value)}
    index = _compacted(raw.get(INDEX_KEY), messages)
    if index:
        extra[INDEX_KEY] = index
    # Who may do what: only grants that decode are kept, in their checked form.
    grants = members(raw) or {}
    if grants:
        extra["members"] = {user: g.to_json() for user, g in list(grants.items())[:1000]}
    # A title from outside is shown in listings: one clean line, like one set here.
    title = clean_title(header.title) if header.title is not None else ""
    return Header(
        owner=owner, created=created, updated=updated, context_window=window,
        shared=len(participants) > 1 if header.shared is None else header.shared,
        state=header.state, participants=participants, origin=_origin(header.origin),
        persona=persona, title=title or None, title_by=header.title_by if title else None,
        extra=extra).to_meta()


@dataclass
class Prepared:
    label: str
    source_id: str | None
    meta: dict
    messages: list[Message]
    skipped: list[str]
    # A recovery file of messages session mode could not save: they belong to that session,
    # so restoring adds them to it when it still exists, instead of making a copy.
    unsaved: bool = False
    refs: dict[str, str] = field(default_factory=dict)  # branch name -> message id ("": root)


def prepare(incoming: Incoming, config, now: float, skip_corrupted: bool) -> Prepared:
    """Check one incoming session completely; raises BadInput/LimitError/UsageError."""
    problems = list(incoming.problems)
    messages: list[Message] = []
    seen: set[str] = set()
    for position, raw in incoming.records:
        try:
            messages.append(_message(raw, config.max_message_chars, seen))
        except _Bad as bad:
            problems.append(Problem(position, bad.kind, bad.detail))
    damage = [p for p in problems if p.kind not in LOSSLESS]
    described = [_describe(p, incoming.where) for p in damage]
    if damage and not skip_corrupted:
        more = f" and {len(damage) - 1} more" if len(damage) > 1 else ""
        raise BadInput(f"{incoming.label}: {described[0]}{more}",
                       hint="add --skip-corrupted to restore every valid message")
    source_id = incoming.meta.get("id")
    if source_id is not None:
        try:
            check_id(source_id)
        except UsageError as exc:
            raise UsageError(f"{incoming.label}: {exc.args[0]}",
                             hint="restore it under another id with --as ID") from None
    meta = _meta(incoming.meta, messages, config, now)
    try:
        size = len(dump_line({"t": "meta", **meta}))
        size += sum(len(dump_line(m.to_record())) for m in messages)
    except (UnicodeEncodeError, ValueError, TypeError):  # defence in depth: checked above
        raise BadInput(f"{incoming.label}: holds values that cannot be stored") from None
    if size > config.max_session_bytes:
        raise LimitError(f"{incoming.label}: the session would hold {size:,} bytes, over the "
                         f"session size limit ({config.max_session_bytes:,} bytes)",
                         hint="raise sessions.limits.max_session_bytes")
    ids = {m.id for m in messages}
    refs = incoming.refs if isinstance(incoming.refs, dict) else {}
    kept_refs = {name: target for name, target in refs.items()
                 if is_name(name) and isinstance(target, str) and (target == "" or target in ids)}
    unsaved = incoming.meta.get("unsaved") is True
    if not unsaved:
        # Links to messages the input does not hold (skipped as damaged, or edited out) are
        # mended as --repair-session would, so what is restored validates clean. A recovery
        # file's first message follows its session's head, which the file does not hold.
        messages, kept_refs = mend_tree(messages, kept_refs)
    return Prepared(incoming.label, source_id, meta, messages, described,
                    unsaved=unsaved, refs=kept_refs)


def _describe(problem: Problem, where: str) -> str:
    if not problem.line:
        return str(problem)
    detail = f" ({problem.detail})" if problem.detail else ""
    return f"{where} {problem.line}: {problem.kind}{detail}"


