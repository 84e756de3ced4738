"""Fuzzing stored sessions and their summary caches: a log or an ``.idx`` with flipped bytes, cut
short, or with values replaced by hostile ones of other types must never make a reading command
fail with anything but an AishError (one line, an exit code) — listing, info, stats, search,
export, validate, tail. A damaged cache is rebuilt from the log."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aish import config as config_module
from aish.commands.context import Context
from aish.commands.dispatch import run as dispatch
from aish.errors import AishError
from aish.messages import ASSISTANT, USER, Message
from aish.output import Output
from aish.sessions import Sessions
from aish.store.filestore import FileStore
from aish.store.redisstore import RedisStore

EXAMPLES = int(os.environ.get("AISH_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

hostile = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12)
    | st.sampled_from([-1e308, 1e308, float("nan"), float("inf"), -float("inf"), -1, 2**63,
                       10**400, "", "apollo", "active", "ended", "user", "assistant"])
    | st.floats(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=8)
KEYS = ["t", "v", "id", "owner", "created", "updated", "participants", "shared", "origin",
        "state", "context_window", "role", "content", "ai", "time", "usage", "interrupted"]
IDX_PATHS = [("v",), ("size",), ("summary",), ("summary", "meta"), ("summary", "messages"),
             ("summary", "user_messages"), ("summary", "by_ai"), ("summary", "tokens"),
             ("summary", "last_time"), ("summary", "meta", "id"), ("summary", "meta", "owner"),
             ("summary", "meta", "updated"), ("summary", "meta", "created"),
             ("summary", "meta", "participants"), ("summary", "meta", "context_window"),
             ("summary", "meta", "shared"), ("summary", "meta", "state"),
             ("summary", "by_ai", "apollo")]

# One mutation of a file: (kind, position in [0, 1), key or path, hostile value)
log_mutations = st.tuples(
    st.sampled_from(["flip", "truncate", "value", "line", "drop"]),
    st.floats(min_value=0, max_value=0.999), st.sampled_from(KEYS), hostile)
idx_mutations = st.tuples(
    st.sampled_from(["flip", "truncate", "value", "whole"]),
    st.floats(min_value=0, max_value=0.999), st.sampled_from(IDX_PATHS), hostile)


def _conversation(start: float) -> list[Message]:
    out = []
    for i in range(3):
        out.append(Message(USER, f"question {i}", "apollo", start + 10 * i))
        out.append(Message(ASSISTANT, f"answer {i}", "apollo", start + 10 * i + 1,
                           usage={"prompt_tokens": 3, "completion_tokens": 4}))
    return out


def _dump(value) -> bytes:
    return json.dumps(value, allow_nan=True, default=str).encode()


def _byte_damage(data: bytes, kind: str, where: float, mask: int) -> bytes | None:
    """A flipped byte or a cut at ``where`` (0..1), or None for the other kinds of damage."""
    if kind == "flip":
        at = int(where * len(data))
        return data[:at] + bytes([data[at] ^ mask]) + data[at + 1:]
    if kind == "truncate":
        return data[: int(where * len(data))]
    return None


def mutate_log(data: bytes, mutation) -> bytes:
    kind, where, key, value = mutation
    if not data:
        return data
    if (damaged := _byte_damage(data, kind, where, 0xFF)) is not None:
        return damaged
    lines = data.split(b"\n")[:-1]
    if not lines:
        return data
    at = int(where * len(lines))
    if kind == "drop":
        del lines[at]
    elif kind == "line":
        lines[at] = _dump(value)
    else:
        try:
            record = json.loads(lines[at])
        except ValueError:
            return data
        if isinstance(record, dict):
            record[key] = value
            lines[at] = _dump(record)
    return b"".join(line + b"\n" for line in lines)


def mutate_idx(data: bytes, mutation, size: int) -> bytes:
    kind, where, path, value = mutation
    if kind == "whole":
        return _dump(value)
    if not data:
        return data
    if (damaged := _byte_damage(data, kind, where, 0x20)) is not None:
        return damaged
    try:
        doc = json.loads(data)
    except ValueError:
        return data
    if not isinstance(doc, dict):
        return data
    node = doc
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node[path[-1]] = value
    if path != ("size",):
        doc["size"] = size  # keep the cache looking current, so its values are what is read
    return _dump(doc)


def _run_commands(home: str) -> None:
    """The reading commands as the program runs them: only AishError may come out."""
    for argv in (["--list-sessions", "--all"], ["--list-sessions", "--json"],
                 ["--session-info", "s1"], ["--session-info", "s1", "--json"],
                 ["--session-stats"], ["--search-sessions", "question"],
                 ["--validate-session", "s1"], ["--save-session", "s1", "--skip-corrupted"],
                 ["--export-sessions", "--skip-corrupted"]):
        out = Output(stdout=io.StringIO(), stderr=io.StringIO(), environ={})
        ctx = Context(environ={"HOME": home}, out=out)
        with contextlib.suppress(AishError):
            dispatch(ctx, argv)


def _without_crash(*operations) -> None:
    for operation in operations:
        with contextlib.suppress(AishError):
            operation()


def _store_operations(sessions: Sessions, sid: str) -> None:
    store = sessions.store
    _without_crash(store.summaries, lambda: store.summary(sid), lambda: store.load(sid),
                   lambda: store.tail(sid, 1), lambda: store.tail(sid, 3),
                   lambda: sessions.listing(include_all=True))


@FUZZ
@given(st.lists(log_mutations, min_size=1, max_size=3), st.lists(idx_mutations, max_size=2))
def test_damaged_logs_and_caches_never_crash_a_command(log_changes, idx_changes):
    home = tempfile.mkdtemp(prefix="aish-fuzz-")
    try:
        config = config_module.load({"HOME": home})
        store = FileStore(config.session_dir)
        sessions = Sessions(store, config)
        now = time.time()
        for sid in ("s1", "s2"):
            sessions.create("apollo", sid, named=True, messages=_conversation(now - 100))
            store.summary(sid)  # writes the cache
        log, idx = config.session_dir / "s1.jsonl", config.session_dir / ".s1.idx"
        data = log.read_bytes()
        for change in log_changes:
            data = mutate_log(data, change)
        log.write_bytes(data)
        complete = data[: data.rfind(b"\n") + 1]
        # The cache as it would be for this log, then damaged itself.
        store._rebuild_idx("s1")
        cache = idx.read_bytes()
        for change in idx_changes:
            cache = mutate_idx(cache, change, len(complete))
        idx.write_bytes(cache)

        _store_operations(sessions, "s1")
        _run_commands(home)
        # Whatever the cache said, what is read agrees with the log it summarises.
        fresh = Path(home) / "rebuilt"
        fresh.mkdir()
        shutil.copy(log, fresh / "s1.jsonl")
        with contextlib.suppress(AishError):
            assert store.summary("s1").to_json() == FileStore(fresh).summary("s1").to_json()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_fuzz_examples_follow_the_environment():
    assert FUZZ.max_examples == EXAMPLES


REDIS_FIELDS = ["m:id", "m:owner", "m:created", "m:updated", "m:participants", "m:shared",
                "m:state", "m:context_window", "m:origin", "n:messages", "n:user_messages",
                "n:tokens", "ai:apollo", "last_time", "bytes", "gen"]


@settings(max_examples=max(EXAMPLES // 4, 20), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(REDIS_FIELDS), hostile | st.binary(max_size=8),
                       min_size=1, max_size=4),
       st.lists(st.tuples(st.integers(0, 7), hostile | st.binary(max_size=12)), max_size=2))
def test_damaged_redis_hash_and_log_never_crash(redis_url, fields, items):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushall()
    config = config_module.load({"HOME": "/nonexistent"})
    store = RedisStore(redis_url)
    sessions = Sessions(store, config)
    sessions.create("apollo", "s1", named=True, messages=_conversation(time.time() - 100))
    for name, value in fields.items():
        raw = value if isinstance(value, bytes) else json.dumps(value, default=str)
        client.hset("aish:{s1}:meta", name, raw if name.startswith("m:") else raw[:40])
    for index, value in items:
        raw = value if isinstance(value, bytes) else _dump(value)
        with contextlib.suppress(redis.ResponseError):  # an index past the end
            client.lset("aish:{s1}:log", index, raw)
    _store_operations(sessions, "s1")
    from aish.management.integrity import inspect
    from aish.management.stats import format_stats, session_stats
    from aish.reports import format_info, session_info

    _without_crash(lambda: format_info(session_info(sessions, "s1"), time.time()),
                   lambda: format_stats(session_stats(sessions)),
                   lambda: inspect(sessions, "s1"))
    client.close()
