"""Importing what the real tools wrote: llm, shell_gpt and gptme talk to the scripted
OpenAI-compatible server (tests/fault_server.py) from the test's HOME, and aichat's session
file is written in its documented format (aichat is a Rust program, not on PyPI)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import BIN
from import_support import imported_ids, said, saved, tool_venv
from manage_support import select_redis
from redis_support import redis_server, redis_url  # noqa: F401


def _run(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), env=env, capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc


@pytest.fixture
def tool_env(home, server, tmp_path) -> dict:
    """The test HOME with the peer tools pointed at the scripted server."""
    server.reply = lambda body: f"answer {len(server.requests)}"
    return {**home, "OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": server.base,
            "API_BASE_URL": server.base, "TMPDIR": str(tmp_path)}


def _utc(text: str) -> float:
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


# -- llm -----------------------------------------------------------------------------------------

def _llm_env(tool_env: dict, server, tmp_path: Path) -> dict:
    user_dir = tmp_path / "llm"
    user_dir.mkdir()
    (user_dir / "extra-openai-models.yaml").write_text(
        f"- model_id: scripted\n  model_name: scripted-model\n  api_base: \"{server.base}\"\n")
    return {**tool_env, "LLM_USER_PATH": str(user_dir)}


def test_llm_conversations_with_their_times_models_and_tokens(aish, tool_env, server, tmp_path):
    env = _llm_env(tool_env, server, tmp_path)
    user_dir = Path(env["LLM_USER_PATH"])
    llm = str(BIN / "llm")
    _run(env, llm, "-m", "scripted", "what is a monad?")
    _run(env, llm, "-m", "scripted", "-c", "and a functor?")
    _run(env, llm, "-m", "scripted", "another topic")
    db = user_dir / "logs.db"

    ids = imported_ids(aish("aish", "--import-session", str(db), "--from", "llm"))
    assert len(ids) == 2
    with sqlite3.connect(db) as con:
        threads = con.execute("select id, name from threads order by datetime_utc").fetchall()
        turns = con.execute("select thread_id, datetime_utc, duration_ms, model, input_tokens, "
                            "output_tokens from turns order by datetime_utc").fetchall()
    first = saved(aish, ids[0])
    assert said(first) == [("user", "what is a monad?"), ("assistant", "answer 1"),
                           ("user", "and a functor?"), ("assistant", "answer 2")]
    mine = [t for t in turns if t[0] == threads[0][0]]
    expected_times = []
    for _, started, duration, *_ in mine:
        expected_times += [_utc(started), _utc(started) + duration / 1000]
    assert [m["time"] for m in first["messages"]] == pytest.approx(expected_times, abs=1e-6)
    replies = [m for m in first["messages"] if m["role"] == "assistant"]
    assert [m["model"] for m in replies] == ["scripted", "scripted"]
    assert [(m["usage"]["prompt_tokens"], m["usage"]["completion_tokens"]) for m in replies] \
        == [(t[4], t[5]) for t in mine]
    assert first["session"]["title"] == threads[0][1]
    assert first["session"]["origin"]["source_id"] == threads[0][0]
    assert said(saved(aish, ids[1])) == [("user", "another topic"), ("assistant", "answer 3")]

    # --conversation picks one; the file again adds nothing.
    [again] = imported_ids(aish("aish", "--import-session", str(db), "--from", "llm",
                                "--conversation", threads[1][0]))
    assert again == ids[1]
    # Without FILE, llm's own place: $LLM_USER_PATH/logs.db.
    assert imported_ids(aish("aish", "--import-session", "--from", "llm",
                             LLM_USER_PATH=str(user_dir))) == ids


def test_llm_logs_of_an_older_llm_and_after_the_upgrade(aish, tool_env, server, tmp_path,
                                                        pytestconfig):
    env = _llm_env(tool_env, server, tmp_path)
    db = Path(env["LLM_USER_PATH"]) / "logs.db"
    old = tool_venv(pytestconfig.cache.mkdir("aish-import-tools"), "llm-0.31") / "llm"
    _run(env, str(old), "-m", "scripted", "old question")
    _run(env, str(old), "-m", "scripted", "-c", "old follow-up")
    with sqlite3.connect(db) as con:
        assert "threads" not in {r[0] for r in con.execute(
            "select name from sqlite_master where type = 'table'")}
        rows = con.execute("select conversation_id, datetime_utc, duration_ms, input_tokens, "
                           "output_tokens from responses order by datetime_utc").fetchall()
    [before] = imported_ids(aish("aish", "--import-session", str(db), "--from", "llm"))
    doc = saved(aish, before)
    assert said(doc) == [("user", "old question"), ("assistant", "answer 1"),
                         ("user", "old follow-up"), ("assistant", "answer 2")]
    expected = []
    for _, started, duration, *_ in rows:
        expected += [_utc(started), _utc(started) + duration / 1000]
    assert [m["time"] for m in doc["messages"]] == pytest.approx(expected, abs=1e-6)
    assert doc["session"]["origin"]["source_id"] == rows[0][0]
    assert [m["usage"]["completion_tokens"] for m in doc["messages"]
            if m["role"] == "assistant"] == [r[4] for r in rows]

    # The current llm continues the same conversation in the upgraded database: it is one
    # conversation still, its older exchanges timed from the rows the older llm wrote.
    _run(env, str(BIN / "llm"), "-m", "scripted", "-c", "new follow-up")
    proc = aish("aish", "--import-session", str(db), "--from", "llm")
    [after] = imported_ids(proc)
    assert after != before and f"imported as {before}".encode() in proc.stderr
    grown = saved(aish, after)
    assert said(grown) == said(doc) + [("user", "new follow-up"), ("assistant", "answer 3")]
    assert [m["time"] for m in grown["messages"][:4]] == pytest.approx(expected, abs=1e-6)
    assert grown["messages"][4]["time"] > expected[-1]


# -- shell_gpt -----------------------------------------------------------------------------------

def test_shell_gpt_chats(aish, tool_env, pytestconfig, tmp_path):
    sgpt = tool_venv(pytestconfig.cache.mkdir("aish-import-tools"), "sgpt") / "sgpt"
    chats = tmp_path / "chat_cache"
    env = {**tool_env, "CHAT_CACHE_PATH": str(chats), "DEFAULT_MODEL": "scripted-model"}
    _run(env, str(sgpt), "--chat", "rust", "what is borrowing?")
    _run(env, str(sgpt), "--chat", "rust", "and moving?")
    _run(env, str(sgpt), "--chat", "go", "what is a goroutine?")

    ids = imported_ids(aish("aish", "--import-session", str(chats), "--from", "sgpt"))
    assert len(ids) == 2  # one per chat file, by name: go, rust
    go, rust = (saved(aish, sid) for sid in ids)
    stored = json.loads((chats / "rust").read_text())
    assert [m["role"] for m in stored][0] == "system"  # the role's prompt is not imported
    assert said(rust) == [(m["role"], m["content"]) for m in stored[1:]]
    assert said(rust) == [("user", "what is borrowing?"), ("assistant", "answer 1"),
                          ("user", "and moving?"), ("assistant", "answer 2")]
    # shell_gpt records no times: the chat file's last change stands for all of them.
    mtime = os.stat(chats / "rust").st_mtime
    assert {m["time"] for m in rust["messages"]} == {mtime}
    assert rust["session"]["title"] == "rust" and go["session"]["title"] == "go"
    assert said(go)[0] == ("user", "what is a goroutine?")
    # One chat's file imports that chat, here already imported.
    assert imported_ids(aish("aish", "--import-session", str(chats / "rust"),
                             "--from", "sgpt")) == [ids[1]]
    # Without FILE, shell_gpt's chat cache: $CHAT_CACHE_PATH, else its .sgptrc's.
    rc = Path(tool_env["HOME"]) / ".config" / "shell_gpt" / ".sgptrc"
    assert f"CHAT_CACHE_PATH={chats}" in rc.read_text()
    assert imported_ids(aish("aish", "--import-session", "--from", "sgpt")) == ids


# -- gptme ---------------------------------------------------------------------------------------

def test_gptme_conversation_log(aish, tool_env, pytestconfig):
    gptme = tool_venv(pytestconfig.cache.mkdir("aish-import-tools"), "gptme") / "gptme"
    _run(tool_env, str(gptme), "--non-interactive", "--no-confirm", "--model",
         "openai/gpt-4o", "--name", "monads", "what is a monad?", timeout=600)
    log = Path(tool_env["HOME"]) / ".local/share/gptme/logs/monads/conversation.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    kept = [m for m in lines if m["role"] in ("user", "assistant") and not m.get("hide")]
    assert any(m["role"] == "system" for m in lines)  # gptme's prompt: not imported

    [sid] = imported_ids(aish("aish", "--import-session", str(log.parent), "--from", "gptme"))
    doc = saved(aish, sid)
    assert said(doc) == [(m["role"], m["content"]) for m in kept]
    assert said(doc)[0] == ("user", "what is a monad?")
    assert [m["time"] for m in doc["messages"]] == pytest.approx(
        [datetime.fromisoformat(m["timestamp"]).timestamp() for m in kept], abs=1e-6)
    replies = [(m, k) for m, k in zip(doc["messages"], kept, strict=True)
               if m["role"] == "assistant"]
    assert replies and all(m["model"] == k["metadata"]["model"] == "openai/gpt-4o"
                           for m, k in replies)
    assert all(m["usage"]["completion_tokens"] == k["metadata"]["usage"]["output_tokens"]
               for m, k in replies)
    assert doc["session"]["title"] == "monads"
    # The logs folder imports every conversation in it: this one is there already.
    assert imported_ids(aish("aish", "--import-session", str(log.parent.parent),
                             "--from", "gptme")) == [sid]
    assert imported_ids(aish("aish", "--import-session", "--from", "gptme")) == [sid]


# -- aichat --------------------------------------------------------------------------------------

AICHAT_SESSION = """\
model: openai:gpt-4o
temperature: null
save_session: true
compressed_messages:
- role: user
  content: an early question
