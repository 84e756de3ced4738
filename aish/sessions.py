"""The session core: creating, continuing, sharing, ending and talking within sessions.

No terminal and no model code lives here: replies arrive through a provider object that yields
`Chunk`s, and progress is reported through a callback, so both faces share this logic.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from aish.audit import NULL_AUDIT, AuditLog
from aish.config import Config
from aish.errors import (
    AishError,
    Interrupted,
    LimitError,
    ProviderError,
    Refused,
    SessionExists,
    SessionNotFound,
    StorageError,
    UsageError,
)
from aish.header import State, is_name
from aish.ids import check_id, new_id
from aish.messages import (
    ASSISTANT,
    USER,
    ChatMessage,
    Chunk,
    Message,
    Stopwatch,
    new_message_id,
    relinked,
)
from aish.people import first_members
from aish.records import FrozenRecord, Record
from aish.sanitize import valid_unicode
from aish.store.base import Codec, Loaded, Summary, tombstone
from aish.store.listcache import Row
from aish.store.refs import MAIN, Head, RefMoved, pin_main

TYPE_CHECKING = False  # importing typing costs every command 2-3 ms: annotations only
if TYPE_CHECKING:
    from typing import Any

    from aish.compaction import Built
    from aish.floor import Holder, Lease
    from aish.follow import FileFeed, LiveReply, RedisFeed
    from aish.providers.base import Provider
    from aish.specialists import Specialist

ACTIVE, ENDED, EXPIRED = "active", "ended", "expired"


def _context():
    """The context window's arithmetic, loaded by the first exchange (listing never needs it,
    nor the conversation and specialist modules behind it)."""
    import aish.context

    return aish.context


def check_message(config: Config, text: str) -> None:
    if len(text) > config.max_message_chars:
        raise LimitError(f"message too long ({len(text)} characters, limit "
                         f"{config.max_message_chars})",
                         hint="raise sessions.limits.max_message_chars")


def state_of(summary: Summary, now: float, timeout_minutes: float) -> str:
    return _state(summary.header.state is State.ENDED, summary.updated, now, timeout_minutes)


def _state(ended: bool, updated: float, now: float, timeout_minutes: float) -> str:
    if ended:
        return ENDED
    if now - updated > timeout_minutes * 60:
        return EXPIRED
    return ACTIVE


class Sessions:
    """Session operations over one store; ``now`` is injectable so expiry can be tested."""

    def __init__(self, store, config: Config, now: Callable[[], float] = time.time,
                 audit: AuditLog = NULL_AUDIT, clock: Callable[[], float] = time.monotonic):
        from aish.people_store import PeopleStore

        # Every operation passes the person's role check and signs what it writes (`by`).
        self.store = store if isinstance(store, PeopleStore) else PeopleStore(store, now)
        self.config = config
        self.now = now
        self.clock = clock  # times replies as they stream (never goes back)
        self.audit = audit
        if audit.path is not None and audit.by is None:
            audit.by = lambda: self.user
        self._search_index = None  # opened by the first append it indexes
        self._floor = None  # the branches' floor leases, made on first use

    def indexed(self, before: Summary | None, after: Summary, written: list[Message]) -> None:
        """Tell the search index about messages just stored (it never fails the write)."""
        from aish.search_index import record_append

        record_append(self, before, after, written)

    def stamps(self) -> dict[str, str] | None:
        """A cheap token per session that changes whenever it does (None: the store has
        none, so its summaries tell)."""
        stamps = getattr(self.store, "stamps", None)
        return stamps() if stamps is not None else None

    def store_stamp(self) -> tuple[str, float] | None:
        """A token for the whole store and when it last changed, when the store has one."""
        stamp = getattr(self.store, "dir_stamp", None)
        return stamp() if stamp is not None else None

    @property
    def user(self) -> str:
        """The person working through this store (an ACL user on Redis, the OS user on files)."""
        return self.store.user

    # -- queries ---------------------------------------------------------------------------
    def state(self, summary: Summary) -> str:
        return state_of(summary, self.now(), self.config.timeout_minutes)

    def listing(self, include_all: bool = False) -> list[tuple[Summary, str]]:
        rows = [(s, self.state(s)) for s in self.store.summaries()]
        if not include_all:
            rows = [r for r in rows if r[1] == ACTIVE]
        return sorted(rows, key=lambda r: r[0].updated, reverse=True)

    def list_rows(self, include_all: bool = False) -> list[tuple[Row, str]]:
        """What `aish --list-sessions` shows: each session's row and state, newest first (ties
        by id). Lighter than ``listing``: a store that keeps rows (the file store's list
        cache) answers without reading each session's summary."""
        lister = getattr(self.store, "list_rows", None)
        rows = (lister() if lister is not None
                else [Row.of(s) for s in sorted(self.store.summaries(), key=lambda s: s.id)])
        now, timeout = self.now(), self.config.timeout_minutes
        out = [(r, _state(r.ended, r.updated, now, timeout)) for r in rows]
        if not include_all:
            out = [r for r in out if r[1] == ACTIVE]
        out.sort(key=lambda r: r[0].updated, reverse=True)
        return out

    def summary(self, sid: str) -> Summary:
        return self.store.summary(check_id(sid))

    def _check_room(self) -> None:
        active = sum(1 for _, state in self.listing() if state == ACTIVE)
        if active >= self.config.max_sessions:
            raise LimitError(
                f"too many active sessions ({active} of {self.config.max_sessions})",
                hint="end some with 'aish --end-session ID' or remove old ones with "
                "'aish --cleanup-sessions', or raise AISH_MAX_SESSIONS",
            )

    # -- lifecycle -------------------------------------------------------------------------
    def create(self, ai: str, sid: str | None = None, *, named: bool = False,
               context_window: int | None = None, origin: dict | None = None,
               messages: Iterable[Message] = (), extra_meta: dict | None = None,
               lazy: bool = False, counted: bool = True) -> Session:
        """A new session. ``lazy``: its id is reserved in memory and the store sees it only at
        its first save, so a session left without a message leaves nothing behind.
        ``counted=False``: one that is stored ended (a one-off question), so the limit on
        active sessions does not apply."""
        if counted:
            self._check_room()
        now = self.now()
        window = self.config.context_window if context_window is None else context_window
        meta = {"owner": ai, "created": now, "updated": now, "context_window": window,
                "shared": named, "state": ACTIVE, "participants": [ai],
                "members": first_members(self.user, now), **(extra_meta or {})}
        if origin:
            meta["origin"] = origin
        if lazy:
            meta["id"] = check_id(sid) if sid else self._unused_id()
            return Session(self, Summary(meta), ai, stored=False, named=bool(sid))
        summary = self._store_new(meta, relinked(messages), sid)
        return Session(self, summary, ai)

    def _unused_id(self) -> str:
        for _ in range(20):
            sid = new_id()
            if not self.store.exists(sid):
                return sid
        raise LimitError("could not generate a free session id")  # pragma: no cover

    def _store_new(self, meta: dict, messages: list[Message], sid: str | None,
                   refs: dict[str, str] | None = None) -> Summary:
        """Create ``meta`` in the store; without a fixed ``sid`` an id taken meanwhile is
        replaced by a fresh one."""
        for _ in range(20):
            meta["id"] = check_id(sid) if sid else meta.get("id") or new_id()
            try:
                summary = self.store.create(meta, messages, refs)
                break
            except SessionExists:
                if sid:
                    raise
                meta["id"] = None
        else:  # pragma: no cover - 20 clashes in a 2e9 space
            raise LimitError("could not generate a free session id")
        self.audit.record("create", summary.id, meta["owner"])
        if messages:
            self.indexed(None, summary, messages)
        return summary

    def open(self, ai: str, sid: str, *, shared: bool = False, create_missing: bool = False,
             context_window: int | None = None, lazy: bool = False) -> Session:
        """Continue ``sid`` as ``ai``, applying the sharing rules; revive it if ended/expired."""
        check_id(sid)
        try:
            summary = self.store.summary(sid)
        except SessionNotFound:
            if create_missing:
                try:
                    return self.create(ai, sid, named=True, context_window=context_window,
                                       lazy=lazy)
                except SessionExists:
                    # Another process created it between our look and our create: join it,
                    # so concurrent first writers of a named session all succeed.
                    summary = self.store.summary(sid)
            else:
                raise SessionNotFound(
                    f"session {sid} not found",
                    hint="see 'aish --list-sessions --all', or restore it with "
                    "aish --restore-session",
                ) from None
        header = summary.header
        owner = summary.owner
        participants = summary.participants
        update: dict = {}
        if header.owner is None:
            # Nothing says whose it is (a repair could not tell): the first to continue takes it.
            update["owner"] = ai
            participants = [p for p in participants if is_name(p)]
            if ai not in participants:
                update["participants"] = participants + [ai]
        elif ai not in participants:
            if not (header.shared or shared):
                raise Refused(
                    f"session {sid} belongs to {owner}-ai",
                    hint=f"add --shared to join it as {ai}-ai",
                )
            update["participants"] = participants + [ai]
            update["shared"] = True
        elif shared and not header.shared:
            update["shared"] = True
        if self.state(summary) != ACTIVE:
            self._check_room()
            update["state"] = ACTIVE
        if header.oneshot:  # a one-off question continued: a session like any other now
            update["oneshot"] = False
        if context_window is not None and context_window != header.context_window:
            update["context_window"] = context_window
        if update:
            summary = self.store.append(sid, [{"t": "meta", "time": self.now(), **update}])
        self.audit.record("continue", sid, ai)
        return Session(self, summary, ai)

    def rewrite(self, sid: str, meta: dict, messages: list[Message], reason: str,
                ai: str | None = None, since: object = None,
                dropped: Iterable[str] = (), refs: dict[str, str] | None = None,
                **details) -> str:
        """Replace a session's content, keeping a backup first; returns the backup's path.

        Pass ``since=loaded.mark`` of the load the content came from, so that messages other
        processes append meanwhile are kept rather than lost. ``dropped``: ids of the messages
        this removes on purpose; they are remembered (a tombstone) before anything is changed,
        so that --sync-sessions never copies them back, even after a failure half-way.
        ``refs``: the named branches the new content keeps (name -> message id);
        ``details`` go into the audit entry.
        """
        dropped = list(dropped)
        if dropped:
            self.store.add_tombstone(tombstone(check_id(sid), reason, self.now(),
                                               messages=dropped))
        backup = self.store.backup(check_id(sid), reason)
        self.store.replace(sid, {**meta, "updated": self.now()}, messages, since=since,
                           refs=refs)
        self.audit.record(reason, sid, ai, backup=backup, **details)
        return backup

    def end(self, sid: str, ai: str | None = None) -> Summary:
        summary = self.summary(sid)
        if ai and ai not in summary.participants and not summary.header.shared:
            raise Refused(f"session {sid} belongs to {summary.owner}-ai",
                          hint=f"end it as {summary.owner} or with 'aish --end-session {sid}'")
        summary = self.store.append(sid, [{"t": "meta", "state": ENDED, "time": self.now()}])
        self.audit.record("end", sid, ai)
        return summary

    def rename(self, old: str, new: str, ai: str | None = None) -> Summary:
        """Give session ``old`` the id ``new``; ``old`` stays an alias of it (see `resolve`)."""
        check_id(old)
        check_id(new, "new session id")
        if old == new:
            raise UsageError(f"session {old} already has the id {new}")
        if not self.store.exists(old):
            raise SessionNotFound(f"session {old} not found",
                                  hint="see 'aish --list-sessions --all'")
        if self.store.exists(new):
            raise SessionExists(f"session {new} already exists",
                                hint="choose an id no session uses")
        summary = self.store.rename(old, new)
        self.audit.record("rename", new, ai, **{"from": old})
        self._move_access(old, new, summary)
        return summary

    def _move_access(self, old: str, new: str, summary: Summary) -> None:
        """Grant the members their roles under the session's new id (the server's ACL rules
        name session ids); done as far as this connection may, as a share would."""
        from aish.people import OWNER, members

        for grant in (members(summary.meta) or {}).values():
            if grant.role != OWNER:
                self._grant_access(new, grant.user, grant.role)
                self._grant_access(old, grant.user, None)

    def set_title(self, sid: str, title: str, ai: str | None = None) -> Summary:
        """A person's title for ``sid`` ("" clears it); returns the summary with it."""
        from aish.titles import clean_title, title_record

        check_id(sid)
        if not self.store.exists(sid):
            raise SessionNotFound(f"session {sid} not found",
                                  hint="see 'aish --list-sessions --all'")
        cleaned = clean_title(title)
        if title.strip() and not cleaned:
            raise UsageError("the title has no printable text")
        summary = self.store.append(sid, [title_record(cleaned, "user")])
        self.audit.record("title", sid, ai, title=cleaned)
        return summary

    # -- people: members and their roles (aish.people) ------------------------------------
    def share(self, sid: str, user: str, role: str, expires_in: float | None = None):
        """Give ``user`` ``role`` (editor or viewer) in ``sid``; the owner's to do. A session
        stored before roles existed is claimed by the first owner who shares it. Returns the
        summary and what became of the server's ACL rules (None: the store has none)."""
        from aish.people import OWNER, Grant, check_user, grant_record, members, require

        check_id(sid)
        check_user(user)
        now, me = self.now(), self.user
        summary = self.summary(sid)
        require(summary.meta, sid, me, OWNER, now, "share")
        if user == me:
            raise UsageError(f"{user} owns session {sid}: an owner's role is not shared")
        changes = []
        if members(summary.meta) is None:
            changes.append(grant_record(Grant(me, OWNER, me, now)))
        grant = Grant(user, role, me, now, now + expires_in if expires_in else None)
        summary = self.store.append(sid, [*changes, grant_record(grant)])
        self.audit.record("share", sid, None, member=user, role=role,
                          **({"expires": grant.expires} if grant.expires else {}))
        return summary, self._grant_access(sid, user, role)

    def unshare(self, sid: str, user: str):
        """Take ``user``'s role in ``sid`` back; the owner's to do."""
        from aish.people import OWNER, check_user, members, require, revoke_record

        check_id(sid)
        check_user(user)
        summary = self.summary(sid)
        require(summary.meta, sid, self.user, OWNER, self.now(), "unshare")
        grant = (members(summary.meta) or {}).get(user)
        if grant is None:
            raise UsageError(f"{user} is not a member of session {sid}")
        if grant.role == OWNER:
            raise UsageError(f"{user} owns session {sid}: the owner cannot be removed")
        summary = self.store.append(sid, [revoke_record(user, self.user, self.now())])
        self.audit.record("unshare", sid, None, member=user)
        return summary, self._grant_access(sid, user, None)

    def drop_expired(self, sid: str) -> list[dict]:
        """Take away the server's ACL rules of grants whose time is over, when this connection
        may (the client refuses an expired grant already; this makes the server refuse it
        too). Returns the grants whose rules went."""
        from aish.people import expired

        held = getattr(self.store, "access_held", None)
        if held is None:
            return []
        out = []
        for grant in expired(self.summary(sid).meta, self.now()):
            if not held(sid, grant.user):
                continue
            applied = self._grant_access(sid, grant.user, None)
            if applied is not None and applied.applied:
                out.append({"user": grant.user, "role": grant.role, "expires": grant.expires})
                self.audit.record("unshare", sid, None, member=grant.user, expired=True)
        return out

    def may(self, summary: Summary, role: str) -> bool:
        """Whether this person has ``role`` (or more) in the session now: for commands over
        many sessions, which leave out the ones they may not touch."""
        from aish.people import allows, role_of

        return allows(role_of(summary.meta, self.user, self.now()), role)

    def authorship(self, sid: str) -> dict | None:
        """Which records' authors the store can vouch for (None: it keeps no such lists)."""
        check = getattr(self.store, "authorship", None)
        if check is None:
            return None
        self.summary(sid)  # a member's to read
        return check(check_id(sid))

    def _grant_access(self, sid: str, user: str, role: str | None):
        grant = getattr(self.store, "grant_access", None)
        return grant(sid, user, role) if grant is not None else None

    def resolve(self, sid: str) -> str | None:
        """The session a former id names now, when ``sid`` itself names none (None: it names
        a session itself, or nothing at all)."""
        if not isinstance(sid, str) or not is_name(sid) or self.store.exists(sid):
            return None
        return self.store.alias(sid)

    def former_ids(self, sid: str) -> list[str]:
        """The ids session ``sid`` had before it was renamed (to it, or through others)."""
        from aish.store.base import follow_alias

        aliases = self.store.aliases()
        return sorted(old for old in aliases
                      if follow_alias(aliases, old, self.store.exists) == sid)

    def audit_entries(self, sid: str) -> list[dict]:
        """What the audit log says about ``sid``, under its current and its former ids."""
        return self.audit.entries({sid, *self.former_ids(sid)})

    # -- the one door to storage for commands, management and faces ------------------------
    # Nothing outside the session core reaches the store or the audit log: each write below
    # records its own audit entry, so no operation escapes the log, the limit on active
    # sessions or the uniqueness of ids.
    @property
    def codec(self) -> Codec | None:
        """How the store seals messages (None: it does not), for files written beside it."""
        return getattr(self.store, "codec", None)

    def exists(self, sid: str) -> bool:
        return self.store.exists(check_id(sid))

    def ids(self) -> list[str]:
        return self.store.ids()

    def load(self, sid: str) -> Loaded:
        return self.store.load(check_id(sid))

    def skeleton(self, sid: str) -> Loaded | None:
        """Every message with only its first line (for drawing the tree), branch heads as
        stored; None when the store has no cheap way to it: `load` it."""
        return self.store.skeleton(check_id(sid))

    def counted(self, sid: str):
        """What reports on a session count (`aish.tallies.Counted`): kept up to date by the
        store where it can, so a report's cost does not grow with the session; else counted
        from the log read whole."""
        found = self.store.tallies(check_id(sid))
        if found is not None:
            return found
        from aish.tallies import Counted, of_messages

        loaded = self.load(sid)
        return Counted(loaded.meta, loaded.tree, of_messages(loaded.messages), loaded.messages)

    def tail(self, sid: str, pairs: int) -> list[Message]:
        return self.store.tail(check_id(sid), pairs)

    def path(self, sid: str, head: Head | None, pairs: int) -> list[Message]:
        """The path from the root to ``head`` (None: main's), its last ``pairs`` pairs (0: all)."""
        return self.store.path(check_id(sid), head, pairs)

    def location(self, sid: str) -> str:
        return self.store.location(check_id(sid))

    def message(self, sid: str, head: Head) -> Message | None:
        """The one message ``head`` names (its position a hint), or None: not in the log."""
        return self.store.message(check_id(sid), head)

    def fix_modes(self, sid: str) -> list[str]:
        """Make a session's stored files private again; returns the paths changed."""
        return self.store.fix_modes(check_id(sid))

    # -- live following and the floor of each branch ---------------------------------------
    def follow_feed(self, sid: str) -> RedisFeed | FileFeed:
        """What a follower of ``sid`` reads: its stored messages and streamed replies."""
        from aish.follow import feed_for

        return feed_for(self.store, check_id(sid))

    def live_reply(self, sid: str, reply: str, ai: str, branch: str,
                   lease: str = "") -> LiveReply:
        """Where a reply of ``sid`` is published for followers while it streams; ``lease``: the
        token of the floor lease held meanwhile, by which a follower tells that this writer
        is gone when the lease is."""
        from aish.follow import LiveReply, sink_for

        return LiveReply(sink_for(self.store, check_id(sid), lease), reply, ai, branch,
                         self.clock)

    @property
    def floor(self):
        if self._floor is None:
            from aish.floor import floor_for

            self._floor = floor_for(self.store)
        return self._floor

    def floor_holders(self, sid: str) -> list[Holder]:
        """Who is being answered on which branch of ``sid`` right now."""
        return self.floor.holders(check_id(sid))

    def skip(self, sid: str, reason: str) -> None:
        """Tell the user, once, that an unreadable session is left out."""
        self.store.skip(check_id(sid), reason)

    def backups(self, sid: str) -> list[str]:
        return self.store.backups(check_id(sid))

    def read_backup(self, location: str) -> bytes | None:
        return self.store.read_backup(location)

    def get_doc(self, kind: str, name: str) -> dict | None:
        return self.store.get_doc(kind, name)

    def list_docs(self, kind: str) -> list[str]:
        return self.store.list_docs(kind)

    def put_doc(self, kind: str, name: str, doc: dict, /, *, action: str, sid: str,
                ai: str | None, **details) -> str:
        """Keep a document made from session ``sid`` (a template, a checkpoint); audited as
        ``action``. Returns where it was stored."""
        location = self.store.put_doc(kind, name, doc)
        self.audit.record(action, sid, ai, **details)
        return location

    def record_read(self, action: str, sid: str, ai: str | None, **details) -> None:
        """Audit a read that hands content out (save, export). Reading changes nothing, so the
        reader records it once it knows what it read (its owner, what was skipped)."""
        self.audit.record(action, sid, ai, **details)

    def derive(self, ai: str, sid: str | None, *, action: str, details: dict,
               **create) -> Session:
        """A new session made from others (a fork, a merge): created as `create` makes any
        session, then audited as ``action`` with ``details`` saying where it came from."""
        session = self.create(ai, sid, **create)
        self.audit.record(action, session.id, ai, **details)
        return session

    def remove(self, sid: str, reason: str, ai: str | None = None) -> str:
        """Delete a session after keeping a backup of it; returns the backup's location."""
        # Remembered first, so that --sync-sessions removes the other side's copy instead of
        # copying it back, even if the removal itself then fails half-way.
        self.store.add_tombstone(tombstone(check_id(sid), reason, self.now(), removed=True))
        backup = self.store.remove(sid, reason)
        self.audit.record(reason, sid, ai, backup=backup)
        return backup

    def restore_new(self, meta: dict, messages: list[Message],
                    refs: dict[str, str] | None = None, sign: bool = False,
                    **details) -> Summary:
        """Store a restored session exactly as checked, under ``meta["id"]``, with its named
        branches ``refs``; raises SessionExists when the id is taken. The caller has counted
        the room it needs. Messages keep the authors they name, and none when they name none
        unless ``sign`` (this person's own unsaved words)."""
        summary = self.store.create(meta, messages, refs, sign=sign)
        self._clear_deletions(summary.id)
        self.audit.record("restore", summary.id, meta.get("owner"), **details)
        return summary

    def restore_over(self, sid: str, meta: dict, messages: list[Message], since: object,
                     refs: dict[str, str] | None = None, **details) -> str:
        """Replace session ``sid`` with a restored one (a backup is kept); returns the backup."""
        backup = self.rewrite(sid, meta, messages, "restore", meta.get("owner"), since=since,
                              refs=refs, **details)
        self._clear_deletions(sid)
        return backup

    def restore_missing(self, sid: str, messages: list[Message], ai: str | None,
                        **details) -> int:
        """Add back to ``sid`` the messages it does not hold (ids are stable), in order; returns
        how many. Deletions recorded earlier still apply to the rest of it."""
        have = {m.id for m in self.load(sid).messages}
        missing = [m for m in messages if m.id not in have]
        if missing:
            self._append_elsewhere_if_moved(sid, missing, have)
        self.audit.record("restore", sid, ai, **details)
        return len(missing)

    def import_new(self, meta: dict, messages: list[Message],
                   refs: dict[str, str] | None = None, **details) -> Summary:
        """Store a conversation brought from another tool, checked as a restore is, as a new
        session under a fresh id, with its branches ``refs``; audited as ``import``. The
        caller has counted the room it needs."""
        summary = self._store_new({k: v for k, v in meta.items() if k != "id"}, messages,
                                  None, refs)
        self.audit.record("import", summary.id, meta.get("owner"), **details)
        return summary

    def _append_elsewhere_if_moved(self, sid: str, missing: list[Message], have: set[str]
                                   ) -> None:
        """Add messages a session lacks (a recovery file's) on the branch they were written
        for when it is still where they left it, else on a new branch ``restored-N`` beside
        it, so that nothing written since is moved."""
        try:
            self.store.append(sid, [m.to_record() for m in missing])
            return
        except RefMoved:
            pass
        known = have | {m.id for m in missing}
        fixed = [replace(m, ref=None, parent=m.parent if m.parent in known else "")
                 for m in missing]
        taken = set(self.store.summary(sid).tree.refs)
        number = 1
        while f"restored-{number}" in taken:
            number += 1
        self.store.append(sid, pin_main(self.store.summary(sid).tree) + [
            m.to_record() for m in fixed] + [
            {"t": "ref", "name": f"restored-{number}", "to": fixed[-1].id, "op": "branch",
             "time": self.now()}])

    # -- sync between devices: records as stored (sealed when encrypted), never opened ----
    def stored_records(self, sid: str) -> list[dict]:
        """The log's records as the store holds them; a torn or unreadable line is left out."""
        from aish.store.base import parse_line

        out = []
        for line in self.store.raw_lines(check_id(sid))[:-1]:  # the last: "" or a torn tail
            try:
                out.append(parse_line(line))
            except ValueError:
                continue
        return out

    def take_records(self, sid: str, records: list[dict], **details) -> Summary:
        """Append records another device wrote (RefMoved when a branch moved meanwhile)."""
        summary = self.store.append(check_id(sid), records)
        self.audit.record("sync", sid, None, **details)
        return summary

    def take_session(self, meta: dict, **details) -> Summary:
        """Create a session another device made, from its header, with no message yet."""
        summary = self.store.create(meta)
        self.audit.record("sync", summary.id, None, **details)
        return summary

    def drop(self, sid: str, reason: str) -> str:
        """Remove a session another device removed (a backup is kept; its tombstone is the
        other device's, already recorded); returns the backup's location."""
        backup = self.store.remove(check_id(sid), reason)
        self.audit.record(reason, sid, None, backup=backup)
        return backup

    def tombstones(self) -> dict[str, dict]:
        return self.store.tombstones()

    def add_tombstone(self, record: dict) -> None:
        self.store.add_tombstone(record)

    def aliases(self) -> dict[str, str]:
        return self.store.aliases()

    def _clear_deletions(self, sid: str) -> None:
        # Deletions recorded before now no longer apply to a restored session, here or (through
        # --sync-sessions) on any other store: it was restored on purpose.
        self.store.add_tombstone(tombstone(sid, "restore", self.now(), cleared=True))


