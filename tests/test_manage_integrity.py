"""Validate, repair and export of damaged sessions: torn tails, garbled lines, empty files,
missing headers, missing fields, wrong order — through the real `aish` console script."""

from __future__ import annotations

import json

import pytest
from manage_support import audit_actions, backups, log_path, make_session, ok, stderr, stdout

from aish.management.integrity import inspect, repair
from aish.messages import Message


def _append(home, sid: str, text: str) -> None:
    with open(log_path(home, sid), "a", encoding="utf-8") as f:
        f.write(text)


def _validate(aish, sid: str) -> tuple[int, dict]:
    proc = aish("aish", "--validate-session", sid, "--json")
    assert b"Traceback" not in proc.stderr
    return proc.returncode, json.loads(stdout(proc))


def _kinds(report: dict) -> list[str]:
    return [p["kind"] for p in report["problems"]]


def test_a_clean_session_validates(aish, home):
    make_session(home, "clean")
    proc = aish("aish", "--validate-session", "clean")
    assert proc.returncode == 0 and "Session clean: OK (6 messages)" in stdout(proc)
    code, report = _validate(aish, "clean")
    assert code == 0 and report == {"id": "clean", "ok": True, "messages": 6, "problems": []}
    nothing = aish("aish", "--repair-session", "clean")
    assert "nothing to repair" in ok(nothing) and backups(home, "clean") == []


def test_validate_reports_every_problem(aish, home):
    make_session(home, "broken", pairs=2)
    late = json.dumps({"t": "msg", "role": "user", "content": "early", "ai": "apollo",
                       "time": 1000.0})
    _append(home, "broken",
            "{this is not json\n"  # line 6
            '{"t":"msg","role":"user","ai":"apollo","time":1e9}\n'  # line 7: no content
            f"{late}\n"  # line 8: older than the line before it
            '{"t":"msg","role":"wizard","content":"x","ai":"apollo","time":2e9}\n'  # line 9
            '{"t":"msg","role":"user","content":"cut of')  # line 10: torn tail
    code, report = _validate(aish, "broken")
    assert code == 1 and report["ok"] is False and report["messages"] == 5
    found = [(p["line"], p["kind"]) for p in report["problems"]]
    assert found == [(6, "bad record"), (7, "missing field"), (8, "out of order"),
                     (9, "bad record"), (10, "torn tail")]
    assert report["problems"][1]["detail"] == "content"
    text = aish("aish", "--validate-session", "broken")
    assert text.returncode == 1
    assert "Session broken: 5 problems" in stdout(text)
    assert "line 10: torn tail" in stdout(text) and "--repair-session" in stderr(text)


@pytest.mark.parametrize("damage, kind", [
    ('{"t":"msg","role":"user","content":"half', "torn tail"),
    ("\x00\x01garbled\xff line\n", "bad record"),
    ('[1, 2, 3]\n', "bad record"),
    ('{"t":"msg","role":"assistant","content":"x","time":5e9}\n', "missing field"),
    ("[" * 100_000 + "\n", "bad record"),
])
def test_repair_keeps_every_complete_message(aish, home, damage, kind):
    make_session(home, "dmg", pairs=3)
    original_messages = json.loads(ok(aish("aish", "--save-session", "dmg")))["messages"]
    _append(home, "dmg", damage)
    damaged_bytes = log_path(home, "dmg").read_bytes()
    code, report = _validate(aish, "dmg")
    assert code == 1 and kind in _kinds(report)

    repaired = aish("aish", "--repair-session", "dmg")
    assert "Repaired dmg: kept 6 messages, set aside 1 damaged line" in ok(repaired)
    assert _validate(aish, "dmg") == (0, {"id": "dmg", "ok": True, "messages": 6,
                                          "problems": []})
    after = json.loads(ok(aish("aish", "--save-session", "dmg")))["messages"]
    assert after == original_messages
    (backup,) = [p for p in backups(home, "dmg") if p.name.endswith("-repair.jsonl")]
    assert backup.read_bytes() == damaged_bytes  # what was set aside is kept
    assert ("repair", "dmg") in audit_actions(home)


def test_an_empty_file(aish, home, sessions_dir):
    sessions_dir.mkdir(parents=True)
    (sessions_dir / "empty.jsonl").write_bytes(b"")
    listed = aish("aish", "--list-sessions", "--all")
    assert listed.returncode == 0 and "empty" in stdout(listed)
    code, report = _validate(aish, "empty")
    assert code == 1 and _kinds(report) == ["missing meta"]
    export = aish("aish", "--export-session", "empty")
    assert export.returncode == 1 and "damaged" in stderr(export)
    ok(aish("aish", "--repair-session", "empty"))
    assert _validate(aish, "empty")[0] == 0
    info = json.loads(ok(aish("aish", "--session-info", "empty", "--json")))
    assert info["messages"] == 0


