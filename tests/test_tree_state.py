"""The conversation tree as a Hypothesis state machine over the session core, in process, on the
file store and on a real redis-server.

Rules: an exchange on the current branch, a new branch at a random message, checkout, edit,
regenerate, undo, redo, merge (fast-forward and pick) and prune. A model keeps where every branch
should point and what undo left to redo; after every step the store must agree with it, and:

- the context sent for a head is the root→head path, windowed, as a full load computes it;
- nothing is removed except by prune;
- every message is reachable from a ref, a redo stack or the ref log (``from``/``to``);
- every ref points at a stored message (or the root);
- ``store.path(head, pairs)`` equals the windowed ``Loaded.path(head)``.

AISH_FUZZ_EXAMPLES sets the number of examples (a nightly run asks for 10,000).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from tree_support import Echo

from aish import branches
from aish.config import load as load_config
from aish.errors import Refused, UsageError
from aish.management.hygiene import prune
from aish.messages import USER, Message
from aish.sessions import Sessions
from aish.specialists import roster
from aish.store.base import path_in
from aish.store.filestore import FileStore
from aish.store.redisstore import RedisStore
from aish.store.refs import MAIN

EXAMPLES = int(os.environ.get("AISH_FUZZ_EXAMPLES") or 200)
WINDOW = 3  # the session's context window in pairs: small, so that windowing matters
NAMES = ["b1", "b2", "b3", "main"]
APOLLO = roster({})["apollo"]




def groups_of(path: list[Message]) -> list[list[Message]]:
    out: list[list[Message]] = []
    for message in path:
        if message.role == USER or not out:
            out.append([message])
        else:
            out[-1].append(message)
    return out


def windowed(path: list[Message], pairs: int) -> list[Message]:
    """The suffix of ``path`` from its ``pairs``-th last user message (all of it if fewer)."""
    users = [i for i, m in enumerate(path) if m.role == USER]
    if pairs == 0 or len(users) < pairs:
        return path
    return path[users[-pairs]:]


class Tree(RuleBasedStateMachine):
    make_store = None  # set by the test: () -> a store over a fresh, empty place

    def __init__(self):
        super().__init__()
        self.store, self.cleanup = type(self).make_store()
        tmp = tempfile.mkdtemp(prefix="aish-state-home-")
        self.home = tmp
        config = replace(load_config({"HOME": tmp}), session_dir=Path(tmp) / "sessions")
        self.sessions = Sessions(self.store, config)
        self.sid = self.sessions.create("apollo", context_window=WINDOW).id
        self.refs: dict[str, str] = {}  # what each named branch should point at
        self.redo: dict[str, list[str]] = {}
        self.ids: set[str] = set()  # every message that should be stored
        self.cur = MAIN
        self.counter = 0
        # Sessions start with their first message (the faces store a new one only then), so
        # main has been moved once; an empty session's main is tested on its own below.
        self.talk(self.session(), self.text())

    def teardown(self):
        self.cleanup()
        shutil.rmtree(self.home, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------------
    def head(self, name: str) -> str:
        return self.refs.get(name, "")

    def full(self):
        return self.store.load(self.sid)

    def path(self, name: str) -> list[Message]:
        return path_in(self.full().by_id(), self.head(name))

    def moved(self, name: str, to: str, op: str) -> None:
        if op == "undo":
            self.redo.setdefault(name, []).insert(0, self.head(name))
        elif op == "redo":
            self.redo[name].pop(0)
        else:
            self.redo.pop(name, None)
        if not self.redo.get(name):
            self.redo.pop(name, None)
        self.refs[name] = to

    def session(self):
        session = self.sessions.open("apollo", self.sid)
        session.branch = self.cur
        return session

    def talk(self, session, text: str | None) -> None:
        """One exchange on ``session``: checks the chat sent and the two new messages."""
        before = self.path(self.cur)
        known = {m.id for m in self.full().messages}
        provider = Echo()
        session.exchange(APOLLO, text, provider)
        session.save()
        assert session.notices == [] and session.branch == self.cur  # nobody raced us
        new = [m for m in self.full().messages if m.id not in known]
        if text is None:  # regenerate: a new reply to the message at the head
            (reply,) = new
            assert reply.parent == before[-1].id and before[-1].role == USER
            history = before
        else:
            question, reply = new
            assert question.content == text and question.parent == self.head(self.cur)
            assert reply.parent == question.id
            history = before + [question]
            self.ids.add(question.id)
        self.ids.add(reply.id)
        groups = groups_of(history)
        sent = [m for g in groups[:-1][-WINDOW:] for m in g] + groups[-1]
        assert [c.content for c in provider.chats[0][1:]] == [m.content for m in sent]
        self.moved(self.cur, reply.id, "msg")

    def text(self) -> str:
        self.counter += 1
        return f"q{self.counter}"

    # -- rules -------------------------------------------------------------------------------
    @rule()
    def append(self):
        self.talk(self.session(), self.text())

    @rule(name=st.sampled_from(NAMES), at=st.integers(0, 40))
    def branch(self, name, at):
        path = self.path(self.cur)
        at = at % (len(path) + 1)
        if name in self.refs or name == MAIN:
            with pytest.raises(UsageError):
                branches.create(self.sessions, self.sid, name, at=at, source=self.cur)
            return
        target = branches.create(self.sessions, self.sid, name, at=at, source=self.cur)
        expected = path[at - 1].id if at else ""
        assert target == expected
        self.moved(name, expected, "branch")

    @rule(name=st.sampled_from(NAMES))
    def checkout(self, name):
        if name in self.refs or name == MAIN:
            self.cur = name

    @rule(pick=st.integers(0, 40))
    def edit(self, pick):
        path = self.path(self.cur)
        numbers = [i + 1 for i, m in enumerate(path) if m.role == USER]
        session = self.session()
        if not numbers:
            return
        number = numbers[pick % len(numbers)]
        branches.rewind_to_edit(session, number)
        parent = path[number - 2].id if number > 1 else ""
        self.moved(self.cur, parent, "edit")
        assert self.store.summary(self.sid).head(self.cur).id == parent
        self.talk(session, self.text())

    @rule()
    def regenerate(self):
        path = self.path(self.cur)
        session = self.session()
        if not any(m.role == USER for m in windowed(path, 1)):
            with pytest.raises(UsageError):
                branches.rewind_to_regenerate(session)
            return
        branches.rewind_to_regenerate(session)
        last_user = next(m for m in reversed(path) if m.role == USER)
        if path[-1].id != last_user.id:
            self.moved(self.cur, last_user.id, "regenerate")
        self.talk(session, None)

    @rule(count=st.integers(1, 3))
    def undo(self, count):
        path = self.path(self.cur)
        users = [i for i, m in enumerate(path) if m.role == USER]
        if len(users) < count:
            with pytest.raises(UsageError):
                branches.undo(self.sessions, self.sid, self.cur, count)
            return
        target = branches.undo(self.sessions, self.sid, self.cur, count)
        cut = users[-count]
        expected = path[cut - 1].id if cut else ""
        assert (target.id if target else "") == expected
        self.moved(self.cur, expected, "undo")

    @rule()
    def redo(self):
        if not self.redo.get(self.cur):
            with pytest.raises(UsageError):
                branches.redo(self.sessions, self.sid, self.cur)
            return
        target = branches.redo(self.sessions, self.sid, self.cur)
        assert target.id == self.redo[self.cur][0]
        self.moved(self.cur, target.id, "redo")

    @precondition(lambda self: self.refs)
    @rule(src=st.sampled_from(NAMES))
    def merge_ff(self, src):
        if src not in self.refs and src != MAIN:
            return
        dst = self.cur
        if src == dst:
            with pytest.raises(UsageError):
                branches.plan_merge(self.sessions, self.sid, src, dst, "ff")
            return
        src_path = self.path(src)
        if self.head(dst) and self.head(dst) not in {m.id for m in src_path}:
            with pytest.raises(Refused):
                branches.plan_merge(self.sessions, self.sid, src, dst, "ff")
            return
        plan = branches.plan_merge(self.sessions, self.sid, src, dst, "ff")
        branches.apply_merge(self.sessions, self.sid, plan)
        if src_path and src_path[-1].id != self.head(dst):
            self.moved(dst, src_path[-1].id, "merge")

    @precondition(lambda self: self.refs)
    @rule(src=st.sampled_from(NAMES), low=st.integers(0, 40), span=st.integers(0, 3))
    def merge_pick(self, src, low, span):
        if src not in self.refs and src != MAIN or src == self.cur:
            return
        dst = self.cur
        src_path, dst_path = self.path(src), self.path(dst)
        if not src_path:
            return
        low = low % len(src_path) + 1
        high = min(len(src_path), low + span)
        plan = branches.plan_merge(self.sessions, self.sid, src, dst, "pick", pick=(low, high))
        done = {m.source for m in dst_path if m.source} | {m.id for m in dst_path}
        wanted = [m for m in src_path[low - 1:high] if m.id not in done]
        assert [m.id for m in plan.copies] == [m.id for m in wanted]
        known = {m.id for m in self.full().messages}
        branches.apply_merge(self.sessions, self.sid, plan)
        new = [m for m in self.full().messages if m.id not in known]
        assert [(m.source, m.content) for m in new] == [(m.id, m.content) for m in wanted]
        parent = self.head(dst)
        for copy in new:
            assert copy.parent == parent
            parent = copy.id
        self.ids.update(m.id for m in new)
        if new:
            self.moved(dst, new[-1].id, "msg")

    # -- invariants --------------------------------------------------------------------------
    @invariant()
    def store_agrees(self):
        loaded = self.full()
        assert loaded.problems == []
        by_id = loaded.by_id()
        assert set(by_id) == self.ids  # nothing lost, nothing unexpected
        summary = self.store.summary(self.sid)
        for name in set(self.refs) | {MAIN}:
            head = summary.head(name)
            assert head is not None, name
            assert head.id == self.head(name), (name, head.id, self.head(name))
            assert head.id == "" or head.id in by_id  # a ref points at a stored message
            assert loaded.tree.head(name).id == head.id
            full_path = loaded.path(head)
            for pairs in (0, 1, 2, WINDOW + 1):
                walked = self.store.path(self.sid, head, pairs)
                assert [m.id for m in walked] == [m.id for m in windowed(full_path, pairs)]
        assert set(summary.tree.names()) == set(self.refs) | {MAIN}
        redo = {n: [h.id for h in s] for n, s in summary.tree.redo.items() if s}
        assert redo == self.redo

    @invariant()
    def every_message_is_reachable(self):
        loaded = self.full()
        by_id = loaded.by_id()
        starts = {h.id for h in loaded.tree.refs.values()} | {loaded.tree.last.id}
        starts |= {h.id for s in loaded.tree.redo.values() for h in s}
        for line in self.store.raw_lines(self.sid):
            if not line.strip():
                continue
            record = json.loads(line)
            if record.get("t") == "ref":
                starts |= {record.get("from") or "", record.get("to") or ""}
        reachable: set[str] = set()
        for start in starts:
            reachable |= {m.id for m in path_in(by_id, start)}
        assert set(by_id) <= reachable, set(by_id) - reachable


class TreeWithPrune(Tree):
    """The same, with prune among the rules."""

    @rule(keep=st.integers(0, 4))
    def prune(self, keep):
        before = {m.id for m in self.full().messages}
        done = prune(self.sessions, self.sid, keep)
        after = self.full()
        if done.backup is None:  # nothing to prune
            assert {m.id for m in after.messages} == before
            return
        assert {m.id for m in after.messages} <= before
        assert done.backup in self.store.backups(self.sid)  # the backup is taken first
        # Prune rewrites the log: the store now says where the branches are.
        summary = self.store.summary(self.sid)
        self.refs = {n: h.id for n, h in summary.tree.refs.items()}
        if MAIN not in self.refs and after.messages:
            self.refs[MAIN] = summary.head(MAIN).id
        self.redo = {n: [h.id for h in s] for n, s in summary.tree.redo.items() if s}
        self.ids = {m.id for m in after.messages}
        if self.cur not in self.refs:
            self.cur = MAIN


def file_store_factory(base: Path):
    def make():
        root = Path(tempfile.mkdtemp(dir=base))
        return FileStore(root), lambda: shutil.rmtree(root, ignore_errors=True)

    return make


def redis_store_factory(url: str, server):
    def make():
        client = server.client()
        client.flushall()
        client.close()
        return RedisStore(url), lambda: None

    return make


SETTINGS = settings(max_examples=EXAMPLES, stateful_step_count=20, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(params=["file", "redis"])
def factory(request, tmp_path):
    if request.param == "file":
        return file_store_factory(tmp_path)
    return redis_store_factory(request.getfixturevalue("redis_url"),
                               request.getfixturevalue("redis_server"))




@pytest.mark.parametrize("machine", [Tree, TreeWithPrune],
                         ids=["without-prune", "with-prune"])
def test_the_tree_holds_under_any_sequence_of_operations(factory, machine):
    bound = type(machine.__name__, (machine,), {"make_store": staticmethod(factory)})
    run_state_machine_as_test(bound, settings=SETTINGS)


def test_talking_on_a_branch_of_an_empty_session_leaves_main_at_the_root(factory):
    store, cleanup = factory()
    tmp = tempfile.mkdtemp(prefix="aish-state-home-")
    try:
        sessions = Sessions(store, load_config({"HOME": tmp}))
        sid = sessions.create("apollo").id  # stored with no message yet
        branches.create(sessions, sid, "b1", at=0)
        session = sessions.open("apollo", sid)
        session.branch = "b1"
        session.exchange(APOLLO, "on b1", Echo())
        session.save()
        summary = store.summary(sid)
        assert [m.content for m in store.path(sid, summary.head("b1"), 0)] == ["on b1",
                                                                              "re: on b1"]
        assert summary.head(MAIN).id == ""
        assert store.load(sid).tree.head(MAIN).id == ""
    finally:
        cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
