"""Management commands stay at the interpreter's floor: what they must not import, and the
caches that keep them there (the parsed config, the decoded header) never serving stale data."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aish import config, configcache
from aish.commands import manifest
from aish.commands.dispatch import load_commands
from aish.commands.registry import REGISTRY
from aish.errors import UsageError
from aish.store.base import Summary
from aish.store.filestore import FileStore

REPO = Path(__file__).resolve().parent.parent

# Model clients and terminal renderers, then what a read-only command no longer needs: the YAML
# parser (the config cache answers), id generation, writes' temp files, key-name suggestions,
# and the modules of commands that were not asked for.
HEAVY = ("openai", "llama_cpp", "prompt_toolkit", "rich.markdown")
LAZY = ("ruamel.yaml", "secrets", "hashlib", "tempfile", "difflib", "shutil",
        "aish.management.sync", "aish.commands.sync", "aish.commands.replay_cmds",
        "aish.commands.tree_session_cmds", "aish.commands.branch_cmds", "aish.commands.shims")

PROBE = r"""
import json, sys
from aish.cli import main
code = main(sys.argv[2:])
loaded = [m for m in sys.argv[1].split(",") if m in sys.modules]
print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
"""


def probe(env: dict, modules: tuple[str, ...], *argv: str) -> dict:
    result = subprocess.run([sys.executable, "-c", PROBE, ",".join(modules), *argv], env=env,
                            cwd=REPO, capture_output=True, timeout=600)
    return json.loads(result.stderr.decode().strip().splitlines()[-1])


@pytest.mark.parametrize("argv, also", [
    (("--list-sessions",), ("aish.commands.manage", "aish.commands.core", "argparse", "typing")),
    (("--list-sessions", "--all", "--json"), ("aish.commands.manage", "aish.commands.core",
                                              "argparse", "typing")),
    # No prices configured: no reply's provider is asked for, so no provider is loaded.
    (("--session-info", "sess_000001"), ("typing", "aish.providers", "aish.specialists")),
    (("--end-session", "sess_000001"), ("aish.commands.manage",)),
])
def test_management_commands_load_only_what_they_use(home, sessions_dir, argv, also):
    store = FileStore(sessions_dir)
    for i in range(3):
        store.create({"id": f"sess_{i:06d}", "owner": "apollo", "created": 1e9,
                      "context_window": 10, "participants": ["apollo"]})
    probe(home, (), *argv)  # the first run parses the config and caches it
    lazy = LAZY if argv[0] != "--end-session" else tuple(  # a write may use temp files
        m for m in LAZY if m not in ("tempfile", "shutil"))
    report = probe(home, HEAVY + lazy + also, *argv)
    assert report["code"] == 0
    assert report["loaded"] == [], f"{argv} imported {report['loaded']}"


def test_the_table_of_command_modules_matches_the_registry():
    load_commands()
    registered = {word: command.handler.__module__
                  for (scope, word), command in REGISTRY.commands.items() if scope == "aish"}
    assert registered == manifest.AISH_COMMANDS
    ask = REGISTRY.require("specialist", "ask")
    assert ask.handler.__module__ == manifest.SPECIALIST_MODULE
    every = {c.handler.__module__ for c in REGISTRY.commands.values()}
    assert every == set(manifest.MODULES)


def test_a_command_missing_from_the_table_is_still_found(home):
    # The table only saves imports: a word it lacks costs the full import, never the command.
    code = ("import sys\nfrom aish.commands import manifest\n"
            "manifest.AISH_COMMANDS.pop('list-templates')\n"
            "from aish.cli import main\nraise SystemExit(main(['--list-templates', '--json']))")
    result = subprocess.run([sys.executable, "-c", code], env=home, cwd=REPO,
                            capture_output=True, timeout=600)
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout) == []


# -- the config cache ---------------------------------------------------------------------------

def _home(tmp_path: Path, text: str) -> tuple[dict, Path]:
    aish_dir = tmp_path / ".aish"
    aish_dir.mkdir(exist_ok=True)
    file = aish_dir / "config.yaml"
    file.write_text(text)
    os.chmod(file, 0o600)
    return {"HOME": str(tmp_path)}, file


def test_the_parsed_config_is_cached_and_used(tmp_path, monkeypatch):
    env, _ = _home(tmp_path, "sessions:\n  defaults: {context_window: 7}\n")
    assert config.load(env).context_window == 7
    configcache.flush()
    cache = tmp_path / ".aish" / configcache.CACHE_NAME
    assert oct(cache.stat().st_mode & 0o777) == "0o600"
    # A second load does not parse: a parser that fails shows it was not asked.
    monkeypatch.setattr(config, "_parse", lambda text, where: pytest.fail("parsed again"))
    assert config.load(env).context_window == 7


def test_a_changed_config_is_read_again_even_same_size_in_the_same_second(tmp_path):
    env, file = _home(tmp_path, "sessions:\n  defaults: {context_window: 7}\n")
    assert config.load(env).context_window == 7
    before = file.stat()
    file.write_text("sessions:\n  defaults: {context_window: 8}\n")  # same size
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the same mtime
    after = file.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert config.load(env).context_window == 8
    file.write_text("sessions:\n  defaults: {context_window: 12}\n")
    assert config.load(env).context_window == 12
    file.write_text("")  # an emptied file: the defaults again
    assert config.load(env).context_window == 10


def test_a_cache_of_another_file_or_a_damaged_cache_is_not_used(tmp_path):
    env, _ = _home(tmp_path, "sessions:\n  defaults: {context_window: 7}\n")
    config.load(env)
    configcache.flush()
    other = tmp_path / "other.yaml"
    other.write_text("sessions:\n  defaults: {context_window: 7}\n")  # the same text
    cache = tmp_path / ".aish" / configcache.CACHE_NAME
    doc = json.loads(cache.read_text())
    doc["data"]["sessions"]["defaults"]["context_window"] = 99  # a forged value for that text
    cache.write_text(json.dumps(doc))
    assert config.load({**env, "AISH_CONFIG": str(other)}).context_window == 7
    cache.write_text("{not json")
    assert config.load(env).context_window == 7
    cache.unlink()
    cache.mkdir()  # not even a file: ignored, and nothing breaks
    assert config.load(env).context_window == 7


def test_errors_are_not_cached_and_bad_values_still_refused(tmp_path):
    env, file = _home(tmp_path, "sessions: [unclosed\n")
    for _ in range(2):
        with pytest.raises(config.ConfigError, match="not valid YAML"):
            config.load(env)
    file.write_text("sessions:\n  defaults: {context_window: -3}\n")
    for _ in range(2):  # the second time from the cache, checked the same
        with pytest.raises(config.ConfigError, match="context_window"):
            config.load(env)


def test_values_json_cannot_keep_are_not_cached(tmp_path):
    parsed = {"when": datetime.date(2020, 1, 1), "pair": (1, 2)}
    assert configcache.parsed(tmp_path / "c.yaml", "x", tmp_path, lambda t: parsed) is parsed
    configcache.flush()
    assert not (tmp_path / configcache.CACHE_NAME).exists()


# -- the decoded header -------------------------------------------------------------------------

def test_a_summary_header_follows_every_change_of_its_meta():
    summary = Summary({"id": "sess_a", "owner": "apollo", "participants": ["apollo"],
                       "shared": 1})
    assert summary.header.shared is None  # 1 is not true or false
    summary.meta["shared"] = True  # equal to 1, yet another header
    assert summary.header.shared is True
    summary.meta["participants"].append("athena")  # changed in place, one level down
    assert summary.header.participants == ("apollo", "athena")
    summary.fold({"t": "meta", "title": "Plans"})
    assert summary.header.title == "Plans"
    summary.meta.clear()
    assert summary.header.id == ""


# -- the simple parse ---------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_simple_parse_gives_what_argparse_gives(data):
    # Whatever it takes on itself (plain switches and positionals), it must read as argparse
    # does; anything else it leaves to argparse.
    load_commands()
    commands = sorted(REGISTRY.commands.values(), key=lambda c: (c.scope, c.name))
    command = data.draw(st.sampled_from(commands))
    words = [n for arg in command.args if not arg.positional for n in arg.names]
    tokens = data.draw(st.lists(st.one_of(st.sampled_from(words or ["--x"]),
                                          st.sampled_from(["sess_a", "x", "", "-", "--", "-5"]),
                                          st.text(max_size=4)), max_size=4))
    simple = command._parse_simple(tokens)
    if simple is None:
        return
    try:
        expected = vars(command.parser("aish").parse_args(tokens))
    except (UsageError, argparse.ArgumentError) as exc:
        pytest.fail(f"{command.name} {tokens}: argparse refuses what the simple parse took: {exc}")
    assert vars(simple) == expected, (command.name, tokens)
