"""`--import-session --from chatgpt`: ChatGPT's conversations.json, its tree kept as branches."""

from __future__ import annotations

import json
import time
from pathlib import Path

from import_support import imported_ids, said, saved

T0 = 1_700_000_000.0


def _node(key, parent, children, role=None, text=None, when=None, **extra):
    message = None
    if role is not None:
        message = {"id": key, "author": {"role": role, "name": None, "metadata": {}},
                   "create_time": when, "update_time": None,
                   "content": {"content_type": extra.pop("content_type", "text"),
                               "parts": [text] if isinstance(text, str) else text},
                   "status": "finished_successfully", "end_turn": True, "weight": 1.0,
                   "metadata": extra.pop("metadata", {}), "recipient": extra.pop("recipient",
                                                                                  "all")}
    return key, {"id": key, "message": message, "parent": parent, "children": children}


def lifetimes() -> dict:
    """A conversation with an edited question (two user siblings), a regenerated answer (two
    assistant siblings), and nodes that are no one's words: the root, a hidden system message,
    a tool call and the tool's output."""
    nodes = dict([
        _node("root", None, ["sys"]),
        _node("sys", "root", ["u1"], "system", "", None,
              metadata={"is_visually_hidden_from_conversation": True}),
        _node("u1", "sys", ["a1", "a1b"], "user", "What is a lifetime?", T0 + 10),
        _node("a1", "u1", ["u2", "u2b"], "assistant", "A scope a reference is valid for.",
              T0 + 20, metadata={"model_slug": "gpt-4o"}),
        _node("a1b", "u1", [], "assistant", "A region of code.", T0 + 25,
              metadata={"model_slug": "gpt-4o-mini"}),
        _node("u2", "a1", ["call"], "user", "Show me one.", T0 + 30),
        _node("call", "u2", ["tool"], "assistant", "search('rust lifetimes')", T0 + 31,
              recipient="browser"),
        _node("tool", "call", ["a2"], "tool", "results ...", T0 + 32),
        _node("a2", "tool", [], "assistant", ["fn f<'a>(x: &'a str) {}"], T0 + 40,
              content_type="multimodal_text", metadata={"model_slug": "gpt-4o"}),
        _node("u2b", "a1", ["a2b"], "user", "Show me two.", T0 + 50),
        _node("a2b", "u2b", [], "assistant", "Here are two.", T0 + 60,
              metadata={"model_slug": "gpt-4o"}),
    ])
    return {"title": "Rust lifetimes", "create_time": T0, "update_time": T0 + 60,
            "mapping": nodes, "current_node": "a2", "conversation_id": "conv-lifetimes",
            "id": "conv-lifetimes", "moderation_results": [], "is_archived": False}


def small(cid: str = "conv-small", title: str = "Small talk") -> dict:
    nodes = dict([
        _node("r", None, ["q"]),
        _node("q", "r", ["a"], "user", "hello", T0 + 100),
        _node("a", "q", [], "assistant", "hi there", T0 + 101, metadata={"model_slug": "o3"}),
    ])
    return {"title": title, "create_time": T0 + 100, "update_time": T0 + 101, "mapping": nodes,
            "current_node": "a", "conversation_id": cid, "id": cid}


def write(tmp_path, conversations: list[dict]):
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(conversations))
    return path


