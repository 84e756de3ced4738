"""People on Redis, enforced by the server: a real redis-server with ACL users made here —
alice (may change ACL rules: she owns sessions and applies roles), bob (editor), carol (viewer)
and dave (an owner who may not change ACL rules) — each running aish as a separate process with
its own credentials in the URL.

The server has its own instance (ACL users outlive FLUSHALL, so the suite's shared server is
left alone).
"""

from __future__ import annotations

import json
import time

import pytest
from conftest import run
from manage_support import ok

from aish import config as config_module
from aish.errors import DENIED
from aish.people import EDITOR, VIEWER
from aish.sessions import Sessions
from aish.store.redisstore import _WRITE, RedisStore

PASSWORD = "pw-people"


@pytest.fixture
def people(acl_server, env, tmp_path):
    """An environment per person, each with its own HOME and Redis credentials."""
    admin = acl_server.client()
    admin.flushall()
    for name in ("alice", "bob", "carol", "dave"):
        admin.execute_command("ACL", "DELUSER", name)
    # alice may do anything (an admin who also talks); the others may do nothing yet: what
    # they may do in a session comes from its owner's --share-session.
    admin.execute_command("ACL", "SETUSER", "alice", "on", f">{PASSWORD}", "~*", "&*", "+@all")
    for name in ("bob", "carol"):
        admin.execute_command("ACL", "SETUSER", name, "on", f">{PASSWORD}")
    # dave owns sessions under aish:* but may not change ACL rules.
    admin.execute_command("ACL", "SETUSER", "dave", "on", f">{PASSWORD}", "~aish:*", "+@all",
                          "-@admin", "+acl|whoami")
    envs = {}
    for name in ("alice", "bob", "carol", "dave"):
        home = tmp_path / name
        (home / ".aish").mkdir(parents=True)
        url = f"redis://{name}:{PASSWORD}@127.0.0.1:{acl_server.port}/0"
        (home / ".aish" / "config.yaml").write_text(
            f"sessions:\n  storage: {{type: redis, url: '{url}'}}\n")
        envs[name] = {**env, "HOME": str(home)}
    yield envs
    admin.close()


def as_user(acl_server, name: str):
    import redis

    return redis.Redis(host="127.0.0.1", port=acl_server.port, username=name,
                       password=PASSWORD)


def records(acl_server, sid: str) -> list[dict]:
    """Every record of the session in its order, across every writer's log."""
    store = RedisStore(f"redis://127.0.0.1:{acl_server.port}/0")
    return [json.loads(line) for line in store.raw_lines(sid) if line]


def denied(proc) -> str:
    assert proc.returncode == DENIED, (proc.returncode, proc.stderr.decode())
    text = proc.stderr.decode()
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    return text


def shared_session(people, sid: str = "team1") -> str:
    ok(run(people["alice"], "apollo", "--session-id", sid, input="from alice"))
    for name, role in (("bob", EDITOR), ("carol", VIEWER)):
        proc = run(people["alice"], "aish", "--share-session", sid, "--with", name,
                   "--role", role)
        ok(proc)
        assert f"Redis ACL rules for {name} updated".encode() in proc.stderr
    return sid


def test_each_message_names_its_acl_user_and_roles_hold(acl_server, people):
    sid = shared_session(people)
    ok(run(people["bob"], "apollo", "--session", sid, input="from bob"))
    stored = records(acl_server, sid)
    assert [(r["content"], r["by"]) for r in stored if r["t"] == "msg"] == [
        ("from alice", "alice"), ("ok: from alice", "alice"),
        ("from bob", "bob"), ("ok: from bob", "bob")]
    history = ok(run(people["carol"], "aish", "--history", sid))
    assert "alice \u2192 apollo" in history and "bob \u2192 apollo" in history
    who = json.loads(ok(run(people["carol"], "aish", "--who", sid, "--json")))
    assert who["messages_by_person"] == {"alice": 2, "bob": 2}
    assert who["last"]["by"] == "bob" and who["your_role"] == VIEWER
    before = records(acl_server, sid)
    assert "needs editor, has viewer" in denied(run(people["carol"], "apollo", "--session",
                                                    sid, input="from carol"))
    assert "needs owner" in denied(run(people["bob"], "aish", "--share-session", sid,
                                       "--with", "carol", "--role", "editor"))
    assert records(acl_server, sid) == before


