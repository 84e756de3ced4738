"""Compaction: the pairs that leave a branch's window are summarised by the session's model
instead of dropped. Checked through the real program against the scripted server (what it is
asked, what the next request carries), on both stores, and in-process for the reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run
from manage_support import select_redis
from redis_support import redis_url  # noqa: F401 - the fixture

from aish.compaction import NOTE, PROMPT
from aish.store.filestore import FileStore

pytestmark = pytest.mark.usefixtures("server")


def summariser(body: dict) -> str:
    """The scripted model: a summary names what it was given, a reply echoes the question."""
    messages = body["messages"]
    if messages[0]["content"] == PROMPT:
        asked = messages[-1]["content"]
        words = [w for w in asked.replace(":", " ").split() if w.startswith(("q", "SUMMARY"))]
        return "SUMMARY[" + ",".join(dict.fromkeys(words)) + "]"
    return "ok: " + messages[-1]["content"]


def ok(env, *args, input=None):
    result = run(env, *args, input=input)
    assert result.returncode == 0, result.stderr.decode()
    return result


def say(env, sid, text):
    return ok(env, "apollo", "--session-id", sid, "--context-window", "2", input=text)


def summary_requests(server) -> list[dict]:
    return [b for b in server.requests if b["messages"][0]["content"] == PROMPT]


def log_of(env, sessions_dir: Path, sid: str) -> list[dict]:
    result = ok(env, "aish", "--save-session", sid)
    return json.loads(result.stdout)["messages"]


def stored_bytes(sessions_dir: Path, sid: str) -> bytes:
    return (sessions_dir / f"{sid}.jsonl").read_bytes()


@pytest.fixture
def talk(env, server):
    server.reply = summariser
    return env


def test_compaction_keeps_the_log_and_the_next_request_sends_the_summary(talk, server,
                                                                         sessions_dir):
    for n in range(1, 5):
        say(talk, "c", f"q{n}")
    before = stored_bytes(sessions_dir, "c")

    result = ok(talk, "aish", "--compact-session", "c")
    assert "Summarised messages 1\u20134 of branch main" in result.stderr.decode()
    [asked] = summary_requests(server)
    # The two pairs outside a window of two, and only those, were summarised.
    assert "q1" in asked["messages"][1]["content"] and "q2" in asked["messages"][1]["content"]
    assert "q3" not in asked["messages"][1]["content"]
    after = stored_bytes(sessions_dir, "c")
    assert after.startswith(before) and len(after) > len(before)  # appended, nothing rewritten

    # Idempotent while nothing new left the window.
    nothing = ok(talk, "aish", "--compact-session", "c")
    assert "Nothing to compact" in nothing.stderr.decode()
    assert len(summary_requests(server)) == 1

    say(talk, "c", "q5")
    sent = server.requests[-1]["messages"]
    assert sent[1] == {"role": "system", "content":
                       "Summary of the earlier conversation (messages 1-4): SUMMARY[q1,q2]"}
    assert [m["content"] for m in sent[2:]] == ["q3", "ok: q3", "q4", "ok: q4", "q5"]

    # Repeatable: the previous summary plus what left the window since, never all again.
    ok(talk, "aish", "--compact-session", "c")
    again = summary_requests(server)[-1]["messages"][1]["content"]
    assert "SUMMARY[q1,q2]" in again and "q3" in again
    assert "q1" not in again.replace("SUMMARY[q1,q2]", "")
    assert "Nothing to compact" in ok(talk, "aish", "--compact-session", "c").stderr.decode()
    assert len(summary_requests(server)) == 2

    say(talk, "c", "q6")
    assert server.requests[-1]["messages"][1]["content"] == (
        "Summary of the earlier conversation (messages 1-6): SUMMARY[SUMMARY[q1,q2],q3]")
    # The whole history is still there, the summaries beside it as notes.
    records = [json.loads(line) for line in stored_bytes(sessions_dir, "c").splitlines()]
    messages = [r for r in records if r["t"] == "msg"]
    assert [m["content"] for m in messages if not m.get("note")][:2] == ["q1", "ok: q1"]
    notes = [m for m in messages if m.get("note") == NOTE]
    assert [(n["covers"], n["source"]) for n in notes] == [
        (4, messages[3]["id"]), (6, messages[5]["id"])]
    assert notes[1]["parent"] == notes[0]["id"]  # a summary extends the one before it
    # Main still ends with the conversation, not with a note.
    history = json.loads(ok(talk, "aish", "--list-branches", "c", "--json").stdout)
    assert history[0]["messages"] == 12
    # The tree drawn (from its skeleton cache) holds the conversation only, numbered once.
    for _ in range(2):  # the second read comes from the cache the first wrote
        tree = json.loads(ok(talk, "aish", "--history", "c", "--json").stdout)
        assert sorted(n["number"] for n in tree["nodes"]) == list(range(1, 13))
        assert not any(n.get("note") for n in tree["nodes"])


def test_session_info_says_what_is_summarised(talk):
    for n in range(1, 4):
        say(talk, "i", f"q{n}")
    info = ok(talk, "aish", "--session-info", "i").stdout.decode()
    assert "Summary of" not in info
    ok(talk, "aish", "--compact-session", "i")
    info = ok(talk, "aish", "--session-info", "i").stdout.decode()
    assert "Summary of messages 1\u20132 included (made just now)" in info
    data = json.loads(ok(talk, "aish", "--session-info", "i", "--json").stdout)
    assert data["summary"]["covers"] == 2


def test_overflow_summarize_compacts_before_the_exchange(talk, server, sessions_dir):
    cfg = Path(talk["HOME"]) / ".aish" / "config.yaml"
    cfg.write_text(cfg.read_text() + "sessions:\n  defaults: {overflow: summarize}\n")
    for n in range(1, 4):
        say(talk, "o", f"q{n}")
    assert summary_requests(server) == []  # nothing has left a window of two yet
    say(talk, "o", "q4")
    [asked] = summary_requests(server)
    assert "q1" in asked["messages"][1]["content"]
    sent = server.requests[-1]["messages"]
    assert sent[1]["content"] == "Summary of the earlier conversation (messages 1-2): SUMMARY[q1]"
    assert [m["content"] for m in sent[2:]] == ["q2", "ok: q2", "q3", "ok: q3", "q4"]
    # The user's message was stored before the model was asked for the summary.
    records = [json.loads(line) for line in stored_bytes(sessions_dir, "o").splitlines()]
    kinds = [(r.get("content"), r.get("note")) for r in records if r["t"] == "msg"]
    assert kinds.index(("q4", None)) < kinds.index(("SUMMARY[q1]", NOTE))


def test_a_failed_summary_falls_back_to_dropping(talk, server, sessions_dir):
    cfg = Path(talk["HOME"]) / ".aish" / "config.yaml"
    cfg.write_text(cfg.read_text() + "sessions:\n  defaults: {overflow: summarize}\n")
    for n in range(1, 4):
        say(talk, "f", f"q{n}")
    server.script = ["500"]  # the summary's request fails; the reply's is answered
    result = say(talk, "f", "q4")
    warning = result.stderr.decode()
    assert "could not summarise the older messages of session f" in warning
    assert "Traceback" not in warning
    assert result.stdout.decode().strip() == "ok: q4"
    sent = server.requests[-1]["messages"]
    assert [m["content"] for m in sent[1:]] == ["q2", "ok: q2", "q3", "ok: q3", "q4"]
    records = [json.loads(line) for line in stored_bytes(sessions_dir, "f").splitlines()]
    contents = [r.get("content") for r in records if r["t"] == "msg"]
    assert contents[-2:] == ["q4", "ok: q4"] and not any(r.get("note") for r in records)


def test_compaction_on_redis(talk, server, redis_url):  # noqa: F811
    select_redis(talk, redis_url)
    for n in range(1, 5):
        say(talk, "r", f"q{n}")
    ok(talk, "aish", "--compact-session", "r")
    assert "Nothing to compact" in ok(talk, "aish", "--compact-session", "r").stderr.decode()
    say(talk, "r", "q5")
    sent = server.requests[-1]["messages"]
    assert sent[1]["content"] == ("Summary of the earlier conversation (messages 1-4): "
                                  "SUMMARY[q1,q2]")
    assert [m["content"] for m in sent[2:]] == ["q3", "ok: q3", "q4", "ok: q4", "q5"]
    say(talk, "r", "q6")  # found again from the reply that names it, past the window's edge
    assert server.requests[-1]["messages"][1]["content"].endswith("SUMMARY[q1,q2]")


def test_compacting_a_missing_branch_or_session_is_one_line(talk):
    say(talk, "m", "q1")
    for args, code in ((("m", "--branch", "nope"), 2), (("ghost",), 3)):
        result = run(talk, "aish", "--compact-session", *args)
        assert result.returncode == code
        line = result.stderr.decode().strip()
        assert len(line.splitlines()) == 1 and "Traceback" not in line


# -- in process: reports and the encrypted store ---------------------------------------------

def test_context_report_and_encrypted_summary(tmp_path, monkeypatch):
    from dataclasses import replace

    from fakes import Scripted

    from aish.compaction import compact, session_on
    from aish.config import load
    from aish.messages import ASSISTANT, USER, Message
    from aish.reports import context_report, format_context
    from aish.sessions import Sessions
    from aish.specialists import roster
    from aish.store import open_store

    config = replace(load({"HOME": str(tmp_path)}), encrypt=True, context_window=1)
    monkeypatch.setenv("AISH_ENCRYPTION_KEY", "correct horse battery staple")
    store = open_store(config)
    sessions = Sessions(store, config, now=lambda: 1000.0)
    session = sessions.create("apollo", "enc")
    for n in range(1, 4):
        session.add(Message(USER, f"secret q{n}", "apollo", 10.0 * n))
        session.add(Message(ASSISTANT, f"a{n}", "apollo", 10.0 * n + 1))
    session.save()
    apollo = roster({})["apollo"]
    provider = Scripted("the summary of secret things")
    done = compact(session_on(sessions, "enc", "main"), apollo, provider)
    assert done is not None and done.note.covers == 4
    assert provider.options == [{"quiet": False, "retries": None}]
    # At rest the summary is sealed like any message.
    raw = (config.session_dir / "enc.jsonl").read_text()
    assert "summary of secret" not in raw and '"note":"summary"' in raw

    fresh = session_on(sessions, "enc", "main")
    text = format_context(context_report(fresh, apollo, 1000.0 + 120))
    assert "Summary of messages 1\u20134 included (made 2 minutes ago)" in text


def test_overflow_set_for_one_session_at_creation(talk, server):
    ok(talk, "apollo", "--session-id", "own", "--context-window", "1", "--overflow",
       "summarize", input="q1")
    say_one = ("apollo", "--session-id", "own")
    ok(talk, *say_one, input="q2")
    assert summary_requests(server) == []
    ok(talk, *say_one, input="q3")  # q1 leaves a window of one: summarised first
    assert server.requests[-1]["messages"][1]["content"].endswith("SUMMARY[q1]")
    assert run(talk, "apollo", "--session-id", "own", "--overflow", "sometimes",
               input="q").returncode == 2


def test_the_embedded_model_writes_a_summary(home, sessions_dir):
    """The default provider, with no endpoint configured: the embedded model summarises."""
    from aish.messages import ASSISTANT, USER, Message

    store = FileStore(sessions_dir)
    store.create({"id": "local", "owner": "apollo", "created": 1.0, "updated": 1.0,
                  "context_window": 1, "participants": ["apollo"]},
                 [Message(USER, "My cat is called Tom.", "apollo", 2.0),
                  Message(ASSISTANT, "Tom is a fine name for a cat.", "apollo", 3.0),
                  Message(USER, "What is 2+2?", "apollo", 4.0),
                  Message(ASSISTANT, "4.", "apollo", 5.0)])
    result = run(home, "aish", "--compact-session", "local", "--json")
    assert result.returncode == 0, result.stderr.decode()
    done = json.loads(result.stdout)
    assert done["compacted"] and done["covers"] == 2
    [note] = [m for m in store.load("local").messages if m.note == NOTE]
    assert note.content.strip() and note.source == store.load("local").messages[1].id


def test_save_and_restore_keep_the_compaction_on_redis(talk, server, redis_url):  # noqa: F811
    select_redis(talk, redis_url)
    for n in range(1, 5):
        say(talk, "sv", f"q{n}")
    ok(talk, "aish", "--compact-session", "sv")
    saved = ok(talk, "aish", "--save-session", "sv").stdout
    ok(talk, "aish", "--restore-session", "-", "--as", "sv2", input=saved)
    info = ok(talk, "aish", "--session-info", "sv2").stdout.decode()
    assert "Summary of messages 1\u20134 included" in info and "Messages: 8" in info
    say(talk, "sv2", "q5")
    assert server.requests[-1]["messages"][1]["content"] == (
        "Summary of the earlier conversation (messages 1-4): SUMMARY[q1,q2]")
