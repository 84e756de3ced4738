"""Compaction: the pairs that leave a branch's context window are summarised by the session's
model instead of being dropped.

A summary is a ``msg`` record with ``note: "summary"``: it stands for messages 1..``covers`` of
the path up to its ``source`` (the last message it covers), and the context of every path
through ``source`` begins with the newest one (sent as a system message), followed by the
window. Nothing is removed or rewritten: the summary hangs off the path beside it (its
``parent`` is the summary it extends, or ``source`` for the first), moves no branch, and older
readers show it as a side note.

Finding it costs the window, never the session: the header's ``compacted`` entry names each
branch's newest summary and where it is stored (found when its ``source`` is at the window's
edge, as it is right after a compaction), and each reply names the summary its own context
began with (``summary``, ``summary_at``), so later windows find it among their messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

from aish.context import estimate_tokens, summarised_window
from aish.errors import ProviderError, StorageError, UsageError
from aish.messages import ASSISTANT, SUMMARY_NOTE, USER, ChatMessage, Message
from aish.records import FrozenRecord
from aish.store.refs import Head, pin_main

TYPE_CHECKING = False  # importing typing costs every command 2-3 ms: annotations only
if TYPE_CHECKING:
    from aish.providers.base import Provider
    from aish.sessions import Session, Sessions
    from aish.specialists import Specialist

NOTE = SUMMARY_NOTE  # the ``note`` of a compaction's record
INDEX_KEY = "compacted"  # header key: branch -> {"id", "at", "source"} of its newest summary
OVERFLOWS = ("drop", "summarize")

PROMPT = ("You condense conversations. Write a concise summary of the conversation below that "
          "keeps its facts, decisions, names, numbers, code identifiers and open questions, so "
          "that it can stand in for these messages later. Reply with the summary only.")
FRAME = "Summary of the earlier conversation (messages 1-{covers}): {text}"
MIN_BUDGET = 256  # tokens of transcript per request, however small the model's context


class Built(FrozenRecord):
    """What a context is made of: the newest summary on the path (None: none), the window
    sent after it, and the newest message left out that no summary covers (None: nothing)."""

    _fields = ("summary", "window", "gap")
    summary: Message | None
    window: list[Message]
    gap: str | None

    def __init__(self, summary: Message | None, window: list[Message], gap: str | None) -> None:
        self._set(summary, window, gap)


def is_summary(message: Message) -> bool:
    """A compaction's record: it stands beside the path, so it is never a side of a fork, a
    branch head, or a numbered message of the conversation."""
    return message.note == NOTE


def conversation(messages: Iterable[Message]) -> list[Message]:
    """``messages`` without the compactions among them: what people said, and counts."""
    return [m for m in messages if not is_summary(m)]


def index_entry(session: Session) -> Head | None:
    """Where the header says the newest summary of the session's branch is, with its
    ``source`` (as the head's id's companion); None when there is none or it is damaged."""
    found = _entries(session.meta).get(session.branch)
    return found[0] if found else None


def _entries(meta: dict) -> dict[str, tuple[Head, str]]:
    raw = meta.get(INDEX_KEY)
    out: dict[str, tuple[Head, str]] = {}
    if not isinstance(raw, dict):
        return out
    for branch, entry in raw.items():
        if not isinstance(entry, dict):
            continue
        sid, at, source = entry.get("id"), entry.get("at"), entry.get("source")
        if isinstance(sid, str) and sid and isinstance(source, str) and source:
            pos = at if isinstance(at, int) and not isinstance(at, bool) and at >= 0 else None
            out[str(branch)] = (Head(sid, pos), source)
    return out


def find_summary(session: Session, history: list[Message]) -> Message | None:
    """The newest summary on the path that ends with ``history`` (a window's messages, oldest
    first), read from where it is stored: one record, whatever the session's length."""
    if not history or not session.stored:
        return None
    entry = _entries(session.meta).get(session.branch)
    edge = {m.id for m in history} | {history[0].parent or ""}
    head: Head | None = None
    if entry is not None and entry[1] in edge:
        head = entry[0]
    else:
        head = next((Head(m.summary, m.summary_at) for m in reversed(history) if m.summary),
                    None)
        if head is not None and head.pos is None:
            # A copied log (restored, synced) names summaries by id alone: where the header
            # says it is stored saves reading the log for it.
            head = next((h for h, _ in _entries(session.meta).values() if h.id == head.id),
                        head)
    if head is None:
        return None
    note = session.sessions.message(session.id, head)
    if note is None or note.note != NOTE or not note.source:
        return None
    return note


def build(session: Session, history: list[Message], pairs: int, cap: int,
          fixed_tokens: int) -> Built:
    """The context for ``history`` (its last pair is the one being sent)."""
    summary = find_summary(session, history)
    window, gap = summarised_window(history, summary, pairs, cap, fixed_tokens)
    return Built(summary, window, gap)


