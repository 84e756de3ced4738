"""Fuzzing every loader with hypothesis: stored lines, folded records, the Redis summary hash and
list elements, sealed content, encryption settings, whole logs on disk and in Redis, and stdin.
Whatever they are fed, they return or raise the one error they document — never crash."""

from __future__ import annotations

import base64
import io
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from aish.commands.context import Context
from aish.errors import AishError, LimitError, StorageError
from aish.management.sync import merge_messages
from aish.messages import Message
from aish.output import Output
from aish.store.base import PlainCodec, Summary, fold_records, parse_line
from aish.store.crypto import EncryptedCodec, Params
from aish.store.filestore import FileStore
from aish.store.redisstore import RedisStore, decode_records, summary_from_hash

CODEC = EncryptedCodec(bytes(32))
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
           | st.integers(min_value=10**300, max_value=10**310))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)
FIELDS = ["role", "content", "ai", "time", "id", "usage", "interrupted", "enc", "state",
          "created", "updated", "participants", "shared", "context_window", "owner", "v"]
records = st.builds(
    lambda t, extra: {"t": t, **extra},
    st.sampled_from(["meta", "msg"]),
    st.dictionaries(st.sampled_from(FIELDS),
                    json_values | st.sampled_from(["user", "assistant", "apollo"])
                    | st.floats(min_value=0, max_value=2e9)
                    | st.fixed_dictionaries({}, optional={"prompt_tokens": json_values,
                                                          "completion_tokens": json_values}),
                    max_size=8))
good_messages = st.builds(
    Message, role=st.sampled_from(["user", "assistant"]),
    content=st.text(alphabet=st.characters(codec=None, categories=None), max_size=50),
    ai=st.sampled_from(["apollo", "athena"]), time=st.floats(min_value=0, max_value=2e9),
    id=st.text(alphabet="abcdef0123456789", min_size=1, max_size=6))


def lines_of(items: list) -> bytes:
    out = []
    for item in items:
        out.append(item if isinstance(item, bytes) else json.dumps(item).encode())
    return b"\n".join(out)


log_lines = st.lists(records | st.binary(max_size=60) | st.sampled_from(
    [b"[" * 5000, b"{" * 5000, b'{"t":"meta","id":"s"}', b"\xff\xfe", b""]), max_size=12)


@FUZZ
@given(st.text(max_size=300) | st.sampled_from(["[" * 100_000, '{"a":' * 50_000, "NaN"]))
def test_parse_line_returns_a_record_or_raises_value_error(text):
    try:
        record = parse_line(text)
    except ValueError:
        return
    assert isinstance(record, dict) and record["t"] in ("meta", "msg")


@FUZZ
@given(st.lists(records, max_size=12))
def test_fold_records_collects_problems_instead_of_raising(items):
    for record in items:
        json.dumps(record)  # what a store could hold
    loaded = fold_records(list(enumerate(items, 1)), [])
    assert all(isinstance(m, Message) for m in loaded.messages)
    summary = Summary()
    for record in items:
        summary.fold(record)
    assert isinstance(summary.updated, float)
    json.dumps(summary.to_json())


@FUZZ
@given(st.dictionaries(
    st.sampled_from([b"m:id", b"m:owner", b"m:created", b"n:messages", b"n:user_messages",
                     b"n:tokens", b"ai:apollo", b"last_time", b"bytes", b"gen", b"m:state"])
    | st.binary(max_size=12),
    st.binary(max_size=40) | st.sampled_from([b"1e999", b"nan", b"-inf", b"[" * 3000,
                                              b"99999999999999999999999", b'"x"']),
    max_size=10))
def test_summary_from_any_hash(fields):
    summary = summary_from_hash(fields, "sid")
    assert isinstance(summary.id, str) and summary.id
    assert isinstance(summary.updated, float)
    assert isinstance(summary.messages, int)


@FUZZ
@given(st.lists(st.binary(max_size=80) | records.map(lambda r: json.dumps(r).encode()),
                max_size=12))
def test_redis_elements_decode_or_are_reported(items):
    for codec in (CODEC, PlainCodec()):
        try:
            parsed, problems, bad = decode_records(items, codec)
        except StorageError:
            assert isinstance(codec, PlainCodec)  # sealed content without the key: clear error
            continue
        assert len(parsed) + len(problems) <= len(items)
        fold_records(parsed, problems)


