"""Sharing across AIs: a generated session belongs to its AI; others join only with --shared;
`--session-id NAME` sessions are shared workspaces; in a shared session every specialist sees the
whole conversation with the others' replies attributed ("apollo-ai said: ...")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run

from aish.config import load
from aish.conversation import SHARED_NOTE, build_chat
from aish.errors import REFUSED, Refused
from aish.messages import ASSISTANT, USER, Message
from aish.sessions import Sessions
from aish.specialists import BUILTIN, roster
from aish.store.filestore import FileStore


def ok(env, *args, input=None):
    result = run(env, *args, input=input)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def meta(sessions_dir: Path, sid: str) -> dict:
    return FileStore(sessions_dir).load(sid).meta


# -- the chat a specialist receives --------------------------------------------------------------


def test_build_chat_attributes_other_specialists():
    team = roster({})
    window = [Message(USER, "design it", "prometheus", 1),
              Message(ASSISTANT, "plan P", "prometheus", 2),
              Message(USER, "build it", "apollo", 3), Message(ASSISTANT, "code C", "apollo", 4),
              Message(USER, "review it", "athena", 5)]
    chat = build_chat(team["apollo"], window, shared=True)
    assert chat[0].role == "system"
    assert chat[0].content == BUILTIN["apollo"]["persona"] + SHARED_NOTE
    assert [(m.role, m.content) for m in chat[1:]] == [
        ("user", "design it"), ("user", "prometheus-ai said: plan P"),
        ("user", "build it"), ("assistant", "code C"), ("user", "review it")]
    alone = build_chat(team["apollo"], window[2:4], shared=False)
    assert alone[0].content == BUILTIN["apollo"]["persona"]


def test_open_refuses_another_ai_without_shared(tmp_path):
    config = load({"HOME": str(tmp_path)})
    sessions = Sessions(FileStore(tmp_path / "s"), config)
    session = sessions.create("apollo")
    with pytest.raises(Refused) as info:
        sessions.open("athena", session.id)
    assert info.value.exit_code == REFUSED == 7
    assert "apollo-ai" in str(info.value) and "--shared" in str(info.value)
    joined = sessions.open("athena", session.id, shared=True)
    assert joined.meta["participants"] == ["apollo", "athena"] and joined.shared
    named = sessions.open("prometheus", "workspace", create_missing=True)
    assert named.shared
    assert sessions.open("apollo", "workspace").meta["participants"] == ["prometheus", "apollo"]


# -- through the command line --------------------------------------------------------------------


def test_owner_only_without_shared(env, server, sessions_dir):
    sid = ok(env, "apollo", "--session", "--get-id", input="Analyzing this architecture").strip()
    log = sessions_dir / f"{sid}.jsonl"
    before = log.read_bytes()
    requests = len(server.requests)

    for argv in (("athena", "--session", sid), ("athena", "--session-id", sid),
                 ("aish", "athena-ai", "--session", sid)):
        result = run(env, *argv, input="Review Apollo's analysis")
        err = result.stderr.decode()
        assert result.returncode == REFUSED, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "apollo-ai" in err and "--shared" in err, err
        assert result.stdout == b""
    assert log.read_bytes() == before, "a refused specialist changed the session"
    assert len(server.requests) == requests, "a refused specialist reached the model"

    ok(env, "apollo", "--session", sid, input="and more")  # the owner needs no --shared
    assert meta(sessions_dir, sid)["shared"] is False
    assert meta(sessions_dir, sid)["participants"] == ["apollo"]


def test_refused_also_for_an_ended_session(env, sessions_dir):
    sid = ok(env, "apollo", "--session", "--get-id", input="hi").strip()
    ok(env, "apollo", "--session", sid, "--end")
    result = run(env, "athena", "--session", sid, input="hello")
    assert result.returncode == REFUSED
    assert meta(sessions_dir, sid)["state"] == "ended"


def test_shared_joins_and_everyone_sees_everything(env, server, sessions_dir):
    sid = ok(env, "apollo", "--session", "--get-id", input="Analyzing this architecture").strip()

    out = ok(env, "athena", "--session", sid, "--shared", input="Review Apollo's analysis")
    assert out.strip() == "ok: Review Apollo's analysis"
    m = meta(sessions_dir, sid)
    assert m["shared"] is True and m["participants"] == ["apollo", "athena"]
    assert m["owner"] == "apollo"
    chat = server.last_messages
    assert chat[0] == {"role": "system", "content": BUILTIN["athena"]["persona"] + SHARED_NOTE}
    assert chat[1:] == [
        {"role": "user", "content": "Analyzing this architecture"},
        {"role": "user", "content": "apollo-ai said: ok: Analyzing this architecture"},
        {"role": "user", "content": "Review Apollo's analysis"}]

    ok(env, "prometheus", "--session", sid, "--shared",
       input="Create a plan based on the discussion")
    chat = server.last_messages
    assert chat[0]["content"].startswith(BUILTIN["prometheus"]["persona"])
    contents = [m["content"] for m in chat[1:]]
    assert "apollo-ai said: ok: Analyzing this architecture" in contents
    assert "athena-ai said: ok: Review Apollo's analysis" in contents
    assert all(m["role"] == "user" for m in chat[1:])
    assert meta(sessions_dir, sid)["participants"] == ["apollo", "athena", "prometheus"]

    # The owner sees its own replies as its own and the others' attributed.
    ok(env, "apollo", "--session", sid, input="Summarise")
    chat = server.last_messages
    assert {"role": "assistant", "content": "ok: Analyzing this architecture"} in chat
    assert {"role": "user", "content": "athena-ai said: ok: Review Apollo's analysis"} in chat
    assert {"role": "user",
            "content": "prometheus-ai said: ok: Create a plan based on the discussion"} in chat

    # Every stored message names its AI.
    messages = FileStore(sessions_dir).load(sid).messages
    assert [(m.role, m.ai) for m in messages] == [
        ("user", "apollo"), ("assistant", "apollo"), ("user", "athena"), ("assistant", "athena"),
        ("user", "prometheus"), ("assistant", "prometheus"), ("user", "apollo"),
        ("assistant", "apollo")]
    listing = json.loads(ok(env, "aish", "--list-sessions", "--json"))
    row = next(r for r in listing if r["id"] == sid)
    assert row["shared"] is True and row["ai"] == "apollo-ai"
    assert row["participants"] == ["apollo-ai", "athena-ai", "prometheus-ai"]


def test_named_sessions_are_shared_workspaces(env, server, sessions_dir):
    name = "feature-development"
    ok(env, "prometheus", "--session-id", name, input="Design user authentication")
    assert meta(sessions_dir, name)["shared"] is True
    ok(env, "apollo", "--session-id", name, input="Implement the design in Python")
    chat = server.last_messages
    assert chat[0]["content"] == BUILTIN["apollo"]["persona"] + SHARED_NOTE
    assert {"role": "user",
            "content": "prometheus-ai said: ok: Design user authentication"} in chat
    ok(env, "athena", "--session-id", name, input="Review the implementation")
    ok(env, "apollo", "--session-id", name, input="Address the review comments")
    chat = server.last_messages
    assert {"role": "assistant", "content": "ok: Implement the design in Python"} in chat
    assert {"role": "user", "content": "athena-ai said: ok: Review the implementation"} in chat
    m = meta(sessions_dir, name)
    assert m["participants"] == ["prometheus", "apollo", "athena"]
    assert m["owner"] == "prometheus"
    assert len(FileStore(sessions_dir).load(name).messages) == 8
