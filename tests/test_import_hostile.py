"""Import treats every file as hostile: whatever it holds, one clear line on stderr and a
non-zero exit, never a traceback, and nothing written unless all of it could be imported."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from manage_support import sessions_for

from aish.errors import AishError
from aish.importers.run import import_sessions

# -- through the console script ------------------------------------------------------------------


def _refused(proc, sessions_dir: Path, code: int | None = None) -> str:
    err = proc.stderr.decode()
    assert proc.returncode != 0, err
    if code is not None:
        assert proc.returncode == code, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert not list(sessions_dir.glob("*.jsonl"))
    return err


GOOD_CHATGPT = {"title": "t", "conversation_id": "c1", "current_node": "b", "mapping": {
    "a": {"message": {"author": {"role": "user"}, "create_time": 1.0,
                      "content": {"content_type": "text", "parts": ["hi"]}}, "parent": None},
    "b": {"message": {"author": {"role": "assistant"}, "create_time": 2.0,
                      "content": {"content_type": "text", "parts": ["yo"]}}, "parent": "a"}}}


@pytest.mark.parametrize("source,content,says", [
    ("chatgpt", b"\xff\xfe not utf-8", "not UTF-8"),
    ("chatgpt", b"[" * 100_000, "nested too deeply"),
    ("chatgpt", b'{"not": "a list"}', "expected a list of conversations"),
    ("chatgpt", json.dumps([GOOD_CHATGPT, {"mapping": ["wrong"]}]).encode(), "mapping"),
    ("chatgpt", b"[NaN]", "not valid JSON"),
    ("sgpt", b'[{"role": "user", "content": 3}]', "role and text content"),
    ("gptme", b'{"role": "user", "content": "x", "timestamp": "2024-01-01"}\n[1]\n',
     "line 2"),
    ("aichat", b"a: &a [1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     + b"".join(b"%c: &%c [%s]\n" % (c, c, b", ".join([b"*" + bytes([c - 1])] * 9))
                for c in range(ord("c"), ord("z"))), "aliases"),
    ("aichat", b"messages: {role: user}\n", "not a list"),
    ("aichat", b"messages:\n" + b"".join(b"  " * n + b"- \n" for n in range(1, 200)),
     "nested deeper"),
    ("gptme", b'{"role": "user", "content": ' + b"[" * 50_000 + b"\n", "nested too deeply"),
    ("llm", b"SQLite format 3\x00" + b"\x00" * 200, "SQLite"),
    ("llm", b"not a database at all" * 100, "SQLite"),
])
def test_bad_files_are_refused_with_one_line_and_nothing_written(aish, sessions_dir, tmp_path,
                                                                  source, content, says):
    path = tmp_path / "input"
    path.write_bytes(content)
    err = _refused(aish("aish", "--import-session", str(path), "--from", source),
                   sessions_dir)
    assert says in err


def test_a_gptme_line_still_being_written_is_left_for_later(aish, tmp_path):
    log = tmp_path / "talk" / "conversation.jsonl"
    log.parent.mkdir()
    log.write_text('{"role": "user", "content": "hi", "timestamp": "2024-01-01T10:00:00"}\n'
                   '{"role": "assistant", "content": "hel')
    proc = aish("aish", "--import-session", str(log), "--from", "gptme", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["messages"] == 1


def test_one_bad_conversation_stops_all_of_them(aish, sessions_dir, tmp_path):
    bad = json.loads(json.dumps(GOOD_CHATGPT))
    bad["mapping"]["b"]["message"]["content"]["parts"] = ["\ud800 lone surrogate"]
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps([GOOD_CHATGPT, bad]))
    err = _refused(aish("aish", "--import-session", str(path), "--from", "chatgpt"),
                   sessions_dir)
    assert "Unicode" in err


def test_skip_corrupted_imports_the_rest_and_names_what_it_left_out(aish, sessions_dir,
                                                                    tmp_path):
    surrogate = json.loads(json.dumps(GOOD_CHATGPT))
    surrogate["conversation_id"] = "c2"
    surrogate["mapping"]["b"]["message"]["content"]["parts"] = ["\ud800 lone surrogate"]
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps([GOOD_CHATGPT, {"mapping": ["wrong"]}, surrogate]))
    proc = aish("aish", "--import-session", str(path), "--from", "chatgpt", "--skip-corrupted")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.split()) == 1
    err = proc.stderr.decode()
    assert "conversation 2: its \"mapping\" is not an object" in err
    assert "conversation c2" in err and "Unicode" in err
    path.write_text(json.dumps([{"mapping": ["wrong"]}]))
    proc = aish("aish", "--import-session", str(path), "--from", "chatgpt", "--skip-corrupted")
    assert proc.returncode != 0 and b"none of its conversations" in proc.stderr
    assert len(list(sessions_dir.glob("*.jsonl"))) == 1


def test_a_fifo_a_directory_and_a_missing_file(aish, sessions_dir, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # reading it would wait for a writer for ever
    assert "not a regular file" in _refused(
        aish("aish", "--import-session", str(fifo), "--from", "chatgpt", timeout=60),
        sessions_dir)
    assert "is a directory" in _refused(
        aish("aish", "--import-session", str(tmp_path), "--from", "chatgpt"), sessions_dir)
    _refused(aish("aish", "--import-session", str(tmp_path / "nope"), "--from", "llm"),
             sessions_dir, code=3)
    # A chat folder with a FIFO in it: only regular files are chats.
    chats = tmp_path / "chats"
    chats.mkdir()
    os.mkfifo(chats / "pipe")
    (chats / "real").write_text('[{"role": "user", "content": "hi"}]')
    proc = aish("aish", "--import-session", str(chats), "--from", "sgpt", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.split()) == 1


def test_size_limits(aish, home, sessions_dir, tmp_path):
    cfg = Path(home["HOME"]) / ".aish" / "config.yaml"
    cfg.write_text(cfg.read_text() + "sessions:\n  limits: {max_session_bytes: 4096, "
                   "max_message_chars: 100}\n")
    big = tmp_path / "big.json"
    big.write_text(json.dumps([GOOD_CHATGPT] * 100))
    assert "larger than the limit" in _refused(
        aish("aish", "--import-session", str(big), "--from", "chatgpt"), sessions_dir, code=6)
    long = tmp_path / "long"
    long.write_text(json.dumps([{"role": "user", "content": "x" * 101}]))
    assert "limit 100" in _refused(
        aish("aish", "--import-session", str(long), "--from", "sgpt"), sessions_dir)


def _chatgpt(cid: str, words: str = "hi") -> dict:
    conversation = json.loads(json.dumps(GOOD_CHATGPT))
    conversation["conversation_id"] = cid
    conversation["mapping"]["a"]["message"]["content"]["parts"] = [words]
    return conversation


def test_the_session_limit_applies_to_each_conversation(aish, home, sessions_dir, tmp_path):
    """An export of many small conversations, over the session size limit together, imports;
    one conversation over it alone is left out with a line naming it, the others imported, and
    the exit code says a limit was hit; raised, the same import brings only that one."""
    cfg = Path(home["HOME"]) / ".aish" / "config.yaml"
    base = cfg.read_text()
    cfg.write_text(base + "sessions:\n  limits: {max_session_bytes: 3000, "
                   "max_import_bytes: 100000}\n")
    small = [_chatgpt(f"c{n}") for n in range(10)]
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps([*small[:5], _chatgpt("big", "x" * 4000), *small[5:]]))
    assert len(json.dumps(small)) > 3000  # over the session limit together
    proc = aish("aish", "--import-session", str(path), "--from", "chatgpt")
    err = proc.stderr.decode()
    assert proc.returncode == 6, err
    assert "Traceback" not in err
    left = [line for line in err.splitlines() if "left out" in line]
    assert len(left) == 1 and "conversation big" in left[0], err
    assert "over the session size limit (3,000 bytes)" in left[0]
    assert len(proc.stdout.split()) == 10
    assert len(list(sessions_dir.glob("*.jsonl"))) == 10
    # Alone, it is refused in one line and nothing is written.
    alone = tmp_path / "alone.json"
    alone.write_text(json.dumps([_chatgpt("big", "x" * 4000)]))
    err = _refused(aish("aish", "--import-session", str(alone), "--from", "chatgpt"),
                   tmp_path / "nowhere", code=6)
    assert "conversation big" in err
    cfg.write_text(base + "sessions:\n  limits: {max_session_bytes: 30000}\n")
    again = aish("aish", "--import-session", str(path), "--from", "chatgpt", "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert [r["source_id"] for r in report if not r["existing"]] == ["big"]
    assert len(list(sessions_dir.glob("*.jsonl"))) == 11


def test_the_file_is_bounded_by_the_import_limit(aish, home, sessions_dir, tmp_path):
    cfg = Path(home["HOME"]) / ".aish" / "config.yaml"
    cfg.write_text(cfg.read_text() + "sessions:\n  limits: {max_session_bytes: 100000, "
                   "max_import_bytes: 2000}\n")
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps([_chatgpt(f"c{n}") for n in range(10)]))
    err = _refused(aish("aish", "--import-session", str(path), "--from", "chatgpt"),
                   sessions_dir, code=6)
    assert "larger than the limit of 2,000 bytes" in err and "max_import_bytes" in err


def test_the_limit_on_active_sessions(aish, sessions_dir, tmp_path):
    import time

    now = time.time()
    chats = tmp_path / "chats"
    chats.mkdir()
    for n in range(3):
        (chats / f"c{n}").write_text('[{"role": "user", "content": "hi"}]')
        os.utime(chats / f"c{n}", (now, now))  # recent: they would be active
    err = _refused(aish("aish", "--import-session", str(chats), "--from", "sgpt",
                        AISH_MAX_SESSIONS="2"), sessions_dir, code=6)
    assert "limit of 2 active sessions leaves room for 2" in err


# -- every parser, fuzzed in process -------------------------------------------------------------

SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
           | st.sampled_from([10**400, -1, 2**63, 1e308, "user", "assistant", "system",
                              "text", "\ud800", "all"]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=10) | st.sampled_from(
                        ["role", "content", "parts", "author", "message", "parent",
                         "mapping", "current_node", "content_type", "metadata"]),
                        inner, max_size=5), max_leaves=25)


def _field(good):
    return st.one_of(st.just(good), JSON)


NODES = st.fixed_dictionaries({
    "message": _field({"author": {"role": "user"}, "content": {"content_type": "text",
                                                               "parts": ["hi"]}})
    | st.fixed_dictionaries({"author": st.fixed_dictionaries({"role": _field("assistant")}),
                             "content": st.fixed_dictionaries({
                                 "content_type": _field("text"), "parts": _field(["x"])}),
                             "create_time": SCALARS, "recipient": _field("all"),
                             "metadata": JSON}),
    "parent": st.sampled_from([None, "n0", "n1", "n2", "n3"]) | SCALARS,
})
CHATGPT = st.lists(st.fixed_dictionaries({
    "mapping": st.dictionaries(st.sampled_from(["n0", "n1", "n2", "n3"]), NODES, max_size=4)
    | JSON, "current_node": st.sampled_from(["n0", "n1", "n3", "x"]) | SCALARS,
    "title": SCALARS, "conversation_id": SCALARS, "create_time": SCALARS}) | JSON, max_size=3)
MESSAGES = st.lists(st.fixed_dictionaries(
    {"role": _field("user") | st.just("assistant"), "content": _field("hello")},
    optional={"timestamp": _field("2024-01-01T10:00:00") | SCALARS, "hide": SCALARS,
              "metadata": _field({"model": "m", "usage": {"input_tokens": 1,
                                                         "output_tokens": 2}})}) | JSON,
    max_size=5)


def _yaml(messages) -> str:
    return json.dumps({"model": "openai:x", "messages": messages})  # JSON is YAML


FILES = {
    "chatgpt": st.one_of(CHATGPT.map(json.dumps), st.text(max_size=200)),
    "sgpt": st.one_of(MESSAGES.map(json.dumps), st.text(max_size=200)),
    "gptme": st.one_of(MESSAGES.map(lambda ms: "\n".join(json.dumps(m) for m in ms)),
                       st.text(max_size=200)),
    "aichat": st.one_of(MESSAGES.map(_yaml), st.text(max_size=200)),
}


def _attempt(source: str, write, skip: bool = False) -> None:
    home = tempfile.mkdtemp()
    try:
        env = {"HOME": home, "AISH_CONFIG": os.devnull}
        path = Path(home) / "input"
        write(path)
        sessions = sessions_for(env)
        try:
            import_sessions(sessions, source, str(path), skip_corrupted=skip)
        except AishError:
            assert not list((Path(home) / ".aish" / "sessions").glob("*.jsonl"))
            return
        for summary, _ in sessions.listing(include_all=True):
            assert sessions.load(summary.id).problems == []
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize("source", sorted(FILES))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_files_import_cleanly_or_are_refused(source, data):
    text = data.draw(FILES[source])
    raw = data.draw(st.sampled_from(["utf-8", "surrogateescape-bytes"]))
    skip = data.draw(st.booleans(), label="--skip-corrupted")

    def write(path: Path) -> None:
        if raw == "utf-8":
            path.write_bytes(text.encode("utf-8", "surrogatepass"))
        else:
            path.write_bytes(data.draw(st.binary(max_size=100)) + text.encode(
                "utf-8", "surrogatepass"))

    _attempt(source, write, skip)


LLM_VALUES = SCALARS | st.sampled_from(["h1", "h2", "h3", "t1", "user", "assistant",
                                        "2024-01-01T00:00:00", "text"])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(st.tuples(LLM_VALUES, LLM_VALUES, LLM_VALUES), max_size=5),
       parts=st.lists(st.tuples(LLM_VALUES, LLM_VALUES, LLM_VALUES, LLM_VALUES), max_size=5),
       threads=st.lists(st.tuples(LLM_VALUES, LLM_VALUES, LLM_VALUES, LLM_VALUES),
                        max_size=3),
       turns=st.lists(st.tuples(*[LLM_VALUES] * 10), max_size=4),
       responses=st.lists(st.tuples(*[LLM_VALUES] * 10), max_size=4))
def test_fuzzed_llm_databases_import_cleanly_or_are_refused(messages, parts, threads, turns,
                                                           responses):
    def write(path: Path) -> None:
        def fit(row):  # SQLite stores what Python can give it
            return tuple(v if not isinstance(v, int) or -2**63 <= v < 2**63 else str(v)
                         for v in (x.encode("utf-8", "surrogatepass").decode(
                             "utf-8", "replace") if isinstance(x, str) else x for x in row))
        with sqlite3.connect(path) as db:
            db.execute("create table messages (hash, parent_hash, role)")
            db.execute("create table parts (message_hash, position, type, text)")
            db.execute("create table threads (id, name, tip_message_hash, datetime_utc)")
            db.execute("create table turns (id, thread_id, parent_message_hash, "
                       "tip_message_hash, model, resolved_model, input_tokens, output_tokens, "
                       "duration_ms, datetime_utc)")
            db.execute("create table responses (id, conversation_id, prompt, response, model, "
                       "resolved_model, input_tokens, output_tokens, duration_ms, "
                       "datetime_utc)")
            db.executemany("insert into messages values (?, ?, ?)", map(fit, messages))
            db.executemany("insert into parts values (?, ?, ?, ?)", map(fit, parts))
            db.executemany("insert into threads values (?, ?, ?, ?)", map(fit, threads))
            db.executemany("insert into turns values (?,?,?,?,?,?,?,?,?,?)", map(fit, turns))
            db.executemany("insert into responses values (?,?,?,?,?,?,?,?,?,?)",
                           map(fit, responses))
        db.close()

    _attempt("llm", write)


def test_an_llm_view_that_never_ends_is_stopped(tmp_path):
    def write(path: Path) -> None:
        with sqlite3.connect(path) as db:
            db.execute("create view responses as with recursive n(x) as (select 1 union all "
                       "select x + 1 from n) select x as id from n")
        db.close()

    with pytest.raises(AishError, match="not an llm logs database"):
        _attempt_raising("llm", write, tmp_path)


def _attempt_raising(source, write, tmp_path):
    env = {"HOME": str(tmp_path), "AISH_CONFIG": os.devnull}
    path = tmp_path / "input"
    write(path)
    import_sessions(sessions_for(env), source, str(path))
