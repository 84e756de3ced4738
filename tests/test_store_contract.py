"""One behavioural suite for the Store interface and the session semantics built on it, run
against every backend: the file store and Redis, each plain and with encryption at rest.

What a store must do is defined here once; a backend that passes this suite can replace the
other without the session core noticing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from fakes import Scripted
from redis_support import redis_client

from aish.audit import AuditLog
from aish.config import load
from aish.errors import (
    LimitError,
    Refused,
    SessionExists,
    SessionNotFound,
    StorageError,
    UsageError,
)
from aish.messages import ASSISTANT, USER, Message, Usage
from aish.sessions import ACTIVE, ENDED, EXPIRED, Sessions
from aish.specialists import roster
from aish.store.base import FORMAT_VERSION
from aish.store.crypto import EncryptedCodec
from aish.store.filestore import FileStore
from aish.store.redisstore import RedisStore

# redis-cluster: a 3-master Redis Cluster (tests/redis_support.py), where a session's keys
# share one slot and everything else is spread over the masters.
BACKENDS = ["file", "redis", "file-encrypted", "redis-encrypted", "redis-cluster",
            "redis-cluster-encrypted"]
KEY = bytes(range(32))
T0 = 1_700_000_000.0


class Backend:
    """Builds stores of one kind over one place, and reads what they stored, raw."""

    def __init__(self, kind: str, root: Path, url: str | None):
        self.kind, self.root, self.url = kind, root, url
        self.codec = EncryptedCodec(KEY) if kind.endswith("encrypted") else None

    @property
    def redis(self) -> bool:
        return self.kind.startswith("redis")

    def store(self, **options):
        if self.redis:
            return RedisStore(self.url, codec=self.codec, **options)
        options.pop("timeout_minutes", None)
        options.pop("retention_days", None)
        return FileStore(self.root, codec=self.codec, **options)

    def raw(self) -> bytes:
        """Everything the backend holds, as bytes (for "is it readable at rest" checks)."""
        if not self.redis:
            return b"".join(p.read_bytes() for p in sorted(self.root.rglob("*")) if p.is_file())
        client = redis_client(self.url)
        out = []
        for key in sorted(client.scan_iter("*")):  # on a cluster: every master
            kind = client.type(key)
            if kind == b"list":
                out += client.lrange(key, 0, -1)
            elif kind == b"hash":
                for k, v in client.hgetall(key).items():
                    out += [k, v]
            elif kind == b"string":
                out.append(client.get(key))
        client.close()
        return b"\n".join(out)

    def backup_bytes(self, store, location: str) -> bytes:
        if self.redis:
            return store.read_backup(location)
        return Path(location).read_bytes()


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path) -> Backend:
    url = None
    if request.param.startswith("redis-cluster"):
        url = request.getfixturevalue("redis_cluster_url")
    elif request.param.startswith("redis"):
        url = request.getfixturevalue("redis_url")
    return Backend(request.param, tmp_path / "sessions", url)


@pytest.fixture
def store(backend):
    return backend.store()


def msg(role: str, content: str, t: float, ai: str = "apollo", **extra) -> Message:
    return Message(role, content, ai, t, **extra)


def conversation(pairs: int, start: float = T0) -> list[Message]:
    out = []
    for i in range(pairs):
        out.append(msg(USER, f"question {i}", start + 2 * i))
        out.append(msg(ASSISTANT, f"answer {i}", start + 2 * i + 1,
                       usage=Usage(10, 5)))
    return out


def new_meta(sid: str, owner: str = "apollo", **extra) -> dict:
    return {"id": sid, "owner": owner, "created": T0, "updated": T0, "context_window": 10,
            "shared": False, "state": "active", "participants": [owner], **extra}


# -- the Store interface ----------------------------------------------------------------------


def test_create_then_summary_load_and_ids(store):
    messages = conversation(2)
    summary = store.create(new_meta("s1"), messages)
    assert summary.id == "s1"
    assert (summary.messages, summary.user_messages) == (4, 2)
    assert summary.by_ai == {"apollo": 2}
    assert summary.tokens == 30
    assert summary.last_time == messages[-1].time
    assert summary.meta["owner"] == "apollo" and summary.meta["v"] == FORMAT_VERSION
    assert store.exists("s1") and not store.exists("s2")
    assert store.ids() == ["s1"]
    assert store.summary("s1").to_json() == summary.to_json()
    loaded = store.load("s1")
    assert loaded.messages == messages
    assert loaded.problems == []
    assert loaded.meta["participants"] == ["apollo"]


def test_create_twice_is_refused_and_keeps_the_first(store):
    store.create(new_meta("dup"), conversation(1))
    with pytest.raises(SessionExists):
        store.create(new_meta("dup", owner="athena"), [])
    assert store.summary("dup").meta["owner"] == "apollo"
    assert len(store.load("dup").messages) == 2


def test_append_folds_messages_and_meta_into_the_summary(store):
    store.create(new_meta("s"), [])
    reply = msg(ASSISTANT, "hi", T0 + 2, ai="athena", usage=Usage(3, 4))
    summary = store.append("s", [msg(USER, "hello", T0 + 1).to_record(), reply.to_record()])
    assert (summary.messages, summary.user_messages, summary.tokens) == (2, 1, 7)
    assert summary.by_ai == {"athena": 1}
    summary = store.append("s", [{"t": "meta", "state": "ended", "participants": ["apollo",
                                                                                  "athena"]}])
    assert summary.meta["state"] == "ended"
    assert summary.meta["participants"] == ["apollo", "athena"]
    assert summary.messages == 2
    assert store.summary("s").to_json() == summary.to_json()
    assert store.load("s").meta["state"] == "ended"


def test_contents_survive_exactly(store):
    texts = ["plain", "multi\nline\n", "unicode ✓ 日本語 🚀", "nul \x00 and tab \t", "",
             '{"t":"meta","id":"evil"}\n{"t":"msg"}', "\x1b]52;c;aGk=\x07 escape", "\ud800 lone"]
    messages = [msg(USER if i % 2 == 0 else ASSISTANT, text, T0 + i,
                    interrupted=(i == 3)) for i, text in enumerate(texts)]
    store.create(new_meta("exact"), messages[:3])
    store.append("exact", [m.to_record() for m in messages[3:]])
    assert store.load("exact").messages == messages
    assert store.summary("exact").id == "exact"


def test_tail_reads_the_last_pairs(store):
    messages = conversation(30)
    messages.append(msg(USER, "unanswered", T0 + 100))
    store.create(new_meta("t"), messages)
    assert store.tail("t", 1) == messages[-1:]
    assert store.tail("t", 2) == messages[-3:]
    assert store.tail("t", 5) == messages[-9:]
    assert store.tail("t", 0) == messages
    assert store.tail("t", 1000) == messages
    store.append("t", [{"t": "meta", "state": "ended"}])  # meta records are not messages
    assert store.tail("t", 2) == messages[-3:]


def test_tail_of_a_session_without_messages(store):
    store.create(new_meta("empty"), [])
    assert store.tail("empty", 3) == []
    assert store.load("empty").messages == []


def test_raw_lines_are_the_stored_records(store):
    store.create(new_meta("raw"), conversation(1))
    lines = store.raw_lines("raw")
    assert lines[-1] == ""  # like a log that ends with a newline
    records = [json.loads(line) for line in lines[:-1]]
    assert [r["t"] for r in records] == ["meta", "msg", "msg"]
    assert records[0]["id"] == "raw"


def test_replace_rewrites_and_rebuilds_the_summary(store):
    store.create(new_meta("r"), conversation(5))
    kept = conversation(5)[-2:]
    summary = store.replace("r", {**new_meta("other-id-is-ignored"), "note": "pruned"}, kept)
    assert summary.id == "r" and summary.meta["note"] == "pruned"
    assert (summary.messages, summary.user_messages) == (2, 1)
    assert store.load("r").messages == kept
    assert store.summary("r").to_json() == summary.to_json()
    assert store.tail("r", 3) == kept


def test_replace_since_keeps_what_others_appended_meanwhile(store):
    store.create(new_meta("m"), conversation(3))
    loaded = store.load("m")
    late = msg(USER, "written by another process meanwhile", T0 + 50)
    store.append("m", [late.to_record()])
    store.replace("m", loaded.meta, loaded.messages[-2:], since=loaded.mark)
    assert store.load("m").messages == loaded.messages[-2:] + [late]
    assert store.summary("m").messages == 3


def test_replace_since_refuses_after_another_rewrite(store):
    store.create(new_meta("m2"), conversation(3))
    first, second = store.load("m2"), store.load("m2")
    store.replace("m2", first.meta, first.messages[:2], since=first.mark)
    with pytest.raises(StorageError, match="rewritten"):
        store.replace("m2", second.meta, second.messages[:4], since=second.mark)
    assert store.load("m2").messages == first.messages[:2]


def test_delete(store):
    store.create(new_meta("gone"), conversation(1))
    store.create(new_meta("stays"), [])
    store.delete("gone")
    assert not store.exists("gone")
    assert store.ids() == ["stays"]
    for call in (lambda: store.load("gone"), lambda: store.summary("gone"),
                 lambda: store.append("gone", [msg(USER, "x", T0).to_record()]),
                 lambda: store.tail("gone", 1)):
        with pytest.raises(SessionNotFound):
            call()
    store.delete("gone")  # deleting twice is harmless


def test_remove_keeps_a_backup_and_deletes(store, backend):
    store.create(new_meta("gone"), conversation(2))
    location = store.remove("gone", "cleanup")
    assert not store.exists("gone")
    kept = backend.backup_bytes(store, location).decode()
    assert kept.count('"t":"msg"') == 4 or kept.count('"t": "msg"') == 4
    with pytest.raises(SessionNotFound):
        store.remove("gone", "cleanup")


def test_backup_keeps_the_log_as_it_was(store, backend):
    messages = conversation(2)
    store.create(new_meta("b"), messages)
    location = store.backup("b", "prune")
    again = store.backup("b", "prune")  # same second, same reason: a second backup
    assert location != again and "b" in location
    store.replace("b", new_meta("b"), [])
    data = backend.backup_bytes(store, location)
    records = [json.loads(line) for line in data.decode().splitlines()]
    assert [r["t"] for r in records] == ["meta", "msg", "msg", "msg", "msg"]
    assert records[0]["id"] == "b"
    with pytest.raises(SessionNotFound):
        store.backup("missing", "prune")


def test_location_names_the_session(store, backend):
    store.create(new_meta("where"), [])
    location = store.location("where")
    if backend.redis:
        assert location == f"{backend.url} aish:{{where}}"
    else:
        assert location == str(backend.root / "where.jsonl")


def test_documents(store):
    assert store.get_doc("templates", "none") is None
    assert store.list_docs("templates") == []
    records = [m.to_record() for m in conversation(1)]
    where = store.put_doc("templates", "review", {"name": "review", "messages": records})
    assert "review" in where
    store.put_doc("templates", "plan", {"name": "plan", "messages": []})
    store.put_doc("checkpoints", "s1/before-refactor", {"messages": records})
    assert store.list_docs("templates") == ["plan", "review"]
    assert store.get_doc("templates", "review") == {"name": "review", "messages": records}
    assert store.get_doc("checkpoints", "s1/before-refactor") == {"messages": records}
    store.put_doc("templates", "plan", {"name": "plan", "messages": records})  # overwrite
    assert store.get_doc("templates", "plan")["messages"] == records


@pytest.mark.parametrize("bad", ["../etc", "a/../../b", "", ".hidden", "x" * 65, "a b",
                                 "tab\tid", "new\nline", "é"])
def test_ids_that_are_not_ids_are_refused_everywhere(store, bad):
    calls = [lambda: store.create(new_meta(bad), []), lambda: store.load(bad),
             lambda: store.summary(bad), lambda: store.append(bad, []),
             lambda: store.tail(bad, 1), lambda: store.delete(bad),
             lambda: store.backup(bad, "x"), lambda: store.location(bad),
             lambda: store.exists(bad), lambda: store.put_doc("templates", bad, {})]
    for call in calls:
        with pytest.raises(UsageError):
            call()


def test_session_size_limit(backend):
    store = backend.store(max_session_bytes=4000)
    store.create(new_meta("big"), [])
    store.append("big", [msg(USER, "x" * 1000, T0).to_record()])
    with pytest.raises(LimitError, match="size limit"):
        store.append("big", [msg(USER, "y" * 5000, T0 + 1).to_record()])
    assert store.summary("big").messages == 1
    assert [m.content for m in store.load("big").messages] == ["x" * 1000]


def test_encryption_leaves_no_content_at_rest(store, backend):
    secret = "the launch code is 0000-SECRET"
    store.create(new_meta("enc"), [msg(USER, secret, T0)])
    store.append("enc", [msg(ASSISTANT, secret + " (reply)", T0 + 1).to_record()])
    store.put_doc("templates", "t", {"messages": [msg(USER, secret, T0).to_record()]})
    store.backup("enc", "prune")
    raw = backend.raw()
    assert (secret.encode() in raw) == (backend.codec is None)
    assert store.load("enc").messages[0].content == secret
    assert store.get_doc("templates", "t")["messages"][0]["content"] == secret


def test_summaries_of_many_sessions(store):
    for i in range(25):
        store.create(new_meta(f"s{i:02d}"), conversation(i % 3))
    summaries = {s.id: s for s in store.summaries()}
    assert sorted(summaries) == [f"s{i:02d}" for i in range(25)]
    assert summaries["s05"].messages == 4


def writer_script(backend, each: int) -> str:
    """A process that appends ``each`` messages to session "busy", ids ``W-i`` (W: argv[1])."""
    return textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from aish.messages import Message
        from aish.store.crypto import EncryptedCodec
        from aish.store.filestore import FileStore
        from aish.store.redisstore import RedisStore
        w = sys.argv[1]
        codec = EncryptedCodec(bytes(range(32))) if {backend.codec is not None!r} else None
        if {backend.redis!r}:
            store = RedisStore({backend.url!r}, codec=codec)
        else:
            store = FileStore(Path({str(backend.root)!r}), codec=codec)
        for i in range({each}):
            m = Message("user", f"{{w}}:{{i}}", "apollo", time.time(), id=f"{{w}}-{{i}}")
            store.append("busy", [m.to_record()])
    """)


