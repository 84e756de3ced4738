"""Branches through the management commands: info, validate, repair, prune, save/restore, fork,
sync — every one keeps the tree (parents and named branches) intact or mends it."""

from __future__ import annotations

import json

from conftest import run
from tree_support import ok

from aish.store.filestore import FileStore
from aish.store.refs import MAIN


def say(env, sid, text, *flags):
    return ok(env, "apollo", "--session", sid, *flags, input=text)


def branched(env) -> str:
    """main: q1 a1 q2 a2 q3 a3; alt: q1 a1 side a(side)."""
    sid = ok(env, "apollo", "--session", "--get-id", input="q1").stdout.decode().strip()
    say(env, sid, "q2")
    say(env, sid, "q3")
    ok(env, "aish", "--branch-session", sid, "alt", "--at", "2")
    say(env, sid, "side", "--branch", "alt")
    return sid


def paths(sessions_dir, sid) -> dict[str, list[str]]:
    loaded = FileStore(sessions_dir).load(sid)
    return {name: [m.content for m in loaded.path(loaded.tree.head(name))]
            for name in loaded.tree.names()}


def test_info_names_branches_and_validate_is_clean(env, server):
    sid = branched(env)
    info = json.loads(ok(env, "aish", "--session-info", sid, "--json").stdout)
    assert info["branches"] == ["main", "alt"]
    assert "Branches: 2 (main, alt)" in ok(env, "aish", "--session-info", sid).stdout.decode()
    assert ok(env, "aish", "--validate-session", sid).returncode == 0


def test_validate_reports_and_repair_mends_broken_links(env, server, sessions_dir):
    sid = branched(env)
    log = sessions_dir / f"{sid}.jsonl"
    lines = log.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    # A parent that is not stored, and a branch pointing at a message that is not stored.
    victim = next(i for i, r in enumerate(records) if r.get("content") == "q3")
    records[victim]["parent"] = "0123456789abcdef"
    records.append({"t": "ref", "name": "ghost", "to": "fedcba9876543210", "op": "branch"})
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = run(env, "aish", "--validate-session", sid)
    assert result.returncode == 1
    report = result.stdout.decode() + result.stderr.decode()
    assert "missing parent" in report and "bad ref" in report
    ok(env, "aish", "--repair-session", sid)
    assert ok(env, "aish", "--validate-session", sid).returncode == 0
    loaded = FileStore(sessions_dir).load(sid)
    by_content = {m.content: m for m in loaded.messages}
    # The lost parent is replaced by the message stored before it; no message is dropped.
    assert by_content["q3"].parent == by_content["ok: q2"].id
    assert len(loaded.messages) == 8 and "ghost" not in loaded.tree.refs
    after = paths(sessions_dir, sid)
    assert after["main"][:4] == ["q1", "ok: q1", "q2", "ok: q2"]
    assert after["alt"] == ["q1", "ok: q1", "side", "ok: side"]


def test_prune_keeps_branches_pointing_at_kept_messages(env, server, sessions_dir):
    sid = branched(env)
    ok(env, "aish", "--prune-session", sid, "--keep-recent", "2")
    assert ok(env, "aish", "--validate-session", sid).returncode == 0
    after = paths(sessions_dir, sid)
    assert after["alt"] == ["side", "ok: side"]
    assert after["main"] == ["q3", "ok: q3"]


def test_save_and_restore_keep_the_tree(env, server, sessions_dir):
    sid = branched(env)
    before = paths(sessions_dir, sid)
    doc = ok(env, "aish", "--save-session", sid).stdout
    assert json.loads(doc)["refs"]["alt"]
    ok(env, "aish", "--restore-session", "--as", "copy", input=doc.decode())
    assert paths(sessions_dir, "copy") == before


