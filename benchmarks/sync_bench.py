"""What `aish --sync --dir` costs between two devices, as a user runs it.

Run ``python benchmarks/sync_bench.py`` (with the venv's python). Two throwaway HOMEs (laptop,
desktop) and a shared folder; laptop holds SESSIONS sessions of PAIRS question/answer pairs:

- laptop's first sync (everything pushed), desktop's first sync (everything pulled);
- an idle sync (nothing to do), which reads only metadata (log sizes, change times);
- a sync after one new exchange in one session;
- an idle sync of IDLE_SESSIONS small sessions, before (reading every log, as the first
  version of sync did and as ``skip_idle=False`` still does) and after the idle fast path,
  in process so that the figure is the sync's own.

Wall times are the median of a few runs; the machine's load shows in them.
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

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from aish import config as config_module  # noqa: E402
from aish.messages import ASSISTANT, USER, Message  # noqa: E402
from aish.sessions import Sessions  # noqa: E402
from aish.store.filestore import FileStore  # noqa: E402

SESSIONS, PAIRS, RUNS = 50, 50, 3
IDLE_SESSIONS = 200


def device(root: Path, name: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AISH_", "OPENAI_"))}
    env.update(HOME=str(root / name), AISH_DEVICE_NAME=name, AISH_AUTO_TITLE="false")
    (root / name / ".aish").mkdir(parents=True)
    return env


def fill(env: dict) -> None:
    config = config_module.load(env)
    sessions = Sessions(FileStore(config.session_dir), config)
    start = time.time() - 3600
    for n in range(SESSIONS):
        messages = []
        for i in range(PAIRS):
            messages.append(Message(USER, f"question {i} " + "x" * 200, "apollo", start + i))
            messages.append(Message(ASSISTANT, f"answer {i} " + "y" * 400, "apollo",
                                    start + i + 0.5))
        sessions.create("apollo", f"s{n}", messages=messages, counted=False)


def timed(env: dict, shared: Path) -> float:
    began = time.perf_counter()
    proc = subprocess.run([str(BIN / "aish"), "--sync", "--dir", str(shared)], env=env,
                          capture_output=True)
    took = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(proc.stderr.decode())
    return took


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="aish-sync-bench-"))
    try:
        laptop, desktop = device(root, "laptop"), device(root, "desktop")
        shared = root / "shared"
        fill(laptop)
        print(f"{SESSIONS} sessions x {PAIRS * 2} messages")
        print(f"laptop first sync (push all):   {timed(laptop, shared):6.2f} s")
        print(f"desktop first sync (pull all):  {timed(desktop, shared):6.2f} s")
        timed(laptop, shared)
        idle = statistics.median([timed(desktop, shared) for _ in range(RUNS)])
        print(f"idle sync (nothing to do):      {idle:6.2f} s")
        config = config_module.load(laptop)
        sessions = Sessions(FileStore(config.session_dir), config)
        session = sessions.open("apollo", "s7")
        session.add(Message(USER, "one more", "apollo", time.time()))
        session.add(Message(ASSISTANT, "answer", "apollo", time.time()))
        session.save()
        print(f"one new exchange, laptop:       {timed(laptop, shared):6.2f} s")
        print(f"one new exchange, desktop:      {timed(desktop, shared):6.2f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    idle_fast_path()


def idle_fast_path() -> None:
    from aish.devices import this_device
    from aish.management.sync_devices import Syncer
    from aish.management.sync_state import SyncState
    from aish.management.sync_transport import FolderTransport

    root = Path(tempfile.mkdtemp(prefix="aish-sync-bench-"))
    try:
        env = device(root, "laptop")
        config = config_module.load(env)
        sessions = Sessions(FileStore(config.session_dir), config)
        start = time.time() - 3600
        for n in range(IDLE_SESSIONS):
            messages = [Message(USER if i % 2 == 0 else ASSISTANT, f"message {i} " + "x" * 300,
                                "apollo", start + i) for i in range(20)]
            sessions.create("apollo", f"i{n}", messages=messages, counted=False)
        me = this_device(config.home, env)

        def once(skip_idle: bool) -> float:
            began = time.perf_counter()
            Syncer(sessions, FolderTransport(root / "shared"), me, SyncState(config.home),
                   time.time(), skip_idle=skip_idle).run()
            return time.perf_counter() - began

        once(True)
        once(True)  # the first quiet run records the fingerprints
        before = statistics.median([once(False) for _ in range(RUNS)])
        after = statistics.median([once(True) for _ in range(RUNS)])
        print(f"idle sync, {IDLE_SESSIONS} sessions, every log read:  {before:6.3f} s")
        print(f"idle sync, {IDLE_SESSIONS} sessions, metadata only:   {after:6.3f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