def test_the_tree_is_kept_main_is_the_current_path_and_other_leaves_are_branches(
        aish, tmp_path):
    path = write(tmp_path, [lifetimes(), small()])
    ids = imported_ids(aish("aish", "--import-session", str(path), "--from", "chatgpt"))
    assert len(ids) == 2 and len(set(ids)) == 2
    doc = saved(aish, ids[0])
    by_text = {m["content"]: m for m in doc["messages"]}
    # Only people's and the model's words are kept; tool traffic and hidden nodes are not.
    assert set(by_text) == {"What is a lifetime?", "A scope a reference is valid for.",
                            "A region of code.", "Show me one.", "fn f<'a>(x: &'a str) {}",
                            "Show me two.", "Here are two."}
    answer = by_text["fn f<'a>(x: &'a str) {}"]
    assert (answer["role"], answer["time"], answer["model"], answer["ai"]) == (
        "assistant", T0 + 40, "gpt-4o", "apollo")
    # The answer after the tool follows the question before the tool call.
    assert answer["parent"] == by_text["Show me one."]["id"]
    assert by_text["What is a lifetime?"]["parent"] == ""
    assert by_text["What is a lifetime?"].get("model") is None
    assert by_text["A region of code."]["model"] == "gpt-4o-mini"
    assert doc["session"]["title"] == "Rust lifetimes"
    assert doc["session"]["origin"]["imported"] == "chatgpt"
    assert doc["session"]["origin"]["source_id"] == "conv-lifetimes"
    # main is the path to current_node; the two other leaves are branches, oldest first.
    assert doc["refs"]["main"] == answer["id"]
    assert doc["refs"]["branch-1"] == by_text["A region of code."]["id"]
    assert doc["refs"]["branch-2"] == by_text["Here are two."]["id"]

    listed = aish("aish", "--list-branches", ids[0])
    assert listed.returncode == 0, listed.stderr
    rows = [r.lstrip("* ").split() for r in listed.stdout.decode().splitlines()]
    assert listed.stdout.decode().startswith("* main")
    # Each branch is its own path from the root: name, head, messages.
    assert {r[0]: (r[1], int(r[2])) for r in rows} == {
        "main": (answer["id"], 4), "branch-1": (by_text["A region of code."]["id"], 2),
        "branch-2": (by_text["Here are two."]["id"], 4)}

    # Stored oldest first, each parent before its children: the log validates clean.
    for sid in ids:
        check = aish("aish", "--validate-session", sid)
        assert check.returncode == 0, check.stdout + check.stderr
    assert [m["time"] for m in doc["messages"]] == sorted(m["time"] for m in doc["messages"])

    second = saved(aish, ids[1])
    assert said(second) == [("user", "hello"), ("assistant", "hi there")]
    assert second["session"]["title"] == "Small talk"


