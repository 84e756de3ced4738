"""Save and restore keep every field a message was stored with, and who wrote it: a restored
shared session still says which person wrote each turn, and who restored it is recorded as the
copier of others' messages, never as their author."""

from __future__ import annotations

import json
import os
import pwd
import time
from dataclasses import fields

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from manage_support import log_path, make_session, ok, sessions_for

from aish.management.restore import restore
from aish.management.transfer import save_session
from aish.messages import ASSISTANT, USER, Message, Timing, Usage

ME = pwd.getpwuid(os.geteuid()).pw_name
# Kept out of the comparison: where a message is stored (a position in the old log, found
# anew in the new one), and who copied it (said by the restore, never taken from the input).
PLACES = ("pp", "summary_at", "copied_by")

_texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
_ids = st.text("0123456789abcdef", min_size=16, max_size=16)
_seconds = st.floats(0, 1e6, allow_nan=False)


@st.composite
def _messages(draw) -> list[Message]:
    """A straight conversation whose messages use every field, summaries included."""
    out: list[Message] = []
    summaries: list[str] = []
    start = draw(st.floats(1e9, 1.7e9))
    for n in range(draw(st.integers(1, 8))):
        parent = out[-1].id if out else ""
        summary = draw(st.sampled_from([None, *summaries]))
        timing = draw(st.none() | st.builds(
            Timing, _seconds, _seconds,
            st.lists(st.tuples(_seconds, st.integers(0, 10**6)), max_size=4).map(tuple)))
        note = draw(st.sampled_from([None, "merge", "summary"]))
        mid = draw(_ids.filter(lambda i: i not in {m.id for m in out}))
        out.append(Message(
            draw(st.sampled_from([USER, ASSISTANT])), draw(_texts),
            draw(st.sampled_from(["apollo", "athena"])), start + n, mid,
            usage=draw(st.none() | st.builds(Usage, st.integers(0, 10**6),
                                             st.integers(0, 10**6))),
            interrupted=draw(st.booleans()), model=draw(st.none() | _texts),
            cut=draw(st.booleans()), parent=parent, ref="main", note=note,
            source=parent or None if note else draw(st.none() | _ids.filter(bool)),
            timing=timing, by=draw(st.sampled_from([None, ME, "alice", "bob@example.org"])),
            copied_by=draw(st.sampled_from([None, "mallory"])),  # never believed
            covers=n if note == "summary" else None, summary=summary))
        if note == "summary":
            summaries.append(mid)
    return out


def _record(message: Message) -> dict:
    return {k: v for k, v in message.to_record().items() if k not in PLACES}


def test_the_comparison_leaves_out_only_places_and_the_copier():
    """A new field of Message is part of the round trip below unless it is named here."""
    recorded = {f.name for f in fields(Message)} - {"pos"}
    assert recorded - set(PLACES) == {
        "role", "content", "ai", "time", "id", "usage", "interrupted", "model", "cut", "parent",
        "ref", "note", "source", "timing", "by", "covers", "summary"}


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(messages=_messages(), n=st.integers(0, 10**9))
def test_save_then_restore_keeps_every_field(home, messages, n):
    sessions = sessions_for(home)
    sid = f"rt{n}"
    if sessions.exists(sid):
        return
    meta = {"id": sid, "owner": "apollo", "created": messages[0].time,
            "updated": messages[-1].time, "context_window": 10,
            "participants": ["apollo", "athena"], "shared": True}
    sessions.store.create(meta, messages, {"main": messages[-1].id}, sign=False)
    stored = sessions.load(sid).messages
    doc = save_session(sessions, sid)
    restored_id = f"{sid}-again"
    restore(sessions, json.dumps(doc).encode(), target=restored_id)
    again = sessions.load(restored_id).messages
    assert [_record(m) for m in again] == [_record(m) for m in stored]
    # Who restored them copied others' messages; their own, and unsigned ones, are theirs.
    assert [m.copied_by for m in again] == [
        ME if m.by not in (None, ME) else None for m in stored]
    for gone in (sid, restored_id):
        log_path(home, gone).unlink()


def test_an_older_backup_without_authors_still_restores_as_the_owners(aish, home):
    make_session(home, "old1", pairs=2)
    doc = json.loads(ok(aish("aish", "--save-session", "old1")))
    for message in doc["messages"]:
        del message["by"]
    log_path(home, "old1").unlink()
    assert ok(aish("aish", "--restore-session", input=json.dumps(doc))).strip() == "old1"
    records = [json.loads(line) for line in log_path(home, "old1").read_text().splitlines()]
    assert [r for r in records if r["t"] == "msg" and ("by" in r or "copied_by" in r)] == []
    who = json.loads(ok(aish("aish", "--who", "old1", "--json")))
    assert who["messages_by_person"] == {ME: 4}  # read as the owner's, as they were


def test_a_two_person_session_keeps_who_wrote_what(aish, home, tmp_path):
    """alice's and bob's turns (bob's written as his aish would: records naming him) keep
    their authors through save and restore, in place and under a new id."""
    make_session(home, "team", pairs=1)
    with open(log_path(home, "team"), "a") as f:
        parent = [json.loads(line) for line in log_path(home, "team").read_text().splitlines()
                  if '"t":"msg"' in line.replace(" ", "")][-1]["id"]
        for n, (role, text) in enumerate([(USER, "from bob"), (ASSISTANT, "to bob")]):
            mid = f"b0b0b0b0b0b0b0b{n}"
            f.write(json.dumps({"t": "msg", "id": mid, "role": role, "content": text,
                                "ai": "apollo", "time": time.time(), "parent": parent,
                                "ref": "main", "by": "bob"}) + "\n")
            parent = mid
    before = json.loads(ok(aish("aish", "--who", "team", "--json")))["messages_by_person"]
    assert before == {ME: 2, "bob": 2}
    saved = tmp_path / "team.json"
    saved.write_bytes(aish("aish", "--save-session", "team").stdout)
    log_path(home, "team").unlink()
    assert ok(aish("aish", "--restore-session", str(saved))).strip() == "team"
    assert ok(aish("aish", "--restore-session", str(saved), "--as", "team2")).strip() == "team2"
    for sid in ("team", "team2"):
        who = json.loads(ok(aish("aish", "--who", sid, "--json")))
        assert who["messages_by_person"] == before
        assert who["last"]["by"] == "bob"
        assert "bob \u2192 apollo" in ok(aish("aish", "--history", sid))
    records = [json.loads(line) for line in log_path(home, "team2").read_text().splitlines()]
    assert {(r["by"], r.get("copied_by")) for r in records if r["t"] == "msg"} == {
        (ME, None), ("bob", ME)}


def test_unsaved_messages_restored_as_a_new_session_are_the_restorers(home, tmp_path):
    """A recovery file holds this person's own words, written before they were stored: they
    are signed as theirs, as when they are added back to a session that still exists."""
    from aish.management.rescue import keep_unsaved

    sessions = sessions_for(home)
    session = sessions.create("apollo", "rescued", named=True)
    session.auto_save = 0
    session.add(Message(USER, "not yet saved", "apollo", time.time()))
    path = keep_unsaved(session)
    assert all(m.by is None for m in session.pending)
    sessions.remove("rescued", "remove")
    with open(path, "rb") as f:
        [result] = restore(sessions, f.read())
    assert [(m.content, m.by) for m in sessions.load(result.id).messages] == [
        ("not yet saved", ME)]
