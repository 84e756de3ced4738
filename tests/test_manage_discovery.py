"""Search across sessions and branching (fork) a session at a message."""

import json

from conftest import run
from manage_support import sessions_for

from aish.messages import ASSISTANT, USER, Message


def _seed(home):
    sessions = sessions_for(home)
    first = sessions.create("apollo", "leak-hunt", named=True, messages=[
        Message(USER, "App has a memory leak after 2 hours", "apollo", 1.7e9),
        Message(ASSISTANT, "Check the cache implementation.", "apollo", 1.7e9 + 1),
        Message(USER, "It was the cache!", "apollo", 1.7e9 + 2),
        Message(ASSISTANT, "Then bound it with an LRU.", "apollo", 1.7e9 + 3),
    ])
    sessions.create("hermes", "learn-rust", named=True, messages=[
        Message(USER, "Teach me Rust ownership", "hermes", 1.7e9),
        Message(ASSISTANT, "Ownership means one owner; no MEMORY LEAK by default.", "hermes",
                1.7e9 + 1),
    ])
    return first


def test_search_finds_messages_across_sessions(home):
    _seed(home)
    found = run(home, "aish", "--search-sessions", "memory leak", "--json")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert {(h["session"], h["message"]) for h in hits} == {("leak-hunt", 1), ("learn-rust", 2)}
    assert {h["branch"] for h in hits} == {"main"} and all("[" in h["highlighted"] for h in hits)
    only = json.loads(run(home, "aish", "--search-sessions", "memory leak", "--ai", "hermes-ai",
                          "--json").stdout)
    assert [h["session"] for h in only] == ["learn-rust"]
    text = run(home, "aish", "--search-sessions", "LRU")
    assert b"leak-hunt#4" in text.stdout
    assert run(home, "aish", "--search-sessions", "nothing like this").returncode == 1


def test_fork_keeps_the_first_messages_and_the_original(home):
    _seed(home)
    forked = run(home, "aish", "--fork-session", "leak-hunt", "--at", "2", "--output", "retry")
    assert forked.returncode == 0, forked.stderr
    assert forked.stdout.strip() == b"retry"
    sessions = sessions_for(home)
    assert [m.content for m in sessions.store.load("retry").messages] == [
        "App has a memory leak after 2 hours", "Check the cache implementation."]
    assert len(sessions.store.load("leak-hunt").messages) == 4  # the original is kept
    info = run(home, "aish", "--session-info", "retry")
    assert b"Origin: fork leak-hunt at message 2" in info.stdout
    bad = run(home, "aish", "--fork-session", "leak-hunt", "--at", "9")
    assert bad.returncode == 2 and b"between 1 and 4" in bad.stderr