def test_concurrent_writers_lose_nothing(backend, tmp_path):
    """Several processes append to one session at once: every record arrives, each writer's
    records in the order it wrote them."""
    store = backend.store()
    store.create(new_meta("busy"), [])
    writers, each = 6, 60
    script = writer_script(backend, each)
    procs = [subprocess.Popen([sys.executable, "-c", script, f"w{n}"]) for n in range(writers)]
    assert all(p.wait(timeout=600) == 0 for p in procs)
    loaded = store.load("busy")
    assert loaded.problems == [] or all(p.kind == "out of order" for p in loaded.problems)
    contents = [m.content for m in loaded.messages]
    assert len(contents) == writers * each
    for n in range(writers):
        mine = [c for c in contents if c.startswith(f"w{n}:")]
        assert mine == [f"w{n}:{i}" for i in range(each)]
    assert store.summary("busy").messages == writers * each


def test_rename_moves_everything_and_keeps_an_alias(store, backend):
    messages = conversation(3)
    store.create(new_meta("before"), messages)
    backup = store.backup("before", "prune")
    store.rename("before", "after")
    assert store.ids() == ["after"]
    assert not store.exists("before") and store.exists("after")
    assert store.load("after").messages == messages
    summary = store.summary("after")
    assert summary.id == "after" and summary.meta["renamed_from"] == "before"
    assert summary.messages == 6 and summary.head("main").id == messages[-1].id
    assert store.alias("before") == "after" and store.aliases() == {"before": "after"}
    assert store.alias("after") is None  # a session's own id is no alias
    # The backup went with it, content intact.
    assert store.backups("before") == []
    [moved] = store.backups("after")
    assert moved != backup
    content = store.read_backup(moved) or b""
    assert json.loads(content.splitlines()[0])["id"] == "before" and content.count(b"\n") == 7
    # A writer that still holds the old id appends to the renamed session.
    late = msg(USER, "late", T0 + 100)
    assert store.append("before", [late.to_record()]).id == "after"
    assert store.load("after").messages == messages + [late]
    # Renamed again: the first id still leads to it; and a new session may take an old id.
    store.rename("after", "final")
    assert store.alias("before") == "final" and store.alias("after") == "final"
    store.create(new_meta("before"), [])
    assert store.alias("after") == "final" and store.exists("before")


