"""What `aish --history` costs on a big session: the first screen, in process.

Run ``python benchmarks/history_bench.py`` with the venv's python. It writes a 10,000-message
session with 200 branches through the store (as benchmarks/tree_bench.py does: exchanges
appended in turn on many branches) in a throwaway HOME, then runs ``aish --history ID`` and
``aish --history ID --graph`` in process on a 120x40 terminal and reports:

- the first screen: from the start of the command to the first write to the terminal, when
  the rows that fill the screen are out (target 100 ms);
- the whole command (every row of the history printed) for scale;
- the peak of memory allocated while it runs (tracemalloc; target 50 MB), and ru_maxrss;
- reading the whole log (``store.load``) alone, which every figure includes.

Times are medians of several runs; the machine's load shows in them.
"""

from __future__ import annotations

import io
import os
import random
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench import row  # noqa: E402
from tree_bench import grow, meta  # noqa: E402

from aish.commands.context import Context  # noqa: E402
from aish.commands.dispatch import run as dispatch  # noqa: E402
from aish.config import load as load_config  # noqa: E402
from aish.output import Output  # noqa: E402
from aish.store import open_store  # noqa: E402

COLUMNS, LINES = 120, 40


class Terminal(io.StringIO):
    """A terminal's stdout: notes when the first write arrives."""

    encoding = "utf-8"
    first: float | None = None

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.first is None:
            self.first = time.perf_counter()
        return super().write(text)


def once(env: dict, argv: list[str]) -> tuple[float, float, int]:
    """(first screen s, whole command s, lines) of one run."""
    stdout = Terminal()
    ctx = Context(environ=env, out=Output(stdout, io.StringIO(), env))
    start = time.perf_counter()
    assert dispatch(ctx, argv) == 0
    end = time.perf_counter()
    return (stdout.first or end) - start, end - start, stdout.getvalue().count("\n")


def measure(env: dict, label: str, argv: list[str]) -> None:
    once(env, argv)  # imports and caches, once
    runs = [once(env, argv) for _ in range(7)]
    first = statistics.median(r[0] for r in runs)
    whole = statistics.median(r[1] for r in runs)
    tracemalloc.start()
    once(env, argv)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    row(f"{label}: first screen ({LINES} lines)", first)
    row(f"{label}: whole command ({runs[0][2]} lines)", whole)
    print(f"  {label}: peak allocated {peak / 2**20:.1f} MB (target 50 MB)")


def main() -> int:
    print(f"aish history benchmarks — python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}")
    os.environ.update(COLUMNS=str(COLUMNS), LINES=str(LINES), TERM="xterm-256color")
    with tempfile.TemporaryDirectory(prefix="aish-bench-") as tmp:
        env = {"HOME": tmp, "PATH": os.environ.get("PATH", "")}
        store = open_store(load_config(env))
        sid = "sess_hist10k"
        store.create(meta(sid))
        start = time.perf_counter()
        grow(store, sid, 10_000, 200, random.Random(3))
        branches = len(store.summary(sid).tree.refs) - 1
        print(f"\n`aish --history` of a 10,000-message session with {branches} branches, in "
              f"process, {COLUMNS}x{LINES} terminal (built in "
              f"{time.perf_counter() - start:.0f} s; target 100 ms):")
        loads = []
        for _ in range(7):
            began = time.perf_counter()
            store.load(sid)
            loads.append(time.perf_counter() - began)
        row("store.load alone (the whole log; part of every figure below)",
            statistics.median(loads))
        for label, argv in (("--history", ["--history", sid]),
                            ("--history --graph", ["--history", sid, "--graph"]),
                            ("--history --graph --all", ["--history", sid, "--graph", "--all"])):
            measure(env, label, argv)
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nru_maxrss of the whole benchmark process: {maxrss:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
