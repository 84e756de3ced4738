"""The embedded model through the warm process: the model host answers with the same replies and
stored sessions as a command that loads the model itself, and leaves with its daemon (a host
that dies is replaced: tests/test_warm_hostrestart.py). Kept to a few 8-token replies."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import BIN, run
from test_warm import messages, other_home, stored
from warm_support import alive, wait_until

from aish.errors import INTERRUPTED

SHORT = "providers:\n  local: {max_tokens: 8, temperature: 0}\n"
# A new session, its continuation (the host has just read most of that prompt), and another new
# session (the host keeps the persona it read, not the rest).
STEPS = [("apollo", "--session-id", "m"), ("apollo", "--session-id", "m"),
         ("apollo", "--session-id", "n")]
TEXTS = ["Say hello.", "Say it again.", "Name a colour."]


def hosts(warm) -> list[int]:
    return [int(p.stem.removeprefix("model-")) for p in warm.folder.glob("model-*.sock")]


STORY = "Write a long story about the sea."


def long_replies(env: dict) -> dict:
    """Let apollo reply at length (the others stay short), so a reply can be cut mid-way."""
    config = Path(env["HOME"]) / ".aish" / "config.yaml"
    config.write_text(SHORT + "specialists:\n  apollo: {max_tokens: 400}\n")
    return env


def replying(env: dict, session: str) -> subprocess.Popen:
    """apollo asked for a long story, once its reply has begun."""
    proc = subprocess.Popen([str(BIN / "apollo"), "--session-id", session], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(STORY.encode())
    proc.stdin.close()
    proc.stdin = None
    assert os.read(proc.stdout.fileno(), 1)  # replying
    return proc


def play(env: dict) -> list[tuple[int, bytes, bytes]]:
    outcomes = []
    for argv, text in zip(STEPS, TEXTS, strict=True):
        result = run(env, *argv, input=text)
        outcomes.append((result.returncode, result.stdout, result.stderr))
    return outcomes


@pytest.mark.model
def test_the_model_host_gives_the_same_replies_and_sessions(home, warm, tmp_path):
    (Path(home["HOME"]) / ".aish" / "config.yaml").write_text(SHORT)
    plain_env = other_home(home, tmp_path / "plain")
    in_process = play(plain_env)
    assert all(code == 0 and out.strip() for code, out, _ in in_process), in_process
    warm_env = warm.env(home)
    warm.start(warm_env)
    assert len(hosts(warm)) == 1  # the daemon listens only once its host holds the model
    assert play(warm_env) == in_process
    assert warm.served() == len(STEPS)
    assert stored(Path(home["HOME"]) / ".aish" / "sessions") == \
        stored(Path(plain_env["HOME"]) / ".aish" / "sessions")


@pytest.mark.model
def test_the_model_host_leaves_with_its_daemon(home, warm):
    (Path(home["HOME"]) / ".aish" / "config.yaml").write_text(SHORT)
    warm.start(warm.env(home))
    (host,) = hosts(warm)
    warm.stop()
    wait_until(lambda: not alive(host), "the model host to leave")
    assert hosts(warm) == []


@pytest.mark.model
def test_ctrl_c_mid_reply_stops_the_model_host_for_the_next_command(home, warm, sessions_dir):
    warm_env = warm.env(home)
    warm.start(long_replies(warm_env))
    proc = replying(warm_env, "long")
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == INTERRUPTED, err
    kept = messages(sessions_dir, "long")
    assert kept[0] == ("user", STORY)
    # The host stopped generating for it, and answers the next command.
    wait_until(lambda: "left mid-reply" in warm.log.read_text(), "the host to stop")
    result = run(warm_env, "athena", "--session-id", "next", input="Say hello.")
    assert result.returncode == 0 and result.stdout.strip(), result.stderr
    assert warm.served() == 2
