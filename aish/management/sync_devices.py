"""`aish --sync`: the same sessions on every device, through any dumb transport, offline first.

Each device writes only its own log per session in the transport (`sync_transport`), holding
the records it contributes: messages (as stored: sealed when encryption is on), metadata
changes, where it last saw each branch (``head``), and, store-wide, deletions and renames.
Merging is a union: a message is known by its id, so a copy that arrives twice is harmless.

A sync reads every device's log, trusting each up to its first break (`sync_chain`) — or,
for a session nothing changed in since its last quiet sync (by the logs' metadata), nothing —
then

- *pulls*: appends to the local store, through `Sessions`, the messages it lacks (parents
  first), the metadata keys another device changed since the last sync, and branch moves: a
  branch another device moved ahead is fast-forwarded (compare-and-set, as every ref move),
  one both moved apart keeps this device's head and gets the other's beside it as
  ``NAME@DEVICE`` (which follows that device's head from then on); a branch another device
  moved back (an undo) from where this one still has it moves back too, and a head this device
  had and left is not taken again unless the other device went there after; nothing local is
  rewritten;
- *pushes*: appends to this device's own log what the transport does not hold yet, after
  cutting that log back to its last sound record if it was torn or tampered with.

A sync killed half-way leaves only whole records behind on both sides, so the next run
completes it; a run with nothing to do changes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from aish.devices import Device
from aish.errors import AishError, PermissionDenied
from aish.ids import ID_PATTERN
from aish.management.sync_chain import (
    Chain,
    canonical,
    genesis,
    manifest_bytes,
    read_manifest,
    verify,
)
from aish.management.sync_transport import MANIFESTS, STORE_LOG
from aish.store.base import TOMBSTONE_SECONDS, in_force, is_time, merge_tombstones
from aish.store.refs import MAIN, RefState, message_id, pin_main

# Metadata that describes one write or one copy rather than the session.
_LOCAL_META = ("t", "v", "time", "id", "updated", "renamed_from")


@dataclass
class Outcome:
    """What a sync did (or, in a dry run, would do) to one session."""

    id: str
    pulled: int = 0  # messages brought into the local store
    pushed: int = 0  # records added to this device's log
    created: bool = False
    removed: bool = False
    pruned: int = 0  # messages dropped here because another device pruned them
    renamed_to: str = ""
    meta: list[str] = field(default_factory=list)  # metadata keys taken from other devices
    moved: list[str] = field(default_factory=list)  # branches fast-forwarded
    diverged: list[str] = field(default_factory=list)  # NAME@DEVICE branches made or moved
    repaired: str = ""  # the break in this device's own log that was cut off
    error: str = ""
    # Why it was left out: a session this person may not read (another member's, shared
    # with others) is not theirs to sync, and must not fail every sync from then on.
    skipped: str = ""
    remote: bool = False  # some device has a log of it in the transport

    @property
    def changed(self) -> bool:
        return bool(self.pulled or self.pushed or self.created or self.removed or self.pruned
                    or self.meta
                    or self.moved or self.diverged or self.repaired or self.renamed_to
                    or self.error)


@dataclass
class Broken:
    """A log in the transport that did not verify whole."""

    sid: str
    device: str
    name: str
    problem: str

    def __str__(self) -> str:
        if self.sid == MANIFESTS:
            return f"the manifest of {self.name} ({self.device}) is broken: {self.problem}"
        log = "deletions and renames" if self.sid == STORE_LOG else f"session {self.sid}"
        return f"{log}: the log of {self.name} ({self.device}) is broken: {self.problem}"


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    broken: list[Broken] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)  # devices whose key is not ours
    statuses: dict[str, str] = field(default_factory=dict)  # sid -> what --sync-status says


class Syncer:
    def __init__(self, sessions, transport, device: Device, state, now: float,
                 dry_run: bool = False, skip_idle: bool = True):
        self.sessions, self.transport, self.device = sessions, transport, device
        self.state, self.now, self.dry_run = state, now, dry_run
        self.skip_idle = skip_idle
        codec = sessions.codec
        self.key = getattr(codec, "key_id", None)
        self.manifests, broken = read_manifests(transport)
        mine = self.manifests.get(device.id, {})
        logs = mine.get("logs")
        self.counts: dict[str, int] = dict(logs) if isinstance(logs, dict) else {}
        self.report = Report(broken=broken)
        self._trusted = {d for d, m in self.manifests.items() if m.get("key") == self.key}
        self._trusted.add(device.id)
        self.report.foreign = sorted(
            self._name(d) for d in self.manifests if d not in self._trusted)

    # -- reading the transport ---------------------------------------------------------
    def _name(self, device: str) -> str:
        from aish.devices import clean_name

        name = self.manifests.get(device, {}).get("name")
        return clean_name(name) if isinstance(name, str) else device[:8]

    def chains(self, sid: str) -> dict[str, Chain]:
        """Every device's log of ``sid``, verified; a broken one is reported and trusted only
        up to its break. Devices with another key are read for status, never imported."""
        out = {}
        for device in self.transport.devices(sid):
            if not ID_PATTERN.fullmatch(device):
                continue
            chain = verify(sid, device, self.transport.read(sid, device),
                           _counted(self.manifests, device, sid))
            if chain.problem:
                self.report.broken.append(Broken(sid, device, self._name(device), chain.problem))
            out[device] = chain
        mine = out.get(self.device.id)
        if mine is not None and self.counts.get(sid, 0) > mine.seq and "missing" in mine.problem:
            self.counts[sid] = mine.seq
        return out

    def _own(self, sid: str, chains: dict[str, Chain]) -> tuple[Chain, str]:
        """This device's chain of ``sid`` to extend, and the break it had ("" if none)."""
        chain = chains.get(self.device.id) or Chain(self.device.id,
                                                    head=genesis(sid, self.device.id))
        return chain, chain.problem

    def _append(self, sid: str, chain: Chain, broken: str, records: list[dict]) -> None:
        """Extend this device's log of ``sid``: cut back to its sound part first if broken."""
        if self.dry_run or not (records or broken):
            return
        if broken:
            kept = Chain(chain.device, head=genesis(sid, chain.device))
            data = b"".join(kept.line(r) for r in chain.records)
            chain.records, chain.head, chain.good_bytes = kept.records, kept.head, kept.good_bytes
            self.transport.rewrite(sid, self.device.id, data)
        if records:
            self.transport.append(sid, self.device.id, b"".join(chain.line(r) for r in records))
        self.counts[sid] = chain.seq

    def _trusted_records(self, chains: dict[str, Chain], others_only: bool = False
                         ) -> Iterable[tuple[str, dict]]:
        for device, chain in chains.items():
            if device not in self._trusted or (others_only and device == self.device.id):
                continue
            for record in chain.records:
                yield device, record

    # -- store-wide: deletions and renames ------------------------------------------------
    def store_wide(self) -> tuple[dict[str, dict], dict[str, str]]:
        """Deletions (merged with the local ones, and taken in) and renames, from every
        device; pushes this device's."""
        chains = self.chains(STORE_LOG)
        tombs: dict[str, dict] = {}
        aliases: dict[str, str] = {}
        for _device, record in self._trusted_records(chains):
            if record["t"] == "tomb" and isinstance(record.get("tomb"), dict):
                tomb = _tomb(record["tomb"])
                if tomb is not None:
                    tombs[tomb["id"]] = merge_tombstones(tombs.get(tomb["id"]), tomb) or tomb
            elif record["t"] == "alias":
                old, new = record.get("from"), record.get("to")
                if isinstance(old, str) and isinstance(new, str) and ID_PATTERN.fullmatch(old) \
                        and ID_PATTERN.fullmatch(new) and old != new:
                    aliases[old] = new
        fresh = self.now - TOMBSTONE_SECONDS
        tombs = {k: v for k, v in tombs.items() if v["time"] > fresh}
        local = self.sessions.tombstones()
        push: list[dict] = []
        merged_all = dict(tombs)
        for sid in sorted(set(local) | set(tombs)):
            merged = merge_tombstones(local.get(sid), tombs.get(sid))
            if merged is None:
                continue
            merged_all[sid] = merged
            if merged != tombs.get(sid):
                push.append({"t": "tomb", "tomb": merged})
            if merged != local.get(sid) and not self.dry_run:
                self.sessions.add_tombstone(merged)
        local_aliases = self.sessions.aliases()
        for old, new in sorted(local_aliases.items()):
            if aliases.get(old) != new:
                push.append({"t": "alias", "from": old, "to": new})
        own, broken = self._own(STORE_LOG, chains)
        self._append(STORE_LOG, own, broken, push)
        return merged_all, {**aliases, **local_aliases}

    # -- one session ----------------------------------------------------------------------
    def session(self, sid: str, tomb: dict | None, aliases: dict[str, str]) -> Outcome:
        out = Outcome(sid)
        try:
            self._session(sid, tomb, aliases, out)
        except PermissionDenied as exc:
            out.skipped = str(exc)
        except AishError as exc:  # one damaged or busy session does not stop the others
            out.error = str(exc)
        return out

    def _session(self, sid: str, tomb: dict | None, aliases: dict[str, str],
                 out: Outcome) -> None:
        sessions = self.sessions
        chains = self.chains(sid)
        own, broken = self._own(sid, chains)
        out.repaired = broken
        exists = sessions.exists(sid)
        out.remote = bool(chains)
        if not exists and sid in aliases:
            return  # a former id: its records are the renamed session's, synced under it
        # What the transport holds, from the devices whose records can be opened here.
        remote_msgs: dict[str, dict] = {}
        remote_meta: dict = {}
        heads: dict[str, dict[str, tuple[float, str]]] = {}  # device -> name -> (time, to)
        were: dict[tuple[str, str], set[str]] = {}  # (device, name) -> every head it had
        metas: list[tuple[float, dict]] = []
        for device, record in self._trusted_records(chains):
            kind = record["t"]
            if kind == "msg" and _sound_message(record):
                remote_msgs.setdefault(record["id"], record)
            elif kind == "meta":
                when = record.get("time")
                metas.append((float(when) if is_time(when) else 0.0, record))
            elif kind == "head" and isinstance(record.get("name"), str) \
                    and ID_PATTERN.fullmatch(record["name"]) and ".." not in record["name"] \
                    and (record.get("to") == "" or message_id(record.get("to"))):
                when = record.get("time")
                heads.setdefault(device, {})[record["name"]] = (
                    float(when) if is_time(when) else 0.0, record["to"])
                were.setdefault((device, record["name"]), set()).add(record["to"])
        for _when, record in sorted(metas, key=lambda m: m[0]):
            remote_meta.update({k: v for k, v in record.items() if k not in _LOCAL_META})
        if not exists and not remote_msgs and not remote_meta:
            return
        born = _created(sessions.summary(sid).meta if exists else remote_meta)
        removed, dropped = in_force(tomb, born) if tomb else (False, set())
        if removed:
            if exists:
                out.removed = True
                if not self.dry_run:
                    sessions.drop(sid, "sync")
            if own.records and not self.dry_run:
                # This device's copy of a removed session leaves the transport too, so that
                # nothing is left there to bring it back once the tombstone is forgotten.
                self.transport.rewrite(sid, self.device.id, b"")
                self.counts[sid] = 0
            return
        if exists and dropped:
            out.pruned = self._prune(sid, dropped)
        if not exists:
            out.created = True
            if not self.dry_run:
                sessions.take_session({**remote_meta, "id": sid}, device=self.device.name)
        local = sessions.stored_records(sid) if exists else []
        summary = sessions.summary(sid) if (exists or not self.dry_run) else None
        tree = summary.tree.copy() if summary is not None else RefState()
        local_meta = {k: v for k, v in (summary.meta if summary else {}).items()
                      if k not in _LOCAL_META}
        have = _parents(local)
        # -- pull -------------------------------------------------------------------------
        incoming = _parents_first([r for mid, r in remote_msgs.items()
                                   if mid not in have and mid not in dropped])
        records: list[dict] = []
        if incoming:
            # No record here carries a time: sync must not make a session look active again.
            records += pin_main(tree)
            for record in records:
                tree.fold(record, None)
            for record in incoming:
                copy = {k: v for k, v in record.items() if k not in ("pp", "ref")}
                records.append(copy)
                have[copy["id"]] = _link(copy, "")
        base = {} if out.created else self.state.base(self.transport.key, sid)
        taken = {k: v for k, v in remote_meta.items()
                 if local_meta.get(k) != v and (out.created or local_meta.get(k) == base.get(k))}
        if taken and not out.created:
            records.append({"t": "meta", **taken})
        out.meta = sorted(taken) if not out.created else []
        seen = {} if out.created else self.state.seen_heads(self.transport.key, sid)
        moves = self._moves(tree, heads, have, out, fresh=out.created, seen=seen, were=were,
                            moved_at=_moved_at(local))
        records += moves
        out.pulled = len(incoming)
        if records and not self.dry_run:
            sessions.take_records(sid, records, device=self.device.name, messages=len(incoming))
        # -- push -------------------------------------------------------------------------
        for record in records:
            tree.fold(record, None)
        merged_meta = {**local_meta, **taken}
        push: list[dict] = []
        for record in local:
            if record.get("t") == "msg" and isinstance(record.get("id"), str) \
                    and record["id"] not in remote_msgs and record["id"] not in dropped:
                push.append(self._sealed({k: v for k, v in record.items()
                                          if k not in ("pp", "ref")}))
        mine = {k: v for k, v in merged_meta.items() if remote_meta.get(k) != v}
        if mine:
            push.insert(0, {"t": "meta", **mine, "time": self.now})
        published = heads.get(self.device.id, {})
        for name in tree.names():
            head = tree.head(name)
            if head is None or "@" in name or (head.id and head.id not in have):
                continue
            if name == MAIN and not head.id and not have:
                continue
            if published.get(name, (0.0, None))[1] != head.id:
                push.append({"t": "head", "name": name, "to": head.id, "time": self.now})
        out.pushed = len(push)
        self._append(sid, own, broken, push)
        if not self.dry_run:
            self.state.set_base(self.transport.key, sid, merged_meta)
            self.state.set_seen_heads(self.transport.key, sid, {
                d: {n: to for n, (_when, to) in named.items() if not to or to in have}
                for d, named in heads.items() if d != self.device.id})
        out.diverged = sorted(set(out.diverged) | _diverged(tree, have))

    def _sealed(self, record: dict) -> dict:
        """A message as it may travel: with encryption on, sealed even when it was stored
        before encryption was turned on (never plaintext in the transport)."""
        codec = self.sessions.codec
        return codec.seal(record) if self.key and "enc" not in record else record

    def _prune(self, sid: str, dropped: set[str]) -> int:
        """Drop here the messages another device pruned (a backup is kept); how many."""
        from aish.branches import keep_only
        from aish.management.integrity import clean_meta, load_intact

        found = load_intact(self.sessions, sid, "sync")
        kept = [m for m in found.messages if m.id not in dropped]
        gone = len(found.messages) - len(kept)
        if gone and not self.dry_run:
            kept, refs = keep_only(found.messages, found.refs, kept)
            self.sessions.rewrite(sid, clean_meta(found.meta), kept, "sync", since=found.mark,
                                  refs=refs)
        return gone

    def _moves(self, tree: RefState, heads: dict[str, dict[str, tuple[float, str]]],
               have: dict[str, tuple[str, str]], out: Outcome, fresh: bool,
               seen: dict[str, dict[str, str]], were: dict[tuple[str, str], set[str]],
               moved_at: dict[str, float]) -> list[dict]:
        """Branch moves that bring other devices' heads here (see the module). A head this
        device took in at an earlier sync is not taken again: a branch moved here since (an
        undo) stays where it was moved."""
        moves: list[dict] = []
        mine = heads.get(self.device.id, {})

        def move(name: str, to: str, op: str) -> None:
            current = tree.head(name)
            record: dict = {"t": "ref", "name": name, "to": to, "op": op}
            if current is not None:
                record["from"] = current.id
            tree.fold(record, None)
            moves.append(record)

        def news(name: str, when: float, theirs: str) -> bool:
            """Not a head this device had and left since that device stood there (an undo
            here), unless it went there again after (a redo there)."""
            return theirs not in were.get((self.device.id, name), ()) or when > max(
                mine.get(name, (0.0, None))[0], moved_at.get(name, 0.0))

        others = sorted(d for d in heads if d != self.device.id and d in self._trusted)
        if fresh:  # a new session: each branch where the device that moved it last left it
            latest: dict[str, tuple[float, str]] = {}
            for device in others:
                for name, (when, to) in heads[device].items():
                    if "@" not in name and (not to or to in have) and (name not in latest
                                                           or when > latest[name][0]):
                        latest[name] = (when, to)
            for name, (_when, to) in sorted(latest.items()):
                current = tree.head(name)
                if current is None or current.id != to:
                    move(name, to, "sync")
        for device in others:
            taken = seen.get(device)
            for name, (when, theirs) in sorted(heads[device].items()):
                if "@" in name or (theirs and theirs not in have):
                    continue
                current = tree.head(name)
                mirror = f"{name[:64]}@{self._name(device)}"
                there = tree.head(mirror)
                if isinstance(taken, dict) and taken.get(name) == theirs:
                    # Taken in before; a side kept for it from an older copy of its log (a
                    # stale copy in a synced folder) follows it where it is now.
                    if current is not None and there is not None and there.id != theirs and (
                            theirs == current.id or theirs in _covered(have, current.id)):
                        move(mirror, theirs, "sync")
                    continue
                if current is None:
                    move(name, theirs, "sync")
                    out.moved.append(name)
                    continue
                if theirs == current.id or theirs in _covered(have, current.id):
                    if theirs != current.id and current.id in were.get((device, name), ()) \
                            and mine.get(name, (0.0, None))[1] == current.id \
                            and when > moved_at.get(name, 0.0):
                        # It moved back (an undo) from where both devices last left the
                        # branch, and it has not moved here since: the undo travels too.
                        move(name, theirs, "sync")
                        out.moved.append(name)
                    elif there is not None and there.id != theirs:
                        move(mirror, theirs, "sync")  # a side that went back: follow it
                    continue
                if current.id in _covered(have, theirs):
                    # Not to a head this device had and left since that device stood there
                    # (an undo here), unless it went there again after (a redo there).
                    if news(name, when, theirs):
                        move(name, theirs, "sync")
                        out.moved.append(name)
                    continue
                if there is None or there.id != theirs:
                    move(mirror, theirs, "sync")
                    out.diverged.append(mirror)
        # A side kept apart before a later move here (an undo taken from a third device) may
        # now be ahead of the branch: then the branch moves up to it, whatever the order the
        # devices were read in.
        for device in others:
            for name, (when, theirs) in sorted(heads[device].items()):
                current, there = tree.head(name), tree.head(f"{name[:64]}@{self._name(device)}")
                if current is not None and there is not None and there.id == theirs \
                        and current.id != theirs and current.id in _covered(have, theirs) \
                        and news(name, when, theirs):
                    move(name, theirs, "sync")
                    out.moved.append(name)
        return moves

    def run(self, ids: list[str] | None = None) -> Report:
        tombs, aliases = self.store_wide()
        self._follow_renames(aliases)
        wanted = ids or sorted((set(self.sessions.ids()) | set(self.transport.sessions()))
                               - {STORE_LOG})
        local = self.sessions.stamps() if self.skip_idle else None
        for sid in wanted:
            seen = self._fingerprint(sid, tombs.get(sid), aliases, local)
            kept = self.state.idle(self.transport.key, sid)
            if seen and kept.get("print") == seen:
                self.report.outcomes.append(Outcome(sid, remote=bool(kept.get("remote")),
                                                    diverged=list(kept.get("diverged") or [])))
                continue
            broken = len(self.report.broken)
            outcome = self.session(sid, tombs.get(sid), aliases)
            self.report.outcomes.append(outcome)
            if seen and not self.dry_run:
                # Taken before this run wrote anything: a session it changed no longer
                # matches, so the next run reads it once more and finds it quiet.
                quiet = not outcome.error and len(self.report.broken) == broken
                self.state.set_idle(self.transport.key, sid, {
                    "print": seen, "remote": outcome.remote, "diverged": outcome.diverged,
                } if quiet else None)
        if not self.dry_run:
            manifest = {"id": self.device.id, "name": self.device.name, "key": self.key,
                        "logs": self.counts}
            before = {k: v for k, v in self.manifests.get(self.device.id, {}).items()
                      if k != "time"}
            if manifest != before:  # an idle run leaves the transport as it was
                self.transport.put_manifest(self.device.id,
                                            manifest_bytes({**manifest, "time": self.now}))
            self.state.synced(self.transport.key, self.now)
            self.state.save()
        return self.report

    def _fingerprint(self, sid: str, tomb: dict | None, aliases: dict[str, str],
                     local: dict[str, str] | None) -> str:
        """A hash of everything a sync of ``sid`` depends on, read from metadata only: the
        local log's stamp, each device's log stamp, count and trust, the session's deletions
        and renames ("" when the local store has no stamps: then every run reads the logs)."""
        if local is None:
            return ""
        logs = self.transport.stamps(sid)
        facts = {"local": local.get(sid), "key": self.key, "tomb": tomb,
                 "alias": aliases.get(sid), "renamed": sorted(
                     old for old, new in aliases.items() if new == sid),
                 "logs": {d: [stamp, _counted(self.manifests, d, sid), d in self._trusted]
                          for d, stamp in sorted(logs.items())}}
        return hashlib.sha256(canonical(facts).encode("utf-8", "surrogatepass")).hexdigest()

    def _follow_renames(self, aliases: dict[str, str]) -> None:
        """A session another device renamed is renamed here too (its old id leads to it)."""
        for old, new in sorted(aliases.items()):
            if old in self.sessions.aliases() or not self.sessions.exists(old) \
                    or self.sessions.exists(new):
                continue
            outcome = Outcome(old, renamed_to=new)
            if not self.dry_run:
                try:
                    self.sessions.rename(old, new)
                except AishError as exc:
                    outcome.error = str(exc)
            self.report.outcomes.append(outcome)


