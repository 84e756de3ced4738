"""aish beside its peers, simonw/llm and shell_gpt, measured in one run against one server.

Run ``python benchmarks/peers_bench.py [--install]`` with aish's venv python (or ``make
bench-peers``). The peers live in a venv of their own (``~/.cache/aish-bench/peers``, made and
filled by pip with ``--install``, reused after). One scripted OpenAI-compatible server on
loopback (tests/fault_server.py, instant replies) answers every tool, each configured in a
throwaway HOME, so only the tools themselves are measured; nothing but pip goes online.

Printed side by side, as medians and as ratios to aish (aish with its warm process running,
as after a first command; beside it aish with ``AISH_WARM=0``, every command in-process):
- continue a conversation (one exchange);
- list 50 sessions (each tool's store seeded beforehand: aish's written in its format,
  shell_gpt's one chat it made copied 50 times, llm's by running it 50 times);
- the ``python -c pass`` floor;
- and aish's embedded-model exchange (8 tokens): time and the command's peak memory, warm
  and in-process.
"""

from __future__ import annotations

import contextlib
import json
import os
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

from bench import BIN, fifty_sessions  # noqa: E402
from fault_server import FaultServer  # noqa: E402

PEERS = Path(os.environ.get("AISH_BENCH_PEERS", Path.home() / ".cache" / "aish-bench" / "peers"))
PACKAGES = ("llm", "shell-gpt")
RUNS = 7
MODEL = "bench-model"


def install() -> None:
    if not (PEERS / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
    subprocess.run([str(PEERS / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                    *PACKAGES], check=True)


def median(argv: list[str], env: dict, runs: int = RUNS, input: str | None = None,
           cwd: str | None = None) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True, timeout=600, cwd=cwd,
                              input=input.encode() if input is not None else None,
                              stdin=subprocess.DEVNULL if input is None else None)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): "
                             f"{proc.stderr.decode()[-400:]}")
    return statistics.median(times)


def peak_mb(argv: list[str], env: dict, input: str) -> float:
    code = ("import resource, subprocess, sys\n"
            "subprocess.run(sys.argv[1:], input=sys.stdin.buffer.read(),"
            " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True,
                         input=input.encode(), check=True, timeout=600)
    return int(out.stdout) / 1024


def clean_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AISH_", "OPENAI_", "LLM_")) and k != "PYTHONDONTWRITEBYTECODE"}
    runtime = home / "run"  # aish's warm process: a socket folder of this run's own
    runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
    env.update(HOME=str(home), AISH_MAX_SESSIONS="100000", AISH_AUTO_TITLE="false",
               XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"),
               XDG_RUNTIME_DIR=str(runtime))
    return env


def warmed(argv: list[str], env: dict, input: str) -> dict:
    """``env`` with aish's warm process started by a first command and listening."""
    median(argv, env, runs=1, input=input)
    folder = Path(env["XDG_RUNTIME_DIR"]) / "aish"
    deadline = time.monotonic() + 120
    while not (folder / "warm.sock").exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"aish's warm process did not start; see {folder / 'warm.log'}")
        time.sleep(0.05)
    median(argv, env, runs=1, input=input)
    return env


def stop_warm(env: dict) -> None:
    lock = Path(env["XDG_RUNTIME_DIR"]) / "aish" / "warm.lock"
    with contextlib.suppress(OSError, ValueError, IndexError):
        os.kill(int(lock.read_text().split()[0]), 15)


def aish_setup(home: Path, base: str) -> dict:
    env, _ = fifty_sessions(home)
    env = {**clean_env(home), "OPENAI_BASE_URL": base, "OPENAI_API_KEY": "bench"}
    (home / ".aish" / "config.yaml").write_text(
        "providers:\n  local: {max_tokens: 8, temperature: 0}\n"
        "  openai: {max_tokens: 8, temperature: 0, max_retries: 0}\n")
    return env


def llm_setup(home: Path, base: str) -> dict:
    user = home / "llm"
    user.mkdir(parents=True)
    (user / "extra-openai-models.yaml").write_text(
        f"- model_id: {MODEL}\n  model_name: {MODEL}\n  api_base: {base}\n"
        "  api_key_name: bench\n")
    (user / "keys.json").write_text(json.dumps({"bench": "bench"}))
    env = {**clean_env(home), "LLM_USER_PATH": str(user), "LLM_MODEL": MODEL}
    for i in range(50):  # its store is SQLite written by itself: seed it the way users do
        median([str(PEERS / "bin" / "llm"), "-m", MODEL, f"question {i}"], env, runs=1)
    return env


