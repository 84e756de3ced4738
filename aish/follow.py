"""Live following: what a session's writers publish as they go, and how a follower reads it.

Writers publish two things. Every stored message and ref move is an event because it is
stored (the store's own write: in Redis the write script adds it to the stream
``aish:{ID}:events`` in the same atomic step; in files the log itself is the feed). The reply
being streamed right now is published too, in coalesced pieces (`LiveReply`: at most one
piece per `COALESCE_SECONDS` unless `COALESCE_CHARS` gather first), under the id the reply
will be stored with: Redis ``chunk`` events, or a live file ``.live/ID.REPLY.jsonl`` beside the
log (0600) that is removed once the reply is stored. The stored message ends what its pieces
began; neither the pieces nor the live files are ever a source of truth. A writer holds a lock
on its live file while it streams, so the file of a writer that was killed is told by its
missing lock and swept by the session's next writer (`sweep_live`).

A follower (`feed_for`) notes where the feed is now, shows what it needs to from the store,
and then reads events from that point: Redis with ``XREAD BLOCK`` from the last id seen, so a
lost connection resumes exactly there; files by reading the log's new complete lines after the
last offset (a torn tail waits for its newline; a log replaced by a rewrite is a ``rewrite``
event) and the live files' new lines, polling with a short backoff. Pub/Sub would drop whatever
is published while a follower is disconnected, so it is not used. A follower's `position` can be
saved and `resume`d by a later one; a session renamed meanwhile is followed under its new id
(its log, or its events stream, moved with it and keeps its offsets and ids).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aish.messages import Message
from aish.store.base import dump_line, parse_line

COALESCE_SECONDS = 0.05
COALESCE_CHARS = 200
_HEX = frozenset("0123456789abcdef")
_STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


@dataclass
class Event:
    """One thing a follower hears: ``msg`` (a stored message), ``ref`` (a branch moved),
    ``chunk`` (a piece of the reply ``reply`` being streamed), ``end`` (that reply stopped
    streaming), ``gone`` (its writer went away mid-reply: nothing more will come),
    ``rewrite`` (the session's content was replaced) or ``rename`` (the session goes on under
    the id ``text``)."""

    kind: str
    message: Message | None = None
    record: dict | None = None
    reply: str = ""
    ai: str = ""
    branch: str = ""
    text: str = ""


def _piece_record(reply: str, ai: str, branch: str, text: str) -> dict:
    # Shaped like a message so the store's codec seals it as it seals messages: with
    # encryption on, a streamed piece is as private as the reply it becomes.
    return {"t": "msg", "id": reply, "role": "assistant", "ai": ai, "ref": branch, "time": 0,
            "content": text}


def _chunk_event(record: dict) -> Event:
    return Event("chunk", reply=str(record.get("id", "")), ai=str(record.get("ai", "")),
                 branch=str(record.get("ref") or ""), text=str(record.get("content", "")))


def _record_event(record: dict, codec) -> Event | None:
    """The event a stored record makes, or None (meta records, damaged or foreign ones)."""
    try:
        if record.get("t") == "msg":
            return Event("msg", message=Message.from_record(codec.open(record)))
        if record.get("t") == "ref" and isinstance(record.get("name"), str):
            return Event("ref", record=record, branch=record["name"])
    except (ValueError, KeyError, TypeError, OverflowError):
        return None
    except Exception:  # noqa: BLE001 - a piece that cannot be opened (no key): skipped
        return None
    return None


def _parse(raw: bytes) -> dict | None:
    try:
        record = parse_line(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) else None


# -- writers -----------------------------------------------------------------------------------
class LiveReply:
    """The reply being streamed, published for followers in coalesced pieces. Publishing never
    fails the exchange: after a first failure it stops, and the stored reply says it all."""

    def __init__(self, sink, reply: str, ai: str, branch: str,
                 clock: Callable[[], float] = time.monotonic):
        self.sink, self.reply, self.ai, self.branch, self.clock = sink, reply, ai, branch, clock
        self._parts: list[str] = []
        self._size = 0
        # A piece after a pause goes out at once; only pieces close together are gathered.
        self._last = -COALESCE_SECONDS
        self._broken = sink is None

    def feed(self, text: str) -> None:
        if self._broken or not text:
            return
        self._parts.append(text)
        self._size += len(text)
        if self._size >= COALESCE_CHARS or self.clock() - self._last >= COALESCE_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self._broken or not self._parts:
            return
        text, self._parts, self._size = "".join(self._parts), [], 0
        self._last = self.clock()
        self._safely(lambda: self.sink.chunk(self.reply, self.ai, self.branch, text))

    def close(self) -> None:
        self.flush()
        if not self._broken:
            self._safely(lambda: self.sink.end(self.reply))
        self._broken = True

    def _safely(self, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception:  # noqa: BLE001 - following is a courtesy, never a failure
            self._broken = True


# KEYS: events, meta. ARGV: stream length, ttl ms, then the entry's (field, value) pairs. The
# stream takes the session's deadline (or none, like the session), never one of its own: a
# piece streamed by a writer must not keep the events alive past the rest of the session.
_PIECE = """
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
local at = redis.call('PEXPIRETIME', KEYS[2])
if at > 0 then redis.call('PEXPIREAT', KEYS[1], at)
elseif at == -1 then redis.call('PERSIST', KEYS[1])
elseif tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""