def test_rename_refuses_a_taken_or_missing_id(store):
    store.create(new_meta("a"), conversation(1))
    store.create(new_meta("b"), conversation(2))
    with pytest.raises(SessionExists):
        store.rename("a", "b")
    with pytest.raises(SessionNotFound):
        store.rename("missing", "c")
    with pytest.raises(UsageError):
        store.rename("a", "../evil")
    assert len(store.load("a").messages) == 2 and len(store.load("b").messages) == 4
    assert store.aliases() == {}


def test_appends_racing_a_rename_lose_nothing(backend):
    """Writers keep appending under the old id while the session is renamed: every record
    ends up in the renamed session, each writer's in its order."""
    store = backend.store()
    store.create(new_meta("busy"), [])
    writers, each = 4, 60
    script = writer_script(backend, each)
    procs = [subprocess.Popen([sys.executable, "-c", script, f"w{n}"]) for n in range(writers)]
    try:
        while store.summary("busy").messages < writers:  # every writer is under way
            assert all(p.poll() is None for p in procs), "a writer ended before the rename"
        store.rename("busy", "calm")
    finally:
        codes = [p.wait(timeout=600) for p in procs]
    assert codes == [0] * writers
    contents = [m.content for m in store.load("calm").messages]
    assert len(contents) == writers * each
    for n in range(writers):
        assert [c for c in contents if c.startswith(f"w{n}:")] == [f"w{n}:{i}"
                                                                   for i in range(each)]
    assert store.summary("calm").messages == writers * each
    assert not store.exists("busy")