def sgpt_setup(home: Path, base: str) -> dict:
    cache = home / "sgpt-chats"
    cache.mkdir(parents=True)
    config = home / ".config" / "shell_gpt"
    config.mkdir(parents=True)
    (config / ".sgptrc").write_text(
        # API_BASE_URL for shell_gpt 1.1 and later, OPENAI_API_HOST (no /v1) before. Not streamed:
    # shell_gpt 1.0 fails on the usage chunk (no choices) that ends the server's stream.
        f"OPENAI_API_KEY=bench\nAPI_BASE_URL={base}\n"
        f"OPENAI_API_HOST={base.removesuffix('/v1')}\nDEFAULT_MODEL={MODEL}\n"
        f"CHAT_CACHE_PATH={cache}\nCACHE_PATH={home / 'sgpt-cache'}\nCHAT_CACHE_LENGTH=100\n"
        "REQUEST_TIMEOUT=60\nDEFAULT_COLOR=magenta\nROLE_STORAGE_PATH="
        f"{home / 'sgpt-roles'}\nDEFAULT_EXECUTE_SHELL_CMD=false\nDISABLE_STREAMING=true\n"
        "CODE_THEME=dracula\nOPENAI_FUNCTIONS_PATH="
        f"{home / 'sgpt-functions'}\nOPENAI_USE_FUNCTIONS=false\nSHOW_FUNCTIONS_OUTPUT=false\n"
        "PRETTIFY_MARKDOWN=false\nUSE_LITELLM=false\nSHELL_INTERACTION=false\nOS_NAME=auto\n"
        "SHELL_NAME=auto\n")
    env = clean_env(home)
    # A chat is a file of JSON messages named by the chat, its first the role's system prompt:
    # one chat made by sgpt itself, copied under 49 more names.
    median([str(PEERS / "bin" / "sgpt"), "--chat", "chat0", "question 0"], env, runs=1)
    first = (cache / "chat0").read_text()
    for i in range(1, 50):
        (cache / f"chat{i}").write_text(first)
    return env


def main() -> int:
    if "--install" in sys.argv[1:]:
        install()
    have_peers = (PEERS / "bin" / "llm").exists() and (PEERS / "bin" / "sgpt").exists()
    print(f"aish and its peers — python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}; medians of {RUNS} runs, one instant loopback server")
    if not have_peers:
        print(f"  peers not installed in {PEERS}: run with --install (pip installs "
              f"{', '.join(PACKAGES)} there)")
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="aish-peers-") as tmp, \
            FaultServer(lifetime=3600) as server:
        root = Path(tmp)
        server.reply = "ok"
        env = aish_setup(root / "aish", server.base)
        floor = median([sys.executable, "-c", "pass"], env)
        median([str(BIN / "aish"), "--list-sessions"], env, runs=2)  # caches written once
        apollo = [str(BIN / "apollo"), "--session", "sess_b00000"]
        cold = {**env, "AISH_WARM": "0"}
        rows["aish (warm off)"] = {"continue": median(apollo, cold, input="one more"),
                                   "list": median([str(BIN / "aish"), "--list-sessions"], cold)}
        warmed(apollo, env, "one more")
        rows["aish"] = {"continue": median(apollo, env, input="one more"),
                        "list": median([str(BIN / "aish"), "--list-sessions"], env)}
        stop_warm(env)
        rows = {"aish": rows["aish"], "aish (warm off)": rows["aish (warm off)"]}
        if have_peers:
            env = llm_setup(root / "llm", server.base)
            llm = str(PEERS / "bin" / "llm")
            rows["llm"] = {"continue": median([llm, "-c", "one more"], env),
                           "list": median([llm, "logs", "list", "-n", "50"], env)}
            env = sgpt_setup(root / "sgpt", server.base)
            sgpt = str(PEERS / "bin" / "sgpt")
            rows["shell_gpt"] = {"continue": median([sgpt, "--chat", "chat0", "one more"], env),
                                 "list": median([sgpt, "--list-chats"], env)}
        print(f"\n  {'':<38}" + "".join(f"{name:>17}" for name in rows))
        for key, label in (("continue", "continue a conversation (1 exchange)"),
                           ("list", "list 50 sessions")):
            print(f"  {label:<38}" + "".join(f"{r[key] * 1000:14.1f} ms" for r in rows.values()))
            print(f"  {'  as a ratio to aish':<38}"
                  + "".join(f"{r[key] / rows['aish'][key]:16.2f}x" for r in rows.values()))
        print(f"  {'python -c pass (the floor)':<38}{floor * 1000:14.1f} ms"
              f"{floor / rows['aish']['continue']:16.2f}x of aish's exchange")

        local = {**aish_setup(root / "local", server.base)}
        local.pop("OPENAI_BASE_URL")
        local.pop("OPENAI_API_KEY")
        print()
        argv = [str(BIN / "apollo"), "--session", "--provider", "local"]
        try:
            for label in ("warm off", "warm"):
                case = warmed(argv, local, "hello") if label == "warm" else \
                    {**local, "AISH_WARM": "0"}
                seconds = median(argv, case, runs=RUNS if label == "warm" else 3, input="hello")
                mb = peak_mb(argv, case, "hello")
                print(f"  aish, embedded model, one exchange (8 tokens), {label + ':':<10}"
                      f"{seconds * 1000:7.0f} ms, the command's peak {mb:.0f} MB")
        except SystemExit as exc:
            print(f"\n  aish, embedded model: unavailable ({str(exc)[:200]})")
        finally:
            stop_warm(local)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
