"""Configuration: built-in defaults < config file < environment < flags (applied by callers).

The file is YAML read with ruamel.yaml (only when it exists, so a bare install pays nothing), so
that `aish` can later write it back with the user's comments and key order intact. Every value is
checked here and typed, so the rest of the code never sees strings standing in for numbers.
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aish.errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "sessions": {
        "storage": {"type": "file", "path": None, "url": None, "encrypt": False},
        "defaults": {"context_window": 10, "timeout_minutes": 60, "auto_save": True},
        "limits": {
            "max_sessions": 50,
            "max_context_size": 100_000,
            "max_stdin_bytes": 4 * 1024 * 1024,
            "max_message_chars": 1_000_000,
            "max_session_bytes": 64 * 1024 * 1024,
        },
    },
    "providers": {"openai": {}, "local": {}},
    "specialists": {},
    "ui": {"theme": "default"},
}

BOOLEAN_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}

ENV_KEYS = {
    "AISH_SESSION_DIR": ("sessions", "storage", "path"),
    "AISH_DEFAULT_CONTEXT": ("sessions", "defaults", "context_window"),
    "AISH_SESSION_TIMEOUT": ("sessions", "defaults", "timeout_minutes"),
    "AISH_MAX_SESSIONS": ("sessions", "limits", "max_sessions"),
}


@dataclass(frozen=True)
class Config:
    home: Path
    file: Path
    session_dir: Path
    storage_type: str = "file"
    redis_url: str | None = None
    encrypt: bool = False
    context_window: int = 10
    timeout_minutes: float = 60.0
    auto_save: int = 1  # write every N messages; 0 = only on `save`
    max_sessions: int = 50
    max_context_size: int = 100_000
    max_stdin_bytes: int = 4 * 1024 * 1024
    max_message_chars: int = 1_000_000
    max_session_bytes: int = 64 * 1024 * 1024
    providers: dict = field(default_factory=dict)
    specialists: dict = field(default_factory=dict)
    theme: str = "default"
    warnings: tuple[str, ...] = ()

    @property
    def audit_log(self) -> Path:
        return self.home / "audit.log"


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_file(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    if not text.strip():
        return {}
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        data = YAML(typ="safe").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


class _Checker:
    """Reads typed values out of the merged tree, naming the source and key on error."""

    def __init__(self, tree: dict, sources: dict[tuple, str]):
        self.tree = tree
        self.sources = sources

    def raw(self, *keys: str) -> Any:
        node: Any = self.tree
        for i, key in enumerate(keys):
            if not isinstance(node, dict):
                self.fail(keys[:i], "a mapping")
            node = node.get(key)
        return node

    def fail(self, keys: tuple, expected: str, value: Any = None):
        source = self.sources.get(tuple(keys), "config")
        shown = f", got {value!r}" if value is not None else ""
        raise ConfigError(f"{source}: {'.'.join(keys)}: expected {expected}{shown}")

    def integer(self, *keys: str, minimum: int = 0) -> int:
        value = self.raw(*keys)
        if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(keys, f"a whole number >= {minimum}", value)
        return value

    def number(self, *keys: str) -> float:
        value = self.raw(*keys)
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or number <= 0 or not math.isfinite(number):
            self.fail(keys, "a positive number", value)
        return number

    def boolean(self, *keys: str) -> bool:
        value = self.raw(*keys)
        if isinstance(value, str) and value.lower() in BOOLEAN_WORDS:
            return BOOLEAN_WORDS[value.lower()]
        if not isinstance(value, bool):
            self.fail(keys, "true or false", value)
        return value

    def text(self, *keys: str, choices: tuple[str, ...] | None = None,
             optional: bool = False) -> str | None:
        value = self.raw(*keys)
        if value is None and optional:
            return None
        if not isinstance(value, str) or (choices and value not in choices):
            self.fail(keys, " or ".join(choices) if choices else "a string", value)
        return value

    def mapping(self, *keys: str) -> dict:
        value = self.raw(*keys)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(keys, "a mapping", value)
        return value


def _sources(tree: dict, label: str, prefix: tuple = ()) -> dict[tuple, str]:
    out = {}
    for key, value in tree.items():
        out[prefix + (key,)] = label
        if isinstance(value, dict):
            out.update(_sources(value, label, prefix + (key,)))
    return out


def load(env: dict[str, str] | None = None) -> Config:
    """Load the effective configuration for this process."""
    env = dict(os.environ if env is None else env)
    home = Path(env.get("HOME") or Path.home()) / ".aish"
    file = Path(env["AISH_CONFIG"]).expanduser() if env.get("AISH_CONFIG") else home / "config.yaml"
    from_file = _read_file(file)
    warnings = []
    readable = from_file and file.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH)
    if readable and _mentions_key(from_file):
        warnings.append(f"{file} holds an API key and is readable by others (chmod 600 it)")
    from_env: dict = {}
    env_sources = {}
    for name, keys in ENV_KEYS.items():
        if env.get(name, "") != "":
            node = from_env
            for key in keys[:-1]:
                node = node.setdefault(key, {})
            node[keys[-1]] = env[name]
            env_sources[keys] = f"environment {name}"
    tree = _merge(_merge(DEFAULTS, from_file), from_env)
    sources = {**_sources(from_file, str(file)), **env_sources}
    c = _Checker(tree, sources)

    _check_providers(c)
    path = c.text("sessions", "storage", "path", optional=True)
    session_dir = Path(path).expanduser() if path else home / "sessions"
    # `auto_save: true` (yes, on) writes every message, `false` only on save, N every N messages.
    auto = c.raw("sessions", "defaults", "auto_save")
    if isinstance(auto, bool) or str(auto).lower() in BOOLEAN_WORDS:
        auto_save = int(c.boolean("sessions", "defaults", "auto_save"))
    else:
        auto_save = c.integer("sessions", "defaults", "auto_save")
    return Config(
        home=home,
        file=file,
        session_dir=session_dir,
        storage_type=c.text("sessions", "storage", "type", choices=("file", "redis")),
        redis_url=c.text("sessions", "storage", "url", optional=True),
        encrypt=c.boolean("sessions", "storage", "encrypt"),
        context_window=c.integer("sessions", "defaults", "context_window"),
        timeout_minutes=c.number("sessions", "defaults", "timeout_minutes"),
        auto_save=auto_save,
        max_sessions=c.integer("sessions", "limits", "max_sessions", minimum=1),
        max_context_size=c.integer("sessions", "limits", "max_context_size", minimum=1),
        max_stdin_bytes=c.integer("sessions", "limits", "max_stdin_bytes", minimum=1),
        max_message_chars=c.integer("sessions", "limits", "max_message_chars", minimum=1),
        max_session_bytes=c.integer("sessions", "limits", "max_session_bytes", minimum=1),
        providers=c.mapping("providers"),
        specialists=c.mapping("specialists"),
        theme=c.text("ui", "theme"),
        warnings=tuple(warnings),
    )


def _check_providers(c: _Checker) -> None:
    """Type-check provider settings here, so a bad one is a config error naming its key rather
    than a provider failure later. An API key's value is never shown."""
    c.text("providers", "default", choices=("openai", "local"), optional=True)
    kinds = {"base_url": "text", "api_key": "text", "model": "text", "model_path": "text",
             "timeout": "positive", "max_retries": "count", "n_ctx": "count",
             "max_tokens": "count", "temperature": "number", "top_p": "number",
             "repeat_penalty": "number"}
    for provider in ("openai", "local"):
        settings = c.mapping("providers", provider)
        for key, kind in kinds.items():
            value = settings.get(key)
            keys = ("providers", provider, key)
            if value is None:
                continue
            if kind == "text" and not isinstance(value, str):
                c.fail(keys, "a string", None if key == "api_key" else value)
            elif kind == "positive":
                c.number(*keys)
            elif kind == "count":
                c.integer(*keys, minimum=1 if key in ("n_ctx", "max_tokens") else 0)
            elif kind == "number" and (isinstance(value, bool)
                                       or not isinstance(value, int | float) or value < 0):
                c.fail(keys, "a number >= 0", value)


def _mentions_key(tree: Any) -> bool:
    if isinstance(tree, dict):
        return any(k == "api_key" and v or _mentions_key(v) for k, v in tree.items())
    return False
