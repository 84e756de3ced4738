"""Write the golden logs: sessions made by the version before the conversation tree (aee5a71).

Run once, with that version checked out somewhere, from the repository root::

    git worktree add --detach /tmp/old aee5a71
    .venv/bin/python tests/golden/make_golden.py /tmp/old

It drives the OLD console scripts (PYTHONPATH=/tmp/old) against the scripted server
(tests/fault_server.py), once on the file store and once on a real redis-server, and writes:

- ``<name>.jsonl``: each session's log as the old file store wrote it;
- ``redis/<name>.json``: the same session made on Redis: the log list and the summary hash,
  exactly as the old RedisStore left them;
- ``expected.json``: what the old version shows for each one (``--list-sessions --all --json``
  row, ``--session-info --json``, ``--validate-session --json``) and the messages it sends to
  the model when the session is continued with one more message.

The tests (tests/test_tree_golden.py) never run the old version: they compare against these.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from fault_server import FaultServer  # noqa: E402
from redis_support import start_redis, stop_redis  # noqa: E402

BIN = Path(sys.executable).parent
CONFIG = ("providers:\n  openai: {max_tokens: 24, temperature: 0, timeout: 20, "
          "max_retries: 0}\n")
NEXT = "one more question"


class Old:
    """The old version's console scripts in a throwaway HOME."""

    def __init__(self, old: Path, home: Path, server: FaultServer, redis_url: str | None):
        self.home = home
        (home / ".aish").mkdir(parents=True)
        config = CONFIG
        if redis_url:
            config += f"sessions:\n  storage: {{type: redis, url: '{redis_url}'}}\n"
        (home / ".aish" / "config.yaml").write_text(config)
        os.chmod(home / ".aish" / "config.yaml", 0o600)
        self.server = server
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AISH_", "OPENAI_"))}
        self.env.update(HOME=str(home), PYTHONPATH=str(old), OPENAI_BASE_URL=server.base,
                        OPENAI_API_KEY="test-key", PYTHONUNBUFFERED="1")

    def run(self, *argv: str, input: str | None = None, code: int = 0) -> str:
        done = subprocess.run([str(BIN / argv[0]), *argv[1:]], env=self.env,
                              input=(input or "").encode(), capture_output=True, timeout=300)
        assert done.returncode == code, (argv, done.returncode, done.stderr.decode())
        return done.stdout.decode()

    def new(self, ai: str, text: str, *flags: str) -> str:
        return self.run(ai, "--session", "--get-id", *flags, input=text).strip()


def scenarios(old: Old) -> dict[str, str]:
    """name -> session id, each made the way a user would have."""
    out = {}
    sid = old.new("apollo", "how do I read a file in python?")
    old.run("apollo", "--session", sid, input="and write one?")
    old.run("apollo", "--session", sid, input="thanks")
    out["plain"] = sid

    sid = old.new("apollo", "design a cache")
    old.run("athena", "--session", sid, "--shared", input="review the cache design")
    old.run("apollo", "--session", sid, input="apply the review")
    old.run("athena", "--session", sid, input="looks right now")
    out["shared"] = sid

    sid = old.new("prometheus", "plan step 1", "--context-window", "2")
    for n in (2, 3):
        old.run("prometheus", "--session", sid, input=f"plan step {n}")
    old.run("aish", "--end-session", sid)
    old.run("prometheus", "--session", sid, input="plan step 4 after the end")
    old.run("prometheus", "--session", sid, "--extend-context", "1", input="plan step 5")
    out["meta"] = sid

    sid = old.new("hermes", "explain recursion")
    old.server.script = ["500"]
    old.run("hermes", "--session", sid, input="explain it again, simpler", code=4)
    out["unanswered"] = sid
    return out


def observe(old: Old, sid: str, ai: str) -> dict:
    """What the old version shows for ``sid``, and what it sends when it is continued."""
    rows = json.loads(old.run("aish", "--list-sessions", "--all", "--json"))
    row = next(r for r in rows if r["id"] == sid)
    info = json.loads(old.run("aish", "--session-info", sid, "--json"))
    validate = json.loads(old.run("aish", "--validate-session", sid, "--json"))
    return {"id": sid, "ai": ai, "list": row, "info": info, "validate": validate}


def continued(old: Old, sid: str, ai: str) -> list[dict]:
    before = len(old.server.requests)
    old.run(ai, "--session", sid, input=NEXT)
    assert len(old.server.requests) == before + 1
    return old.server.requests[-1]["messages"]


OWNERS = {"plain": "apollo", "shared": "apollo", "meta": "prometheus", "unanswered": "hermes"}


def main(old_root: Path) -> None:
    expected: dict = {"next": NEXT, "file": {}, "redis": {}}
    (HERE / "redis").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, FaultServer(lifetime=600) as server:
        tmp_path = Path(tmp)
        old = Old(old_root, tmp_path / "file", server, None)
        ids = scenarios(old)
        logs = old.home / ".aish" / "sessions"
        for name, sid in ids.items():
            shutil.copyfile(logs / f"{sid}.jsonl", HERE / f"{name}.jsonl")
        for name, sid in ids.items():
            expected["file"][name] = observe(old, sid, OWNERS[name])
            expected["file"][name]["sent"] = continued(old, sid, OWNERS[name])

        redis = start_redis(tmp_path / "redis")
        try:
            url = redis.url
            old = Old(old_root, tmp_path / "redis-home", server, url)
            ids = scenarios(old)
            client = redis.client()
            for name, sid in ids.items():
                log = [x.decode() for x in client.lrange(f"aish:{{{sid}}}:log", 0, -1)]
                meta = {k.decode(): v.decode()
                        for k, v in client.hgetall(f"aish:{{{sid}}}:meta").items()}
                (HERE / "redis" / f"{name}.json").write_text(
                    json.dumps({"id": sid, "log": log, "meta": meta}, indent=1) + "\n")
            for name, sid in ids.items():
                expected["redis"][name] = observe(old, sid, OWNERS[name])
                expected["redis"][name]["sent"] = continued(old, sid, OWNERS[name])
        finally:
            stop_redis(redis)
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/old").resolve())