class RedisSink:
    """Pieces as ``chunk`` entries of the events stream; each names the floor lease its writer
    holds (``f``, when it holds one), so a follower can tell when that writer is gone."""

    def __init__(self, store, sid: str, lease: str = ""):
        self.store, self.lease = store, lease
        self.key = store.session_key(sid, "events")
        self.meta = store.session_key(sid, "meta")
        self._script = store.client.register_script(_PIECE)

    def _add(self, fields: dict) -> None:
        pairs = [part for item in fields.items() for part in item]
        self._script(keys=[self.key, self.meta],
                     args=[self.store.stream_length, max(self.store.ttl_ms, 0), *pairs])

    def chunk(self, reply: str, ai: str, branch: str, text: str) -> None:
        record = self.store.codec.seal(_piece_record(reply, ai, branch, text))
        self._add({"k": "chunk", "r": dump_line(record)[:-1],
                   **({"f": self.lease} if self.lease else {})})

    def end(self, reply: str) -> None:
        self._add({"k": "end", "id": reply})


def live_dir(store) -> Path:
    return Path(store.root) / ".live"


def _live_name(sid: str, reply: str) -> str:
    return f"{sid}.{reply}.jsonl"


class FileSink:
    def __init__(self, store, sid: str):
        self.store, self.sid = store, sid
        self._fd: int | None = None
        self._path: Path | None = None

    def chunk(self, reply: str, ai: str, branch: str, text: str) -> None:
        if self._fd is None:
            folder = self.store.private_dir(".live")
            sweep_live(folder, self.sid)
            self._path = folder / _live_name(self.sid, reply)
            self._fd = _open_locked(self._path)
        record = self.store.codec.seal(_piece_record(reply, ai, branch, text))
        data = dump_line(record)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def end(self, reply: str) -> None:
        # Removed while still locked: a live file found unlocked is a killed writer's.
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _open_locked(path: Path) -> int:
    """The live file at ``path``, opened for appending and locked for as long as this process
    has it open: the lock is how a sweep tells a live writer's file from a dead one's."""
    import fcntl

    for _ in range(10):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # swept between the open and the lock: a new one
    raise OSError(f"cannot keep a live file at {path}")


