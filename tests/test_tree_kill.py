"""A branch command killed at any moment leaves a tree that holds: every ref points at a stored
message, every parent exists, and --validate-session is clean.

Each round starts ``aish --branch-session``, ``--undo`` or ``--merge-branch --mode pick`` and
SIGKILLs it once it has used a random amount of CPU time (from none at all to past its end, CPU
time rather than wall time, so that a loaded machine does not shift the moment), so
the kill lands anywhere from start-up to the write. Rounds: twice AISH_STRESS_ROUNDS (at least
10; a nightly run's 50 gives 100)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess

import tree_support
from conftest import BIN
from tree_support import Echo

from aish import branches
from aish import config as config_module
from aish.sessions import Sessions
from aish.specialists import roster
from aish.store import open_store

store_env = tree_support.store_env  # the fixture: file store, then Redis

ROUNDS = max(10, 2 * int(os.environ.get("AISH_STRESS_ROUNDS", "3")))
APOLLO = roster({})["apollo"]




def cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 1 << 30  # gone: nothing left to wait for
    return int(fields[11]) + int(fields[12])  # utime + stime


def killed_after(env: dict, argv: list[str], budget: int) -> tuple[int | None, int]:
    """Run ``aish argv`` and SIGKILL it once it used ``budget`` clock ticks of CPU: (its exit
    code when it finished first, else None; the ticks it used)."""
    proc = subprocess.Popen([str(BIN / "aish"), *argv], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    used = 0
    try:
        while (ticks := cpu_ticks(proc.pid)) < budget:
            used = max(used, ticks)
            try:
                return proc.wait(timeout=0.002), used
            except subprocess.TimeoutExpired:
                continue
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        return None, used
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)


def check_tree(env: dict, sid: str) -> None:
    loaded = open_store(config_module.load(env)).load(sid)
    assert loaded.problems == []
    by_id = loaded.by_id()
    for message in loaded.messages:
        assert message.parent == "" or message.parent in by_id, message
    heads = [(n, h) for n, h in loaded.tree.refs.items()]
    heads += [(n, h) for n, stack in loaded.tree.redo.items() for h in stack]
    for name, head in heads:
        assert head.id == "" or head.id in by_id, (name, head)
    done = subprocess.run([str(BIN / "aish"), "--validate-session", sid, "--json"], env=env,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=600)
    assert done.returncode == 0, (done.stdout.decode(), done.stderr.decode())
    assert json.loads(done.stdout)["ok"]




def test_branch_commands_killed_at_any_moment_leave_a_sound_tree(store_env):
    config = config_module.load(store_env)
    sessions = Sessions(open_store(config), config)
    session = sessions.create("apollo")
    for n in range(3):
        session.exchange(APOLLO, f"main {n}", Echo())
    session.save()
    branches.create(sessions, session.id, "side", at=0)
    side = sessions.open("apollo", session.id)
    side.branch = "side"
    for n in range(3):
        side.exchange(APOLLO, f"side {n}", Echo())
    side.save()
    check_tree(store_env, session.id)

    # What a whole run of a command costs here (the redis client makes it dearer): budgets
    # span 1.5 times that, so about two thirds of the runs are killed, at any point.
    code, whole = killed_after(store_env, ["--list-branches", session.id, "--json"], 1 << 30)
    assert code == 0
    rng = random.Random(os.environ.get("AISH_KILL_SEED", "tree"))
    finished = killed = 0
    for r in range(ROUNDS):
        more = sessions.open("apollo", session.id)  # something to undo, every round
        more.exchange(APOLLO, f"round {r}", Echo())
        more.save()
        low = rng.randint(1, 6)
        argv = rng.choice([
            ["--branch-session", session.id, f"k{r}", "--at", str(rng.randint(0, 6))],
            ["--undo", session.id, str(rng.randint(1, 2))],
            ["--merge-branch", session.id, "side", "--into", "main", "--mode", "pick",
             "--pick", f"{low}..{rng.randint(low, 6)}"],
        ])
        code, _ = killed_after(store_env, argv, rng.randint(0, max(2, whole * 3 // 2)))
        if code is None:
            killed += 1
        else:
            finished += 1
            assert code in (0, 2), (argv, code)  # 2: nothing left to undo, a usage error
        check_tree(store_env, session.id)
    assert killed, (killed, finished)