def test_restore_of_a_backup_log_keeps_the_tree(env, server, sessions_dir):
    sid = branched(env)
    before = paths(sessions_dir, sid)
    ok(env, "aish", "--prune-session", sid, "--keep-recent", "1")
    backup = sorted((sessions_dir / "backup").glob(f"{sid}-*-prune.jsonl"))[-1]
    ok(env, "aish", "--restore-session", str(backup), "--as", "back")
    assert paths(sessions_dir, "back") == before


def test_fork_copies_the_checked_out_branch(env, server, sessions_dir):
    sid = branched(env)
    ok(env, "aish", "--checkout", sid, "alt")
    ok(env, "aish", "--fork-session", sid, "--at", "3", "--output", "forked")
    assert paths(sessions_dir, "forked") == {MAIN: ["q1", "ok: q1", "side"]}


def test_list_branches_plain_and_json(env, server):
    sid = branched(env)
    text = ok(env, "aish", "--list-branches", sid).stdout.decode().splitlines()
    assert text[0].startswith("* main") and "alt" in text[1]
    rows = json.loads(ok(env, "aish", "--list-branches", sid, "--json").stdout)
    assert [r["name"] for r in rows] == ["main", "alt"] and all(r["head"] for r in rows)


def test_every_branch_command_on_redis(env, server, redis_url):
    from manage_support import select_redis

    from aish.store.redisstore import RedisStore

    select_redis(env, redis_url)
    sid = branched(env)
    say(env, sid, "more on alt", "--branch", "alt")
    rows = {r["name"]: r for r in json.loads(ok(env, "aish", "--list-branches", sid,
                                                "--json").stdout)}
    assert rows["main"]["messages"] == 6 and rows["alt"]["messages"] == 6
    ok(env, "aish", "--undo", sid, "--branch", "alt")
    say(env, sid, "again", "--branch", "alt")
    assert [m["content"] for m in server.last_messages[1:]] == [
        "q1", "ok: q1", "side", "ok: side", "again"]
    ok(env, "aish", "--undo", sid)
    ok(env, "aish", "--redo", sid)
    server.reply = lambda body: "another"
    ok(env, "apollo", "--session", sid, "--regenerate")
    say(env, sid, "edited q1", "--edit", "1")
    assert [m["content"] for m in server.last_messages[1:]] == ["edited q1"]
    ok(env, "aish", "--merge-branch", sid, "alt", "--into", "main", "--mode", "pick",
       "--pick", "3..4")
    ok(env, "aish", "--validate-session", sid)
    loaded = RedisStore(redis_url).load(sid)
    main = [m.content for m in loaded.path(loaded.tree.head(MAIN))]
    assert main == ["edited q1", "another", "side", "ok: side"]
    store = RedisStore(redis_url)
    assert [m.content for m in store.path(sid, None, 0)] == main  # the walk agrees


def test_sync_carries_branches_and_keeps_both_sides_of_a_divergence(env, server, redis_url,
                                                                    sessions_dir):
    from aish.store.redisstore import RedisStore

    sid = branched(env)
    url = ["--url", redis_url]
    ok(env, "aish", "--sync-sessions", *url)
    remote = RedisStore(redis_url).load(sid)
    assert {n: [m.content for m in remote.path(remote.tree.head(n))]
            for n in remote.tree.names()} == paths(sessions_dir, sid)
    # Each side moves main on its own; after sync both paths are kept.
    say(env, sid, "local only")
    from manage_support import select_redis

    remote_env = {**env, "HOME": env["HOME"]}
    select_redis(remote_env, redis_url)
    say(remote_env, sid, "remote only")
    cfg = sessions_dir.parent / "config.yaml"
    cfg.write_text(cfg.read_text().split("sessions:\n  storage:")[0])
    ok(env, "aish", "--sync-sessions", *url)
    after = paths(sessions_dir, sid)
    assert after["main"][-2:] == ["local only", "ok: local only"]
    assert after["main.redis"][-2:] == ["remote only", "ok: remote only"]
    ok(env, "aish", "--checkout", sid, "main.redis")  # a name every command takes
    assert ok(env, "aish", "--validate-session", sid).returncode == 0


