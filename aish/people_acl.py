"""Roles as Redis ACL rules, so that the server itself refuses what a role does not allow.

Each member gets one ACL *selector* per session, naming only that session's keys: a viewer's
lets it read them (``%R~``), an editor's also write the shared ones and its own log (``~``:
list and hash writes need read-write permission on the key, a write-only pattern beside a read
one does not allow RPUSH) and run the write script, but never write another person's log. A
selector is a separate set of permissions, so granting or taking back one session never
touches what the user may do elsewhere, and ``-@dangerous`` inside it keeps keyless commands
(FLUSHALL) out of an editor's reach. Every user also needs a few reads outside sessions (who
am I, is the store encrypted, renamed ids) and the key scan of listing.

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
    """A viewer reads the session's keys; an editor also writes the ones every writer must
    share (the meta hash, where branch heads move by compare-and-set; the events stream;
    the floor leases) and its own log, never the owner's or another writer's
    (`aish.store.writerlogs`)."""
    base = f"{prefix}:{{{sid}}}:"
    keys = f"%R~{session_pattern(prefix, sid)}"
    if role == EDITOR:
        keys += f" ~{base}meta ~{base}events ~{base}floor:* ~{base}log:{user}"
    return f"({keys} {_COMMANDS[role]})"


def keepalive(prefix: str, sid: str) -> str:
    """An editor's second selector: PERSIST on every log of the session, and nothing else. A
    writer may not renew the TTL of the others' logs, so once their deadline is near its write
    script keeps every key of the session from expiring at all (the owner's next write gives
    them one deadline again); no other command reaches those logs through it."""
    return f"(~{prefix}:{{{sid}}}:log* +persist)"


def selectors(prefix: str, sid: str, role: str, user: str) -> list[str]:
    main = selector(prefix, sid, role, user)
    return [main, keepalive(prefix, sid)] if role == EDITOR else [main]


def grant_lines(prefix: str, sid: str, user: str, role: str | None) -> list[str]:
    """What an admin runs (redis-cli) to give ``user`` ``role`` in ``sid`` (None: take it)."""
    if role is None:
        return [f"ACL GETUSER {user}",
                f"ACL SETUSER {user} clearselectors <each selector ACL GETUSER lists, "
                f"except the one on {session_pattern(prefix, sid)}, in parentheses>"]
    quoted = " ".join(f"'{s}'" for s in selectors(prefix, sid, role, user))
    return [f"ACL SETUSER {user} {' '.join(BASE_RULES)} {quoted}"]


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _pairs(flat) -> dict[str, object]:
    if isinstance(flat, dict):
        return {_text(k): v for k, v in flat.items()}
    return {_text(k): v for k, v in zip(flat[::2], flat[1::2], strict=False)}


def _other_selectors(info: dict, pattern: str) -> list[str]:
    """The user's selectors, as ACL SETUSER takes them, except those on the keys of the
    session ``pattern`` names."""
    kept = []
    for raw in info.get("selectors") or []:
        sel = _pairs(raw)
        keys = _text(sel.get("keys", "")).split()
        if any(k.lstrip("%RW").startswith("~" + pattern[:-1]) for k in keys):
            continue
        parts = keys + _text(sel.get("commands", "")).split()
        parts += _text(sel.get("channels", "")).split()
        kept.append("(" + " ".join(parts) + ")")
    return kept


def held(client, errors, prefix: str, sid: str, user: str) -> bool | None:
    """Whether ``user`` has a selector on session ``sid`` now (None: this connection may not
    ask)."""
    try:
        raw = client.execute_command("ACL", "GETUSER", user)
    except errors.RedisError:
        return None
    if raw is None:
        return False
    info = _pairs(raw)
    every = info.get("selectors") or []
    count = len(every) if isinstance(every, list) else 0
    return len(_other_selectors(info, session_pattern(prefix, sid))) < count


def apply(client, errors, prefix: str, sid: str, user: str, role: str | None) -> Applied:
    """Give ``user`` ``role`` in session ``sid`` on the server (None: take it back), when the
    connection may change ACL rules; otherwise say what an admin must run."""
    lines = grant_lines(prefix, sid, user, role)
    pattern = session_pattern(prefix, sid)
    try:
        raw = client.execute_command("ACL", "GETUSER", user)
        if raw is None:
            given = selectors(prefix, sid, role, user) if role else []
            return Applied(False, [f"ACL SETUSER {user} on >PASSWORD {' '.join(BASE_RULES)}"
                                   + "".join(f" '{s}'" for s in given)],
                           f"the server has no ACL user {user}")
        rules = ["clearselectors", *_other_selectors(_pairs(raw), pattern)]
        if role is not None:
            rules = [*BASE_RULES, *rules, *selectors(prefix, sid, role, user)]
        client.execute_command("ACL", "SETUSER", user, *rules)
    except errors.RedisError as exc:
        return Applied(False, lines, str(exc).splitlines()[0][:200] if str(exc) else "")
    # A server started with an ACL file keeps the rules across restarts only so; without
    # one there is nothing to save.
    with contextlib.suppress(errors.RedisError):
        client.execute_command("ACL", "SAVE")
    return Applied(True)
