"""A hand-edited or damaged session header never breaks listing, info or continuing."""

import json

import pytest
from conftest import run

from aish.messages import USER, Message
from aish.store.filestore import FileStore

BAD_HEADERS = [
    {"created": "x"},
    {"created": 1e300},
    {"participants": 5},
    {"origin": "str"},
    {"context_window": "ten"},
    {"owner": 7},
]


@pytest.mark.parametrize("bad", BAD_HEADERS, ids=lambda b: next(iter(b)))
def test_damaged_header_values_are_survivable(home, sessions_dir, bad):
    store = FileStore(sessions_dir)
    store.create({"id": "sess_bad001", "owner": "apollo", "created": 1.7e9, "updated": 1.7e9,
                  "context_window": 10, "shared": False, "state": "active",
                  "participants": ["apollo"]},
                 [Message(USER, "hello", "apollo", 1.7e9)])
    with open(sessions_dir / "sess_bad001.jsonl", "a") as f:
        f.write(json.dumps({"t": "meta", **bad}) + "\n")
    for argv in (["--list-sessions", "--all"], ["--list-sessions", "--all", "--json"],
                 ["--session-info", "sess_bad001"], ["--session-stats"]):
        result = run(home, "aish", *argv)
        assert result.returncode == 0, (argv, result.stderr)
        assert b"Traceback" not in result.stderr
    assert b"sess_bad001" in run(home, "aish", "--list-sessions", "--all").stdout
    validate = run(home, "aish", "--validate-session", "sess_bad001")
    assert validate.returncode == 1, validate.stdout
    repaired = run(home, "aish", "--repair-session", "sess_bad001")
    assert repaired.returncode == 0, repaired.stderr
    assert run(home, "aish", "--validate-session", "sess_bad001").returncode == 0
