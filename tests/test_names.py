"""Names and titles of sessions through the real program: ``--rename-session`` keeps every
reference working (templates, merge origins, backups, audit, checkouts, completion, Redis keys)
and the old id keeps leading to the session; ``--title-session`` and automatic titles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run

from aish.audit import AuditLog
from aish.commands.context import Context
from aish.output import Output
from aish.shell.completion import ContextVocabulary
from aish.store.filestore import FileStore
from aish.store.redisstore import RedisStore
from aish.titles import AUTO_PROMPT, MAX_AUTO_TITLE, MAX_TITLE


def ok(env, *args, input=None, **extra_env):
    result = run(env, *args, input=input, **extra_env)
    assert result.returncode == 0, result.stderr.decode()
    return result


def fails(env, code, *args, input=None, **extra_env) -> str:
    result = run(env, *args, input=input, **extra_env)
    assert result.returncode == code, (result.returncode, result.stderr.decode())
    line = result.stderr.decode().strip()
    assert "Traceback" not in line and len(line.splitlines()) == 1, line
    return line


def say(env, sid, text, *flags):
    return ok(env, "apollo", "--session-id", sid, *flags, input=text)


def info(env, sid) -> dict:
    return json.loads(ok(env, "aish", "--session-info", sid, "--json").stdout)


def listing(env) -> dict[str, dict]:
    rows = json.loads(ok(env, "aish", "--list-sessions", "--all", "--json").stdout)
    return {row["id"]: row for row in rows}


def titling(body: dict) -> bool:
    return body["messages"][0]["content"] == AUTO_PROMPT


# -- rename -----------------------------------------------------------------------------------


def test_rename_keeps_every_reference(env, server, sessions_dir):
    say(env, "s1", "first question")
    say(env, "s1", "second question")
    say(env, "s2", "other session")
    ok(env, "aish", "--save-template", "tpl", "s1")
    ok(env, "aish", "--merge-sessions", "s1,s2", "--output", "both")
    ok(env, "aish", "--prune-session", "s1", "--keep-recent", "1")  # keeps a backup
    ok(env, "aish", "--branch-session", "s1", "alt", "--at", "2")
    ok(env, "aish", "--checkout", "s1", "alt")

    result = ok(env, "aish", "--rename-session", "s1", "notes")
    assert "notes" in result.stderr.decode()
    rows = listing(env)
    assert "notes" in rows and "s1" not in rows

    # The old id leads to the session, with a one-line note.
    result = ok(env, "aish", "--session-info", "s1", "--json")
    assert json.loads(result.stdout)["id"] == "notes"
    assert result.stderr.decode().strip() == "session s1 was renamed notes"
    assert info(env, "notes")["renamed_from"] == "s1"
    # Talking under the old id continues the renamed session (on the checked-out branch).
    server.reply = lambda body: "ok: " + body["messages"][-1]["content"]
    say(env, "s1", "third question")
    assert not (sessions_dir / "s1.jsonl").exists()
    branches = {r["name"]: r for r in json.loads(
        ok(env, "aish", "--list-branches", "notes", "--json").stdout)}
    assert branches["alt"]["current"] and branches["alt"]["messages"] == 4

    # The merge names where it came from under the current ids.
    assert info(env, "both")["origin"]["merged"] == "s1 (now notes), s2"
    assert "Origin: merged s1 (now notes), s2" in ok(
        env, "aish", "--session-info", "both").stdout.decode()
    # The template made from it still starts sessions.
    say(env, "from-tpl", "hello", "--template", "tpl")
    assert info(env, "from-tpl")["messages"] == 6
    # The backup moved with it and restores.
    [backup] = sorted((sessions_dir / "backup").glob("notes-*-prune.jsonl"))
    assert not list((sessions_dir / "backup").glob("s1-*"))
    ok(env, "aish", "--restore-session", str(backup), "--as", "restored")
    assert info(env, "restored")["messages"] == 4  # before the prune: 2 exchanges

    # The audit log: the rename links the ids; entries written before it name the old one.
    audit = Path(env["HOME"]) / ".aish" / "audit.log"
    entries = [json.loads(line) for line in audit.read_text().splitlines()]
    assert {"action": "rename", "session": "notes", "from": "s1"}.items() <= [
        e for e in entries if e["action"] == "rename"][0].items()
    ctx = Context(environ=dict(env), out=Output())
    assert ctx.sessions.former_ids("notes") == ["s1"]
    actions = [e["action"] for e in ctx.sessions.audit_entries("notes")]
    assert actions[0] == "create" and "template" in actions and "rename" in actions
    assert [e["session"] for e in AuditLog(audit).entries({"s1"})][0] == "s1"
    # Tab completion offers the new id, not the old one.
    names = ContextVocabulary(ctx).sessions()
    assert "notes" in names and "s1" not in names


def test_rename_refuses_bad_input_and_changes_nothing(env, sessions_dir):
    say(env, "a", "q")
    say(env, "b", "q")
    before = {p.name: p.read_bytes() for p in sessions_dir.glob("*.jsonl")}
    assert "already exists" in fails(env, 5, "aish", "--rename-session", "a", "b")
    assert "not found" in fails(env, 3, "aish", "--rename-session", "nope", "c")
    assert "invalid new session id" in fails(env, 2, "aish", "--rename-session", "a", "../x")
    assert "invalid session id" in fails(env, 2, "aish", "--rename-session", "a/b", "c")
    assert "already has the id" in fails(env, 2, "aish", "--rename-session", "a", "a")
    fails(env, 2, "aish", "--rename-session", "a")
    assert {p.name: p.read_bytes() for p in sessions_dir.glob("*.jsonl")} == before
    assert not (sessions_dir / "aliases.json").exists()


def test_redis_rename_moves_every_key_atomically(redis_url):
    import redis

    from aish.messages import Message

    store = RedisStore(redis_url, timeout_minutes=60)
    store.create({"id": "old", "owner": "apollo", "created": 1.0, "updated": 1.0,
                  "participants": ["apollo"]},
                 [Message("user", "q", "apollo", 2.0), Message("assistant", "a", "apollo", 3.0)])
    store.backup("old", "prune")
    client = redis.Redis.from_url(redis_url)
    before = sorted(k.decode() for k in client.keys("aish:{old}:*"))
    store.rename("old", "new")
    after = sorted(k.decode() for k in client.keys("aish:{new}:*"))
    assert client.keys("aish:{old}:*") == []
    assert after == [k.replace("{old}", "{new}") for k in before]  # the hash tag follows
    assert all(client.pttl(k) > 0 for k in after)  # expiry kept
    assert client.hgetall("aish:aliases") == {b"old": b"new"}
    assert [m.content for m in store.load("new").messages] == ["q", "a"]
    assert store.summary("new").meta["renamed_from"] == "old"
    client.close()


# -- titles -----------------------------------------------------------------------------------


def test_title_set_clear_and_shown(env):
    say(env, "t", "q")
    hostile = "Rust\x1b]52;c;aGk=\x07 lifetimes\nand borrows " + "x" * 200
    ok(env, "aish", "--title-session", "t", hostile)
    title = info(env, "t")["title"]
    assert title.startswith("Rust␛ lifetimes and borrows x") and len(title) == MAX_TITLE
    assert "\n" not in title and "\x1b" not in title
    assert info(env, "t")["title_by"] == "user"
    assert listing(env)["t"]["title"] == title
    text = ok(env, "aish", "--list-sessions").stdout.decode()
    assert "TITLE" in text and title in text
    assert f"Title: {title}" in ok(env, "aish", "--session-info", "t").stdout.decode()
    ok(env, "aish", "--title-session", "t", "")
    assert info(env, "t")["title"] is None
    assert "TITLE" not in ok(env, "aish", "--list-sessions").stdout.decode()
    assert "not found" in fails(env, 3, "aish", "--title-session", "nope", "x")


def test_auto_title_after_the_first_exchange(env, server):
    server.reply = lambda body: ('"Title: Greeting the user"\nextra words' if titling(body)
                                 else "Hello there")
    result = ok(env, "apollo", "--session-id", "auto", input="hi", AISH_AUTO_TITLE="true")
    assert result.stdout.decode() == "Hello there\n"  # the title is never printed
    assert result.stderr.decode() == ""
    assert len(server.requests) == 2 and titling(server.requests[1])
    assert server.requests[1]["max_tokens"] == 16
    assert info(env, "auto")["title"] == "Greeting the user"
    assert info(env, "auto")["title_by"] == "auto"
    # Only the first exchange asks.
    ok(env, "apollo", "--session-id", "auto", input="more", AISH_AUTO_TITLE="true")
    assert len(server.requests) == 3


def test_auto_title_is_cut_to_one_short_line(env, server):
    server.reply = lambda body: ("word " * 40) if titling(body) else "answer"
    ok(env, "apollo", "--session-id", "long", input="hi", AISH_AUTO_TITLE="true")
    title = info(env, "long")["title"]
    assert len(title) <= MAX_AUTO_TITLE and title.startswith("word word")


def test_auto_title_never_replaces_a_persons(env, server):
    server.script = ["500"]  # the first message stays unanswered
    fails(env, 4, "apollo", "--session-id", "mine", input="hi")
    ok(env, "aish", "--title-session", "mine", "My own title")
    server.reply = lambda body: "Model title" if titling(body) else "answer"
    ok(env, "apollo", "--session-id", "mine", "--retry", AISH_AUTO_TITLE="true")
    assert not any(titling(r) for r in server.requests)
    assert info(env, "mine")["title"] == "My own title"


def test_auto_title_failure_is_silent(env, server):
    server.script = ["reply", "500"]  # the reply arrives, the title request fails
    result = ok(env, "apollo", "--session-id", "quiet", input="hi", AISH_AUTO_TITLE="true")
    assert result.stderr.decode() == ""
    assert info(env, "quiet")["title"] is None and info(env, "quiet")["messages"] == 2


def test_auto_title_off_by_config(env, server):
    ok(env, "apollo", "--session-id", "off", input="hi")  # the fixtures turn it off
    assert len(server.requests) == 1 and info(env, "off")["title"] is None


@pytest.mark.parametrize("title", ["", "  "])
def test_a_blank_title_clears(env, title):
    say(env, "b", "q")
    ok(env, "aish", "--title-session", "b", "set")
    ok(env, "aish", "--title-session", "b", title)
    assert info(env, "b")["title"] is None


def test_the_file_store_keeps_titles_in_its_summary(env, sessions_dir):
    say(env, "idx", "q")
    ok(env, "aish", "--title-session", "idx", "Indexed")
    index = json.loads((sessions_dir / ".idx.idx").read_text())
    assert index["summary"]["meta"]["title"] == "Indexed"
    assert FileStore(sessions_dir).summary("idx").header.title == "Indexed"


def test_redis_keeps_titles_in_the_summary_hash(redis_url, env):
    import redis
    from manage_support import select_redis

    select_redis(env, redis_url)
    say(env, "rt", "q")
    ok(env, "aish", "--title-session", "rt", "In the hash")
    client = redis.Redis.from_url(redis_url)
    assert json.loads(client.hget("aish:{rt}:meta", "m:title")) == "In the hash"
    client.close()
    assert listing(env)["rt"]["title"] == "In the hash"


def test_the_shell_toolbar_shows_the_title():
    from aish.shell.toolbar import TITLE_WIDTH, plain, session_toolbar

    shown = plain(session_toolbar("s", 1, 10, "apollo", "m", title="Rust lifetimes"))
    assert shown.startswith(" session s │ Rust lifetimes │ window 1/10")
    long = plain(session_toolbar("s", 1, 10, "apollo", "m", title="y" * 100))
    assert "y" * (TITLE_WIDTH - 1) + "…" in long and "y" * TITLE_WIDTH not in long
    assert "│  │" not in plain(session_toolbar("s", 1, 10, "apollo", "m"))


def test_no_auto_title_when_sessions_are_encrypted(env, server):
    # The title is plain metadata: drawn from encrypted messages it would give them away.
    cfg = Path(env["HOME"]) / ".aish" / "config.yaml"
    cfg.write_text(cfg.read_text() + "sessions:\n  storage:\n    encrypt: true\n")
    server.reply = lambda body: "Secret plans" if titling(body) else "answer"
    key = {"AISH_ENCRYPTION_KEY": "correct horse battery staple"}
    ok(env, "apollo", "--session-id", "enc", input="my secret plans", AISH_AUTO_TITLE="true",
       **key)
    assert len(server.requests) == 1 and not titling(server.requests[0])
    shown = json.loads(ok(env, "aish", "--session-info", "enc", "--json", **key).stdout)
    assert shown["title"] is None and shown["messages"] == 2
