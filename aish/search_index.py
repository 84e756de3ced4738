"""A full-text index of session messages (SQLite FTS5), so searching does not read every log.

The index is a cache, never the source of truth: it lives in ``~/.aish/search/`` under a name
derived from the store it covers (the file store's directory, or the Redis host, port and db),
and every search first catches it up with the store. Catching up is cheap: the store says
which sessions changed (the file store's log sizes; Redis: each session's message count and
last message), and only those are compared with what the index saw, message by message. What
another machine or an older aish wrote is found that way too; a session removed is dropped.

Appends are indexed as they happen (`record_append`), but an index that cannot be written (a
locked or damaged database, a full disk) never fails an append: the next search repairs it.
A file that is not a usable database is replaced by a rebuilt one. With encryption on, the
index holds no plaintext unless ``search.index_plaintext`` says so; search then scans instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aish.errors import AishError, PermissionDenied, StorageError, UsageError
from aish.sanitize import valid_unicode

SCHEMA_VERSION = "1"
OPEN, CLOSE = "\ue000", "\ue001"  # match markers inside snippets (private-use characters)
ELLIPSIS = "…"
SNIPPET_TOKENS = 16
APPEND_BUSY_MS = 50  # an append waits at most this long for a busy index, then leaves it
SEARCH_BUSY_MS = 10_000
CATCH_UP_BATCH = 500
STAMP_SETTLE_SECONDS = 2.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS info(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS sessions(
    sid TEXT PRIMARY KEY, count INTEGER NOT NULL, last TEXT NOT NULL, stamp TEXT NOT NULL,
    participants TEXT NOT NULL, title TEXT NOT NULL, heads TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages(
    rid INTEGER PRIMARY KEY, sid TEXT NOT NULL, mid TEXT NOT NULL, parent TEXT NOT NULL,
    n INTEGER NOT NULL, role TEXT NOT NULL, ai TEXT NOT NULL, time REAL NOT NULL,
    ref TEXT NOT NULL, UNIQUE(sid, mid));
CREATE INDEX IF NOT EXISTS messages_time ON messages(time);
CREATE VIRTUAL TABLE IF NOT EXISTS body USING fts5(text, tokenize='unicode61 remove_diacritics 2');
"""
TITLE = "title"  # the role of the row that holds a session's title (mid "", number 0)


# -- queries -------------------------------------------------------------------------------------

_WORD = re.compile(r"\w", re.UNICODE)


def terms(text: str) -> list[str]:
    """The words and "quoted phrases" of a query, each one text to find (all of them must be).

    A quote left open runs to the end; a trailing ``*`` asks for a prefix. Terms without a
    letter or digit find nothing and are dropped.
    """
    out: list[str] = []
    for phrase, word in re.findall(r'"([^"]*)"?|(\S+)', text.replace("\0", " ")):
        term = " ".join((phrase or word).split())
        if _WORD.search(term):
            out.append(term)
    return out


def fts_query(found: list[str]) -> str:
    """An FTS5 MATCH expression for ``terms``: every term quoted, so no input is syntax."""
    parts = []
    for term in found:
        prefix = term.endswith("*") and _WORD.search(term[:-1])
        body = term[:-1] if prefix else term
        parts.append('"' + body.replace('"', '""') + '"' + ("*" if prefix else ""))
    return " AND ".join(parts)


def parse(text: str) -> list[str]:
    found = terms(valid_unicode(text))  # argv may carry undecodable bytes as lone surrogates
    if not found:
        raise UsageError("search needs a word to look for")
    return found


@dataclass(frozen=True)
class Filters:
    ai: str | None = None
    branch: str | None = None
    since: float | None = None
    session: str | None = None  # one session only (the shell's `search --here`)
    limit: int = 50


