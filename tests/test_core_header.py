"""The typed session header: one tolerant decoder for whatever a stored log's header holds.

AISH_FUZZ_EXAMPLES sets the number of examples of the property test (a nightly run asks for
10,000)."""

import json
import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aish.header import Header, State
from aish.store.base import Summary

EXAMPLES = int(os.environ.get("AISH_FUZZ_EXAMPLES") or 300)

SOUND = {"id": "sess_abc123", "owner": "apollo", "created": 1.7e9, "updated": 1.7e9 + 60,
         "context_window": 10, "shared": True, "state": "ended",
         "participants": ["apollo", "athena"], "origin": {"template": "t1"},
         "persona": "You are terse."}


def test_a_sound_header_decodes_to_its_values_without_problems():
    header, problems = Header.decode(SOUND, sid="sess_abc123", owner_required=True)
    assert problems == []
    assert header == Header(id="sess_abc123", owner="apollo", created=1.7e9,
                            updated=1.7e9 + 60, context_window=10, shared=True,
                            state=State.ENDED, participants=("apollo", "athena"),
                            origin={"template": "t1"}, persona="You are terse.")
    assert header.to_meta() == SOUND


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("owner", 7, "owner is not a specialist name"),
    ("owner", "../etc", "owner is not a specialist name"),
    ("created", "x", "created is not a time"),
    ("created", math.nan, "created is not a time"),
    ("created", math.inf, "created is not a time"),
    ("created", 10**400, "created is not a time"),
    ("updated", -1, "updated is not a time"),
    ("updated", True, "updated is not a time"),
    ("context_window", "ten", "context_window is not a whole number >= 0"),
    ("context_window", 2**64, "context_window is not a whole number >= 0"),
    ("context_window", -3, "context_window is not a whole number >= 0"),
    ("context_window", 1.5, "context_window is not a whole number >= 0"),
    ("context_window", False, "context_window is not a whole number >= 0"),
    ("participants", "apollo", "participants is not a list of names"),
    ("participants", ["apollo", 5], "participants is not a list of names"),
    ("shared", "yes", "shared is not true or false"),
    ("shared", 1, "shared is not true or false"),
    ("origin", "str", "origin is not a mapping"),
    ("origin", ["merged"], "origin is not a mapping"),
    ("state", "sleeping", "unknown state 'sleeping'"),
    ("state", ["ended"], "unknown state \"['ended']\""),
    ("persona", {"text": "x"}, "persona is not text"),
])
def test_each_hostile_value_is_reported_and_reads_as_unusable(key, value, problem):
    header, problems = Header.decode({**SOUND, key: value})
    assert problems == [problem]
    # The bad value is never handed on: the field reads as missing (or its default).
    meta = header.to_meta()
    if key == "participants":
        assert all(isinstance(p, str) for p in meta["participants"])
    elif key == "state":
        assert meta["state"] == "active"
    else:
        assert key not in meta
    json.dumps(meta, allow_nan=False)  # whatever was read, the header can be stored


def test_unknown_keys_are_kept_verbatim_and_record_keys_are_not():
    odd = {"nested": {"a": [1, None]}, "flag": None, "big": 10**400}
    header, problems = Header.decode({**SOUND, **odd, "t": "meta", "v": 1, "time": 1.7e9})
    assert problems == []
    assert header.extra == odd
    assert header.to_meta() == {**SOUND, **odd}


def test_missing_values_and_the_checks_that_need_context():
    header, problems = Header.decode({"id": "s1"})
    assert problems == []
    assert (header.owner, header.created, header.context_window, header.shared) == (
        None, None, None, None)
    assert header.state is State.ACTIVE and header.participants == ()
    assert Header.decode({"id": "s1"}, owner_required=True)[1] == ["no owner"]
    assert Header.decode({"id": "other"}, sid="s1")[1] == ["the header names session 'other'"]
    assert Header.decode(None)[1] == ["the header is not a mapping"]


def test_summary_reads_the_header_through_the_decoder():
    summary = Summary({**SOUND, "owner": 7, "participants": ["athena", 9, "athena"],
                       "context_window": "ten", "created": math.nan, "updated": 10**400})
    assert summary.owner == "?"
    assert summary.participants == ["athena"]
    assert summary.context_window(25) == 25
    assert summary.created == 0.0 and summary.updated == 0.0
    assert Summary({"id": "s1", "owner": "hermes"}).participants == ["hermes"]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)
KNOWN = ["id", "owner", "created", "updated", "context_window", "shared", "state",
         "participants", "origin", "persona", "title", "title_by", "oneshot", "t", "v", "time"]
KEYS = st.sampled_from(KNOWN)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.dictionaries(KEYS | st.text(max_size=8), JSON, max_size=12))
def test_any_header_decodes_without_raising_and_its_sound_part_is_stable(meta):
    header, problems = Header.decode(meta)
    assert all(isinstance(p, str) and p for p in problems)
    # What to_meta writes is itself sound, decodes to the same header, and keeps unknown keys.
    again, later = Header.decode(header.to_meta())
    assert later == [] and again == header
    unknown = {k: v for k, v in meta.items() if k not in KNOWN}
    assert header.extra == unknown
