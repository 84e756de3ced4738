"""Configuration: built-in defaults < config file < environment < flags (applied by callers).

The file is YAML read with ruamel.yaml (only when it exists, so a bare install pays nothing), so
that `aish` can later write it back with the user's comments and key order intact. Every value is
checked here and typed, so the rest of the code never sees strings standing in for numbers.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from aish.errors import ConfigError

TYPE_CHECKING = False  # importing typing costs every command 2-3 ms: annotations only
if TYPE_CHECKING:
    from typing import Any, Literal, NoReturn, overload

DEFAULTS: dict[str, Any] = {
    "sessions": {
        "storage": {"type": "file", "path": None, "url": None, "encrypt": False,
                    "stream_length": 10_000},
        "defaults": {"context_window": 10, "timeout_minutes": 60, "auto_save": True,
                     "auto_title": True, "overflow": "drop"},
        "limits": {
            "max_sessions": 50,
            "max_context_size": 100_000,
            "max_stdin_bytes": 4 * 1024 * 1024,
            "max_message_chars": 1_000_000,
            "max_session_bytes": 64 * 1024 * 1024,
            # What one --import-session may read (a ChatGPT export holds many conversations,
            # each a session of its own); unset: four times max_session_bytes.
            "max_import_bytes": None,
            "max_attach_bytes": 100 * 1024,
        },
        "log_oneshots": True,
        # The floor of a branch while a reply streams on it: how long a pipe-face prompt waits
        # for it before going to a new branch, and how long a lease lives unless renewed
        # (0: no turn-taking; the compare-and-set of each head alone keeps every turn).
        "floor_wait_seconds": 120,
        "floor_ttl_seconds": 15,
    },
    "providers": {"openai": {}, "local": {}},
    "specialists": {},
    "ui": {"theme": "default"},
    # The search index (a cache of message text beside the store); with encryption on it holds
    # plaintext only when ``index_plaintext`` says so, else searches decrypt and scan.
    "search": {"index": True, "index_plaintext": False},
    # USD per million tokens, by model (as its endpoint reports it) or provider name.
    "prices": {},
    # Where `aish --sync` goes without --dir/--to: a synced folder, or a Redis URL.
    "sync": {"dir": None, "url": None},
    # The warm process that serves piped exchanges (it leaves after idle_minutes unused).
    "warm": {"enabled": True, "idle_minutes": 10},
}

BOOLEAN_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}

MAX_FILE_BYTES = 64 * 1024  # a config file is a few KiB; the cap bounds the parser's work
MAX_INTEGER = 2**53  # larger counts are nonsense here, and JSON readers lose precision past it
MAX_TIMEOUT_MINUTES = 10 * 365 * 24 * 60  # ten years; keeps Redis TTLs in range
MAX_TIMEOUT_SECONDS = 7 * 86400.0  # a provider's timeout: longer is a typo, not a wish

PROVIDER_KINDS = {"base_url": "text", "api_key": "text", "model": "text", "model_path": "text",
                  "timeout": "positive", "max_retries": "count", "n_ctx": "count",
                  "max_tokens": "count", "temperature": "number", "top_p": "number",
                  "repeat_penalty": "number"}
SPECIALIST_KEYS = ("persona", "description", "provider", "model", "temperature", "max_tokens",
                   "top_p")
MAX_KEY_WARNINGS = 10  # past that the file is likely not an aish config at all
ANY_NAME = "*"  # in KNOWN_KEYS: the keys here are names the user chooses

# The keys aish reads, for telling a misspelt key from a deliberate one; None marks a leaf.
KNOWN_KEYS: dict[str, Any] = {
    "sessions": {section: dict.fromkeys(keys) if isinstance(keys, dict) else None
                 for section, keys in DEFAULTS["sessions"].items()},
    "providers": {"default": None, "openai": dict.fromkeys(PROVIDER_KINDS),
                  "local": dict.fromkeys(PROVIDER_KINDS)},
    "specialists": {ANY_NAME: dict.fromkeys(SPECIALIST_KEYS)},
    "ui": dict.fromkeys(DEFAULTS["ui"]),
    "search": dict.fromkeys(DEFAULTS["search"]),
    "sync": dict.fromkeys(DEFAULTS["sync"]),
    "prices": {ANY_NAME: {"input": None, "output": None}},
    "warm": dict.fromkeys(DEFAULTS["warm"]),
}

ENV_KEYS = {
    "AISH_SESSION_DIR": ("sessions", "storage", "path"),
    "AISH_DEFAULT_CONTEXT": ("sessions", "defaults", "context_window"),
    "AISH_SESSION_TIMEOUT": ("sessions", "defaults", "timeout_minutes"),
    "AISH_AUTO_TITLE": ("sessions", "defaults", "auto_title"),
    "AISH_MAX_SESSIONS": ("sessions", "limits", "max_sessions"),
    "AISH_FLOOR_WAIT": ("sessions", "floor_wait_seconds"),
    "AISH_FLOOR_TTL": ("sessions", "floor_ttl_seconds"),
}


@dataclass(frozen=True)
class Config:
    """The settings in force for a command: config file, environment and defaults."""

    home: Path
    file: Path
    session_dir: Path
    storage_type: str = "file"
    redis_url: str | None = None
    encrypt: bool = False
    context_window: int = 10
    timeout_minutes: float = 60.0
    auto_save: int = 1  # write every N messages; 0 = only on `save`
    auto_title: bool = True  # the session's model titles it after the first exchange
    # Pairs that leave the context window: "drop" them, or "summarize" them first (compaction).
    overflow: str = "drop"
    max_sessions: int = 50
    max_context_size: int = 100_000
    max_stdin_bytes: int = 4 * 1024 * 1024
    max_message_chars: int = 1_000_000
    max_session_bytes: int = 64 * 1024 * 1024
    max_import_bytes: int = 4 * 64 * 1024 * 1024
    max_attach_bytes: int = 100 * 1024
    log_oneshots: bool = True  # one-off questions are kept as ended sessions
    stream_length: int = 10_000  # Redis: events kept per session for followers (0: none)
    floor_wait_seconds: float = 120.0
    floor_ttl_seconds: float = 15.0
    providers: dict = field(default_factory=dict)
    specialists: dict = field(default_factory=dict)
    theme: str = "default"
    search_index: bool = True
    search_plaintext: bool = False
    prices: dict = field(default_factory=dict)  # name -> {"input": usd, "output": usd} per 1M
    sync_dir: Path | None = None  # `aish --sync` without --dir/--to
    sync_url: str | None = None
    warm_enabled: bool = True
    warm_idle_minutes: float = 10.0
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


def _read_file(path: Path, home: Path) -> tuple[dict, int]:
    """The file's settings and its permission bits; ({}, 0) when there is no file. ``home``
    holds the cache of what the file's text parsed to.

    Opened without blocking and refused unless it is a regular file of at most MAX_FILE_BYTES,
    so a FIFO, a device or a huge file cannot stall or swamp the parser.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return {}, 0
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read config: {_reason(exc)}") from None
    try:
        info = os.fstat(fd)
        if _is_dev_null(info):  # AISH_CONFIG=/dev/null: run with no config file
            return {}, 0
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path}: cannot read config: not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {_reason(exc)}") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: config file is larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        return {}, info.st_mode
    from aish import configcache

    data = configcache.parsed(path, text, home, lambda t: _parse(t, str(path)))
    if data is None:
        return {}, info.st_mode
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    _check_keys(data, (), str(path))
    return data, info.st_mode


