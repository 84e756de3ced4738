"""What a writer killed mid-reply leaves in a file store (its floor lease, its live file of
streamed pieces) is swept by the session's next writer, never what a live writer holds; on
Redis the same things expire by themselves (the lease's PX, the stream's bound)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from conftest import run
from follow_support import Gate, Program, new_session, until

from aish import config as config_module
from aish.floor import FileFloor, Holder
from aish.follow import FileSink, sweep_live
from aish.store import open_store

PIECES = ["first ", "reply ", "held ", "back."]


def names(folder: Path) -> set[str]:
    return set(os.listdir(folder)) if folder.is_dir() else set()


def test_a_killed_writers_lease_and_live_file_are_swept_by_the_next_write(env, server):
    sid = new_session(env)
    root = Path(config_module.load(env).session_dir)
    live, floors = root / ".live", root / ".floors"
    # A live writer of the same session: this process, streaming on another branch.
    store = open_store(config_module.load(env))
    mine = FileSink(store, sid)
    mine.chunk("0123456789abcdef", "athena", "other", "still streaming")
    lease = Holder.me("athena", "other", 600)
    assert FileFloor(store).take(sid, lease, 600) is None
    follower = Program(env, "aish", "--follow-session", sid, "--branch", "main")
    follower.wait_for(r"apollo> ok: start\n")
    gate = Gate(PIECES)
    server.chunks = gate
    dead = Program(env, "apollo", "--session", sid, input="one")
    follower.wait_for(r"apollo> first ")
    until(lambda: f"{sid}.main.json" in names(floors), "the floor is held")
    (dead_piece,) = names(live) - {f"{sid}.0123456789abcdef.jsonl"}
    os.kill(dead.proc.pid, signal.SIGKILL)
    dead.finish()
    gate.release()
    assert names(live) == {dead_piece, f"{sid}.0123456789abcdef.jsonl"}
    assert names(floors) == {f"{sid}.main.json", f"{sid}.other.json"}
    try:
        # The next write to the session, on a branch of its own: no lease of the dead
        # holder's branch is taken over, the sweep alone removes it.
        done = run(env, "apollo", "--session", sid, "--branch", "side", input="two")
        assert done.returncode == 0, done.stderr.decode()
        assert names(live) == {f"{sid}.0123456789abcdef.jsonl"}  # the live one stays
        assert names(floors) == {f"{sid}.other.json"}
        # The follower saw the dead reply end.
        follower.wait_for(r"apollo> first \n")
    finally:
        follower.stop()
        mine.end("0123456789abcdef")
        FileFloor(store).release(sid, lease)
    assert names(live) == set() and names(floors) == set()


def test_the_sweep_leaves_other_sessions_and_half_written_leases_of_live_processes(home):
    store = open_store(config_module.load(home))
    folder = store.private_dir(".live")
    other = folder / "sess_a.b.0123456789abcdef.jsonl"  # session sess_a.b's, not sess_a's
    other.write_text("{}\n")
    assert sweep_live(folder, "sess_a") == []
    assert sweep_live(folder, "sess_a.b") == [other.name]
    floors = store.private_dir(".floors")
    mine = floors / f".sess_a.main.json.{os.getpid()}.tmp"
    gone = floors / ".sess_a.main.json.999999999.tmp"
    for path in (mine, gone):
        path.write_text("{")
    with store.session_lock("sess_a"):
        assert FileFloor(store).sweep("sess_a") == [gone.name]
    assert mine.exists()
