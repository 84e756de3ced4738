"""`aish --export-session --format md|mermaid|dot|json`, and redaction in every format, through
the real program. The default (no --format) stays the JSON document restore reads."""

from __future__ import annotations

import json
import re

import history_support
from conftest import run
from history_support import SECRET, fails, ok

from aish.people import os_user

ME = os_user()  # the author of what the tests write, shown before the specialist

tree = history_support.tree  # the module's session, a fixture


def export(env, sid, fmt, *more):
    return ok(env, "aish", "--export-session", sid, "--format", fmt, *more)


def test_default_is_still_the_session_document(tree):
    env, sid = tree
    doc = json.loads(ok(env, "aish", "--export-session", sid).stdout)
    assert doc["format"] == "aish-session" and doc["session"]["id"] == sid
    assert SECRET in json.dumps(doc)  # the document restores exactly what was stored


def test_md_is_the_checked_out_branch_with_the_others_listed(tree):
    env, sid = tree
    result = export(env, sid, "md")
    text = result.stdout.decode()
    assert text.startswith(f"# Session {sid}\n\nBranch `main` (checked out), 10 messages.\n")
    assert "Other branches:\n\n- `alt`: 4 messages\n" in text
    headings = re.findall(r"^## (\d+)\. (.+?) \(", text, re.M)
    assert [int(n) for n, _ in headings] == list(range(1, 11))
    assert [who for _, who in headings[:2]] == [f"{ME} → apollo", "apollo"]
    assert "\n\nq5\n" in text and text.rstrip().endswith("ok: q5")
    assert "other way" not in text  # alt's messages are not on main
    assert "[REDACTED:openai-key]" in text and SECRET not in text
    assert "Redacted 2 secret(s): 2 openai-key" in result.stderr.decode()

    ok(env, "aish", "--checkout", sid, "alt")
    try:
        text = export(env, sid, "md").stdout.decode()
    finally:
        ok(env, "aish", "--checkout", sid, "main")
    assert "Branch `alt` (checked out), 4 messages." in text and "- `main`: 10 messages" in text
    assert "other way" in text and "q5" not in text


MERMAID_NODE = re.compile(r'  (n\d+)\["([A-Za-z0-9 .,:_#;-]*)"\]')
DOT_NODE = re.compile(r'  (n\d+) \[label="((?:[^"\\]|\\.)*)"\];')


def test_mermaid_and_dot_draw_every_node_edge_and_branch(tree):
    env, sid = tree
    mermaid = export(env, sid, "mermaid").stdout.decode().splitlines()
    assert mermaid[0] == "flowchart TD"
    nodes = [MERMAID_NODE.fullmatch(line) for line in mermaid
             if line.startswith("  n") and "[" in line]
    assert len(nodes) == 13 and all(nodes)
    assert sum(1 for line in mermaid if re.fullmatch(r"  n\d+ --> n\d+", line)) == 12
    assert sum(1 for line in mermaid if re.fullmatch(r"  b\d+ -\.-> n\d+", line)) == 2
    assert '  b2(["main#42;"])' in mermaid  # the checked-out branch, marked

    dot = export(env, sid, "dot").stdout.decode().splitlines()
    assert dot[0] == f'digraph "session {sid}" {{' and dot[-1] == "}"
    labels = [DOT_NODE.fullmatch(line) for line in dot
              if line.startswith("  n") and "label" in line]
    assert len(labels) == 13 and all(labels)
    assert labels[0].group(2) == f"1 {ME} -> apollo: q1 my key is [REDACTED:openai-key]"
    assert sum(1 for line in dot if re.fullmatch(r"  n\d+ -> n\d+;", line)) == 12
    assert '  b2 [label="main*", shape=ellipse, style=dashed];' in dot


def test_json_format_has_nodes_edges_refs_and_content(tree):
    env, sid = tree
    doc = json.loads(export(env, sid, "json").stdout)
    assert len(doc["nodes"]) == 13 and len(doc["edges"]) == 12
    assert set(doc["refs"]) == {"main", "alt"}
    first = doc["nodes"][0]
    assert first["content"] == "q1 my key is [REDACTED:openai-key]" and first["number"] == 1
    raw = json.loads(export(env, sid, "json", "--no-redact").stdout)
    assert raw["nodes"][0]["content"] == f"q1 my key is {SECRET}"


def test_a_bad_format_is_a_usage_error(tree):
    env, sid = tree
    assert "md, mermaid, dot, json" in fails(env, 2, "aish", "--export-session", sid,
                                             "--format", "xml")


HOSTILE = ('x"] --> evil["pwn \x1b]52;c;QUJD\x07 AKIAABCDEFGHIJKLMNOP\n'
           '} digraph { a -> b; \\" ];')
SECRETS = ("export GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123\n"
           "slack xoxb-1234567890-abcdefghij and db_password = 'hunter2hunter2'\n"
           "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N\n"
           "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n"
           "-----END OPENSSH PRIVATE KEY-----\nAWS AKIAIOSFODNN7EXAMPLE")


def test_model_text_cannot_break_diagrams_or_the_terminal(env, server):
    server.reply = HOSTILE
    sid = ok(env, "apollo", "--session", "--get-id", input='q"]; } x').stdout.decode().strip()
    mermaid = export(env, sid, "mermaid").stdout.decode()
    assert "\x1b" not in mermaid and "evil[" not in mermaid
    lines = [line for line in mermaid.splitlines() if line.startswith("  n") and "[" in line]
    assert len(lines) == 2 and all(MERMAID_NODE.fullmatch(line) for line in lines)
    dot = export(env, sid, "dot").stdout.decode()
    lines = [line for line in dot.splitlines() if line.startswith("  n") and "label" in line]
    assert len(lines) == 2 and all(DOT_NODE.fullmatch(line) for line in lines), lines
    outside = re.sub(r'"(?:[^"\\]|\\.)*"', '""', dot)  # the text outside quoted strings
    assert outside.count("{") == outside.count("}") == 1 and ";" not in outside.split("\n")[2][:-1]
    drawn = ok(env, "aish", "--history", sid).stdout.decode()
    assert "\x1b" not in drawn and "\u241b" in drawn and "[REDACTED:aws-key]" in drawn


def test_every_kind_of_secret_is_redacted_and_counted(env, server):
    sid = ok(env, "apollo", "--session", "--get-id", input=SECRETS).stdout.decode().strip()
    for fmt in ("md", "json"):
        result = export(env, sid, fmt)
        text = result.stdout.decode()
        for secret in ("ghp_", "xoxb-", "hunter2", "eyJhbGci", "b3BlbnNz", "AKIAIOSF"):
            assert secret not in text, (fmt, secret)
        assert "GITHUB_TOKEN=[REDACTED:github-token]" in text
        assert "db_password = '[REDACTED:assignment]'" in text
        # Each secret once in the question; the reply echoes its first 60 characters, so
        # the GitHub token twice.
        assert ("Redacted 7 secret(s): 1 assignment, 1 aws-key, 2 github-token, 1 jwt, 1 pem, "
                "1 slack-token") in result.stderr.decode() or fmt == "json"
    counted = export(env, sid, "json").stderr.decode()  # content and first line both count
    assert "Redacted 9 secret(s): 1 assignment, 1 aws-key, 4 github-token" in counted
    raw = export(env, sid, "md", "--no-redact")
    assert "hunter2hunter2" in raw.stdout.decode() and raw.stderr == b""
    assert run(env, "aish", "--history", sid, "--no-redact").stdout.count(b"ghp_") == 2
