"""The search index: exact hits on a seeded corpus, filters, catching up with what was written
without it, rebuilding, hostile queries, encryption, and `search` in session mode."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import pytest
from conftest import run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from manage_support import sessions_for

from aish import branches
from aish import config as config_module
from aish.errors import UsageError
from aish.messages import ASSISTANT, USER, Message
from aish.search_index import Filters, SearchIndex, index_path, search
from aish.sessions import Sessions
from aish.store import open_store

T0 = 1.7e9  # 2023-11-14
OLD = 1.6e9  # 2020-09-13
PASS = "correct horse battery staple"
EXAMPLES = int(os.environ.get("AISH_FUZZ_EXAMPLES", "200"))


def seed(home) -> Sessions:
    """Three sessions, two specialists sharing none, a branch, and an old session."""
    sessions = sessions_for(home)
    sessions.create("apollo", "leak-hunt", named=True, messages=[
        Message(USER, "App has a memory leak after 2 hours", "apollo", T0),
        Message(ASSISTANT, "Check the cache implementation.", "apollo", T0 + 1),
        Message(USER, "It was the cache!", "apollo", T0 + 2),
        Message(ASSISTANT, "Then bound it with an LRU.", "apollo", T0 + 3),
    ])
    branches.create(sessions, "leak-hunt", "alt", at=2)
    alt = sessions.open("apollo", "leak-hunt")
    alt.branch = "alt"
    alt.add(Message(USER, "Maybe a goroutine leak instead?", "apollo", T0 + 10))
    alt.add(Message(ASSISTANT, "Goroutines can leak too.", "apollo", T0 + 11))
    sessions.create("hermes", "learn-rust", named=True, messages=[
        Message(USER, "Teach me Rust ownership", "hermes", T0 + 100),
        Message(ASSISTANT, "Ownership means one owner; no MEMORY LEAK by default.", "hermes",
                T0 + 101),
    ])
    sessions.create("athena", "old-notes", named=True, messages=[
        Message(USER, "cache invalidation is hard", "athena", OLD),
        Message(ASSISTANT, "and naming things", "athena", OLD + 1),
    ])
    return sessions


def hits(home, *args: str) -> list[tuple]:
    found = run(home, "aish", "--search-sessions", *args, "--json")
    assert found.returncode in (0, 1), found.stderr
    assert b"Traceback" not in found.stderr
    return [(h["session"], h["branch"], h["message"]) for h in json.loads(found.stdout)]


def table(home) -> list[tuple]:
    config = config_module.load(home)
    index = SearchIndex(index_path(config))
    try:
        return index.table()
    finally:
        index.close()


def test_hits_are_exact_newest_first_with_branch_and_number(home):
    seed(home)
    assert hits(home, "leak") == [
        ("learn-rust", "main", 2), ("leak-hunt", "alt", 4), ("leak-hunt", "alt", 3),
        ("leak-hunt", "main", 1)]
    assert hits(home, '"memory leak"') == [("learn-rust", "main", 2), ("leak-hunt", "main", 1)]
    assert hits(home, '"leak memory"') == []
    assert hits(home, "cache implementation") == [("leak-hunt", "main", 2)]
    assert hits(home, "goroutine*") == [("leak-hunt", "alt", 4), ("leak-hunt", "alt", 3)]
    text = run(home, "aish", "--search-sessions", "LRU")
    assert text.returncode == 0
    line = text.stdout.decode().strip()
    assert line.startswith("leak-hunt#4") and " main " in line and "apollo-ai" in line
    assert "[LRU]" in line  # plain output marks the match
    assert run(home, "aish", "--search-sessions", "nothing like this").returncode == 1


def test_filters_branch_ai_since_limit(home):
    seed(home)
    assert hits(home, "leak", "--branch", "main") == [
        ("learn-rust", "main", 2), ("leak-hunt", "main", 1)]
    # On alt's path: its own messages and the ones it shares with main, numbered on that path.
    assert hits(home, "leak", "--branch", "alt") == [
        ("leak-hunt", "alt", 4), ("leak-hunt", "alt", 3), ("leak-hunt", "alt", 1)]
    assert hits(home, "cache", "--branch", "alt") == [("leak-hunt", "alt", 2)]
    assert hits(home, "leak", "--ai", "hermes-ai") == [("learn-rust", "main", 2)]
    assert hits(home, "cache") == [("leak-hunt", "main", 3), ("leak-hunt", "main", 2),
                                   ("old-notes", "main", 1)]
    assert hits(home, "cache", "--since", "2023-01-01") == [
        ("leak-hunt", "main", 3), ("leak-hunt", "main", 2)]
    assert hits(home, "cache", "--since", "9999d") == hits(home, "cache")
    assert hits(home, "leak", "--limit", "2") == [("learn-rust", "main", 2),
                                                   ("leak-hunt", "alt", 4)]
    bad = run(home, "aish", "--search-sessions", "x", "--since", "last tuesday")
    assert bad.returncode == 2 and b"--since" in bad.stderr and b"Traceback" not in bad.stderr


def test_the_index_is_kept_as_messages_are_appended_and_a_rebuild_equals_it(home):
    seed(home)
    incremental = table(home)  # written by the appends alone: nothing has searched yet
    assert len([r for r in incremental if r[1]]) == 10
    assert ("leak-hunt" in {r[0] for r in incremental}
            and {r[7] for r in incremental if r[0] == "leak-hunt"} == {"main", "alt"})
    done = run(home, "aish", "--reindex", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"sessions": 3, "messages": 10}
    assert table(home) == incremental


def test_catch_up_finds_what_was_written_without_the_index(home):
    cfg = Path(home["HOME"]) / ".aish" / "config.yaml"
    plain = cfg.read_text()
    cfg.write_text(plain + "search:\n  index: false\n")
    sessions = seed(home)
    assert not index_path(sessions.config).exists()
    assert hits(home, "leak", "--branch", "main") == [
        ("learn-rust", "main", 2), ("leak-hunt", "main", 1)]  # scanned
    cfg.write_text(plain)
    assert hits(home, "leak", "--branch", "main") == [
        ("learn-rust", "main", 2), ("leak-hunt", "main", 1)]
    caught_up = table(home)
    run(home, "aish", "--reindex")
    assert table(home) == caught_up

    # Appended by an older aish (the store alone, no index, no parent): never heard of.
    sessions_for(home).store.append("learn-rust", [
        {"t": "msg", "role": "user", "content": "what about a zebra leak", "ai": "hermes",
         "time": T0 + 200, "id": "older1"}])
    assert hits(home, "zebra") == [("learn-rust", "main", 3)]

    # Removed and rewritten sessions: their old rows go.
    assert run(home, "aish", "--remove-sessions", "--ai", "athena-ai").returncode == 0
    assert hits(home, "cache") == [("leak-hunt", "main", 3), ("leak-hunt", "main", 2)]
    assert run(home, "aish", "--prune-session", "learn-rust", "--keep-recent", "1"
               ).returncode == 0
    assert hits(home, "leak", "--ai", "hermes") == [("learn-rust", "main", 1)]
    assert [r for r in table(home) if r[0] == "old-notes"] == []


@pytest.mark.parametrize("damage", ["deleted", "garbage", "truncated"])
def test_a_missing_or_damaged_index_is_rebuilt_never_an_error(home, damage):
    sessions = seed(home)
    expected = hits(home, "leak")
    path = index_path(sessions.config)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if damage == "deleted":
        path.unlink()
    elif damage == "garbage":
        path.write_bytes(b"this is not a database\x00" * 500)
    else:
        path.write_bytes(path.read_bytes()[:1500])
    assert hits(home, "leak") == expected
    # Appends into a damaged index never fail: they are caught up by the next search.
    path.write_bytes(b"garbage" * 100)
    again = sessions_for(home).open("hermes", "learn-rust")
    again.add(Message(USER, "one more leak", "hermes", T0 + 300))
    assert again.summary.messages == 3
    assert hits(home, "leak", "--ai", "hermes") == [("learn-rust", "main", 3),
                                                     ("learn-rust", "main", 2)]


HOSTILE = ['"', '""', "AND", "OR NOT", "NEAR(a b)", "col:leak", "-leak", "^leak", "leak*",
           "*", "(leak", 'leak"', "'", "a AND (b OR", "{text}: leak", "leak + memory", "\\",
           "%", "_", "\x1b[31mleak"]


@pytest.mark.parametrize("query", HOSTILE)
def test_query_syntax_characters_never_raise(home, query):
    seed(home)
    # A leading space: argparse would take "-leak" for an option.
    result = run(home, "aish", "--search-sessions", " " + query)
    assert result.returncode in (0, 1, 2), result.stderr
    assert b"Traceback" not in result.stderr and b"fts5" not in result.stderr.lower()
    if re.findall(r"\w+", query) == ["leak"]:
        assert result.returncode == 0 and b"leak-hunt" in result.stdout
    assert b"\x1b" not in result.stdout


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=40))
def test_fuzzed_queries_are_hits_or_a_usage_error(home, text):
    sessions = sessions_for(home)
    if not sessions.exists("fuzz"):
        sessions.create("apollo", "fuzz", named=True, messages=[
            Message(USER, 'odd "quotes" AND (parens) * NEAR col:x', "apollo", T0)])
    try:
        found = search(sessions, text, Filters())
    except UsageError:
        return
    assert all(h.session == "fuzz" for h in found)


def _encrypted(home, monkeypatch, plaintext: bool) -> Sessions:
    monkeypatch.setenv("AISH_ENCRYPTION_KEY", PASS)
    cfg = Path(home["HOME"]) / ".aish" / "config.yaml"
    extra = "search:\n  index_plaintext: true\n" if plaintext else ""
    cfg.write_text(cfg.read_text() + "sessions:\n  storage:\n    encrypt: true\n" + extra)
    config = config_module.load({**home, "AISH_ENCRYPTION_KEY": PASS})
    sessions = Sessions(open_store(config), config)
    sessions.create("apollo", "secret", named=True, messages=[
        Message(USER, "the zebrafish protocol", "apollo", T0),
        Message(ASSISTANT, "keep zebrafish warm", "apollo", T0 + 1)])
    return sessions


def _index_bytes(config) -> bytes:
    path = index_path(config)
    return b"".join(Path(f"{path}{s}").read_bytes() for s in ("", "-wal", "-shm")
                    if Path(f"{path}{s}").exists())


def test_encrypted_sessions_leave_no_plaintext_in_the_index(home, monkeypatch):
    sessions = _encrypted(home, monkeypatch, plaintext=False)
    found = run(home, "aish", "--search-sessions", "zebrafish", "--json",
                AISH_ENCRYPTION_KEY=PASS)
    assert found.returncode == 0, found.stderr
    assert [(h["session"], h["message"]) for h in json.loads(found.stdout)] == [
        ("secret", 2), ("secret", 1)]
    assert found.stderr.decode().count("scanning every session") == 1
    assert b"zebrafish" not in _index_bytes(sessions.config)
    refused = run(home, "aish", "--reindex", AISH_ENCRYPTION_KEY=PASS)
    assert refused.returncode == 2 and b"index_plaintext" in refused.stderr


def test_encrypted_sessions_are_indexed_when_the_user_opts_in(home, monkeypatch):
    sessions = _encrypted(home, monkeypatch, plaintext=True)
    found = run(home, "aish", "--search-sessions", "zebrafish", "--json",
                AISH_ENCRYPTION_KEY=PASS)
    assert found.returncode == 0, found.stderr
    assert len(json.loads(found.stdout)) == 2 and b"scanning" not in found.stderr
    assert b"zebrafish" in _index_bytes(sessions.config)
    assert oct(index_path(sessions.config).stat().st_mode & 0o777) == "0o600"


def test_bad_search_config_is_one_clear_error(home):
    cfg = Path(home["HOME"]) / ".aish" / "config.yaml"
    cfg.write_text(cfg.read_text() + "search:\n  index_plaintext: maybe\n")
    bad = run(home, "aish", "--search-sessions", "x")
    assert bad.returncode != 0 and b"search.index_plaintext" in bad.stderr
    assert b"Traceback" not in bad.stderr


def test_search_in_session_mode_all_sessions_or_here(home):
    seed(home)
    script = run(home, "aish", "--session", "hermes", "--session-id", "learn-rust",
                 input='search leak\nsearch --here leak\nsearch "memory leak" --branch main\n'
                       "exit\n")
    assert script.returncode == 0, script.stderr.decode()
    out = script.stdout.decode()
    blocks = out.split("learn-rust#2")
    assert out.count("learn-rust#2") == 3, out
    assert "leak-hunt#4" in blocks[1] and "leak-hunt" not in blocks[2]
    assert "[leak]" in out and "[MEMORY LEAK]" in out


def test_an_unchanged_store_is_not_scanned_and_any_write_is_still_found(home, sessions_dir):
    sessions = seed(home)
    os.utime(sessions_dir, (T0, T0))  # the store last changed long ago
    assert hits(home, "zebra") == []
    index = SearchIndex(index_path(sessions.config))
    assert index.db.execute("SELECT value FROM info WHERE key='store'").fetchone() is not None
    index.close()
    sessions_for(home).store.append("old-notes", [
        {"t": "msg", "role": "user", "content": "zebra crossing", "ai": "athena",
         "time": T0 + 500, "id": "z1"}])
    assert hits(home, "zebra") == [("old-notes", "main", 3)]


def test_a_title_in_the_header_is_searched_too(home):
    sessions = seed(home)
    sessions.store.append("learn-rust", [{"t": "meta", "title": "Borrow checker basics"}])
    found = json.loads(run(home, "aish", "--search-sessions", "borrow", "--json").stdout)
    assert [(h["session"], h["message"], h["role"]) for h in found] == [
        ("learn-rust", 0, "title")]
    assert "[Borrow]" in found[0]["highlighted"]
    sessions.store.append("learn-rust", [{"t": "meta", "title": "Lifetimes"}])
    assert hits(home, "borrow") == [] and len(hits(home, "lifetimes")) == 1


def test_redis_writes_from_another_machine_are_found(home, tmp_path, redis_url):
    from manage_support import select_redis

    select_redis(home, redis_url)
    config = config_module.load(home)
    Sessions(open_store(config), config).create("apollo", "shared-1", named=True, messages=[
        Message(USER, "kafka consumer lag", "apollo", T0)])
    assert hits(home, "kafka") == [("shared-1", "main", 1)]
    # Another machine: its own HOME (its own index), the same server.
    other = {**home, "HOME": str(tmp_path / "other")}
    (tmp_path / "other" / ".aish").mkdir(parents=True)
    (tmp_path / "other" / ".aish" / "config.yaml").write_text(
        (Path(home["HOME"]) / ".aish" / "config.yaml").read_text())
    there = config_module.load(other)
    session = Sessions(open_store(there), there).open("apollo", "shared-1")
    session.add(Message(USER, "kafka rebalance storm", "apollo", T0 + 5))
    assert hits(home, "kafka") == [("shared-1", "main", 2), ("shared-1", "main", 1)]
    # One name per server and db, whatever HOME; another db or the file store, another name.
    assert index_path(config).name == index_path(there).name
    other_db = dataclasses.replace(config, redis_url=redis_url.rsplit("/", 1)[0] + "/3")
    assert index_path(other_db).name != index_path(config).name
    assert index_path(dataclasses.replace(config, storage_type="file")).name != \
        index_path(config).name


def test_on_a_terminal_matches_are_highlighted_and_content_is_sanitised(home, terms):
    from shell_support import Term, shell_env

    seed(home).create("apollo", "hostile", named=True, messages=[
        Message(USER, "clipboard \x1b]52;c;ZXZpbA==\x07 leak \x1b[2J here", "apollo", T0 + 999)])
    term = Term(shell_env(home), "--search-sessions", "leak")
    terms.append(term)
    assert term.wait() == 0
    raw = term.raw
    assert re.search(r"\x1b\[[0-9;]*7m(leak|MEMORY LEAK)", raw), raw
    assert "[leak]" not in term.text and "hostile#1" in term.text
    assert "\x1b]52" not in raw and "\x1b[2J" not in raw


def test_an_index_that_cannot_be_written_never_fails_an_append_or_a_search(home):
    sessions = seed(home)
    path = index_path(sessions.config)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.mkdir()  # not a file SQLite can open, and not one aish may remove
    session = sessions_for(home).open("hermes", "learn-rust")
    session.add(Message(USER, "a leak in \ud800 odd text", "hermes", T0 + 300))
    assert session.summary.messages == 3
    assert path.with_suffix(".stale").exists()
    found = run(home, "aish", "--search-sessions", "leak", "--ai", "hermes", "--json")
    assert found.returncode == 0 and b"scanning every session" in found.stderr
    assert [h["message"] for h in json.loads(found.stdout)] == [3, 2]
    path.rmdir()
    assert hits(home, "odd") == [("learn-rust", "main", 3)]  # rebuilt; the surrogate is no bar


def test_a_linked_index_folder_is_not_written_through(home, tmp_path):
    seed(home)
    folder = Path(home["HOME"]) / ".aish" / "search"
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    (tmp_path / "elsewhere").mkdir()
    folder.symlink_to(tmp_path / "elsewhere")
    found = run(home, "aish", "--search-sessions", "leak", "--json")
    assert found.returncode == 0 and len(json.loads(found.stdout)) == 4
    assert b"scanning every session" in found.stderr
    rebuilt = run(home, "aish", "--reindex")
    assert rebuilt.returncode == 5 and b"Traceback" not in rebuilt.stderr
    session = sessions_for(home).open("hermes", "learn-rust")
    session.add(Message(USER, "appended meanwhile", "hermes", T0 + 300))
    assert session.summary.messages == 3
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_withdrawing_plaintext_consent_removes_the_indexed_text(home, monkeypatch):
    sessions = _encrypted(home, monkeypatch, plaintext=True)
    assert run(home, "aish", "--search-sessions", "zebrafish",
               AISH_ENCRYPTION_KEY=PASS).returncode == 0
    assert b"zebrafish" in _index_bytes(sessions.config)
    cfg = Path(home["HOME"]) / ".aish" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("index_plaintext: true", "index_plaintext: false"))
    found = run(home, "aish", "--search-sessions", "zebrafish", "--json",
                AISH_ENCRYPTION_KEY=PASS)
    assert found.returncode == 0, found.stderr
    assert len(json.loads(found.stdout)) == 2
    assert b"zebrafish" not in _index_bytes(sessions.config)


def test_secrets_in_excerpts_are_redacted_unless_asked(home):
    secret = "sk-" + "abcdefghijklmnopqrstuvwx1234"
    sessions = sessions_for(home)
    sessions.create("apollo", "keys", named=True, messages=[
        Message(USER, f"deploy with key {secret} today", "apollo", T0),
        Message(ASSISTANT, "Keep the deploy key out of the repo.", "apollo", T0 + 1)])
    for args in ([], ["--json"]):
        found = run(home, "aish", "--search-sessions", "deploy", *args)
        assert found.returncode == 0, found.stderr
        assert secret.encode() not in found.stdout and b"[REDACTED:" in found.stdout
        assert b"Redacted 1 secret" in found.stderr
    shown = run(home, "aish", "--search-sessions", "deploy", "--no-redact")
    assert secret.encode() in shown.stdout and b"Redacted" not in shown.stderr
