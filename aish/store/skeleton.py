"""The tree's skeleton: a per-session cache of what drawing the history needs, so that
`aish --history` and the shell's `tree` do not parse the whole log before their first screen.

For each message it keeps the id, parent, role, specialist, time, note, author, token counts,
where the message is stored and its first line cut to :data:`FIRST_LINE_CHARS`; never the
rest of the content. Branch heads and metadata come from the summary (``.idx``), which
describes the same log. Like the summary it is only a cache, kept beside the log as ``.ID.skel``:

- it is a file of chunks, one a line (``CRC32 JSON``), each covering the log bytes ``from`` to
  ``to``; the first covers the log from its start. A reader that finds the log longer parses
  only the new complete lines and appends one chunk, so its cost follows what was appended,
  not the session's length; past :data:`MAX_CHUNKS` the file is written anew in one chunk;
- it is used only when it describes this very log: the same inode (a rewrite replaces the log
  by a new file), no more bytes than the log holds, and a checksum of the log's last bytes it
  covers that still matches (a failed append cut back, then written over);
- anything that does not check out (a flipped byte, a torn chunk, a foreign file, values of
  the wrong type) makes it a miss: it is rebuilt from the log, never reported as an error, and
  a write that fails (a full or read-only disk) leaves it as it was.

An encrypted store keeps no skeleton (first lines are message text): it reads the whole log.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aish.messages import Message, Usage
from aish.store import cachefile
from aish.store.base import parse_line

VERSION = 2  # 2: entries name their author
# Enough for any terminal line: the drawing cuts a first line to the room it has, so a longer
# line and its first FIRST_LINE_CHARS characters draw the same below that width.
FIRST_LINE_CHARS = 2048
WIDEST = FIRST_LINE_CHARS // 4  # the widest terminal drawn from the skeleton (room for redaction)
MAX_CHUNKS = 32  # chunks appended before the file is written anew as one
_READ_LIMIT = 256 * 1024 * 1024


class Unusable(Exception):
    """The log holds what the skeleton cannot stand for (a sealed message in a plain store):
    the caller reads it whole, which reports it."""


@dataclass
class Covered:
    """What a cache file holds: its entries and the part of the log they describe."""

    entries: list[list]
    messages: list[Message]  # what the entries stand for
    to: int  # log bytes covered
    damaged: int  # message records of the log a full read rejects (see `scan`)
    chunks: int
    file: tuple[int, int]  # the cache file's (inode, size) as read, to append to it safely


def path_for(root: Path, sid: str) -> Path:
    return root / f".{sid}.skel"


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def entry(said: Message) -> list:
    usage = said.usage
    return [said.id, said.parent or "", said.role, said.ai, said.time,
            first_line(said.content)[:FIRST_LINE_CHARS],
            None if usage is None else usage.prompt_tokens,
            None if usage is None else usage.completion_tokens, said.note, said.pos, said.by]

def message(item: object) -> Message:
    """The message an entry stands for, its content its first line; ValueError when a value
    is not of the type drawing expects (a cache is only trusted whole: one bad entry makes it
    a miss)."""
    if type(item) is not list or len(item) != 11:
        raise ValueError("not an entry")
    mid, parent, role, ai, when, first, prompt, completion, note, pos, by = item
    if not (type(mid) is str and type(parent) is str and type(ai) is str
            and type(first) is str and (role == "user" or role == "assistant")
            and (type(when) is float or type(when) is int)
            and (note is None or type(note) is str) and (pos is None or type(pos) is int)
            and (by is None or type(by) is str)
            and (prompt is None or (type(prompt) is int and type(completion) is int))):
        raise ValueError("not an entry")
    made = object.__new__(Message)
    # Checked above: filled in directly, as `Message.from_record` does, since the frozen
    # dataclass's __init__ would cost more than reading the rest of the cache.
    object.__setattr__(made, "__dict__", {
        "role": role, "content": first, "ai": ai, "time": float(when), "id": mid,
        "usage": None if prompt is None else Usage(prompt, completion), "interrupted": False,
        "model": None, "cut": False, "parent": parent, "ref": None, "note": note,
        "source": None, "timing": None, "by": by, "copied_by": None, "pos": pos, "pp": None,
        "covers": None, "summary": None, "summary_at": None})
    return made


_crc = cachefile.crc
_tail = cachefile.tail_crc


def _chunk(sid: str, ino: int, start: int, end: int, tail: str, entries: list[list],
           damaged: int) -> bytes:
    body = json.dumps({"v": VERSION, "sid": sid, "ino": ino, "from": start, "to": end,
                       "tail": tail, "damaged": damaged, "entries": entries},
                      ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    return _crc(body).encode() + b" " + body + b"\n"


def read(path: Path, sid: str, ino: int, log: BinaryIO, size: int) -> Covered | None:
    """The cache at ``path`` if it describes a prefix of this log (inode ``ino``, ``size``
    bytes, open as ``log``); None when it is missing or does not check out."""
    found = cachefile.read_regular(path, _READ_LIMIT)
    if found is None:
        return None
    data, st = found
    if not data.endswith(b"\n"):  # empty, or a chunk cut short: rebuilt whole
        return None
    entries: list[list] = []
    at, tail, chunks, damaged = 0, "", 0, 0
    try:
        for line in data[:-1].split(b"\n"):
            crc, _, body = line.partition(b" ")
            if crc.decode("ascii") != _crc(body):
                return None
            chunk = json.loads(body)
            if not (isinstance(chunk, dict) and chunk.get("v") == VERSION
                    and chunk.get("sid") == sid and chunk.get("ino") == ino
                    and chunk.get("from") == at and type(chunk.get("to")) is int
                    and chunk["to"] >= at and type(chunk.get("damaged")) is int
                    and isinstance(chunk.get("entries"), list)):
                return None
            at, tail, chunks = chunk["to"], str(chunk.get("tail")), chunks + 1
            damaged += chunk["damaged"]
            entries += chunk["entries"]
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if at > size or tail != _tail(log, at):
        return None
    try:
        messages = list(map(message, entries))
    except ValueError:
        return None
    return Covered(entries, messages, at, damaged, chunks, (st.st_ino, st.st_size))


def scan(data: bytes, start: int, follows: str) -> tuple[list[list], int]:
    """Entries of the complete lines in ``data`` (the log from byte ``start``), and how many
    message records a full read rejects; ``follows``: the last message before them, the parent
    of one stored without a parent. Lines and records are taken or skipped exactly as a full
    read of the log takes them."""
    out: list[list] = []
    damaged = 0
    for pos, raw in cachefile.log_lines(data, start):
        try:
            record = parse_line(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        if record["t"] != "msg":
            continue
        if "enc" in record:
            raise Unusable("a sealed message")
        try:
            if not record.get("id") or not isinstance(record["id"], str):
                raise ValueError("no id")
            found = Message.from_record(record, pos, follows)
        except (KeyError, TypeError, ValueError, OverflowError):
            # The summary still moves branches for it, a full read does not: such a log is
            # read whole, so that its heads are drawn where a full read puts them.
            damaged += 1
            continue
        out.append(entry(found))
        follows = found.id
    return out, damaged


def covered(path: Path, sid: str, log: BinaryIO) -> list[Message] | None:
    """The skeleton of the complete lines of ``log`` (the log of ``sid``, open for reading),
    from the cache at ``path`` brought up to date, or rebuilt; the cache is written back.
    None when the log holds damaged messages (see `scan`)."""
    st = os.fstat(log.fileno())
    log.seek(0, os.SEEK_END)
    size = log.tell()
    cache = read(path, sid, st.st_ino, log, size)
    start = 0 if cache is None else cache.to
    log.seek(start)
    data = log.read(size - start)
    end = start + data.rfind(b"\n") + 1
    if cache is not None and end == start:
        return None if cache.damaged else cache.messages
    known = [] if cache is None else cache.entries
    new, damaged = scan(data[:end - start], start, known[-1][0] if known else "")
    entries = known + new
    tail = _tail(log, end)
    before = 0 if cache is None else cache.damaged
    if cache is None or cache.chunks >= MAX_CHUNKS:
        _replace(path, _chunk(sid, st.st_ino, 0, end, tail, entries, before + damaged))
    else:
        _append(path, cache.file, _chunk(sid, st.st_ino, start, end, tail, new, damaged))
    if before + damaged:
        return None
    return (cache.messages if cache else []) + list(map(message, new))


def _replace(path: Path, payload: bytes) -> None:
    cachefile.replace(path, payload, ".skel-")


def _append(path: Path, was: tuple[int, int], payload: bytes) -> None:
    """Add a chunk to the cache file read as ``was`` (inode, size); when another reader changed
    it meanwhile, leave it: that reader brought it up to date."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        st = os.fstat(fd)
        if (st.st_ino, st.st_size) != was:
            return
        written = os.write(fd, payload)
        if written != len(payload):  # a full disk: the cut chunk makes the cache a miss
            os.ftruncate(fd, was[1])
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, was[1])
    finally:
        os.close(fd)
