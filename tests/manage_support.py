"""Helpers for the management tests: sessions built in-process (no model), in the same HOME the
`aish` fixture runs the real console script in."""

from __future__ import annotations

import json
import time
from pathlib import Path

from aish import config as config_module
from aish.messages import ASSISTANT, USER, Message
from aish.sessions import Sessions
from aish.store.filestore import FileStore

HOUR = 3600.0


def select_redis(env: dict, url: str) -> None:
    """Make the configuration in ``env``'s HOME keep sessions in the Redis server at ``url``."""
    cfg = Path(env["HOME"]) / ".aish" / "config.yaml"
    cfg.write_text(cfg.read_text() + f"sessions:\n  storage: {{type: redis, url: '{url}'}}\n")


def sessions_for(home: dict, now: float | None = None, **env: str) -> Sessions:
    """Sessions over the file store of the test HOME; ``now`` fixes the clock."""
    config = config_module.load({**home, **env})
    store = FileStore(config.session_dir, max_session_bytes=config.max_session_bytes)
    clock = (lambda: now) if now is not None else time.time
    return Sessions(store, config, now=clock)


def conversation(ai: str, pairs: int, start: float, step: float = 10.0,
                 tag: str = "") -> list[Message]:
    """``pairs`` question/answer pairs addressed to ``ai``, ``step`` seconds apart."""
    out = []
    for i in range(pairs):
        t = start + i * step
        out.append(Message(USER, f"{tag}question {i} for {ai}", ai, t))
        out.append(Message(ASSISTANT, f"{tag}answer {i} from {ai}", ai, t + 1))
    return out


def make_session(home: dict, sid: str, ai: str = "apollo", pairs: int = 3,
                 age: float = 0.0, step: float = 10.0, **create) -> str:
    """A stored session whose last activity was a little over ``age`` seconds ago."""
    start = time.time() - age - pairs * step
    sessions = sessions_for(home, now=start)
    sessions.create(ai, sid, messages=conversation(ai, pairs, start, step), **create)
    return sid


def session_dir(home: dict) -> Path:
    return Path(home["HOME"]) / ".aish" / "sessions"


def log_path(home: dict, sid: str) -> Path:
    return session_dir(home) / f"{sid}.jsonl"


def backups(home: dict, sid: str | None = None) -> list[Path]:
    folder = session_dir(home) / "backup"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if sid is None or p.name.startswith(sid + "-"))


def stdout(proc) -> str:
    return proc.stdout.decode()


def stderr(proc) -> str:
    return proc.stderr.decode()


def ok(proc) -> str:
    assert proc.returncode == 0, (proc.returncode, stderr(proc))
    assert b"Traceback" not in proc.stderr
    return stdout(proc)


def audit_actions(home: dict) -> list[tuple[str, str | None]]:
    path = Path(home["HOME"]) / ".aish" / "audit.log"
    if not path.exists():
        return []
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    return [(e["action"], e["session"]) for e in entries]


def race_programs(env: dict, argv: list[str], writers: int, rounds: int) -> list[str]:
    """``writers`` threads each running the program ``argv`` ``rounds`` times at once, sending
    ``msg-N-R``; returns what failed (empty: every run exited 0)."""
    import threading

    from conftest import run

    start = threading.Barrier(writers)
    failures: list[str] = []

    def writer(n: int) -> None:
        start.wait()  # all begin together, so that they race
        for r in range(rounds):
            done = run(env, *argv, input=f"msg-{n}-{r}", timeout=600, AISH_MAX_SESSIONS="1000")
            if done.returncode != 0:
                failures.append(f"{n}/{r}: exit {done.returncode}: {done.stderr.decode()!r}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures
