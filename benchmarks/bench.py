"""What the pipe face costs, measured as a user meets it.

Run ``python benchmarks/bench.py`` (with the venv's python). Everything runs in a throwaway HOME:

- wall time of ``aish --list-sessions`` with 50 sessions, and of ``aish --session-info ID``;
- one piped exchange (``echo ... | apollo --session ID``) against a loopback endpoint: the scripted
  fault server answering at once (the cost of aish + the openai client), and llama-cpp-python's
  own OpenAI-compatible server running the embedded model;
- one piped exchange with the embedded model (llama-cpp-python in process);
- the cost of one more message in sessions of 10 / 1,000 / 10,000 messages, in process (the
  session core + file store with an instant provider) and as a whole piped exchange: it should
  not grow with the history, since only the window is read, from the end of the log;
- a check that ``aish --list-sessions`` imports no model client or rich renderer.

Wall times are the median of several runs; the machine's load shows in them.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from fault_server import FaultServer  # noqa: E402

from aish.messages import ASSISTANT, USER, Message  # noqa: E402
from aish.store.filestore import FileStore  # noqa: E402

HEAVY = ("openai", "llama_cpp", "prompt_toolkit", "rich.markdown")
CONFIG = "providers:\n  local: {max_tokens: 24, temperature: 0}\n" \
         "  openai: {max_tokens: 24, temperature: 0, timeout: 60, max_retries: 0}\n"


def environment(home: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AISH_", "OPENAI_"))}
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
               AISH_MAX_SESSIONS="100000", **extra)
    (home / ".aish").mkdir(parents=True, exist_ok=True)
    (home / ".aish" / "config.yaml").write_text(CONFIG)
    return env


def timed(env: dict, *argv: str, input: str | None = None, runs: int = 5) -> float:
    """Median wall time of running a console script, in seconds; fails loudly on an error."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run([str(BIN / argv[0]), *argv[1:]], env=env, capture_output=True,
                                input=input.encode() if input is not None else None,
                                stdin=subprocess.DEVNULL if input is None else None, timeout=600)
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {result.stderr.decode().strip()}")
    return statistics.median(times)


def seed(store: FileStore, sid: str, owner: str, messages: int, size: int = 200) -> None:
    store.create({"id": sid, "owner": owner, "created": time.time(), "context_window": 10,
                  "participants": [owner], "shared": False, "state": "active"})
    text = "lorem ipsum dolor sit amet " * (size // 27 + 1)
    batch = []
    now = time.time()
    for i in range(messages):
        role = USER if i % 2 == 0 else ASSISTANT
        batch.append(Message(role, f"{i} {text[:size]}", owner, now).to_record())
        if len(batch) == 1000:
            store.append(sid, batch)
            batch = []
    if batch:
        store.append(sid, batch)


def fifty_sessions(home: Path) -> tuple[dict, FileStore]:
    """A HOME with 50 sessions of 20 messages (what the listing figures are measured on)."""
    env = environment(home)
    store = FileStore(home / ".aish" / "sessions")
    for i in range(50):
        seed(store, f"sess_b{i:05d}", ("apollo", "athena", "hermes")[i % 3], 20)
    return env, store


def row(label: str, seconds: float, note: str = "") -> None:
    print(f"  {label:<58} {seconds * 1000:9.1f} ms  {note}")


class Instant:
    """A provider that answers at once, so only the session core and the store are measured."""

    endpoint = "instant"

    def stream(self, chat, specialist):
        from aish.messages import Chunk

        yield Chunk("ok")
        yield Chunk(finished=True)


def in_process_cost(home: Path, sid: str, rounds: int = 50) -> tuple[float, float]:
    """Median and minimum time of open + exchange + save (two fsyncs: disk latency shows)."""
    from aish.config import load
    from aish.sessions import Sessions
    from aish.specialists import roster

    config = load({"HOME": str(home)})
    sessions = Sessions(FileStore(config.session_dir), config)
    apollo = roster({})["apollo"]
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        session = sessions.open("apollo", sid)
        session.exchange(apollo, "one more", Instant())
        session.save()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def start_llama_server() -> tuple[subprocess.Popen, str] | None:
    from aish.providers.local import bundled_model

    model = bundled_model()
    if model is None:
        return None
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from aish.providers.local import _threads

    threads = str(_threads())  # the same threads as the embedded model, for a fair comparison
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model),
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
                             "--n_threads", threads, "--n_threads_batch", threads],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            return None
        try:
            with urllib.request.urlopen(base + "/models", timeout=2):
                return proc, base
        except OSError:
            time.sleep(0.3)
    proc.kill()
    return None


