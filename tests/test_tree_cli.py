"""The conversation tree through the real program: branch, checkout, talk on a branch, undo,
redo, regenerate, edit, merge — each checked by what the model is sent and what is stored.

The scripted server answers ``ok: <last user message>`` and records every request, so "the
context of a branch is its path from the root" is checked on the wire.
"""

from __future__ import annotations

import json

import pytest
from conftest import run
from tree_support import ok

from aish.store.filestore import FileStore
from aish.store.refs import MAIN


def fails(env, code, *args, input=None):
    result = run(env, *args, input=input)
    assert result.returncode == code, (result.returncode, result.stderr.decode())
    line = result.stderr.decode().strip()
    assert "Traceback" not in line and len(line.splitlines()) == 1, line
    return line


def sent(server) -> list[str]:
    return [m["content"] for m in server.last_messages[1:]]


def say(env, sid, text, *flags):
    return ok(env, "apollo", "--session", sid, *flags, input=text)


def start(env, server) -> str:
    sid = ok(env, "apollo", "--session", "--get-id", input="q1").stdout.decode().strip()
    say(env, sid, "q2")
    say(env, sid, "q3")
    return sid


def branches(env, sid) -> dict[str, dict]:
    rows = json.loads(ok(env, "aish", "--list-branches", sid, "--json").stdout)
    return {row["name"]: row for row in rows}


def store(sessions_dir) -> FileStore:
    return FileStore(sessions_dir)


def test_branch_at_a_message_talks_with_the_path_to_it(env, server, sessions_dir):
    sid = start(env, server)
    ok(env, "aish", "--branch-session", sid, "alt", "--at", "2")
    say(env, sid, "other way", "--branch", "alt")
    assert sent(server) == ["q1", "ok: q1", "other way"]
    say(env, sid, "on main")  # main is untouched by the branch
    assert sent(server)[:6] == ["q1", "ok: q1", "q2", "ok: q2", "q3", "ok: q3"]
    rows = branches(env, sid)
    assert rows["main"]["messages"] == 8 and rows["alt"]["messages"] == 4
    assert rows["main"]["current"] and not rows["alt"]["current"]
    loaded = store(sessions_dir).load(sid)
    assert loaded.problems == [] and len(loaded.messages) == 10


def test_checkout_is_where_later_messages_go(env, server):
    sid = start(env, server)
    ok(env, "aish", "--branch-session", sid, "b", "--at", "4")
    ok(env, "aish", "--checkout", sid, "b")
    say(env, sid, "next")
    assert sent(server) == ["q1", "ok: q1", "q2", "ok: q2", "next"]
    rows = branches(env, sid)
    assert rows["b"]["current"] and rows["b"]["messages"] == 6
    assert rows["main"]["messages"] == 6
    fails(env, 3, "aish", "--checkout", sid, "nope")


def test_talking_on_a_new_branch_creates_it_and_says_so(env, server):
    sid = start(env, server)
    result = say(env, sid, "fresh idea", "--branch", "idea")
    assert "idea" in result.stderr.decode()
    assert sent(server) == ["q1", "ok: q1", "q2", "ok: q2", "q3", "ok: q3", "fresh idea"]
    assert branches(env, sid)["idea"]["messages"] == 8
    assert branches(env, sid)["main"]["messages"] == 6


def test_undo_and_redo_move_the_head_and_delete_nothing(env, server, sessions_dir):
    sid = start(env, server)
    ok(env, "aish", "--undo", sid)
    say(env, sid, "after undo")
    assert sent(server) == ["q1", "ok: q1", "q2", "ok: q2", "after undo"]
    undone = ok(env, "aish", "--undo", sid, "2")
    assert branches(env, sid)["main"]["messages"] == 2
    assert "is back at message 2 " in undone.stderr.decode()  # numbered as the shell does
    redone = ok(env, "aish", "--redo", sid)
    assert branches(env, sid)["main"]["messages"] == 6
    assert "is at message 6 again" in redone.stderr.decode()
    fails(env, 2, "aish", "--redo", sid)
    fails(env, 2, "aish", "--undo", sid, "9")
    assert len(store(sessions_dir).load(sid).messages) == 8  # nothing deleted


def test_regenerate_keeps_both_replies(env, server, sessions_dir):
    sid = start(env, server)
    server.reply = lambda body: "second take"
    ok(env, "apollo", "--session", sid, "--regenerate")
    assert sent(server) == ["q1", "ok: q1", "q2", "ok: q2", "q3"]
    loaded = store(sessions_dir).load(sid)
    replies = [m for m in loaded.messages if m.role == "assistant"]
    assert [m.content for m in replies][-2:] == ["ok: q3", "second take"]
    assert replies[-1].parent == replies[-2].parent  # siblings
    assert loaded.path(loaded.tree.head(MAIN))[-1].content == "second take"


def test_edit_makes_a_sibling_and_follows_it(env, server, sessions_dir):
    sid = start(env, server)
    say(env, sid, "q2 rewritten", "--edit", "3")
    assert sent(server) == ["q1", "ok: q1", "q2 rewritten"]
    loaded = store(sessions_dir).load(sid)
    path = loaded.path(loaded.tree.head(MAIN))
    assert [m.content for m in path] == ["q1", "ok: q1", "q2 rewritten", "ok: q2 rewritten"]
    by_content = {m.content: m for m in loaded.messages}
    assert by_content["q2"].parent == by_content["q2 rewritten"].parent  # the original stays
    fails(env, 2, "apollo", "--session", sid, "--edit", "2", input="not mine")  # a reply
    fails(env, 2, "apollo", "--session", sid, "--edit", "99", input="nowhere")


