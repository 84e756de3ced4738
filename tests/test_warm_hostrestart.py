"""A model host that dies is replaced: the daemon reaps it and starts a new one, so the next
command is still answered by a host (not by a model it loads itself), with the same replies and
stored sessions as in-process; a host killed mid-reply fails only that reply (exit 4, the
message kept); a host that keeps dying is given up, and commands load the model themselves.
Kept to a few 8-token replies."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import run
from test_warm import messages, other_home, stored
from test_warm_model import SHORT, STORY, hosts, long_replies, replying
from warm_support import alive, wait_until

from aish.errors import PROVIDER

GAVE_UP = "giving up on it"
STEPS = [(("apollo", "--session-id", "m"), "Say hello."),
         (("apollo", "--session-id", "m"), "Say it again.")]


def answered(warm, host: int) -> int:
    """How many replies ``host`` gave (it logs that it served one, nothing of its text)."""
    return warm.log.read_text().count(f"model host {host} answered a command")


def reaped(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


def outcome(result: subprocess.CompletedProcess) -> tuple[int, bytes, bytes]:
    return result.returncode, result.stdout, result.stderr


@pytest.mark.model
def test_a_host_killed_between_commands_is_replaced_for_the_next(home, warm, tmp_path):
    (Path(home["HOME"]) / ".aish" / "config.yaml").write_text(SHORT)
    plain_env = other_home(home, tmp_path / "plain")
    in_process = [outcome(run(plain_env, *argv, input=text)) for argv, text in STEPS]
    assert all(code == 0 and out.strip() for code, out, _ in in_process), in_process
    warm_env = warm.env(home)
    daemon = warm.start(warm_env)
    (first,) = hosts(warm)
    (argv, text), (argv2, text2) = STEPS
    got = [outcome(run(warm_env, *argv, input=text))]
    assert answered(warm, first) == 1
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: not alive(first), "the model host to die")
    got.append(outcome(run(warm_env, *argv2, input=text2)))
    assert got == in_process
    # The same daemon, which reaped the dead host before it took the command, and a new host
    # that answered it.
    assert warm.pid() == daemon and reaped(first)
    (second,) = hosts(warm)
    assert second != first and answered(warm, second) == 1
    assert warm.served() == 2
    assert stored(Path(home["HOME"]) / ".aish" / "sessions") == \
        stored(Path(plain_env["HOME"]) / ".aish" / "sessions")


@pytest.mark.model
def test_a_host_killed_mid_reply_fails_that_reply_and_the_next_is_answered(
        home, warm, sessions_dir):
    warm_env = warm.env(home)
    daemon = warm.start(long_replies(warm_env))
    (first,) = hosts(warm)
    proc = replying(warm_env, "long")
    os.kill(first, signal.SIGKILL)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == PROVIDER, err
    assert err.count(b"\n") == 1 and b"Traceback" not in err, err
    assert messages(sessions_dir, "long")[0] == ("user", STORY)
    wait_until(lambda: not alive(first), "the model host to die")
    result = run(warm_env, "athena", "--session-id", "next", input="Say hello.")
    assert result.returncode == 0 and result.stdout.strip(), result.stderr
    assert warm.pid() == daemon and reaped(first)
    (second,) = hosts(warm)
    assert second != first and answered(warm, second) == 1
    (reply,) = [text for role, text in messages(sessions_dir, "next") if role == "assistant"]
    assert reply.strip() in result.stdout.decode()


@pytest.mark.model
def test_a_host_that_keeps_dying_is_given_up_and_commands_load_the_model(
        home, warm, tmp_path, sessions_dir):
    (Path(home["HOME"]) / ".aish" / "config.yaml").write_text(SHORT)
    plain_env = other_home(home, tmp_path / "plain")
    argv, text = STEPS[0]
    in_process = outcome(run(plain_env, *argv, input=text))
    warm_env = warm.env(home)
    daemon = warm.start(warm_env)
    # Each host the daemon starts is killed as soon as its socket appears: a host that dies at
    # once, again and again.
    killed: set[int] = set()
    while GAVE_UP not in warm.log.read_text():
        new = wait_until(lambda: (set(hosts(warm)) - killed) or GAVE_UP in warm.log.read_text(),
                         "a new model host, or the daemon to give up")
        for pid in new if isinstance(new, set) else ():
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
    assert len(killed) >= 3
    assert warm.log.read_text().count(GAVE_UP) == 1
    assert hosts(warm) == [] and all(reaped(pid) for pid in killed)
    # Still served by the daemon, whose command loads the model itself.
    assert outcome(run(warm_env, *argv, input=text)) == in_process
    assert warm.pid() == daemon and warm.served() == 1
    assert "answered a command" not in warm.log.read_text()
    assert hosts(warm) == [] and warm.log.read_text().count(GAVE_UP) == 1
    assert stored(sessions_dir) == stored(Path(plain_env["HOME"]) / ".aish" / "sessions")


def test_a_host_that_cannot_load_its_model_is_tried_three_times_then_given_up(
        home, warm, tmp_path):
    bad = Path(home["HOME"]) / "broken.gguf"
    bad.write_bytes(b"GGUF" + bytes(64))  # a model file no llama.cpp can load
    (Path(home["HOME"]) / ".aish" / "config.yaml").write_text(
        f"providers:\n  local: {{max_tokens: 8, model_path: {bad}}}\n")
    plain_env = other_home(home, tmp_path / "plain")
    argv, text = STEPS[0]
    in_process = run(plain_env, *argv, input=text)
    warm_env = warm.env(home)
    daemon = warm.start(warm_env)
    wait_until(lambda: GAVE_UP in warm.log.read_text(), "the daemon to give up on its host")
    log = warm.log.read_text()
    assert log.count(" ended (exit 1)") == 3 and log.count(GAVE_UP) == 1
    assert hosts(warm) == [] and warm.children() == []  # each one reaped
    result = run(warm_env, *argv, input=text)
    # The command's own error, as in-process: the model named, the message kept.
    assert result.returncode == in_process.returncode == PROVIDER
    assert result.stdout == in_process.stdout == b""
    first_line = result.stderr.splitlines()[0]
    assert first_line == in_process.stderr.splitlines()[0] and b"broken.gguf" in first_line
    assert warm.pid() == daemon and warm.served() == 1
    assert warm.log.read_text().count(GAVE_UP) == 1
