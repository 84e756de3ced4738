"""What the warm process buys: whole-process piped exchanges with it on and off.

Run ``python benchmarks/warm_bench.py`` (with the venv's python). Everything runs in a
throwaway HOME and runtime folder; each figure is the median of RUNS whole-process runs:

- ``echo ... | apollo --session-id ID`` continuing a session against the scripted fault server
  answering at once (aish + the official openai client), bar 0.15 s with the warm process;
- the same with the embedded model (8-token replies): time to the first byte of the reply on
  stdout after the process started (bar 0.3 s) and to its end (bar 0.4 s), continuing a
  session and, with the warm process, starting a new one each run (the daemon has read the
  persona already, so only the message is new to the model);
- the peak RSS of the console-script process itself (the client), bar 60 MB with the warm
  process; the daemon's own size (and its model host's) is shown beside it;
- the first command, which starts the daemon and runs in-process itself, beside a command
  with the warm process off (each in a fresh HOME): starting it must not slow that command;
- the command right after the model host was killed (the daemon starts a new one at once).
"""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "tests"))

from fault_server import FaultServer  # noqa: E402

RUNS = 9
CONFIG = "providers:\n  local: {max_tokens: 8, temperature: 0}\n" \
         "  openai: {max_tokens: 8, temperature: 0, timeout: 60, max_retries: 0}\n"
BARS = {"exchange": 0.15, "first": 0.3, "whole": 0.4, "rss": 60.0}


def environment(root: Path, warm: bool, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AISH_", "OPENAI_", "XDG_RUNTIME_DIR"))}
    home = root / "home"
    runtime = root / "run"
    for folder in (home / ".aish", runtime):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    (home / ".aish" / "config.yaml").write_text(CONFIG)
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(runtime), AISH_AUTO_TITLE="false",
               AISH_WARM="1" if warm else "0", PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
               **extra)
    return env


