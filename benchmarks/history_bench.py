"""What `aish --history` costs on a big session: the first screen, in process.

Run ``python benchmarks/history_bench.py`` with the venv's python. It writes a 10,000-message
session with 200 branches through the store (as benchmarks/tree_bench.py does: exchanges
appended in turn on many branches) in a throwaway HOME, then runs ``aish --history ID`` and
``aish --history ID --graph`` in process on a 120x40 terminal and reports:

- the first screen: from the start of the command to the first write to the terminal, when
  the rows that fill the screen are out (target 100 ms), as wall time and as the CPU time of
  this process (the machine's other load shows in the wall time only);
- the whole command (every row of the history printed) for scale;
- the peak of memory allocated while it runs (tracemalloc; target 50 MB), and ru_maxrss;
- what the drawing reads: the skeleton cache (``store.skeleton``: first lines and parents, see
  aish/store/skeleton.py) as kept, right after appends (extended by what was appended), and
  rebuilt from scratch (the first read after a rewrite), beside reading the whole log
  (``store.load``, what ``--json`` and the exports read);
- the first screen right after 20 more messages were appended (the skeleton is extended);
- for scale, the whole process as a user starts it (``aish --history ID``: Python's start
  and imports included, which the in-process figures leave out).

Times are medians of several runs; the machine's load shows in them.
"""

from __future__ import annotations

import io
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench import row  # noqa: E402
from tree_bench import exchange_records, grow, median_seconds, meta  # noqa: E402

from aish.commands.context import Context  # noqa: E402
from aish.commands.dispatch import run as dispatch  # noqa: E402
from aish.config import load as load_config  # noqa: E402
from aish.output import Output  # noqa: E402
from aish.store import open_store, skeleton  # noqa: E402
from aish.store.refs import MAIN  # noqa: E402

COLUMNS, LINES = 120, 40
TARGET_S, TARGET_MB = 0.100, 50


class Terminal(io.StringIO):
    """A terminal's stdout: notes when the first write arrives."""

    encoding = "utf-8"
    first: float | None = None
    cpu_start = 0.0
    cpu_first: float | None = None

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.first is None:
            self.first = time.perf_counter()
            self.cpu_first = time.process_time()
        return super().write(text)


def once(env: dict, argv: list[str]) -> tuple[float, float, float, int]:
    """(first screen s, its CPU s, whole command s, lines) of one run."""
    stdout = Terminal()
    ctx = Context(environ=env, out=Output(stdout, io.StringIO(), env))
    stdout.cpu_start = time.process_time()
    start = time.perf_counter()
    assert dispatch(ctx, argv) == 0
    end = time.perf_counter()
    cpu = (stdout.cpu_first or time.process_time()) - stdout.cpu_start
    return (stdout.first or end) - start, cpu, end - start, stdout.getvalue().count("\n")


def verdict(seconds: float) -> str:
    return "within" if seconds <= TARGET_S else "OVER"


def measure(env: dict, label: str, argv: list[str]) -> None:
    once(env, argv)  # imports and caches, once
    runs = [once(env, argv) for _ in range(7)]
    first = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    whole = statistics.median(r[2] for r in runs)
    tracemalloc.start()
    once(env, argv)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    row(f"{label}: first screen ({LINES} lines; target 100 ms)", first, verdict(first))
    row(f"{label}: first screen, CPU time of this process", cpu, verdict(cpu))
    row(f"{label}: whole command ({runs[0][3]} lines)", whole)
    mb = peak / 2**20
    print(f"  {label}: peak allocated {mb:.1f} MB (target {TARGET_MB} MB: "
          f"{'within' if mb <= TARGET_MB else 'OVER'})")


def reads(store, sid: str) -> None:
    """What drawing reads, and what it read before the skeleton."""
    row("store.load: the whole log (--json, exports; drawing before the skeleton)",
        median_seconds(lambda: store.load(sid), runs=7))
    store.skeleton(sid)
    row("store.skeleton: the skeleton cache as kept", median_seconds(
        lambda: store.skeleton(sid), runs=7))
    cache = skeleton.path_for(store.root, sid)

    def rebuilt() -> None:
        cache.unlink()
        store.skeleton(sid)

    row("store.skeleton: rebuilt from the log (the first read after a rewrite)",
        median_seconds(rebuilt, runs=5))

    def extended() -> None:
        head = store.summary(sid).head(MAIN)
        store.append(sid, exchange_records(head.id, MAIN, head.pos, 0))
        began = time.perf_counter()
        store.skeleton(sid)
        times.append(time.perf_counter() - began)

    times: list[float] = []
    for _ in range(7):
        extended()
    row("store.skeleton: extended by one exchange appended", statistics.median(times))


def appended(env: dict, store, sid: str) -> None:
    """The first screen when the log grew since the skeleton was last read."""
    argv = ["--history", sid]
    firsts = []
    for _ in range(5):
        for _ in range(10):
            head = store.summary(sid).head(MAIN)
            store.append(sid, exchange_records(head.id, MAIN, head.pos, 0))
        firsts.append(once(env, argv)[0])
    first = statistics.median(firsts)
    row("--history right after 20 messages were appended: first screen", first, verdict(first))


def whole_process(env: dict, sid: str) -> None:
    aish = Path(sys.executable).parent / "aish"
    if not aish.exists():
        print("  (no aish console script next to this python: whole-process figure left out)")
        return
    full_env = {**os.environ, **env, "COLUMNS": str(COLUMNS), "LINES": str(LINES),
                "PYTHONPATH": str(HERE.parent)}
    times = []
    for _ in range(5):
        began = time.perf_counter()
        subprocess.run([str(aish), "--history", sid], env=full_env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
        times.append(time.perf_counter() - began)
    row("for scale: `aish --history ID` as a process (start, imports, all rows)",
        statistics.median(times))
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import aish.commands.dispatch"], env=full_env,
                   check=True, timeout=600)
    row("  of which Python's start and aish's imports", time.perf_counter() - began)


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
        reads(store, sid)
        for label, argv in (("--history", ["--history", sid]),
                            ("--history --graph", ["--history", sid, "--graph"]),
                            ("--history --graph --all", ["--history", sid, "--graph", "--all"])):
            measure(env, label, argv)
        appended(env, store, sid)
        whole_process(env, sid)
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nru_maxrss of the whole benchmark process: {maxrss:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
