"""People commands: share a session with someone in a role, take it back, and see who is in it.

The work is the session core's (`Sessions.share`, `Sessions.unshare`, `aish.people.report`);
these only parse and print.
"""

from __future__ import annotations

import json

from aish.commands.context import Context
from aish.commands.registry import JSON, Arg, command
from aish.errors import UsageError
from aish.humanize import ago, iso

SESSION = Arg("ID", "the session", completes="session")
WITH = Arg("--with", "the person (a Redis ACL user, or an OS user for files)", metavar="USER",
           dest="user")


def _role(text: str) -> str:
    from aish.people import EDITOR, VIEWER

    if text not in (EDITOR, VIEWER):
        raise UsageError(f"--role: expected editor or viewer, got {text!r}")
    return text


def _needs_user(args) -> str:
    if not args.user:
        raise UsageError("--with USER is required", hint="the person to share it with")
    return args.user


def _dropped_line(grant: dict) -> str:
    return (f"{grant['user']}'s {grant['role']} grant expired: its Redis ACL rules were "
            "removed")


def _say_dropped(ctx: Context, dropped: list[dict]) -> None:
    for grant in dropped:
        ctx.out.note(_dropped_line(grant))


def _report_access(ctx: Context, done: str, applied, user: str) -> None:
    """Say what was done and what became of the server's rules; the lines an admin must run
    go to stdout, so they can be piped to redis-cli."""
    ctx.out.note(done)
    if applied is None:
        return
    if applied.applied:
        ctx.out.note(f"Redis ACL rules for {user} updated")
        return
    reason = f" ({applied.reason})" if applied.reason else ""
    ctx.out.note(f"this connection may not change Redis ACL rules{reason}; "
                 "an admin must run:")
    for line in applied.lines:
        ctx.out.data(line)


@command("share-session", "aish",
         "Give a person a role in a session (owner only): editor (talk, branch, merge) or "
         "viewer (read, follow, export).",
         args=(SESSION, WITH,
               Arg("--role", "editor or viewer", type=_role, metavar="ROLE"),
               Arg("--expires", "the grant ends after this long: 30m, 12h, 7d, 2w",
                   metavar="DURATION")),
         example="aish --share-session sess_abc123 --with bob --role editor --expires 7d")
def share_session(ctx: Context, args) -> int:
    from aish.people import parse_expiry

    user = _needs_user(args)
    if not args.role:
        raise UsageError("--role editor|viewer is required")
    expires = parse_expiry(args.expires) if args.expires is not None else None
    _say_dropped(ctx, ctx.sessions.drop_expired(args.id))
    _, applied = ctx.sessions.share(args.id, user, args.role, expires)
    until = f" until {iso(ctx.now() + expires)}" if expires else ""
    _report_access(ctx, f"{user} is now {args.role} of session {args.id}{until}", applied, user)
    return 0


@command("unshare-session", "aish", "Take a person's role in a session back (owner only).",
         args=(SESSION, WITH), example="aish --unshare-session sess_abc123 --with bob")
def unshare_session(ctx: Context, args) -> int:
    user = _needs_user(args)
    _say_dropped(ctx, ctx.sessions.drop_expired(args.id))
    _, applied = ctx.sessions.unshare(args.id, user)
    _report_access(ctx, f"{user} is no longer a member of session {args.id}", applied, user)
    return 0


@command("who", "aish", "The people of a session: roles, expiry, messages, who wrote last.",
         args=(SESSION, JSON), example="aish --who sess_abc123")
def who(ctx: Context, args) -> int:
    from aish.people import report

    info = report(ctx.sessions, args.id, drop_expired=True)
    if args.json:
        ctx.out.data(json.dumps(info, indent=2))
        return 0
    ctx.out.data(format_people(info, ctx.now()))
    return 0


def format_people(info: dict, now: float) -> str:
    lines = [f"Session: {info['session']}"]
    if not info["restricted"]:
        lines.append("Members: anyone who can reach the store (no roles recorded)")
    for row in info["members"]:
        state = ""
        if row.get("expires") is not None:
            state = (f", expires {iso(row['expires'])}" if row["active"]
                     else f", expired {ago(now - row['expires'])}")
        lines.append(f"  {row['user']}: {row['role']}{state}")
    counts = info["messages_by_person"]
    if counts:
        lines.append("Messages: " + ", ".join(f"{who} {n}" for who, n in counts.items()))
    last = info["last"]
    if last:
        lines.append(f"Last written: {last['by']} \u2192 {last['ai']}, "
                     f"{ago(now - last['time'])}")
    vouched = info.get("authorship")
    if vouched is not None:
        lines.append(_authorship(vouched))
    lines += [_dropped_line(grant) for grant in info.get("expired_rules_removed", [])]
    for here in info.get("here", []):
        lines.append(f"Here now: {here}")
    return "\n".join(lines)


def _ids(found: list[str]) -> str:
    return ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")


def _authorship(vouched: dict) -> str:
    """What the server vouches for: each record in its writer's own log is that writer's."""
    line = f"Authorship: {vouched['vouched']} records vouched for by the server"
    doubtful, forged = vouched.get("not_vouched", []), vouched.get("forged", [])
    if forged:
        line += (f"; {len(forged)} claim another author (shown as who wrote them): "
                 f"{_ids(forged)}")
    if doubtful:
        line += (f"; {len(doubtful)} not (from before each writer had a log, or copied in): "
                 f"{_ids(doubtful)}")
    return line