def _tomb(data: dict) -> dict | None:
    from aish.store.base import parse_tombstone

    sid = data.get("id")
    if not isinstance(sid, str) or not ID_PATTERN.fullmatch(sid):
        return None
    import json

    return parse_tombstone(json.dumps(data), sid)


def _sound_message(record: dict) -> bool:
    """A message record another device wrote that this store can keep: well formed, with
    either its content or its sealed content (checked when it is opened)."""
    from aish.messages import Message

    if not message_id(record.get("id")):
        return False
    sealed = "enc" in record
    if sealed and not isinstance(record["enc"], str) or not sealed and "content" not in record:
        return False
    try:
        Message.from_record({**record, "content": ""} if sealed else record)
    except (KeyError, TypeError, ValueError, OverflowError):
        return False
    return True


def _created(meta: dict) -> float:
    created = meta.get("created")
    return float(created) if is_time(created) else 0.0


def _moved_at(records: list[dict]) -> dict[str, float]:
    """When each branch last moved here by this device's own work (an append, an undo, a
    redo): a head another device published before that is older news than this one."""
    out: dict[str, float] = {}
    for record in records:
        when = record.get("time")
        if not is_time(when) or record.get("op") == "sync":
            continue
        if record.get("t") == "ref" and isinstance(record.get("name"), str):
            name = record["name"]
        elif record.get("t") == "msg":
            name = record["ref"] if isinstance(record.get("ref"), str) else MAIN
        else:
            continue
        out[name] = max(out.get(name, 0.0), float(when))
    return out


