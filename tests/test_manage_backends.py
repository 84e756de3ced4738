"""The management commands over every store: the file store and a real Redis server."""

from __future__ import annotations

import json
import time

import pytest
from manage_support import conversation, ok, select_redis, stderr
from redis_support import URL_FIXTURES

from aish import config as config_module
from aish.sessions import Sessions
from aish.store import open_store


@pytest.fixture(params=["file", "redis", "redis-cluster"])
def backend(request, home):
    """(env, Sessions) for a HOME whose configuration selects the store under test."""
    if request.param.startswith("redis"):
        select_redis(home, request.getfixturevalue(URL_FIXTURES[request.param]))
    config = config_module.load(home)
    return home, config


def _sessions(config, now: float | None = None) -> Sessions:
    clock = (lambda: now) if now is not None else time.time
    return Sessions(open_store(config), config, now=clock)


def test_save_restore_prune_and_back(aish, backend):
    env, config = backend
    now = time.time()
    _sessions(config, now).create("apollo", "sess_abc123",
                                  messages=conversation("apollo", 6, now - 100))
    saved = ok(aish("aish", "--save-session", "sess_abc123"))
    assert len(json.loads(saved)["messages"]) == 12
    pruned = json.loads(ok(aish("aish", "--prune-session", "sess_abc123", "--keep-recent", "2",
                                "--json")))
    assert pruned["kept_messages"] == 4 and pruned["backup"]
    # the location the prune reported restores; so does backup/ID.json, naming the session
    by_location = aish("aish", "--restore-session", pruned["backup"], "--as", "from-backup")
    assert ok(by_location).strip() == "from-backup"
    by_name = aish("aish", "--restore-session", "~/.aish/sessions/backup/sess_abc123.json",
                   "--as", "by-name")
    assert ok(by_name).strip() == "by-name" and "newest backup" in stderr(by_name)
    for sid in ("from-backup", "by-name"):
        doc = json.loads(ok(aish("aish", "--save-session", sid)))
        assert len(doc["messages"]) == 12
    copy = ok(aish("aish", "--restore-session", input=saved)).strip()
    assert copy == "sess_abc123-restored"


def test_merge_stats_cleanup(aish, backend):
    env, config = backend
    now = time.time()
    sessions = _sessions(config, now)
    sessions.create("apollo", "m1", messages=conversation("apollo", 2, now - 50))
    sessions.create("athena", "m2", messages=conversation("athena", 2, now - 45))
    old = _sessions(config, now - 3 * 3600)
    old.create("hermes", "old", messages=conversation("hermes", 1, now - 3 * 3600))
    ok(aish("aish", "--merge-sessions", "m1,m2", "--output", "both"))
    doc = json.loads(ok(aish("aish", "--save-session", "both")))
    assert [m["ai"] for m in doc["messages"]] == ["apollo", "apollo", "athena", "athena"] * 2
    stats = ok(aish("aish", "--session-stats")).splitlines()
    assert stats[0] == "Active sessions: 3" and stats[1] == "Total messages: 18"
    removed = json.loads(ok(aish("aish", "--cleanup-sessions", "--json")))
    assert [r["id"] for r in removed["removed"]] == ["old"]
    assert aish("aish", "--session-info", "old").returncode == 3
    gone = aish("aish", "--remove-sessions", "--ai", "athena-ai", "--json")
    assert [r["id"] for r in json.loads(ok(gone))["removed"]] == ["m2"]


def test_validate_and_repair_a_damaged_session(aish, backend):
    env, config = backend
    sessions = _sessions(config)
    sessions.create("apollo", "hurt", messages=conversation("apollo", 2, time.time() - 60))
    store = sessions.store
    if hasattr(store, "client"):  # Redis: a garbled item in the session's list
        store.client.rpush(store._key("hurt", "log"), b"{garbled")
    else:
        with open(store.location("hurt"), "a") as f:
            f.write("{garbled\n")
    report = aish("aish", "--validate-session", "hurt", "--json")
    assert report.returncode == 1
    assert [p["kind"] for p in json.loads(report.stdout)["problems"]] == ["bad record"]
    assert aish("aish", "--export-session", "hurt").returncode == 1
    ok(aish("aish", "--repair-session", "hurt"))
    assert aish("aish", "--validate-session", "hurt").returncode == 0
    assert len(json.loads(ok(aish("aish", "--save-session", "hurt")))["messages"]) == 4
