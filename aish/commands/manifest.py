"""Which module registers each command, so that running one command imports only its module.

Importing every command module costs more than a management command's own work, so argv
dispatch looks the command's word up here and imports just that module. Help, completion and
session mode need the whole registry and call :func:`load_all`. A test checks this table
against what the modules register; a word missing from it still works (dispatch falls back to
loading every module), it only costs the full import.
"""

from __future__ import annotations

import importlib

MODULES = (
    "aish.commands.branch_cmds",
    "aish.commands.compact_cmds",
    "aish.commands.core",
    "aish.commands.follow_cmds",
    "aish.commands.history_cmds",
    "aish.commands.import_cmds",
    "aish.commands.list_cmds",
    "aish.commands.manage",
    "aish.commands.names_cmds",
    "aish.commands.people_cmds",
    "aish.commands.replay_cmds",
    "aish.commands.search_cmds",
    "aish.commands.session_cmds",
    "aish.commands.shims",
    "aish.commands.sync",
    "aish.commands.tree_session_cmds",
)

_BRANCH = "aish.commands.branch_cmds"
_CORE = "aish.commands.core"
_MANAGE = "aish.commands.manage"

# Every word of the `aish` scope (names and aliases) -> the module that registers it.
AISH_COMMANDS: dict[str, str] = {
    **dict.fromkeys(("branch-session", "list-branches", "checkout", "undo", "redo",
                     "merge-branch"), _BRANCH),
    **dict.fromkeys(("session", "continue", "end-session", "version", "help", "h"), _CORE),
    "list-sessions": "aish.commands.list_cmds",
    "history": "aish.commands.history_cmds",
    **dict.fromkeys(("save-session", "export-session", "export-sessions", "restore-session",
                     "save-template", "list-templates", "merge-sessions", "session-stats",
                     "session-info", "cleanup-sessions", "remove-sessions", "prune-session",
                     "validate-session", "repair-session", "search-sessions", "reindex",
                     "fork-session"), _MANAGE),
    **dict.fromkeys(("rename-session", "title-session"), "aish.commands.names_cmds"),
    "replay-session": "aish.commands.replay_cmds",
    "install-shims": "aish.commands.shims",
    **dict.fromkeys(("sync-sessions", "sync", "sync-status", "export-key", "import-key"),
                    "aish.commands.sync"),
    "compact-session": "aish.commands.compact_cmds",
    "import-session": "aish.commands.import_cmds",
    "follow-session": "aish.commands.follow_cmds",
    **dict.fromkeys(("share-session", "unshare-session", "who"), "aish.commands.people_cmds"),
}

# The `specialist` scope's one command (`apollo ...`) lives with the basic commands.
SPECIALIST_MODULE = _CORE

_state = {"all": False}


def load_module(name: str) -> None:
    importlib.import_module(name)


def load_all() -> None:
    """Import every module that registers commands (after the first call this costs nothing)."""
    if _state["all"]:
        return
    for name in MODULES:
        importlib.import_module(name)
    _state["all"] = True


def loaded_all() -> bool:
    return _state["all"]
