"""People on the file store: who wrote each record (`by`, the OS user), members and roles per
session, checked before every operation, and `--share-session` / `--unshare-session` / `--who`.

The real console scripts run against the scripted OpenAI-compatible server (`env` fixture). A
file store has one OS user per test run, so other people's grants are written into the log the
way a second person's aish would write them (a meta record), and the roles of the user running
the test are checked against them.
"""

from __future__ import annotations

import json
import os
import pwd
import time
from pathlib import Path

import pytest
from conftest import run
from manage_support import ok, sessions_for

from aish.errors import DENIED
from aish.header import fold_meta
from aish.people import (
    EDITOR,
    OWNER,
    VIEWER,
    Grant,
    first_members,
    grant_record,
    parse_expiry,
    role_of,
)

ME = pwd.getpwuid(os.geteuid()).pw_name


def log(env: dict, sid: str) -> list[dict]:
    path = Path(env["HOME"]) / ".aish" / "sessions" / f"{sid}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def hand_over(env: dict, sid: str, members: dict) -> None:
    """Write ``members`` as another person's aish would: a meta record appended to the log."""
    path = Path(env["HOME"]) / ".aish" / "sessions" / f"{sid}.jsonl"
    with open(path, "a") as f:
        f.write(json.dumps({"t": "meta", "time": time.time(), "members": members}) + "\n")


def denied(proc) -> str:
    assert proc.returncode == DENIED, (proc.returncode, proc.stderr.decode())
    text = proc.stderr.decode()
    assert "Traceback" not in text
    assert len(text.strip().splitlines()) == 1, text
    return text


def test_messages_refs_audit_and_exports_name_the_os_user(env):
    ok(run(env, "apollo", "--session-id", "p1", input="first"))
    ok(run(env, "aish", "--branch-session", "p1", "side"))
    records = log(env, "p1")
    authored = [r for r in records if r["t"] in ("msg", "ref")]
    assert {r["t"] for r in authored} == {"msg", "ref"}
    assert all(r["by"] == ME for r in authored)
    assert records[0]["members"][ME]["role"] == OWNER  # the creator owns it
    assert f"{ME} \u2192 apollo" in ok(run(env, "aish", "--history", "p1"))
    nodes = json.loads(ok(run(env, "aish", "--export-session", "p1", "--format", "json")))
    assert [n["by"] for n in nodes["nodes"]] == [ME, ME]
    assert f"## 1. {ME} \u2192 apollo" in ok(run(env, "aish", "--export-session", "p1",
                                                  "--format", "md"))
    saved = json.loads(ok(run(env, "aish", "--save-session", "p1")))
    assert {m["by"] for m in saved["messages"]} == {ME}
    audit = [json.loads(line) for line in
             (Path(env["HOME"]) / ".aish" / "audit.log").read_text().splitlines()]
    assert audit and all(entry["by"] == ME for entry in audit if entry["session"] == "p1")


def test_share_who_and_unshare(env):
    ok(run(env, "apollo", "--session-id", "p2", input="hello"))
    shared = run(env, "aish", "--share-session", "p2", "--with", "bob", "--role", "viewer",
                 "--expires", "7d")
    ok(shared)
    assert b"bob is now viewer of session p2 until" in shared.stderr
    grant = log(env, "p2")[-1]["member"]  # one person's grant, not every member's again
    assert grant["user"] == "bob" and grant["role"] == VIEWER and grant["by"] == ME
    assert 7 * 86400 - 60 < grant["expires"] - grant["time"] <= 7 * 86400
    who = json.loads(ok(run(env, "aish", "--who", "p2", "--json")))
    assert [(m["user"], m["role"]) for m in who["members"]] == [(ME, OWNER), ("bob", VIEWER)]
    assert who["messages_by_person"] == {ME: 2}
    assert who["last"]["by"] == ME and who["last"]["ai"] == "apollo"
    text = ok(run(env, "aish", "--who", "p2"))
    assert "bob: viewer, expires" in text and f"Messages: {ME} 2" in text
    info = ok(run(env, "aish", "--session-info", "p2"))
    assert f"Members: {ME} (owner), bob (viewer)" in info
    assert f"Messages by person: {ME} 2" in info
    ok(run(env, "aish", "--unshare-session", "p2", "--with", "bob"))
    revoked = log(env, "p2")[-1]["member"]
    assert revoked["user"] == "bob" and revoked["role"] is None
    who = json.loads(ok(run(env, "aish", "--who", "p2", "--json")))
    assert [m["user"] for m in who["members"]] == [ME]
    again = run(env, "aish", "--unshare-session", "p2", "--with", "bob")
    assert again.returncode == 2 and b"not a member" in again.stderr


@pytest.mark.parametrize("args", [
    ("--share-session", "p3", "--with", "bob"),  # no role
    ("--share-session", "p3", "--with", "bob", "--role", "owner"),
    ("--share-session", "p3", "--with", "b o b", "--role", "viewer"),
    ("--share-session", "p3", "--with", "bob", "--role", "viewer", "--expires", "soon"),
    ("--share-session", "p3", "--with", ME, "--role", "viewer"),  # the owner's own role
])
def test_bad_share_is_a_usage_error_and_writes_nothing(env, args):
    ok(run(env, "apollo", "--session-id", "p3", input="hello"))
    before = log(env, "p3")
    proc = run(env, "aish", *args)
    assert proc.returncode == 2, proc.stderr
    assert b"Traceback" not in proc.stderr
    assert log(env, "p3") == before


