"""What opening `tree` in session mode costs on a big session.

Run ``python benchmarks/tree_nav_bench.py`` with the venv's python. In a throwaway folder it writes,
through the file store, a 10,000-message session with 200 branches forked from main at random
points while it grows (exchanges appended a few at a time on one branch after another, so a
branch's messages lie far apart in the log), then times what `tree` does before the first
screen is up (target: 150 ms for the view):

- reading the log (`store.load`; the shell keeps it for the next `tree` while the session is
  unchanged), and for scale the skeleton cache `aish --history` draws from instead;
- building the history model (`aish.history.build`) from it;
- laying out the view (`TreeNav`: runs, folds, the first rows);
- the first screen rendered by the real Application (prompt_toolkit on a pipe input and a
  DummyOutput), which asks for only the rows it draws;

and, for scale, rendering the view with every run unfolded (10,000 rows, still only one
screen drawn). The figure held against the target is the whole opening: the read, the model,
the layout and the first screen. Times are medians of several runs; the machine's load shows in
the wall times, so the CPU time this process spent is given too.
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
sys.path.insert(0, str(HERE.parent))

from bench import row  # noqa: E402
from tree_bench import exchange_records, median_seconds, meta  # noqa: E402

from aish.history import build  # noqa: E402
from aish.store.filestore import FileStore  # noqa: E402
from aish.store.refs import MAIN  # noqa: E402

MESSAGES, BRANCHES, BATCH = 10_000, 200, 10  # BATCH: exchanges per append
TARGET_MS = 150


def grow(store, sid: str, rng: random.Random) -> None:
    """MESSAGES messages on main and BRANCHES branches made from it at random points."""
    names = [MAIN]
    n = 0
    while n < MESSAGES:
        if len(names) <= BRANCHES and n >= MESSAGES * len(names) // (BRANCHES + 2):
            main = store.path(sid, store.summary(sid).head(MAIN), 0)
            at = main[rng.randrange(len(main))] if main else None
            names.append(f"b{len(names)}")
            store.append(sid, [{"t": "ref", "name": names[-1], "to": at.id if at else "",
                                "op": "branch", "time": time.time(),
                                **({"at": at.pos} if at and at.pos is not None else {})}])
        name = MAIN if rng.random() < 0.5 else rng.choice(names)
        head = store.summary(sid).head(name)
        parent, pos = (head.id, head.pos) if head else ("", None)
        records: list[dict] = []
        for _ in range(min(BATCH, (MESSAGES - n) // 2)):
            exchange = exchange_records(parent, name, pos, n)
            records += exchange
            parent, pos = exchange[-1]["id"], None
            n += 2
        store.append(sid, records)


def cpu(work, runs: int = 9) -> float:
    """Median CPU time of ``work`` in this process, in seconds: on a loaded machine the wall
    times above count the other processes' turns too."""
    times = []
    for _ in range(runs):
        start = time.process_time()
        work()
        times.append(time.process_time() - start)
    return statistics.median(times)


def first_screen(nav) -> None:
    """The real Application up on its first screen, then left at once (q)."""
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from aish.shell.tree_view import make_app

    with create_pipe_input() as pipe:
        app = make_app(nav, input=pipe, output=DummyOutput())
        pipe.send_text("q")
        app.run()


def main() -> int:
    from aish.shell.tree_view import TreeNav

    print(f"aish tree view benchmark — python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="aish-bench-") as tmp:
        store = FileStore(Path(tmp) / "sessions")
        sid = "sess_nav10k"
        store.create(meta(sid))
        start = time.perf_counter()
        grow(store, sid, random.Random(3))
        built = time.perf_counter() - start
        loaded = store.load(sid)
        history = build(loaded, sid, MAIN)
        print(f"\nOpening `tree` on {len(history.nodes):,} messages, {len(history.refs)} "
              f"branches (written in {built:.1f} s):")
        read = median_seconds(lambda: store.load(sid), runs=9)
        row("read the log (store.load)", read)
        store.skeleton(sid)
        row("for scale: the skeleton cache `aish --history` reads instead",
            median_seconds(lambda: store.skeleton(sid), runs=9))
        model = median_seconds(lambda: build(loaded, sid, MAIN), runs=9)
        row("build the history model from it", model)
        layout = median_seconds(lambda: TreeNav(history), runs=9)
        row("lay out the view (runs, folds, rows)", layout)
        screen = median_seconds(lambda: first_screen(TreeNav(history)), runs=9) - layout
        row("first screen (prompt_toolkit, DummyOutput)", screen)
        opening = read + model + layout + screen
        row(f"opening `tree` in all: read, model, layout, first screen (target {TARGET_MS} ms)",
            opening, "within" if opening * 1000 <= TARGET_MS else "OVER")
        row("the same when the shell kept the read of its last `tree`", opening - read)
        opening_cpu = (cpu(lambda: store.load(sid)) + cpu(lambda: build(loaded, sid, MAIN))
                       + cpu(lambda: first_screen(TreeNav(history))))
        row("opening `tree` in all, CPU time of this process", opening_cpu,
            "within" if opening_cpu * 1000 <= TARGET_MS else "OVER")

        def unfolded() -> None:
            nav = TreeNav(history)
            nav.unfold_all()
            first_screen(nav)

        shown = TreeNav(history)
        shown.unfold_all()
        row(f"for scale: everything unfolded ({len(shown.rows):,} rows), first screen",
            median_seconds(unfolded, runs=5))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
