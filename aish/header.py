"""A session's header as a typed value, decoded from the stored ``meta`` records in one place.

The header is folded from every ``{"t": "meta"}`` record of a log, and logs can be hand-edited,
damaged or written by a newer aish, so nothing in it is trusted. `Header.decode` never raises:
each value that is missing or wrong reads as ``None`` (or its default) and is reported, in the
words ``--validate-session`` prints, so listing, validate, repair, restore and merge all agree on
what a sound header is. Keys it does not know are kept verbatim in ``extra``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from aish.ids import ID_PATTERN

TYPE_CHECKING = False  # importing typing costs every command 2-3 ms: annotations only
if TYPE_CHECKING:
    from typing import Any, TypeGuard

MAX_TIME = 253402300799.0  # 9999-12-31T23:59:59: later timestamps cannot be shown
RECORD_KEYS = ("t", "v", "time")  # record keys that fold into the meta but are not header values


def is_time(value: object) -> TypeGuard[int | float]:
    # The range check alone excludes NaN and infinities; math.isfinite(10**400) would overflow.
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= MAX_TIME


def is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53


def is_name(value: object) -> TypeGuard[str]:
    """A specialist or session name: what `ids.check_id` accepts."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None and ".." not in value


class State(enum.StrEnum):
    """The states a log may record; expiry is derived from the time of last use, never stored."""

    ACTIVE = "active"
    ENDED = "ended"


_KNOWN = frozenset({"id", "owner", "created", "updated", "context_window", "shared", "state",
                    "participants", "origin", "persona", "title", "title_by", "oneshot"})
TITLE_BY = ("user", "auto")  # who set a session's title: a person's is never replaced by auto


def fold_meta(meta: dict, record: Mapping[str, Any]) -> None:
    """Fold one ``meta`` record into ``meta`` (the header so far), in log order.

    A title the model suggested (``title_by: auto``) does not apply over a person's: the
    automatic title is written after a check that a person's may race, so the rule lives
    here, where every reader and both stores fold, not in the writer's check."""
    update = {k: v for k, v in record.items() if k != "t"}
    change = update.pop("member", None)
    if isinstance(change, dict) and isinstance(change.get("user"), str):
        # One person's grant or its revocation (role null), folded per person: two owners
        # sharing at once each add theirs, neither loses the other's.
        found = dict(meta["members"]) if isinstance(meta.get("members"), dict) else {}
        grant = {k: v for k, v in change.items() if k != "user"}
        if grant.get("role") is None:
            found.pop(change["user"], None)
        else:
            found[change["user"]] = grant
        meta["members"] = found
    if (update.get("title_by") == "auto" and meta.get("title_by") == "user"
            and isinstance(meta.get("title"), str) and meta["title"].strip()):
        update.pop("title", None)
        update.pop("title_by", None)
    meta.update(update)


def _shown(value: object, limit: int) -> str:
    return repr(str(value)[:limit])


