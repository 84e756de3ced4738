"""What the conversation tree costs, in process and as a user meets it.

Run ``python benchmarks/tree_bench.py [OLD_CHECKOUT]`` with the venv's python. Everything runs in
a throwaway HOME (and, for Redis, a throwaway redis-server when one is installed):

- branch, checkout and undo in process, on a 1,000-message session (target: 20 ms each);
- the context of a 10,000-message session with 200 branches, written the way writers write it
  (exchanges appended in turn on many branches, so a branch's messages lie far apart in the
  log): ``Session.recent`` (what an exchange reads) and ``store.path`` for main and for branches
  made early and late (target: 30 ms), and a full load for scale;
- ``aish --list-sessions`` with 50 sessions, and the same with the version at OLD_CHECKOUT (a
  ``git worktree add --detach /tmp/old aee5a71``) when given.

Times are medians of several runs; the machine's load shows in them.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))

from bench import environment, fifty_sessions, row, timed  # noqa: E402

from aish import branches  # noqa: E402
from aish.checkout import Checkouts  # noqa: E402
from aish.config import load as load_config  # noqa: E402
from aish.messages import ASSISTANT, USER, Message, new_message_id  # noqa: E402
from aish.sessions import Sessions  # noqa: E402
from aish.store.filestore import FileStore  # noqa: E402
from aish.store.refs import MAIN  # noqa: E402

TEXT = "lorem ipsum dolor sit amet " * 8


def median_seconds(work, runs: int = 21) -> float:
    """Median wall time of ``work`` over ``runs`` runs, in seconds (what `bench.row` prints)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def meta(sid: str) -> dict:
    now = time.time()
    return {"id": sid, "owner": "apollo", "created": now, "updated": now, "context_window": 10,
            "participants": ["apollo"], "shared": False, "state": "active"}


def exchange_records(parent: str, ref: str, pos: int | None, n: int) -> list[dict]:
    now = time.time()
    question = Message(USER, f"{n} {TEXT}", "apollo", now, id=new_message_id(), parent=parent,
                       ref=ref)
    answer = Message(ASSISTANT, f"re {n} {TEXT}", "apollo", now, id=new_message_id(),
                     parent=question.id, ref=ref)
    records = [question.to_record(), answer.to_record()]
    if pos is not None:
        records[0]["pp"] = pos
    return records


def grow(store, sid: str, messages: int, branch_count: int, rng: random.Random) -> None:
    """``messages`` messages as exchanges appended in turn on main and ``branch_count`` branches
    forked from main at random points while it grows."""
    names = [MAIN]
    n = 0
    while n < messages:
        if len(names) <= branch_count and n >= messages * len(names) // (branch_count + 2):
            summary = store.summary(sid)
            path = store.path(sid, summary.head(MAIN), 0)
            at = path[rng.randrange(len(path))] if path else None
            name = f"b{len(names)}"
            store.append(sid, [{"t": "ref", "name": name, "to": at.id if at else "",
                                "op": "branch", "time": time.time(),
                                **({"at": at.pos} if at and at.pos is not None else {})}])
            names.append(name)
        name = MAIN if rng.random() < 0.5 else rng.choice(names)
        head = store.summary(sid).head(name)
        store.append(sid, exchange_records(head.id if head else "", name,
                                           head.pos if head else None, n))
        n += 2


def in_process(store, label: str) -> None:
    config = load_config({"HOME": tempfile.mkdtemp(prefix="aish-bench-home-")})
    sessions = Sessions(store, config)
    sid = "sess_tree1k"
    store.create(meta(sid))
    grow(store, sid, 1_000, 0, random.Random(1))
    print(f"\nBranch operations in process, {label}, 1,000-message session (target 20 ms):")
    counter = iter(range(10**6))
    row("branch (a new branch at message 500)",
        median_seconds(lambda: branches.create(sessions, sid, f"n{next(counter)}", at=500)))
    checkouts = Checkouts(Path(config.session_dir).parent / "checkouts.json")

    def checkout() -> None:
        branches.check_branch("n1")
        branches.head_of(sessions.summary(sid), "n1")
        checkouts.set(store.location(sid), "n1")

    row("checkout (check the branch, record it)", median_seconds(checkout))

    def undo_redo() -> None:
        branches.undo(sessions, sid, MAIN)
        branches.redo(sessions, sid, MAIN)

    row("undo (one exchange; measured with its redo, halved)", median_seconds(undo_redo) / 2)


