"""`aish --sync --dir`: two devices and a shared folder, as a synced folder or a USB stick
carries it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from conftest import run
from sync_support import (
    all_contents,
    contents,
    diverge,
    logs,
    ok,
    say,
    sessions_of,
    snapshot,
    sync,
)


def home_of(env):
    return Path(env["HOME"]) / ".aish"


def test_round_trip_both_ways(laptop, desktop, shared):
    say(laptop, "s1", "one", "two")
    assert "4 messages" not in ok(sync(laptop, shared))
    out = ok(sync(desktop, shared))
    assert "created here" in out and "4 messages pulled" in out
    assert contents(desktop, "s1") == contents(laptop, "s1") == [
        "one", "answer to one", "two", "answer to two"]
    say(desktop, "s1", "three")
    ok(sync(desktop, shared))
    assert "2 messages pulled" in ok(sync(laptop, shared))
    assert contents(laptop, "s1") == contents(desktop, "s1")
    assert contents(laptop, "s1")[-2:] == ["three", "answer to three"]
    say(laptop, "s1", "four")
    report = json.loads(ok(sync(desktop, shared, "--dry-run", "--json")))
    assert report["dry_run"] is True and report["sessions"] == []
    ok(sync(laptop, shared))
    report = json.loads(ok(sync(desktop, shared, "--json")))
    assert [(s["id"], s["pulled"]) for s in report["sessions"]] == [("s1", 2)]
    # One writer per log: each device wrote only its own file.
    names = {p.stem for p in logs(shared, "s1")}
    ids = {json.loads((home_of(e) / "device.json").read_text())["id"] for e in (laptop, desktop)}
    assert names == ids


def test_device_identity_is_private_and_stable(laptop, shared):
    say(laptop, "s1", "one")
    ok(sync(laptop, shared))
    path = home_of(laptop) / "device.json"
    first = json.loads(path.read_text())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first["name"] and len(first["id"]) == 16
    ok(sync(laptop, shared))
    assert json.loads(path.read_text()) == first
    manifest = next((shared / "aish-sync" / "v1" / "_devices").glob("*.json"))
    assert json.loads(manifest.read_text())["name"] == "laptop"  # AISH_DEVICE_NAME


def test_a_second_run_does_nothing(laptop, desktop, shared):
    say(laptop, "s1", "one", "two")
    ok(sync(laptop, shared))
    ok(sync(desktop, shared))
    ok(sync(laptop, shared))
    before = snapshot(shared, home_of(laptop) / "sessions", home_of(desktop) / "sessions")
    for env in (laptop, desktop):
        assert "Up to date" in ok(sync(env, shared))
    assert snapshot(shared, home_of(laptop) / "sessions",
                    home_of(desktop) / "sessions") == before


def test_dry_run_writes_nothing(laptop, desktop, shared):
    say(laptop, "s1", "one")
    out = ok(sync(laptop, shared, "--dry-run"))
    assert "would be pushed" in out and "Dry run" in out
    assert not shared.exists()
    assert not (home_of(laptop) / "device.json").exists()
    ok(sync(laptop, shared))
    before = snapshot(shared, home_of(desktop))
    out = ok(sync(desktop, shared, "--dry-run"))
    assert "would be created here" in out and "2 messages would be pulled" in out
    assert snapshot(shared, home_of(desktop)) == before
    assert not sessions_of(desktop).exists("s1")


def _cut(path, keep_bytes):
    data = path.read_bytes()
    path.write_bytes(data[:keep_bytes])


def test_a_torn_copy_is_detected_and_resumed(laptop, desktop, shared):
    say(laptop, "s1", "one", "two", "three")
    ok(sync(laptop, shared))
    (log,) = logs(shared, "s1")
    lines = log.read_bytes().splitlines(keepends=True)
    # The copy stopped in the middle of the fourth record (the second question's answer).
    _cut(log, sum(map(len, lines[:3])) + len(lines[3]) // 2)
    out = ok(sync(desktop, shared))
    assert "torn last line after seq 3" in out
    assert all_contents(desktop, "s1") == {"one", "answer to one"}
    out = ok(sync(laptop, shared))  # the writer repairs its log
    assert "repaired" in out
    ok(sync(desktop, shared))
    assert contents(desktop, "s1") == contents(laptop, "s1")
    assert len(contents(desktop, "s1")) == 6
    before = snapshot(shared, home_of(desktop))
    assert "verified" in ok(run(desktop, "aish", "--sync", "--verify", "--dir", str(shared)))
    assert snapshot(shared, home_of(desktop)) == before  # --verify copies nothing


def test_dropped_last_records_are_detected_and_resent(laptop, desktop, shared):
    say(laptop, "s1", "one", "two")
    ok(sync(laptop, shared))
    (log,) = logs(shared, "s1")
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-3]))  # whole lines gone: only the manifest tells
    out = ok(sync(desktop, shared))
    assert "3 records missing after seq" in out
    assert "answer to two" not in all_contents(desktop, "s1")
    verify = run(desktop, "aish", "--sync", "--verify", "--dir", str(shared))
    assert verify.returncode == 1 and b"missing" in verify.stdout
    ok(sync(laptop, shared))
    ok(sync(desktop, shared))
    assert contents(desktop, "s1") == contents(laptop, "s1")
    assert verify_ok(desktop, shared)


def verify_ok(env, shared) -> bool:
    return run(env, "aish", "--sync", "--verify", "--dir", str(shared)).returncode == 0


def test_a_tampered_record_is_not_imported(laptop, desktop, shared):
    say(laptop, "s1", "one", "two")
    ok(sync(laptop, shared))
    (log,) = logs(shared, "s1")
    text = log.read_text()
    assert "answer to one" in text
    log.write_text(text.replace("answer to one", "answer to ONE"))
    verify = run(desktop, "aish", "--sync", "--verify", "--dir", str(shared))
    assert verify.returncode == 1
    assert verify.stdout.decode().count("\n") == 1 and "bad hash at seq 3" in verify.stdout.decode()
    out = ok(sync(desktop, shared))
    assert "laptop" in out and "bad hash at seq 3" in out
    # Neither the edited record nor anything after it was taken.
    assert all_contents(desktop, "s1") == {"one"}
    assert "broken chain: laptop" in ok(run(desktop, "aish", "--sync-status", "--dir",
                                            str(shared)))
    ok(sync(laptop, shared))  # the writer cuts its log back and writes the rest again
    ok(sync(desktop, shared))
    assert contents(desktop, "s1") == ["one", "answer to one", "two", "answer to two"]
    assert verify_ok(desktop, shared)


def test_divergence_keeps_both_paths_and_merges(laptop, desktop, shared):
    diverge(laptop, desktop, shared)
    out = ok(sync(desktop, shared))
    assert "diverged: main@laptop" in out
    assert contents(desktop, "s1") == ["base", "answer to base", "from desktop",
                                       "answer to from desktop"]
    assert contents(desktop, "s1", "main@laptop")[-2:] == ["from laptop",
                                                           "answer to from laptop"]
    status = ok(run(desktop, "aish", "--sync-status", "--dir", str(shared)))
    assert "diverged branches: main@laptop" in status
    history = ok(run(desktop, "aish", "--history", "s1", "--all"))
    assert "main@laptop" in history
    assert "main@laptop" in ok(run(desktop, "aish", "--list-branches", "s1"))
    # The user merges with the tree commands; the next syncs bring both devices together.
    ok(run(desktop, "aish", "--merge-branch", "s1", "main@laptop", "--mode", "pick",
           "--pick", "3..4", "--yes"))
    ok(sync(desktop, shared))
    assert "diverged" not in ok(run(desktop, "aish", "--sync-status", "--dir", str(shared)))
    out = ok(sync(laptop, shared))
    assert "moved: main" in out and "diverged" not in out
    assert contents(laptop, "s1") == contents(desktop, "s1")
    assert contents(laptop, "s1")[-4:] == ["from desktop", "answer to from desktop",
                                           "from laptop", "answer to from laptop"]
    for env in (laptop, desktop):
        assert "Up to date" in ok(sync(env, shared))


def test_deletions_and_renames_travel(laptop, desktop, shared):
    say(laptop, "gone", "bye", ai="hermes")
    say(laptop, "old", "hello")
    ok(sync(laptop, shared))
    ok(sync(desktop, shared))
    ok(run(laptop, "aish", "--rename-session", "old", "new"))
    ok(run(laptop, "aish", "--remove-sessions", "--ai", "hermes"))
    ok(sync(laptop, shared))
    out = ok(sync(desktop, shared))
    assert "removed" in out and "renamed to new" in out
    desk = sessions_of(desktop)
    assert not desk.exists("gone") and not desk.exists("old") and desk.exists("new")
    assert contents(desktop, "new") == ["hello", "answer to hello"]
    assert desk.resolve("old") == "new"
    # Neither comes back: not on the device that deleted and renamed, not here.
    for env in (laptop, desktop, laptop):
        ok(sync(env, shared))
    for env in (laptop, desktop):
        sessions = sessions_of(env)
        assert not sessions.exists("gone") and not sessions.exists("old")
        assert sessions.exists("new")
    assert "Up to date" in ok(sync(desktop, shared))
    # What the removed session left in the transport is gone from every device's log.
    assert all(p.read_bytes() == b"" for p in logs(shared, "gone"))
    assert len(logs(shared, "gone")) == 2


def test_device_branch_names_are_valid_branch_names():
    from aish.branches import check_branch
    from aish.errors import UsageError

    assert check_branch("main@laptop") == "main@laptop"
    for bad in ("main@", "@laptop", "main@lap@top", "main@lap.top"):
        with pytest.raises(UsageError):
            check_branch(bad)


def test_bad_transport_is_one_clear_line(laptop, tmp_path):
    afile = tmp_path / "file"
    afile.write_text("x")
    proc = run(laptop, "aish", "--sync", "--dir", str(afile))
    assert proc.returncode != 0 and b"Traceback" not in proc.stderr
    assert proc.stderr.decode().strip().count("\n") <= 1
    proc = run(laptop, "aish", "--sync")
    assert proc.returncode != 0 and b"--dir" in proc.stderr


def test_pruned_messages_stay_pruned(laptop, desktop, shared):
    say(laptop, "s1", "one", "two", "three")
    ok(sync(laptop, shared))
    ok(sync(desktop, shared))
    ok(run(laptop, "aish", "--prune-session", "s1", "--keep-recent", "1"))
    ok(sync(laptop, shared))
    out = ok(sync(desktop, shared))
    assert "4 messages dropped (pruned on another device)" in out
    assert contents(desktop, "s1") == ["three", "answer to three"]
    for env in (laptop, desktop, laptop):
        ok(sync(env, shared))
    for env in (laptop, desktop):
        assert contents(env, "s1") == ["three", "answer to three"]
        assert "Up to date" in ok(sync(env, shared))


def test_synced_sessions_validate(laptop, desktop, shared):
    diverge(laptop, desktop, shared)
    ok(sync(desktop, shared))
    for env in (laptop, desktop):
        ok(run(env, "aish", "--validate-session", "s1"))


def test_status_says_what_each_session_needs(laptop, desktop, shared):
    say(laptop, "s1", "one")
    ok(sync(laptop, shared))
    ok(sync(desktop, shared))
    say(laptop, "s2", "never synced")
    say(laptop, "s1", "two")
    before = snapshot(shared, home_of(laptop) / "sessions")
    status = ok(run(laptop, "aish", "--sync-status", "--dir", str(shared))).splitlines()
    assert snapshot(shared, home_of(laptop) / "sessions") == before
    rows = {line.split()[0]: line for line in status}
    assert "local only" in rows["s2"]
    assert "3 to push" in rows["s1"]  # two messages and where main now is
    assert any(line.startswith("last sync with") and "just now" in line for line in status)
    ok(sync(laptop, shared))
    status = ok(run(desktop, "aish", "--sync-status", "--dir", str(shared)))
    rows = {line.split()[0]: line for line in status.splitlines()}
    assert "2 to pull" in rows["s1"] and "2 to pull (new here)" in rows["s2"]
    ok(sync(desktop, shared))
    status = ok(run(desktop, "aish", "--sync-status", "--dir", str(shared), "--json"))
    assert json.loads(status[:status.rindex("}") + 1])["sessions"] == {"s1": "in sync",
                                                                       "s2": "in sync"}


def test_sync_does_not_revive_an_expired_session(laptop, desktop, shared):
    from manage_support import make_session

    make_session(laptop, "old", pairs=2, age=3 * 3600)  # the timeout is an hour
    say(laptop, "fresh", "hi")
    ok(sync(laptop, shared))
    ok(sync(desktop, shared))
    ok(sync(laptop, shared))
    for env in (laptop, desktop):
        listed = ok(run(env, "aish", "--list-sessions", "--all"))
        row = next(line for line in listed.splitlines() if line.startswith("old "))
        assert "expired" in row
        assert "old " not in ok(run(env, "aish", "--list-sessions"))


def test_hostile_records_in_the_transport_are_not_taken(laptop, desktop, shared):
    """A device log whose chain is sound but whose records are nonsense (a buggy or hostile
    writer) leaves the store sound."""
    from aish.management.sync_chain import Chain, genesis, manifest_bytes

    say(desktop, "s1", "mine")
    device = "0123456789abcdef"
    chain = Chain(device, head=genesis("s1", device))
    bad = [{"t": "msg", "id": "../x", "role": "user", "content": "a", "ai": "x", "time": 1},
           {"t": "msg", "id": "abc", "role": "god", "content": "a", "ai": "x", "time": 1},
           {"t": "msg", "id": "abd", "role": "user", "content": 5, "ai": "x", "time": 1},
           {"t": "head", "name": "../../etc", "to": "abc"},
           {"t": "head", "name": "main", "to": ""}]
    folder = shared / "aish-sync" / "v1" / "s1"
    folder.mkdir(parents=True)
    (folder / f"{device}.jsonl").write_bytes(b"".join(chain.line(r) for r in bad))
    # Neither a pipe nor a link to a device makes the sync hang.
    os.mkfifo(folder / "fedcba9876543210.jsonl")
    manifests = shared / "aish-sync" / "v1" / "_devices"
    manifests.mkdir()
    (manifests / "fedcba9876543210.json").symlink_to("/dev/zero")
    (manifests / f"{device}.json").write_bytes(manifest_bytes(
        {"id": device, "name": "odd", "key": None, "logs": {"s1": len(bad)}}))
    ok(sync(desktop, shared))
    assert contents(desktop, "s1") == ["mine", "answer to mine"]
    ok(run(desktop, "aish", "--validate-session", "s1"))


def test_other_branches_and_metadata_travel(laptop, desktop, shared):
    say(laptop, "s1", "one", "two")
    ok(sync(laptop, shared))
    ok(sync(desktop, shared))
    ok(run(laptop, "aish", "--branch-session", "s1", "idea", "--at", "2"))
    say(laptop, "s1", "what if", branch="idea")
    ok(run(laptop, "aish", "--title-session", "s1", "Rust notes"))
    ok(run(desktop, "aish", "--end-session", "s1"))
    ok(sync(laptop, shared))
    out = ok(sync(desktop, shared))
    assert "updated: title" in out
    assert contents(desktop, "s1", "idea") == ["one", "answer to one", "what if",
                                               "answer to what if"]
    ok(sync(laptop, shared))
    for env in (laptop, desktop):  # each side's change kept, neither undone by the other's
        header = sessions_of(env).summary("s1").header
        assert header.title == "Rust notes"
        assert header.state.value == "ended"
        assert contents(env, "s1") == ["one", "answer to one", "two", "answer to two"]
    assert "Up to date" in ok(sync(desktop, shared))


def test_a_second_sync_on_one_device_waits_for_the_first(laptop, shared):
    """Two syncs at once would both extend this device's logs from the same record; the
    second waits for the first's lock (seen blocked in /proc/locks) and then finds it done."""
    import subprocess
    import time

    from conftest import BIN

    from aish.management.sync_state import one_sync_at_a_time

    say(laptop, "s1", "one", "two")
    with one_sync_at_a_time(home_of(laptop)):
        proc = subprocess.Popen([str(BIN / "aish"), "--sync", "--dir", str(shared)], env=laptop,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while f" -> FLOCK  ADVISORY  WRITE {proc.pid} " not in Path("/proc/locks").read_text():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert not shared.exists()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert verify_ok(laptop, shared)
    assert "Up to date" in ok(sync(laptop, shared))


def test_an_undo_on_one_device_is_not_undone_by_the_next_sync(laptop, desktop, shared):
    say(laptop, "s1", "one", "two")
    ok(sync(laptop, shared))
    ok(sync(desktop, shared))
    ok(sync(laptop, shared))
    ok(run(laptop, "aish", "--undo", "s1"))
    assert contents(laptop, "s1") == ["one", "answer to one"]
    for env in (laptop, desktop, laptop):
        ok(sync(env, shared))
    assert contents(laptop, "s1") == ["one", "answer to one"]
    assert contents(desktop, "s1") == ["one", "answer to one"]  # the undo travelled
    ok(run(laptop, "aish", "--redo", "s1"))  # what the undo left is still there
    assert contents(laptop, "s1")[-1] == "answer to two"
    ok(sync(laptop, shared))
    assert "moved: main" in ok(sync(desktop, shared))  # and so does the redo
    assert contents(desktop, "s1")[-1] == "answer to two"
    # A later move on the other device is taken in as usual.
    say(desktop, "s1", "three")
    ok(sync(desktop, shared))
    assert "moved: main" in ok(sync(laptop, shared))
    assert contents(laptop, "s1")[-1] == "answer to three"


def test_a_session_someone_else_keeps_from_us_is_left_out_not_failed(laptop, desktop, shared):
    say(laptop, "mine", "one")
    say(laptop, "theirs", "two")
    log = home_of(laptop) / "sessions" / "theirs.jsonl"
    with open(log, "a") as f:  # shared with alice alone: this user is not a member
        f.write(json.dumps({"t": "meta", "members": {
            "alice": {"role": "owner", "by": "alice", "time": 1.0}}}) + "\n")
    out = ok(sync(laptop, shared))
    assert "theirs left out:" in out and "not a member" in out and "FAILED" not in out
    assert "created here" in ok(sync(desktop, shared))
    assert contents(desktop, "mine") == contents(laptop, "mine")
    ok(sync(laptop, shared))  # and the next sync succeeds too
