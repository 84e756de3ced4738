"""Helpers for the import tests: the real peer tools, and reading back what was imported.

llm is in the test extra and shares the project's venv. shell_gpt and gptme cannot: both pin
``openai<3`` (and shell_gpt ``rich<14``) while aish runs on newer releases, so each gets a
throwaway venv of its own, made once from the package registry and kept under pytest's cache
directory (``.pytest_cache/d/aish-import-tools``) for later runs; so does an older llm, whose
logs have the earlier schema.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
from pathlib import Path

# What each tool's venv installs (shell_gpt imports click without declaring it; llm 0.31, the
# last to log into the `responses` table only, needs httpx and an openai before 3).
TOOLS = {"sgpt": ["shell-gpt", "click"], "gptme": ["gptme"],
         "llm-0.31": ["llm==0.31.1", "openai<3", "httpx"]}


def tool_venv(cache_dir: Path, name: str) -> Path:
    """The bin folder of a venv holding tool ``name``, made on first use."""
    root = cache_dir / name
    ready = root / ".ready"
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs build it once
        if not ready.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(root)], check=True,
                           capture_output=True, timeout=300)
            subprocess.run([str(root / "bin" / "pip"), "install", "-q", *TOOLS[name]],
                           check=True, capture_output=True, timeout=900)
            ready.write_text("ok\n")
    return root / "bin"


def saved(aish, sid: str) -> dict:
    """The session as `--save-session` writes it, after checking it validates clean."""
    check = aish("aish", "--validate-session", sid)
    assert check.returncode == 0, (check.stdout + check.stderr).decode()
    proc = aish("aish", "--save-session", sid)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def said(doc: dict) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in doc["messages"]]


def imported_ids(proc) -> list[str]:
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"Traceback" not in proc.stderr
    return proc.stdout.decode().split()
