"""The hash chain of one device's log in a sync transport.

Each line is ``{"seq": N, "h": H, "r": RECORD}``: ``seq`` counts from 1 without gaps and
``H = sha256(previous H + canonical RECORD)``, the first link starting from a value bound to the
session and the device, so a log copied into another session's or device's place fails too.
A reader trusts a log up to its first break (a torn last line, a bad hash, a seq gap, fewer
records than the writer's manifest counted) and nothing after it; the writer, the only one who
may change the log, cuts it back to that point and writes again what is missing.
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
        text = json.dumps({"seq": self.seq, "h": self.head, "r": record},
                          separators=(",", ":"), ensure_ascii=False) + "\n"
        data = text.encode("utf-8", "surrogatepass")
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
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
            chain.problem = f"unreadable record at seq {expected}"
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
