"""`aish --history` through the real program: a session with a branch and a regenerated reply
(made with the scripted server, `--branch-session` and `--regenerate`), drawn and as JSON.

The scripted server answers ``ok: <last user message>``, so every message's first line is known.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import history_support
from conftest import REPO
from history_support import SECRET, fails, ok
from shell_support import Term, shell_env

from aish.people import os_user

ME = os_user()  # the author of what the tests write, shown before the specialist

tree = history_support.tree  # the module's session, a fixture

GUIDES = "│├└─|+`- "


def rows(text: str) -> list[tuple[int, str]]:
    """(indent, line without its guides) for every line after the title."""
    out = []
    for line in text.splitlines()[1:]:
        body = line.lstrip(GUIDES)
        out.append((len(line) - len(body), body))
    return out


def numbers(text: str) -> list[str]:
    """The first word of every row: a message number, or the fold mark."""
    return [body.split()[0] for _, body in rows(text)]


def test_the_tree_is_drawn_with_numbers_folds_sides_and_branch_heads(tree):
    env, sid = tree
    result = ok(env, "aish", "--history", sid)
    out = result.stdout.decode()
    lines = out.splitlines()
    assert lines[0] == f"session {sid}: 13 messages, 2 branches"
    drawn = rows(out)
    # main goes straight on (folded between its first rows and its last exchange); alt hangs
    # off message 2, and the first answer to q5 hangs off message 9, each one level deeper.
    assert numbers(out) == ["1", "2", "3", "4", "3", "⋯", "8", "9", "10", "10"]
    assert [indent for indent, _ in drawn] == [4, 4, 8, 8, 4, 4, 4, 4, 8, 4]
    assert drawn[5][1] == "⋯ 4 more ⋯"
    body = dict(enumerate(b for _, b in drawn))
    assert re.fullmatch(rf"1 \d\d:\d\d {ME} → apollo: q1 my key is \[REDACTED:openai-key\]",
                        body[0])
    assert body[2].startswith("3 ") and f"{ME} → apollo: other way" in body[2]
    assert body[3].endswith(" [alt]") and "apollo: ok: other way" in body[3]
    assert re.search(r"apollo: ok: q4 \d+t$", body[6])
    assert body[9].endswith(" [main*]") and "apollo: ok: q5" in body[9]
    assert not body[8].endswith("]")  # the older reply to q5 is no branch's head
    assert "\x1b" not in out  # piped: plain text
    assert SECRET not in out
    assert "Redacted 2 secret(s): 2 openai-key" in result.stderr.decode()


def test_all_shows_every_message_and_checkout_moves_the_mark(tree):
    env, sid = tree
    ok(env, "aish", "--checkout", sid, "alt")
    try:
        out = ok(env, "aish", "--history", sid, "--all").stdout.decode()
    finally:
        ok(env, "aish", "--checkout", sid, "main")
    # alt is checked out now: its side is drawn straight on, main's hangs off message 2.
    assert numbers(out) == ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "10", "3", "4"]
    assert [indent for indent, _ in rows(out)][:3] == [4, 4, 8]
    assert out.splitlines()[-1].endswith(" [alt*]")
    assert "[main]" in out and "[main*]" not in out


def test_forty_columns_no_color_is_ascii_and_fits(tree):
    env, sid = tree
    out = ok(env, "aish", "--history", sid, COLUMNS="40", NO_COLOR="1").stdout.decode()
    lines = out.splitlines()
    assert len(lines) == 11
    assert all(len(line) <= 40 for line in lines), [line for line in lines if len(line) > 40]
    assert out.isascii()
    assert lines[1].startswith("+-- 1 ") and lines[-1].startswith("`-- 10 ")
    assert lines[3].startswith("|   +-- 3 ") and "[alt]" in lines[4]
    assert "... 4 more ..." in out and lines[-1].endswith("[main*]")


def test_a_non_utf8_stdout_gets_ascii_guides(tree):
    env, sid = tree
    out = ok(env, "aish", "--history", sid, PYTHONIOENCODING="latin-1").stdout
    assert out.isascii() and out.decode().splitlines()[1].startswith("+-- 1 ")


def test_branch_shows_only_its_path(tree):
    env, sid = tree
    out = ok(env, "aish", "--history", sid, "--branch", "alt").stdout.decode()
    assert out.splitlines()[0] == f"session {sid}: 4 messages, branch alt"
    assert numbers(out) == ["1", "2", "3", "4"]
    assert {indent for indent, _ in rows(out)} == {4}
    assert out.splitlines()[-1].endswith(" [alt]")


def test_json_gives_nodes_edges_and_refs(tree):
    env, sid = tree
    doc = json.loads(ok(env, "aish", "--history", sid, "--json").stdout)
    assert doc["session"] == sid and doc["current"] == "main"
    nodes = {n["id"]: n for n in doc["nodes"]}
    assert len(nodes) == 13
    assert sorted(n["number"] for n in nodes.values()) == [1, 2, 3, 3, 4, 4, 5, 6, 7, 8, 9, 10, 10]
    assert {(e["from"], e["to"]) for e in doc["edges"]} == {
        (n["parent"], n["id"]) for n in nodes.values() if n["parent"]}
    assert set(doc["refs"]) == {"main", "alt"}
    main, alt = nodes[doc["refs"]["main"]], nodes[doc["refs"]["alt"]]
    assert (main["number"], main["role"], main["first_line"]) == (10, "assistant", "ok: q5")
    assert alt["first_line"].startswith("ok: other way") and alt["number"] == 4
    first = next(n for n in nodes.values() if n["number"] == 1)
    assert first["first_line"] == "q1 my key is [REDACTED:openai-key]"
    assert first["role"] == "user" and first["ai"] == "apollo" and first["tokens"] is None
    assert all(isinstance(n["tokens"], int) for n in nodes.values() if n["role"] == "assistant")
    raw = json.loads(ok(env, "aish", "--history", sid, "--json", "--no-redact").stdout)
    assert SECRET in json.dumps(raw) and SECRET not in json.dumps(doc)

    only = json.loads(ok(env, "aish", "--history", sid, "--json", "--branch", "alt").stdout)
    assert [n["number"] for n in only["nodes"]] == [1, 2, 3, 4] and only["branch"] == "alt"
    assert only["refs"] == {"alt": alt["id"]}


def test_bad_input_is_one_line(tree):
    env, sid = tree
    assert "no branch nope" in fails(env, 3, "aish", "--history", sid, "--branch", "nope")
    fails(env, 3, "aish", "--history", "sess_missing")
    fails(env, 2, "aish", "--history")


def test_history_loads_no_model_client_or_markdown(tree):
    env, sid = tree
    code = f"""
