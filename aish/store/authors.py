"""Authorship the server can vouch for: a digest of every record a writer wrote, kept in a list
only that writer may write.

A Redis session's log is one list every editor appends to, so a record's ``by`` alone is a
claim. Beside it, each writer's write script pushes the digests of that writer's own records to
``aish:{ID}:by:USER``, and the server's ACL rules let only USER write that key (see
`aish.people_acl`). A record claiming ``by: alice`` whose digest is not in alice's list was not
written by alice: altered, forged, or copied in by someone else (sync, restore), which a reader
can tell.

The digest covers what a person said, not where it is stored: a rewrite (prune, repair) moves
and relinks messages without changing who said what. With encryption on it leaves the text out,
so the digests reveal nothing about it.
"""

from __future__ import annotations

import hashlib
import json
import re

_FIELDS = {
    "msg": ("id", "role", "ai", "time", "by", "content", "note", "source"),
    "ref": ("name", "to", "from", "op", "time", "by"),
}
# An ACL user name that can be part of a key and of an ACL rule as it is.
SIGNER_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}")


def digest(record: dict, with_text: bool = True) -> str | None:
    """The digest of an authored record (None: not one that names its author)."""
    fields = _FIELDS.get(record.get("t", ""))
    if fields is None or not isinstance(record.get("by"), str):
        return None
    kept = {k: record[k] for k in fields if k in record and (with_text or k != "content")}
    kept["t"] = record["t"]
    text = json.dumps(kept, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def signer(acl_user: str | None) -> str | None:
    """Whose list a connection signs into: its ACL user, unless that is ``default`` (everyone
    without a name may write everything there, so a list of its own would vouch for nothing)
    or a name that cannot be part of a key."""
    if not acl_user or acl_user == "default" or not SIGNER_PATTERN.fullmatch(acl_user):
        return None
    return acl_user


def check(records: list[dict], lists: dict[str, set[str]], with_text: bool = True) -> dict:
    """Which authored records of a log their author's list vouches for: counts, and the ids of
    those it does not (records older than authorship are neither)."""
    vouched, doubtful = 0, []
    for record in records:
        value = digest(record, with_text)
        if value is None:
            continue
        if value in lists.get(record["by"], set()):
            vouched += 1
        else:
            doubtful.append(str(record.get("id") or record.get("name") or "?"))
    return {"vouched": vouched, "not_vouched": doubtful}
