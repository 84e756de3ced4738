"""The plain records that replaced dataclasses on the management paths keep a dataclass's
behaviour: equality by fields, hashing only when frozen, no assignment to a frozen one, a
readable repr, and stored messages that read back equal."""

import json

import pytest

from aish.commands.registry import Arg, Command
from aish.messages import Chunk, Message, Timing, Usage
from aish.store.base import Loaded, Problem, Summary
from aish.store.refs import Head, RefState


def test_frozen_records_compare_and_hash_by_fields_and_refuse_assignment():
    assert Usage(3, 4) == Usage(prompt_tokens=3, completion_tokens=4)
    assert Usage(3, 4) != Usage(4, 3)
    assert len({Usage(3, 4), Usage(3, 4), Problem(1, "bad json")}) == 2
    assert Arg("--json", flag=True) == Arg("--json", flag=True)
    handler = print
    assert Command("x", "aish", "h", handler) == Command("x", "aish", "h", handler, ())
    for record in (Usage(1, 2), Chunk("a"), Timing(0.1, 0.2), Problem(0, "k")):
        with pytest.raises(AttributeError):
            record.__setattr__(record._fields[0], None)
    assert repr(Usage(1, 2)) == "Usage(prompt_tokens=1, completion_tokens=2)"
    assert Usage(1, 2) != (1, 2)


def test_mutable_records_are_unhashable_and_get_fresh_defaults():
    first, second = Summary(), Summary()
    first.by_ai["apollo"] = 1
    assert second.by_ai == {} and first != second
    with pytest.raises(TypeError):
        hash(first)
    assert RefState() == RefState({}, Head(""), {})
    assert Loaded({}, [], []).raw_bad is not Loaded({}, [], []).raw_bad


def test_a_message_with_usage_and_timing_is_stored_and_read_back_equal():
    original = Message("assistant", "hi", "apollo", 5.0, id="m1", usage=Usage(3, 4),
                       timing=Timing(0.5, 1.5, ((0.5, 1), (1.5, 2))))
    record = json.loads(json.dumps(original.to_record()))
    assert record["usage"] == {"prompt_tokens": 3, "completion_tokens": 4}
    read = Message.from_record(record)
    assert read == original and read.usage == Usage(3, 4) and read.timing == original.timing
