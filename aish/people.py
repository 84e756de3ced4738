"""People in a session: who is writing (identity), and what each member may do (roles).

A session's header may hold ``members``: ``{user: {"role", "by", "time", "expires"?}}``; each
later grant or revocation is a meta record of its own (``member``, `grant_record`), folded per
person (`aish.header.fold_meta`), so grants made at once never overwrite each other. A
session without it was stored before people had roles (or by a store copied from one): nobody
is restricted there, as before. The creator of a new session is its owner.

Identity is who the store says the writer is, not who a client claims to be: on Redis the
connection's ACL user (the server enforces what that user may write), on files the OS user
whose effective uid writes the files.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping

from aish.errors import PermissionDenied, UsageError
from aish.records import FrozenRecord
from aish.store.authors import SIGNER_PATTERN

OWNER, EDITOR, VIEWER = "owner", "editor", "viewer"
ROLES = (VIEWER, EDITOR, OWNER)  # each may do what the ones before it may
_RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}
UNKNOWN = "unknown"  # the author of a record written before records named one
# What a user name may be: what Redis ACL users and OS accounts commonly are, nothing that a
# terminal or an ACL rule line could misread; the store's own test of the writer it vouches for.
USER_PATTERN = SIGNER_PATTERN


def check_user(name: str) -> str:
    if not isinstance(name, str) or not USER_PATTERN.fullmatch(name):
        raise UsageError(f"not a user name: {name!r}",
                         hint="letters, digits, '_', '.', '@' and '-', up to 64 characters")
    return name


def os_user() -> str:
    """The OS account that writes the files: the effective uid's name (its number if it has
    none, as in a container run with an arbitrary uid)."""
    import pwd

    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def identity(store) -> str:
    """Who writes through ``store``: its own answer when it has one (Redis: ``ACL WHOAMI``),
    else the OS user. Redis's ``default`` user is everyone who connects without a name, so it
    says nothing about who: the OS user is the person then, as with files (and a session
    synced between the two keeps its owner)."""
    whoami = getattr(store, "whoami", None)
    name = whoami() if whoami is not None else None
    return name if name and name != "default" else os_user()


class Grant(FrozenRecord):
    """One person's role in a session, who gave it, and until when."""

    _fields = ("user", "role", "by", "time", "expires")
    user: str
    role: str
    by: str
    time: float
    expires: float | None

    def __init__(self, user: str, role: str, by: str, time: float,
                 expires: float | None = None) -> None:
        self._set(user, role, by, time, expires)

    def active(self, now: float) -> bool:
        return self.expires is None or now < self.expires

    def to_json(self) -> dict:
        out: dict = {"role": self.role, "by": self.by, "time": self.time}
        if self.expires is not None:
            out["expires"] = self.expires
        return out


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def members(meta: Mapping) -> dict[str, Grant] | None:
    """The session's grants by user; None when the session has no members (nobody is
    restricted). A hand-edited entry that does not decode is left out, never raised."""
    raw = meta.get("members")
    if not isinstance(raw, dict):
        return None
    out = {}
    for user, grant in raw.items():
        if not (isinstance(user, str) and USER_PATTERN.fullmatch(user)
                and isinstance(grant, dict) and grant.get("role") in ROLES):
            continue
        by = grant.get("by")
        out[user] = Grant(user, grant["role"], by if isinstance(by, str) else UNKNOWN,
                          _number(grant.get("time")) or 0.0, _number(grant.get("expires")))
    return out


def owner_of(meta: Mapping) -> str:
    """The person who owns the session (``unknown`` when it has no members)."""
    found = members(meta) or {}
    return next((g.user for g in found.values() if g.role == OWNER), UNKNOWN)


def role_of(meta: Mapping, user: str, now: float) -> str | None:
    """What ``user`` may do in the session now: a role, or None (not a member, or the grant
    expired). A session without members treats everyone as its owner."""
    found = members(meta)
    if found is None:
        return OWNER
    grant = found.get(user)
    if grant is None or not grant.active(now):
        return None
    return grant.role


