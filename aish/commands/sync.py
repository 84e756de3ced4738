"""`aish --sync` (devices; with `--store`, files <-> Redis, also spelled `--sync-sessions`),
`aish --sync-status`, `aish --export-key` / `--import-key`; the logic lives in
`aish.management.sync*`."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict
from pathlib import Path

from aish.commands.context import Context
from aish.commands.registry import JSON, Arg, command
from aish.errors import UsageError
from aish.ids import check_id
from aish.management.sync import Change, open_pair, sync

_BETWEEN_STORES = (
    Arg("--push", "with --store: only local files -> Redis", flag=True),
    Arg("--pull", "with --store: only Redis -> local files", flag=True),
)


@command(
    "sync-sessions", "aish",
    "The same as aish --sync --store [URL]: copy sessions between the local files and Redis, "
    "both ways, never duplicating a message.",
    args=(
        Arg("ID", "only these sessions (default: all, and templates)", nargs="*",
            completes="session"),
        *_BETWEEN_STORES,
        Arg("--url", "the Redis URL (default: sessions.storage.url)", metavar="URL"),
        Arg("--dry-run", "show what would be copied, change nothing", flag=True),
        JSON,
    ),
    example="aish --sync-sessions --url redis://team-host:6379/0",
)
def sync_sessions(ctx: Context, args) -> int:
    return _between_stores(ctx, args, args.url)


def _between_stores(ctx: Context, args, url: str | None) -> int:
    """Bring the local file store and a Redis session store up to date with each other: the
    store itself, not a transport (moving to Redis, or keeping a copy there)."""
    if args.push and args.pull:
        raise UsageError("--push and --pull together are the default; give one or neither")
    local, remote = open_pair(ctx.config, url, warn=ctx.out.warn)
    changes = sync(local, remote, list(args.id), push=not args.pull, pull=not args.push,
                   dry_run=args.dry_run, audit=ctx.audit)
    if args.json:
        ctx.out.data(json.dumps([asdict(c) for c in changes], indent=2))
    else:
        _report(ctx, changes, args.dry_run, remote.url)
    return 1 if any(c.action == "error" for c in changes) else 0


def _report(ctx: Context, changes: list[Change], dry_run: bool, url: str) -> None:
    arrows = {"push": f"-> {url}", "pull": "-> local", "both": ""}
    verbs = {"copy": "copied", "append": "appended", "rewrite": "merged", "meta": "updated",
             "delete": "removed",
             "template": "copied template", "error": "FAILED"}
    if not changes:
        ctx.out.note(f"Everything is in sync with {url}.")
        return
    lines = []
    for c in changes:
        what = f"{c.messages} message{'s' if c.messages != 1 else ''}" if c.action in (
            "copy", "append", "rewrite") else c.detail
        lines.append(f"{c.id:<24} {verbs[c.action]:<16} {what:<14} {arrows[c.direction]}"
                     .rstrip())
        if c.backup:
            lines.append(f"{'':<24} backup: {c.backup}")
    ctx.out.data("\n".join(lines))
    if dry_run:
        ctx.out.note("Dry run: nothing was changed.")


# -- device sync: every device's own log in a shared folder or Redis --------------------------

_TRANSPORT = (
    Arg("--dir", "a folder every device sees (Syncthing, Dropbox, rsync, a USB stick)",
        metavar="PATH", completes="path"),
    Arg("--to", "a Redis server instead of a folder", metavar="URL"),
)


def _transport(ctx: Context, args):
    from aish.management.sync_transport import open_transport

    to, folder = args.to, args.dir
    if not (to or folder):
        to, folder = ctx.config.sync_url, ctx.config.sync_dir
        if to and folder:
            to = None  # both configured: the folder, which works offline
    return open_transport(to, str(folder) if folder else None)


def _syncer(ctx: Context, args, dry_run: bool):
    from aish.devices import this_device
    from aish.management.sync_devices import Syncer
    from aish.management.sync_state import SyncState

    transport = _transport(ctx, args)
    device = this_device(ctx.config.home, ctx.environ, create=not dry_run)
    return Syncer(ctx.sessions, transport, device, SyncState(ctx.config.home), ctx.now(),
                  dry_run=dry_run), transport


@command(
    "sync", "aish",
    "Sync sessions with this user's other devices through a folder or Redis: each device "
    "writes only its own hash-chained log, so any copy tool can carry it.",
    args=(
        Arg("ID", "only these sessions (default: all)", nargs="*", completes="session"),
        *_TRANSPORT,
        Arg("--dry-run", "show what would be copied, change nothing", flag=True),
        Arg("--verify", "check every device's log in the transport, copy nothing", flag=True),
        Arg("--store", "instead: bring this store and another session store up to date with "
            "each other (files <-> Redis; URL default: sessions.storage.url)", nargs="?",
            const="", metavar="URL", dest="other_store"),
        *_BETWEEN_STORES,
        JSON,
    ),
    example="aish --sync --dir ~/Sync/aish",
)
def sync_devices(ctx: Context, args) -> int:
    if args.other_store is not None:
        if args.dir or args.to or args.verify:
            raise UsageError("--store copies between session stores; --dir, --to and "
                             "--verify are for devices: give one or the other")
        return _between_stores(ctx, args, args.other_store or None)
    if args.push or args.pull:
        raise UsageError("--push and --pull go with --store",
                         hint="devices always sync both ways")
    if args.verify:
        return _verify(ctx, args)
    for sid in args.id:
        check_id(sid)
    from aish.management.sync_state import one_sync_at_a_time

    with one_sync_at_a_time(ctx.config.home) if not args.dry_run else contextlib.nullcontext():
        syncer, transport = _syncer(ctx, args, args.dry_run)
        report = syncer.run(list(args.id))
    for broken in report.broken:
        ctx.out.warn(f"{broken}; its records from there on are not trusted")
    for o in report.outcomes:
        if o.skipped:
            ctx.out.warn(f"{o.id} left out: {o.skipped}")
    for name in report.foreign:
        ctx.out.warn(f"device {name} seals its sessions with another key: its records are not "
                     "taken (aish --export-key there, aish --import-key here)")
    changed = [o for o in report.outcomes if o.changed]
    if args.json:
        ctx.out.data(json.dumps({"transport": transport.where, "dry_run": args.dry_run,
                                 "sessions": [asdict(o) for o in changed],
                                 "broken": [asdict(b) for b in report.broken]}, indent=2))
    elif not changed:
        ctx.out.note(f"Up to date with {transport.where}.")
    else:
        ctx.out.data("\n".join(f"{o.id:<24} {_describe(o, args.dry_run)}" for o in changed))
        if args.dry_run:
            ctx.out.note("Dry run: nothing was changed.")
    return 1 if any(o.error for o in report.outcomes) else 0


def _describe(o, dry_run: bool) -> str:
    def count(n: int, what: str) -> str:
        return f"{n} {what}{'s' if n != 1 else ''}"

    if o.error:
        return f"FAILED: {o.error}"
    would = "would be " if dry_run else ""
    parts = [text for present, text in (
        (o.removed, f"{would}removed (removed on another device)"),
        (o.renamed_to, f"{would}renamed to {o.renamed_to} (renamed on another device)"),
        (o.created, f"{would}created here"),
        (o.pruned, f"{count(o.pruned, 'message')} {would}dropped (pruned on another device)"),
        (o.pulled, f"{count(o.pulled, 'message')} {would}pulled"),
        (o.meta, f"{would}updated: {', '.join(o.meta)}"),
        (o.moved, f"{would}moved: {', '.join(o.moved)}"),
        (o.diverged, f"diverged: {', '.join(o.diverged)} (merge with aish --merge-branch)"),
        (o.pushed, f"{count(o.pushed, 'record')} {would}pushed"),
        (o.repaired, f"this device's log {would}repaired ({o.repaired})"),
    ) if present]
    return "; ".join(parts)


def _verify(ctx: Context, args) -> int:
    from aish.management.sync_devices import verify_all

    transport = _transport(ctx, args)
    logs, broken = verify_all(transport)
    for problem in broken:
        ctx.out.data(str(problem))
    if args.json:
        ctx.out.data(json.dumps({"logs": logs, "broken": [asdict(b) for b in broken]}))
    if broken:
        return 1
    ctx.out.note(f"All {logs} log{'s' if logs != 1 else ''} in {transport.where} verified.")
    return 0


@command(
    "sync-status", "aish",
    "Per session: local only, in sync, records to push or pull, diverged branches, broken "
    "logs; and when each transport was last synced.",
    args=(*_TRANSPORT, JSON),
    example="aish --sync-status --dir ~/Sync/aish",
)
def sync_status(ctx: Context, args) -> int:
    from aish.humanize import ago
    from aish.management.sync_state import SyncState

    syncer, transport = _syncer(ctx, args, dry_run=True)
    report = syncer.run()
    rows = []
    for o in report.outcomes:
        broken = [b for b in report.broken if b.sid == o.id]
        rows.append((o.id, _status(o, broken)))
    last = SyncState(ctx.config.home).last()
    if args.json:
        ctx.out.data(json.dumps({"transport": transport.where, "sessions": dict(rows),
                                 "last_sync": last}, indent=2))
        return 0
    lines = [f"{sid:<24} {status}" for sid, status in rows]
    lines += [f"store-wide: {b}" for b in report.broken if b.sid in ("_store", "_devices")]
    for key, when in sorted(last.items()):
        lines.append(f"last sync with {key.partition(':')[2]}: {ago(ctx.now() - when)}")
    if transport.key not in last:
        lines.append(f"never synced with {transport.where}")
    ctx.out.data("\n".join(lines) if lines else "no sessions")
    return 0


def _status(o, broken) -> str:
    if o.error:
        return f"error: {o.error}"
    if o.skipped:
        return f"left out: {o.skipped}"
    parts = [text for present, text in (
        (not o.remote, "local only"),
        (o.created or o.pulled, f"{o.pulled} to pull" + (" (new here)" if o.created else "")),
        (o.removed, "removed on another device"),
        (o.pruned, f"{o.pruned} pruned on another device"),
        (o.meta or o.moved, "changes to pull: " + ", ".join(o.meta + o.moved)),
        (o.pushed and o.remote, f"{o.pushed} to push"),
        (o.diverged, f"diverged branches: {', '.join(o.diverged)}"),
    ) if present]
    parts += [f"broken chain: {b.name} ({b.problem})" for b in broken]
    if o.repaired and not broken:
        parts.append(f"this device's log is broken ({o.repaired})")
    return "; ".join(parts) or "in sync"


@command(
    "export-key", "aish",
    "Write the encryption key of the sessions to FILE (0600, never over an existing file), "
    "for --import-key on another device.",
    args=(Arg("FILE", "where to write the key", completes="path"),),
    example="aish --export-key /media/usb/aish.key",
)
def export_key_command(ctx: Context, args) -> int:
    from aish.management.sync_keys import export_key

    kid = export_key(ctx.config, ctx.environ, Path(args.file))
    ctx.out.note(f"Key {kid} written to {args.file}: keep it as secret as a password, and "
                 "delete it once imported.")
    return 0


@command(
    "import-key", "aish",
    "Use the encryption key in FILE (from --export-key) for the sessions here, so that "
    "synced sessions from that device open; never replaces a different key.",
    args=(Arg("FILE", "a key file from aish --export-key", completes="path"),),
    example="aish --import-key /media/usb/aish.key",
)
def import_key_command(ctx: Context, args) -> int:
    from aish.management.sync_keys import import_key

    kid, made = import_key(ctx.config, Path(args.file))
    ctx.out.note(f"Key {kid} imported" + (" and the store set up for it" if made else "")
                 + (". Turn on sessions.storage.encrypt to use it." if not ctx.config.encrypt
                    else "."))
    return 0