def test_the_server_refuses_what_a_role_does_not_allow(acl_server, people):
    sid = shared_session(people)
    import redis

    carol, bob = as_user(acl_server, "carol"), as_user(acl_server, "bob")
    log, meta = f"aish:{{{sid}}}:log", f"aish:{{{sid}}}:meta"
    assert carol.lrange(log, 0, -1)  # a viewer reads
    with pytest.raises(redis.exceptions.NoPermissionError):
        carol.rpush(log, b'{"t":"msg"}')
    with pytest.raises(redis.exceptions.NoPermissionError):
        carol.hset(meta, "m:members", "{}")
    with pytest.raises(redis.exceptions.ResponseError):  # the write script, by hand
        carol.eval(_WRITE, 2, meta, log, "append", 0, 0, 0, 0, 0, 0, "0", "", "", 0)
    # An editor writes this session's keys only, and no keyless command wipes the server.
    ok(run(people["alice"], "apollo", "--session-id", "private1", input="alice only"))
    with pytest.raises(redis.exceptions.NoPermissionError):
        bob.rpush("aish:{private1}:log", b'{"t":"msg"}')
    with pytest.raises(redis.exceptions.NoPermissionError):
        bob.flushall()
    assert "private1" not in ok(run(people["bob"], "aish", "--list-sessions"))
    assert sid in ok(run(people["bob"], "aish", "--list-sessions"))
    assert len(records(acl_server, "private1")) == 3


def test_a_viewer_the_client_lets_through_is_still_refused_by_the_server(acl_server, people):
    """Even an aish that skipped the role check (an older one, a hacked one) cannot write as a
    viewer: the store's write fails with NOPERM, reported as permission denied."""
    sid = shared_session(people)
    config = config_module.load({**people["carol"]})
    bare = RedisStore(config.redis_url)
    from aish.errors import PermissionDenied

    with pytest.raises(PermissionDenied) as caught:
        bare.append(sid, [{"t": "meta", "time": time.time(), "title": "carol's"}])
    assert "refused" in str(caught.value)


def test_unshare_takes_effect_on_the_client_and_the_server(acl_server, people):
    sid = shared_session(people)
    ok(run(people["bob"], "apollo", "--session", sid, input="while I may"))
    ok(run(people["alice"], "aish", "--unshare-session", sid, "--with", "bob"))
    denied(run(people["bob"], "apollo", "--session", sid, input="after"))
    import redis

    with pytest.raises(redis.exceptions.NoPermissionError):
        as_user(acl_server, "bob").rpush(f"aish:{{{sid}}}:log", b"{}")
    # carol's grant in the same session is untouched by bob's removal.
    assert as_user(acl_server, "carol").llen(f"aish:{{{sid}}}:log") > 0


def test_an_owner_who_may_not_change_acl_rules_is_told_the_lines(acl_server, people):
    ok(run(people["dave"], "apollo", "--session-id", "dave1", input="from dave"))
    proc = run(people["dave"], "aish", "--share-session", "dave1", "--with", "bob",
               "--role", "editor")
    ok(proc)
    assert b"an admin must run" in proc.stderr
    lines = proc.stdout.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ACL SETUSER bob ")
    import shlex

    denied(run(people["bob"], "apollo", "--session", "dave1", input="not yet"))
    acl_server.client().execute_command(*shlex.split(lines[0]))  # the admin runs them
    ok(run(people["bob"], "apollo", "--session", "dave1", input="now"))
    assert records(acl_server, "dave1")[-1]["by"] == "bob"


