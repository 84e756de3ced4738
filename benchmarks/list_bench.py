"""What management commands cost as a user meets them, against the bars they are held to.

Run ``python benchmarks/list_bench.py`` with the venv's python. Everything runs in a throwaway
HOME, with bytecode caches allowed (as an installed aish has them). Whole-process wall times are
medians of 9 runs; memory is the child's peak RSS:

- ``aish --list-sessions`` with 50 sessions (bar 0.05 s) and with 10,000 (bar 0.25 s);
- ``aish --session-info ID`` (bar 0.05 s);
- peak memory of a management command (bar 30 MB);
- each management command on a 1,000-pair session against a 1-pair one (bar 1.2x), except
  those whose output is every record (validate, export, save): they are O(n) by definition,
  and their figures are printed without a bar; commands that change a session (undo, branch,
  title, end, rename, checkout) run each time on a fresh copy of it;
- ``python -c pass``, the floor every figure stands on.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))

from bench import BIN, environment, fifty_sessions, seed  # noqa: E402

from aish.store.filestore import FileStore  # noqa: E402

RUNS = 9


def run_env(env: dict) -> dict:
    env = dict(env)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # users run with bytecode caches
    return env


def wall(env: dict, argv: list[str], runs: int = RUNS, before=None) -> float:
    """Median seconds of running ``argv``; fails loudly on an error. ``before``: called ahead
    of each run, untimed (to put back what the command changes)."""
    times = []
    for _ in range(runs):
        if before is not None:
            before()
        start = time.perf_counter()
        proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=600)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.decode().strip()}")
    return statistics.median(times)


def peak_mb(env: dict, argv: list[str]) -> float:
    """The peak RSS of one run of ``argv``, measured in a fresh process of its own (the
    children's maximum of this process would include every earlier child)."""
    code = ("import resource, subprocess, sys\n"
            "subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,"
            " stderr=subprocess.DEVNULL, check=True)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True,
                         check=True, timeout=600)
    return int(out.stdout) / 1024


def verdict(value: float, bar: float) -> str:
    return "ok" if value <= bar else "OVER"


def line(label: str, seconds: float, bar: float | None = None, note: str = "") -> None:
    judged = f"bar {bar * 1000:5.0f} ms  {verdict(seconds, bar)}" if bar else ""
    print(f"  {label:<44} {seconds * 1000:8.1f} ms  {judged}  {note}".rstrip())


def aish(*args: str) -> list[str]:
    return [str(BIN / "aish"), *args]


def many_sessions(home: Path, count: int) -> dict:
    env = environment(home)
    store = FileStore(home / ".aish" / "sessions")
    for i in range(count):
        seed(store, f"sess_m{i:05d}", ("apollo", "athena", "hermes")[i % 3], 4, size=60)
    return env


def main() -> int:
    print(f"aish management benchmarks — python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}; medians of {RUNS} runs")
    over = 0
    with tempfile.TemporaryDirectory(prefix="aish-listbench-") as tmp:
        home = Path(tmp) / "h50"
        env, store = fifty_sessions(home)
        env = run_env(env)
        floor = wall(env, [sys.executable, "-c", "pass"])
        wall(env, aish("--list-sessions"), runs=2)  # bytecode and the config cache, written once
        print("\nWhole process:")
        line("python -c pass (the floor)", floor)
        for label, argv, bar in (
                ("aish --list-sessions (50 sessions)", aish("--list-sessions"), 0.05),
                ("aish --list-sessions --all --json (50)", aish("--list-sessions", "--all",
                                                               "--json"), 0.05),
                ("aish --session-info ID", aish("--session-info", "sess_b00000"), 0.05)):
            seconds = wall(env, argv)
            over += seconds > bar
            line(label, seconds, bar, f"(floor + {(seconds - floor) * 1000:.0f} ms)")

        big = Path(tmp) / "h10k"
        print("  (writing 10,000 sessions...)", flush=True)
        env10k = run_env(many_sessions(big, 10_000))
        wall(env10k, aish("--list-sessions"), runs=1)  # every summary cache written once
        seconds = wall(env10k, aish("--list-sessions"), runs=5)
        over += seconds > 0.25
        line("aish --list-sessions (10,000 sessions)", seconds, 0.25, "(median of 5)")

        print("\nPeak memory (RSS of the child), bar 30 MB:")
        for label, argv in (("python -c pass", [sys.executable, "-c", "pass"]),
                            ("aish --list-sessions (50)", aish("--list-sessions")),
                            ("aish --session-info ID", aish("--session-info", "sess_b00000")),
                            ("aish --list-sessions (10,000)", None)):
            mb = peak_mb(env10k if argv is None else env, argv or aish("--list-sessions"))
            bar = None if argv and argv[0] == sys.executable else 30.0
            over += bool(bar and mb > bar)
            print(f"  {label:<44} {mb:8.1f} MB  {verdict(mb, bar) if bar else ''}".rstrip())

        print("\n1,000 pairs against 1 pair (whole process), bar 1.2x:")
        seed(store, "sess_small", "apollo", 2)
        seed(store, "sess_large", "apollo", 2000)
        for name, args, whole in (("--session-info", (), False), ("--history", (), False),
                                  ("--list-branches", (), False), ("--who", (), False),
                                  ("--validate-session", (), True),
                                  ("--export-session", ("--format", "json"), True),
                                  ("--save-session", (), True)):
            small = wall(env, aish(name, "sess_small", *args))
            large = wall(env, aish(name, "sess_large", *args))
            ratio = large / small
            over += ratio > 1.2 and not whole
            label = f"aish {name} {' '.join(args)}".rstrip()
            judged = ("O(n) by definition: it reads (and prints) every record" if whole
                      else verdict(ratio, 1.2))
            print(f"  {label:<44} {small * 1000:7.1f} -> {large * 1000:7.1f} ms  "
                  f"x{ratio:4.2f}  {judged}")
        print("\nCommands that change a session, 1,000 pairs against 1 pair (each run on a fresh "
              "copy), bar 1.2x:")
        sessions_dir = home / ".aish" / "sessions"
        pristine = Path(tmp) / "pristine"
        pristine.mkdir()
        for sid in ("sess_small", "sess_large"):
            wall(env, aish("--session-info", sid), runs=1)  # its caches, as a used session has
            for path in sessions_dir.glob(f"*{sid}*"):
                shutil.copy2(path, pristine / path.name)

        def fresh() -> None:
            for path in pristine.iterdir():
                shutil.copy2(path, sessions_dir / path.name)
            for path in sessions_dir.glob("*sess_fresh*"):
                path.unlink()

        for args in (("--undo", "ID"), ("--branch-session", "ID", "alt"),
                     ("--title-session", "ID", "a title"), ("--end-session", "ID"),
                     ("--rename-session", "ID", "sess_fresh"), ("--checkout", "ID", "main")):
            small = wall(env, aish(*[a.replace("ID", "sess_small") for a in args]), before=fresh)
            large = wall(env, aish(*[a.replace("ID", "sess_large") for a in args]), before=fresh)
            ratio = large / small
            over += ratio > 1.2
            label = f"aish {' '.join(args)}"
            print(f"  {label:<44} {small * 1000:7.1f} -> {large * 1000:7.1f} ms  "
                  f"x{ratio:4.2f}  {verdict(ratio, 1.2)}")
        fresh()
    print(f"\n{over} figure(s) over their bar" if over else "\nevery figure within its bar")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