def import_check(env: dict) -> list[str]:
    probe = ("import sys\nfrom aish.cli import main\nmain(['--list-sessions'])\n"
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                            cwd=REPO, timeout=60)
    last = result.stderr.decode().strip().splitlines()[-1:] or [""]
    return [m for m in last[0].split(",") if m]


def main() -> int:
    print(f"aish benchmarks — python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="aish-bench-") as tmp:
        home = Path(tmp) / "home"
        env, store = fifty_sessions(home)

        print("\nManagement (50 sessions of 20 messages):")
        row("aish --list-sessions", timed(env, "aish", "--list-sessions", runs=7))
        row("aish --list-sessions --all --json", timed(env, "aish", "--list-sessions", "--all",
                                                       "--json", runs=7))
        row("aish --session-info sess_b00000", timed(env, "aish", "--session-info",
                                                      "sess_b00000", runs=7))
        heavy = import_check(env)
        print(f"  --list-sessions imports {', '.join(heavy) if heavy else 'none of'} "
              f"{'/'.join(HEAVY)}" + ("  <-- FAIL" if heavy else "  (ok)"))

        print("\nOne piped exchange (echo ... | apollo --session ID):")
        with FaultServer(lifetime=3600) as server:
            fast = {**env, "OPENAI_BASE_URL": server.base, "OPENAI_API_KEY": "bench"}
            row("fault server on loopback, instant reply, 20-message session",
                timed(fast, "apollo", "--session", "sess_b00000", input="hello"),
                "(aish + openai client)")
            row("aish --version (process start-up, for scale)", timed(env, "aish", "--version"))

            llama = start_llama_server()
            if llama is None:
                print("  llama_cpp.server unavailable (install aish[local] and the test extra)")
            else:
                proc, base = llama
                try:
                    served = {**env, "OPENAI_BASE_URL": base, "OPENAI_API_KEY": "bench"}
                    timed(served, "apollo", "--session", input="warm up", runs=1)
                    row("llama_cpp.server on loopback, embedded model, new session",
                        timed(served, "apollo", "--session", input="hello", runs=3),
                        "(24 tokens)")
                finally:
                    proc.terminate()
                    proc.wait(timeout=10)
            row("embedded model in process, new session",
                timed(env, "apollo", "--session", input="hello", runs=3),
                "(load + 24 tokens)")

            print("\nCost of one more message as the history grows (window 10 pairs):")
            for n in (10, 1_000, 10_000):
                sid = f"sess_h{n:05d}"
                seed(store, sid, "apollo", n)
                size = (store.root / f"{sid}.jsonl").stat().st_size
                median, fastest = in_process_cost(home, sid)
                row(f"{n:>6} messages ({size / 1e6:5.2f} MB): session core + store", median,
                    f"(open, exchange, save; fastest {fastest * 1000:.1f} ms)")
                row(f"{n:>6} messages: whole piped exchange, fault server",
                    timed(fast, "apollo", "--session", sid, input="hello"))

    print("\nRendering a long streamed Markdown reply in the shell (should grow linearly):")
    import render_bench

    render_bench.main()
    return 1 if heavy else 0


if __name__ == "__main__":
    raise SystemExit(main())