def test_merge_fast_forward_and_refusal(env, server):
    sid = start(env, server)
    ok(env, "aish", "--branch-session", sid, "ahead")
    say(env, sid, "only on ahead", "--branch", "ahead")
    ok(env, "aish", "--merge-branch", sid, "ahead", "--into", "main", "--mode", "ff",
       "--dry-run")
    assert branches(env, sid)["main"]["messages"] == 6
    ok(env, "aish", "--merge-branch", sid, "ahead", "--into", "main", "--mode", "ff")
    assert branches(env, sid)["main"]["messages"] == 8
    say(env, sid, "main moves on")
    say(env, sid, "ahead moves on", "--branch", "ahead")
    line = fails(env, 7, "aish", "--merge-branch", sid, "ahead", "--into", "main",
                 "--mode", "ff")
    assert "main" in line


def test_merge_pick_copies_once(env, server, sessions_dir):
    sid = start(env, server)
    ok(env, "aish", "--branch-session", sid, "side", "--at", "2")
    say(env, sid, "side question", "--branch", "side")
    ok(env, "aish", "--merge-branch", sid, "side", "--into", "main", "--mode", "pick",
       "--pick", "3..4")
    assert branches(env, sid)["main"]["messages"] == 8
    again = ok(env, "aish", "--merge-branch", sid, "side", "--into", "main", "--mode", "pick",
               "--pick", "3..4")
    assert "Nothing" in again.stderr.decode()
    assert branches(env, sid)["main"]["messages"] == 8
    say(env, sid, "then")
    assert sent(server)[-3:] == ["side question", "ok: side question", "then"]


def test_merge_summary_adds_a_note_the_context_includes(env, server):
    sid = start(env, server)
    ok(env, "aish", "--branch-session", sid, "research", "--at", "2")
    say(env, sid, "look into caching", "--branch", "research")
    server.reply = lambda body: "caching helps"
    before = len(server.requests)
    ok(env, "aish", "--merge-branch", sid, "research", "--into", "main", "--mode", "summary",
       "--dry-run")
    assert len(server.requests) == before  # a dry run asks no model and stores nothing
    result = ok(env, "aish", "--merge-branch", sid, "research", "--into", "main",
                "--mode", "summary", "--yes")
    assert "caching helps" in result.stdout.decode()
    server.reply = lambda body: "fine"
    say(env, sid, "continue")
    assert any("Summary of branch research" in text for text in sent(server))
    again = ok(env, "aish", "--merge-branch", sid, "research", "--into", "main",
               "--mode", "summary", "--yes")
    assert "Nothing" in again.stderr.decode()


@pytest.mark.parametrize("bad", [["--branch-session", "{sid}", "../x"],
                                 ["--branch-session", "{sid}", "main"],
                                 ["--branch-session", "{sid}", "n", "--at", "99"],
                                 ["--merge-branch", "{sid}", "main", "--into", "main"],
                                 ["--merge-branch", "{sid}", "nope", "--into", "main"],
                                 ["--merge-branch", "{sid}", "main", "--mode", "pick"]])
def test_bad_branch_commands_are_one_line_errors(env, server, bad, sessions_dir):
    sid = start(env, server)
    before = (sessions_dir / f"{sid}.jsonl").read_bytes()
    result = run(env, "aish", *[b.format(sid=sid) for b in bad])
    assert result.returncode in (2, 3, 7), result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()
    assert (sessions_dir / f"{sid}.jsonl").read_bytes() == before


def _tree_with_a_real_model(env, sessions_dir):
    """Branch, talk on it, regenerate and edit, answered by a real model."""
    sid = ok(env, "apollo", "--session", "--get-id", input="Name a colour.").stdout.decode()
    sid = sid.strip()
    say(env, sid, "Name a fruit.")
    say(env, sid, "Name a tree.", "--branch", "trees")
    ok(env, "apollo", "--session", sid, "--regenerate")
    say(env, sid, "Name an animal.", "--edit", "3")
    loaded = store(sessions_dir).load(sid)
    main = loaded.path(loaded.tree.head(MAIN))
    trees = loaded.path(loaded.tree.head("trees"))
    assert [m.content for m in main if m.role == "user"] == ["Name a colour.", "Name an animal."]
    assert [m.content for m in trees if m.role == "user"] == [
        "Name a colour.", "Name a fruit.", "Name a tree."]
    assert all(m.content.strip() for m in main + trees if m.role == "assistant")
    # colour, fruit and tree with their replies, a second reply to fruit, the edit and its
    # reply: nothing dropped.
    assert len(loaded.messages) == 9
    assert ok(env, "aish", "--validate-session", sid).returncode == 0


@pytest.mark.model
def test_tree_with_the_embedded_model(home, sessions_dir):
    (sessions_dir.parent / "config.yaml").write_text(
        "providers:\n  local: {max_tokens: 8, temperature: 0}\n")
    _tree_with_a_real_model(home, sessions_dir)


@pytest.mark.model
def test_tree_through_llama_cpp_server(home, llama_server, sessions_dir):
    (sessions_dir.parent / "config.yaml").write_text(
        "providers:\n  openai: {max_tokens: 8}\n")
    _tree_with_a_real_model({**home, "OPENAI_BASE_URL": llama_server, "OPENAI_API_KEY": "x"},
                            sessions_dir)