def sweep_live(folder: Path, sid: str) -> list[str]:
    """Remove the live files of session ``sid`` that no process holds any more (a writer
    killed mid-reply): followers then see those replies end. A file still locked is a live
    writer's and stays. Returns the names removed."""
    import fcntl

    prefix = f"{sid}."
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix) and n.endswith(".jsonl")
                 and _is_reply_id(n[len(prefix):-6])]
    except OSError:
        return []
    removed = []
    for name in names:
        try:
            fd = os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its writer is alive
            os.close(fd)
            continue
        try:  # locked by us now, so no writer can be appending to it
            if os.stat(folder / name, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                os.unlink(folder / name)
                removed.append(name)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def sink_for(store, sid: str, lease: str = ""):
    """Where a reply of session ``sid`` is published while it streams (None: nowhere);
    ``lease``: the token of the floor lease its writer holds meanwhile ("": none)."""
    if hasattr(store, "session_key"):
        return RedisSink(store, sid, lease) if store.stream_length > 0 else None
    if hasattr(store, "private_dir"):
        return FileSink(store, sid)
    return None


# -- followers ---------------------------------------------------------------------------------
class RedisFeed:
    """The session's events stream, read from the last id seen.

    A writer killed mid-reply never adds the reply's end. Its pieces name the floor lease it
    held, so while a reply streams the follower looks at that lease now and then: once it
    expired or passed to someone else, what the writer stored before letting go is in the
    stream already; read that first, and a reply still open after it was cut (``gone``).
    """

    BLOCK_MS = 1000
    CHECK_SECONDS = 0.5  # how often the leases of the replies streaming are looked at

    def __init__(self, store, sid: str):
        self.store, self.codec, self.sid = store, store.codec, sid
        self.key = store.session_key(sid, "events")
        self.last = "0-0"
        self.lost = 0  # connections lost (and resumed) so far
        self._failing = 0  # reads failed in a row
        self.live: dict[str, tuple[str, str]] = {}  # reply streaming -> (branch, lease token)
        self._checked = 0.0
        errors = store.connection.errors
        self._dropped = (errors.ConnectionError, errors.TimeoutError)

    def mark(self) -> None:
        """Start after the newest event there is now."""
        with self.store.connection.guard("read a session's events"):
            newest = self.store.client.xrevrange(self.key, "+", "-", count=1)
        if newest:
            self.last = _text(newest[0][0])

    def position(self) -> dict:
        """Where this follower is: `resume` of it goes on after the last event read, still
        watching the writers of the replies streaming then."""
        return {"last": self.last,
                "live": {reply: list(lease) for reply, lease in self.live.items()}}

    def resume(self, position: object) -> bool:
        """Go on from ``position`` (a `position` saved earlier); False when it is not one."""
        last = position.get("last") if isinstance(position, dict) else None
        if not isinstance(last, str) or not _STREAM_ID.fullmatch(last):
            return False
        self.last = last
        live = position.get("live") if isinstance(position, dict) else None
        for reply, lease in (live.items() if isinstance(live, dict) else ()):
            if (isinstance(lease, list) and len(lease) == 2 and _is_reply_id(str(reply))
                    and all(isinstance(part, str) for part in lease)):
                self.live[str(reply)] = (lease[0], lease[1])
        return True

    def trimmed(self) -> bool:
        """Whether events after the position may have been trimmed away (the stream's bound)
        before they were read: the stream is trimmed oldest first, so while the last event
        read is still there nothing after it went."""
        client = self.store.client
        with self.store.connection.guard("read a session's events"):
            if self.last == "0-0":
                try:
                    info = client.xinfo_stream(self.key)
                except self.store.connection.errors.ResponseError:  # no stream (yet)
                    return False
                return int(info.get("entries-added") or 0) > int(info.get("length") or 0)
            if client.xrange(self.key, self.last, self.last, count=1):
                return False
            first = client.xrange(self.key, "-", "+", count=1)
        return bool(first) and _stream_order(_text(first[0][0])) > _stream_order(self.last)

    def read(self, timeout: float) -> list[Event]:
        found = self._xread(max(1, int(min(timeout, 5.0) * 1000)))
        if found is None:
            return []
        events = self._events(found) if found else self._renamed()
        return events + self._gone()

    def _xread(self, block: int | None) -> list | None:
        """New entries, waiting up to ``block`` ms (None: not at all); None: the connection
        was lost."""
        with self.store.connection.guard("read a session's events"):
            try:
                found = self.store.client.xread({self.key: self.last}, count=500, block=block)
            except self._dropped:
                # Killed or timed out: the next read reconnects and goes on from the same id,
                # after a pause that grows while the server stays away.
                self.lost += 1
                self._failing += 1
                time.sleep(min(0.05 * self._failing, 1.0))
                return None
        self._failing = 0
        return found or []

    def _events(self, found: list) -> list[Event]:
        events: list[Event] = []
        for _key, entries in found:
            for entry_id, fields in entries:
                self.last = _text(entry_id)
                event = self._event({_text(k): v for k, v in fields.items()})
                if event is not None:
                    events.append(event)
        return events

    def _gone(self) -> list[Event]:
        """The replies whose writer let go of its floor lease without ending them: each a
        ``gone`` event, after whatever the stream holds now."""
        now = time.monotonic()
        if not self.live or now - self._checked < self.CHECK_SECONDS:
            return []
        self._checked = now
        from aish.floor import Holder

        try:
            with self.store.connection.guard("read the floors of a session"):
                held = [(reply, Holder.load(self.store.client.get(
                    self.store.session_key(self.sid, f"floor:{branch}"))), token)
                    for reply, (branch, token) in self.live.items()]
        except Exception:  # noqa: BLE001 - the server away: the next read says so
            return []
        lost = [reply for reply, holder, token in held
                if holder is None or holder.token != token]
        if not lost:
            return []
        found = self._xread(None)  # read after the look: nothing its writer stored is missed
        events = self._events(found) if found else []
        for reply in lost:
            if self.live.pop(reply, None) is not None:
                events.append(Event("gone", reply=reply))
        return events

    def close(self) -> None:
        """Nothing to give back: the store's connection stays the store's."""

    def _renamed(self) -> list[Event]:
        """After a quiet read: when the session was renamed, its events went with it (the
        entries keep their ids), so reading goes on from the same id under the new key."""
        try:
            if self.store.client.exists(self.key) or self.store.exists(self.sid):
                return []
            new = self.store.alias(self.sid)
        except Exception:  # noqa: BLE001 - the server away: the next read says so, and waits
            return []
        if not new or new == self.sid:
            return []
        self.sid, self.key = new, self.store.session_key(new, "events")
        return [Event("rename", text=new)]

    def _event(self, fields: dict) -> Event | None:
        kind = _text(fields.get("k", b""))
        if kind == "rewrite":
            self.live.clear()
            return Event("rewrite")
        if kind == "end":
            reply = _text(fields.get("id", b""))
            self.live.pop(reply, None)
            return Event("end", reply=reply)
        record = _parse(fields.get("r", b""))
        if record is None:
            return None
        if kind == "chunk":
            try:
                event = _chunk_event(self.codec.open(record))
            except Exception:  # noqa: BLE001 - cannot open it (no key): skipped
                return None
            lease = _text(fields.get("f", b""))
            if lease and event.branch and _is_reply_id(event.reply):
                self.live[event.reply] = (event.branch, lease)
            return event
        if kind == "rec" and fields.get("w") and record.get("t") in ("msg", "ref"):
            record["by"] = _text(fields["w"])  # the writer whose own log holds it
        if kind == "rec" and record.get("t") == "msg":
            self.live.pop(str(record.get("id", "")), None)  # stored: its writer is done
        return _record_event(record, self.codec) if kind == "rec" else None


def _stream_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return 0, 0


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class _Inotify:
    """Wakes a file follower when something changes in the folders it watches (Linux, through
    libc); `wait` returns after a change or ``timeout`` seconds. Unavailable: OSError."""

    MASK = 0x2 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200  # modify, close-write, moves, create, delete

    def __init__(self) -> None:
        import ctypes

        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.watched: set[Path] = set()

    def watch(self, folder: Path) -> None:
        if folder in self.watched or not folder.is_dir():
            return
        if self._libc.inotify_add_watch(self.fd, os.fsencode(folder), self.MASK) >= 0:
            self.watched.add(folder)

    def wait(self, timeout: float) -> None:
        import select

        readable, _, _ = select.select([self.fd], [], [], timeout)
        while readable:  # drain: what changed is read from the files themselves
            try:
                if not os.read(self.fd, 65536):
                    break
            except BlockingIOError:
                break

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class FileFeed:
    """The log's new complete lines and the session's live files, read when inotify says
    something changed (or polled with a backoff where it cannot).

    A live file stays locked by its writer until it is removed, so one that is no longer
    locked is a killed writer's: unless the log brings the reply after all, it was cut
    (``gone``), without waiting for the next writer to sweep the file away.
    """

    CHECK_SECONDS = 0.5  # how often the locks of the live files read are looked at

    def __init__(self, store, sid: str):
        self.store, self.sid, self.codec = store, sid, store.codec
        self.log = Path(store.location(sid))
        self.live = live_dir(store)
        self.ino: int | None = None
        self.offset = 0
        self._pieces: dict[str, tuple[int, int]] = {}  # live file -> (inode, offset read)
        self._cut: set[str] = set()  # live files of killed writers, told already
        self._checked = 0.0
        self._delay = 0.02
        try:
            self._notify: _Inotify | None = _Inotify()
        except (OSError, AttributeError):  # not Linux, or no inotify: poll
            self._notify = None

    def mark(self) -> None:
        """Start at the log's end as it is now (its complete lines)."""
        self.ino, self.offset = self._end()

    def position(self) -> dict:
        """Where this follower is: the log's offset read and each live file's."""
        return {"ino": self.ino, "offset": self.offset,
                "pieces": {name: list(at) for name, at in self._pieces.items()}}

    def resume(self, position: object) -> bool:
        """Go on from ``position`` (a `position` saved earlier); False when it is not one.
        A log replaced since (a rewrite) is read as a rewrite; live files gone since are
        replies stored meanwhile, which the log brings."""
        if not isinstance(position, dict):
            return False
        ino, offset = _count(position.get("ino")), _count(position.get("offset"))
        pieces = position.get("pieces")
        if not ino or offset is None or not isinstance(pieces, dict):
            return False
        self.ino, self.offset = ino, offset
        self._pieces = {name: (at[0], at[1]) for name, at in pieces.items()
                        if isinstance(name, str) and isinstance(at, list) and len(at) == 2
                        and _count(at[0]) and _count(at[1]) is not None}
        return True

    def trimmed(self) -> bool:
        return False  # the log keeps everything

    def _end(self) -> tuple[int | None, int]:
        try:
            fd = os.open(self.log, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None, 0
        try:
            st = os.fstat(fd)
            size = st.st_size
            tail = os.pread(fd, min(size, 65536), max(0, size - 65536))
            cut = tail.rfind(b"\n")
            return st.st_ino, (size - len(tail) + cut + 1) if cut >= 0 else 0
        finally:
            os.close(fd)

    def read(self, timeout: float) -> list[Event]:
        deadline = time.monotonic() + timeout
        while True:
            # Pieces, then the log, then the replies whose live file went: a writer stores
            # its reply before it removes the file, so the stored reply is read before the
            # end of its pieces, and what it adds to them is never cut off.
            pieces, ends = self._live_events()
            dead = self._dead()  # before the log: a reply its writer stored is read there
            events = pieces + self._log_events() + ends
            stored = {e.message.id for e in events if e.kind == "msg" and e.message}
            events += [Event("gone", reply=r) for r in dead if r not in stored]
            if events:
                self._delay = 0.02
                return events
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            if self._notify is not None:
                self._notify.watch(self.log.parent)
                self._notify.watch(self.live)  # once it exists
                # The live folder may appear between the look and the watch: a second at
                # most is lost to that, never an event.
                self._notify.wait(min(left, 1.0))
                continue
            time.sleep(min(self._delay, left))
            self._delay = min(self._delay * 2, 0.25)

    def close(self) -> None:
        if self._notify is not None:
            self._notify.close()
            self._notify = None

    def _log_events(self) -> list[Event]:
        try:
            fd = os.open(self.log, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return self._renamed()
        try:
            st = os.fstat(fd)
            if st.st_ino != self.ino or st.st_size < self.offset:
                # Replaced (a rewrite: prune, clear, restore, ...): start again from it.
                self.ino, self.offset = st.st_ino, 0
                os.close(fd)
                fd = -1
                self.mark()
                return [Event("rewrite")]
            if st.st_size == self.offset:
                return []
            data = os.pread(fd, st.st_size - self.offset, self.offset)
        finally:
            if fd >= 0:
                os.close(fd)
        cut = data.rfind(b"\n")
        if cut < 0:
            return []  # a torn tail, or a line still being written: wait for its newline
        self.offset += cut + 1
        events = []
        for raw in data[:cut].split(b"\n"):
            record = _parse(raw) if raw.strip() else None
            event = _record_event(record, self.codec) if record is not None else None
            if event is not None:
                events.append(event)
        return events

    def _renamed(self) -> list[Event]:
        """The log is gone: when the session was renamed, it is the same file under the new
        id (renamed in one step), read on from the same offset."""
        new = self.store.alias(self.sid)
        if not new or new == self.sid:
            return []
        self.sid, self.log = new, Path(self.store.location(new))
        return [Event("rename", text=new)]

    def _live_events(self) -> tuple[list[Event], list[Event]]:
        prefix = f"{self.sid}."
        try:
            names = [n for n in os.listdir(self.live) if n.startswith(prefix)
                     and n.endswith(".jsonl") and _is_reply_id(n[len(prefix):-6])]
        except OSError:
            names = []
        ends = []
        for name in sorted(set(self._pieces) - set(names)):  # removed: that reply was stored
            del self._pieces[name]
            self._cut.discard(name)
            ends.append(Event("end", reply=name[len(prefix):-6]))
        events = []
        for name in names:
            events += self._pieces_of(name)
        return events, ends

    def _dead(self) -> list[str]:
        """The replies read in part whose live file no process holds any more."""
        import fcntl

        now = time.monotonic()
        if now - self._checked < self.CHECK_SECONDS:
            return []
        self._checked = now
        prefix = f"{self.sid}."
        dead = []
        # Only files with pieces read: their writer locked them before writing any.
        for name in sorted(n for n, at in self._pieces.items() if at[1] and n not in self._cut):
            try:
                fd = os.open(self.live / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                # Still there once we hold it: not removed by a writer that ended it.
                if os.stat(self.live / name, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                    self._cut.add(name)
                    dead.append(name[len(prefix):-6])
            except OSError:  # held: its writer is alive (or a sweep is removing it)
                pass
            finally:
                os.close(fd)
        return dead

    def _pieces_of(self, name: str) -> list[Event]:
        try:
            fd = os.open(self.live / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return []
        try:
            st = os.fstat(fd)
            ino, offset = self._pieces.get(name, (st.st_ino, 0))
            if ino != st.st_ino:
                offset = 0
            data = os.pread(fd, max(0, st.st_size - offset), offset)
        finally:
            os.close(fd)
        cut = data.rfind(b"\n")
        if cut < 0:
            self._pieces[name] = (st.st_ino, offset)
            return []
        self._pieces[name] = (st.st_ino, offset + cut + 1)
        events = []
        for raw in data[:cut].split(b"\n"):
            record = _parse(raw)
            if record is None:
                continue
            with contextlib.suppress(Exception):
                events.append(_chunk_event(self.codec.open(record)))
        return events


def _count(value: object) -> int | None:
    """``value`` when it is a whole number of zero or more (never a bool), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _is_reply_id(text: str) -> bool:
    return len(text) == 16 and set(text) <= _HEX


def feed_for(store, sid: str) -> RedisFeed | FileFeed:
    if hasattr(store, "session_key"):
        return RedisFeed(store, sid)
    return FileFeed(store, sid)
