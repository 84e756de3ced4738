"""Save, export, restore, templates and merge, through the real `aish` console script."""

from __future__ import annotations

import json

from manage_support import (
    HOUR,
    audit_actions,
    conversation,
    log_path,
    make_session,
    ok,
    sessions_for,
    stderr,
    stdout,
)


def test_save_then_restore_round_trips(aish, home):
    make_session(home, "sess_abc123", pairs=4)
    saved = ok(aish("aish", "--save-session", "sess_abc123"))
    doc = json.loads(saved)
    assert doc["format"] == "aish-session" and doc["version"] == 1
    assert doc["session"]["id"] == "sess_abc123" and doc["session"]["owner"] == "apollo"
    assert [m["content"] for m in doc["messages"]][:2] == ["question 0 for apollo",
                                                            "answer 0 from apollo"]
    assert all(m["t"] == "msg" for m in doc["messages"]) and len(doc["messages"]) == 8

    log_path(home, "sess_abc123").unlink()
    restored = aish("aish", "--restore-session", input=saved)
    assert ok(restored).strip() == "sess_abc123"
    again = json.loads(ok(aish("aish", "--save-session", "sess_abc123")))
    assert again["messages"] == doc["messages"]
    assert again["session"] == doc["session"]
    assert ("save", "sess_abc123") in audit_actions(home)
    assert ("restore", "sess_abc123") in audit_actions(home)


def test_restore_from_a_path(aish, home, tmp_path):
    make_session(home, "keep-me")
    saved = tmp_path / "my_session.json"
    saved.write_bytes(aish("aish", "--save-session", "keep-me").stdout)
    log_path(home, "keep-me").unlink()
    assert ok(aish("aish", "--restore-session", str(saved))).strip() == "keep-me"
    assert "keep-me" in ok(aish("aish", "--list-sessions"))


def test_restore_never_overwrites_silently(aish, home):
    make_session(home, "taken", pairs=2)
    doc = json.loads(ok(aish("aish", "--save-session", "taken")))
    doc["messages"] = doc["messages"][:2]
    original = log_path(home, "taken").read_bytes()

    renamed = aish("aish", "--restore-session", input=json.dumps(doc))
    assert ok(renamed).strip() == "taken-restored"
    assert "already exists; restored as taken-restored" in stderr(renamed)
    assert log_path(home, "taken").read_bytes() == original
    second = aish("aish", "--restore-session", input=json.dumps(doc))
    assert ok(second).strip() == "taken-restored-2"

    refused = aish("aish", "--restore-session", "--as", "taken", input=json.dumps(doc))
    assert refused.returncode == 7 and "--force" in stderr(refused)
    assert log_path(home, "taken").read_bytes() == original

    forced = aish("aish", "--restore-session", "--as", "taken", "--force", "--json",
                  input=json.dumps(doc))
    report = json.loads(ok(forced))
    assert report[0]["replaced"] is True
    backup = report[0]["backup"]
    with open(backup, "rb") as f:
        assert f.read() == original  # the replaced content is kept, byte for byte
    assert len(json.loads(ok(aish("aish", "--save-session", "taken")))["messages"]) == 2
    # and the backup itself restores (a raw JSON-lines log)
    back = aish("aish", "--restore-session", backup, "--as", "taken-again")
    assert ok(back).strip() == "taken-again"
    assert len(json.loads(ok(aish("aish", "--save-session", "taken-again")))["messages"]) == 4


def test_restore_under_another_id(aish, home):
    make_session(home, "orig")
    saved = ok(aish("aish", "--save-session", "orig"))
    copied = aish("aish", "--restore-session", "--as", "copy", input=saved)
    assert ok(copied).strip() == "copy"
    assert "Restored session orig as copy (6 messages)" in stderr(copied)
    assert json.loads(ok(aish("aish", "--save-session", "copy")))["session"]["id"] == "copy"


