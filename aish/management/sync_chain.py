"""The hash chain of one device's log in a sync transport.

Each line is ``{"seq": N, "h": H, "r": RECORD}``: ``seq`` counts from 1 without gaps and
``H = sha256(previous H + canonical RECORD)``, the first link starting from a value bound to the
session and the device, so a log copied into another session's or device's place fails too.
A reader trusts a log up to its first break (a torn last line, a bad hash, a seq gap, fewer
records than the writer's manifest counted) and nothing after it; the writer, the only one who
may change the log, cuts it back to that point and writes again what is missing. A line must
also be exactly as its writer wrote it: JSON that reads the same in another spelling (``\u001F``
for ``\u001f``, ``1E-05`` for ``1e-05``) is still a changed byte.

A device's manifest (its name, key id and how many records it wrote per log) carries the hash
of its own content, so that a flipped byte there is found as well, not read as other counts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

KINDS = ("meta", "msg", "head", "tomb", "alias")


def canonical(record: dict) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def genesis(sid: str, device: str) -> str:
    return hashlib.sha256(f"aish-sync/v1\n{sid}\n{device}".encode()).hexdigest()


def link(prev: str, record: dict) -> str:
    return hashlib.sha256((prev + canonical(record)).encode("utf-8", "surrogatepass")).hexdigest()


def _line(entry: dict) -> bytes:
    text = json.dumps(entry, separators=(",", ":"), ensure_ascii=False) + "\n"
    return text.encode("utf-8", "surrogatepass")


def manifest_bytes(manifest: dict) -> bytes:
    """A manifest as it is stored, sealed with the hash of its content."""
    body = {k: v for k, v in manifest.items() if k != "h"}
    return _manifest_text({**body, "h": _manifest_hash(body)})


def read_manifest(raw: bytes) -> tuple[dict, str]:
    """A stored manifest and "" or, when it is not exactly as its writer stored it, an empty
    one and what is wrong."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return {}, "unreadable"
    if not isinstance(data, dict):
        return {}, "unreadable"
    body = {k: v for k, v in data.items() if k != "h"}
    try:
        if data.get("h") != _manifest_hash(body) or _manifest_text(data) != raw:
            return {}, "does not match its hash"
    except (TypeError, ValueError):
        return {}, "unreadable"
    return body, ""


def _manifest_hash(body: dict) -> str:
    return hashlib.sha256(canonical(body).encode("utf-8", "surrogatepass")).hexdigest()


def _manifest_text(data: dict) -> bytes:
    return (json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode(
        "utf-8", "surrogatepass")


@dataclass
class Chain:
    """What a reader can trust of one device's log."""

    device: str
    records: list[dict] = field(default_factory=list)  # the verified ones, in order
    head: str = ""  # the hash of the last verified record
    good_bytes: int = 0  # how long the verified part is (where the writer cuts a broken log)
    problem: str = ""  # "" when the whole log verified

    @property
    def seq(self) -> int:
        return len(self.records)

    def line(self, record: dict) -> bytes:
        """The next line for ``record``; advances the chain."""
        self.head = link(self.head, record)
        self.records.append(record)
        data = _line({"seq": self.seq, "h": self.head, "r": record})
        self.good_bytes += len(data)
        return data


def verify(sid: str, device: str, data: bytes, counted: int = 0) -> Chain:
    """Read one device's log; ``counted``: how many records its manifest says it wrote."""
    chain = Chain(device, head=genesis(sid, device))
    lines = data.split(b"\n")
    torn = f"torn last line after seq {len(lines) - 1}" if lines[-1] else ""
    for raw in lines[:-1]:
        expected = chain.seq + 1
        try:
            entry = json.loads(raw.decode("utf-8", "surrogatepass"))
            seq, h, record = entry["seq"], entry["h"], entry["r"]
            spelled = _line(entry)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
            chain.problem = f"unreadable record at seq {expected}"
            return chain
        if spelled != raw + b"\n":
            chain.problem = f"altered record at seq {expected}"
            return chain
        if seq != expected:
            chain.problem = f"seq gap: {seq!r} where {expected} was due"
            return chain
        if (not isinstance(record, dict) or record.get("t") not in KINDS
                or h != link(chain.head, record)):
            chain.problem = f"bad hash at seq {expected}"
            return chain
        chain.head = h
        chain.records.append(record)
        chain.good_bytes += len(raw) + 1
    if torn:
        chain.problem = torn
    elif counted > chain.seq:
        missing = counted - chain.seq
        chain.problem = (f"{missing} record{'s' if missing != 1 else ''} missing after "
                         f"seq {chain.seq}")
    return chain
