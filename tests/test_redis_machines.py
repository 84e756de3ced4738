"""Several machines on one Redis: two HOMEs (each with its own session dir and audit log) continue
each other's sessions through the real console scripts, and many processes write at once."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import replace
from pathlib import Path

from conftest import BIN, run

from aish.audit import AuditLog
from aish.config import load
from aish.messages import USER, Message
from aish.sessions import Sessions
from aish.store.redisstore import RedisStore


def machine(home: dict, tmp_path: Path, name: str, url: str, endpoint: str) -> dict:
    """A second HOME (or the first) configured for the shared Redis and the fake endpoint."""
    env = dict(home)
    env["HOME"] = str(tmp_path / name)
    aish_dir = Path(env["HOME"]) / ".aish"
    aish_dir.mkdir(parents=True)
    (aish_dir / "config.yaml").write_text(
        "providers:\n  openai: {max_retries: 0, timeout: 20}\n"
        "sessions:\n"
        f"  storage: {{type: redis, url: '{url}', path: '{aish_dir / 'local-sessions'}'}}\n")
    (aish_dir / "config.yaml").chmod(0o600)
    env["OPENAI_BASE_URL"] = endpoint
    env["OPENAI_API_KEY"] = "test-key"
    return env


def ok(env: dict, *args: str, input: str | None = None) -> str:
    result = run(env, *args, input=input, timeout=600)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def audit_actions(env: dict) -> list[tuple[str, str]]:
    path = Path(env["HOME"]) / ".aish" / "audit.log"
    return [(e["action"], e["session"]) for e in map(json.loads, path.read_text().splitlines())]


def test_two_machines_continue_each_other(home, tmp_path, redis_url, server):
    laptop = machine(home, tmp_path, "laptop", redis_url, server.base)
    desktop = machine(home, tmp_path, "desktop", redis_url, server.base)

    server.reply = "Nice to meet you, Bob."
    sid = ok(laptop, "apollo", "--session", "--get-id", input="Hello, my name is Bob").strip()
    assert sid.startswith("sess_")

    server.reply = "Your name is Bob."
    answer = ok(desktop, "apollo", "--session", sid, input="What is my name?")
    assert "Your name is Bob." in answer
    sent = [m["content"] for m in server.requests[-1]["messages"]]
    assert "Hello, my name is Bob" in sent and "Nice to meet you, Bob." in sent

    refused = run(desktop, "athena", "--session", sid, input="review", timeout=600)
    assert refused.returncode == 7 and b"--shared" in refused.stderr
    server.reply = "Looks fine."
    ok(desktop, "athena", "--session", sid, "--shared", input="Review the conversation")

    listed = json.loads(ok(laptop, "aish", "--list-sessions", "--json"))
    (row,) = [r for r in listed if r["id"] == sid]
    assert row["participants"] == ["apollo-ai", "athena-ai"] and row["messages"] == 6

    ok(laptop, "apollo", "--session", sid, "--end")
    assert sid not in ok(desktop, "aish", "--list-sessions")
    assert sid in ok(desktop, "aish", "--list-sessions", "--all")

    for env in (laptop, desktop):  # nothing went to either machine's disk
        local = Path(env["HOME"]) / ".aish" / "local-sessions"
        assert not local.exists() or not list(local.glob("*.jsonl"))
    assert ("create", sid) in audit_actions(laptop)
    assert ("end", sid) in audit_actions(laptop)
    assert ("continue", sid) in audit_actions(desktop)


def test_named_workspace_across_machines(home, tmp_path, redis_url, server):
    a = machine(home, tmp_path, "a", redis_url, server.base)
    b = machine(home, tmp_path, "b", redis_url, server.base)
    ok(a, "prometheus", "--session-id", "feature-x", input="Design auth")
    ok(b, "apollo", "--session-id", "feature-x", input="Implement it")
    ok(a, "athena", "--session-id", "feature-x", input="Review it")
    loaded = RedisStore(redis_url).load("feature-x")
    assert [m.content for m in loaded.messages if m.role == USER] == [
        "Design auth", "Implement it", "Review it"]
    assert loaded.meta["participants"] == ["prometheus", "apollo", "athena"]


def test_in_process_machines_interleave(redis_url, tmp_path):
    """Two configurations (different HOMEs and session dirs) on one Redis, without a model."""
    def sessions_for(name: str) -> Sessions:
        config = load({"HOME": str(tmp_path / name)})
        config = replace(config, storage_type="redis", redis_url=redis_url)
        return Sessions(RedisStore(redis_url), config,
                        audit=AuditLog(tmp_path / name / "audit.log"))

    one, two = sessions_for("one"), sessions_for("two")
    session = one.create("hermes", "learn-rust", named=True)
    for i in range(5):
        for who, sessions in (("one", one), ("two", two)):
            s = sessions.open("hermes", session.id)
            s.add(Message(USER, f"{who} {i}", "hermes", time.time()))
            s.save()
    contents = [m.content for m in two.store.load(session.id).messages]
    assert contents == [f"{w} {i}" for i in range(5) for w in ("one", "two")]
    assert one.summary(session.id).messages == 10


def test_many_processes_write_one_session(home, tmp_path, redis_url, server):
    """Concurrent `apollo --session-id` processes on two machines: every message and reply."""
    a = machine(home, tmp_path, "a", redis_url, server.base)
    b = machine(home, tmp_path, "b", redis_url, server.base)
    ok(a, "apollo", "--session-id", "busy", input="start")
    procs = []
    for n in range(5):
        env = a if n % 2 else b
        procs.append(subprocess.Popen(
            [str(BIN / "apollo"), "--session-id", "busy", f"message {n}"], env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()
    loaded = RedisStore(redis_url).load("busy")
    users = sorted(m.content for m in loaded.messages if m.role == USER)
    assert users == sorted(["start"] + [f"message {n}" for n in range(5)])
    assert len(loaded.messages) == 12
    assert len({m.id for m in loaded.messages}) == 12