# -- session semantics over each store --------------------------------------------------------


class Clock:
    def __init__(self, t: float = T0):
        self.t = t

    def __call__(self) -> float:
        self.t += 0.001
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make_sessions(backend, tmp_path, clock):
    def make(**config):
        base = load({"HOME": str(tmp_path / "home")})
        return Sessions(backend.store(), replace(base, session_dir=backend.root, **config),
                        now=clock, audit=AuditLog(tmp_path / "home" / ".aish" / "audit.log"))

    return make


@pytest.fixture
def sessions(make_sessions):
    return make_sessions()


TEAM = roster({})


def test_a_session_remembers_across_instances(sessions, make_sessions):
    session = sessions.create("apollo")
    provider = Scripted("Hello Bob")
    session.exchange(TEAM["apollo"], "my name is Bob", provider)
    again = make_sessions().open("apollo", session.id)
    provider2 = Scripted("You are Bob")
    again.exchange(TEAM["apollo"], "what is my name?", provider2)
    sent = [m.content for m in provider2.chats[0]]
    assert "my name is Bob" in sent and "Hello Bob" in sent
    loaded = sessions.store.load(session.id)
    assert [m.content for m in loaded.messages] == ["my name is Bob", "Hello Bob",
                                                    "what is my name?", "You are Bob"]
    assert loaded.messages[1].usage == Usage(5, 2)


