"""Expiry, cleanup, removal by specialist, pruning and the active-session limit."""

from __future__ import annotations

import json

import pytest
from manage_support import (
    HOUR,
    audit_actions,
    backups,
    conversation,
    log_path,
    make_session,
    ok,
    sessions_for,
    stderr,
    stdout,
)

from aish.errors import LimitError
from aish.management.durations import parse_duration
from aish.management.hygiene import cleanup

DAY = 24 * HOUR


# -- expiry, with an injectable clock -----------------------------------------------------------

def test_expiry_follows_last_activity_and_the_timeout(home):
    t0 = 1_700_000_000.0
    clock = {"now": t0}
    sessions = sessions_for(home)
    sessions.now = lambda: clock["now"]
    sessions.create("apollo", "idle", messages=conversation("apollo", 1, t0))
    summary = sessions.summary("idle")
    assert sessions.state(summary) == "active"
    clock["now"] = t0 + 59 * 60
    assert sessions.state(sessions.summary("idle")) == "active"
    clock["now"] = t0 + 61 * 60 + 1
    assert sessions.state(sessions.summary("idle")) == "expired"
    assert sessions.listing() == []  # not listed by default
    assert [s.id for s, _ in sessions.listing(include_all=True)] == ["idle"]
    # naming it continues it: it becomes active again
    sessions.open("apollo", "idle")
    assert sessions.state(sessions.summary("idle")) == "active"


def test_cleanup_with_a_clock(home):
    t0 = 1_700_000_000.0
    sessions = sessions_for(home, now=t0)
    for sid in ("a", "b", "c"):
        sessions.create("apollo", sid, messages=conversation("apollo", 1, t0))
    sessions.end("b")
    later = sessions_for(home, now=t0 + 30 * 60)  # within the timeout: only the ended one
    assert [r.id for r in cleanup(later, dry_run=True)] == ["b"]
    much_later = sessions_for(home, now=t0 + 3 * DAY)
    assert sorted(r.id for r in cleanup(much_later, older_than=4 * DAY)) == []
    removed = cleanup(much_later, older_than=2 * DAY)
    assert sorted(r.id for r in removed) == ["a", "b", "c"]
    assert all(r.backup for r in removed)
    assert much_later.store.ids() == []


def test_cleanup_removes_empty_sessions_that_are_not_active_whatever_their_age(home):
    t0 = 1_700_000_000.0
    sessions = sessions_for(home, now=t0)
    sessions.create("apollo", "empty-ended")
    sessions.create("apollo", "empty-active")
    sessions.create("apollo", "talked", messages=conversation("apollo", 1, t0))
    for sid in ("empty-ended", "talked"):
        sessions.end(sid)
    removed = cleanup(sessions_for(home, now=t0 + 60), older_than=7 * DAY)
    assert [r.id for r in removed] == ["empty-ended"]
    assert all(r.backup for r in removed)
    assert sorted(sessions.store.ids()) == ["empty-active", "talked"]


# -- --cleanup-sessions through the console script ---------------------------------------------

def test_cleanup_removes_ended_and_expired_with_backups(aish, home):
    make_session(home, "fresh")
    make_session(home, "stale", age=2 * HOUR)
    make_session(home, "ended")
    ok(aish("aish", "--end-session", "ended"))
    data = {sid: log_path(home, sid).read_bytes() for sid in ("stale", "ended")}

    dry = aish("aish", "--cleanup-sessions", "--dry-run")
    out = ok(dry)
    assert "Would remove stale (apollo-ai, expired, 6 messages" in out
    assert "Would remove ended (apollo-ai, ended" in out
    assert "fresh" not in out and "nothing was changed" in stderr(dry)
    assert log_path(home, "stale").exists() and backups(home) == []

    done = aish("aish", "--cleanup-sessions")
    out = ok(done)
    assert "Removed stale" in out and "Removed ended" in out and "fresh" not in out
    assert "Removed 2 sessions; backups in" in stderr(done)
    assert not log_path(home, "stale").exists() and not log_path(home, "ended").exists()
    assert log_path(home, "fresh").exists()
    for sid, original in data.items():
        (backup,) = backups(home, sid)
        assert backup.read_bytes() == original
    assert ("cleanup", "stale") in audit_actions(home)
    # and a removed session comes back from its backup
    back = aish("aish", "--restore-session", str(backups(home, "stale")[0]))
    assert ok(back).strip() == "stale"
    # it is as old as it was, so it is expired again
    assert "Would remove stale" in ok(aish("aish", "--cleanup-sessions", "--dry-run"))


def test_cleanup_older_than_narrows_by_last_activity(aish, home):
    make_session(home, "week-old", age=8 * DAY)
    make_session(home, "day-old", age=1 * DAY)
    report = json.loads(ok(aish("aish", "--cleanup-sessions", "--older-than", "7d", "--json")))
    assert report["dry_run"] is False
    assert [r["id"] for r in report["removed"]] == ["week-old"]
    assert report["removed"][0]["backup"].endswith("-cleanup.jsonl")
    assert log_path(home, "day-old").exists()
    assert [r["id"] for r in json.loads(ok(aish(
        "aish", "--cleanup-sessions", "--older-than", "12h", "--dry-run", "--json")))["removed"]
    ] == ["day-old"]
    bad = aish("aish", "--cleanup-sessions", "--older-than", "7 days")
    assert bad.returncode == 2 and "expected a duration" in stderr(bad)