def test_a_viewer_reads_but_may_not_write_share_prune_or_rename(env):
    ok(run(env, "apollo", "--session-id", "p4", input="hello"))
    hand_over(env, "p4", {"alice": {"role": OWNER, "by": "alice", "time": 1.0},
                          ME: {"role": VIEWER, "by": "alice", "time": 1.0}})
    before = log(env, "p4")
    assert "hello" in ok(run(env, "aish", "--history", "p4"))
    ok(run(env, "aish", "--export-session", "p4", "--format", "md"))
    assert "needs editor, has viewer" in denied(run(env, "apollo", "--session", "p4",
                                                    input="may I?"))
    for args in (("--title-session", "p4", "mine"), ("--end-session", "p4"),
                 ("--branch-session", "p4", "x")):
        denied(run(env, "aish", *args))
    for args in (("--share-session", "p4", "--with", "eve", "--role", "editor"),
                 ("--prune-session", "p4", "--keep-recent", "0"),
                 ("--rename-session", "p4", "p4b")):
        assert "needs owner" in denied(run(env, "aish", *args))
    # Commands over many sessions leave out the ones this person may not remove.
    removed = json.loads(ok(run(env, "aish", "--remove-sessions", "--ai", "apollo", "--json")))
    assert removed["removed"] == []
    assert log(env, "p4") == before  # nothing written, nothing removed


def test_an_editor_talks_but_does_not_manage(env):
    ok(run(env, "apollo", "--session-id", "p5", input="hello"))
    hand_over(env, "p5", {"alice": {"role": OWNER, "by": "alice", "time": 1.0},
                          ME: {"role": EDITOR, "by": "alice", "time": 1.0}})
    ok(run(env, "apollo", "--session", "p5", input="my turn"))
    assert log(env, "p5")[-1]["by"] == ME
    assert "needs owner" in denied(run(env, "aish", "--unshare-session", "p5", "--with",
                                       "alice"))


def test_a_non_member_may_not_even_read(env):
    ok(run(env, "apollo", "--session-id", "p6", input="hello"))
    hand_over(env, "p6", {"alice": {"role": OWNER, "by": "alice", "time": 1.0}})
    text = denied(run(env, "aish", "--history", "p6"))
    assert "not a member" in text and "alice" in text


def test_an_expired_grant_stops_applying(env):
    ok(run(env, "apollo", "--session-id", "p7", input="hello"))
    past = time.time() - 60
    hand_over(env, "p7", {"alice": {"role": OWNER, "by": "alice", "time": 1.0},
                          ME: {"role": EDITOR, "by": "alice", "time": 1.0, "expires": past}})
    assert "grant expired" in denied(run(env, "apollo", "--session", "p7", input="late"))
    assert "grant expired" in denied(run(env, "aish", "--history", "p7"))


def test_a_session_stored_before_roles_is_open_to_everyone(home):
    """Old logs have no members and no `by`: nothing is refused, authors read as unknown."""
    sessions = sessions_for(home)
    sessions.create("apollo", "old1")
    path = Path(home["HOME"]) / ".aish" / "sessions" / "old1.jsonl"
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    del header["members"]
    msg = {"t": "msg", "role": "user", "content": "from before", "ai": "apollo",
           "time": time.time(), "id": "00000000000000aa"}
    path.write_text(json.dumps(header) + "\n" + json.dumps(msg) + "\n")
    (path.parent / ".old1.idx").unlink(missing_ok=True)
    history = ok(run(home, "aish", "--history", "old1"))
    assert "user \u2192 apollo" in history
    who = json.loads(ok(run(home, "aish", "--who", "old1", "--json")))
    assert who["restricted"] is False and who["messages_by_person"] == {"unknown": 1}
    # The first owner to share it claims it.
    ok(run(home, "aish", "--share-session", "old1", "--with", "bob", "--role", "viewer"))
    changes = [json.loads(line)["member"] for line in path.read_text().splitlines()[-2:]]
    assert [(c["user"], c["role"]) for c in changes] == [(ME, OWNER), ("bob", VIEWER)]


def test_roles_by_the_clock():
    """Expiry by the session core's clock: the same grant applies before and not after."""
    now = [1_000_000.0]
    meta = {"members": first_members("alice", now[0])}
    fold_meta(meta, grant_record(Grant("bob", EDITOR, "alice", now[0],
                                       now[0] + parse_expiry("2h"))))
    assert role_of(meta, "bob", now[0] + 7199) == EDITOR
    assert role_of(meta, "bob", now[0] + 7200) is None
    assert role_of(meta, "alice", now[0] + 10**6) == OWNER
    assert role_of(meta, "carol", now[0]) is None
    assert role_of({}, "anyone", now[0]) == OWNER
    # A hand-edited grant that does not decode is left out, never raised.
    assert role_of({"members": {"bob": {"role": "king"}, "x y": {}}}, "bob", 0) is None


def test_commands_over_every_session_leave_out_the_ones_not_ours_to_read(env):
    ok(run(env, "apollo", "--session-id", "mine1", input="my own words"))
    ok(run(env, "apollo", "--session-id", "theirs1", input="their words"))
    hand_over(env, "theirs1", {"alice": {"role": OWNER, "by": "alice", "time": 1.0}})
    exported = json.loads(ok(run(env, "aish", "--export-sessions")))
    assert [doc["session"]["id"] for doc in exported["sessions"]] == ["mine1"]
    found = ok(run(env, "aish", "--search-sessions", "words"))
    assert "mine1#1" in found and "theirs1" not in found
