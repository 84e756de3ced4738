"""Per-writer logs on Redis: what one more exchange costs when a session is kept in one log
(one person) or in several (four people taking turns), at two sizes of history.

Run ``python benchmarks/writers_bench.py`` with aish's venv python. It starts a redis-server of
its own on loopback (ACL users ``owner`` and ``w1``..``w4``), fills each session through the
store as its people would, and prints medians of:
- append: one exchange (a question and its reply) stored by a writer;
- context: the walk from the branch's head back over the last 10 exchanges (what the next
  prompt is built from).
- records read: how many records the walk fetched from Redis, over every log.
None should grow with the history: the walk reads back from the end of every log only as far as
it needs (on a busy machine the times vary more than the counts).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))

from redis_support import start_redis, stop_redis  # noqa: E402

from aish.messages import ASSISTANT, USER, Message  # noqa: E402
from aish.people_store import PeopleStore  # noqa: E402
from aish.store.redisstore import RedisStore  # noqa: E402
from aish.store.refs import MAIN  # noqa: E402

PASSWORD = "pw-bench"
WRITERS = ["w1", "w2", "w3", "w4"]
RUNS = 50


def store_as(port: int, name: str) -> PeopleStore:
    return PeopleStore(RedisStore(f"redis://{name}:{PASSWORD}@127.0.0.1:{port}/0"), time.time)


def exchange(store: PeopleStore, sid: str, n: int) -> None:
    head = store.summary(sid).head(MAIN)
    question = Message(USER, f"question {n}", "apollo", time.time(),
                       parent=head.id if head else "", ref=MAIN)
    reply = Message(ASSISTANT, f"reply {n}", "apollo", time.time(), parent=question.id,
                    ref=MAIN)
    records = [question.to_record(), reply.to_record()]
    if head is not None and head.pos is not None:
        records[0]["pp"] = head.pos
    store.append(sid, records)


def fill(stores: list[PeopleStore], sid: str, turns: int) -> None:
    owner = stores[0]
    owner.create({"id": sid, "owner": "apollo", "created": time.time(),
                  "members": {"owner": {"role": "owner", "by": "owner", "time": 0.0},
                              **{w: {"role": "editor", "by": "owner", "time": 0.0}
                                 for w in WRITERS}}})
    for n in range(turns):
        exchange(stores[n % len(stores)], sid, n)


def measure(stores: list[PeopleStore], sid: str) -> tuple[float, float, float]:
    appends, walks, read = [], [], []
    writer = stores[-1]
    client = writer.inner.client
    lrange = client.lrange

    def counted(*args):
        found = lrange(*args)
        read[-1] += len(found)
        return found

    client.lrange = counted
    for n in range(RUNS):
        start = time.perf_counter()
        exchange(writer, sid, 10**6 + n)
        appends.append(time.perf_counter() - start)
        head = writer.summary(sid).head(MAIN)
        read.append(0)
        start = time.perf_counter()
        path = writer.path(sid, head, 10)
        walks.append(time.perf_counter() - start)
        assert len(path) == 20, len(path)
    client.lrange = lrange
    return (statistics.median(appends) * 1000, statistics.median(walks) * 1000,
            statistics.median(read))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_redis(Path(tmp))
        try:
            admin = server.client()
            admin.execute_command("ACL", "SETUSER", "owner", "on", f">{PASSWORD}", "~*", "&*",
                                  "+@all")
            for name in WRITERS:  # the rules aish applies to an editor of these sessions
                admin.execute_command("ACL", "SETUSER", name, "on", f">{PASSWORD}", "+@all",
                                      "%R~aish:*", "~aish:{*}:meta", "~aish:{*}:events",
                                      f"~aish:{{*}}:log:{name}")
            owner = store_as(server.port, "owner")
            people = [owner, *(store_as(server.port, w) for w in WRITERS)]
            print(f"{'session':<38}{'append (ms)':>12}{'context (ms)':>14}"
                  f"{'records read':>14}")
            for turns in (200, 4000):
                for label, stores in (("one log (the owner alone)", [owner]),
                                      ("five logs (five people)", people)):
                    sid = f"bench-{turns}-{len(stores)}"
                    fill(stores, sid, turns)
                    append_ms, walk_ms, read = measure(stores, sid)
                    print(f"{label + f', {turns} turns':<38}{append_ms:>12.2f}{walk_ms:>14.2f}"
                          f"{read:>14.0f}")
        finally:
            stop_redis(server)


if __name__ == "__main__":
    main()
