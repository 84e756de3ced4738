"""`--session-stats` and `--session-info` in the README's formats, and what management commands
cost to start."""

from __future__ import annotations

import json
import subprocess
import sys

from manage_support import HOUR, conversation, make_session, ok, sessions_for, stderr

from aish.messages import Message


def test_session_stats_in_the_guides_format(aish, home):
    now = 1_700_000_000.0
    old = sessions_for(home, now=now - 5 * HOUR)
    old.create("athena", "expired-one", messages=conversation("athena", 2, now - 5 * HOUR))
    sessions = sessions_for(home, now=now)
    sessions.create("apollo", "big", messages=conversation("apollo", 12, now))  # 10/10 in window
    sessions.create("apollo", "small", messages=conversation("apollo", 4, now),
                    context_window=0)
    sessions.create("hermes", "ended", messages=conversation("hermes", 1, now))
    sessions.end("ended")
    # the clock of the real program is the real time: make these sessions recent
    for sid in ("big", "small"):
        sessions_for(home).store.append(sid, [Message("user", "now", "apollo", 2e9).to_record(),
                                              Message("assistant", "ok", "apollo",
                                                      2e9).to_record()])

    text = ok(aish("aish", "--session-stats")).splitlines()
    assert text[:4] == [
        "Active sessions: 2",
        "Total messages: 42",  # 4 + 26 + 10 + 2
        "Average context length: 4.5",  # (2 + 10 + 5 + 1) / 4 sessions: pairs in the window
        "Most active AI: apollo-ai (86%)",  # 18 of the 21 replies
    ]
    assert text[4] == "Stored sessions: 4 (2 active, 1 ended, 1 expired)"
    stats = json.loads(ok(aish("aish", "--session-stats", "--json")))
    assert stats["active_sessions"] == 2 and stats["total_messages"] == 42
    assert stats["average_context_length"] == 4.5
    assert stats["most_active_ai"] == {"ai": "apollo-ai", "replies": 18, "share": 86}
    assert stats["replies_by_ai"] == {"apollo-ai": 18, "athena-ai": 2, "hermes-ai": 1}
    assert stats["sessions"] == {"total": 4, "active": 2, "ended": 1, "expired": 1}


def test_session_stats_with_no_sessions(aish):
    assert ok(aish("aish", "--session-stats")).splitlines()[:4] == [
        "Active sessions: 0", "Total messages: 0", "Average context length: 0.0",
        "Most active AI: none"]


def test_large_numbers_have_thousands_separators(aish, home):
    make_session(home, "many", pairs=620)
    assert "Total messages: 1,240" in ok(aish("aish", "--session-stats"))


def test_session_info_in_the_guides_format(aish, home):
    make_session(home, "sess_abc123", pairs=15, age=2 * 60)
    lines = ok(aish("aish", "--session-info", "sess_abc123")).splitlines()
    assert lines[0] == "Session: sess_abc123"
    assert lines[1] == "AI: apollo-ai"
    assert any(line.startswith("Created: 20") for line in lines)
    assert "Messages: 30" in lines and "Context used: 10/10" in lines
    assert "Last activity: 2 minutes ago" in lines
    info = json.loads(ok(aish("aish", "--session-info", "sess_abc123", "--json")))
    assert info["id"] == "sess_abc123" and info["messages"] == 30
    assert info["context_used"] == 10 and info["context_window"] == 10
    assert info["state"] == "active" and info["created"].startswith("20")
    missing = aish("aish", "--session-info", "nope")
    assert missing.returncode == 3 and "not found" in stderr(missing)


def test_every_management_command_is_in_help(aish):
    text = ok(aish("aish", "--help"))
    for flag in ("--save-session", "--restore-session", "--export-sessions", "--export-session",
                 "--save-template", "--list-templates", "--merge-sessions", "--session-stats",
                 "--session-info", "--cleanup-sessions", "--remove-sessions", "--prune-session",
                 "--validate-session", "--repair-session"):
        assert flag in text, flag
    detail = ok(aish("aish", "--help", "restore-session"))
    assert "--skip-corrupted" in detail and "--force" in detail and "--as" in detail


def test_management_commands_load_no_model_or_terminal_libraries(home, tmp_path):
    make_session(home, "light")
    code = """
import sys
from aish.cli import main
for argv in (["--session-stats"], ["--session-info", "light"], ["--save-session", "light"],
             ["--validate-session", "light"], ["--export-sessions"],
             ["--cleanup-sessions", "--dry-run"], ["--prune-session", "light", "--keep-recent",
             "9"], ["--repair-session", "light"]):
    assert main(argv) == 0, argv
heavy = [m for m in ("openai", "llama_cpp", "prompt_toolkit", "rich.markdown", "rich")
         if m in sys.modules]
print("HEAVY=" + ",".join(heavy))
"""
    proc = subprocess.run([sys.executable, "-c", code], env=home, capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip().splitlines()[-1] == "HEAVY="
