"""Restore treats its input as hostile: whatever it is given, it raises nothing but AishError,
writes nothing outside the session directory and never changes an existing session."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from manage_support import log_path, make_session, ok, sessions_for, stderr

from aish.errors import AishError
from aish.ids import ID_PATTERN
from aish.management.integrity import inspect
from aish.management.restore import restore

# -- property-based, in process ----------------------------------------------------------------

HOSTILE_IDS = st.sampled_from([
    "../escape", "../../etc/passwd", "/tmp/abs", "a/b", "..", ".", "", " ", "victim",
    "victim-restored", "a" * 64, "a" * 65, "x\x00y", "new\nline", "\u202ename", "-dash",
    ".hidden", "ok.id", "sess_abc123", "apollo-ai",
]) | st.text(max_size=70)

SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
           | st.sampled_from([10**400, -1, 2**63, 1e308, "apollo", "user", "assistant", "msg"]))
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                           max_leaves=20)


def _field(good):
    return st.one_of(st.just(good), SCALARS)


MESSAGES = st.fixed_dictionaries(
    {"role": _field("user") | st.just("assistant"),
     "content": _field("hello") | st.text(max_size=50),
     "ai": _field("apollo") | HOSTILE_IDS,
     "time": _field(1_700_000_000.0) | st.floats(),
     },
    optional={"t": _field("msg"), "id": _field("m1") | HOSTILE_IDS,
              "usage": JSON_VALUES, "interrupted": SCALARS, "extra": JSON_VALUES},
)
METAS = st.fixed_dictionaries(
    {"id": HOSTILE_IDS},
    optional={"owner": _field("apollo") | HOSTILE_IDS, "participants": JSON_VALUES,
              "created": SCALARS, "updated": SCALARS, "context_window": SCALARS,
              "shared": SCALARS, "state": _field("ended"), "persona": SCALARS,
              "origin": JSON_VALUES, "api_key": SCALARS, "t": SCALARS, "v": SCALARS},
)
SESSION_DOCS = st.fixed_dictionaries({
    "format": _field("aish-session"), "version": _field(1),
    "session": METAS | JSON_VALUES, "messages": st.lists(MESSAGES | JSON_VALUES, max_size=5),
})
ALL_DOCS = st.fixed_dictionaries({
    "format": _field("aish-sessions"), "version": _field(1),
    "sessions": st.lists(SESSION_DOCS | JSON_VALUES, max_size=3),
})


def _jsonl(records: list, torn: bool) -> str:
    text = "".join(json.dumps(r) + "\n" for r in records)
    return text[:-3] if torn and text else text


LOGS = st.builds(
    _jsonl,
    st.lists(st.one_of(METAS.map(lambda m: {**m, "t": "meta"}),
                       MESSAGES.map(lambda m: {**m, "t": "msg"}), JSON_VALUES), max_size=6),
    st.booleans())

INPUTS = st.one_of(
    st.binary(max_size=300),
    JSON_VALUES.map(json.dumps),
    SESSION_DOCS.map(json.dumps),
    ALL_DOCS.map(json.dumps),
    LOGS,
    st.integers(1, 50_000).map(lambda n: '{"format": "aish-session", "session": ' + "[" * n),
)


class Sandbox:
    """A HOME with one existing session and a file beside the session directory."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="aish-hostile-"))
        self.home = {"HOME": str(self.root / "home"), "AISH_MAX_SESSIONS": "100000"}
        (self.root / "home" / ".aish").mkdir(parents=True)
        (self.root / "outside.txt").write_text("do not touch")
        make_session(self.home, "victim", pairs=2)
        make_session(self.home, "sess_abc123", pairs=1)
        self.sessions_dir = self.root / "home" / ".aish" / "sessions"
        self.protected = {p: p.read_bytes() for p in self.sessions_dir.glob("*.jsonl")}

    def snapshot_outside(self) -> set[Path]:
        return {p for p in self.root.rglob("*")
                if self.sessions_dir not in p.parents and p != self.sessions_dir}

    def reset(self) -> None:
        for path in self.sessions_dir.glob("*.jsonl"):
            if path not in self.protected:
                path.unlink()

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def sandbox():
    box = Sandbox()
    yield box
    box.close()


def _check_restore(box: Sandbox, data: bytes, **options) -> None:
    outside = box.snapshot_outside()
    sessions = sessions_for(box.home)
    try:
        results = restore(sessions, data, **options)
    except AishError:
        results = []
    assert box.snapshot_outside() == outside  # nothing written beside the session directory
    for path, content in box.protected.items():
        assert path.read_bytes() == content  # existing sessions never change
    for path in box.sessions_dir.glob("*.jsonl"):
        assert ID_PATTERN.fullmatch(path.name[:-6])
    for result in results:
        assert result.id not in ("victim", "sess_abc123")
        found = inspect(sessions, result.id)
        assert found.problems == []  # what restore writes always validates
        assert len(found.messages) == result.messages
    box.reset()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=INPUTS, skip=st.booleans())