def _parse(text: str, where: str) -> Any:
    from aish import boundedyaml

    return boundedyaml.load(text, where)


def _is_dev_null(info: os.stat_result) -> bool:
    try:
        null = os.stat(os.devnull)
    except OSError:
        return False
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == null.st_rdev


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)[:120]


def _check_keys(node: Any, keys: tuple, source: str) -> None:
    """Every mapping key must be a string (YAML also allows numbers, booleans, null, lists...).
    The walk is bounded: the loader caps how many values the tree can hold."""
    if isinstance(node, list):
        for item in node:
            _check_keys(item, keys, source)
    elif isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str):
                where = f" in {_dotted(keys)}" if keys else ""
                raise ConfigError(f"{source}: key {_shown(key)}{where}: expected a string key")
            _check_keys(value, keys + (key,), source)


def _dotted(keys: tuple) -> str:
    return ".".join(k if k.isprintable() and "." not in k else repr(k) for k in keys)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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

    def fail(self, keys: tuple, expected: str, value: Any = None) -> NoReturn:
        source = self.sources.get(tuple(keys), "config")
        shown = f", got {_shown(value)}" if value is not None else ""
        raise ConfigError(f"{source}: {_dotted(keys)}: expected {expected}{shown}")

    def integer(self, *keys: str, minimum: int = 0) -> int:
        value = self.raw(*keys)
        # At most 16 digits: int() of a huge digit string is slow or refused outright.
        if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]{1,16}\s*", value):
            value = int(value)
        if (isinstance(value, bool) or not isinstance(value, int)
                or not minimum <= value <= MAX_INTEGER):
            # The upper bound is named only to a value past it: "<= 9007199254740992" in
            # every other message would only puzzle.
            huge = (isinstance(value, int) and value > MAX_INTEGER
                    or isinstance(value, str) and re.fullmatch(r"\s*[0-9]+\s*", value))
            bound = " up to 2**53" if huge else ""
            self.fail(keys, f"a whole number >= {minimum}{bound}", value)
        return value

    def number(self, *keys: str, maximum: float = float(MAX_INTEGER)) -> float:
        value = self.raw(*keys)
        number = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value) if abs(value) <= MAX_INTEGER else math.inf
        elif isinstance(value, str) and len(value) <= 40:
            with contextlib.suppress(ValueError):
                number = float(value)
        if number is None or not 0 < number <= maximum:  # NaN fails every comparison
            self.fail(keys, f"a positive number up to {maximum:g}", value)
        return number

    def boolean(self, *keys: str) -> bool:
        value = self.raw(*keys)
        if isinstance(value, str) and value.lower() in BOOLEAN_WORDS:
            return BOOLEAN_WORDS[value.lower()]
        if not isinstance(value, bool):
            self.fail(keys, "true or false", value)
        return value

    if TYPE_CHECKING:
        @overload
        def text(self, *keys: str, choices: tuple[str, ...] | None = None,
                 optional: Literal[False] = False, secret: bool = False) -> str: ...

        @overload
        def text(self, *keys: str, choices: tuple[str, ...] | None = None,
                 optional: bool, secret: bool = False) -> str | None: ...

    def text(self, *keys: str, choices: tuple[str, ...] | None = None,
             optional: bool = False, secret: bool = False) -> str | None:
        value = self.raw(*keys)
        if value is None and optional:
            return None
        if not isinstance(value, str) or (choices and value not in choices):
            self.fail(keys, " or ".join(choices) if choices else "a string",
                      None if secret else value)
        if not _clean_text(value):
            self.fail(keys, "text without NUL or undecodable bytes", None if secret else value)
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
    for name in (*ENV_KEYS, "AISH_CONFIG"):
        if not _clean_text(env.get(name) or ""):
            raise ConfigError(f"environment {name}: holds a NUL or bytes that are not UTF-8")
    home = Path(env.get("HOME") or _expand("~", "HOME")) / ".aish"
    file = (_expand(env["AISH_CONFIG"], "environment AISH_CONFIG") if env.get("AISH_CONFIG")
            else home / "config.yaml")
    from_file, mode = _read_file(file, home)
    warnings = _unknown_keys(from_file, KNOWN_KEYS, (), str(file))
    readable = from_file and mode & (stat.S_IRGRP | stat.S_IROTH)
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
    where = f"{c.sources.get(('sessions', 'storage', 'path'), 'config')}: sessions.storage.path"
    session_dir = _expand(path, where) if path else home / "sessions"
    # `auto_save: true` (yes, on) writes every message, `false` only on save, N every N messages.
    auto = c.raw("sessions", "defaults", "auto_save")
    if isinstance(auto, bool) or str(auto).lower() in BOOLEAN_WORDS:
        auto_save = int(c.boolean("sessions", "defaults", "auto_save"))
    else:
        if not isinstance(auto, int) and not (isinstance(auto, str)
                                              and re.fullmatch(r"\s*-?[0-9]+\s*", auto)):
            c.fail(("sessions", "defaults", "auto_save"), "true, false or a whole number >= 0",
                   auto)
        auto_save = c.integer("sessions", "defaults", "auto_save")
    return Config(
        home=home,
        file=file,
        session_dir=session_dir,
        storage_type=c.text("sessions", "storage", "type", choices=("file", "redis")),
        redis_url=_redis_url(c),
        encrypt=c.boolean("sessions", "storage", "encrypt"),
        context_window=c.integer("sessions", "defaults", "context_window"),
        timeout_minutes=c.number("sessions", "defaults", "timeout_minutes",
                                 maximum=MAX_TIMEOUT_MINUTES),
        auto_save=auto_save,
        auto_title=c.boolean("sessions", "defaults", "auto_title"),
        overflow=c.text("sessions", "defaults", "overflow", choices=("drop", "summarize")),
        max_sessions=c.integer("sessions", "limits", "max_sessions", minimum=1),
        max_context_size=c.integer("sessions", "limits", "max_context_size", minimum=1),
        max_stdin_bytes=c.integer("sessions", "limits", "max_stdin_bytes", minimum=1),
        max_message_chars=c.integer("sessions", "limits", "max_message_chars", minimum=1),
        max_session_bytes=c.integer("sessions", "limits", "max_session_bytes", minimum=1),
        max_import_bytes=_import_bytes(c),
        max_attach_bytes=c.integer("sessions", "limits", "max_attach_bytes", minimum=1),
        log_oneshots=c.boolean("sessions", "log_oneshots"),
        stream_length=c.integer("sessions", "storage", "stream_length"),
        floor_wait_seconds=_seconds(c, "floor_wait_seconds", allow_zero=True),
        floor_ttl_seconds=_seconds(c, "floor_ttl_seconds", allow_zero=True),
        providers=c.mapping("providers"),
        specialists=c.mapping("specialists"),
        theme=c.text("ui", "theme"),
        search_index=c.boolean("search", "index"),
        search_plaintext=c.boolean("search", "index_plaintext"),
        prices=_prices(c),
        **_sync_target(c),
        warm_enabled=c.boolean("warm", "enabled"),
        warm_idle_minutes=c.number("warm", "idle_minutes", maximum=MAX_TIMEOUT_MINUTES),
        warnings=tuple(warnings),
    )