def test_restore_the_guides_backup_path(aish, home, sessions_dir):
    """The guide restores `~/.aish/sessions/backup/sess_abc123.json`: the newest backup of it."""
    make_session(home, "sess_abc123", pairs=5)
    ok(aish("aish", "--prune-session", "sess_abc123", "--keep-recent", "1"))
    log_path(home, "sess_abc123").unlink()  # lost
    path = sessions_dir / "backup" / "sess_abc123.json"
    restored = aish("aish", "--restore-session", str(path))
    assert ok(restored).strip() == "sess_abc123"
    assert "newest backup" in stderr(restored)
    doc = json.loads(ok(aish("aish", "--save-session", "sess_abc123")))
    assert len(doc["messages"]) == 10  # the content from before the prune
    missing = aish("aish", "--restore-session", str(sessions_dir / "backup" / "nothing.json"))
    assert missing.returncode == 3 and "no such file or backup" in stderr(missing)


def test_export_sessions_and_restore_them_all(aish, home):
    make_session(home, "one", "apollo", pairs=2)
    make_session(home, "two", "athena", pairs=3)
    exported = aish("aish", "--export-sessions")
    doc = json.loads(ok(exported))
    assert doc["format"] == "aish-sessions"
    assert {s["session"]["id"]: len(s["messages"]) for s in doc["sessions"]} == {"one": 4,
                                                                                 "two": 6}
    assert {("export", "one"), ("export", "two")} <= set(audit_actions(home))
    for sid in ("one", "two"):
        log_path(home, sid).unlink()
    restored = aish("aish", "--restore-session", input=exported.stdout)
    assert ok(restored).split() == ["one", "two"]
    assert len(json.loads(ok(aish("aish", "--save-session", "two")))["messages"]) == 6


def test_export_of_no_sessions_is_valid_json(aish):
    doc = json.loads(ok(aish("aish", "--export-sessions")))
    assert doc["sessions"] == []


def test_export_sessions_refuses_damage_unless_skipped(aish, home):
    make_session(home, "good")
    make_session(home, "bad")
    with open(log_path(home, "bad"), "a") as f:
        f.write("{not json}\n")
    refused = aish("aish", "--export-sessions")
    assert refused.returncode == 1 and refused.stdout == b""
    assert "bad" in stderr(refused) and "--skip-corrupted" in stderr(refused)
    skipped = aish("aish", "--export-sessions", "--skip-corrupted")
    doc = json.loads(ok(skipped))
    by_id = {s["session"]["id"]: s for s in doc["sessions"]}
    assert len(by_id["bad"]["messages"]) == 6 and by_id["bad"]["skipped"]
    assert "skipped damaged content" in stderr(skipped)


def test_save_template_and_start_from_it(aish, home):
    make_session(home, "sess_review", "athena", pairs=2)
    saved = aish("aish", "--save-template", "code-review", "sess_review", "--json")
    report = json.loads(ok(saved))
    assert report["messages"] == 4
    assert ok(aish("aish", "--list-templates")).split() == ["code-review"]
    with open(report["location"]) as f:
        template = json.load(f)
    assert template["persona"].startswith("You are Athena")
    assert "api_key" not in json.dumps(template)
    # starting from it needs no model: --get-id without a message creates the session only
    started = aish("athena", "--session", "--template", "code-review", "--get-id")
    sid = ok(started).strip()
    info = json.loads(ok(aish("aish", "--session-info", sid, "--json")))
    assert info["messages"] == 4 and info["origin"] == {"template": "code-review"}
    missing = aish("aish", "--save-template", "x", "no-such-session")
    assert missing.returncode == 3