def _link(record: dict, last: str) -> tuple[str, str]:
    """(parent, what it merged in: the head a merge note summarised, or the message a
    picked copy copies) of a message record."""
    parent = record.get("parent")
    source = record.get("source") or ""
    return (parent if isinstance(parent, str) else last,
            source if isinstance(source, str) else "")


def _parents(records: list[dict]) -> dict[str, tuple[str, str]]:
    """Message id -> (parent, merged source) of a stored log (a record without a parent
    follows the one before)."""
    out: dict[str, tuple[str, str]] = {}
    last = ""
    for record in records:
        if record.get("t") == "msg" and isinstance(record.get("id"), str):
            out[record["id"]] = _link(record, last)
            last = record["id"]
    return out


def _parents_first(records: list[dict]) -> list[dict]:
    """``records`` reordered so that a message comes after its parent when both are here."""
    by_id = {r["id"]: r for r in records}
    out: list[dict] = []
    placed: set[str] = set()
    for record in records:
        chain = []
        current: dict | None = record
        while current is not None and current["id"] not in placed:
            chain.append(current)
            placed.add(current["id"])
            parent = current.get("parent")
            current = by_id.get(parent) if isinstance(parent, str) else None
        out += reversed(chain)
    return out


def _covered(links: dict[str, tuple[str, str]], head: str) -> set[str]:
    """What the branch at ``head`` already holds: its path, the root, and what each merge
    note on it folded in (so a branch merged with merge-branch no longer counts as apart)."""
    out = {""}
    todo = [head]
    while todo:
        current = todo.pop()
        while current and current in links and current not in out:
            out.add(current)
            parent, source = links[current]
            if source:
                todo.append(source)
            current = parent
    return out


