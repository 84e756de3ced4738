"""`aish --sync-sessions`: the command; the logic lives in `aish.management.sync`."""

from __future__ import annotations

import json
from dataclasses import asdict

from aish.commands.context import Context
from aish.commands.registry import JSON, Arg, command
from aish.errors import UsageError
from aish.management.sync import Change, open_pair, sync


@command(
    "sync-sessions", "aish",
    "Copy sessions between the local files and Redis, both ways, never duplicating a message.",
    args=(
        Arg("ID", "only these sessions (default: all, and templates)", nargs="*",
            completes="session"),
        Arg("--push", "only local files -> Redis", flag=True),
        Arg("--pull", "only Redis -> local files", flag=True),
        Arg("--url", "the Redis URL (default: sessions.storage.url)", metavar="URL"),
        Arg("--dry-run", "show what would be copied, change nothing", flag=True),
        JSON,
    ),
    example="aish --sync-sessions --url redis://team-host:6379/0",
)
def sync_sessions(ctx: Context, args) -> int:
    if args.push and args.pull:
        raise UsageError("--push and --pull together are the default; give one or neither")
    local, remote = open_pair(ctx.config, args.url, warn=ctx.out.warn)
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
