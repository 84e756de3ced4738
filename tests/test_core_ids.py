"""Session ids: generated ids look right, and no id that could become a path gets anywhere.

Every bad id must be a usage error (exit 2) before anything is written, wherever it enters:
`--session`, `--session-id`, `--end-session`, the store itself.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aish.errors import USAGE, UsageError
from aish.ids import ID_PATTERN, check_id, new_id
from aish.store.filestore import FileStore

BAD_IDS = {
    "slash": "a/b",
    "leading slash": "/etc/passwd",
    "dotdot": "..",
    "dotdot path": "../x",
    "dotdot inside": "a..b",
    "backslash": "a\\b",
    "over-long": "x" * 65,
    "control char": "a\x01b",
    "escape": "a\x1b[2Jb",
    "newline": "a\nb",
    "nul": "a\x00b",
    "empty": "",
    "leading dot": ".hidden",
    "leading dash": "-rf",
    "space": "a b",
    "unicode": "séance",
}

GOOD_IDS = ["sess_k3f9x2", "feature-development", "learn-rust", "a", "A.b_c-9", "x" * 64,
            "debug-memory-leak", "project-refactor"]


def test_generated_ids_look_like_the_guide():
    ids = {new_id() for _ in range(500)}
    assert len(ids) == 500
    for sid in ids:
        assert re.fullmatch(r"sess_[a-z0-9]{6}", sid)
        assert check_id(sid) == sid


@pytest.mark.parametrize("sid", GOOD_IDS)
def test_good_ids_pass(sid):
    assert check_id(sid) == sid


@pytest.mark.parametrize("name", BAD_IDS)
def test_bad_ids_are_usage_errors_shown_safely(name):
    value = BAD_IDS[name]
    with pytest.raises(UsageError) as info:
        check_id(value)
    assert info.value.exit_code == USAGE
    text = str(info.value)
    assert "invalid session id" in text
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", text.replace("\n", "")), text
    assert "\n" not in text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_id_that_passes_is_a_plain_file_name(value):
    try:
        check_id(value)
    except UsageError:
        return
    assert ID_PATTERN.fullmatch(value)
    assert "/" not in value and "\\" not in value and ".." not in value
    assert not value.startswith((".", "-"))
    assert 1 <= len(value) <= 64
    assert value.isascii() and value.isprintable()


@pytest.mark.parametrize("name", ["dotdot path", "slash", "empty", "over-long", "nul"])
def test_store_refuses_bad_ids_and_writes_nothing(tmp_path, name):
    root = tmp_path / "sessions"
    store = FileStore(root)
    value = BAD_IDS[name]
    with pytest.raises(UsageError):
        store.create({"id": value, "owner": "apollo"})
    for call in (lambda: store.append(value, [{"t": "meta", "x": 1}]),
                 lambda: store.load(value), lambda: store.summary(value),
                 lambda: store.replace(value, {}, []), lambda: store.delete(value),
                 lambda: store.backup(value, "test"), lambda: store.tail(value, 1)):
        with pytest.raises(UsageError):
            call()
    assert not any(tmp_path.rglob("*")) or all(p.is_dir() for p in tmp_path.rglob("*"))
    assert not (tmp_path / "x.jsonl").exists()


def test_store_ignores_stray_files_that_are_not_sessions(tmp_path):
    store = FileStore(tmp_path)
    store.create({"id": "real", "owner": "apollo"})
    (tmp_path / "my notes.jsonl").write_text("{}\n")
    (tmp_path / "-x.jsonl").write_text("{}\n")
    assert store.ids() == ["real"]
    assert [s.id for s in store.summaries()] == ["real"]


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", ["dotdot path", "slash", "leading slash", "over-long",
                                  "control char", "escape", "empty", "newline"])
def test_cli_refuses_bad_ids_with_exit_2_and_writes_nothing(aish, home, name):
    value = BAD_IDS[name]
    root = Path(home["HOME"]).parent
    before = _files(root)
    attempts = [
        (("apollo", "--session", value), "hello"),
        (("apollo", "--session-id", value), "hello"),
        (("apollo", f"--session-id={value}"), "hello"),
        (("apollo", "--session", value, "--end"), None),
        (("aish", "apollo", "--session-id", value, "a message"), None),
        (("aish", "--end-session", value), None),
        (("aish", "--session", "apollo", "--session-id", value), None),
    ]
    for argv, stdin in attempts:
        result = aish(*argv, input=stdin)
        err = result.stderr.decode()
        assert result.returncode == USAGE, (argv, result.returncode, err)
        assert "invalid session id" in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err
        assert result.stdout == b""
    assert _files(root) == before, "a bad id wrote something"
    assert not os.path.exists(Path(home["HOME"]) / ".aish" / "sessions")


def test_a_message_at_time_zero_keeps_its_time():
    from aish.messages import USER, Message

    record = Message(USER, "hello", "apollo", 0.0).to_record()
    assert record["time"] == 0.0
    assert Message.from_record(record).time == 0.0
