"""simonw/llm's ``logs.db`` (SQLite).

llm 0.32 and later keep a thread per conversation (``threads``: its name and the hash of its
last message), messages as a content-addressed tree (``messages``: hash, parent hash, role;
``parts``: their text) and one row per model call (``turns``: model, tokens, when, how long).
Older versions kept one ``responses`` row per exchange (prompt, response, model,
``datetime_utc``, ``conversation_id``), with ``conversations`` naming them; rows of those that
no turn took over are read too, so a database llm upgraded gives each conversation once.

A user's words are timed when the call started, a reply when it ended (start plus
``duration_ms``); the model is the one llm names for the call. The database is opened
read-only, only real tables are read (a view could compute for ever), and a progress handler
stops any query that runs too long, so a hostile file costs bounded work.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from aish.importers.model import (
    BadSource,
    Conversation,
    Turn,
    straight,
    text_or_none,
    time_or_none,
    tokens,
)
from aish.importers.reading import Budget, read_bytes

MAX_STEPS = 200_000_000  # SQLite virtual-machine steps for the whole read
_STEP = 10_000


def read(path: Path, budget: Budget, skipped: list[str] | None = None) -> list[Conversation]:
    """Every conversation in the database; it is read as a whole, so ``skipped`` stays empty
    (a damaged conversation is left out later, when its session is checked)."""
    _, mtime = read_bytes(path, budget)  # bounded, a regular file, and counted
    wal = Path(f"{path}-wal")  # what SQLite has not yet moved into the file is read too
    if wal.exists():
        read_bytes(wal, budget)
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except (sqlite3.Error, ValueError) as exc:
        raise BadSource(f"{path}: cannot open as SQLite ({exc})") from None
    steps = [0]

    def progress() -> int:
        steps[0] += _STEP
        return 1 if steps[0] > MAX_STEPS else 0

    db.set_progress_handler(progress, _STEP)
    try:
        tables = {row[0] for row in db.execute(
            "select name from sqlite_master where type = 'table'")}
        if not ({"threads", "messages", "parts", "turns"} <= tables
                or "responses" in tables):
            raise BadSource(f"{path}: not an llm logs database (no threads or responses)")
        legacy = _legacy(db, tables, mtime) if "responses" in tables else []
        found = _threads(db, mtime, {c.source_id: c for c in legacy}) \
            if "threads" in tables else []
        have = {c.source_id for c in found}
        return found + [c for c in legacy if c.source_id not in have]
    except sqlite3.OperationalError as exc:
        if steps[0] > MAX_STEPS:
            raise BadSource(f"{path}: reading it takes too long") from None
        raise BadSource(f"{path}: not an llm logs database ({exc})") from None
    except sqlite3.Error as exc:
        raise BadSource(f"{path}: not a readable SQLite database ({exc})") from None
    finally:
        db.close()


def _when(value: object) -> float | None:
    """Seconds since the epoch of llm's ``datetime_utc`` (naive values are UTC)."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return time_or_none(moment.timestamp())
    except (OverflowError, ValueError, OSError):
        return None


def _seconds(start: float | None, duration_ms: object) -> float | None:
    if start is None:
        return None
    if isinstance(duration_ms, int) and not isinstance(duration_ms, bool) \
            and 0 <= duration_ms < 10**9:
        return time_or_none(start + duration_ms / 1000)
    return start