def test_merge_interleaves_by_time_and_keeps_originals(aish, home):
    now = 1_700_000_000.0
    sessions = sessions_for(home, now=now)
    sessions.create("apollo", "sess_123", messages=conversation("apollo", 3, now, 100, "A "))
    sessions.create("athena", "sess_456", messages=conversation("athena", 3, now + 50, 100, "B "))
    before = {sid: log_path(home, sid).read_bytes() for sid in ("sess_123", "sess_456")}

    merged = aish("aish", "--merge-sessions", "sess_123,sess_456", "--output", "sess_combined")
    assert "sess_combined" in ok(merged)
    doc = json.loads(ok(aish("aish", "--save-session", "sess_combined")))
    times = [m["time"] for m in doc["messages"]]
    assert times == sorted(times) and len(times) == 12
    assert [m["ai"] for m in doc["messages"]][:4] == ["apollo", "apollo", "athena", "athena"]
    assert doc["messages"][2]["content"] == "B question 0 for athena"  # attribution kept
    meta = doc["session"]
    assert meta["shared"] is True and meta["participants"] == ["apollo", "athena"]
    assert meta["origin"] == {"merged": "sess_123, sess_456"}
    for sid, data in before.items():
        assert log_path(home, sid).read_bytes() == data  # originals untouched
    info = ok(aish("aish", "--session-info", "sess_combined"))
    assert "Participants: apollo-ai, athena-ai" in info and "(shared)" in info
    assert ("merge", "sess_combined") in audit_actions(home)

    again = aish("aish", "--merge-sessions", "sess_123,sess_456", "--output", "sess_combined")
    assert again.returncode == 7  # never over an existing session
    assert aish("aish", "--merge-sessions", "sess_123", "--output", "x").returncode == 2
    assert aish("aish", "--merge-sessions", "sess_123,sess_456").returncode == 2
    assert aish("aish", "--merge-sessions", "sess_123,nope", "--output", "y").returncode == 3


def test_merge_with_replace_backs_up_and_replaces_the_originals(aish, home):
    make_session(home, "a1", "apollo", pairs=2)
    make_session(home, "b1", "hermes", pairs=2)
    data = {sid: log_path(home, sid).read_bytes() for sid in ("a1", "b1")}
    refused = aish("aish", "--merge-sessions", "a1,b1", "--output", "a1")
    assert refused.returncode == 7 and "--replace" in stderr(refused)
    merged = aish("aish", "--merge-sessions", "a1,b1", "--output", "a1", "--replace", "--json")
    report = json.loads(ok(merged))
    assert report["rewritten"] is True and report["removed"] == ["b1"]
    assert not log_path(home, "b1").exists()
    for sid in ("a1", "b1"):
        with open(report["backups"][sid], "rb") as f:
            assert f.read() == data[sid]
    assert len(json.loads(ok(aish("aish", "--save-session", "a1")))["messages"]) == 8


def test_merge_respects_the_active_session_limit(aish, home):
    make_session(home, "m1")
    make_session(home, "m2")
    full = aish("aish", "--merge-sessions", "m1,m2", "--output", "m3", AISH_MAX_SESSIONS="2")
    assert full.returncode == 6 and "too many active sessions" in stderr(full)
    assert not log_path(home, "m3").exists()


def test_restore_respects_the_active_session_limit(aish, home):
    make_session(home, "r1")
    make_session(home, "r2")
    saved = ok(aish("aish", "--save-session", "r1"))
    full = aish("aish", "--restore-session", "--as", "r3", input=saved, AISH_MAX_SESSIONS="2")
    assert full.returncode == 6 and "--cleanup-sessions" in stderr(full)
    assert not log_path(home, "r3").exists()
    # an old (expired) session restores fine: it does not count as active
    make_session(home, "old", age=5 * HOUR)
    old = ok(aish("aish", "--save-session", "old"))
    assert ok(aish("aish", "--restore-session", "--as", "old2", input=old,
                   AISH_MAX_SESSIONS="2")).strip() == "old2"


def test_restore_reads_stdin_only_when_given(aish):
    empty = aish("aish", "--restore-session", input="")
    assert empty.returncode == 1 and "empty" in stderr(empty)


def test_save_of_a_missing_session(aish):
    missing = aish("aish", "--save-session", "nope")
    assert missing.returncode == 3 and "not found" in stderr(missing)
    assert stdout(missing) == ""
    bad = aish("aish", "--save-session", "../etc")
    assert bad.returncode == 2 and "invalid session id" in stderr(bad)