def test_importing_the_same_file_again_adds_nothing_and_a_changed_conversation_is_added(
        aish, tmp_path, sessions_dir):
    path = write(tmp_path, [small()])
    first = imported_ids(aish("aish", "--import-session", str(path), "--from", "chatgpt"))
    before = sorted(p.name for p in sessions_dir.glob("*.jsonl"))
    again = aish("aish", "--import-session", str(path), "--from", "chatgpt", "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert [r["id"] for r in report] == first and report[0]["existing"] is True
    assert b"imported before" in again.stderr
    assert sorted(p.name for p in sessions_dir.glob("*.jsonl")) == before

    grown = small()
    grown["mapping"]["a"]["children"] = ["q2"]
    grown["mapping"].update(dict([
        _node("q2", "a", ["a2"], "user", "more", T0 + 200),
        _node("a2", "q2", [], "assistant", "more answers", T0 + 201),
    ]))
    grown["current_node"] = "a2"
    path.write_text(json.dumps([grown]))
    changed = aish("aish", "--import-session", str(path), "--from", "chatgpt")
    [new] = imported_ids(changed)
    assert new != first[0]
    assert f"imported as {first[0]}".encode() in changed.stderr
    assert [c for _, c in said(saved(aish, new))] == ["hello", "hi there", "more",
                                                      "more answers"]
    assert len(said(saved(aish, first[0]))) == 2  # the earlier import is kept as it was


def test_a_conversation_given_twice_in_one_file_is_imported_once(aish, tmp_path, sessions_dir):
    path = write(tmp_path, [small(), small()])
    ids = imported_ids(aish("aish", "--import-session", str(path), "--from", "chatgpt"))
    assert len(ids) == 2 and ids[0] == ids[1]
    assert len(list(sessions_dir.glob("*.jsonl"))) == 1


def test_one_conversation_for_another_specialist(aish, tmp_path):
    path = write(tmp_path, [lifetimes(), small()])
    [sid] = imported_ids(aish("aish", "--import-session", str(path), "--from", "chatgpt",
                              "--conversation", "conv-small", "--ai", "athena-ai"))
    doc = saved(aish, sid)
    assert doc["session"]["owner"] == "athena"
    assert {m["ai"] for m in doc["messages"]} == {"athena"}
    missing = aish("aish", "--import-session", str(path), "--from", "chatgpt",
                   "--conversation", "nope")
    assert missing.returncode != 0 and b"Traceback" not in missing.stderr
    assert b"no conversation 'nope'" in missing.stderr


def test_conversations_without_messages_are_left_out(aish, tmp_path, sessions_dir):
    only_system = {"title": "empty", "conversation_id": "conv-empty", "current_node": "s",
                   "mapping": dict([_node("r", None, ["s"]),
                                    _node("s", "r", [], "system", "be nice", T0)])}
    path = write(tmp_path, [only_system, small()])
    proc = aish("aish", "--import-session", str(path), "--from", "chatgpt")
    [sid] = imported_ids(proc)
    assert b"without messages: conv-empty" in proc.stderr
    assert len(list(sessions_dir.glob("*.jsonl"))) == 1
    path.write_text(json.dumps([only_system]))
    proc = aish("aish", "--import-session", str(path), "--from", "chatgpt")
    assert proc.returncode != 0 and b"no messages to import" in proc.stderr
    assert len(list(sessions_dir.glob("*.jsonl"))) == 1


def test_usage_errors(aish, tmp_path, sessions_dir):
    path = write(tmp_path, [small()])
    for args in (["--import-session", str(path)], ["--import-session", "--from", "chatgpt"],
                 ["--import-session", str(path), "--from", "bard"],
                 ["--import-session", str(path), "--from", "chatgpt", "--ai", "nobody"]):
        proc = aish("aish", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(proc.stderr.decode().strip().splitlines()) == 1
    assert not list(sessions_dir.glob("*.jsonl"))


def test_times_in_the_future_are_taken_as_now(aish, tmp_path):
    conv = small()
    conv["mapping"]["q"]["message"]["create_time"] = 253402300799.0  # 9999-12-31
    [sid] = imported_ids(aish("aish", "--import-session", str(write(tmp_path, [conv])),
                              "--from", "chatgpt"))
    doc = saved(aish, sid)
    now = time.time()
    assert all(m["time"] <= now for m in doc["messages"])
    assert doc["session"]["updated"] <= now


def test_each_specialist_gets_its_own_import_of_a_conversation(aish, tmp_path):
    path = write(tmp_path, [small()])
    [first] = imported_ids(aish("aish", "--import-session", str(path), "--from", "chatgpt",
                                "--ai", "athena"))
    [second] = imported_ids(aish("aish", "--import-session", str(path), "--from", "chatgpt",
                                 "--ai", "apollo"))
    assert first != second
    assert saved(aish, second)["session"]["owner"] == "apollo"
    again = imported_ids(aish("aish", "--import-session", str(path), "--from", "chatgpt",
                              "--ai", "apollo"))
    assert again == [second]


def test_with_encryption_no_name_of_the_chat_is_kept_in_clear(aish, home, tmp_path):
    cfg = Path(home["HOME"]) / ".aish" / "config.yaml"
    cfg.write_text(cfg.read_text() + "sessions:\n  storage: {encrypt: true}\n")
    key = {"AISH_ENCRYPTION_KEY": "correct horse battery staple"}
    path = write(tmp_path, [small("mergers-and-acquisitions", "Secret merger")])
    [sid] = imported_ids(aish("aish", "--import-session", str(path), "--from", "chatgpt",
                              **key))
    stored = b"".join(p.read_bytes() for p in (Path(home["HOME"]) / ".aish").rglob("*")
                      if p.is_file())
    assert b"mergers" not in stored and b"merger" not in stored.lower()
    assert str(path).encode() not in stored  # the audit log names no file
    again = imported_ids(aish("aish", "--import-session", str(path), "--from", "chatgpt",
                              **key))
    assert again == [sid]


def test_a_title_on_several_lines_is_told_on_one(aish, tmp_path):
    path = write(tmp_path, [small(title="Two\nlines\r\nof title")])
    result = aish("aish", "--import-session", str(path), "--from", "chatgpt")
    [line] = [x for x in result.stderr.decode().splitlines() if "conversation" in x]
    assert "(Two lines of title)" in line