def test_a_failed_reply_keeps_the_message_unanswered(sessions):
    session = sessions.create("apollo")
    with pytest.raises(Exception, match="refused"):
        session.exchange(TEAM["apollo"], "keep me", Scripted(fail=1))
    assert [m.content for m in sessions.store.load(session.id).messages] == ["keep me"]
    assert session.last_unanswered().content == "keep me"
    session.exchange(TEAM["apollo"], None, Scripted("answered"))
    assert [m.content for m in sessions.store.load(session.id).messages] == ["keep me",
                                                                             "answered"]


def test_sharing_rules(sessions):
    own = sessions.create("apollo")
    with pytest.raises(Refused) as refused:
        sessions.open("athena", own.id)
    assert "apollo-ai" in str(refused.value) and "--shared" in str(refused.value)
    joined = sessions.open("athena", own.id, shared=True)
    assert joined.shared and joined.meta["participants"] == ["apollo", "athena"]
    assert sessions.open("athena", own.id).meta["participants"] == ["apollo", "athena"]
    named = sessions.open("prometheus", "feature-dev", create_missing=True)
    assert named.shared
    assert sessions.open("apollo", "feature-dev").meta["participants"] == ["prometheus",
                                                                           "apollo"]


def test_end_expire_and_revive(sessions, clock):
    s = sessions.create("apollo")
    sessions.end(s.id, "apollo")
    assert sessions.state(sessions.summary(s.id)) == ENDED
    assert [x.id for x, _ in sessions.listing()] == []
    assert [(x.id, st) for x, st in sessions.listing(include_all=True)] == [(s.id, ENDED)]
    sessions.open("apollo", s.id)
    assert sessions.state(sessions.summary(s.id)) == ACTIVE
    clock.advance(61 * 60)
    assert sessions.state(sessions.summary(s.id)) == EXPIRED
    assert sessions.listing() == []
    sessions.open("apollo", s.id)
    assert sessions.state(sessions.summary(s.id)) == ACTIVE