def _ignore(_holder: Holder) -> None:
    pass


class FloorWait(FrozenRecord):
    """How an exchange waits for its branch's floor while another reply streams there:
    ``seconds`` (None: as long as it takes), then on a new branch; ``on_wait`` hears of each
    holder waited for."""

    _fields = ("seconds", "on_wait")
    seconds: float | None
    on_wait: Callable[[Holder], None]

    def __init__(self, seconds: float | None = None,
                 on_wait: Callable[[Holder], None] = _ignore) -> None:
        self._set(seconds, on_wait)


class Reply(Record):
    """A reply as it ended: its text, the stored message, and whether it was cut short."""

    _fields = ("text", "message", "interrupted")

    def __init__(self, text: str, message: Message, interrupted: bool = False) -> None:
        self.text = text
        self.message = message
        self.interrupted = interrupted


class Session(Record):
    """A session opened by one specialist, with messages not yet written kept in ``pending``."""

    _fields = ("sessions", "summary", "ai", "pending", "auto_save", "context_length",
               "token_limit", "_fitted_for", "stored", "named", "branch", "notices")

    def __init__(self, sessions: Sessions, summary: Summary, ai: str,
                 pending: list[Message] | None = None, auto_save: int | None = None,
                 context_length: int | None = None, token_limit: int | None = None,
                 _fitted_for: Specialist | None = None, stored: bool = True,
                 named: bool = False, branch: str = MAIN,
                 notices: list[str] | None = None) -> None:
        self.sessions = sessions
        self.summary = summary
        self.ai = ai
        self.pending = [] if pending is None else pending
        self.auto_save = auto_save  # None = config default; N = write every N messages; 0 = off
        # What the provider's model can take, once known (fit_to): its whole context in tokens
        # and the part of it a prompt may use (the rest is the reply's). None = no limit known.
        self.context_length = context_length
        self.token_limit = token_limit
        self._fitted_for = _fitted_for
        self.stored = stored  # False: created lazily, not in the store until its first save
        self.named = named  # its id was chosen by the user, so it is kept when stored
        self.branch = branch  # where this session's messages go and its context comes from
        # What the faces should tell the user about this session's writes (a lost race, ...).
        self.notices = [] if notices is None else notices

    @property
    def head(self) -> Head:
        """The newest message of this session's branch, unsaved ones included."""
        if self.pending:
            return Head(self.pending[-1].id)
        return self.stored_head

    @property
    def stored_head(self) -> Head:
        if not self.stored:
            return Head("")
        return self.summary.head(self.branch) or Head("")

    @property
    def id(self) -> str:
        return self.summary.id

    @property
    def meta(self) -> dict:
        return self.summary.meta

    @property
    def context_window(self) -> int:
        return self.summary.context_window(self.sessions.config.context_window)

    @property
    def shared(self) -> bool:
        return bool(self.meta.get("shared"))

    @property
    def location(self) -> str:
        return self.sessions.store.location(self.id)

    @property
    def save_every(self) -> int:
        """Write every N messages; 0 = only on `save` (this session's setting, else config's)."""
        return self.sessions.config.auto_save if self.auto_save is None else self.auto_save

    def set_meta(self, **update) -> None:
        if not self.stored:
            self.summary.meta.update(update)
            return
        self.summary = self.sessions.store.append(
            self.id, [{"t": "meta", "time": self.sessions.now(), **update}]
        )

    def set_auto_title(self, title: str) -> bool:
        """Store a title the model suggested, unless someone set one meanwhile."""
        from aish.titles import title_record

        if self.stored:
            self.summary = self.sessions.store.summary(self.id)  # a person's may be newer
        if self.summary.header.title is not None:
            return False
        record = title_record(title, "auto")
        self.set_meta(**{k: v for k, v in record.items() if k != "t"})
        # A person's title stored between the check and the write wins: folding never lets
        # an automatic title replace it.
        return self.summary.header.title_by == "auto"

    def extend_context(self, pairs: int) -> None:
        if pairs < 0:
            raise UsageError("--extend-context needs a whole number >= 0")
        if self.context_window and pairs:
            self.set_meta(context_window=self.context_window + pairs)

    def add(self, message: Message) -> Message:
        """Queue ``message`` as the next one on this session's branch."""
        message = replace(message, parent=self.head.id, ref=self.branch)
        self.pending.append(message)
        every = self.save_every
        if every and len(self.pending) >= every:
            self.save()
        return message

    def save(self) -> int:
        """Write pending messages; returns how many were written."""
        if not self.pending:
            return 0
        written = list(self.pending)
        before = self.summary if self.stored else None
        if self.stored:
            self._append(written)  # relabels ``written`` in place when it moves them
        else:
            self._create_with(written)
        del self.pending[: len(written)]
        # Only once the messages are no longer pending: nothing here can make them be written
        # twice. A race lost on the way leaves them to the next search's catch-up; a session
        # created just now was indexed as it was created.
        if before is not None:
            self.sessions.indexed(before, self.summary, written)
        return len(written)

    def _append(self, written: list[Message]) -> None:
        """Append ``written`` to this session's branch, moving it by compare-and-set.

        When another writer moved the branch first: messages nobody has answered yet simply
        follow what it wrote; an exchange (a reply among them) is kept whole on a new branch
        beside it, and the user is told — a turn is never lost or silently re-parented.
        """
        store = self.sessions.store
        for _ in range(50):
            head = self.stored_head
            records = [m.to_record() for m in written]
            if written[0].parent == head.id and head.pos is not None:
                records[0]["pp"] = head.pos  # where the walk to the root goes next
            try:
                self.summary = store.append(self.id, records)
                return
            except RefMoved:
                self.summary = store.summary(self.id)
            if all(m.role == USER for m in written):
                written[0] = replace(written[0], parent=self.stored_head.id)
                self.pending[: len(written)] = written
                continue
            try:
                written[:] = self._aside(written, head)
                return
            except RefMoved:  # the new branch's name was taken meanwhile: pick another
                self.summary = store.summary(self.id)
        raise StorageError(f"session {self.id} is too busy to write to; try again")

    def _aside(self, written: list[Message], start: Head) -> list[Message]:
        """Put ``written`` on a new branch starting at ``start`` (where this session's branch
        was), created in the same write as the messages; returns them relabelled."""
        store = self.sessions.store
        name = self._spare_branch()
        parent = written[0].parent or ""
        relabelled = [replace(m, ref=name) for m in written]
        records = [{"t": "ref", "name": name, "to": parent, "op": "branch",
                    "time": self.sessions.now(),
                    **({"at": start.pos} if start.id == parent and start.pos is not None
                       else {})}]
        records += [m.to_record() for m in relabelled]
        records = pin_main(self.summary.tree) + records
        self.summary = store.append(self.id, records)  # RefMoved: the name was just taken
        self.notices.append(f"another exchange reached branch {self.branch} of session "
                            f"{self.id} first; this one is kept on branch {name}")
        self.branch = name
        return relabelled

    def _spare_branch(self) -> str:
        """A new branch name beside this session's branch: ``NAME-2``, ``NAME-3``, ..."""
        taken = set(self.summary.tree.refs)
        base = self.branch[:56]  # room for "-N": the name must stay a valid branch name
        number = 2
        while f"{base}-{number}" in taken:
            number += 1
        return f"{base}-{number}"

    def _take_floor(self, ai: str, wait: FloorWait) -> Lease | None:
        """The floor of this session's branch, waited for as ``wait`` says; when the wait
        runs out, the exchange moves to a new branch at the same head (and says so)."""
        sessions = self.sessions
        ttl = sessions.config.floor_ttl_seconds
        if not self.stored or ttl <= 0:
            return None  # nobody else knows of it yet, or turn-taking is off
        from aish.floor import Holder, acquire, tell_holder

        try:
            got = acquire(sessions.floor, self.id, ai, self.branch, ttl, wait.seconds,
                          wait.on_wait, self._fresh_head)
        except KeyboardInterrupt:
            raise Interrupted("not sent: stopped waiting for the reply on branch "
                              f"{self.branch}; your message was not stored",
                              hint="send it again once that reply is done") from None
        except (AishError, OSError):
            # No floor to be had (the session removed meanwhile, the store unreachable, a full
            # disk): the exchange goes on without one, so the message is still kept, or
            # rescued, and a failure to store it is reported as that.
            return None
        for _ in range(50):
            if not isinstance(got, Holder):
                return got
            busy, holder = self.branch, got
            self._step_aside(holder.head)
            self.notices.append(f"branch {busy} of session {self.id} is busy "
                                f"({holder.asking}); this exchange goes on branch "
                                f"{self.branch}")
            tell_holder(sessions.floor, self.id, holder, self.branch)
            got = acquire(sessions.floor, self.id, ai, self.branch, ttl, 0, wait.on_wait,
                          self._fresh_head)
        raise StorageError(f"session {self.id} is too busy to write to; try again")

    def _fresh_head(self) -> str:
        """This session's branch's head as stored now (others may have moved it)."""
        self.summary = self.sessions.store.summary(self.id)
        return self.stored_head.id

    def _step_aside(self, at: str | None) -> None:
        """Make a new branch at message ``at`` of this session's branch (None: its head now),
        and talk on it."""
        store = self.sessions.store
        for _ in range(50):
            self.summary = store.summary(self.id)
            start = self.stored_head
            if at is not None and at != start.id:
                start = Head(at)  # where the holder's exchange began: its position unknown
            name = self._spare_branch()
            record = {"t": "ref", "name": name, "to": start.id, "op": "branch",
                      "time": self.sessions.now()}
            if start.pos is not None:
                record["at"] = start.pos
            try:
                self.summary = store.append(self.id, pin_main(self.summary.tree) + [record])
            except RefMoved:  # the name was just taken: pick another
                continue
            self.branch = name
            return
        raise StorageError(f"session {self.id} is too busy to write to; try again")

    def _create_with(self, messages: list[Message]) -> None:
        """The first save of a lazy session creates it, with its first messages, at once."""
        sessions = self.sessions
        meta = {**self.meta, "updated": sessions.now()}
        try:
            # Made on another branch: main stays empty, at the root.
            refs = {MAIN: "", self.branch: messages[-1].id} if self.branch != MAIN else None
            self.summary = sessions._store_new(meta, messages, self.id if self.named else None,
                                               refs)
        except SessionExists:  # the name was taken meanwhile: continue that session instead
            self.summary = sessions.open(self.ai, self.id).summary
            self.stored = True
            self._append(messages)
        self.stored = True

    @property
    def unsaved(self) -> int:
        return len(self.pending)

    def recent(self, pairs: int) -> list[Message]:
        """The last ``pairs`` pairs (0 = all) including unsaved messages."""
        if not self.stored:
            return list(self.pending)
        stored = self.sessions.store.path(self.id, self.stored_head, pairs + 1 if pairs else 0)
        return stored + self.pending

    def last_unanswered(self) -> Message | None:
        history = self.recent(1)
        if history and history[-1].role == USER:
            return history[-1]
        return None

    def fit_to(self, provider: Provider, specialist: Specialist | None = None) -> None:
        """Size the window to ``provider``'s model from now on, for sending and reporting
        (``specialist``'s persona counts too)."""
        self.context_length = getattr(provider, "context_length", None)
        self.token_limit = getattr(provider, "context_limit", None)
        self._fitted_for = specialist or self._fitted_for

    def window_use(self, specialist: Specialist | None = None) -> tuple[int, int]:
        """(pairs the next message would carry, window size; 0 = unlimited). Counted in pairs
        alone until a provider's limit is known (fit_to); then what really fits."""
        size = self.context_window
        specialist = specialist or self._fitted_for
        if self.token_limit is None or specialist is None:
            return _context().window_pairs(self.recent(size), size), size
        return len(_context().pairs_of(self.upcoming_window(specialist))), size

    def upcoming_window(self, specialist: Specialist) -> list[Message]:
        """The earlier messages the next message would be sent with, as the owner sees it."""
        specialist = self.as_owner_sees_it(specialist)
        upcoming = Message(USER, "", specialist.name, self.sessions.now())
        return self.window(specialist, upcoming=upcoming)[:-1]

    def chat_for(self, specialist: Specialist, token_limit: int | None = None,
                 system: str | None = None) -> list[ChatMessage]:
        """The chat to send: persona + window, within max_context_size and ``token_limit``
        (what the provider's model can take, when it says); ``system``: an instruction for
        this exchange only, sent after the persona and never stored."""
        specialist = self.as_owner_sees_it(specialist)
        return self._chat(specialist, self.context(specialist, token_limit), system)

    def _chat(self, specialist: Specialist, built: Built, system: str | None) -> list[ChatMessage]:
        from aish.compaction import as_chat
        from aish.conversation import build_chat

        chat = build_chat(specialist, built.window, self.shared)
        if built.summary is not None:  # what left the window, before what is in it
            chat.insert(1, as_chat(built.summary))
        if system:
            chat.insert(1, ChatMessage("system", system))
        return chat

    def as_owner_sees_it(self, specialist: Specialist) -> Specialist:
        """The specialist with the persona a template gave this session, if it is the owner."""
        persona = self.meta.get("persona")
        if persona and specialist.name == self.meta.get("owner"):
            return replace(specialist, persona=str(persona))
        return specialist

    def window(self, specialist: Specialist, token_limit: int | None = None,
               upcoming: Message | None = None) -> list[Message]:
        """The messages that are sent (the last pairs that fit), ending with the newest
        message, or with ``upcoming`` when asking what the next message would carry."""
        return self.context(specialist, token_limit, upcoming).window

    def context(self, specialist: Specialist, token_limit: int | None = None,
                upcoming: Message | None = None) -> Built:
        """What is sent: the newest summary of what left the window (if the branch was
        compacted), the window, and whether older messages are left out unsummarised."""
        from aish.compaction import build

        history = self.recent(self.context_window)
        if upcoming is not None:
            history = history + [upcoming]
        cap = self.sessions.config.max_context_size
        token_limit = token_limit or self.token_limit
        if token_limit:
            cap = min(cap, token_limit)
        return build(self, history, self.context_window, cap,
                     _context().estimate_tokens(specialist.persona))

    @property
    def overflow(self) -> str:
        """What happens to pairs that leave the window: ``drop`` or ``summarize`` (this
        session's setting, else the config's)."""
        from aish.compaction import OVERFLOWS

        own = self.meta.get("overflow")
        return own if own in OVERFLOWS else self.sessions.config.overflow

    def exchange(self, specialist: Specialist, text: str | None, provider: Provider,
                 on_text: Callable[[str], None] = lambda _t: None,
                 system: str | None = None, floor: FloorWait | None = None) -> Reply:
        """Send ``text`` (or retry the last unanswered message when None) and store the reply.

        The user message is stored before the provider is called, so a failure never loses it;
        it simply stays unanswered. Ctrl-C keeps what arrived, marked interrupted. The branch's
        floor is held from before the message is stored until the reply is (``floor``: how
        to wait for it while another reply streams there); the reply is published for
        followers while it streams.
        """
        lease = self._take_floor(specialist.name, floor or FloorWait())
        try:
            return self._exchange(specialist, text, provider, on_text, system,
                                  lease.holder.token if lease is not None else "")
        finally:
            if lease is not None:
                self.notices += lease.release()

    def _exchange(self, specialist: Specialist, text: str | None, provider: Provider,
                  on_text: Callable[[str], None], system: str | None,
                  lease: str = "") -> Reply:
        if text is None:
            if self.last_unanswered() is None:
                raise UsageError(f"session {self.id} has no unanswered message to retry")
        else:
            self.add_user(specialist, text)
        self.fit_to(provider, specialist)
        seen_as = self.as_owner_sees_it(specialist)
        if self.overflow == "summarize":  # after the message is stored: it is never held up
            from aish.compaction import before_exchange

            before_exchange(self, seen_as, provider, self.notices.append)
        built = self.context(seen_as)
        chat = self._chat(seen_as, built, system)
        # The reply names the summary its context began with: the next context finds it there.
        noted: dict[str, Any] = ({"summary": built.summary.id,
                                  "summary_at": built.summary.pos}
                                 if built.summary is not None else {})
        watch = Stopwatch(self.sessions.clock)
        reply_id = new_message_id()  # followers see the pieces under the id it is stored with
        live = self.sessions.live_reply(self.id, reply_id, specialist.name, self.branch, lease)
        try:
            return self._stream(specialist, provider, chat, on_text, reply_id, live, watch,
                                noted)
        finally:
            live.close()

    def _stream(self, specialist: Specialist, provider: Provider, chat: list[ChatMessage],
                on_text: Callable[[str], None], reply_id: str, live: LiveReply,
                watch: Stopwatch, noted: dict[str, Any]) -> Reply:
        parts: list[str] = []
        last: Chunk | None = None
        shown: Exception | None = None  # showing the reply failed: still read and store it
        try:
            chunk: Chunk
            for chunk in provider.stream(chat, specialist):
                if chunk.text:
                    piece = valid_unicode(chunk.text)
                    parts.append(piece)
                    watch.text(len(piece))
                    live.feed(piece)
                    if shown is None:
                        try:
                            on_text(piece)
                        except Exception as exc:  # noqa: BLE001 - raised once the reply is kept
                            shown = exc
                if chunk.finished:
                    last = chunk
                    break
        except KeyboardInterrupt:
            live.flush()
            reply = self.add(Message(ASSISTANT, "".join(parts), specialist.name,
                                     self.sessions.now(), id=reply_id, interrupted=True,
                                     timing=watch.timing(), **noted))
            self.save_if_auto()
            return Reply(reply.content, reply, interrupted=True)
        if last is None:
            raise ProviderError(provider.endpoint, "the reply stream ended before it finished")
        live.flush()
        reply = self.add(Message(ASSISTANT, "".join(parts), specialist.name, self.sessions.now(),
                                 id=reply_id, usage=last.usage, model=last.model, cut=last.cut,
                                 timing=watch.timing(), **noted))
        if shown is not None:
            self.save_if_auto()
            raise shown
        return Reply(reply.content, reply)

    def add_user(self, specialist: Specialist, text: str) -> Message:
        """Store the user's message; with auto-save on it is durable before anyone is asked,
        so a provider that fails (or cannot even be built) never loses it."""
        text = valid_unicode(text)  # a lone surrogate stored would fail every later request
        check_message(self.sessions.config, text)
        from aish.specialists import ai_key

        message = self.add(Message(USER, text, ai_key(specialist.name), self.sessions.now()))
        self.save_if_auto()
        return message

    def save_if_auto(self) -> None:
        if self.save_every and self.pending:
            self.save()