def as_chat(summary: Message) -> ChatMessage:
    """How a summary is sent: a system message before the window."""
    return ChatMessage("system", FRAME.format(covers=summary.covers or "?",
                                              text=summary.content))


# -- making one ------------------------------------------------------------------------------

def session_on(sessions: Sessions, sid: str, branch: str) -> Session:
    """Session ``sid`` as its owner sees it on ``branch``, for compacting or reporting (no
    sharing rule applies and nothing is written by opening it)."""
    from aish.sessions import Session

    summary = sessions.summary(sid)
    if summary.head(branch) is None:
        raise UsageError(f"session {sid} has no branch {branch}",
                         hint=f"see aish --list-branches {sid}")
    return Session(sessions, summary, summary.owner, branch=branch)


class Compacted(FrozenRecord):
    """What one compaction did."""

    _fields = ("note", "added")
    note: Message  # the summary stored
    added: int  # messages it summarised that no summary covered before

    def __init__(self, note: Message, added: int) -> None:
        self._set(note, added)


def compact(session: Session, specialist: Specialist, provider: Provider, *,
            quiet: bool = False, retries: int | None = None,
            pending_user: bool = False) -> Compacted | None:
    """Summarise what the next message's context would leave out on the session's branch,
    and store the summary; None when nothing new left the window. ``pending_user``: the
    newest stored message is the one being sent (an exchange compacting first), rather than
    a message still to come."""
    specialist = session.as_owner_sees_it(specialist)
    session.fit_to(provider, specialist)  # what the model takes sizes the window, as it sends
    if pending_user:
        built = session.context(specialist)
    else:
        upcoming = Message(USER, "", specialist.name, session.sessions.now())
        built = session.context(specialist, upcoming=upcoming)
    if built.gap is None or any(m.id == built.gap for m in session.pending):
        return None  # nothing left out, or what is left out is not stored yet
    before = built.summary
    edge = built.window[0]  # the oldest message kept: the gap is its parent
    new = _since(session, Head(built.gap, edge.pp), before.source or "" if before else "")
    if new is None:  # the summary's source is not on this path after all: start again
        before, new = None, _since(session, Head(built.gap, edge.pp), "")
    assert new is not None
    covers = (before.covers or 0 if before else 0) + len(new)
    text, model = _summarise(provider, specialist, before.content if before else "", new,
                             quiet=quiet, retries=retries)
    note = Message(ASSISTANT, text, specialist.name, session.sessions.now(), note=NOTE,
                   source=built.gap, covers=covers,
                   parent=before.id if before else built.gap, model=model)
    stored = _store(session, note, before.pos if before else edge.pp)
    session.sessions.audit.record("compact", session.id, specialist.name,
                                  branch=session.branch, covers=covers, added=len(new))
    return Compacted(stored, len(new))


def _since(session: Session, head: Head, stop: str) -> list[Message] | None:
    """The path's messages after ``stop`` ("": the root) up to ``head``, read backwards in
    growing steps, so that only what is summarised now is read; None when ``stop`` is not on
    the path."""
    pairs = 8
    while True:
        got = session.sessions.path(session.id, head, pairs)
        ids = [m.id for m in got]
        if stop and stop in ids:
            return got[ids.index(stop) + 1:]
        if sum(m.role == USER for m in got) < pairs:  # the walk reached the root
            return None if stop else got
        pairs *= 4


def _store(session: Session, note: Message, parent_pos: int | None) -> Message:
    """Append ``note`` beside the branch (it moves none) and point the header at it."""
    from aish.store.refs import RefMoved

    store = session.sessions.store
    record = note.to_record()
    if parent_pos is not None:
        record["pp"] = parent_pos
    for _ in range(20):
        summary = store.summary(session.id)
        # The note becomes the log's last message: main must not follow it.
        try:
            summary = store.append(session.id, pin_main(summary.tree) + [record])
            break
        except RefMoved:
            continue
    else:  # pragma: no cover - twenty writers in a row moved main meanwhile
        raise StorageError(f"session {session.id} is too busy to compact; try again")
    last = summary.tree.last
    pos = last.pos if last.id == note.id else None
    entries = dict(summary.meta.get(INDEX_KEY) or {}) if isinstance(
        summary.meta.get(INDEX_KEY), dict) else {}
    entries[session.branch] = {"id": note.id, "at": pos, "source": note.source}
    session.summary = store.append(session.id, [{"t": "meta", INDEX_KEY: entries}])
    return replace(note, pos=pos)


def _summarise(provider: Provider, specialist: Specialist, before: str,
               messages: list[Message], *, quiet: bool, retries: int | None
               ) -> tuple[str, str | None]:
    """The summary of ``before`` (the previous one) followed by ``messages``, asked in as
    many requests as the model's context needs, each folding one part into the summary."""
    limit = getattr(provider, "context_limit", None) or 8192
    budget = max(MIN_BUDGET, limit - estimate_tokens(PROMPT) - 2 * estimate_tokens(before)
                 - int(getattr(provider, "max_tokens", 512) or 512))
    text, model = before, None
    for part in _parts(messages, budget):
        text, model = _ask(provider, specialist, text, part, quiet=quiet, retries=retries)
    return text, model