@dataclass
class Hit:
    session: str
    branch: str
    number: int  # on the path from the root, from 1; 0 for a session's title
    role: str
    ai: str
    time: float
    marked: str  # the excerpt, matches between OPEN and CLOSE
    mid: str = ""

    @property
    def snippet(self) -> str:
        return self.marked.replace(OPEN, "").replace(CLOSE, "")

    def bracketed(self) -> str:
        return self.marked.replace(OPEN, "[").replace(CLOSE, "]")

    def to_json(self) -> dict:
        return {"session": self.session, "branch": self.branch, "message": self.number,
                "role": self.role, "ai": f"{self.ai}-ai" if self.ai else "", "time": self.time,
                "snippet": self.snippet, "highlighted": self.bracketed()}


# -- where the index lives -----------------------------------------------------------------------

def identity(config) -> str:
    """What names the store an index covers: its directory, or the Redis server and db."""
    if config.storage_type == "redis":
        from urllib.parse import urlsplit

        url = urlsplit(config.redis_url or "redis://localhost:6379/0")
        db = url.path.strip("/") or "0"
        try:
            port = url.port or 6379
        except ValueError:
            port = 6379
        return f"redis:{url.hostname or 'localhost'}:{port}/{db}"
    return f"file:{Path(config.session_dir).expanduser().resolve()}"


def index_path(config) -> Path:
    digest = hashlib.sha256(identity(config).encode()).hexdigest()[:16]
    return Path(config.home) / "search" / f"index-{digest}.sqlite3"


def usable(config) -> bool:
    """Whether searches use the index (else they scan): it is on, and it may hold the text."""
    return config.search_index and (not config.encrypt or config.search_plaintext)


def title_of(summary) -> str:
    header = summary.header
    title = getattr(header, "title", None) or header.extra.get("title")
    return title if isinstance(title, str) else ""


def _participants(summary) -> str:
    return "," + ",".join(summary.participants) + ","


def heads_of(summary) -> dict[str, str]:
    tree = summary.tree
    return {name: head.id for name in tree.names() if (head := tree.head(name)) is not None}


def _heads(summary) -> str:
    return json.dumps(heads_of(summary))  # main first: hits prefer it


class Corrupt(Exception):
    """The file is not a database this version can use: it is replaced."""


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


