"""Where each tool keeps its conversations when nobody told it otherwise, so that
``--import-session --from TOOL`` needs no FILE. ChatGPT's export is a download: it has none.

Each answer follows the tool's own rules, read from its source: the environment variable it
honours first, then its config file, then its built-in default.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path


def _home(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("HOME") or Path.home())


def _xdg(environ: Mapping[str, str], variable: str, fallback: str) -> Path:
    value = environ.get(variable)
    return Path(value) if value and Path(value).is_absolute() else _home(environ) / fallback


def _llm(environ: Mapping[str, str]) -> Path:
    # llm: $LLM_USER_PATH, else click's app dir for "io.datasette.llm".
    folder = environ.get("LLM_USER_PATH")
    base = Path(folder) if folder else _xdg(environ, "XDG_CONFIG_HOME", ".config") \
        / "io.datasette.llm"
    return base / "logs.db"


def _sgpt(environ: Mapping[str, str]) -> Path:
    # shell_gpt: $CHAT_CACHE_PATH, else CHAT_CACHE_PATH in ~/.config/shell_gpt/.sgptrc, else
    # chat_cache in the temporary folder.
    if environ.get("CHAT_CACHE_PATH"):
        return Path(environ["CHAT_CACHE_PATH"])
    rc = _home(environ) / ".config" / "shell_gpt" / ".sgptrc"
    try:
        with open(rc, encoding="utf-8", errors="replace") as handle:
            lines = handle.read(64 * 1024).splitlines()
    except OSError:
        lines = []
    for line in lines:
        key, _, value = line.strip().partition("=")
        if key == "CHAT_CACHE_PATH" and value:
            return Path(value)
    return Path(environ.get("TMPDIR") or tempfile.gettempdir()) / "chat_cache"


def _gptme(environ: Mapping[str, str]) -> Path:
    return _xdg(environ, "XDG_DATA_HOME", ".local/share") / "gptme" / "logs"


def _aichat(environ: Mapping[str, str]) -> Path:
    folder = environ.get("AICHAT_CONFIG_DIR")
    base = Path(folder) if folder else _xdg(environ, "XDG_CONFIG_HOME", ".config") / "aichat"
    return base / "sessions"


_PLACES = {"llm": _llm, "sgpt": _sgpt, "gptme": _gptme, "aichat": _aichat}


def default_location(source: str, environ: Mapping[str, str]) -> Path | None:
    """Where ``source`` keeps its conversations by default; None when it has no such place."""
    find = _PLACES.get(source)
    return find(environ) if find else None
