"""`aish --sync-sessions`: bring the local file store and a Redis store up to date with each other.

A laptop works offline on its files and catches up later; a team's Redis receives what was
written locally. Messages carry stable ids, so a message is never copied twice:

- a session on one side only is copied whole to the other;
- a session on both sides gets the messages it lacks. When they all come after what it holds
  they are appended; otherwise (both sides went on separately) the session is rewritten as the
  merge of both, each side's order kept and interleaved by time, after a backup;
- metadata: the side with the later activity wins (state, window, ...); participants are
  united, ``shared`` is kept if either side set it.

Sync adds nothing that changes a session's last activity, so it never revives an expired one.

Deletions are not undone: prune, remove and cleanup leave a *tombstone* in their store (the
session id, the time, the operation and, for a prune, the ids of the messages it dropped).
Sync carries tombstones to the other side and applies them there: a removed session is removed
there too (after a backup), pruned messages are dropped, and neither is ever copied back.
`--restore-session` records that it cleared the deletions before it, and a session created anew
under a removed id is not the removed one: neither is affected. Tombstones are kept for
`aish.store.base.TOMBSTONE_SECONDS`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from aish.errors import AishError, UsageError
from aish.ids import check_id
from aish.messages import Message
from aish.store.base import in_force, is_time, merge_tombstones, path_in

# Keys of a folded meta that describe one write rather than the session.
_TRANSIENT = ("t", "v", "time")


@dataclass
class Change:
    id: str
    direction: str  # "push" (files -> Redis) or "pull" (Redis -> files)
    action: str  # "copy", "append", "rewrite", "meta", "delete", "error"
    messages: int = 0  # messages written
    backup: str | None = None
    detail: str = ""


def merge_messages(first: list[Message], second: list[Message]) -> list[Message]:
    """Union by id; each side's order kept, interleaved by time (ties: ``first`` first)."""
    out: list[Message] = []
    seen: set[str] = set()
    i = j = 0
    while i < len(first) or j < len(second):
        if i < len(first) and first[i].id in seen:
            i += 1
            continue
        if j < len(second) and second[j].id in seen:
            j += 1
            continue
        take_first = j >= len(second) or (i < len(first) and first[i].time <= second[j].time)
        message = first[i] if take_first else second[j]
        if take_first:
            i += 1
        else:
            j += 1
        seen.add(message.id)
        out.append(message)
    return out


def merge_meta(a: dict, a_updated: float, b: dict, b_updated: float) -> dict:
    """The session's metadata after sync: the later side wins, participants are united."""
    older, newer = (b, a) if a_updated >= b_updated else (a, b)
    meta = {**older, **newer}
    participants: list = []
    for side in (a, b):
        for name in side.get("participants") or []:
            if name not in participants:
                participants.append(name)
    if participants:
        meta["participants"] = participants
    if a.get("shared") or b.get("shared"):
        meta["shared"] = True
    created = [m["created"] for m in (a, b) if isinstance(m.get("created"), int | float)]
    if created:
        meta["created"] = min(created)
    return {k: v for k, v in meta.items() if k not in _TRANSIENT}


def merge_refs(mine, theirs, merged: list[Message], other_side: str) -> dict[str, str]:
    """The branches after sync: a branch one side moved further (the other's head is on its
    path) is taken at its further head; one that both sides moved apart keeps the local head,
    and the other side's becomes ``NAME.SIDE``, so neither path is dropped."""
    by_id = {m.id: m for m in merged}
    out: dict[str, str] = {}

    def heads(loaded) -> dict[str, str]:
        found = {n: h.id for n, h in loaded.tree.refs.items()}
        main = loaded.tree.head("main")
        if main is not None:
            found["main"] = main.id
        return {n: h for n, h in found.items() if h == "" or h in by_id}

    a, b = heads(mine), heads(theirs)
    for name in sorted(set(a) | set(b)):
        x, y = a.get(name), b.get(name)
        if x is None or y is None or x == y:
            out[name] = x if x is not None else y  # type: ignore[assignment]
            continue
        on_x = {m.id for m in path_in(by_id, x)}
        on_y = {m.id for m in path_in(by_id, y)}
        if y == "" or y in on_x:
            out[name] = x
        elif x == "" or x in on_y:
            out[name] = y
        else:
            out[name] = x
            out[side_name(name, other_side)] = y
    return out


def side_name(name: str, side: str) -> str:
    """``NAME.SIDE``, short enough to be a branch name."""
    return f"{name[:63 - len(side)]}.{side}"


