"""`aish --list-sessions`: the one command most runs of aish make, kept in a module of its own
so that it imports nothing the other basic commands need."""

from __future__ import annotations

import json

from aish.commands.context import Context
from aish.commands.registry import JSON, Arg, command
from aish.humanize import ago, iso, window


def listed_row(ctx: Context, row, state: str) -> dict:
    """One session of `aish --list-sessions --json`."""
    default = ctx.config.context_window
    out = {
        "id": row.id,
        "title": row.title,
        "ai": f"{row.owner}-ai",
        "participants": [f"{p}-ai" for p in row.participants],
        "state": state,
        "shared": row.shared,
        "messages": row.messages,
        "pairs": row.pairs,
        "context_used": row.context_used(default),
        "context_window": row.context_window(default),
        "created": iso(row.created),
        "updated": iso(row.updated),
    }
    if row.oneshot:  # a one-off question (`apollo "..."`), logged ended
        out["oneshot"] = True
    return out


def _json_array(items) -> str:
    """``json.dumps(list(items), indent=2)``, made one item at a time: a listing of thousands
    of sessions never holds every row's dict at once."""
    parts = ["  " + json.dumps(item, indent=2).replace("\n", "\n  ") for item in items]
    return "[\n" + ",\n".join(parts) + "\n]" if parts else "[]"


@command("list-sessions", "aish", "List active sessions (--all: ended, expired and one-off "
         "questions too).",
         args=(Arg("--all", "include ended and expired sessions and one-off questions",
                   flag=True), JSON),
         example="aish --list-sessions")
def list_sessions(ctx: Context, args) -> int:
    rows = ctx.sessions.list_rows(include_all=args.all)
    if args.json:
        ctx.out.data(_json_array(listed_row(ctx, row, state) for row, state in rows))
        return 0
    if not rows:
        ctx.out.note("No active sessions." if not args.all else "No sessions.")
        return 0
    now = ctx.now()
    default = ctx.config.context_window
    # The title column is shown only when some session has one.
    titled = any(row.title for row, _ in rows)
    lines = [f"{'SESSION':<24} {'AI':<16} {'STATE':<8} {'MSGS':>5} {'WINDOW':>9}  "
             + (f"{'LAST ACTIVITY':<16}  TITLE" if titled else "LAST ACTIVITY")]
    for row, state in rows:
        ai = f"{row.owner}-ai" + ("+" if row.shared else "")
        if row.oneshot:
            state = "one-off"
        last = ago(now - row.updated)
        used = window(row.context_used(default), row.context_window(default))
        lines.append(f"{row.id:<24} {ai:<16} {state:<8} {row.messages:>5} {used:>9}  "
                     + (f"{last:<16}  {row.title or ''}".rstrip() if titled else last))
    ctx.out.data("\n".join(lines))
    return 0