IMPORT_SESSIONS = 4  # unset, one import may read this many times the session size limit


def _import_bytes(c: _Checker) -> int:
    """``sessions.limits.max_import_bytes``; unset, a few sessions' worth, so that lowering
    the session limit lowers it too."""
    if c.raw("sessions", "limits", "max_import_bytes") is None:
        session = c.integer("sessions", "limits", "max_session_bytes", minimum=1)
        return min(IMPORT_SESSIONS * session, MAX_INTEGER)
    return c.integer("sessions", "limits", "max_import_bytes", minimum=1)


def _seconds(c: _Checker, key: str, allow_zero: bool = False) -> float:
    """``sessions.KEY``: a positive number of seconds (``allow_zero``: 0 is allowed too)."""
    if allow_zero and c.raw("sessions", key) in (0, "0"):
        return 0.0
    return c.number("sessions", key, maximum=MAX_TIMEOUT_SECONDS)


def _sync_target(c: _Checker) -> dict:
    folder = c.text("sync", "dir", optional=True)
    url = c.text("sync", "url", optional=True)
    if url:
        check_redis_url(url, f"{c.sources.get(('sync', 'url'), 'config')}: sync.url")
    where = f"{c.sources.get(('sync', 'dir'), 'config')}: sync.dir"
    return {"sync_dir": _expand(folder, where) if folder else None, "sync_url": url or None}


