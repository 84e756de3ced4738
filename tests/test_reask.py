"""Asking a branch's questions again (`aish --replay-session ID --as NAME | --model M`) through
the real program and the scripted server, whose reply depends on who is asked (the persona
and the model), so that old and new answers differ where they should.
"""

from __future__ import annotations

import json
import re
import shlex

import tree_support
from conftest import run
from tree_support import ok

from aish.store.filestore import FileStore

store_env = tree_support.store_env  # the fixture: file store, then Redis


def answer(body: dict) -> str:
    """``athena: Q`` when Athena is asked, ``other: Q`` from model "other" (but to q1, where
    every model agrees), else ``ok: Q``."""
    system = body["messages"][0]["content"]
    last = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
    if "Athena" in system:
        return f"athena: {last}"
    if body.get("model") == "other" and last != "q1":
        return f"other: {last}"
    return f"ok: {last}"


def start(env, server) -> str:
    server.reply = answer
    sid = ok(env, "apollo", "--session", "--get-id", input="q1").stdout.decode().strip()
    ok(env, "apollo", "--session", sid, input="q2")
    ok(env, "apollo", "--session", sid, input="q3")
    return sid


def fails(env, code, *args) -> str:
    result = run(env, *args)
    assert result.returncode == code, (result.returncode, result.stderr.decode())
    line = result.stderr.decode().strip()
    assert "Traceback" not in line and len(line.splitlines()) == 1, line
    return line


def path_of(sessions_dir, sid, branch):
    loaded = FileStore(sessions_dir).load(sid)
    return loaded.path(loaded.tree.head(branch))


def nodes_of(env, sid, branch="main") -> list[dict]:
    history = ok(env, "aish", "--history", sid, "--branch", branch, "--json").stdout
    return json.loads(history)["nodes"]


def said(env, sid, branch) -> list[str]:
    """The first lines of a branch's path, in either store."""
    return [node["first_line"] for node in nodes_of(env, sid, branch)]


def branches(env, sid) -> dict[str, dict]:
    rows = json.loads(ok(env, "aish", "--list-branches", sid, "--json").stdout)
    return {row["name"]: row for row in rows}


def test_each_question_is_asked_again_on_a_new_branch_and_the_original_stays(
        env, server, sessions_dir):
    sid = start(env, server)
    log = sessions_dir / f"{sid}.jsonl"
    before, nodes = log.read_bytes(), nodes_of(env, sid)
    original = path_of(sessions_dir, sid, "main")
    asked = len(server.requests)
    result = ok(env, "aish", "--replay-session", sid, "--as", "athena")
    assert result.stdout.decode() == "replay-athena\n"
    assert "replay-athena" in result.stderr.decode()
    # One request per question, each with the new branch's own path as its context.
    sent = [[m["content"] for m in body["messages"][1:]] for body in server.requests[asked:]]
    assert sent == [["q1"], ["q1", "athena: q1", "q2"],
                    ["q1", "athena: q1", "q2", "athena: q2", "q3"]]
    assert all("Athena" in body["messages"][0]["content"] for body in server.requests[asked:])
    new = path_of(sessions_dir, sid, "replay-athena")
    assert [m.content for m in new] == ["q1", "athena: q1", "q2", "athena: q2", "q3",
                                        "athena: q3"]
    assert new[0].parent == "" and new[0].id != original[0].id
    assert {m.ai for m in new if m.role == "assistant"} == {"athena"}
    assert not {m.id for m in new} & {m.id for m in original}
    # The original branch: its records unchanged (the log only grew), its path the same.
    assert log.read_bytes().startswith(before)
    assert nodes_of(env, sid) == nodes
    rows = branches(env, sid)
    assert rows["replay-athena"]["messages"] == 6 and rows["main"]["messages"] == 6
    assert rows["main"]["current"]
    listing = ok(env, "aish", "--list-branches", sid).stdout.decode()
    assert re.search(r"replay-athena .* 6 messages .* athena", listing)
    info = json.loads(ok(env, "aish", "--session-info", sid, "--json").stdout)
    # Athena takes part now; the session's sharing is not changed by asking again.
    assert info["participants"] == ["apollo-ai", "athena-ai"] and info["shared"] is False
    # Asked again once more: a name of its own, in the way lost races name branches.
    assert ok(env, "aish", "--replay-session", sid, "--as", "athena").stdout == \
        b"replay-athena-2\n"