def test_cleanup_with_nothing_to_do(aish):
    proc = aish("aish", "--cleanup-sessions")
    assert ok(proc) == "" and "Nothing to clean up." in stderr(proc)


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("2w", 1209600),
    ("1d12h", 129600), ("1.5h", 5400), (" 7D ", 604800)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7", "d", "7x", "-1d", "7d garbage", "1e3d"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


# -- --remove-sessions --ai --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["apollo", "apollo-ai"])
def test_remove_sessions_for_an_ai(aish, home, name):
    make_session(home, "ap1", "apollo")
    make_session(home, "ap2", "apollo", age=3 * DAY)
    make_session(home, "ath", "athena")
    proc = aish("aish", "--remove-sessions", "--ai", name, "--dry-run")
    assert "Would remove ap1" in ok(proc) and "ath" not in stdout(proc)
    assert log_path(home, "ap1").exists()
    report = json.loads(ok(aish("aish", "--remove-sessions", "--ai", name, "--json")))
    assert sorted(r["id"] for r in report["removed"]) == ["ap1", "ap2"]
    assert not log_path(home, "ap1").exists() and not log_path(home, "ap2").exists()
    assert log_path(home, "ath").exists()
    assert len(backups(home, "ap1")) == 1 and len(backups(home, "ap2")) == 1
    assert ("remove", "ap1") in audit_actions(home)
    none = aish("aish", "--remove-sessions", "--ai", name)
    assert "No sessions owned by apollo-ai." in stderr(none)


def test_remove_sessions_needs_an_ai(aish):
    assert aish("aish", "--remove-sessions").returncode == 2
    assert aish("aish", "--remove-sessions", "--ai", "../x").returncode == 2


# -- --prune-session ---------------------------------------------------------------------------

def test_prune_keeps_the_recent_pairs_with_a_backup(aish, home):
    make_session(home, "sess_abc123", pairs=12)
    original = log_path(home, "sess_abc123").read_bytes()
    proc = aish("aish", "--prune-session", "sess_abc123", "--keep-recent", "5")
    assert "Pruned sess_abc123: kept 5 of 12 pairs (10 of 24 messages)" in ok(proc)
    doc = json.loads(ok(aish("aish", "--save-session", "sess_abc123")))
    assert [m["content"] for m in doc["messages"]][::2] == [
        f"question {i} for apollo" for i in range(7, 12)]
    (backup,) = backups(home, "sess_abc123")
    assert backup.name.endswith("-prune.jsonl") and backup.read_bytes() == original
    assert ("prune", "sess_abc123") in audit_actions(home)
    info = ok(aish("aish", "--session-info", "sess_abc123"))
    assert "Messages: 10" in info and "Context used: 5/10" in info

    nothing = aish("aish", "--prune-session", "sess_abc123", "--keep-recent", "5", "--json")
    assert json.loads(ok(nothing))["backup"] is None
    assert len(backups(home, "sess_abc123")) == 1


def test_prune_arguments(aish, home):
    make_session(home, "p")
    assert aish("aish", "--prune-session", "p").returncode == 2
    assert aish("aish", "--prune-session", "p", "--keep-recent", "-1").returncode == 2
    assert aish("aish", "--prune-session", "nope", "--keep-recent", "1").returncode == 3
    everything = json.loads(ok(aish("aish", "--prune-session", "p", "--keep-recent", "0",
                                    "--json")))
    assert everything["kept_messages"] == 0 and everything["total_messages"] == 6


# -- the active-session limit ------------------------------------------------------------------

def test_the_active_session_limit(aish, home):
    limit = {"AISH_MAX_SESSIONS": "2"}
    first = ok(aish("apollo", "--session", "--get-id", **limit)).strip()
    ok(aish("athena", "--session", "--get-id", **limit))
    full = aish("apollo", "--session", "--get-id", **limit)
    assert full.returncode == 6
    message = stderr(full)
    assert "too many active sessions (2 of 2)" in message
    assert "--end-session" in message and "--cleanup-sessions" in message
    assert len(list(log_path(home, "x").parent.glob("*.jsonl"))) == 2  # nothing deleted
    ok(aish("aish", "--end-session", first, **limit))
    third = ok(aish("hermes", "--session", "--get-id", **limit)).strip()
    assert third.startswith("sess_")
    # continuing the ended one would make three active: refused until there is room
    again = aish("apollo", "--session", first, "--get-id", **limit)
    assert again.returncode == 6
    ok(aish("aish", "--cleanup-sessions", **limit))
    assert not log_path(home, first).exists()


def test_the_limit_in_process(home):
    sessions = sessions_for(home, AISH_MAX_SESSIONS="1")
    sessions.create("apollo", "only")
    with pytest.raises(LimitError):
        sessions.create("apollo", "another")