def _check_providers(c: _Checker) -> None:
    """Type-check provider settings here, so a bad one is a config error naming its key rather
    than a provider failure later. An API key's value is never shown."""
    c.text("providers", "default", choices=("openai", "local"), optional=True)
    for provider in ("openai", "local"):
        settings = c.mapping("providers", provider)
        for key, kind in PROVIDER_KINDS.items():
            value = settings.get(key)
            keys = ("providers", provider, key)
            if value is None:
                continue
            if kind == "text":
                c.text(*keys, secret=key == "api_key")
            elif kind == "positive":  # a timeout: sockets take at most about 9e9 s
                c.number(*keys, maximum=MAX_TIMEOUT_SECONDS)
            elif kind == "count":
                c.integer(*keys, minimum=1 if key in ("n_ctx", "max_tokens") else 0)
            elif kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)
                                       or not 0 <= value <= MAX_INTEGER):  # NaN fails this too
                c.fail(keys, "a number >= 0", value)


def _prices(c: _Checker) -> dict:
    """``prices``: per model or provider name, both ``input`` and ``output`` in USD per million
    tokens, each a number >= 0."""
    out = {}
    for name in c.mapping("prices"):
        c.mapping("prices", name)
        price = {}
        for side in ("input", "output"):
            value = c.raw("prices", name, side)
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or not 0 <= value <= MAX_INTEGER):  # NaN fails this too
                c.fail(("prices", name, side), "a number >= 0 (USD per million tokens)", value)
            price[side] = float(value)
        out[name] = price
    return out


def _expand(path: str, where: str) -> Path:
    try:
        return Path(path).expanduser()
    except (RuntimeError, KeyError):  # `~name` of a user that does not exist, or no home at all
        raise ConfigError(f"{where}: cannot find the home directory for {_shown(path)}") from None


def _redis_url(c: _Checker) -> str | None:
    url = c.text("sessions", "storage", "url", optional=True)
    if url is not None:
        source = c.sources.get(("sessions", "storage", "url"), "config")
        check_redis_url(url, f"{source}: sessions.storage.url")
    return url


REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
MAX_REDIS_DB = 2**31 - 1  # Redis numbers its databases with a C int