def _ref_records(have, refs: dict[str, str]) -> list[dict]:
    """Moves bringing ``have``'s branches to ``refs``, each from where ``have`` saw it."""
    records = []
    for name, target in refs.items():
        current = have.tree.head(name)
        if current is not None and current.id == target:
            continue
        record = {"t": "ref", "name": name, "to": target, "op": "sync"}
        if current is not None:
            record["from"] = current.id
        records.append(record)
    return records


def _updated(store, sid: str) -> float:
    return store.summary(sid).updated


def _bring(target, sid: str, have, merged: list[Message], meta: dict, direction: str,
           dry_run: bool, refs: dict[str, str]) -> Change | None:
    """Make ``target``'s copy of ``sid`` hold ``merged``, ``meta`` and the branches ``refs``;
    None when it does."""
    have_ids = [m.id for m in have.messages]
    want_ids = [m.id for m in merged]
    meta_diff = {k: v for k, v in meta.items() if have.meta.get(k) != v}
    moves = _ref_records(have, refs)
    if have_ids == want_ids:
        if not meta_diff and not moves:
            return None
        if not dry_run:
            target.append(sid, ([{"t": "meta", **meta_diff}] if meta_diff else []) + moves)
        detail = ", ".join(sorted(meta_diff) + (["branches"] if moves else []))
        return Change(sid, direction, "meta", 0, detail=detail)
    if want_ids[: len(have_ids)] == have_ids:
        new = merged[len(have_ids):]
        if not dry_run:
            # Copied messages keep their parents and move no branch; the branches move in the
            # same write, each by compare-and-set from where this copy had it (first, so that
            # an older log's implicit main does not follow the copies).
            records = [{k: v for k, v in m.to_record().items() if k != "ref"} for m in new]
            if meta_diff:
                records.append({"t": "meta", **meta_diff})
            main = have.tree.head("main")
            if "main" not in have.tree.refs and main is not None and not any(
                    r["name"] == "main" for r in moves):
                moves.insert(0, {"t": "ref", "name": "main", "from": main.id,
                                 "to": refs.get("main", main.id), "op": "sync"})
            target.append(sid, moves + records)
        return Change(sid, direction, "append", len(new))
    added = len(set(want_ids) - set(have_ids))
    if dry_run:
        return Change(sid, direction, "rewrite", added)
    backup = target.backup(sid, "sync")
    target.replace(sid, meta, merged, since=have.mark, refs=refs)
    return Change(sid, direction, "rewrite", added, backup=backup)


def _born(store, sid: str) -> float:
    """When this copy was created: a session made anew under a removed id is a new one."""
    created = store.summary(sid).meta.get("created")
    return float(created) if is_time(created) else 0.0


def _without(loaded, dropped: set[str]):
    return loaded.with_messages([m for m in loaded.messages if m.id not in dropped])


def sync_session(local, remote, sid: str, push: bool = True, pull: bool = True,
                 dry_run: bool = False, tomb: dict | None = None) -> list[Change]:
    """Sync one session; ``tomb`` is what was deleted from it on either side (see the module)."""
    on_local, on_remote = local.exists(sid), remote.exists(sid)
    changes: list[Change] = []
    dropped: dict[str, set[str]] = {"local": set(), "remote": set()}
    if tomb is not None:
        # Each copy is judged by its own birth: a copy made anew under a removed id is a new
        # session, but an old copy on the other side is still removed, never merged into it.
        for side, store, there, direction, enabled in (
                ("local", local, on_local, "pull", pull),
                ("remote", remote, on_remote, "push", push)):
            if not there:
                continue
            removed, dropped[side] = in_force(tomb, _born(store, sid))
            if not removed:
                continue
            if not enabled:  # it may not be removed from here: then it is not copied either
                return changes
            backup = None if dry_run else store.remove(sid, "sync")
            changes.append(Change(sid, direction, "delete", backup=backup,
                                  detail="removed on the other side"))
            if side == "local":
                on_local = False
            else:
                on_remote = False
        if not (on_local or on_remote):
            return changes
    if on_local and not on_remote or on_remote and not on_local:
        source, target, direction = (local, remote, "push") if on_local else (
            remote, local, "pull")
        if (direction == "push" and not push) or (direction == "pull" and not pull):
            return changes
        loaded = _without(source.load(sid), dropped["local" if on_local else "remote"])
        meta = {k: v for k, v in loaded.meta.items() if k not in _TRANSIENT}
        meta["id"] = sid
        if not dry_run:
            target.create(meta, loaded.messages, loaded.ref_ids())
        return [*changes, Change(sid, direction, "copy", len(loaded.messages))]
    if not on_local:
        return []
    mine, theirs = local.load(sid), remote.load(sid)
    merged = merge_messages(_without(mine, dropped["local"]).messages,
                            _without(theirs, dropped["remote"]).messages)
    meta = merge_meta(mine.meta, _updated(local, sid), theirs.meta, _updated(remote, sid))
    meta["id"] = sid
    refs = merge_refs(mine, theirs, merged, "redis")
    changes = []
    if push and (change := _bring(remote, sid, theirs, merged, meta, "push", dry_run, refs)):
        changes.append(change)
    if pull and (change := _bring(local, sid, mine, merged, meta, "pull", dry_run, refs)):
        changes.append(change)
    return changes