def test_compare_shows_both_first_lines_token_differences_and_the_first_divergence(
        env, server):
    sid = start(env, server)
    result = ok(env, "aish", "--replay-session", sid, "--model", "other", "--compare")
    lines = result.stdout.decode().splitlines()
    latency = [line for line in lines if line.startswith("  latency")]
    timed = r"(\u2014|\d+\.\d\ds)"  # "—" where a reply recorded no timing
    assert len(latency) == 3 and all(
        re.fullmatch(rf"  latency   {timed} -> {timed} \((\u2014|[+-]\d+\.\d\ds)\)", line)
        for line in latency), latency
    assert [line for line in lines if line not in latency] == [
        f"Session {sid}: branch main asked again on branch replay-other",
        "turn 1 (message 1): q1",
        "  original  apollo: ok: q1",
        "  new       apollo: ok: q1",
        "  tokens    12 -> 12 (+0)",
        "turn 2 (message 3): q2",
        "  original  apollo: ok: q2",
        "  new       apollo: other: q2",
        "  tokens    12 -> 13 (+1)",
        "turn 3 (message 5): q3",
        "  original  apollo: ok: q3",
        "  new       apollo: other: q3",
        "  tokens    12 -> 13 (+1)",
        "First divergence: turn 2 (message 3 of main)",
    ]
    assert server.requests[-1]["model"] == "other"
    data = json.loads(ok(env, "aish", "--replay-session", sid, "--model", "other",
                         "--into-branch", "again", "--to", "4", "--json").stdout)
    assert data["branch"] == "again" and data["first_divergence"] == 2
    assert [t["tokens_diff"] for t in data["turns"]] == [0, 1]  # q3 is message 5
    assert [t["same"] for t in data["turns"]] == [True, False]
    assert [t["new"]["model"] for t in data["turns"]] == ["other"] * 2
    assert data["turns"][1]["original"]["first_line"] == "ok: q2"


def test_the_comparison_is_redacted_but_the_model_gets_the_stored_text(env, server):
    secret = "sk-" + "a1B2" * 6
    server.reply = answer
    sid = ok(env, "apollo", "--session", "--get-id", input=f"key {secret}").stdout.decode()
    sid = sid.strip()
    result = ok(env, "aish", "--replay-session", sid, "--as", "athena", "--compare")
    out = result.stdout.decode()
    assert secret not in out and "athena: key [REDACTED:openai-key]" in out
    assert "Redacted 3 secret(s)" in result.stderr.decode()
    assert server.last_messages[-1]["content"] == f"key {secret}"
    shown = ok(env, "aish", "--replay-session", sid, "--as", "athena", "--compare",
               "--no-redact").stdout.decode()
    assert f"athena: key {secret}" in shown


def test_a_failure_midway_keeps_what_was_asked_and_says_how_to_go_on(store_env, server):
    env = store_env
    sid = start(env, server)
    server.script = ["reply", "500"]  # the second question fails
    line = fails(env, 4, "aish", "--replay-session", sid, "--as", "athena")
    assert "turn 2 of 3 (message 3 of main) failed" in line and "replay-athena" in line
    assert said(env, sid, "replay-athena") == ["q1", "athena: q1", "q2"]  # q2 unanswered
    command = line.split("go on with: ", 1)[1].removesuffix(")")
    argv = shlex.split(command)
    assert argv[-4:] == ["--into-branch", "replay-athena", "--from", "3"]
    ok(env, *argv)
    sent = [m["content"] for m in server.requests[-2]["messages"][1:]]
    assert sent == ["q1", "athena: q1", "q2"]  # q2 answered where it was left
    assert said(env, sid, "replay-athena") == ["q1", "athena: q1", "q2", "athena: q2", "q3",
                                               "athena: q3"]
    assert said(env, sid, "main") == ["q1", "ok: q1", "q2", "ok: q2", "q3", "ok: q3"]
    fails(env, 2, "aish", "--replay-session", sid, "--as", "athena", "--into-branch",
          "replay-athena", "--from", "3")  # it no longer ends where message 3 begins


def test_bad_input_is_one_line_and_changes_nothing(env, server, sessions_dir):
    sid = start(env, server)
    ok(env, "aish", "--branch-session", sid, "taken")
    log = sessions_dir / f"{sid}.jsonl"
    before = log.read_bytes()
    replay = ("aish", "--replay-session")
    assert "not found" in fails(env, 3, *replay, "sess_nope00", "--as", "athena")
    assert "no branch nope" in fails(env, 3, *replay, sid, "--as", "athena",
                                     "--branch", "nope")
    assert "unknown specialist" in fails(env, 2, *replay, sid, "--as", "nobody")
    assert "already has a branch taken" in fails(env, 2, *replay, sid, "--as", "athena",
                                                 "--into-branch", "taken")
    assert "invalid branch name" in fails(env, 2, *replay, sid, "--as", "athena",
                                          "--into-branch", "../x")
    assert "--as NAME or --model M" in fails(env, 2, *replay, sid, "--compare")
    assert "--into-branch" in fails(env, 2, *replay, sid, "--as", "athena", "--from", "3")
    assert "not a question" in fails(env, 2, *replay, sid, "--as", "athena",
                                     "--into-branch", "taken", "--from", "2")
    assert log.read_bytes() == before