@FUZZ
@given(json_values | st.text(max_size=100)
       | st.binary(min_size=0, max_size=80).map(
           lambda b: "v1." + base64.urlsafe_b64encode(b).decode()),
       st.dictionaries(st.sampled_from(["id", "role", "ai", "time"]), json_values, max_size=4))
def test_sealed_content_garbage_raises_value_error(enc, rest):
    try:
        out = CODEC.open({"t": "msg", **rest, "enc": enc})
    except ValueError:
        return
    pytest.fail(f"garbage opened as {out!r}")


@FUZZ
@given(good_messages)
def test_seal_and_open_round_trip_any_text(message):
    record = message.to_record()
    sealed = CODEC.seal(record)
    assert "content" not in sealed
    assert CODEC.open(json.loads(json.dumps(sealed))) == record
    moved = {**sealed, "id": sealed["id"] + "x"}
    with pytest.raises(ValueError):
        CODEC.open(moved)  # content bound to its message


@FUZZ
@given(st.binary(max_size=200) | st.builds(
    lambda d: json.dumps(d).encode(),
    st.dictionaries(st.sampled_from(["v", "cipher", "kdf", "n", "r", "p", "salt", "check"]),
                    json_values, max_size=8)))
def test_encryption_settings_parse_or_are_damaged(raw):
    try:
        params = Params.from_json(raw, "fuzz")
    except StorageError:
        return
    assert 2 <= params.n <= 2**20 and len(params.salt) >= 16


@FUZZ
@given(log_lines, st.booleans(), st.integers(min_value=1, max_value=4))
def test_file_store_loads_any_log(items, torn, pairs):
    data = lines_of(items) + (b"" if torn else b"\n")
    with tempfile.TemporaryDirectory() as root:
        Path(root, "s.jsonl").write_bytes(data)
        for codec in (None, CODEC):
            store = FileStore(Path(root), codec=codec)
            try:
                store.load("s")
                store.tail("s", pairs)
            except StorageError:
                assert codec is None
            store.summary("s")
            store.raw_lines("s")
            store.summaries()
            os.unlink(Path(root, ".s.idx"))


@given(log_lines, st.dictionaries(st.binary(min_size=1, max_size=12),
                                  st.binary(max_size=30), max_size=6),
       st.integers(min_value=1, max_value=4))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large], deadline=None, max_examples=100)
def test_redis_store_loads_any_stored_data(redis_server, items, fields, pairs):
    client = redis_server.client()
    client.flushall()
    elements = [i if isinstance(i, bytes) else json.dumps(i).encode() for i in items]
    if elements:
        client.rpush("aish:{s}:log", *elements)
    client.hset("aish:{s}:meta", mapping={b"m:id": b'"s"', **fields})
    store = RedisStore(redis_server.url, codec=CODEC)
    store.load("s")
    store.tail("s", pairs)
    store.summary("s")
    store.summaries()
    store.raw_lines("s")
    store.append("s", [{"t": "meta", "state": "ended"}])
    client.close()


@FUZZ
@given(st.binary(max_size=3000))
def test_stdin_is_text_whatever_the_bytes(data):
    with tempfile.TemporaryDirectory() as home:
        ctx = Context(environ={"HOME": home}, stdin=io.TextIOWrapper(io.BytesIO(data)),
                      out=Output(stdout=io.StringIO(), stderr=io.StringIO(), environ={}))
        try:
            text = ctx.read_stdin()
        except LimitError:
            assert len(data) > ctx.config.max_stdin_bytes
            return
        assert isinstance(text, str)
        assert text == data.decode("utf-8", "replace")


@FUZZ
@given(st.lists(good_messages, max_size=8), st.lists(good_messages, max_size=8))
def test_merge_never_duplicates(first, second):
    assume(len({m.id for m in first}) == len(first) and len({m.id for m in second}) == len(second))
    merged = merge_messages(first, second)
    ids = [m.id for m in merged]
    assert len(ids) == len(set(ids))
    assert set(ids) == {m.id for m in first} | {m.id for m in second}
    assert merge_messages(merged, merged) == merged


def test_errors_are_aish_errors():
    assert issubclass(StorageError, AishError) and issubclass(LimitError, AishError)