def test_a_missing_header_is_rebuilt_from_the_messages(aish, home):
    make_session(home, "headless", "hermes", pairs=2)
    path = log_path(home, "headless")
    path.write_text("\n".join(path.read_text().splitlines()[1:]) + "\n")
    code, report = _validate(aish, "headless")
    assert code == 1 and _kinds(report) == ["missing meta"]
    skipped = json.loads(ok(aish("aish", "--export-session", "headless", "--skip-corrupted")))
    assert skipped["session"]["id"] == "headless" and len(skipped["messages"]) == 4
    ok(aish("aish", "--repair-session", "headless"))
    assert _validate(aish, "headless")[0] == 0
    info = json.loads(ok(aish("aish", "--session-info", "headless", "--json")))
    assert info["ai"] == "hermes-ai" and info["messages"] == 4


def test_a_bad_header_is_reported_and_fixed(aish, home):
    make_session(home, "badmeta")
    path = log_path(home, "badmeta")
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    header.update(id="someone-else", context_window="ten", participants="apollo",
                  state="sleeping")
    del header["owner"]
    path.write_text("\n".join([json.dumps(header)] + lines[1:]) + "\n")
    code, report = _validate(aish, "badmeta")
    details = {p["detail"] for p in report["problems"]}
    assert code == 1 and set(_kinds(report)) == {"bad meta"}
    assert {"no owner", "context_window is not a whole number >= 0",
            "participants is not a list of names"} <= details
    # nothing is lost, so export still works
    assert len(json.loads(ok(aish("aish", "--export-session", "badmeta")))["messages"]) == 6
    ok(aish("aish", "--repair-session", "badmeta"))
    assert _validate(aish, "badmeta")[0] == 0
    meta = json.loads(ok(aish("aish", "--save-session", "badmeta")))["session"]
    assert meta["owner"] == "apollo" and meta["context_window"] == 10
    assert meta["id"] == "badmeta" and meta["state"] == "active"


def test_repair_puts_messages_back_in_time_order(aish, home):
    make_session(home, "order", pairs=2)
    _append(home, "order", json.dumps({"t": "msg", "role": "user", "content": "from the past",
                                       "ai": "apollo", "time": 1000.0}) + "\n")
    result = ok(aish("aish", "--repair-session", "order"))
    assert "time order" in result
    doc = json.loads(ok(aish("aish", "--save-session", "order")))
    assert doc["messages"][0]["content"] == "from the past"
    assert _validate(aish, "order")[0] == 0


def test_export_session_skip_corrupted_emits_every_valid_message(aish, home):
    make_session(home, "sess_abc123", pairs=3)
    path = log_path(home, "sess_abc123")
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:15] + "#garbled#"  # the first answer
    path.write_text("\n".join(lines) + "\n")
    refused = aish("aish", "--export-session", "sess_abc123")
    assert refused.returncode == 1 and refused.stdout == b""
    assert "line 3: bad record" in stderr(refused) and "--skip-corrupted" in stderr(refused)
    exported = aish("aish", "--export-session", "sess_abc123", "--skip-corrupted")
    doc = json.loads(ok(exported))
    assert len(doc["messages"]) == 5 and len(doc["skipped"]) == 1
    assert doc["skipped"][0].startswith("line 3: bad record (bad json")
    assert "answer 0 from apollo" not in [m["content"] for m in doc["messages"]]
    assert "skipped damaged content" in stderr(exported)
    # what was exported restores as a clean session
    restored = ok(aish("aish", "--restore-session", "--as", "clean-copy",
                       input=exported.stdout)).strip()
    assert _validate(aish, restored)[0] == 0
    # prune refuses a damaged session rather than dropping the damage silently
    pruned = aish("aish", "--prune-session", "sess_abc123", "--keep-recent", "1")
    assert pruned.returncode == 1 and "--repair-session" in stderr(pruned)


def test_validate_and_repair_of_a_missing_session(aish):
    for flag in ("--validate-session", "--repair-session"):
        proc = aish("aish", flag, "nope")
        assert proc.returncode == 3 and "not found" in stderr(proc)


def test_repair_keeps_messages_appended_meanwhile(home):
    """A repair computed from one read keeps what another process appended after that read."""
    from manage_support import sessions_for

    make_session(home, "busy", pairs=2)
    _append(home, "busy", "garbage\n")
    sessions = sessions_for(home)
    real_rewrite = sessions.rewrite

    def rewrite_after_an_append(sid, meta, messages, reason, ai=None, since=None, **more):
        sessions.store.append(sid, [Message("user", "appended meanwhile", "apollo",
                                            2e9).to_record()])
        return real_rewrite(sid, meta, messages, reason, ai=ai, since=since, **more)

    sessions.rewrite = rewrite_after_an_append
    result = repair(sessions, "busy")
    assert result.kept == 4 and result.backup
    after = inspect(sessions, "busy")
    assert not after.problems
    assert [m.content for m in after.messages][-1] == "appended meanwhile"
