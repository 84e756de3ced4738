"""Naming sessions: a new id (``--rename-session``) and a title (``--title-session``)."""

from __future__ import annotations

import json

from aish.commands.context import Context
from aish.commands.registry import JSON, Arg, command


@command("rename-session", "aish",
         "Give a session a new id; the old id keeps leading to it.",
         args=(Arg("ID", "the session", completes="session"),
               Arg("NEW", "its new id (1-64 letters, digits, '.', '_' or '-')"), JSON),
         example="aish --rename-session sess_k3f9x2 rust-notes")
def rename_session(ctx: Context, args) -> int:
    old_location = ctx.sessions.location(args.id)
    branch = ctx.checkouts.get(old_location)
    summary = ctx.sessions.rename(args.id, args.new)
    # This user's checkout follows the session to its new place.
    new_location = ctx.sessions.location(summary.id)
    if branch != ctx.checkouts.get(new_location):
        ctx.checkouts.set(new_location, branch)
    ctx.checkouts.set(old_location, "main")
    if args.json:
        ctx.out.data(json.dumps({"id": summary.id, "from": args.id}, indent=2))
    else:
        ctx.out.note(f"Session {args.id} is now {summary.id} ({args.id} still leads to it)")
    return 0


@command("title-session", "aish", 'Set a session\'s title ("" clears it).',
         args=(Arg("ID", "the session", completes="session"),
               Arg("TITLE", "one line of text (at most 80 characters are kept)")),
         example='aish --title-session sess_k3f9x2 "Rust lifetimes"')
def title_session(ctx: Context, args) -> int:
    summary = ctx.sessions.set_title(args.id, args.title)
    title = summary.header.title
    ctx.out.note(f"Session {args.id}: " + (f"title {title}" if title else "title cleared"))
    return 0