import sys
from aish.cli import main
assert main(["--history", {sid!r}]) == 0
assert main(["--history", {sid!r}, "--json"]) == 0
heavy = [m for m in ("openai", "llama_cpp", "prompt_toolkit", "rich.markdown") if m in sys.modules]
print("HEAVY=" + ",".join(heavy))
"""
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip().splitlines()[-1] == "HEAVY="


def test_on_a_terminal_it_is_coloured_and_fits_the_terminal(tree, terms):
    env, sid = tree
    term = Term(shell_env(env), "--history", sid, cols=40)
    terms.append(term)
    assert term.wait() == 0
    assert "\x1b[" in term.raw  # escape sequences: heads bold, guides and folds dim
    *lines, note = term.text.replace("\r", "").splitlines()  # stderr shares the terminal
    assert note.startswith("Redacted 2 secret(s)")
    assert lines[1].startswith("├── 1 ") and lines[-1].startswith("└── 10 ")
    assert len(lines) == 11 and all(len(line) <= 40 for line in lines)

    plain = Term(shell_env(env, NO_COLOR="1"), "--history", sid, cols=40)
    terms.append(plain)
    assert plain.wait() == 0
    assert "\x1b" not in plain.raw and plain.raw.isascii()
    assert plain.raw.replace("\r", "").splitlines()[1].startswith("+-- 1 ")


def graph_rows(text: str) -> list[tuple[str, str]]:
    """(lane cells, message number or "") for every line after the title."""
    out = []
    for line in text.splitlines()[1:]:
        match = re.match(r"([*|/ ]*?)\s*(\d+ |[.⋯]|$)", line)
        assert match, line
        out.append((match.group(1).rstrip(), match.group(2).strip()))
    return out


def test_graph_draws_lanes_newest_first(tree):
    env, sid = tree
    result = ok(env, "aish", "--history", sid, "--graph", "--all")
    out = result.stdout.decode()
    assert out.splitlines()[0] == f"session {sid}: 13 messages, 2 branches"
    # main's regenerated reply is the newest: leftmost lane, first; the first reply to q5 and
    # alt's exchange each have a lane of their own that joins the message they fork from.
    assert graph_rows(out) == [
        ("*", "10"), ("| *", "10"), ("|/", ""),
        *[("*", str(n)) for n in range(9, 2, -1)],
        ("| *", "4"), ("| *", "3"), ("|/", ""), ("*", "2"), ("*", "1")]
    lines = out.splitlines()
    assert lines[1].endswith(" [main*]") and "apollo: ok: q5" in lines[1]
    assert lines[11].endswith(" [alt]") and "ok: other way" in lines[11]
    assert "\x1b" not in out and SECRET not in out
    assert "Redacted 2 secret(s)" in result.stderr.decode()
    assert SECRET in ok(env, "aish", "--history", sid, "--graph", "--no-redact").stdout.decode()

    folded = ok(env, "aish", "--history", sid, "--graph").stdout.decode()
    assert [n for _, n in graph_rows(folded)] == [
        "10", "10", "", "9", "8", "7", "⋯", "3", "4", "3", "", "2", "1"]
    assert "\n| ⋯ 3 more ⋯\n" in folded  # main's lane goes on past what is folded


def test_graph_with_branch_json_and_forty_columns(tree):
    env, sid = tree
    only = ok(env, "aish", "--history", sid, "--graph", "--branch", "alt").stdout.decode()
    assert graph_rows(only) == [("*", n) for n in ("4", "3", "2", "1")]
    assert ok(env, "aish", "--history", sid, "--graph", "--json").stdout == ok(
        env, "aish", "--history", sid, "--json").stdout
    narrow = ok(env, "aish", "--history", sid, "--graph", COLUMNS="40",
                NO_COLOR="1").stdout.decode()
    lines = narrow.splitlines()
    assert len(lines) == 14 and narrow.isascii()
    assert all(len(line) <= 40 for line in lines), [x for x in lines if len(x) > 40]
    assert lines[1].endswith("[main*]") and "->" in lines[4]


def test_graph_on_a_terminal_is_coloured_by_lane(tree, terms):
    env, sid = tree
    term = Term(shell_env(env), "--history", sid, "--graph", cols=40)
    terms.append(term)
    assert term.wait() == 0
    assert "\x1b[31m*" in term.raw and "\x1b[32m*" in term.raw  # two lanes, two colours
    *lines, note = term.text.replace("\r", "").splitlines()
    assert note.startswith("Redacted 2 secret(s)")
    assert len(lines) == 14 and all(len(line) <= 40 for line in lines)
    assert lines[1].startswith("* 10 ") and lines[3] == "|/"
