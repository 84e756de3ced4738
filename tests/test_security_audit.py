"""The audit log, ~/.aish/audit.log: one private JSON line per operation on a session, saying who
(user, AI, process), what, which session and when — on either backend."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import run

from aish.audit import AuditLog


@pytest.fixture(params=["file", "redis"])
def env(request, home, server):
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        cfg = Path(home["HOME"]) / ".aish" / "config.yaml"
        cfg.write_text(cfg.read_text() + f"sessions:\n  storage: {{type: redis, url: '{url}'}}\n")
    return {**home, "OPENAI_BASE_URL": server.base, "OPENAI_API_KEY": "k"}


def entries(env: dict) -> list[dict]:
    path = Path(env["HOME"]) / ".aish" / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()]


def ok(env: dict, *args: str, input=None) -> str:
    result = run(env, *args, input=input, timeout=600)
    assert result.returncode == 0, (args, result.stderr.decode())
    return result.stdout.decode()


def test_every_operation_is_audited(env):
    sid = ok(env, "apollo", "--session", "--get-id", input="hello").strip()
    ok(env, "apollo", "--session", sid, input="more")
    ok(env, "athena", "--session", sid, "--shared", input="review")
    ok(env, "apollo", "--session", sid, "--end")
    ok(env, "aish", "--end-session", sid)
    saved = ok(env, "aish", "--save-session", sid)
    ok(env, "aish", "--export-session", sid)
    ok(env, "aish", "--restore-session", "--as", "copy", input=saved)
    ok(env, "aish", "--save-template", "tpl", sid)
    ok(env, "aish", "--prune-session", "copy", "--keep-recent", "1")
    ok(env, "aish", "--repair-session", "copy")
    ok(env, "hermes", "--session-id", "other", input="x")
    ok(env, "aish", "--merge-sessions", f"{sid},other", "--output", "merged")
    ok(env, "aish", "--remove-sessions", "--ai", "hermes")

    log = entries(env)
    actions = [(e["action"], e["session"], e["ai"]) for e in log]
    for expected in [("create", sid, "apollo"), ("continue", sid, "apollo"),
                     ("continue", sid, "athena"), ("end", sid, "apollo"), ("end", sid, None),
                     ("save", sid, "apollo"), ("export", sid, "apollo"),
                     ("restore", "copy", "apollo"), ("template", sid, "apollo"),
                     ("prune", "copy", "apollo"), ("merge", "merged", "apollo")]:
        assert expected in actions, (expected, actions)
    assert any(a == "remove" for a, _, _ in actions), actions
    # repair only rewrites what is damaged: a healthy session needs no entry, and gets none
    user = getpass.getuser()
    for entry in log:
        assert entry["user"] == user
        assert isinstance(entry["pid"], int) and entry["pid"] != os.getpid()
        when = datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%S%z")
        assert abs(when.timestamp() - time.time()) < 600
    assert len({e["pid"] for e in log}) > 5  # one process per command above
    prune = next(e for e in log if e["action"] == "prune")
    assert prune["backup"]  # where the pre-rewrite content went


def test_the_log_is_private(env):
    ok(env, "apollo", "--session-id", "p", input="hi")
    aish_dir = Path(env["HOME"]) / ".aish"
    assert (aish_dir / "audit.log").stat().st_mode & 0o777 == 0o600


def test_a_log_readable_by_others_is_made_private(tmp_path):
    path = tmp_path / "audit.log"
    path.write_text("")
    path.chmod(0o644)
    AuditLog(path).record("create", "s", "apollo")
    assert path.stat().st_mode & 0o777 == 0o600


def test_concurrent_processes_write_whole_lines(tmp_path):
    path = tmp_path / "audit.log"
    script = ("import sys; from pathlib import Path; from aish.audit import AuditLog\n"
              "log = AuditLog(Path(sys.argv[1]))\n"
              "for i in range(200): log.record('continue', f's{i}', 'apollo', pad='x' * 3000)\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path)]) for _ in range(6)]
    assert all(p.wait(timeout=600) == 0 for p in procs)
    lines = path.read_text().splitlines()
    assert len(lines) == 1200
    assert all(json.loads(line)["action"] == "continue" for line in lines)


def test_auditing_never_breaks_the_operation(tmp_path):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    AuditLog(blocked / "audit.log").record("create", "s", "apollo")  # no exception