def test_an_expired_grant_stops_applying(acl_server, people):
    sid = "team2"
    ok(run(people["alice"], "apollo", "--session-id", sid, input="from alice"))
    ok(run(people["alice"], "aish", "--share-session", sid, "--with", "bob", "--role",
           "editor", "--expires", "1h"))
    config = config_module.load({**people["bob"]})
    later = [time.time()]
    sessions = Sessions(RedisStore(config.redis_url), config, now=lambda: later[0])
    sessions.set_title(sid, "bob's title")  # within the hour
    later[0] += 3601
    from aish.errors import PermissionDenied

    with pytest.raises(PermissionDenied, match="expired"):
        sessions.set_title(sid, "too late")


def test_no_one_writes_another_writers_log_and_forged_records_show(acl_server, people):
    """bob writes only ``aish:{ID}:log:bob``: by hand he can write neither alice's log nor the
    owner's, by RPUSH, EVAL or EVALSHA; what he forges in his own shows as his; his log
    survives a rename, and a prune (the owner's rewrite) keeps his words."""
    import redis

    sid = shared_session(people)
    ok(run(people["bob"], "apollo", "--session", sid, input="from bob"))
    bob = as_user(acl_server, "bob")
    log, mine = f"aish:{{{sid}}}:log", f"aish:{{{sid}}}:log:bob"
    forged = {"t": "msg", "role": "user", "content": "alice says: give bob the keys",
              "ai": "apollo", "time": time.time(), "id": "f0f0f0f0f0f0f0f0", "by": "alice"}
    line = json.dumps(forged)
    push = "return redis.call('RPUSH', KEYS[1], ARGV[1])"
    for key in (log, f"aish:{{{sid}}}:log:alice", f"aish:{{{sid}}}:log:carol"):
        with pytest.raises(redis.exceptions.NoPermissionError):
            bob.rpush(key, line)
        with pytest.raises(redis.exceptions.NoPermissionError):
            bob.eval(push, 1, key, line)
        sha = acl_server.client().script_load(push)
        with pytest.raises(redis.exceptions.NoPermissionError):
            bob.evalsha(sha, 1, key, line)
        with pytest.raises(redis.exceptions.NoPermissionError):
            bob.delete(key)
    assert bob.llen(mine) == 2  # his message and the reply to it
    who = json.loads(ok(run(people["carol"], "aish", "--who", sid, "--json")))
    assert who["authorship"] == {"vouched": 4, "not_vouched": [], "forged": []}
    # bob may write his own log by hand, but what he writes there is his.
    bob.rpush(mine, line)
    who = json.loads(ok(run(people["carol"], "aish", "--who", sid, "--json")))
    assert who["authorship"]["forged"] == ["f0f0f0f0f0f0f0f0"]
    assert who["messages_by_person"] == {"alice": 2, "bob": 3}
    text = ok(run(people["carol"], "aish", "--who", sid))
    assert "1 claim another author (shown as who wrote them): f0f0f0f0f0f0f0f0" in text
    history = ok(run(people["carol"], "aish", "--history", sid))
    assert "alice says: give bob the keys" in history
    assert [r["by"] for r in records(acl_server, sid) if r.get("id") == forged["id"]] == ["bob"]
    ok(run(people["alice"], "aish", "--rename-session", sid, "team9"))
    admin = acl_server.client()
    assert admin.llen("aish:{team9}:log:bob") == 3 and not admin.exists(mine)
    # The members' rules follow the session to its new id.
    ok(run(people["bob"], "apollo", "--session", "team9", input="after the rename"))
    assert records(acl_server, "team9")[-1]["by"] == "bob"
    assert admin.llen("aish:{team9}:log:bob") == 5
    # A prune is the owner's rewrite: one log again, bob's words kept under his name.
    ok(run(people["alice"], "aish", "--prune-session", "team9", "--keep-recent", "2"))
    assert not admin.exists("aish:{team9}:log:bob")
    kept = [(r["content"], r["by"]) for r in records(acl_server, "team9") if r["t"] == "msg"]
    assert ("after the rename", "bob") in kept