def one_run(env: dict, session: str, text: str) -> tuple[float, float, float]:
    """(seconds to the first byte of stdout, seconds to the end, peak RSS in MB) of one
    ``echo TEXT | apollo --session-id SESSION``."""
    start = time.perf_counter()
    proc = subprocess.Popen([str(BIN / "apollo"), "--session-id", session], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(text.encode())
    proc.stdin.close()
    first_byte = proc.stdout.read(1)
    first = time.perf_counter() - start
    rest = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    end = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not (first_byte + rest).strip():
        raise SystemExit(f"apollo failed (exit {proc.returncode})")
    return first, end, usage.ru_maxrss / 1024


def daemon_rss(env: dict) -> float | None:
    lock = Path(env["XDG_RUNTIME_DIR"]) / "aish" / "warm.lock"
    try:
        return rss(int(lock.read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        return None


def host_rss(env: dict) -> float | None:
    """The model host's (named by its socket, model-PID.sock)."""
    for sock in (Path(env["XDG_RUNTIME_DIR"]) / "aish").glob("model-*.sock"):
        with contextlib.suppress(OSError, ValueError):
            return rss(int(sock.stem.removeprefix("model-")))
    return None


def rss(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def wait_for_daemon(env: dict, session: str) -> None:
    """Start the daemon (the first run does) and wait until it is listening."""
    one_run(env, session, "start")
    sock = Path(env["XDG_RUNTIME_DIR"]) / "aish" / "warm.sock"
    deadline = time.monotonic() + 120
    while not sock.exists():
        if time.monotonic() > deadline:
            raise SystemExit("the warm process did not start; see its warm.log")
        time.sleep(0.05)
    one_run(env, session, "warm")


def stop_daemon(env: dict) -> None:
    lock = Path(env["XDG_RUNTIME_DIR"]) / "aish" / "warm.lock"
    with contextlib.suppress(OSError, ValueError, IndexError):
        os.kill(int(lock.read_text().split()[0]), 15)


def measure(env: dict, session: str, warm: bool, fresh: bool = False) -> dict:
    """``fresh``: every run starts a session of its own (the prompt is the persona and one
    message); else every run continues one session (its window grows to ten pairs)."""
    if warm:
        wait_for_daemon(env, session)
    else:
        one_run(env, session, "first")
    runs = [one_run(env, f"{session}-{i}" if fresh else session, f"message {i}")
            for i in range(RUNS)]
    figures = {"first": statistics.median(r[0] for r in runs),
               "whole": statistics.median(r[1] for r in runs),
               "rss": statistics.median(r[2] for r in runs),
               "daemon": daemon_rss(env) if warm else None,
               "host": host_rss(env) if warm else None}
    if warm:
        stop_daemon(env)
    return figures


def first_commands(tmp: Path, server) -> dict[bool, float]:
    """Median whole time of a first command in a fresh HOME, warm process off and on."""
    times: dict[bool, list[float]] = {False: [], True: []}
    for i in range(5):
        for warm in (False, True):
            env = environment(tmp / f"first-{warm}-{i}", warm, OPENAI_BASE_URL=server.base,
                              OPENAI_API_KEY="bench")
            times[warm].append(one_run(env, "first", "hi")[1])
            if warm:  # let it come up, so that it does not load while the next one runs
                sock = Path(env["XDG_RUNTIME_DIR"]) / "aish" / "warm.sock"
                deadline = time.monotonic() + 120
                while not sock.exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                stop_daemon(env)
    return {warm: statistics.median(t) for warm, t in times.items()}


def after_host_killed(tmp: Path, rounds: int = 5) -> float:
    """Median whole time of the command right after the model host was SIGKILLed (the daemon
    starts a new host, which the command waits for). A fresh daemon each round: three quick
    host deaths in a row would make a daemon give its host up."""
    times = []
    for i in range(rounds):
        env = environment(tmp / f"killed-{i}", True)
        wait_for_daemon(env, "bench")
        (sock,) = (Path(env["XDG_RUNTIME_DIR"]) / "aish").glob("model-*.sock")
        host = int(sock.stem.removeprefix("model-"))
        os.kill(host, 9)
        while Path(f"/proc/{host}/stat").exists() and \
                Path(f"/proc/{host}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            time.sleep(0.01)
        times.append(one_run(env, "bench", "after the kill")[1])
        stop_daemon(env)
    return statistics.median(times)


def show(label: str, value: float, bar: float | None, unit: str = "s") -> None:
    mark = "" if bar is None else ("  ok" if value <= bar else "  OVER") + f" (bar {bar:g}{unit})"
    shown = f"{value:.3f} s" if unit == "s" else f"{value:.0f} MB"
    print(f"  {label:<44} {shown:>10}{mark}")


def main() -> None:
    print(f"median of {RUNS} whole-process runs; `python -c pass`: {python_start():.3f} s")
    with tempfile.TemporaryDirectory() as tmp, FaultServer(lifetime=3600) as server:
        for warm in (False, True):
            root = Path(tmp) / f"openai-{warm}"
            env = environment(root, warm, OPENAI_BASE_URL=server.base, OPENAI_API_KEY="bench")
            got = measure(env, "bench", warm)
            print(f"instant endpoint, warm process {'on' if warm else 'off'}:")
            show("piped exchange (whole process)", got["whole"], BARS["exchange"] if warm else None)
            show("client peak RSS", got["rss"], BARS["rss"] if warm else None, "MB")
            if got["daemon"]:
                show("warm process RSS", got["daemon"], None, "MB")
        first = first_commands(Path(tmp), server)
        print("a first command in a fresh HOME (it starts the daemon when on):")
        show("warm process off", first[False], None)
        show("warm process on", first[True], round(first[False] * 1.1, 3))
        for warm, fresh in ((False, False), (True, False), (True, True)):
            env = environment(Path(tmp) / f"local-{warm}-{fresh}", warm)
            got = measure(env, "bench", warm, fresh)
            print(f"embedded model, 8-token replies, warm process {'on' if warm else 'off'}, "
                  f"{'a new session each run' if fresh else 'continuing a session'}:")
            show("first reply byte after process start", got["first"],
                 BARS["first"] if warm else None)
            show("whole reply", got["whole"], BARS["whole"] if warm else None)
            show("client peak RSS", got["rss"], BARS["rss"] if warm else None, "MB")
            if got["daemon"]:
                show("warm process RSS", got["daemon"], None, "MB")
            if got["host"]:
                show("its model host's RSS (the model loaded)", got["host"], None, "MB")
        print("embedded model, the command right after its model host was killed:")
        show("whole reply (a new host loads the model)", after_host_killed(Path(tmp)), None)


def python_start() -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