class SearchIndex:
    def __init__(self, path: Path, busy_ms: int = SEARCH_BUSY_MS):
        self.path = Path(path)
        self.busy_ms = busy_ms
        self._db: sqlite3.Connection | None = None

    # -- opening ---------------------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self._db = self._connect()
            except (Corrupt, sqlite3.DatabaseError) as exc:
                if isinstance(exc, sqlite3.Error) and _is_busy(exc):
                    raise
                self.discard()
                self._db = self._connect()
        return self._db

    def _connect(self) -> sqlite3.Connection:
        folder = self.path.parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not stat.S_ISDIR(os.lstat(folder).st_mode):  # a link could lead the text elsewhere
            raise OSError(f"{folder} is not a directory")
        # Made private before SQLite opens it (its -wal and -shm files copy these modes).
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                         0o600))
        db = sqlite3.connect(self.path, timeout=self.busy_ms / 1000, isolation_level=None,
                             check_same_thread=False)
        try:
            db.execute("PRAGMA synchronous=NORMAL")  # a cache: a lost commit is caught up
            version = None
            with contextlib.suppress(sqlite3.OperationalError):
                row = db.execute("SELECT value FROM info WHERE key='version'").fetchone()
                version = row[0] if row else None
            if version not in (None, SCHEMA_VERSION):
                raise Corrupt("another schema")
            if version is None:
                db.execute("PRAGMA journal_mode=WAL")  # kept in the file from now on
                db.executescript(_SCHEMA)
                db.execute("INSERT OR IGNORE INTO info VALUES ('version', ?)",
                           (SCHEMA_VERSION,))
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def discard(self) -> None:
        """Remove the index files (a cache: the next use rebuilds them from the logs)."""
        self.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}{suffix}")

    # -- writing ---------------------------------------------------------------------------
    def _rows(self, sid: str) -> dict[str, tuple]:
        return {r[0]: r[1:] for r in self.db.execute(
            "SELECT mid, rid, parent, n FROM messages WHERE sid=?", (sid,))}

    def _insert(self, sid: str, message, parent: str, n: int) -> None:
        # An older log may hold lone surrogates, which SQLite cannot take.
        cur = self.db.execute(
            "INSERT INTO messages(sid, mid, parent, n, role, ai, time, ref) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (sid, message.id, parent, n, message.role, valid_unicode(message.ai), message.time,
             valid_unicode(message.ref or "")))
        self.db.execute("INSERT INTO body(rowid, text) VALUES (?, ?)",
                        (cur.lastrowid, valid_unicode(message.content)))

    def _delete(self, rids: Iterable[int]) -> None:
        for rid in rids:
            self.db.execute("DELETE FROM messages WHERE rid=?", (rid,))
            self.db.execute("DELETE FROM body WHERE rowid=?", (rid,))

    def _set_session(self, summary, stamp: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO sessions VALUES (?,?,?,?,?,?,?)",
                        (summary.id, summary.messages, summary.tree.last.id, stamp,
                         _participants(summary), title_of(summary), _heads(summary)))

    def _set_title(self, summary) -> None:
        sid, title = summary.id, title_of(summary)
        rows = self.db.execute("SELECT m.rid, b.text FROM messages m JOIN body b "
                               "ON b.rowid = m.rid WHERE m.sid=? AND m.mid=''", (sid,)).fetchall()
        if rows and rows[0][1] == title:
            return
        self._delete(r[0] for r in rows)
        if title:
            from aish.messages import Message

            self._insert(sid, Message(TITLE, title, summary.owner, summary.created, id=""),
                         "", 0)

    def resync(self, summary, loaded, stamp: str) -> None:
        """Make the index hold exactly ``loaded``'s messages (what ``summary`` describes):
        only what differs is written."""
        sid = summary.id
        numbers: dict[str, int] = {}
        by_id = {m.id: m for m in loaded.messages}

        def number(mid: str) -> int:
            chain = []
            while mid and mid in by_id and mid not in numbers and mid not in chain:
                chain.append(mid)
                mid = by_id[mid].parent or ""
            base = numbers.get(mid, 0)
            for depth, link in enumerate(reversed(chain), start=1):
                numbers[link] = base + depth
            return numbers.get(chain[0], base) if chain else base

        have = self._rows(sid)
        have.pop("", None)
        with self.transaction():
            for message in by_id.values():
                parent, n = message.parent or "", number(message.id)
                row = have.pop(message.id, None)
                if row is not None and row[1:] == (parent, n):
                    continue
                if row is not None:
                    self._delete([row[0]])
                self._insert(sid, message, parent, n)
            self._delete(row[0] for row in have.values())
            self._set_title(summary)
            self._set_session(summary, stamp)

    def drop(self, sids: Iterable[str]) -> None:
        with self.transaction():
            for sid in sids:
                self._delete(r[0] for r in self.db.execute(
                    "SELECT rid FROM messages WHERE sid=?", (sid,)).fetchall())
                self.db.execute("DELETE FROM sessions WHERE sid=?", (sid,))

    @contextlib.contextmanager
    def transaction(self):
        """One write transaction (taken at once, so readers never block it half-way); inside
        another, it is part of that one."""
        if self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def appended(self, before, after, written: list) -> bool:
        """Index ``written`` just appended to a session whose summary was ``before`` and is now
        ``after``, when the index held exactly ``before`` (else a search catches up)."""
        sid = after.id
        seen = self.db.execute("SELECT count, last, stamp FROM sessions WHERE sid=?",
                               (sid,)).fetchone()
        was = (before.messages, before.tree.last.id) if before is not None else (0, "")
        if (seen[:2] if seen else (0, "")) != was or after.messages != was[0] + len(written):
            return False
        numbers = {mid: row[2] for mid, row in self._rows(sid).items()}
        for message in written:
            parent = message.parent or ""
            if parent and parent not in numbers:
                return False  # its parent was never indexed: a search catches the session up
            numbers[message.id] = numbers[parent] + 1 if parent else 1
        with self.transaction():
            for message in written:
                self._insert(sid, message, message.parent or "", numbers[message.id])
            self._set_title(after)
            # The stamp stays: the store's own stamp moved, and the next search confirms it.
            self._set_session(after, seen[2] if seen else "")
        return True

    # -- catching up -----------------------------------------------------------------------
    def catch_up(self, sessions, force: bool = False) -> None:
        """Bring the index up to date with the store: sessions changed since the index last saw
        them are compared with it, message by message; removed ones are dropped. ``force``:
        even when the store says nothing changed (an append could not update the index)."""
        whole = sessions.store_stamp()
        known = self.db.execute("SELECT value FROM info WHERE key='store'").fetchone()
        if not force and whole is not None and known is not None and known[0] == whole[0]:
            return
        self._catch_up(sessions)
        # Trusted next time only when it is older than the clock's coarseness, so that a write
        # within the same tick as this catch-up cannot hide behind an unchanged token.
        with self.transaction():
            self.db.execute("DELETE FROM info WHERE key='store'")
            if whole is not None and whole[1] < time.time() - STAMP_SETTLE_SECONDS:
                self.db.execute("INSERT INTO info VALUES ('store', ?)", (whole[0],))

    def _catch_up(self, sessions) -> None:
        seen = {r[0]: r[1:] for r in self.db.execute(
            "SELECT sid, count, last, stamp, participants, title, heads FROM sessions")}
        stamps = sessions.stamps()
        if stamps is None:
            summaries = {s.id: s for s, _ in sessions.listing(include_all=True)}
            changed = {sid: "" for sid in summaries}
        else:
            summaries = {}
            changed = {sid: stamp for sid, stamp in stamps.items()
                       if sid not in seen or seen[sid][2] != stamp}
        present = set(summaries if stamps is None else stamps)
        gone = [sid for sid in seen if sid not in present]
        if gone:
            self.drop(gone)
        for done, (sid, stamp) in enumerate(changed.items(), start=1):
            if done % CATCH_UP_BATCH == 1:  # a few hundred sessions per commit: writers wait less
                if self.db.in_transaction:
                    self.db.execute("COMMIT")
                self.db.execute("BEGIN IMMEDIATE")
            try:
                summary = summaries.get(sid) or sessions.summary(sid)
                row = seen.get(sid)
                if row and row[:2] == (summary.messages, summary.tree.last.id):
                    if row[2:] != (stamp, _participants(summary), title_of(summary),
                                   _heads(summary)):
                        self._set_title(summary)
                        self._set_session(summary, stamp)
                    continue
                self.resync(summary, sessions.load(sid), stamp)
            except AishError:  # unreadable or removed meanwhile: its old rows stay until it is
                continue
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
                raise
        if self.db.in_transaction:
            self.db.execute("COMMIT")

    # -- searching -------------------------------------------------------------------------
    def query(self, sessions, found: list[str], filters: Filters) -> list[Hit]:
        where = ["body MATCH ?"]
        params: list = [fts_query(found)]
        if filters.ai:
            where.append("s.participants LIKE ? ESCAPE '\\'")
            params.append("%," + re.sub(r"([%_\\])", r"\\\1", filters.ai) + ",%")
        if filters.since is not None:
            where.append("m.time >= ?")
            params.append(filters.since)
        if filters.session:
            where.append("m.sid = ?")
            params.append(filters.session)
        sql = ("SELECT m.rid, m.sid, m.mid, m.n, m.role, m.ai, m.time, m.ref FROM body "
               "JOIN messages m ON m.rid = body.rowid JOIN sessions s ON s.sid = m.sid "
               f"WHERE {' AND '.join(where)} ORDER BY m.time DESC, m.sid, m.n")
        if filters.branch is None:
            sql += f" LIMIT {int(filters.limit)}"
        labels = Labels(self.heads, self.parents)
        found_rows = self.db.execute(sql, params).fetchall()
        if filters.branch is None:  # a few rows: what labels them is read in two queries
            labels.prefetch({r[1] for r in found_rows}, self.heads_of_many,
                            self.parents_of_many)
        rows = []
        for rid, sid, mid, n, role, ai, when, ref in found_rows:
            branch = labels.branch(sid, mid, ref, filters.branch)
            if branch is None:
                continue
            rows.append((rid, Hit(sid, branch, n, role, ai, when, "", mid)))
            if len(rows) >= filters.limit:
                break
        marked = self._snippets([rid for rid, _ in rows], params[0])
        for rid, hit in rows:
            hit.marked = marked.get(rid, "")
        return [hit for _, hit in rows]

    def _snippets(self, rids: list[int], match: str) -> dict[int, str]:
        if not rids:
            return {}
        marks = ",".join("?" * len(rids))
        # Words matched side by side read as one highlight: "[memory leak]".
        joined = re.compile(re.escape(CLOSE) + r"(\s+)" + re.escape(OPEN))
        return {r[0]: joined.sub(r"\1", " ".join(r[1].split())) for r in self.db.execute(
            f"SELECT rowid, snippet(body, 0, ?, ?, ?, {SNIPPET_TOKENS}) FROM body "
            f"WHERE body MATCH ? AND rowid IN ({marks})",
            [OPEN, CLOSE, ELLIPSIS, match, *rids])}

    def heads(self, sid: str) -> dict[str, str] | None:
        row = self.db.execute("SELECT heads FROM sessions WHERE sid=?", (sid,)).fetchone()
        return json.loads(row[0]) if row else None

    def heads_of_many(self, sids: set[str]) -> dict[str, dict[str, str]]:
        marks = ",".join("?" * len(sids))
        return {r[0]: json.loads(r[1]) for r in self.db.execute(
            f"SELECT sid, heads FROM sessions WHERE sid IN ({marks})", list(sids))}

    def parents_of_many(self, sids: set[str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {sid: {} for sid in sids}
        marks = ",".join("?" * len(sids))
        for sid, mid, parent in self.db.execute(
                f"SELECT sid, mid, parent FROM messages WHERE sid IN ({marks}) AND mid != ''",
                list(sids)):
            out[sid][mid] = parent
        return out

    def parents(self, sid: str) -> dict[str, str]:
        return {r[0]: r[1] for r in self.db.execute(
            "SELECT mid, parent FROM messages WHERE sid=? AND mid != ''", (sid,))}

    def table(self) -> list[tuple]:
        """Every row the index holds, in a stable order (what a rebuild must reproduce)."""
        return self.db.execute(
            "SELECT m.sid, m.mid, m.parent, m.n, m.role, m.ai, m.time, m.ref, b.text "
            "FROM messages m JOIN body b ON b.rowid = m.rid ORDER BY m.sid, m.mid").fetchall()


class Labels:
    """Which branch a hit is shown on: the one asked for, else ``main`` when its path holds the
    message, else the first other branch that does, else the branch it was written on."""

    def __init__(self, heads, parents):
        self.heads = heads  # sid -> {branch: head message id}, None when unknown
        self.parents = parents  # sid -> {message id: parent id}
        self._paths: dict[str, dict[str, set[str]] | None] = {}

    def prefetch(self, sids: set[str], heads_of_many, parents_of_many) -> None:
        if not sids:
            return
        heads, parents = heads_of_many(sids), parents_of_many(sids)
        for sid in sids:
            self._paths[sid] = self._walk(heads.get(sid), parents.get(sid, {}))

    def paths(self, sid: str) -> dict[str, set[str]] | None:
        if sid not in self._paths:
            heads = self.heads(sid)
            self._paths[sid] = self._walk(heads, self.parents(sid) if heads is not None else {})
        return self._paths[sid]

    @staticmethod
    def _walk(heads: dict[str, str] | None, parents: dict[str, str]
              ) -> dict[str, set[str]] | None:
        """Each branch's path (its messages' ids) from its head back to the root."""
        if heads is None:
            return None
        out: dict[str, set[str]] = {}
        for name, head in heads.items():
            path: set[str] = set()
            mid = head
            while mid and mid in parents and mid not in path:
                path.add(mid)
                mid = parents[mid]
            out[name] = path
        return out

    def branch(self, sid: str, mid: str, ref: str, wanted: str | None) -> str | None:
        paths = self.paths(sid)
        if paths is None:
            return None
        if mid == "":  # a title belongs to the whole session
            return wanted or "" if wanted is None or wanted in paths else None
        if wanted is not None:
            return wanted if mid in paths.get(wanted, ()) else None
        for name, path in paths.items():
            if mid in path:
                return name
        return ref or "main"


# -- scanning (no index: encrypted without consent, or turned off) --------------------------------

def _mark(text: str, found: list[str], width: int = 90) -> str | None:
    """``text`` around its first match with every match marked; None unless all terms occur."""
    flat = " ".join(text.split())
    folded = flat.casefold()
    spans = []
    for term in found:
        needle = term.rstrip("*").casefold() if term.endswith("*") else term.casefold()
        at = folded.find(needle)
        if at < 0:
            return None
        while at >= 0:
            spans.append((at, at + len(needle)))
            at = folded.find(needle, at + len(needle))
    spans.sort()
    first = spans[0][0]
    start = max(0, first - width // 3)
    end = min(len(flat), start + width)
    out, pos = [], start
    for a, b in spans:
        if a < pos or b > end:
            continue
        out += [flat[pos:a], OPEN, flat[a:b], CLOSE]
        pos = b
    out.append(flat[pos:end])
    return (ELLIPSIS if start else "") + "".join(out) + (ELLIPSIS if end < len(flat) else "")


def scan(sessions, found: list[str], filters: Filters) -> list[Hit]:
    """Search by reading every session (what the index saves): same terms, filters and hits."""
    loaded: dict[str, dict[str, str]] = {}
    heads: dict[str, dict[str, str]] = {}
    labels = Labels(heads.get, lambda sid: loaded.get(sid, {}))
    hits: list[Hit] = []
    for summary, _ in sessions.listing(include_all=True):
        if filters.session and summary.id != filters.session:
            continue
        if filters.ai and filters.ai not in summary.participants:
            continue
        try:
            messages = sessions.load(summary.id).messages
        except (StorageError, UsageError, PermissionDenied):  # a session not ours to read
            continue
        loaded[summary.id] = {m.id: m.parent or "" for m in messages}
        heads[summary.id] = heads_of(summary)
        numbers: dict[str, int] = {}
        for message in messages:
            numbers[message.id] = numbers.get(message.parent or "", 0) + 1
        candidates = [(TITLE, "", title_of(summary), summary.owner, summary.created, 0, "")]
        candidates += [(m.role, m.id, m.content, m.ai, m.time, numbers[m.id], m.ref or "")
                       for m in messages]
        for role, mid, text, ai, when, n, ref in candidates:
            if not text or (filters.since is not None and when < filters.since):
                continue
            marked = _mark(text, found)
            if marked is None:
                continue
            branch = labels.branch(summary.id, mid, ref, filters.branch)
            if branch is not None:
                hits.append(Hit(summary.id, branch, n, role, ai, when, marked, mid))
    hits.sort(key=lambda h: (-h.time, h.session, h.number))
    return hits[:filters.limit]


# -- what commands and the session core call -----------------------------------------------------

def open_index(sessions) -> SearchIndex:
    return SearchIndex(index_path(sessions.config))


def search(sessions, text: str, filters: Filters, warn=lambda _text: None) -> list[Hit]:
    """Hits for ``text``: from the index, caught up first, or by scanning when it may not be
    used (``warn`` says why, once)."""
    found = parse(text)
    config = sessions.config
    if not usable(config):
        if config.encrypt:
            # Indexed while the user allowed plaintext (or before encryption was on): the
            # text must not stay behind once they no longer do.
            with contextlib.suppress(OSError):
                if os.path.lexists(index_path(config)):
                    SearchIndex(index_path(config)).discard()
        if config.search_index:
            warn("sessions are encrypted and the search index holds no plaintext: scanning "
                 "every session (set search.index_plaintext: true to index them)")
        return scan(sessions, found, filters)
    index = open_index(sessions)
    try:
        try:
            return _indexed(index, sessions, found, filters)
        except sqlite3.DatabaseError as exc:
            if _is_busy(exc):
                raise StorageError("the search index is busy; try again") from None
            index.discard()  # damaged while in use: rebuilt from the logs
            return _indexed(index, sessions, found, filters)
    except (OSError, sqlite3.Error) as exc:
        if isinstance(exc, sqlite3.Error) and _is_busy(exc):
            raise StorageError("the search index is busy; try again") from None
        warn(f"the search index {index.path} cannot be used ({exc}): scanning every session")
        return scan(sessions, found, filters)
    finally:
        index.close()


def _indexed(index: SearchIndex, sessions, found, filters) -> list[Hit]:
    marker = stale_marker(index.path)
    index.catch_up(sessions, force=marker.exists())
    with contextlib.suppress(FileNotFoundError):
        os.unlink(marker)
    return _readable(sessions, index.query(sessions, found, filters))


def _readable(sessions, hits: list[Hit]) -> list[Hit]:
    """``hits`` in sessions this person may read now: the index kept what they wrote or read
    before a session's owner took their role back (or before it had members)."""
    from aish.people import VIEWER

    if not hits:
        return hits
    allowed = {s.id for s, _ in sessions.listing(include_all=True) if sessions.may(s, VIEWER)}
    return [hit for hit in hits if hit.session in allowed]


def reindex(sessions) -> tuple[int, int]:
    """Build the index again from the logs; returns (sessions, messages) it holds."""
    index = open_index(sessions)
    try:
        index.discard()
        index.catch_up(sessions)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stale_marker(index.path))
        counts = index.db.execute("SELECT (SELECT count(*) FROM sessions), "
                                  "(SELECT count(*) FROM messages WHERE mid != '')").fetchone()
        return counts[0], counts[1]
    except (OSError, sqlite3.Error) as exc:
        raise StorageError(f"cannot build the search index {index.path}: {exc}") from None
    finally:
        index.close()


def stale_marker(path: Path) -> Path:
    return path.with_suffix(".stale")


def record_append(sessions, before, after, written: list) -> None:
    """Index messages just appended. Never raises: an index that cannot be written is marked
    stale and the next search catches it up from the store."""
    try:
        config = sessions.config
        if not usable(config):
            return
        index = sessions._search_index
        if index is None:
            path = index_path(config)
            if not path.exists() and not path.parent.exists():
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            index = sessions._search_index = SearchIndex(path, busy_ms=APPEND_BUSY_MS)
        if not index.appended(before, after, written):
            return
    except Exception:  # noqa: BLE001 - a cache must never fail the write it follows
        with contextlib.suppress(Exception):
            if sessions._search_index is not None:
                sessions._search_index.close()
            sessions._search_index = None
            marker = stale_marker(index_path(sessions.config))
            if stat.S_ISDIR(os.lstat(marker.parent).st_mode):  # never through a link
                marker.touch(mode=0o600)