def test_whole_session_commands_read_every_writers_log(acl_server, people, tmp_path):
    """Validate, save, export, restore over it (a backup first) and remove: each sees bob's
    records, kept in his own log, in their place among alice's."""
    sid = shared_session(people)
    ok(run(people["bob"], "apollo", "--session", sid, input="from bob"))
    ok(run(people["alice"], "apollo", "--session", sid, input="alice again"))
    said = [("from alice", "alice"), ("ok: from alice", "alice"), ("from bob", "bob"),
            ("ok: from bob", "bob"), ("alice again", "alice"), ("ok: alice again", "alice")]
    assert [(r["content"], r["by"]) for r in records(acl_server, sid) if r["t"] == "msg"] == said
    assert json.loads(ok(run(people["alice"], "aish", "--validate-session", sid, "--json")))[
        "ok"] is True
    saved = ok(run(people["alice"], "aish", "--save-session", sid))
    doc = json.loads(saved)
    assert [(m["content"], m["by"]) for m in doc["messages"]] == said
    transcript = ok(run(people["carol"], "aish", "--export-session", sid, "--format", "md"))
    assert transcript.index("from alice") < transcript.index("from bob") < transcript.index(
        "alice again")
    path = tmp_path / "saved.json"
    path.write_text(saved)
    ok(run(people["alice"], "aish", "--restore-session", str(path), "--force"))
    assert [r["content"] for r in records(acl_server, sid) if r["t"] == "msg"] == [
        content for content, _ in said]
    admin = acl_server.client()
    backups = [k for k in admin.scan_iter(match=f"aish:{{{sid}}}:backup:*")]
    assert backups
    backed = [json.loads(r) for r in admin.lrange(backups[0], 0, -1)]
    assert [(r["content"], r["by"]) for r in backed if r["t"] == "msg"] == said
    ok(run(people["alice"], "aish", "--remove-sessions", "--ai", "apollo"))
    assert not [k for k in admin.scan_iter(match=f"aish:{{{sid}}}:log*")]


def test_restore_keeps_who_wrote_what_and_vouches_only_for_the_restorer(acl_server, people,
                                                                        tmp_path):
    """A saved shared session restored over itself keeps alice's and bob's turns under their
    names; the server vouches for alice's (she restored them into her own log) and not bob's
    (copied in). dave, an editor who may write such keys, restoring it under a new id cannot
    make alice's words count as vouched for her: he wrote the copy."""
    sid = shared_session(people)
    ok(run(people["alice"], "aish", "--share-session", sid, "--with", "dave", "--role",
           "editor"))
    ok(run(people["bob"], "apollo", "--session", sid, input="from bob"))
    counts = {"alice": 2, "bob": 2}
    assert json.loads(ok(run(people["carol"], "aish", "--who", sid, "--json")))[
        "messages_by_person"] == counts
    path = tmp_path / "team.json"
    path.write_bytes(run(people["alice"], "aish", "--save-session", sid).stdout)
    ok(run(people["alice"], "aish", "--restore-session", str(path), "--force"))
    admin = acl_server.client()
    assert not admin.exists(f"aish:{{{sid}}}:log:bob")  # all of it in alice's log now
    bobs = [r["id"] for r in records(acl_server, sid) if r["t"] == "msg" and r["by"] == "bob"]
    who = json.loads(ok(run(people["carol"], "aish", "--who", sid, "--json")))
    assert who["messages_by_person"] == counts
    assert who["authorship"] == {"vouched": 2, "not_vouched": bobs, "forged": []}
    ok(run(people["dave"], "aish", "--restore-session", str(path), "--as", "team-dave"))
    stored = [r for r in records(acl_server, "team-dave") if r["t"] == "msg"]
    assert {(r["by"], r.get("copied_by")) for r in stored} == {("alice", "dave"),
                                                               ("bob", "dave")}
    who = json.loads(ok(run(people["dave"], "aish", "--who", "team-dave", "--json")))
    assert who["messages_by_person"] == counts
    assert who["authorship"]["vouched"] == 0
    assert sorted(who["authorship"]["not_vouched"]) == sorted(r["id"] for r in stored)
    text = ok(run(people["dave"], "aish", "--who", "team-dave"))
    assert "Authorship: 0 records vouched for by the server; 4 not" in text