def _line(message: Message) -> str:
    who = "User" if message.role == USER and not message.note else f"{message.ai}-ai"
    return f"{who}: {message.content}"


def _parts(messages: list[Message], budget: int) -> Iterator[list[str]]:
    """Transcript lines in parts of about ``budget`` tokens (a longer message is cut)."""
    part: list[str] = []
    used = 0
    for message in messages:
        line = _line(message)[:budget * 4]
        cost = estimate_tokens(line)
        if part and used + cost > budget:
            yield part
            part, used = [], 0
        part.append(line)
        used += cost
    if part:
        yield part


def _ask(provider: Provider, specialist: Specialist, before: str, lines: list[str], *,
         quiet: bool, retries: int | None) -> tuple[str, str | None]:
    transcript = "\n\n".join(lines)
    ask = (f"Summary so far:\n{before}\n\nConversation to add to it:\n{transcript}" if before
           else f"Conversation:\n{transcript}")
    chat = [ChatMessage("system", PROMPT), ChatMessage("user", ask)]
    parts: list[str] = []
    finished = None
    for chunk in provider.stream(chat, specialist, quiet=quiet, retries=retries):
        parts.append(chunk.text or "")
        if chunk.finished:
            finished = chunk
            break
    if finished is None:
        raise ProviderError(provider.endpoint, "the summary's stream ended before it finished")
    text = "".join(parts).strip()
    if not text:
        raise ProviderError(provider.endpoint, "the model returned an empty summary")
    return text, finished.model


# -- before an exchange ----------------------------------------------------------------------

def before_exchange(session: Session, specialist: Specialist, provider: Provider,
                    warn: Callable[[str], None]) -> None:
    """With ``overflow: summarize``: compact what the message just stored would push out of
    the window. A failure never holds the message back: its context drops those pairs, and
    ``warn`` says so."""
    try:
        compact(session, specialist, provider, quiet=True, retries=0, pending_user=True)
    except Exception as exc:  # noqa: BLE001 - a summary is never worth the message
        warn(f"could not summarise the older messages of session {session.id} "
             f"({_first_line(exc)}); they are left out of this reply's context")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


# -- reporting -------------------------------------------------------------------------------

def describe(summary: Message | None, now: float) -> str | None:
    """``Summary of messages 1–40 included (made 2 minutes ago)``; None without one."""
    from aish.humanize import ago

    if summary is None:
        return None
    return (f"Summary of messages 1\u2013{summary.covers or '?'} included "
            f"(made {ago(now - summary.time)})")


# -- copies and rewrites ---------------------------------------------------------------------

def covered(summary: Message, by_id: dict[str, Message]) -> set[str]:
    """The ids of the messages ``summary`` stands for: its ``source`` and every message
    before it on that path."""
    out: set[str] = set()
    mid = summary.source or ""
    while mid and mid in by_id and mid not in out:
        out.add(mid)
        mid = by_id[mid].parent or ""
    return out


def unpinned(messages: list[Message]) -> list[Message]:
    """``messages`` for a log written anew: positions are the old log's, so replies keep the
    id of the summary they began with only (and none when that summary is not among them)."""
    kept = {m.id for m in messages if is_summary(m)}
    return [m if m.summary is None else
            replace(m, summary=m.summary if m.summary in kept else None, summary_at=None)
            for m in messages]


def carried_index(meta: dict, messages: list[Message]) -> dict:
    """``meta`` with its ``compacted`` entries kept only for summaries among ``messages``,
    without their positions (the new log's are found once it is written: `reindex`)."""
    entries = _entries(meta)
    out = {k: v for k, v in meta.items() if k != INDEX_KEY}
    kept = {m.id for m in messages if is_summary(m)}
    carried = {branch: {"id": head.id, "source": source}
               for branch, (head, source) in entries.items() if head.id in kept}
    if carried:
        out[INDEX_KEY] = carried
    return out


def reindex(sessions: Sessions, sid: str) -> None:
    """After a log is written anew: point its header's ``compacted`` entries at where the
    summaries are stored now (one read of the log, as the write was)."""
    loaded = sessions.load(sid)
    entries = _entries(loaded.meta)
    if not entries:
        return
    at = {m.id: m.pos for m in loaded.messages if is_summary(m)}
    fresh = {branch: {"id": head.id, "at": at[head.id], "source": source}
             for branch, (head, source) in entries.items() if head.id in at}
    if fresh != loaded.meta.get(INDEX_KEY):
        sessions.store.append(sid, [{"t": "meta", INDEX_KEY: fresh}])