@dataclass(frozen=True)
class Header:
    """A session's identity and settings. ``None`` means missing or unusable in the log."""

    id: str = ""
    owner: str | None = None
    created: float | None = None
    updated: float | None = None
    context_window: int | None = None
    shared: bool | None = None
    state: State = State.ACTIVE
    participants: tuple[str, ...] = ()
    origin: Mapping[str, Any] | None = None
    persona: str | None = None
    title: str | None = None
    title_by: str | None = None  # one of TITLE_BY
    # A one-off question (`apollo "..."`), logged as an ended session of one exchange; cleared
    # when it is continued.
    oneshot: bool = False
    # Keys a newer aish (or a hand edit) added, verbatim; record keys (`RECORD_KEYS`) are not
    # header values and are left out.
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def decode(cls, meta: object, *, sid: str | None = None,
               owner_required: bool = False) -> tuple[Header, list[str]]:
        """The header ``meta`` holds, and what is wrong with it (one line per bad value).

        ``sid``: the session the header is read for (a header naming another is a problem);
        ``owner_required``: a session with messages must name an owner (one without may not:
        the first specialist to continue it owns it).
        """
        problems: list[str] = []
        if not isinstance(meta, Mapping):
            return cls(), ["the header is not a mapping"]
        raw_id = meta.get("id")
        sid_value = raw_id if isinstance(raw_id, str) else ""
        if sid is not None and raw_id != sid:
            problems.append(f"the header names session {_shown(raw_id, 70)}")
        owner = meta.get("owner")
        if "owner" not in meta:
            if owner_required:
                problems.append("no owner")
        elif not is_name(owner):
            problems.append("owner is not a specialist name")
        times: dict[str, float | None] = {}
        for key in ("created", "updated"):
            value = meta.get(key)
            times[key] = float(value) if is_time(value) else None
            if key in meta and times[key] is None:
                problems.append(f"{key} is not a time")
        window = meta.get("context_window")
        if "context_window" in meta and not is_count(window):
            problems.append("context_window is not a whole number >= 0")
        given = meta.get("participants")
        names = [p for p in given if is_name(p)] if isinstance(given, list) else []
        if given is not None and not (isinstance(given, list) and len(names) == len(given)):
            problems.append("participants is not a list of names")
        shared = meta.get("shared")
        if "shared" in meta and not isinstance(shared, bool):
            problems.append("shared is not true or false")
        origin = meta.get("origin")
        if "origin" in meta and not isinstance(origin, dict):
            problems.append("origin is not a mapping")
        state = meta.get("state", State.ACTIVE.value)
        if state not in (State.ACTIVE.value, State.ENDED.value):
            problems.append(f"unknown state {_shown(state, 20)}")
        persona = meta.get("persona")
        if "persona" in meta and not isinstance(persona, str):
            problems.append("persona is not text")
        title, title_by = meta.get("title"), meta.get("title_by")
        if title is not None and not isinstance(title, str):
            problems.append("title is not text")
        if title_by is not None and title_by not in TITLE_BY:
            problems.append(f"title_by is not one of {', '.join(TITLE_BY)}")
        if isinstance(title, str):  # one line, whatever a hand edit left: it is shown in rows
            title = " ".join(title.split())
        has_title = isinstance(title, str) and title != ""
        oneshot = meta.get("oneshot", False)
        if not isinstance(oneshot, bool):
            problems.append("oneshot is not true or false")
        header = cls(
            id=sid_value,
            owner=owner if is_name(owner) else None,
            created=times["created"],
            updated=times["updated"],
            context_window=window if is_count(window) else None,
            shared=shared if isinstance(shared, bool) else None,
            state=State.ENDED if state == State.ENDED.value else State.ACTIVE,
            participants=tuple(dict.fromkeys(names)),
            origin=dict(origin) if isinstance(origin, dict) else None,
            persona=persona if isinstance(persona, str) else None,
            title=title if has_title else None,
            title_by=title_by if has_title and title_by in TITLE_BY else None,
            oneshot=oneshot is True,
            extra={k: v for k, v in meta.items() if k not in _KNOWN and k not in RECORD_KEYS},
        )
        return header, problems

    def to_meta(self) -> dict:
        """The header as a meta record's values: unusable (None) values are left out, unknown
        keys come back as they were read."""
        meta: dict[str, Any] = {"id": self.id} if self.id else {}
        values = {"owner": self.owner, "created": self.created, "updated": self.updated,
                  "context_window": self.context_window, "shared": self.shared,
                  "state": self.state.value, "participants": list(self.participants),
                  "origin": dict(self.origin) if self.origin is not None else None,
                  "persona": self.persona, "title": self.title, "title_by": self.title_by,
                  "oneshot": self.oneshot or None}
        meta.update({k: v for k, v in values.items() if v is not None})
        for key, value in self.extra.items():
            meta.setdefault(key, value)
        return meta