def settle_tombstone(local, remote, mine: dict | None, theirs: dict | None, push: bool,
                     pull: bool, dry_run: bool) -> dict | None:
    """The deletions recorded for a session on either side, carried to the other side."""
    tomb = merge_tombstones(mine, theirs)
    for store, held, enabled in ((local, mine, pull), (remote, theirs, push)):
        if tomb is not None and held != tomb and enabled and not dry_run:
            store.add_tombstone(tomb)
    return tomb


def sync_docs(local, remote, push: bool, pull: bool, dry_run: bool) -> list[Change]:
    """Copy templates missing on one side (a template of the same name is never overwritten)."""
    changes = []
    for kind in ("templates",):
        mine, theirs = set(local.list_docs(kind)), set(remote.list_docs(kind))
        for names, source, target, direction, enabled in (
                (mine - theirs, local, remote, "push", push),
                (theirs - mine, remote, local, "pull", pull)):
            for name in sorted(names) if enabled else ():
                if not dry_run:
                    doc = source.get_doc(kind, name)
                    if doc is None:
                        continue
                    target.put_doc(kind, name, doc)
                changes.append(Change(name, direction, "template"))
    return changes


def sync(local, remote, ids: list[str] | None = None, push: bool = True, pull: bool = True,
         dry_run: bool = False, audit=None) -> list[Change]:
    """Sync ``ids`` (default: every session on either side) and, without ids, templates."""
    tombs = local.tombstones(), remote.tombstones()
    wanted = ids if ids else sorted(set(local.ids()) | set(remote.ids()) | set(tombs[0])
                                    | set(tombs[1]))
    changes: list[Change] = []
    for sid in wanted:
        try:
            check_id(sid)
            tomb = settle_tombstone(local, remote, tombs[0].get(sid), tombs[1].get(sid),
                                    push, pull, dry_run)
            done = sync_session(local, remote, sid, push, pull, dry_run, tomb)
        except AishError as exc:  # one damaged or busy session does not stop the others
            done = [Change(sid, "both", "error", detail=str(exc))]
        changes += done
        if audit is not None and not dry_run:
            for change in done:
                if change.action != "error":
                    audit.record("sync", sid, None, direction=change.direction,
                                 change=change.action, messages=change.messages,
                                 **({"backup": change.backup} if change.backup else {}))
    if not ids:
        changes += sync_docs(local, remote, push, pull, dry_run)
    return changes


def open_pair(config, url: str | None, warn=None):
    """The local file store and the Redis store, each with its own key check when encrypted."""
    from aish.store.filestore import FileStore
    from aish.store.redisstore import RedisStore

    if url:
        from aish.config import check_redis_url

        check_redis_url(url, "--url")
    url = url or config.redis_url
    if not url:
        raise UsageError("copying between the session stores needs a Redis URL",
                         hint="pass --store redis://HOST:6379/0 (--url with --sync-sessions) "
                         "or set sessions.storage.url")
    file_codec = redis_codec = None
    if config.encrypt:
        from aish.store.crypto import codec_for

        file_codec = codec_for(replace(config, storage_type="file"))
        redis_codec = codec_for(replace(config, storage_type="redis", redis_url=url))
    local = FileStore(config.session_dir, codec=file_codec,
                      max_session_bytes=config.max_session_bytes, warn=warn)
    remote = RedisStore(url, codec=redis_codec, timeout_minutes=config.timeout_minutes,
                        max_session_bytes=config.max_session_bytes)
    return local, remote
