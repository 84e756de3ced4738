"""Device sync as a property: three devices doing random offline work, each with its own copy
of the transport folder, and a dumb copier between those copies that moves files in random
order, only some of them, and sometimes only a prefix of one (a torn tail, as a synced folder
shows a file mid-transfer). After a final full exchange every device holds the same sessions,
messages and branches (or the same diverged heads beside them as ``NAME@DEVICE``), nothing
written is lost, and a second sync changes nothing.

Sync runs in process, on the same code the command runs. AISH_FUZZ_EXAMPLES sets the number
of plans (a nightly run asks for thousands)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aish import branches
from aish import config as config_module
from aish.devices import this_device
from aish.errors import AishError
from aish.management.sync_devices import Syncer
from aish.management.sync_state import SyncState
from aish.management.sync_transport import FolderTransport
from aish.messages import ASSISTANT, USER, Message
from aish.sessions import Sessions
from aish.store import open_store

EXAMPLES = int(os.environ.get("AISH_FUZZ_EXAMPLES") or 150)
NAMES = ("laptop", "desktop", "server")
BRANCH = "side"


class Device:
    """One device: its HOME, its store and its own copy of the shared folder."""

    def __init__(self, root: Path, name: str):
        self.name = name
        self.home = root / name
        (self.home / ".aish").mkdir(parents=True)
        (self.home / ".aish" / "config.yaml").write_text("providers: {}\n")
        self.env = {"HOME": str(self.home), "AISH_DEVICE_NAME": name,
                    "AISH_AUTO_TITLE": "false", "AISH_WARM": "0"}
        self.folder = root / f"folder-{name}"
        self.config = config_module.load(self.env)
        self.sessions = Sessions(open_store(self.config), self.config)
        self.device = this_device(self.config.home, self.env)

    def sync(self, skip_idle: bool = True):
        """A sync; ``skip_idle`` false: one that reads every log even where nothing changed."""
        transport = FolderTransport(self.folder)
        syncer = Syncer(self.sessions, transport, self.device, SyncState(self.config.home),
                        time.time(), skip_idle=skip_idle)
        return syncer.run()


def files(folder: Path) -> dict[str, bytes]:
    root = folder / "aish-sync" / "v1"
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def writer(relative: str) -> str:
    return Path(relative).stem


def put(folder: Path, relative: str, data: bytes) -> None:
    path = folder / "aish-sync" / "v1" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def copy(devices: list[Device], src: int, dst: int, picks: list[int], torn: list[int]) -> None:
    """The dumb copier: some of ``src``'s files, in the order ``picks`` gives, into ``dst``'s
    folder, a few of them cut short. A device's own files in its own folder are never
    overwritten: there it is their only writer."""
    if src == dst:
        return
    there = files(devices[src].folder)
    names = sorted(there)
    own = devices[dst].device.id
    for i, pick in enumerate(picks or range(len(names))):  # none picked: all, in order
        if not names:
            return
        relative = names.pop(pick % len(names))
        if writer(relative) == own:
            continue
        data = there[relative]
        if i < len(torn) and torn[i] and data:
            data = data[: torn[i] % len(data)]
        put(devices[dst].folder, relative, data)


def full_exchange(devices: list[Device]) -> None:
    """Every file, whole, from its writer's folder to every other folder."""
    by_id = {d.device.id: d for d in devices}
    for device in devices:
        for relative, data in files(device.folder).items():
            if by_id.get(writer(relative)) is device:
                for other in devices:
                    if other is not device:
                        put(other.folder, relative, data)


def state(device: Device) -> dict:
    """What must agree between devices: each session's messages and its branches, a diverged
    branch reduced to the set of heads that are apart (its own and its ``NAME@DEVICE``s)."""
    out = {}
    for sid in device.sessions.ids():
        loaded = device.sessions.load(sid)
        messages = {m.id: (m.role, m.content) for m in loaded.messages}
        heads: dict[str, str] = {n: h.id for n, h in loaded.tree.refs.items()}
        main = loaded.tree.head("main")
        if main is not None:
            heads["main"] = main.id
        groups: dict[str, set[str]] = {}
        for name, head in heads.items():
            groups.setdefault(name.partition("@")[0], set()).add(head)
        tips = {}
        for base, group in groups.items():
            covered = set().union(*(_ancestors(loaded, head) for head in group))
            tips[base] = frozenset(group - covered)
        out[sid] = (messages, tips)
    return out


def busy(outcome) -> bool:
    """Whether a sync did something to a session (a side still apart is reported by every
    sync until it is merged: that alone is nothing done)."""
    return replace(outcome, diverged=[]).changed


def differences(devices: list[Device], states: list[dict]) -> list:
    """Where the devices disagree, for the failure message."""
    out: list = []
    for sid in sorted(set().union(*states)):
        seen = [s.get(sid) for s in states]
        if seen[0] == seen[1] == seen[2]:
            continue
        if None in seen:
            out.append((sid, "held by", [d.name for d, s in zip(devices, seen, strict=True)
                                          if s is not None]))
            continue
        if not seen[0][0] == seen[1][0] == seen[2][0]:
            out.append((sid, "messages", [len(s[0]) for s in seen]))
        out.append((sid, "branches", [(d.name, s[1]) for d, s in zip(devices, seen,
                                                                     strict=True)]))
    return out