def context(store, label: str) -> None:
    config = load_config({"HOME": tempfile.mkdtemp(prefix="aish-bench-home-")})
    sessions = Sessions(store, config)
    sid = "sess_tree10k"
    store.create(meta(sid))
    start = time.perf_counter()
    grow(store, sid, 10_000, 200, random.Random(2))
    built = time.perf_counter() - start
    summary = store.summary(sid)
    print(f"\nContext of a 10,000-message session with {len(summary.tree.refs) - 1} branches, "
          f"{label} (built in {built:.0f} s; target 30 ms):")
    for name in (MAIN, "b1", "b100", "b200"):
        session = sessions.open("apollo", sid)
        session.branch = name
        length = len(store.path(sid, summary.head(name), 0))
        row(f"Session.recent(10) on {name} ({length} messages on its path)",
            median_seconds(lambda s=session: s.recent(10)))
    row("store.path(main head, 11 pairs)",
        median_seconds(lambda: store.path(sid, store.summary(sid).head(MAIN), 11)))
    row("store.path(b1 head, whole path)",
        median_seconds(lambda: store.path(sid, store.summary(sid).head("b1"), 0), runs=5))
    row("store.path(main head, whole path)",
        median_seconds(lambda: store.path(sid, store.summary(sid).head(MAIN), 0), runs=5))
    counter = iter(range(10**6))
    row("branch (a new branch at message 500 of main: walks main whole)",
        median_seconds(lambda: branches.create(sessions, sid, f"n{next(counter)}", at=500), runs=5))
    row("store.load (the whole log, for scale)", median_seconds(lambda: store.load(sid), runs=5))


def listing(old: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="aish-bench-") as tmp:
        home = Path(tmp) / "home"
        env, _ = fifty_sessions(home)
        print("\naish --list-sessions, 50 sessions of 20 messages:")
        row("this version", timed(env, "aish", "--list-sessions", runs=7))
        if old is not None:
            # The old version rebuilds its own summaries: a fresh copy of the same logs.
            old_home = Path(tmp) / "old-home"
            old_env = {**environment(old_home), "PYTHONPATH": str(old)}
            old_store = old_home / ".aish" / "sessions"
            old_store.mkdir(mode=0o700)
            for log in sorted((home / ".aish" / "sessions").glob("*.jsonl")):
                (old_store / log.name).write_bytes(log.read_bytes())
                os.chmod(old_store / log.name, 0o600)
            timed(old_env, "aish", "--list-sessions", runs=1)  # its caches, once
            row(f"the version at {old}", timed(old_env, "aish", "--list-sessions", runs=7))


def main() -> int:
    old = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else None
    print(f"aish tree benchmarks — python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="aish-bench-") as tmp:
        in_process(FileStore(Path(tmp) / "a"), "file store")
        context(FileStore(Path(tmp) / "b"), "file store")
        redis = None
        try:
            from redis_support import start_redis, stop_redis

            redis = start_redis(Path(tmp) / "redis")
        except BaseException as exc:  # noqa: BLE001 - pytest.skip when there is no binary
            print(f"\n(no redis-server: Redis figures left out: {exc})")
        if redis is not None:
            from aish.store.redisstore import RedisStore

            try:
                in_process(RedisStore(redis.url), "Redis")
                context(RedisStore(redis.url), "Redis")
            finally:
                stop_redis(redis)
    listing(old)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