@example(data=b'{"format":"aish-session","version":1,"session":{"id":"../x"},"messages":[]}',
         skip=False)
@example(data=b'{"format":"aish-session","version":1,"session":{"id":"victim"},"messages":[]}',
         skip=False)
@example(data=b'{"format":"aish-session","version":1,"session":{"id":"ok"},"messages":'
              b'[{"role":"user","content":"\\ud800","ai":"apollo","time":1}]}', skip=True)
@example(data=b'{"format":"aish-session","version":1,"session":{"id":"ok"},"messages":'
              b'[{"role":"user","content":"x","ai":"apollo","time":NaN}]}', skip=False)
@example(data=b'{"format":"aish-session","version":1,"session":{"id":"ok","created":1e999},'
              b'"messages":[{"role":"user","content":"x","ai":"apollo","time":1e999,'
              b'"usage":{"prompt_tokens":1e999}}]}', skip=True)
@example(data=b"[" * 100_000, skip=False)
@example(data=f'{{"id": "victim", "created": {10**400}, "updated": {-(10**400)}, '
              f'"context_window": {10**400}, "t": "meta"}}\n', skip=False)
@example(data=b'{"t":"meta","id":"victim"}\n{"t":"msg","role":"user","content":"x",'
              b'"ai":"../../x","time":1}\n', skip=True)
def test_restore_of_anything_is_safe(sandbox, data, skip):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    _check_restore(sandbox, data, skip_corrupted=skip)


@settings(max_examples=100, deadline=None)
@given(data=SESSION_DOCS.map(json.dumps), force=st.booleans())
def test_restore_under_a_hostile_target_is_safe(sandbox, data, force):
    for target in ("../escape", "victim-copy"):
        _check_restore(sandbox, data.encode(), target=target, force=force)


def test_valid_documents_always_restore(sandbox):
    """The property above must not pass merely because everything is refused."""
    doc = {"format": "aish-session", "version": 1,
           "session": {"id": "victim", "owner": "apollo-ai", "context_window": 4,
                       "api_key": "sk-secret", "title": "kept"},
           "messages": [{"role": "user", "content": "hi", "ai": "apollo", "time": 1e9, "id": "d"},
                        {"role": "assistant", "content": "yo", "ai": "apollo-ai", "time": 1e9,
                         "id": "d", "usage": {"prompt_tokens": 3, "completion_tokens": "x"}}]}
    sessions = sessions_for(sandbox.home)
    (result,) = restore(sessions, json.dumps(doc).encode())
    assert result.id == "victim-restored" and result.renamed
    found = inspect(sessions, result.id)
    assert [m.ai for m in found.messages] == ["apollo", "apollo"]
    assert found.messages[0].id != found.messages[1].id  # a duplicate message id is renewed
    assert found.messages[1].usage is None
    assert found.meta["owner"] == "apollo" and found.meta["context_window"] == 4
    assert found.meta["title"] == "kept" and "api_key" not in found.meta
    sandbox.reset()


# -- explicit hostile cases through the console script ----------------------------------------

def _doc(sid="incoming", messages=None, **meta):
    return json.dumps({"format": "aish-session", "version": 1,
                       "session": {"id": sid, "owner": "apollo", **meta},
                       "messages": messages if messages is not None else [
                           {"role": "user", "content": "hi", "ai": "apollo", "time": 1e9}]})


@pytest.mark.parametrize("text, code, words", [
    ("{not json", 1, "neither a session document nor a session log"),
    ("[1, 2]", 1, "not an aish session document"),
    ('"just a string"', 1, "not an aish session document"),
    ('{"format": "other"}', 1, "unknown document format"),
    ('{"format": "aish-session", "version": 99}', 1, "newer aish"),
    ('{"format": "aish-session", "version": 1, "session": [], "messages": []}', 1,
     '"session" is not an object'),
    ('{"format": "aish-session", "version": 1, "session": {}, "messages": {}}', 1,
     '"messages" is not a list'),
    ('{"format": "aish-sessions", "version": 1, "sessions": []}', 1, "no sessions"),
    ("[" * 200_000, 1, "nested too deeply"),
    (_doc("../../outside"), 2, "invalid session id '../../outside' (restore it under"),
    (_doc("a/b"), 2, "invalid session id 'a/b' (restore it under another id with --as ID)"),
    (_doc(messages=[{"role": "user", "content": 5, "ai": "apollo", "time": 1}]), 1,
     "content must be text"),
    (_doc(messages=[{"role": "user", "content": "x", "ai": "../x", "time": 1}]), 1,
     "ai must be a specialist name"),
    (_doc(messages=[{"role": "user", "content": "x", "ai": "apollo"}]), 1, "missing field"),
    (_doc(messages=[{"role": "user", "content": "x", "ai": "apollo", "time": "noon"}]), 1,
     "time must be a timestamp"),
    (_doc(messages=[{"role": "user", "content": "x", "ai": "apollo", "time": 1e300}]), 1,
     "time must be a timestamp"),
    (_doc(messages=["not an object"]), 1, "not an object"),
])
def test_hostile_documents_get_one_clear_line(aish, home, sessions_dir, text, code, words):
    proc = aish("aish", "--restore-session", input=text)
    assert proc.returncode == code, stderr(proc)
    message = stderr(proc)
    assert words in message and message.count("\n") == 1 and "Traceback" not in message
    assert message.startswith("aish: error: ")
    assert not sessions_dir.exists() or list(sessions_dir.glob("*.jsonl")) == []
    assert not (Path(home["HOME"]) / ".aish" / "outside.jsonl").exists()