def test_hostile_links_never_hang_or_crash(env, server, sessions_dir):
    """A loop of parents (with position hints that lead straight round it) and refs with names
    and ids no command accepts: reading stops, validate reports, commands stay one-line."""
    sid = branched(env)
    log = sessions_dir / f"{sid}.jsonl"
    data = log.read_bytes()
    a = {"t": "msg", "role": "assistant", "content": "A", "ai": "apollo", "time": 2e9,
         "id": "aaaaaaaaaaaaaaaa", "parent": "bbbbbbbbbbbbbbbb", "pp": len(data) + 200}
    b = {"t": "msg", "role": "assistant", "content": "B", "ai": "apollo", "time": 2e9,
         "id": "bbbbbbbbbbbbbbbb", "parent": "aaaaaaaaaaaaaaaa", "pp": len(data)}
    line_a = json.dumps(a) + "\n"
    b["pp"] = len(data)
    a["pp"] = len(data) + len(line_a)
    line_a = json.dumps(a) + "\n"
    records = [line_a, json.dumps(b) + "\n",
               json.dumps({"t": "ref", "name": "loop", "to": "bbbbbbbbbbbbbbbb"}) + "\n",
               json.dumps({"t": "ref", "name": "sp ace", "to": ""}) + "\n",
               json.dumps({"t": "ref", "name": "x", "to": "id with space"}) + "\n"]
    log.write_bytes(data + "".join(records).encode())
    store = FileStore(sessions_dir)
    loaded = store.load(sid)
    assert "sp ace" not in loaded.tree.refs and "x" not in loaded.tree.refs
    assert [m.content for m in store.path(sid, loaded.tree.head("loop"), 0)] in (
        ["A", "B"], ["B", "A"], ["B"])  # it ends, whatever the loop
    result = run(env, "aish", "--validate-session", sid)
    assert result.returncode == 1 and b"Traceback" not in result.stderr
    say(env, sid, "still fine", "--branch", "loop")
    ok(env, "aish", "--repair-session", sid)
    assert ok(env, "aish", "--validate-session", sid).returncode == 0


def test_redis_heads_follow_what_an_older_aish_appended(redis_url, home):
    """An older aish's write script appends without touching the branch heads in the hash:
    the next reader or writer folds them again from the log, so its messages stay on main."""
    import redis as redis_lib
    from manage_support import sessions_for

    from aish.messages import ASSISTANT, USER, Message
    from aish.sessions import Sessions
    from aish.store.redisstore import RedisStore

    store = RedisStore(redis_url)
    sessions = Sessions(store, sessions_for(home).config)
    session = sessions.create("apollo", "mixed", named=True)
    session.add(Message(USER, "new q1", "apollo", 1.0))
    session.add(Message(ASSISTANT, "new a1", "apollo", 2.0))
    session.save()
    client = redis_lib.Redis.from_url(redis_url)
    for text, role, t in (("old q2", "user", 3.0), ("old a2", "assistant", 4.0)):
        # What the previous version's script wrote: the record and its counters, nothing else.
        old = Message(role, text, "apollo", t).to_record()
        old.pop("parent", None)
        old.pop("ref", None)
        client.rpush("aish:{mixed}:log", json.dumps(old))
        client.hincrby("aish:{mixed}:meta", "n:messages", 1)
    assert [m.content for m in store.path("mixed", None, 0)] == [
        "new q1", "new a1", "old q2", "old a2"]
    again = sessions.open("apollo", "mixed")
    again.add(Message(USER, "new q3", "apollo", 5.0))
    again.save()
    assert [m.content for m in store.path("mixed", None, 0)][-2:] == ["old a2", "new q3"]
    loaded = store.load("mixed")
    assert [m.content for m in loaded.path(loaded.tree.head("main"))] == [
        "new q1", "new a1", "old q2", "old a2", "new q3"]
