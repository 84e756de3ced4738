"""`--sync-sessions` keeps deletions: what prune, remove and cleanup took out on one side is not
copied back from the other, in any direction, until a session is restored on purpose."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import run
from hypothesis import given, settings
from hypothesis import strategies as st
from manage_support import backups, conversation, make_session, ok, stderr

from aish.config import load as load_config
from aish.errors import Refused
from aish.management.hygiene import prune, remove_session
from aish.management.restore import restore
from aish.management.sync import sync as sync_stores
from aish.messages import USER, Message
from aish.sessions import Sessions
from aish.store.base import in_force, merge_tombstones, parse_tombstone, tombstone
from aish.store.filestore import FileStore
from aish.store.redisstore import RedisStore

# The command that deletes, and the state it leaves: message count, or None (session gone).
OPS = {
    "prune": (("--prune-session", "s", "--keep-recent", "1"), 2),
    "remove": (("--remove-sessions", "--ai", "athena"), None),
    "cleanup": (("--cleanup-sessions",), None),
}


def redis_env(home: dict, tmp_path: Path, url: str) -> dict:
    """A second HOME whose sessions live in the Redis server: the other side of the sync."""
    env = {**home, "HOME": str(tmp_path / "team")}
    aish_dir = tmp_path / "team" / ".aish"
    aish_dir.mkdir(parents=True)
    (aish_dir / "config.yaml").write_text(
        f"sessions:\n  storage: {{type: redis, url: '{url}'}}\n")
    (aish_dir / "config.yaml").chmod(0o600)
    return env


def messages(store, sid: str) -> int | None:
    return len(store.load(sid).messages) if store.exists(sid) else None


def sync(home: dict, url: str, *flags: str) -> str:
    return ok(run(home, "aish", "--sync-sessions", "--url", url, *flags))


@pytest.fixture
def sides(home, tmp_path, redis_url, sessions_dir):
    make_session(home, "s", ai="athena", pairs=3)
    ok(run(home, "aish", "--end-session", "s"))  # so that cleanup removes it too
    sync(home, redis_url)
    local, remote = FileStore(sessions_dir), RedisStore(redis_url)
    assert messages(local, "s") == messages(remote, "s") == 6
    return {"local": (home, local), "remote": (redis_env(home, tmp_path, redis_url), remote)}


@pytest.mark.parametrize("side", ["local", "remote"])
@pytest.mark.parametrize("op", list(OPS))
def test_a_deletion_holds_on_both_sides_in_every_direction(sides, home, redis_url, op, side):
    argv, after = OPS[op]
    (env, here), (_, there) = sides[side], sides["remote" if side == "local" else "local"]
    ok(run(env, "aish", *argv))
    assert messages(here, "s") == after and messages(there, "s") == 6
    if op == "prune":  # the other side went on meanwhile: that message is no deletion
        there.append("s", [Message(USER, "later", "athena", time.time() + 5).to_record()])
        after += 1

    # Syncing only towards the side that deleted must not bring anything back to it.
    sync(home, redis_url, "--pull" if side == "local" else "--push")
    assert messages(here, "s") == after
    # Towards the other side: the deletion is carried there.
    sync(home, redis_url, "--push" if side == "local" else "--pull")
    assert messages(there, "s") == after and messages(here, "s") == after
    # Both ways, again and again: it holds, and there is nothing left to do.
    sync(home, redis_url)
    assert messages(here, "s") == messages(there, "s") == after
    assert "Everything is in sync" in stderr(
        run(home, "aish", "--sync-sessions", "--url", redis_url))
    if op == "prune":
        contents = [m.content for m in here.load("s").messages]
        assert contents == [m.content for m in there.load("s").messages]
        assert contents[-1] == "later" and "question 2 for athena" in contents[0]
    else:  # a backup of the other side's copy was kept before removing it
        assert there.backups("s")


def test_a_restored_session_syncs_again(sides, home, redis_url, sessions_dir):
    local, remote = sides["local"][1], sides["remote"][1]
    ok(run(home, "aish", "--remove-sessions", "--ai", "athena"))
    sync(home, redis_url)
    assert not local.exists("s") and not remote.exists("s")

    backup = [p for p in backups(home, "s") if "-remove" in p.name][-1]
    ok(run(home, "aish", "--restore-session", str(backup)))
    assert messages(local, "s") == 6
    out = sync(home, redis_url)
    assert "copied" in out
    assert messages(local, "s") == messages(remote, "s") == 6
    assert "Everything is in sync" in stderr(
        run(home, "aish", "--sync-sessions", "--url", redis_url))
    # Both sides know the removal is over, so a third copy that missed it cannot bring it back.
    for store in (local, remote):
        assert in_force(store.tombstones()["s"]) == (False, set())


def test_a_dry_run_reports_the_deletion_and_changes_nothing(sides, home, redis_url):
    local, remote = sides["local"][1], sides["remote"][1]
    ok(run(home, "aish", "--cleanup-sessions"))
    out = sync(home, redis_url, "--dry-run")
    assert "removed" in out
    assert messages(remote, "s") == 6 and remote.tombstones() == {}
    sync(home, redis_url)
    assert not remote.exists("s") and not local.exists("s")


def sessions_over(store, home: dict, now: float) -> Sessions:
    return Sessions(store, load_config(home), now=lambda: now)


def test_a_restore_clears_only_the_deletions_before_it(tmp_path, redis_url, home):
    """Removed, restored, then pruned: sync applies the prune and never the old removal, also
    when the tombstone of the removal comes back from a store that missed the restore."""
    t0 = time.time() - 100
    local, remote = FileStore(tmp_path / "local"), RedisStore(redis_url)
    on_local = sessions_over(local, home, t0)
    on_local.create("apollo", "s", messages=conversation("apollo", 3, t0))
    sync_stores(local, remote)
    backup = remove_session(sessions_over(local, home, t0 + 5), "s", "remove")
    stale = local.tombstones()["s"]
    restore(sessions_over(local, home, t0 + 10), local.read_backup(backup))
    prune(sessions_over(local, home, t0 + 20), "s", 2)
    remote.add_tombstone(stale)  # as a machine that synced before the restore would hold it
    sync_stores(local, remote)
    assert len(local.load("s").messages) == len(remote.load("s").messages) == 4


def test_a_session_made_anew_under_a_removed_id_syncs(tmp_path, redis_url, home):
    t0 = time.time() - 100
    local, remote = FileStore(tmp_path / "local"), RedisStore(redis_url)
    sessions_over(local, home, t0).create("apollo", "ws", messages=conversation("apollo", 1, t0))
    sync_stores(local, remote)
    remove_session(sessions_over(local, home, t0 + 5), "ws", "remove")
    sync_stores(local, remote)
    assert not remote.exists("ws")
    sessions_over(local, home, t0 + 10).create("athena", "ws")
    sync_stores(local, remote)
    assert remote.summary("ws").owner == "athena"


def test_unknown_owner_is_taken_on_redis_too(redis_url, home):
    store = RedisStore(redis_url)
    store.create({"id": "orphan", "state": "active"})
    sessions = sessions_over(store, home, time.time())
    sessions.open("hermes", "orphan")
    assert store.summary("orphan").owner == "hermes"
    with pytest.raises(Refused):
        sessions.open("apollo", "orphan")


FUZZ = settings(max_examples=int(os.environ.get("AISH_FUZZ_EXAMPLES") or 300), deadline=None)
stored_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4), max_leaves=12)


@FUZZ
@given(st.dictionaries(st.sampled_from(["time", "ops", "removed", "messages", "cleared", "x"]),
                       stored_values), st.binary(max_size=40))
def test_a_damaged_tombstone_never_breaks_sync(data, junk):
    """Whatever a hand-edited tombstone holds, it reads as a sane one (or none) and merges."""
    for raw in (json.dumps(data), junk):
        record = parse_tombstone(raw, "s")
        if record is None:
            continue
        merged = merge_tombstones(record, tombstone("s", "prune", 5.0, messages=["m1"]))
        removed, dropped = in_force(merged)
        assert isinstance(removed, bool) and dropped <= set(merged["messages"])
        assert ("m1" in dropped) == (merged["cleared"] < merged["messages"]["m1"])
        assert merge_tombstones(merged, record) == merged


def test_an_old_copy_is_never_merged_into_a_session_made_anew_under_its_id(tmp_path, redis_url,
                                                                            home):
    # Removed here while Redis still holds the old copy, then made anew here: sync must remove
    # the old copy there, not merge its messages into the new session.
    t0 = time.time() - 100
    local, remote = FileStore(tmp_path / "local"), RedisStore(redis_url)
    sessions_over(local, home, t0).create("apollo", "q1", messages=[
        Message(USER, "oldsecret", "apollo", t0)])
    sync_stores(local, remote)
    remove_session(sessions_over(local, home, t0 + 5), "q1", "remove")
    sessions_over(local, home, t0 + 10).create("apollo", "q1", messages=[
        Message(USER, "fresh", "apollo", t0 + 10)])
    sync_stores(local, remote)
    for store in (local, remote):
        assert [m.content for m in store.load("q1").messages] == ["fresh"]


def test_a_cleared_history_stays_cleared_after_sync(sides, home, redis_url):
    # The shell's `clear` deletes like prune does: sync must not copy the messages back.
    from types import SimpleNamespace

    from aish.commands.context import Context
    from aish.commands.session_cmds import SessionState, clear

    (_, local), (_, remote) = sides["local"], sides["remote"]
    ctx = Context(environ=home)
    session = ctx.sessions.open("athena", "s")
    state = SessionState(session=session, specialist=ctx.specialists["athena"])
    clear(ctx, SimpleNamespace(state=state, keep_last=0))
    assert messages(local, "s") == 0 and messages(remote, "s") == 6
    sync(home, redis_url)
    assert messages(local, "s") == messages(remote, "s") == 0