def check_redis_url(url: str, source: str) -> None:
    """Refuse a Redis URL whose database is not a number in range: redis-py quietly uses db 0
    for `/notadb` or `/3x`, so sessions would land where nobody looks for them. The URL is shown
    without its password."""
    from urllib.parse import parse_qs, urlsplit

    shown = redacted_url(url)
    try:
        # The redacted form is parsed, so no part of a password can reach a message.
        parts = urlsplit(shown)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise ConfigError(f"{source}: {shown}: not a usable Redis URL",
                          hint="expected redis://HOST:PORT/DB") from None
    if parts.scheme not in REDIS_SCHEMES:
        raise ConfigError(f"{source}: {shown}: not a Redis URL",
                          hint="expected redis://, rediss://, unix:// or redis+cluster://")
    dbs = parse_qs(parts.query).get("db", [])
    if parts.scheme != "unix" and parts.path not in ("", "/"):
        dbs.append(parts.path[1:])
    for db in dbs:
        if not (db.isascii() and db.isdigit() and int(db[:12]) <= MAX_REDIS_DB):
            raise ConfigError(f"{source}: {shown}: database {_shown(db)} is not a number "
                              f"from 0 to {MAX_REDIS_DB}")
        if parts.scheme.endswith("+cluster") and int(db) != 0:
            raise ConfigError(f"{source}: {shown}: a Redis Cluster has only database 0")


def redacted_url(url: str) -> str:
    """The URL with everything between `//` and the last `@` but a user name shown as ***:
    a password may itself hold `/` or `@`, so the last `@` is the only safe boundary."""
    scheme, sep, rest = url.partition("//")
    if not sep or "@" not in rest:
        return url
    userinfo, _, host = rest.rpartition("@")
    user = userinfo.split(":", 1)[0] + ":" if ":" in userinfo else ""
    return f"{scheme}//{user}***@{host}"


def _unknown_keys(tree: dict, known: dict, keys: tuple, source: str) -> list[str]:
    """Warnings for keys aish does not read, each with the nearest known one: a misspelt key
    would otherwise be ignored without a word. Names the user chooses are not checked."""
    unknown = list(_unknown_paths(tree, known, keys))
    warnings = [f"{source}: unknown key {_dotted(path)} ignored ({_nearest(path)})"
                for path in unknown[:MAX_KEY_WARNINGS]]
    if len(unknown) > MAX_KEY_WARNINGS:
        warnings.append(f"{source}: {len(unknown) - MAX_KEY_WARNINGS} more unknown keys ignored")
    return warnings


def _unknown_paths(tree: dict, known: dict, keys: tuple):
    for key, value in tree.items():
        sub = known.get(ANY_NAME, known.get(key, ...))
        if sub is ...:
            yield keys + (key,)
        elif isinstance(sub, dict) and isinstance(value, dict):
            yield from _unknown_paths(value, sub, keys + (key,))


def _nearest(path: tuple) -> str:
    """A hint for an unknown key: the closest key of its own section, else the closest key
    anywhere (`defaults` written at the top level means `sessions.defaults`)."""
    import difflib  # only for a misspelt key

    *section, key = path
    known: Any = KNOWN_KEYS
    for name in section:
        known = known.get(ANY_NAME, known.get(name))
    names = [k for k in known if k != ANY_NAME]
    close = difflib.get_close_matches(key, names, n=1)
    if close:
        return f"did you mean {'.'.join((*section, close[0]))!r}?"
    # Elsewhere, but not the section the key is already in.
    here = ".".join(section)
    paths = {k: p for k, p in _known_paths(KNOWN_KEYS, ()) if not here.startswith(p)}
    close = difflib.get_close_matches(key, list(paths), n=1)
    if close:
        return f"did you mean {paths[close[0]]!r}?"
    return f"known here: {', '.join(names) or 'none'}"


def _known_paths(known: dict, keys: tuple):
    """(key, dotted path) for every key in KNOWN_KEYS; user-chosen names show as NAME."""
    for key, sub in known.items():
        path = keys + ("NAME" if key == ANY_NAME else key,)
        if key != ANY_NAME:
            yield key, ".".join(path)
        if isinstance(sub, dict):
            yield from _known_paths(sub, path)


def _clean_text(text: str) -> bool:
    """No NUL (the OS cuts strings there) and no lone surrogates (bytes that were not UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\0" not in text


def _mentions_key(tree: Any) -> bool:
    if isinstance(tree, dict):
        return any(k == "api_key" and v or _mentions_key(v) for k, v in tree.items())
    return False