def _ancestors(loaded, head: str) -> set[str]:
    parents = {m.id: m.parent for m in loaded.messages}
    out: set[str] = set()
    current = parents.get(head)
    while current and current not in out:
        out.add(current)
        current = parents.get(current)
    return out


# One step of a plan: (kind, device, session pick, extra randomness).
STEP = st.tuples(
    st.sampled_from(("new", "say", "say", "say", "branch", "undo", "rename", "delete",
                     "copy", "copy", "sync", "sync")),
    st.integers(0, 2), st.integers(0, 7), st.integers(0, 2),
    st.lists(st.integers(0, 50), max_size=8), st.lists(st.integers(0, 400), max_size=8))


class World:
    def __init__(self, root: Path):
        self.devices = [Device(root, name) for name in NAMES]
        self.counter = 0
        self.written: dict[str, set[str]] = {}  # lineage -> texts written into it
        self.deleted: set[str] = set()  # lineages removed somewhere
        self.renames: dict[str, str] = {}  # id -> the id a rename gave it

    def text(self) -> str:
        self.counter += 1
        return f"t{self.counter}"

    def lineage(self, sid: str) -> str:
        for old, new in self.renames.items():
            if new == sid:
                return self.lineage(old)
        return sid

    def step(self, kind, who, pick, extra, picks, torn) -> None:
        device = self.devices[who]
        sessions = device.sessions
        ids = sessions.ids()
        sid = ids[pick % len(ids)] if ids else None
        if kind == "new" or (sid is None and kind in ("say", "branch", "undo")):
            sid = f"s{self.counter}x{who}"
            self.say(device, sid, "main")
        elif sid is None:
            pass
        elif kind == "say":
            branch = BRANCH if extra and sessions.summary(sid).head(BRANCH) else "main"
            self.say(device, sid, branch)
        elif kind == "branch":
            if sessions.summary(sid).head(BRANCH) is None:
                branches.create(sessions, sid, BRANCH)
        elif kind == "undo":
            branch = BRANCH if extra and sessions.summary(sid).head(BRANCH) else "main"
            with contextlib.suppress(AishError):  # nothing to undo there
                branches.undo(sessions, sid, branch)
        elif kind == "rename":
            new = f"{sid}r"
            if not sessions.exists(new) and len(new) < 40:
                sessions.rename(sid, new)
                self.renames[sid] = new
        elif kind == "delete":
            self.deleted.add(self.lineage(sid))
            sessions.remove(sid, "remove")
        if kind == "copy":
            copy(self.devices, pick % 3, who, picks, torn)
        elif kind == "sync":
            self.sync_twice(device)

    def say(self, device: Device, sid: str, branch: str) -> None:
        session = device.sessions.open("apollo", sid, create_missing=True)
        session.branch = branch
        now = time.time()
        question = self.text()
        session.add(Message(USER, question, "apollo", now))
        session.add(Message(ASSISTANT, f"re {question}", "apollo", now + 0.001))
        session.save()
        self.written.setdefault(self.lineage(sid), set()).update({question, f"re {question}"})

    def sync_twice(self, device: Device) -> None:
        """A sync, then another that must find nothing to do and change nothing."""
        device.sync()
        before = state(device), files(device.folder)
        for skip_idle in (False, True):
            again = device.sync(skip_idle)
            assert [o for o in again.outcomes if busy(o)] == []
            assert (state(device), files(device.folder)) == before


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(STEP, min_size=4, max_size=28))
def test_three_devices_converge(plan):
    run_plan(plan)


def run_plan(plan) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp))
        # One session every device holds to begin with, so that their work on it meets.
        world.say(world.devices[0], "common", "main")
        world.devices[0].sync()
        full_exchange(world.devices)
        for device in world.devices:
            device.sync()
        for step in plan:
            world.step(*step)
        devices = world.devices
        for _ in range(6):
            for device in devices:
                device.sync()
            full_exchange(devices)
            changed = [o for d in devices for o in d.sync().outcomes
                       if busy(o)]
            full_exchange(devices)
            if not changed:
                break
        else:
            raise AssertionError(f"no fixed point: {changed}")
        states = [state(d) for d in devices]
        assert states[0] == states[1] == states[2], differences(devices, states)
        # Nothing written is lost: every message of a session no device removed is there.
        for lineage, texts in world.written.items():
            if lineage in world.deleted:
                continue
            sid = lineage
            while sid in world.renames:
                sid = world.renames[sid]
            held = {content for _role, content in states[0][sid][0].values()}
            assert texts <= held, (lineage, sid, texts - held)
        # Syncing again, after the fixed point, changes nothing anywhere.
        before = [(state(d), files(d.folder)) for d in devices]
        for device in devices:
            for skip_idle in (False, True):
                assert [o for o in device.sync(skip_idle).outcomes
                        if busy(o)] == []
        assert [(state(d), files(d.folder)) for d in devices] == before