def _diverged(tree: RefState, have: dict[str, tuple[str, str]]) -> set[str]:
    """``NAME@DEVICE`` branches whose head ``NAME`` does not hold yet (not merged)."""
    out = set()
    for name, head in tree.refs.items():
        base, at, _device = name.partition("@")
        own = tree.head(base)
        if at and own is not None and head.id not in _covered(have, own.id):
            out.add(name)
    return out


def verify_all(transport) -> tuple[int, list[Broken]]:
    """Check every device's log in ``transport`` (copying nothing): how many, and the broken."""
    from aish.devices import clean_name

    manifests, broken = read_manifests(transport)
    logs = 0
    for sid in transport.sessions():
        for device in transport.devices(sid):
            chain = verify(sid, device, transport.read(sid, device),
                           _counted(manifests, device, sid))
            logs += 1
            if chain.problem:
                name = manifests.get(device, {}).get("name")
                broken.append(Broken(sid, device, clean_name(name) if isinstance(name, str)
                                     else device[:8], chain.problem))
    return logs, broken


def read_manifests(transport) -> tuple[dict[str, dict], list[Broken]]:
    """Every device's manifest that reads back exactly as it was written, and the others (a
    device whose manifest is damaged is not trusted until a whole copy arrives)."""
    out: dict[str, dict] = {}
    broken: list[Broken] = []
    for device, raw in transport.manifests().items():
        if not ID_PATTERN.fullmatch(device):
            continue
        data, problem = read_manifest(raw)
        if problem:
            broken.append(Broken(MANIFESTS, device, device[:8], problem))
        else:
            out[device] = data
    return out, broken


def _counted(manifests: dict[str, dict], device: str, sid: str) -> int:
    """How many records of ``sid`` the device's manifest says it wrote (0: unknown)."""
    logs = manifests.get(device, {}).get("logs")
    counted = logs.get(sid, 0) if isinstance(logs, dict) else 0
    return counted if isinstance(counted, int) and not isinstance(counted, bool) else 0
