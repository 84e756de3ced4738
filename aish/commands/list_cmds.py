"""`aish --list-sessions`: the one command most runs of aish make, kept in a module of its own
so that it imports nothing the other basic commands need."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]

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


def _scalar(value) -> str:
    """``json.dumps(value)`` for one scalar, without its per-call setup (a listing makes a
    dozen per session)."""
    if isinstance(value, str):
        return encode_basestring_ascii(value)  # what json.dumps uses for a str (ensure_ascii)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return int.__repr__(value)
    return json.dumps(value)


def json_pieces(items: Iterable[dict], batch: int = 500) -> Iterator[str]:
    """``json.dumps(list(items), indent=2)`` in pieces of ``batch`` items, each item laid out
    by hand around the C encoder's scalars (``indent`` makes json fall back to its pure-Python
    encoder): a listing of thousands of sessions is neither held whole nor slow to write.
    Items are flat: scalar values and lists of scalars."""
    dumps = _scalar
    pending: list[str] = []
    first = True
    for item in items:
        fields = []
        for key, value in item.items():
            if isinstance(value, list):
                value = ("[\n" + ",\n".join("      " + dumps(v) for v in value) + "\n    ]"
                         if value else "[]")
            else:
                value = dumps(value)
            fields.append(f"    {dumps(key)}: {value}")
        body = "{\n" + ",\n".join(fields) + "\n  }" if fields else "{}"
        pending.append(("[\n  " if first else ",\n  ") + body)
        first = False
        if len(pending) >= batch:
            yield "".join(pending)
            pending = []
    yield "".join(pending) + ("[]" if first else "\n]")


@command("list-sessions", "aish", "List active sessions (--all: ended, expired and one-off "
         "questions too).",
         args=(Arg("--all", "include ended and expired sessions and one-off questions",
                   flag=True), JSON),
         example="aish --list-sessions")
def list_sessions(ctx: Context, args) -> int:
    rows = ctx.sessions.list_rows(include_all=args.all)
    if args.json:
        # JSON escapes every control character (ensure_ascii), so each piece is sanitised
        # exactly as the whole text would be.
        for piece in json_pieces(listed_row(ctx, row, state) for row, state in rows):
            ctx.out.data(piece, end="")
        ctx.out.data()
        return 0
    if not rows:
        ctx.out.note("No active sessions." if not args.all else "No sessions.")
        return 0
    now = ctx.now()
    default = ctx.config.context_window
    # The title column is shown only when some session has one.
    titled = any(row.title for row, _ in rows)
    cells = []
    for row, state in rows:
        ai = f"{row.owner}-ai" + ("+" if row.shared else "")
        if row.oneshot:
            state = "one-off"
        used = window(row.context_used(default), row.context_window(default))
        cells.append((row.id, ai, state, str(row.messages), used, ago(now - row.updated),
                      row.title or ""))
    # Columns grow to their longest cell (a 64-character name, an "unlimited" window), so
    # every row stays aligned under its header.
    header = ("SESSION", "AI", "STATE", "MSGS", "WINDOW", "LAST ACTIVITY", "TITLE")
    widths = [max([minimum, len(name)] + [len(cell[i]) for cell in cells])
              for i, (name, minimum) in enumerate(zip(header[:6], (24, 16, 8, 5, 9, 16),
                                                      strict=True))]

    def line(cell) -> str:
        sid, ai, state, msgs, used, last, title = cell
        text = (f"{sid:<{widths[0]}} {ai:<{widths[1]}} {state:<{widths[2]}} "
                f"{msgs:>{widths[3]}} {used:>{widths[4]}}  ")
        return text + (f"{last:<{widths[5]}}  {title}".rstrip() if titled else last)

    lines = [line(header)] + [line(cell) for cell in cells]
    ctx.out.data("\n".join(lines))
    return 0
