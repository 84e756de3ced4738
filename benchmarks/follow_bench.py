"""What live following and turn-taking cost.

Run ``python benchmarks/follow_bench.py`` with the venv's python. Everything runs in a
throwaway HOME (and, for Redis, a throwaway redis-server when one is installed):

- one exchange in process (session core + store, an instant provider streaming 20 pieces),
  with turn-taking on (the floor taken, renewed by its thread, released) and off
  (``floor_ttl_seconds: 0``), and with the live pieces published;
- one append to a Redis session with the events stream (``stream_length`` 10,000) and
  without it (0);
- how long after an append starts a follower has the event: files (inotify) and Redis
  (``XREAD BLOCK``).

Times are medians of several runs; the machine's load shows in them.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))

from fakes import Scripted  # noqa: E402
from tree_bench import median_seconds  # noqa: E402

from aish.config import load as load_config  # noqa: E402
from aish.messages import USER, Chunk, Message, Usage  # noqa: E402
from aish.sessions import Sessions  # noqa: E402
from aish.specialists import roster  # noqa: E402
from aish.store import open_store  # noqa: E402

PIECES = [Chunk(f"piece {n} ") for n in range(20)] + [Chunk(finished=True, usage=Usage(5, 20))]


def sessions_in(home: Path, config_text: str) -> Sessions:
    (home / ".aish").mkdir(parents=True, exist_ok=True)
    (home / ".aish" / "config.yaml").write_text(config_text)
    config = load_config({"HOME": str(home), "AISH_AUTO_TITLE": "false"})
    return Sessions(open_store(config), config)


def exchange_ms(sessions: Sessions) -> float:
    apollo = roster({})["apollo"]
    session = sessions.create("apollo")
    session.exchange(apollo, "start", Scripted(chunks=PIECES))
    return median_seconds(lambda: session.exchange(apollo, "again", Scripted(chunks=PIECES))) * 1e3


def append_ms(sessions: Sessions) -> float:
    session = sessions.create("apollo")
    return median_seconds(lambda: session.add(Message(USER, "hello", "apollo", time.time())),
                     runs=201) * 1e3


def follow_latency_ms(sessions: Sessions, runs: int = 41) -> float:
    session = sessions.create("apollo")
    session.add(Message(USER, "start", "apollo", time.time()))
    feed = sessions.follow_feed(session.id)
    feed.mark()
    seen: dict[str, float] = {}
    stop = threading.Event()

    def follow() -> None:
        while not stop.is_set():
            for event in feed.read(0.2):
                if event.message is not None:
                    seen[event.message.id] = time.perf_counter()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    delays = []
    for _ in range(runs):
        stored = time.perf_counter()
        message = session.add(Message(USER, "hello", "apollo", time.time()))
        deadline = stored + 10
        while message.id not in seen and time.perf_counter() < deadline:
            time.sleep(0.0005)
        delays.append(seen.get(message.id, deadline) - stored)
    stop.set()
    thread.join()
    feed.close()
    return statistics.median(delays) * 1e3


def row(label: str, value: float) -> None:
    print(f"  {label:<62} {value:8.2f} ms")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print("files:")
        on = sessions_in(root / "on", "")
        off = sessions_in(root / "off", "sessions: {floor_ttl_seconds: 0}\n")
        row("exchange, 20 pieces, turn-taking on", exchange_ms(on))
        row("exchange, 20 pieces, turn-taking off", exchange_ms(off))
        row("follower has an append (inotify), from the append's start", follow_latency_ms(on))
        if shutil.which("redis-server") is None:
            print("redis: skipped (no redis-server on PATH)")
            return
        from redis_support import start_redis, stop_redis

        server = start_redis(root / "redis")
        try:
            url = f"storage: {{type: redis, url: '{server.url}'"
            print("redis:")
            on = sessions_in(root / "r-on", f"sessions:\n  {url}}}\n")
            off = sessions_in(root / "r-off", f"sessions:\n  floor_ttl_seconds: 0\n  {url}}}\n")
            bare = sessions_in(root / "r-bare", f"sessions:\n  {url}, stream_length: 0}}\n")
            row("exchange, 20 pieces, turn-taking on", exchange_ms(on))
            row("exchange, 20 pieces, turn-taking off", exchange_ms(off))
            row("append with the events stream", append_ms(on))
            row("append without it (stream_length: 0)", append_ms(bare))
            row("follower has an append (XREAD BLOCK), from the append's start",
                follow_latency_ms(on))
        finally:
            stop_redis(server)


if __name__ == "__main__":
    main()