def _threads(db: sqlite3.Connection, mtime: float,
             legacy: dict[str, Conversation]) -> list[Conversation]:
    parents: dict[str, tuple[object, object]] = {}
    for hash_, parent, role in db.execute("select hash, parent_hash, role from messages"):
        if isinstance(hash_, str):
            parents[hash_] = (parent, role)
    texts: dict[str, list[str]] = {}
    for message, text in db.execute(
            "select message_hash, text from parts where type = 'text' order by message_hash, "
            "position"):
        if isinstance(message, str) and isinstance(text, str):
            texts.setdefault(message, []).append(text)
    calls: dict[object, list[tuple]] = {}
    for row in db.execute(
            "select thread_id, parent_message_hash, tip_message_hash, model, resolved_model, "
            "input_tokens, output_tokens, duration_ms, datetime_utc from turns "
            "order by datetime_utc, id"):
        calls.setdefault(row[0], []).append(row[1:])
    out = []
    for thread_id, name, tip, started in db.execute(
            "select id, name, tip_message_hash, datetime_utc from threads "
            "order by datetime_utc, id"):
        if not isinstance(thread_id, str):
            continue
        path = _path(parents, tip)
        begun = _when(started)
        when, model, usage = _timing(parents, path, calls.get(thread_id, []))
        turns = []
        fallback = begun if begun is not None else mtime
        # Exchanges an older llm logged, continued after the upgrade: no turn describes them,
        # their `responses` rows do (the same words, in the same order).
        older = iter(legacy[thread_id].turns if thread_id in legacy else [])
        pending = next(older, None)
        for key in path:
            role = parents[key][1]
            text = "".join(texts.get(key, []))
            if role not in ("user", "assistant") or not text.strip():
                continue
            turn = Turn(key, str(role), text, when.get(key, fallback),
                        model.get(key) if role == "assistant" else None,
                        usage=usage.get(key) if role == "assistant" else None)
            if key not in when and pending is not None and (pending.role, pending.text) == (
                    turn.role, turn.text):
                turn = Turn(key, turn.role, text, pending.time, pending.model,
                            usage=pending.usage)
                pending = next(older, None)
            turns.append(turn)
        title = text_or_none(legacy[thread_id].title if thread_id in legacy else None, 1000)
        out.append(Conversation(thread_id, title or text_or_none(name, 1000), straight(turns),
                                created=min(filter(None, (begun, turns[0].time if turns
                                                          else None)), default=None)))
    return out


def _path(parents: dict[str, tuple[object, object]], tip: object) -> list[str]:
    """The messages from the root to ``tip``; a loop ends the walk."""
    path: list[str] = []
    seen: set[str] = set()
    node = tip
    while isinstance(node, str) and node in parents and node not in seen:
        seen.add(node)
        path.append(node)
        node = parents[node][0]
    path.reverse()
    return path


def _timing(parents, path: list[str], calls: list[tuple]):
    """When each message of ``path`` was said, which model wrote each reply, and its tokens.

    A call's replies are the messages after its prompt up to its tip; its prompt, and what
    was sent with it since the last reply before it, were sent when it started."""
    on_path = set(path)
    when: dict[str, float] = {}
    model: dict[str, str] = {}
    usage: dict[str, tuple[int, int]] = {}
    for prompt, tip, name, resolved, used_in, used_out, duration, started in calls:
        if tip not in on_path:
            continue
        start = _when(started)
        end = _seconds(start, duration)
        chosen = text_or_none(resolved) or text_or_none(name)
        node, seen, first = tip, set(), True
        while isinstance(node, str) and node in on_path and node != prompt and node not in seen:
            seen.add(node)
            if end is not None:
                when[node] = end
            if chosen:
                model[node] = chosen
            if first:
                counted = tokens(used_in, used_out)
                if counted:
                    usage[node] = counted
                first = False
            node = parents[node][0]
        while isinstance(node, str) and node in on_path and node not in when \
                and node not in seen and start is not None and parents[node][1] != "assistant":
            seen.add(node)
            when[node] = start
            node = parents[node][0]
    return when, model, usage


def _legacy(db: sqlite3.Connection, tables: set[str], mtime: float) -> list[Conversation]:
    names: dict[object, object] = {}
    if "conversations" in tables:
        names = dict(db.execute("select id, name from conversations").fetchall())
    # A row a turn took over (written by both, or copied on upgrade) is read from the turn.
    taken = "where id not in (select id from turns)" if "turns" in tables else ""
    grouped: dict[str, list[Turn]] = {}
    firsts: dict[str, float] = {}
    for rid, cid, prompt, response, model, resolved, used_in, used_out, duration, started in \
            db.execute("select id, conversation_id, prompt, response, model, resolved_model, "
                       f"input_tokens, output_tokens, duration_ms, datetime_utc from responses "
                       f"{taken} order by datetime_utc, id"):
        if not isinstance(rid, str):
            continue
        conversation = cid if isinstance(cid, str) and cid else rid
        start = _when(started)
        start = mtime if start is None else start
        end = _seconds(start, duration) or start
        firsts.setdefault(conversation, start)
        chosen = text_or_none(resolved) or text_or_none(model)
        turns = grouped.setdefault(conversation, [])
        if isinstance(prompt, str) and prompt.strip():
            turns.append(Turn(f"{rid}:prompt", "user", prompt, start))
        if isinstance(response, str) and response.strip():
            turns.append(Turn(f"{rid}:response", "assistant", response, end, chosen,
                              usage=tokens(used_in, used_out)))
    return [Conversation(cid, text_or_none(names.get(cid), 1000), straight(turns),
                         created=firsts[cid]) for cid, turns in grouped.items()]
