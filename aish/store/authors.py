"""Authorship the server vouches for: on Redis a record's author is the writer whose log holds
it (`aish.store.writerlogs`), since the server's ACL rules let each writer write only its own.

What a record's ``by`` says is a claim; where it is stored is the fact. A record in a writer's
log that claims someone else was forged (it is shown as the writer's). A record in the owner's
log that names someone else was written before each writer had a log, or copied in (a sync, a
restore, a rewrite): the server cannot vouch for who wrote it. Nor for one a restore copied in
for someone else (``copied_by``), even when it names the owner: who restored it wrote the copy.
"""

from __future__ import annotations

import re

# An ACL user name that can be part of a key and of an ACL rule as it is.
SIGNER_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}")
AUTHORED = ("msg", "ref")


def signer(acl_user: str | None) -> str | None:
    """Whose log a connection writes: its ACL user, unless that is ``default`` (everyone
    without a name may write everything there, so a log of its own would vouch for nothing)
    or a name that cannot be part of a key."""
    if not acl_user or acl_user == "default" or not SIGNER_PATTERN.fullmatch(acl_user):
        return None
    return acl_user


def _name(record: dict) -> str:
    return str(record.get("id") or record.get("name") or "?")


def check(owner: str, logs: dict[str, list[dict]]) -> dict:
    """Which authored records the log they are in vouches for. ``logs``: the records of each
    writer's log, the owner's under ``""``. Counts vouched records, and lists the ids of
    those whose ``by`` the server cannot vouch for (in the owner's log) and of forgeries (in
    a writer's log, claiming another author)."""
    vouched, doubtful, forged = 0, [], []
    for writer, records in logs.items():
        for record in records:
            if record.get("t") not in AUTHORED or not isinstance(record.get("by"), str):
                continue
            restored_copy = not writer and record.get("copied_by")
            if record["by"] == (writer or owner) and not restored_copy:
                vouched += 1
            elif writer:
                forged.append(_name(record))
            else:
                doubtful.append(_name(record))
    return {"vouched": vouched, "not_vouched": doubtful, "forged": forged}