def allows(role: str | None, needed: str) -> bool:
    return role is not None and _RANK[role] >= _RANK[needed]


def require(meta: Mapping, sid: str, user: str, needed: str, now: float, what: str) -> None:
    role = role_of(meta, user, now)
    if allows(role, needed):
        return
    grant = (members(meta) or {}).get(user)
    if role is None and grant is not None and grant.expires is not None:
        raise PermissionDenied(f"{user} may not {what} session {sid}: the {grant.role} grant "
                               "expired", hint=f"ask its owner ({owner_of(meta)}) to renew it")
    if role is None:
        raise PermissionDenied(f"{user} may not {what} session {sid}: not a member",
                               hint=f"ask its owner ({owner_of(meta)}) to share it with you")
    raise PermissionDenied(f"{user} may not {what} session {sid}: needs {needed}, has {role}")


def first_members(user: str, now: float) -> dict:
    """The ``members`` value of a session ``user`` creates."""
    return {user: Grant(user, OWNER, user, now).to_json()}


def grant_record(grant: Grant) -> dict:
    """The meta record that gives one person a role (replacing their earlier grant): a change
    to that person alone, so concurrent grants to others are all kept."""
    return {"t": "meta", "time": grant.time, "member": {"user": grant.user, **grant.to_json()}}


def revoke_record(user: str, by: str, now: float) -> dict:
    """The meta record that takes one person's role back."""
    return {"t": "meta", "time": now, "member": {"user": user, "role": None, "by": by,
                                                 "time": now}}


def author(record_by: str | None, meta: Mapping) -> str:
    """Who wrote a record: its ``by``, or for an older record the session's owner (unknown
    when nothing says)."""
    return record_by or owner_of(meta)


_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_expiry(text: str) -> float:
    """Seconds from now a grant lasts: ``30m``, ``12h``, ``7d``, ``2w``."""
    match = re.fullmatch(r"\s*(\d{1,6})\s*([mhdw])\s*", text or "")
    if not match or int(match.group(1)) == 0:
        raise UsageError(f"--expires: expected a duration like 30m, 12h, 7d or 2w, got {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


# A hook for live presence: who is following the session or holding the floor now. The part of
# aish that tracks it sets this to ``f(sessions, sid) -> list[dict]``; until then --who says
# only what is stored.
PRESENCE = None


def expired(meta: Mapping, now: float) -> list[Grant]:
    """The grants whose time is over."""
    return [g for g in (members(meta) or {}).values() if not g.active(now)]


def report(sessions, sid: str, drop_expired: bool = False, counted=None) -> dict:
    """What `aish --who` and `--session-info` say about a session's people: members with
    their roles and expiry, messages per person, and who wrote last and when.
    ``drop_expired``: also take the server's rules of expired grants away (and say which);
    ``counted``: the session's counts (`aish.tallies.Counted`) already read through
    ``sessions``."""
    dropped = sessions.drop_expired(sid) if drop_expired else []
    counted = counted or sessions.counted(sid)
    meta, now, tally = counted.meta, sessions.now(), counted.tally
    found = members(meta)
    rows = []
    for grant in (found or {}).values():
        row = {"user": grant.user, **grant.to_json(), "active": grant.active(now)}
        rows.append(row)
    rows.sort(key=lambda r: (-_RANK[r["role"]], r["user"]))
    by_person: dict[str, int] = {}
    for by, count in tally.by.items():
        who = author(by or None, meta)
        by_person[who] = by_person.get(who, 0) + count
    last = tally.last_user
    out: dict = {"session": sid, "restricted": found is not None, "members": rows,
                 "messages_by_person": dict(sorted(by_person.items())),
                 "last": ({"by": author(last[0] or None, meta), "ai": last[1], "time": last[2]}
                          if last else None),
                 "you": sessions.user, "your_role": role_of(meta, sessions.user, now)}
    vouched = sessions.authorship(sid)
    if vouched is not None:
        out["authorship"] = vouched
    if dropped:
        out["expired_rules_removed"] = dropped
    if PRESENCE is not None:
        out["here"] = PRESENCE(sessions, sid)
    return out
