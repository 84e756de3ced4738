"""`--import-session`: read another tool's conversations, check them all, then store them.

Nothing is written unless every conversation passes the checks `--restore-session` makes (text
is valid Unicode, messages within the size limit, ids and names sound, the tree consistent) and
the limit on active sessions leaves room for them all. The file is bounded as a whole by
``max_import_bytes``; the session size limit applies to each conversation, the session it
becomes: one over it is left out (and reported) and the others imported, since an export holds
many conversations that are each a session of their own.

Importing is idempotent: each session records where it came from in its header's ``origin``
(the source, the source's id for the conversation, and a digest of what it says). A
conversation already imported with the same content is not imported again: its session is
reported instead. One that has changed since (a chat continued in the other tool) is imported
as a new session beside the earlier one, so nothing in either is lost.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from aish.errors import AishError, LimitError, UsageError
from aish.importers import SOURCES
from aish.importers.model import UNEXPECTED, BadSource, Conversation, message_id
from aish.importers.reading import Budget, existing
from aish.management.intake import BadInput, Incoming, Prepared, prepare
from aish.specialists import ai_key

_PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}")


@dataclass
class Imported:
    id: str
    source_id: str
    title: str | None
    messages: int
    branches: list[str] = field(default_factory=list)
    existing: bool = False  # imported before with the same content: nothing was written
    earlier: list[str] = field(default_factory=list)  # sessions of an older copy of it

    def to_json(self) -> dict:
        return dict(self.__dict__)


def read_conversations(source: str, path: str, limit: int,
                       skipped: list[str] | None = None) -> list[Conversation]:
    """The conversations in ``path`` as ``source`` writes them; AishError if it cannot be.
    With a ``skipped`` list, conversations that cannot be read are described there instead."""
    if source not in SOURCES:
        raise UsageError(f"--from: expected one of {', '.join(SOURCES)}, got {source!r}")
    reader = importlib.import_module(f"aish.importers.{source}")
    file = existing(path)
    try:
        return reader.read(file, Budget(limit), skipped)
    except AishError:
        raise
    except (*UNEXPECTED, MemoryError) as exc:  # a reader meeting a shape it did not foresee
        raise BadSource(f"{path}: cannot read it as {source} writes it "
                        f"({type(exc).__name__})") from None


def _source_key(value: str, hidden=None) -> str:
    """The source's id for a conversation as stored in a header: an id that is plain text,
    otherwise a digest of it (it may be anything a file holds). Headers are not encrypted, so
    with encryption on (``hidden``: the store's codec) it is always a digest keyed by the
    store's key: a chat's name can say what it is about, and a plain digest of a likely name
    could be looked up."""
    if hidden is not None:
        return "hmac:" + hidden.name_digest(value)
    if _PLAIN_ID.fullmatch(value):
        return value
    return "sha256:" + message_id("id", "", value)


def _incoming(source: str, conversation: Conversation, ai: str, label: str,
              hidden, now: float) -> Incoming:
    key = _source_key(conversation.source_id, hidden)
    ids = {turn.key: message_id(source, key, turn.key) for turn in conversation.turns}
    records: list[tuple[int, object]] = []
    latest = 0.0
    for position, turn in enumerate(conversation.turns, start=1):
        # A log keeps messages in time order; a source whose times go back (a clock set back,
        # a message without a time) has such a time raised to the one before it.
        # A time in the future (a wrong clock, a hostile file) is taken as now: it would
        # otherwise raise every later message to it and keep the session from ever expiring.
        latest = max(latest, min(turn.time, now))
        record: dict = {"t": "msg", "id": ids[turn.key], "role": turn.role,
                        "content": turn.text, "ai": ai, "time": latest}
        if turn.parent is not None:
            record["parent"] = ids.get(turn.parent, "")
        if turn.model:
            record["model"] = turn.model
        if turn.usage:
            record["usage"] = {"prompt_tokens": turn.usage[0],
                               "completion_tokens": turn.usage[1]}
        records.append((position, record))
    times = [min(turn.time, now) for turn in conversation.turns]
    created = min(conversation.created, now) if conversation.created is not None else min(
        times, default=None)
    meta: dict = {"owner": ai, "participants": [ai], "shared": False,
                  "origin": {"imported": source, "source_id": key,
                             "digest": conversation.digest()}}
    if created is not None:
        meta["created"] = min([created, *times])
        meta["updated"] = max([created, *times])
    if conversation.title and hidden is None:  # a title is stored unencrypted
        meta.update(title=conversation.title, title_by="user")
    refs = {name: ids[head] for name, head in conversation.branches.items() if head in ids}
    return Incoming(label, meta, records, refs=refs)


def _imported_before(sessions, source: str, ai: str) -> dict[str, list[tuple[str, str]]]:
    """Source id -> [(session id, digest)] of the sessions imported from ``source`` for
    ``ai``: the same conversation imported for another specialist is that one's session,
    which ``ai`` could not continue."""
    found: dict[str, list[tuple[str, str]]] = {}
    for summary, _ in sessions.listing(include_all=True):
        origin = summary.origin
        if origin.get("imported") == source and isinstance(origin.get("source_id"), str) \
                and summary.meta.get("owner") == ai:
            found.setdefault(origin["source_id"], []).append(
                (summary.id, str(origin.get("digest"))))
    return found


@dataclass
class Report:
    sessions: list[Imported]
    empty: list[str]  # source ids of conversations without a message to import, left out
    skipped: list[str] = field(default_factory=list)  # damaged ones left out, and why
    too_large: list[str] = field(default_factory=list)  # over the session size limit, and why


def import_sessions(sessions, source: str, path: str, *, ai: str = "apollo",
                    conversation: str | None = None, skip_corrupted: bool = False) -> Report:
    """Import every conversation of ``path`` (or only ``conversation``) as sessions of ``ai``.

    Raises only AishError subclasses, whatever the file holds, and then has written nothing.
    ``skip_corrupted``: a conversation that cannot be read or fails a check is left out (and
    reported) instead of stopping the import.
    """
    ai = ai_key(ai)
    config, now = sessions.config, sessions.now()
    skipped: list[str] | None = [] if skip_corrupted else None
    found = read_conversations(source, path, config.max_import_bytes, skipped)
    if conversation is not None:
        found = [c for c in found if conversation in (
            c.source_id, _source_key(c.source_id),
            _source_key(c.source_id, sessions.codec if config.encrypt else None))]
        if not found:
            raise BadSource(f"{path}: no conversation {conversation!r} in it",
                            hint=f"see the ids with: aish --import-session {path} --from "
                            f"{source} --json")
    # A conversation with nothing anyone said (only a system prompt, only tool traffic) would
    # be an empty session: it is left out, and the caller told.
    empty = [c.source_id for c in found if not c.turns]
    found = [c for c in found if c.turns]
    if not found:
        if skipped:
            raise BadSource(f"{path}: none of its conversations can be imported: {skipped[0]}")
        raise BadSource(f"{path}: no messages to import in it" if empty
                        else f"{path}: no conversations in it")
    name = Path(path).name
    hidden = sessions.codec if config.encrypt else None
    before = _imported_before(sessions, source, ai)
    # (conversation, its checked session, the session or earlier plan entry that already
    # holds it, sessions of older copies of it); one already imported is not checked again.
    plan: list[tuple[Conversation, Prepared | None, str | int | None, list[str]]] = []
    planned: dict[tuple[str, str], int] = {}  # a file may hold one conversation twice
    too_large: list[LimitError] = []
    for conv in found:
        key = (_source_key(conv.source_id, hidden), conv.digest())
        earlier = before.get(key[0], [])
        matches = [sid for sid, digest in earlier if digest == key[1]]
        same = matches[0] if matches else planned.get(key)
        planned.setdefault(key, len(plan))
        item = None
        if same is None:
            label = f"{name}: conversation {_source_key(conv.source_id)}"
            try:
                item = prepare(_incoming(source, conv, ai, label, hidden, now), config, now,
                               False)
            except LimitError as exc:  # this conversation alone: the others may still fit
                too_large.append(exc)
                continue
            except (BadInput, UsageError) as exc:
                if skipped is None:
                    raise
                skipped.append(str(exc))
                continue
        plan.append((conv, item, same, [sid for sid, _ in earlier]))
    if not plan:
        if len(too_large) == 1:
            raise too_large[0]
        if too_large:
            raise LimitError(f"{path}: none of its conversations fits in a session; the "
                             f"first: {too_large[0].args[0]}", hint=too_large[0].hint)
        raise BadSource(f"{path}: no conversation in it could be imported")
    adding = sum(1 for _, item, _, _ in plan if item is not None and _active(item.meta, now,
                                                                            config))
    room = config.max_sessions - len(sessions.listing())
    if adding > room:
        raise LimitError(f"{adding} of the conversations would be active sessions, and the "
                         f"limit of {config.max_sessions} active sessions leaves room for "
                         f"{max(room, 0)}", hint="end some with 'aish --end-session ID', or "
                         "raise AISH_MAX_SESSIONS")
    results: list[Imported] = []
    for conv, item, same, older in plan:
        if item is None:
            held = results[same].id if isinstance(same, int) else str(same)
            results.append(Imported(held, conv.source_id, conv.title, len(conv.turns),
                                    sorted(conv.branches), existing=True))
            continue
        branches = sorted(item.refs)
        # The audit log is not encrypted: with encryption on it names neither the file
        # (its name can say what the chat is about) nor the conversation in clear.
        where = str(Path(path).expanduser().absolute())
        if hidden is not None:
            where = "hmac:" + hidden.name_digest(where)
        summary = sessions.import_new(item.meta, item.messages, item.refs, source=source,
                                      path=where, from_id=item.meta["origin"]["source_id"])
        results.append(Imported(summary.id, conv.source_id, conv.title, len(item.messages),
                                branches, earlier=older))
    return Report(results, empty, skipped or [], [str(exc) for exc in too_large])


def _active(meta: dict, now: float, config) -> bool:
    return now - meta["updated"] <= config.timeout_minutes * 60
