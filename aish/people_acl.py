"""Roles as Redis ACL rules, so that the server itself refuses what a role does not allow.

Each member gets one ACL *selector* per session, naming only that session's keys: a viewer's
lets it read them (``%R~``), an editor's read and write them (``~``: list and hash writes need
read-write permission on the key, a write-only pattern beside a read one does not allow RPUSH)
and run the write script, but never write another writer's list of what they wrote. A selector
is a separate set of permissions, so granting or taking back one session never touches what
the user may do elsewhere, and ``-@dangerous`` inside it keeps keyless commands (FLUSHALL) out
of an editor's reach. Every user also needs a few reads outside sessions (who am I, is the
store encrypted, renamed ids) and the key scan of listing.

Redis has no "remove this selector": taking one back rewrites the user's selectors in one
``ACL SETUSER`` (``clearselectors`` and the others again), so nothing else changes meanwhile.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from aish.people import EDITOR, VIEWER

# +cluster|slots +command: a cluster client asks a node where the slots are and how commands
# name their keys before anything else (on a single server: read-only facts, unused).
BASE_RULES = ("+acl|whoami", "+@read", "+@transaction", "+cluster|slots", "+command",
              "%R~aish:crypto", "%R~aish:aliases")
_COMMANDS = {
    VIEWER: "+@read +@transaction",
    EDITOR: "+@read +@write +@transaction +evalsha +eval +script|load -@dangerous",
}


@dataclass
class Applied:
    """What happened to the server's rules: applied, or the lines an admin must run."""

    applied: bool
    lines: list[str] = field(default_factory=list)
    reason: str = ""


def session_pattern(prefix: str, sid: str) -> str:
    return f"{prefix}:{{{sid}}}:*"


def selector(prefix: str, sid: str, role: str, user: str) -> str:
    """A viewer reads the session's keys; an editor also writes every one of them except the
    other writers' lists of what they wrote (``by:NAME``, `aish.store.authors`): those keys
    start with ``b`` then ``y``, so two patterns cover the rest and a third the user's own."""
    every = session_pattern(prefix, sid)
    keys = f"%R~{every}"
    if role == EDITOR:
        base = f"{prefix}:{{{sid}}}:"
        keys += f" ~{base}[^b]* ~{base}b[^y]* ~{base}by:{user}"
    return f"({keys} {_COMMANDS[role]})"


def grant_lines(prefix: str, sid: str, user: str, role: str | None) -> list[str]:
    """What an admin runs (redis-cli) to give ``user`` ``role`` in ``sid`` (None: take it)."""
    if role is None:
        return [f"ACL GETUSER {user}",
                f"ACL SETUSER {user} clearselectors <each selector ACL GETUSER lists, "
                f"except the one on {session_pattern(prefix, sid)}, in parentheses>"]
    return [f"ACL SETUSER {user} {' '.join(BASE_RULES)} '{selector(prefix, sid, role, user)}'"]


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _pairs(flat) -> dict[str, object]:
    if isinstance(flat, dict):
        return {_text(k): v for k, v in flat.items()}
    return {_text(k): v for k, v in zip(flat[::2], flat[1::2], strict=False)}


def _other_selectors(info: dict, pattern: str) -> list[str]:
    """The user's selectors, as ACL SETUSER takes them, except those on ``pattern``."""
    kept = []
    for raw in info.get("selectors") or []:
        sel = _pairs(raw)
        keys = _text(sel.get("keys", "")).split()
        if any(k.lstrip("%RW") == "~" + pattern for k in keys):
            continue
        parts = keys + _text(sel.get("commands", "")).split()
        parts += _text(sel.get("channels", "")).split()
        kept.append("(" + " ".join(parts) + ")")
    return kept


def apply(client, errors, prefix: str, sid: str, user: str, role: str | None) -> Applied:
    """Give ``user`` ``role`` in session ``sid`` on the server (None: take it back), when the
    connection may change ACL rules; otherwise say what an admin must run."""
    lines = grant_lines(prefix, sid, user, role)
    pattern = session_pattern(prefix, sid)
    try:
        raw = client.execute_command("ACL", "GETUSER", user)
        if raw is None:
            return Applied(False, [f"ACL SETUSER {user} on >PASSWORD {' '.join(BASE_RULES)}"
                                   + (f" '{selector(prefix, sid, role, user)}'" if role else "")],
                           f"the server has no ACL user {user}")
        rules = ["clearselectors", *_other_selectors(_pairs(raw), pattern)]
        if role is not None:
            rules = [*BASE_RULES, *rules, selector(prefix, sid, role, user)]
        client.execute_command("ACL", "SETUSER", user, *rules)
    except errors.RedisError as exc:
        return Applied(False, lines, str(exc).splitlines()[0][:200] if str(exc) else "")
    # A server started with an ACL file keeps the rules across restarts only so; without
    # one there is nothing to save.
    with contextlib.suppress(errors.RedisError):
        client.execute_command("ACL", "SAVE")
    return Applied(True)