def test_not_utf8(aish):
    proc = aish("aish", "--restore-session", input=b"\xff\xfe\x00junk")
    assert proc.returncode == 1 and "not UTF-8" in stderr(proc)


def test_a_lone_surrogate_is_refused(aish):
    text = _doc(messages=[{"role": "user", "content": "PLACEHOLDER", "ai": "apollo", "time": 1}])
    proc = aish("aish", "--restore-session", input=text.replace("PLACEHOLDER", "\\ud800"))
    assert proc.returncode == 1 and "not valid Unicode" in stderr(proc)


def _limits(home, **limits) -> None:
    config = Path(home["HOME"]) / ".aish" / "config.yaml"
    lines = "".join(f"    {k}: {v}\n" for k, v in limits.items())
    config.write_text(config.read_text() + "sessions:\n  limits:\n" + lines)


def test_huge_fields_respect_the_limits(aish, home):
    # input is bounded by the larger of the stdin and session limits, sessions by the latter
    _limits(home, max_message_chars=100, max_session_bytes=2000, max_stdin_bytes=10_000)
    big = [{"role": "user", "content": "x" * 101, "ai": "apollo", "time": 1e9},
           {"role": "assistant", "content": "fine", "ai": "apollo", "time": 1e9 + 1}]
    proc = aish("aish", "--restore-session", input=_doc(messages=big))
    assert proc.returncode == 1 and "too large" in stderr(proc)
    assert "--skip-corrupted" in stderr(proc)
    skipped = aish("aish", "--restore-session", "--skip-corrupted", input=_doc(messages=big))
    assert ok(skipped).strip() == "incoming"
    assert "skipped damaged content: message 1: too large" in stderr(skipped)
    many = [{"role": "user", "content": "y" * 90, "ai": "apollo", "time": 1e9 + i}
            for i in range(20)]
    over = aish("aish", "--restore-session", "--as", "many", input=_doc(messages=many))
    assert over.returncode == 6 and "session size limit" in stderr(over)
    huge = aish("aish", "--restore-session", input=" " * 10_000 + _doc())
    assert huge.returncode == 6 and "larger than the limit" in stderr(huge)


def test_an_export_of_sessions_each_within_the_limit_restores_whatever_its_total(aish, home):
    """The session size limit is each session's; the document is bounded by the import one."""
    _limits(home, max_session_bytes=3000, max_stdin_bytes=1000, max_import_bytes=20_000)
    many = [{"role": "user", "content": "z" * 400, "ai": "apollo", "time": 1e9 + i}
            for i in range(4)]
    docs = [json.loads(_doc(f"part{n}", messages=many)) for n in range(5)]
    text = json.dumps({"format": "aish-sessions", "version": 1,
                       "sessions": [{k: d[k] for k in ("session", "messages")} for d in docs]})
    assert 3000 * 2 < len(text) < 20_000
    assert ok(aish("aish", "--restore-session", input=text)).split() == [
        f"part{n}" for n in range(5)]
    over = aish("aish", "--restore-session", input=" " * 20_000 + text)
    assert over.returncode == 6 and "max_import_bytes" in stderr(over)


def test_duplicate_ids_in_one_document_are_renamed(aish, home):
    one = json.loads(_doc("dup"))
    two = json.loads(_doc("dup", messages=[
        {"role": "user", "content": "second", "ai": "athena", "time": 2e9}]))
    doc = {"format": "aish-sessions", "version": 1, "sessions": [one, two]}
    proc = aish("aish", "--restore-session", "--force", input=json.dumps(doc))
    assert ok(proc).split() == ["dup", "dup-restored"]
    assert "restored as dup-restored" in stderr(proc)
    second = json.loads(ok(aish("aish", "--save-session", "dup-restored")))
    assert second["messages"][0]["content"] == "second"


def test_a_symlinked_session_file_is_never_followed(aish, home, sessions_dir, tmp_path):
    make_session(home, "real")
    target = tmp_path / "elsewhere.txt"
    target.write_text("precious")
    os.symlink(target, sessions_dir / "linked.jsonl")
    proc = aish("aish", "--restore-session", "--as", "linked", "--force", input=_doc())
    assert proc.returncode != 0 and "Traceback" not in stderr(proc)
    assert target.read_text() == "precious"
    assert log_path(home, "real").exists()
