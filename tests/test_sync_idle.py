"""An idle `--sync` reads metadata only: no session's log, here or in the transport, is read
when nothing changed since the last quiet sync; any change, on either side, is still seen."""

from __future__ import annotations

import time
from pathlib import Path

from test_sync_verify import Writer

from aish.management.sync_devices import Syncer
from aish.management.sync_state import SyncState
from aish.management.sync_transport import STORE_LOG, FolderTransport
from aish.messages import ASSISTANT, USER, Message


class Counting(FolderTransport):
    """The real folder transport, counting the session logs it reads."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.reads: list[str] = []

    def read(self, sid: str, device: str) -> bytes:
        if sid != STORE_LOG:
            self.reads.append(sid)
        return super().read(sid, device)


def synced(writer: Writer, folder: Path) -> tuple[list[str], list]:
    transport = Counting(folder)
    report = Syncer(writer.sessions, transport, writer.device, SyncState(writer.config.home),
                    time.time()).run()
    return transport.reads, [o for o in report.outcomes if o.changed]


def say(writer: Writer, sid: str, text: str) -> None:
    session = writer.sessions.open("apollo", sid, create_missing=True)
    session.add(Message(USER, text, "apollo", time.time()))
    session.add(Message(ASSISTANT, f"re {text}", "apollo", time.time()))
    session.save()


def test_an_idle_sync_reads_no_log_and_misses_no_change(tmp_path):
    folder = tmp_path / "shared"
    laptop, desktop = Writer(tmp_path, "laptop"), Writer(tmp_path, "desktop")
    for n in range(5):
        say(laptop, f"s{n}", f"hello {n}")
    for writer in (laptop, desktop, laptop, desktop):
        synced(writer, folder)
    for writer in (laptop, desktop):
        assert synced(writer, folder) == ([], [])
    say(desktop, "s3", "more")  # a change here: pushed, and read only there
    reads, changed = synced(desktop, folder)
    assert set(reads) == {"s3"} and [(o.id, o.pushed) for o in changed] == [("s3", 3)]
    reads, changed = synced(laptop, folder)  # a change in the transport: pulled
    assert set(reads) == {"s3"} and [(o.id, o.pulled) for o in changed] == [("s3", 2)]
    assert "re more" in {m.content for m in laptop.sessions.load("s3").messages}
    for writer in (desktop, laptop):
        synced(writer, folder)
        assert synced(writer, folder) == ([], [])
