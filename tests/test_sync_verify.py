"""`aish --sync --verify` finds one flipped byte anywhere in the transport: in any record of
any device's log (a session's or the store-wide one) and in any device's manifest. A sync after
it takes nothing from the damaged record on; the writer's next sync repairs it."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from conftest import run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sync_support import ok, say, sessions_of, sync

from aish import config as config_module
from aish.devices import this_device
from aish.management.sync_devices import Syncer, verify_all
from aish.management.sync_state import SyncState
from aish.management.sync_transport import FolderTransport
from aish.messages import ASSISTANT, USER, Message
from aish.sessions import Sessions
from aish.store import open_store

EXAMPLES = int(os.environ.get("AISH_FUZZ_EXAMPLES") or 40)


def transport_files(folder: Path) -> list[Path]:
    return sorted(p for p in (folder / "aish-sync" / "v1").rglob("*") if p.is_file())


def flipped(path: Path, offset: int, mask: int) -> bytes:
    """Flip ``mask``'s bits of the byte at ``offset``; return the file as it was."""
    data = path.read_bytes()
    path.write_bytes(data[:offset] + bytes([data[offset] ^ mask]) + data[offset + 1:])
    return data


def expect_found(folder: Path, path: Path) -> None:
    logs, broken = verify_all(FolderTransport(folder))
    assert logs >= 1
    where = path.parent.name
    assert [(b.sid, b.device) for b in broken] == [(where, path.stem)], (path, broken)


class Writer:
    """A device writing in process: two sessions (one with a control character and a float
    that JSON may spell two ways), a branch, a rename and a removal."""

    def __init__(self, root: Path, name: str):
        home = root / name
        (home / ".aish").mkdir(parents=True)
        (home / ".aish" / "config.yaml").write_text("providers: {}\n")
        self.env = {"HOME": str(home), "AISH_DEVICE_NAME": name, "AISH_AUTO_TITLE": "false",
                    "AISH_WARM": "0"}
        self.config = config_module.load(self.env)
        self.sessions = Sessions(open_store(self.config), self.config)
        self.device = this_device(self.config.home, self.env)

    def sync(self, folder: Path):
        return Syncer(self.sessions, FolderTransport(folder), self.device,
                      SyncState(self.config.home), time.time()).run()

    def texts(self) -> set[str]:
        return {m.content for sid in self.sessions.ids()
                for m in self.sessions.load(sid).messages}


def written(root: Path) -> tuple[Writer, set[str]]:
    from aish import branches

    writer = Writer(root, "laptop")
    texts = set()
    for sid, words in (("s1", ("one\x1f", "2.5e-07 é")), ("gone", ("bye",)), ("s2", ("x",))):
        session = writer.sessions.open("apollo", sid, create_missing=True)
        for text in words:
            session.add(Message(USER, text, "apollo", time.time()))
            session.add(Message(ASSISTANT, f"re {text}", "apollo", time.time()))
            texts |= {text, f"re {text}"}
        session.save()
    branches.create(writer.sessions, "s1", "idea", at=2)
    writer.sessions.remove("gone", "remove")
    writer.sessions.rename("s2", "s3")
    writer.sync(root / "shared")
    return writer, texts - {"bye", "re bye"}


def test_every_flipped_bit_is_found(tmp_path):
    """Exhaustive: each byte of each transport file, a different bit at each offset, and the
    case bit everywhere (the one that turns JSON's ``\u001f`` into the same-reading ``\u001F``)."""
    _writer, _texts = written(tmp_path)
    folder = tmp_path / "shared"
    paths = transport_files(folder)
    assert {p.parent.name for p in paths} >= {"s1", "s3", "_store", "_devices"}
    assert b"\\u001f" in b"".join(p.read_bytes() for p in paths)
    assert not verify_all(FolderTransport(folder))[1]
    for path in paths:
        for offset in range(path.stat().st_size):
            for mask in {1 << (offset % 8), 0x20}:
                original = flipped(path, offset, mask)
                expect_found(folder, path)
                path.write_bytes(original)
    assert not verify_all(FolderTransport(folder))[1]


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(pick=st.integers(0, 10**6), where=st.floats(0, 1, exclude_max=True),
       mask=st.integers(1, 255))
def test_a_damaged_record_is_never_imported(pick, where, mask):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        writer, texts = written(root)
        folder = root / "shared"
        paths = transport_files(folder)
        path = paths[pick % len(paths)]
        flipped(path, int(where * path.stat().st_size), mask)
        expect_found(folder, path)
        reader = Writer(root, "desktop")
        report = reader.sync(folder)
        assert [(b.sid, b.device) for b in report.broken] == [
            (path.parent.name, path.stem)]
        # Only what the writer wrote is taken, never a changed version of it.
        assert reader.texts() <= texts
        writer.sync(folder)  # the writer repairs its log or manifest
        assert not verify_all(FolderTransport(folder))[1]
        reader.sync(folder)
        assert reader.texts() == texts


def test_verify_command_names_the_damaged_log(laptop, desktop, shared):
    say(laptop, "s1", "one", "two")
    ok(sync(laptop, shared))
    (log,) = (shared / "aish-sync" / "v1" / "s1").glob("*.jsonl")
    flipped(log, log.stat().st_size // 2, 0x20)
    proc = run(desktop, "aish", "--sync", "--verify", "--dir", str(shared))
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr
    assert "session s1: the log of laptop" in proc.stdout.decode()
    ok(sync(desktop, shared))
    original = {"one", "answer to one", "two", "answer to two"}
    desk = sessions_of(desktop)
    assert not desk.exists("s1") or {m.content for m in desk.load("s1").messages} < original
    ok(sync(laptop, shared))  # the writer cuts its log back and writes the rest again
    ok(sync(desktop, shared))
    assert {m.content for m in sessions_of(desktop).load("s1").messages} == original
    ok(run(desktop, "aish", "--sync", "--verify", "--dir", str(shared)))


def test_a_damaged_manifest_is_reported_and_rewritten(laptop, desktop, shared):
    say(laptop, "s1", "one")
    ok(sync(laptop, shared))
    (manifest,) = (shared / "aish-sync" / "v1" / "_devices").glob("*.json")
    text = manifest.read_text()
    manifest.write_text(text.replace('"s1": 4', '"s1": 3'))  # valid JSON, other counts
    assert manifest.read_text() != text
    proc = run(desktop, "aish", "--sync", "--verify", "--dir", str(shared))
    assert proc.returncode == 1
    assert "the manifest of" in proc.stdout.decode() and "hash" in proc.stdout.decode()
    assert "the manifest of" in ok(sync(desktop, shared))  # said, and nothing taken from it
    assert not sessions_of(desktop).exists("s1")
    ok(sync(laptop, shared))  # its writer puts it right
    ok(run(desktop, "aish", "--sync", "--verify", "--dir", str(shared)))
    ok(sync(desktop, shared))
    assert sessions_of(desktop).exists("s1")
