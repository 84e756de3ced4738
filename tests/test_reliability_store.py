"""The stores never lose or refuse a message: racing creators, full disks, damaged caches,
inaccessible and read-only stores."""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path

import pytest
from conftest import run

from aish import config as config_module
from aish.store import open_store

# Each of the 16 processes sends this many messages; a nightly run asks for 50 (800 in all).
ROUNDS = int(os.environ.get("AISH_STRESS_ROUNDS", "3"))
WRITERS = 16


@pytest.fixture(params=["file", "redis"])
def store_env(request, env):
    """``env`` (pointed at the scripted server) with its configuration selecting the store."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        cfg = Path(env["HOME"]) / ".aish" / "config.yaml"
        cfg.write_text(cfg.read_text() + f"sessions:\n  storage: {{type: redis, url: '{url}'}}\n")
    return env


def test_concurrent_first_writers_of_a_named_session_all_succeed(store_env):
    start = threading.Barrier(WRITERS)
    failures: list[str] = []

    def writer(n: int) -> None:
        start.wait()  # all processes race to create the session that does not exist yet
        for r in range(ROUNDS):
            done = run(store_env, "apollo", "--session-id", "race", input=f"msg-{n}-{r}",
                       timeout=600, AISH_MAX_SESSIONS="1000")
            if done.returncode != 0:
                failures.append(f"{n}/{r}: exit {done.returncode}: {done.stderr.decode()!r}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []

    config = config_module.load(store_env)
    loaded = open_store(config).load("race")
    assert loaded.problems == []
    sent = Counter(m.content for m in loaded.messages if m.role == "user")
    expected = {f"msg-{n}-{r}" for n in range(WRITERS) for r in range(ROUNDS)}
    assert set(sent) == expected and set(sent.values()) == {1}  # every one, exactly once
    assert len(loaded.messages) == 2 * WRITERS * ROUNDS  # and every reply
    for n in range(WRITERS):  # each writer's messages in the order it sent them
        mine = [m.content for m in loaded.messages if m.content.startswith(f"msg-{n}-")]
        assert mine == [f"msg-{n}-{r}" for r in range(ROUNDS)]