- role: assistant
  content: an early answer
messages:
- role: system
  content: You are a helpful assistant.
- role: user
  content:
  - type: text
    text: what is in this picture?
  - type: image_url
    image_url:
      url: data:image/png;base64,AAAA
- role: assistant
  content: |
    A cat.
    On a mat.
"""


def test_aichat_session_yaml(aish, tmp_path):
    sessions = tmp_path / "aichat-sessions"
    sessions.mkdir()
    (sessions / "pets.yaml").write_text(AICHAT_SESSION)
    (sessions / "notes.txt").write_text("not a session")
    [sid] = imported_ids(aish("aish", "--import-session", str(sessions), "--from", "aichat"))
    doc = saved(aish, sid)
    assert said(doc) == [("user", "an early question"), ("assistant", "an early answer"),
                         ("user", "what is in this picture?"),
                         ("assistant", "A cat.\nOn a mat.\n")]
    assert [m.get("model") for m in doc["messages"]] == [None, "openai:gpt-4o", None,
                                                         "openai:gpt-4o"]
    assert {m["time"] for m in doc["messages"]} == {os.stat(sessions / "pets.yaml").st_mtime}
    assert doc["session"]["title"] == "pets"


# -- Redis, encrypted ----------------------------------------------------------------------------

def test_import_into_encrypted_redis(aish, home, redis_url, tmp_path):  # noqa: F811
    import redis

    select_redis(home, redis_url)
    cfg = Path(home["HOME"]) / ".aish" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("type: redis,", "type: redis, encrypt: true,"))
    key = {"AISH_ENCRYPTION_KEY": "correct horse battery staple"}
    path = tmp_path / "secret.yaml"
    path.write_text("model: openai:gpt-4o\nmessages:\n- role: user\n  content: my launch codes"
                    "\n- role: assistant\n  content: kept safe\n")
    [sid] = imported_ids(aish("aish", "--import-session", str(path), "--from", "aichat", **key))
    client = redis.Redis.from_url(redis_url)
    stored = b"\n".join(b"\n".join(client.lrange(k, 0, -1)) if client.type(k) == b"list"
                        else b"\n".join(v for kv in client.hgetall(k).items() for v in kv)
                        if client.type(k) == b"hash" else b"" for k in client.keys("*"))
    assert client.exists(f"aish:{{{sid}}}:log")
    assert b"launch codes" not in stored and b"secret" not in stored  # nor the title
    doc = saved(lambda *a: aish(*a, **key), sid)
    assert said(doc) == [("user", "my launch codes"), ("assistant", "kept safe")]
    assert "title" not in doc["session"]
    again = imported_ids(aish("aish", "--import-session", str(path), "--from", "aichat", **key))
    assert again == [sid]