def test_at_most_max_sessions_active(make_sessions):
    sessions = make_sessions(max_sessions=3)
    made = [sessions.create("apollo") for _ in range(3)]
    with pytest.raises(LimitError) as full:
        sessions.create("apollo")
    assert "--end-session" in str(full.value) and "--cleanup-sessions" in str(full.value)
    sessions.end(made[0].id)
    sessions.create("apollo")
    assert len(sessions.store.ids()) == 4  # nothing was deleted to make room


def test_missing_sessions(sessions):
    with pytest.raises(SessionNotFound, match="nope"):
        sessions.open("apollo", "nope")
    created = sessions.open("apollo", "nope", create_missing=True)
    assert created.id == "nope" and sessions.store.exists("nope")


def test_rewrite_keeps_a_backup_and_is_audited(sessions, backend, tmp_path):
    s = sessions.create("apollo", messages=conversation(3))
    loaded = sessions.store.load(s.id)
    backup = sessions.rewrite(s.id, loaded.meta, loaded.messages[-2:], "prune", ai="apollo",
                              since=loaded.mark)
    assert len(sessions.store.load(s.id).messages) == 2
    assert backend.backup_bytes(sessions.store, backup).count(b'"t":"msg"') == 6
    entries = [json.loads(line) for line in
               (tmp_path / "home" / ".aish" / "audit.log").read_text().splitlines()]
    assert [e["action"] for e in entries] == ["create", "prune"]
    assert entries[-1]["backup"] == backup and entries[-1]["session"] == s.id


def test_context_window_settings_persist(sessions, make_sessions):
    s = sessions.create("apollo", context_window=3)
    s.extend_context(2)
    assert make_sessions().open("apollo", s.id).context_window == 5


def test_auto_save_every_n(sessions):
    s = sessions.create("apollo")
    s.auto_save = 4
    s.exchange(TEAM["apollo"], "one", Scripted("1"))
    s.exchange(TEAM["apollo"], "two", Scripted("2"))
    stored = sessions.store.summary(s.id).messages
    assert stored + s.unsaved == 4 and s.unsaved > 0  # the last reply waits for the next write
    s.save()
    assert [m.content for m in sessions.store.load(s.id).messages] == ["one", "1", "two", "2"]


def test_timestamps_of_stored_sessions(sessions, clock):
    s = sessions.create("apollo")
    before = sessions.summary(s.id).updated
    clock.advance(30)
    s.exchange(TEAM["apollo"], "later", Scripted())
    assert sessions.summary(s.id).updated >= before + 30


def test_store_errors_name_the_problem_not_a_traceback(backend):
    if not backend.redis:
        root = backend.root
        root.parent.mkdir(parents=True, exist_ok=True)
        root.write_text("not a directory")
        with pytest.raises(StorageError):
            backend.store().create(new_meta("x"), [])
    else:
        with pytest.raises(StorageError, match="cannot reach Redis"):
            RedisStore("redis://127.0.0.1:1/0").create(new_meta("x"), [])

