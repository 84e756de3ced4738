"""`Sessions` is the only door to storage: commands, faces and management never reach the store
or the audit log themselves, and each operation routed through it still writes its audit entry."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from conftest import run
from manage_support import conversation, log_path, make_session, ok, sessions_for

import aish

PACKAGE = Path(aish.__file__).parent
SCANNED = ("commands", "shell", "management")
# Where the store and the audit log are built, for `Sessions` to wrap.
ROOT = "commands/context.py"
# Sync copies between the two stores it opens itself (never the configured one) and audits each
# copy as it goes.
SYNC = ("commands/sync.py", "management/sync.py")


def _modules(allowed: tuple[str, ...] = ()):
    for folder in SCANNED:
        for path in sorted((PACKAGE / folder).glob("*.py")):
            name = path.relative_to(PACKAGE).as_posix()
            if name not in allowed:
                yield name, ast.parse(path.read_text(), filename=name)


def _attribute_uses(attr: str, allowed: tuple[str, ...]) -> list[str]:
    return [f"{name}:{node.lineno}: .{attr}" for name, tree in _modules(allowed)
            for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == attr]


def test_no_command_face_or_management_module_reaches_the_store():
    assert _attribute_uses("store", (ROOT,)) == []


def test_no_command_face_or_management_module_writes_the_audit_log():
    assert _attribute_uses("audit", (ROOT, *SYNC)) == []
    calls = [f"{name}:{node.lineno}" for name, tree in _modules(SYNC) for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and node.func.attr == "record"]
    assert calls == []


def test_commands_and_faces_do_not_import_the_store():
    found = []
    for name, tree in _modules((ROOT,)):
        if name.startswith("management/"):
            continue
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{name}:{node.lineno}: {n}" for n in names if n.startswith("aish.store")]
    assert found == []


def test_the_scan_finds_what_it_looks_for():
    """Without the allowances, the places that build the store and audit sync are found."""
    assert any(use.startswith(ROOT) for use in _attribute_uses("store", ()))
    assert any(use.startswith(SYNC[0]) for use in _attribute_uses("audit", ()))


# -- every rerouted operation still writes its audit entry ----------------------------------------

def entries(env: dict) -> list[dict]:
    path = Path(env["HOME"]) / ".aish" / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()]


def only(env: dict, action: str, sid: str) -> dict:
    found = [e for e in entries(env) if e["action"] == action and e["session"] == sid]
    assert len(found) == 1, (action, sid, entries(env))
    return found[0]


def test_fork_merge_and_removal_are_audited(home):
    make_session(home, "src", pairs=3)
    make_session(home, "other", ai="athena", pairs=2)
    ok(run(home, "aish", "--fork-session", "src", "--at", "2", "--output", "branch"))
    assert only(home, "create", "branch")["ai"] == "apollo"
    fork = only(home, "fork", "branch")
    assert (fork["ai"], fork["source"], fork["at"]) == ("apollo", "src", 2)

    # Merged into one of the sources: one entry, with the backup and the sources.
    ok(run(home, "aish", "--merge-sessions", "src,other", "--output", "src", "--replace"))
    merge = only(home, "merge", "src")
    assert merge["sources"] == ["src", "other"] and Path(merge["backup"]).is_file()
    removed = only(home, "merge", "other")  # the other source, removed after its backup
    assert Path(removed["backup"]).is_file() and not log_path(home, "other").exists()

    ok(run(home, "aish", "--remove-sessions", "--ai", "apollo"))
    assert {e["session"] for e in entries(home) if e["action"] == "remove"} == {"src", "branch"}


def test_every_kind_of_restore_is_audited_once(home):
    make_session(home, "keep", pairs=2)
    saved = ok(run(home, "aish", "--save-session", "keep"))
    assert only(home, "save", "keep")["skipped"] == 0

    ok(run(home, "aish", "--restore-session", "--as", "copy", input=saved))
    new = only(home, "restore", "copy")
    assert (new["ai"], new["replaced"], new["backup"], new["from_id"]) == (
        "apollo", False, None, "keep")

    ok(run(home, "aish", "--restore-session", "--as", "copy", "--force", input=saved))
    replaced = [e for e in entries(home) if e["action"] == "restore" and e["replaced"]]
    assert len(replaced) == 1 and replaced[0]["session"] == "copy"
    assert Path(replaced[0]["backup"]).is_file() and replaced[0]["source"] == "stdin"

    # A recovery file of messages that were never saved goes back into its own session.
    late = conversation("apollo", 1, 1.9e9, tag="late ")
    recovery = "\n".join(json.dumps(r) for r in [
        {"t": "meta", "id": "keep", "owner": "apollo", "created": 1.9e9, "unsaved": True},
        *(m.to_record() for m in late)]) + "\n"
    ok(run(home, "aish", "--restore-session", input=recovery))
    appended = only(home, "restore", "keep")
    assert appended["ai"] == "apollo" and appended["replaced"] is False
    assert len(sessions_for(home).load("keep").messages) == 6


def test_checkpoint_and_template_documents_are_audited(env):
    make_session(env, "s", pairs=1)
    proc = run(env, "aish", "--session", "apollo", "--session-id", "s", input="save cp1\n")
    assert b"Checkpoint cp1 saved to" in proc.stderr, proc.stderr
    checkpoint = only(env, "checkpoint", "s")
    assert (checkpoint["ai"], checkpoint["name"]) == ("apollo", "cp1")
    ok(run(env, "aish", "--save-template", "tpl", "s"))
    assert only(env, "template", "s")["template"] == "tpl"
    ok(run(env, "aish", "--export-sessions"))
    assert only(env, "export", "s")["skipped"] == 0
