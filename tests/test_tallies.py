"""What `--session-info`, `--list-branches` and `--who` count, kept in the tally cache beside the
log: the same figures as counting the whole log, whatever was appended, branched, undone or
damaged between two reports, and a report reads only what was appended since the last."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from manage_support import ok, sessions_for

from aish import branches
from aish.costs import priced, total
from aish.messages import ASSISTANT, SUMMARY_NOTE, USER, Message, Usage
from aish.people import author
from aish.store import tallycache
from aish.store.base import path_in
from aish.store.cachefile import TAIL_BYTES
from aish.tallies import Counted, of_messages

SID = "sess_tally01"
PRICES = {"m1": {"input": 3.0, "output": 15.0}, "prov": {"input": 1.0, "output": 2.0}}


def provider(ai: str) -> str | None:
    return "prov" if ai == "athena" else None


def new_session(sessions) -> None:
    sessions.store.create({"id": SID, "owner": "apollo", "created": 1000.0, "context_window": 10,
                           "participants": ["apollo", "athena"], "shared": False,
                           "state": "active"})


def cache_file(sessions) -> Path:
    return tallycache.path_for(sessions.config.session_dir, SID)


def reference(sessions) -> dict:
    """Every figure counted from the log read whole, the plain way: walking each path."""
    loaded = sessions.load(SID)
    by_id = {m.id: m for m in loaded.messages}
    meta = loaded.meta
    people: dict[str, int] = {}
    for m in loaded.messages:
        if m.note != SUMMARY_NOTE:
            who = author(m.by, meta)
            people[who] = people.get(who, 0) + 1
    out = {"total": _totals(total(loaded.messages, PRICES, provider)), "people": people,
           "branches": {}}
    users = [m for m in loaded.messages if m.role == USER]
    out["last"] = (author(users[-1].by, meta), users[-1].ai, users[-1].time) if users else None
    for name in loaded.tree.names():
        head = loaded.tree.head(name)
        path = path_in(by_id, head.id if head else "")
        out["branches"][name] = {
            "n": len(path), "time": path[-1].time if path else 0.0,
            "speakers": list(dict.fromkeys(m.ai for m in path if m.role != USER)),
            "totals": _totals(total(path, PRICES, provider))}
    return out


def counted_figures(counted: Counted) -> dict:
    """The same figures from what `Sessions.counted` gives the reports."""
    tally, meta = counted.tally, counted.meta
    people: dict[str, int] = {}
    for by, count in tally.by.items():
        who = author(by or None, meta)
        people[who] = people.get(who, 0) + count
    last = tally.last_user
    out = {"total": _totals(priced(tally.groups, PRICES, provider)), "people": people,
           "last": (author(last[0] or None, meta), last[1], last[2]) if last else None,
           "branches": {}}
    for row in branches.listing(counted):  # what --list-branches prints
        path = counted.path(row.head)
        out["branches"][row.name] = {"n": row.messages, "time": row.last_activity,
                                     "speakers": row.speakers,
                                     "totals": _totals(priced(path.groups, PRICES, provider))}
    return out


def _totals(t) -> tuple:
    return (t.input, t.output, t.estimated, t.replies,
            None if t.cost is None else round(t.cost, 9))


# -- a random history of appends, branches, undos, redos and summaries --------------------------

step = st.one_of(
    st.tuples(st.just("say"), st.integers(0, 3), st.sampled_from(["alice", "bob", None]),
              st.sampled_from([None, "m1", "m2"]), st.booleans(), st.integers(0, 300)),
    st.tuples(st.just("branch"), st.integers(0, 10_000)),
    st.tuples(st.just("undo"), st.integers(0, 3)),
    st.tuples(st.just("redo"), st.integers(0, 3)),
    st.tuples(st.just("summary"), st.integers(0, 10_000)),
    st.tuples(st.just("report")),
)


class History:
    """Applies steps to the stored session through raw records, as the session core writes
    them (a message moves its branch from its parent; branch, undo and redo are ref moves)."""

    def __init__(self, sessions):
        self.sessions = sessions
        self.said: list[Message] = []
        self.clock = 2000.0

    def tree(self):
        return self.sessions.summary(SID).tree

    def names(self) -> list[str]:
        return self.tree().names()

    def apply(self, action: tuple) -> None:
        kind = action[0]
        self.clock += 1.0
        tree = self.tree()
        if kind == "say":
            _, which, by, model, reported, size = action
            name = self.names()[which % len(self.names())]
            head = tree.head(name)
            parent = head.id if head else ""
            last = self.sessions.store.message(SID, head) if parent else None
            role = USER if last is None or last.role == ASSISTANT else ASSISTANT
            ai = "athena" if size % 3 == 0 else "apollo"
            m = Message(role, "w" * size, ai, self.clock, parent=parent, ref=name, by=by,
                        model=model if role == ASSISTANT else None,
                        usage=Usage(size, size // 2) if reported and role == ASSISTANT
                        else None)
            self.sessions.store.append(SID, [m.to_record()])
            self.said.append(m)
        elif kind == "branch" and self.said:
            usable = [m for m in self.said if m.note != SUMMARY_NOTE]
            target = usable[action[1] % len(usable)]
            name = f"b{len(self.names())}"
            self.sessions.store.append(SID, [{"t": "ref", "name": name, "to": target.id,
                                              "op": "branch", "time": self.clock}])
        elif kind == "undo":
            name = self.names()[action[1] % len(self.names())]
            head = tree.head(name)
            if head is None or not head.id:
                return
            path = self.sessions.path(SID, head, 0)
            if len(path) < 2:
                return
            self.sessions.store.append(SID, [{"t": "ref", "name": name, "from": head.id,
                                              "to": path[-2].id, "op": "undo",
                                              "time": self.clock}])
        elif kind == "redo":
            name = self.names()[action[1] % len(self.names())]
            stack, head = tree.redo.get(name), tree.head(name)
            if not stack or head is None:
                return
            self.sessions.store.append(SID, [{"t": "ref", "name": name, "from": head.id,
                                              "to": stack[0].id, "op": "redo",
                                              "time": self.clock}])
        elif kind == "summary" and self.said:
            usable = [m for m in self.said if m.note != SUMMARY_NOTE]
            parent = usable[action[1] % len(usable)]
            # A compaction's record: beside the path, never a parent or a branch's head.
            note = Message(ASSISTANT, "summary of earlier turns", parent.ai, self.clock,
                           parent=parent.id, note=SUMMARY_NOTE)
            record = note.to_record()
            record.pop("ref", None)
            self.sessions.store.append(SID, [record])
            self.said.append(note)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(step, min_size=1, max_size=40))
def test_counts_kept_match_a_whole_read(home, steps):
    sessions = sessions_for(home)
    for path in Path(sessions.config.session_dir).glob(f"*{SID}*"):
        path.unlink()
    new_session(sessions)
    history = History(sessions)
    for action in steps:
        history.apply(action)
        if action[0] == "report":  # kept between reports, brought up to date at each
            assert counted_figures(sessions.counted(SID)) == reference(sessions)
    assert counted_figures(sessions.counted(SID)) == reference(sessions)
    # And counted afresh from the whole log: the same again.
    loaded = sessions.load(SID)
    fresh = Counted(loaded.meta, loaded.tree, of_messages(loaded.messages), loaded.messages)
    assert counted_figures(fresh) == reference(sessions)


# -- the cache is used, and a report reads only what is new -------------------------------------

def _pairs(sessions, count: int, start: float, parent: str = "") -> str:
    records = []
    for i in range(count):
        q = Message(USER, f"question {i} " * 20, "apollo", start + 2 * i, parent=parent,
                    ref="main", by="alice")
        a = Message(ASSISTANT, f"answer {i} " * 30, "apollo", start + 2 * i + 1, parent=q.id,
                    ref="main", by="alice")
        records += [q.to_record(), a.to_record()]
        parent = a.id
    sessions.store.append(SID, records)
    return parent


class Counting:
    """A log opened for reading that counts the bytes read from it."""

    def __init__(self, f):
        self.f, self.read_bytes = f, 0

    def read(self, n=-1):
        data = self.f.read(n)
        self.read_bytes += len(data)
        return data

    def __getattr__(self, name):
        return getattr(self.f, name)


def test_a_report_reads_what_was_appended_not_the_session(home):
    sessions = sessions_for(home)
    new_session(sessions)
    head = _pairs(sessions, 500, 2000.0)
    first = sessions.counted(SID)
    assert first.messages is not None  # no cache yet: counted from the whole log
    assert cache_file(sessions).exists()
    assert sessions.counted(SID).messages is None  # then from the cache
    log = Path(sessions.config.session_dir) / f"{SID}.jsonl"
    before = log.stat().st_size
    _pairs(sessions, 2, 5000.0, parent=head)
    appended = log.stat().st_size - before
    with open(log, "rb") as f:
        counting = Counting(f)
        tally = tallycache.covered(cache_file(sessions), SID, counting,
                                   [sessions.summary(SID).tree.last.id], sessions.store.codec.open)
    assert tally is not None and tally.path(sessions.summary(SID).tree.last.id).n == 1004
    assert counting.read_bytes <= appended + 2 * TAIL_BYTES < before / 10
    assert counted_figures(sessions.counted(SID)) == reference(sessions)


def test_a_branch_at_an_old_message_is_counted_once_then_kept(home):
    sessions = sessions_for(home)
    new_session(sessions)
    _pairs(sessions, 200, 2000.0)
    assert sessions.counted(SID).messages is not None
    old = sessions.load(SID).messages[10]  # long out of the window of newest messages
    sessions.store.append(SID, [{"t": "ref", "name": "early", "to": old.id, "op": "branch",
                                 "time": 9000.0}])
    miss = sessions.counted(SID)
    assert miss.messages is not None  # its path was not kept: counted whole, once
    assert sessions.counted(SID).messages is None  # kept as a head from then on
    assert counted_figures(sessions.counted(SID)) == reference(sessions)
    assert counted_figures(sessions.counted(SID))["branches"]["early"]["n"] == 11


@pytest.mark.parametrize("damage", ["flip", "foreign", "truncate", "rewrite", "garbage"])
def test_a_cache_that_does_not_check_out_is_never_believed(home, damage):
    sessions = sessions_for(home)
    new_session(sessions)
    head = _pairs(sessions, 30, 2000.0)
    sessions.counted(SID)
    cache = cache_file(sessions)
    data = cache.read_bytes()
    if damage == "flip":
        cache.write_bytes(data[:40] + bytes([data[40] ^ 1]) + data[41:])
    elif damage == "foreign":
        other = data.replace(SID.encode(), b"sess_other1")
        cache.write_bytes(other)
    elif damage == "truncate":
        cache.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        cache.write_bytes(b"00000000 {}\n")
    else:  # the log rewritten to other content of the same length: its tail no longer matches
        log = Path(sessions.config.session_dir) / f"{SID}.jsonl"
        text = log.read_bytes()
        log.write_bytes(text.replace(b"answer 29", b"answer 92"))
    _pairs(sessions, 1, 9000.0, parent=head)
    assert counted_figures(sessions.counted(SID)) == reference(sessions)
    assert sessions.counted(SID).messages is None  # rebuilt, then used


def test_a_damaged_record_is_counted_as_a_whole_read_counts_it(home):
    sessions = sessions_for(home)
    new_session(sessions)
    head = _pairs(sessions, 5, 2000.0)
    sessions.counted(SID)
    log = Path(sessions.config.session_dir) / f"{SID}.jsonl"
    with open(log, "ab") as f:
        f.write(json.dumps({"t": "msg", "role": "user", "id": "m_bad0001", "parent": head}
                           ).encode() + b"\n")
        f.write(b"{not json\n")
    _pairs(sessions, 1, 9000.0, parent=head)
    assert counted_figures(sessions.counted(SID)) == reference(sessions)


def test_no_tally_is_kept_with_encryption_on(home):
    from sync_support import encrypt, say

    env = encrypt(home, "a passphrase for the tally test")
    say(env, "sess_sealed1", "first question", "second question")
    ok(run(env, "aish", "--session-info", "sess_sealed1"))
    rows = json.loads(ok(run(env, "aish", "--list-branches", "sess_sealed1", "--json")))
    assert rows[0]["messages"] == 4
    sessions_dir = Path(home["HOME"], ".aish", "sessions")
    assert (sessions_dir / "sess_sealed1.jsonl").exists()
    assert not list(sessions_dir.glob(".*.tally"))


# -- through the program --------------------------------------------------------------------------

def test_reports_the_same_with_and_without_the_cache(home):
    sessions = sessions_for(home)
    new_session(sessions)
    head = _pairs(sessions, 40, 2000.0)
    sessions.store.append(SID, [{"t": "ref", "name": "alt", "to": head, "op": "branch",
                                 "time": 9000.0}])
    _pairs(sessions, 2, 9100.0, parent=head)

    def reports() -> list[str]:
        return [ok(run(home, "aish", *argv)) for argv in (
            ("--session-info", SID, "--json"), ("--list-branches", SID, "--json"),
            ("--who", SID, "--json"))]

    cached = reports()
    assert cache_file(sessions).exists()
    for path in Path(sessions.config.session_dir).glob(f".{SID}.*"):
        if path.suffix == ".tally":
            path.unlink()
    uncached = reports()
    assert json.loads(cached[1]) == json.loads(uncached[1])
    info_cached, info_uncached = json.loads(cached[0]), json.loads(uncached[0])
    assert info_cached == info_uncached
    assert info_cached["people"]["messages_by_person"] == {"alice": 84}
    assert info_cached["costs"]["branches"]["alt"] != info_cached["costs"]["branches"]["main"]
    assert json.loads(cached[2])["messages_by_person"] == {"alice": 84}


def test_a_renamed_session_keeps_its_counts_and_summary(home):
    sessions = sessions_for(home)
    new_session(sessions)
    _pairs(sessions, 100, 2000.0)
    sessions.counted(SID)
    sessions_dir = Path(sessions.config.session_dir)
    ok(run(home, "aish", "--rename-session", SID, "sess_tally02"))
    assert not list(sessions_dir.glob(f".{SID}.*"))  # nothing left under the old name
    idx = json.loads((sessions_dir / ".sess_tally02.idx").read_text())
    assert idx["summary"]["meta"]["id"] == "sess_tally02"  # carried, not rebuilt from the log
    assert sessions.counted("sess_tally02").messages is None  # counted from the carried cache
    info = json.loads(ok(run(home, "aish", "--session-info", "sess_tally02", "--json")))
    assert info["people"]["messages_by_person"] == {"alice": 200}
    assert info["messages"] == 200


def test_undo_and_redo_name_the_message_number_from_the_tally(home):
    sessions = sessions_for(home)
    new_session(sessions)
    _pairs(sessions, 300, 2000.0)
    proc = run(home, "aish", "--undo", SID)
    assert proc.returncode == 0 and "message 598" in proc.stderr.decode() + proc.stdout.decode()
    proc = run(home, "aish", "--redo", SID)
    assert proc.returncode == 0 and "message 600" in proc.stderr.decode() + proc.stdout.decode()
