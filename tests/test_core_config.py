"""Configuration: built-in defaults < config file < environment < flags, every value typed, and a
bad value is a clear error (exit 8) naming the file (or variable), the key and what is expected."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run
from fault_server import FaultServer

from aish.config import load
from aish.errors import CONFIG, LIMIT, ConfigError
from aish.specialists import BUILTIN


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


FILE = """\
# my settings
sessions:
  storage: {type: file, path: %s}
  defaults: {context_window: 5, timeout_minutes: 30, auto_save: 3}
  limits: {max_sessions: 7, max_context_size: 5000}
"""


def test_defaults(tmp_path):
    c = load({"HOME": str(tmp_path)})
    assert c.session_dir == tmp_path / ".aish" / "sessions"
    assert c.file == tmp_path / ".aish" / "config.yaml"
    assert (c.context_window, c.timeout_minutes, c.auto_save) == (10, 60.0, 1)
    assert (c.max_sessions, c.max_context_size) == (50, 100_000)
    assert c.storage_type == "file" and c.encrypt is False and c.theme == "default"


def test_the_import_bound_follows_the_session_limit_unless_set(tmp_path):
    assert load({"HOME": str(tmp_path)}).max_import_bytes == 4 * 64 * 1024 * 1024
    path = write(tmp_path / ".aish" / "config.yaml",
                 "sessions:\n  limits: {max_session_bytes: 1000}\n")
    assert load({"HOME": str(tmp_path)}).max_import_bytes == 4000
    path.write_text("sessions:\n  limits: {max_session_bytes: 1000, max_import_bytes: 1500}\n")
    c = load({"HOME": str(tmp_path)})
    assert (c.max_session_bytes, c.max_import_bytes) == (1000, 1500)
    assert not c.warnings  # a key aish knows


def test_file_over_defaults_env_over_file(tmp_path):
    write(tmp_path / ".aish" / "config.yaml", FILE % (tmp_path / "from-file"))
    c = load({"HOME": str(tmp_path)})
    assert c.session_dir == tmp_path / "from-file"
    assert (c.context_window, c.timeout_minutes, c.auto_save) == (5, 30.0, 3)
    assert (c.max_sessions, c.max_context_size) == (7, 5000)

    env = {"HOME": str(tmp_path), "AISH_SESSION_DIR": str(tmp_path / "from-env"),
           "AISH_DEFAULT_CONTEXT": "8", "AISH_SESSION_TIMEOUT": "2.5", "AISH_MAX_SESSIONS": "9"}
    c = load(env)
    assert c.session_dir == tmp_path / "from-env"
    assert (c.context_window, c.timeout_minutes, c.max_sessions) == (8, 2.5, 9)
    assert c.max_context_size == 5000  # untouched by the environment: still the file's
    # An empty variable does not count as set.
    assert load({**env, "AISH_DEFAULT_CONTEXT": ""}).context_window == 5


def test_aish_config_names_the_file(tmp_path):
    other = write(tmp_path / "elsewhere.yaml", "sessions:\n  defaults: {context_window: 3}\n")
    write(tmp_path / ".aish" / "config.yaml", "sessions:\n  defaults: {context_window: 4}\n")
    c = load({"HOME": str(tmp_path), "AISH_CONFIG": str(other)})
    assert c.file == other and c.context_window == 3


def test_session_dir_tilde_is_expanded(tmp_path):
    write(tmp_path / ".aish" / "config.yaml", "sessions:\n  storage: {path: ~/s}\n")
    assert load({"HOME": str(tmp_path)}).session_dir == Path("~/s").expanduser()


BAD_FILE_VALUES = {
    "negative window": ("sessions:\n  defaults: {context_window: -1}\n",
                        "sessions.defaults.context_window", "whole number"),
    "words for a number": ("sessions:\n  limits: {max_sessions: lots}\n",
                           "sessions.limits.max_sessions", "whole number"),
    "zero sessions": ("sessions:\n  limits: {max_sessions: 0}\n",
                      "sessions.limits.max_sessions", ">= 1"),
    "zero import bound": ("sessions:\n  limits: {max_import_bytes: 0}\n",
                          "sessions.limits.max_import_bytes", ">= 1"),
    "words for an import bound": ("sessions:\n  limits: {max_import_bytes: big}\n",
                                  "sessions.limits.max_import_bytes", "whole number"),
    "zero timeout": ("sessions:\n  defaults: {timeout_minutes: 0}\n",
                     "sessions.defaults.timeout_minutes", "positive number"),
    "unknown store": ("sessions:\n  storage: {type: ftp}\n", "sessions.storage.type", "redis"),
    "not a bool": ("sessions:\n  storage: {encrypt: maybe}\n", "sessions.storage.encrypt",
                   "true or false"),
    "list for a section": ("sessions: [1, 2]\n", "sessions", "mapping"),
    "theme number": ("ui: {theme: 3}\n", "ui.theme", "string"),
    "provider timeout": ("providers:\n  openai: {timeout: soon}\n", "providers.openai.timeout",
                         "positive number"),
    "provider retries": ("providers:\n  openai: {max_retries: -2}\n",
                         "providers.openai.max_retries", "whole number"),
    "provider default": ("providers:\n  default: gemini\n", "providers.default", "openai"),
    "temperature": ("providers:\n  local: {temperature: hot}\n", "providers.local.temperature",
                    "number"),
}


@pytest.mark.parametrize("case", BAD_FILE_VALUES)
def test_bad_file_values_name_file_and_key(tmp_path, case):
    text, key, expected = BAD_FILE_VALUES[case]
    path = write(tmp_path / ".aish" / "config.yaml", text)
    with pytest.raises(ConfigError) as info:
        load({"HOME": str(tmp_path)})
    message = str(info.value)
    assert str(path) in message and key in message and expected in message, message
    assert info.value.exit_code == CONFIG == 8


def test_bad_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path / ".aish" / "config.yaml", "sessions:\n  defaults: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load({"HOME": str(tmp_path)})
    assert str(path) in str(info.value) and "line" in str(info.value)
    write(path, "- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load({"HOME": str(tmp_path)})


def test_bad_environment_values_name_the_variable(tmp_path):
    for name, value, key in (("AISH_DEFAULT_CONTEXT", "ten", "sessions.defaults.context_window"),
                             ("AISH_MAX_SESSIONS", "0", "sessions.limits.max_sessions"),
                             ("AISH_SESSION_TIMEOUT", "-5", "sessions.defaults.timeout_minutes")):
        with pytest.raises(ConfigError) as info:
            load({"HOME": str(tmp_path), name: value})
        assert name in str(info.value) and key in str(info.value)


def test_api_key_values_are_never_shown_in_config_errors(tmp_path):
    write(tmp_path / ".aish" / "config.yaml", "providers:\n  openai: {api_key: 123456789}\n")
    with pytest.raises(ConfigError) as info:
        load({"HOME": str(tmp_path)})
    assert "providers.openai.api_key" in str(info.value)
    assert "123456789" not in str(info.value)


def test_readable_config_with_a_key_warns(aish, home):
    path = Path(home["HOME"]) / ".aish" / "config.yaml"
    path.write_text("providers:\n  openai: {api_key: sk-secret-value}\n")
    path.chmod(0o644)
    result = aish("aish", "--list-sessions")
    assert result.returncode == 0
    err = result.stderr.decode()
    assert "readable by others" in err and "sk-secret-value" not in err


# -- through the command line --------------------------------------------------------------------


def test_cli_bad_config_exits_8_with_one_line(aish, home):
    path = Path(home["HOME"]) / ".aish" / "config.yaml"
    path.write_text("sessions:\n  defaults: {context_window: many}\n")
    for argv, stdin in ((("aish", "--list-sessions"), None), (("apollo", "--session"), "hi")):
        result = aish(*argv, input=stdin)
        err = result.stderr.decode()
        assert result.returncode == CONFIG, err
        assert str(path) in err and "sessions.defaults.context_window" in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    result = aish("aish", "--list-sessions", AISH_DEFAULT_CONTEXT="x")
    assert result.returncode == CONFIG and b"AISH_DEFAULT_CONTEXT" in result.stderr


@pytest.mark.parametrize("spec, key", [
    ("apollo: {provider: gemini}", "specialists.apollo.provider"),
    ("apollo: {temperature: warm}", "specialists.apollo.temperature"),
    ("apollo: {temperature: .nan}", "specialists.apollo.temperature"),
    ("apollo: {top_p: .inf}", "specialists.apollo.top_p"),
    ("apollo: [1]", "specialists.apollo"),
    ("bad/name: {persona: x}", "specialists"),
])
def test_cli_bad_specialist_config_names_file_and_key(aish, home, spec, key):
    path = Path(home["HOME"]) / ".aish" / "config.yaml"
    path.write_text(f"specialists:\n  {spec}\n")
    result = aish("apollo", "--session", input="hi")
    err = result.stderr.decode()
    assert result.returncode == CONFIG, err
    assert str(path) in err and key in err, err


def created_window(env, *flags: str) -> int:
    """Create a session without sending anything and return its context window."""
    result = run(env, "apollo", "--session", "--get-id", *flags)
    assert result.returncode == 0, result.stderr.decode()
    sid = result.stdout.decode().strip()
    listing = json.loads(run(env, "aish", "--list-sessions", "--json").stdout)
    return next(r["context_window"] for r in listing if r["id"] == sid)


def test_cli_precedence_flag_over_env_over_file(home):
    path = Path(home["HOME"]) / ".aish" / "config.yaml"
    path.write_text(path.read_text() + "sessions:\n  defaults: {context_window: 5}\n")
    assert created_window(home) == 5
    env = {**home, "AISH_DEFAULT_CONTEXT": "7"}
    assert created_window(env) == 7
    assert created_window(env, "--context-window", "3") == 3
    assert created_window(env, "--context-window", "0") == 0


def test_cli_session_dir_from_file_then_env(home, tmp_path):
    path = Path(home["HOME"]) / ".aish" / "config.yaml"
    path.write_text(path.read_text() + f"sessions:\n  storage: {{path: {tmp_path / 'f'}}}\n")
    sid = run(home, "apollo", "--session", "--get-id").stdout.decode().strip()
    assert (tmp_path / "f" / f"{sid}.jsonl").exists()
    env = {**home, "AISH_SESSION_DIR": str(tmp_path / "e")}
    sid2 = run(env, "apollo", "--session", "--get-id").stdout.decode().strip()
    assert (tmp_path / "e" / f"{sid2}.jsonl").exists()
    assert not (tmp_path / "f" / f"{sid2}.jsonl").exists()
    assert (tmp_path / "e").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "e" / f"{sid2}.jsonl").stat().st_mode & 0o777 == 0o600


def test_cli_max_sessions_env_over_file(home):
    path = Path(home["HOME"]) / ".aish" / "config.yaml"
    path.write_text(path.read_text() + "sessions:\n  limits: {max_sessions: 5}\n")
    env = {**home, "AISH_MAX_SESSIONS": "2"}
    ids = [run(env, "apollo", "--session", "--get-id").stdout.decode().strip() for _ in range(2)]
    result = run(env, "apollo", "--session", "--get-id")
    err = result.stderr.decode()
    assert result.returncode == LIMIT, err
    assert "--end-session" in err and "--cleanup-sessions" in err
    assert result.stdout == b""
    # Ending one makes room; nothing was deleted to make it.
    assert run(env, "aish", "--end-session", ids[0]).returncode == 0
    assert run(env, "apollo", "--session", "--get-id").returncode == 0
    listing = json.loads(run(env, "aish", "--list-sessions", "--all", "--json").stdout)
    assert len(listing) == 3


def test_cli_timeout_from_env_expires_sessions(home):
    sid = run(home, "apollo", "--session", "--get-id").stdout.decode().strip()
    env = {**home, "AISH_SESSION_TIMEOUT": "0.00001"}  # under a millisecond
    active = json.loads(run(env, "aish", "--list-sessions", "--json").stdout)
    assert active == []
    everything = json.loads(run(env, "aish", "--list-sessions", "--all", "--json").stdout)
    assert [(r["id"], r["state"]) for r in everything] == [(sid, "expired")]
    active = json.loads(run(home, "aish", "--list-sessions", "--json").stdout)
    assert [r["id"] for r in active] == [sid]


def test_config_adds_and_overrides_specialists(home):
    path = Path(home["HOME"]) / ".aish" / "config.yaml"
    path.write_text(path.read_text() + (
        "specialists:\n"
        "  zeus: {persona: 'You are Zeus, who decides.', description: decides}\n"
        "  apollo: {persona: 'You are a terse Apollo.'}\n"))
    with FaultServer() as server:
        env = {**home, "OPENAI_BASE_URL": server.base, "OPENAI_API_KEY": "k"}
        result = run(env, "aish", "zeus", "--session", input="decide")
        assert result.returncode == 0, result.stderr.decode()
        assert server.last_messages[0]["content"] == "You are Zeus, who decides."
        result = run(env, "apollo", "hello")
        assert result.returncode == 0, result.stderr.decode()
        assert server.last_messages[0]["content"] == "You are a terse Apollo."
        result = run(env, "athena", "hello")
        assert server.last_messages[0]["content"] == BUILTIN["athena"]["persona"]


def test_expired_and_ended_sessions_revive_and_do_not_count(tmp_path):
    from aish.errors import LimitError
    from aish.sessions import ACTIVE, ENDED, EXPIRED, Sessions
    from aish.store.filestore import FileStore

    clock = [1_000_000.0]
    config = load({"HOME": str(tmp_path), "AISH_MAX_SESSIONS": "2", "AISH_SESSION_TIMEOUT": "60"})
    sessions = Sessions(FileStore(tmp_path / "s"), config, now=lambda: clock[0])
    a = sessions.create("apollo")
    b = sessions.create("apollo")
    with pytest.raises(LimitError):
        sessions.create("apollo")
    clock[0] += 61 * 60  # an hour and a minute later, both have expired
    assert sessions.state(sessions.summary(a.id)) == EXPIRED
    assert sessions.listing() == []
    c = sessions.create("athena")  # expired sessions leave room
    sessions.end(c.id)
    assert sessions.state(sessions.summary(c.id)) == ENDED
    revived = sessions.open("apollo", a.id)  # naming an expired session continues it
    assert sessions.state(revived.summary) == ACTIVE
    assert {s.id for s, _ in sessions.listing()} == {a.id}
    assert {s.id for s, _ in sessions.listing(include_all=True)} == {a.id, b.id, c.id}


# -- hostile files: every one is a config error naming the file, and the work is bounded --------


def load_file(tmp_path: Path, text: str | bytes):
    path = tmp_path / "hostile.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return load({"HOME": str(tmp_path), "AISH_CONFIG": str(path)})


def config_error(tmp_path: Path, text: str | bytes) -> str:
    with pytest.raises(ConfigError) as info:
        load_file(tmp_path, text)
    message = str(info.value)
    assert str(tmp_path / "hostile.yaml") in message and "\n" not in message, message
    return message


def billion_laughs(levels: int = 9, fan: int = 9) -> str:
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fan)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(60)
def test_alias_bomb_is_refused_for_its_aliases(tmp_path):
    # Nine aliases a level: few aliases in all, but a tree of 9**9 values once expanded.
    assert "aliases" in config_error(tmp_path, billion_laughs())
    # Many aliases of one scalar: each is small, their number alone is refused.
    flat = "x: &x 1\nl: [" + ", ".join(["*x"] * 60) + "]\n"
    assert "too many aliases" in config_error(tmp_path, flat)


def test_ordinary_anchors_and_merge_keys_still_work(tmp_path):
    c = load_file(tmp_path, "specialists:\n"
                            "  sherlock: &base {persona: 'You find bugs.', temperature: 0.2}\n"
                            "  watson: {<<: *base, description: helps}\n")
    assert c.specialists["watson"] == {"persona": "You find bugs.", "temperature": 0.2,
                                       "description": "helps"}
    assert c.warnings == ()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("text", [
    "a: " + "[" * 5000 + "]" * 5000 + "\n",
    "a: " + "{b: " * 3000 + "1" + "}" * 3000 + "\n",
    "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "x\n",
], ids=["flow lists", "flow maps", "block maps"])
def test_deep_nesting_is_refused_before_recursion(tmp_path, text):
    assert "nested deeper" in config_error(tmp_path, text)


def test_invalid_utf8_names_the_file(tmp_path):
    assert "UTF-8" in config_error(tmp_path, b"sessions:\n  defaults: {x: \xff\xfe}\n")


@pytest.mark.parametrize("text, expected", [
    ("- a\n- list\n", "top level"),
    ("just a string\n", "top level"),
    ("42\n", "top level"),
    ("null\n", "top level"),
    ("sessions: [1, 2]\n", "sessions: expected a mapping"),
    ("sessions:\n  storage: [file]\n", "sessions.storage: expected a mapping"),
    ("1: 2\n", "key 1"),
    ("sessions:\n  defaults:\n    3: x\n", "key 3 in sessions.defaults"),
    ("true: 1\n", "key True"),
    ("? [a, b]\n: 1\n", "key ('a', 'b')"),
    ("a: 1\na: 2\n", "duplicate key"),
    ("a: 1\n---\nb: 2\n", "another document"),
    ("a: !!python/object:os.system x\n", "constructor"),
    ("ui: {theme: \x07}\n", "unacceptable character"),
    ("sessions:\n  defaults: {context_window: " + "9" * 5000 + "}\n", "not valid YAML"),
    ("sessions:\n  defaults: {context_window: " + "9" * 30 + "}\n", "context_window"),
    ("sessions:\n  defaults: {timeout_minutes: .nan}\n", "timeout_minutes"),
    ("sessions:\n  defaults: {timeout_minutes: 1e300}\n", "timeout_minutes"),
    ("providers:\n  local: {temperature: .nan}\n", "providers.local.temperature"),
    ("providers:\n  openai: {timeout: 1e12}\n", "providers.openai.timeout"),
    ("ui: {theme: \"a\\0b\"}\n", "ui.theme"),
    ("sessions:\n  storage: {path: \"\\udc80\"}\n", "sessions.storage.path"),
], ids=lambda v: v if len(v) < 30 else v[:27] + "...")
def test_wrong_types_are_config_errors(tmp_path, text, expected):
    assert expected in config_error(tmp_path, text)


def test_oversized_and_special_files(tmp_path):
    assert "larger than" in config_error(tmp_path, "# " + "x" * 100_000 + "\n")
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # reading it would block for ever
    for path in (fifo, tmp_path):
        with pytest.raises(ConfigError, match="not a regular file"):
            load({"HOME": str(tmp_path), "AISH_CONFIG": str(path)})
    # /dev/null is how one says "no config file".
    assert load({"HOME": str(tmp_path), "AISH_CONFIG": os.devnull}).context_window == 10


def test_yaml_errors_never_quote_an_api_key(tmp_path):
    message = config_error(tmp_path, "providers:\n  openai:\n    api_key: sk-first\n"
                                     "    api_key: sk-second\n")
    assert "duplicate key" in message and "api_key" in message
    assert "sk-first" not in message and "sk-second" not in message


# -- misspelt keys warn, naming the file, the key and the nearest known key ----------------------


def test_misspelt_keys_warn_with_the_nearest_known_key(tmp_path):
    c = load_file(tmp_path, "defualts: {context_window: 3}\n"
                            "sesions: {}\n"
                            "sessions:\n  defaults: {context_windw: 3}\n"
                            "providers:\n  openai: {api_kye: k}\n"
                            "specialists:\n  zeus: {persnoa: x}\n  my-own-name: {persona: y}\n"
                            "ui: {them: dark}\n")
    path = str(tmp_path / "hostile.yaml")
    assert all(w.startswith(path + ": unknown key ") for w in c.warnings), c.warnings
    hints = {w.split(": unknown key ")[1].split(" ")[0]: w.split("did you mean ")[1]
             for w in c.warnings}
    assert hints == {"defualts": "'sessions.defaults'?)", "sesions": "'sessions'?)",
                     "sessions.defaults.context_windw": "'sessions.defaults.context_window'?)",
                     "providers.openai.api_kye": "'providers.openai.api_key'?)",
                     "specialists.zeus.persnoa": "'specialists.zeus.persona'?)",
                     "ui.them": "'ui.theme'?)"}
    assert c.context_window == 10  # a misspelt key changes nothing


def test_many_unknown_keys_give_a_bounded_number_of_warnings(tmp_path):
    c = load_file(tmp_path, "".join(f"key{i}: 1\n" for i in range(50)))
    assert len(c.warnings) == 11 and "40 more unknown keys" in c.warnings[-1]


def test_cli_misspelt_key_warns_and_goes_on(aish, home):
    path = Path(home["HOME"]) / ".aish" / "config.yaml"
    path.write_text(path.read_text() + "sessions:\n  defualts: {context_window: 3}\n")
    result = aish("aish", "--list-sessions")
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert f"{path}: unknown key sessions.defualts ignored" in err
    assert "did you mean 'sessions.defaults'?" in err


# -- Redis URLs: a database that is not a number in range is refused, without the password -------


@pytest.mark.parametrize("url", [
    "redis://:hunter2@host/notadb", "redis://:hunter2@host/3x", "redis://:hunter2@host/-1",
    "redis://:hunter2@host/0/1", "redis://:hunter2@host/99999999999999",
    "redis://:hunter2@host/?db=x", "unix://:hunter2@/tmp/redis.sock?db=-1",
    "redis://:hunter2@host:port/0", "redis://:hunter2@host:70000/0", "http://:hunter2@host/0",
    "redis://user:hun/ter2@host/0x",
])
def test_bad_redis_urls_are_config_errors_without_the_password(tmp_path, url):
    message = config_error(tmp_path, f"sessions:\n  storage: {{type: redis, url: '{url}'}}\n")
    assert "sessions.storage.url" in message and "***@" in message, message
    assert "hunter2" not in message and "hun/" not in message and "ter2" not in message


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "redis://:pw@h/15", "redis://h",
                                 "rediss://user:pw@h:6380/2", "unix:///tmp/r.sock?db=3"])
def test_good_redis_urls_load(tmp_path, url):
    assert load_file(tmp_path, f"sessions:\n  storage: {{url: '{url}'}}\n").redis_url == url


def test_cli_bad_redis_db_exits_8_in_store_and_sync(aish, home):
    path = Path(home["HOME"]) / ".aish" / "config.yaml"
    path.write_text("sessions:\n  storage: {type: redis, url: 'redis://:hunter2@127.0.0.1/3x'}\n")
    for argv in (("aish", "--list-sessions"), ("apollo", "--session", "--get-id")):
        result = aish(*argv)
        err = result.stderr.decode()
        assert result.returncode == CONFIG, err
        assert str(path) in err and "'3x'" in err and "hunter2" not in err
        assert len(err.strip().splitlines()) == 1
    path.write_text("")
    result = aish("aish", "--sync-sessions", "--url", "redis://:hunter2@127.0.0.1:1/notadb")
    err = result.stderr.decode()
    assert result.returncode == CONFIG, err
    assert "--url" in err and "'notadb'" in err and "hunter2" not in err


# -- hostile environment values name the variable ----------------------------------------------


@pytest.mark.parametrize("value", ["9" * 5000, "1" * 20, "nan", "inf", "-inf", "1e400", "-1",
                                   "\udcff\udcfe", "0x10", "7\x00"])
@pytest.mark.parametrize("name", ["AISH_DEFAULT_CONTEXT", "AISH_SESSION_TIMEOUT",
                                  "AISH_MAX_SESSIONS"])
def test_hostile_environment_numbers_name_the_variable(tmp_path, name, value):
    with pytest.raises(ConfigError) as info:
        load({"HOME": str(tmp_path), name: value})
    message = str(info.value)
    assert f"environment {name}" in message and len(message) < 300, message


@pytest.mark.parametrize("name", ["AISH_SESSION_DIR", "AISH_CONFIG"])
def test_unknown_user_in_a_path_names_the_variable(tmp_path, name):
    with pytest.raises(ConfigError, match=f"environment {name}: .*cannot find the home"):
        load({"HOME": str(tmp_path), name: "~no-such-user-here/x"})
    write(tmp_path / ".aish" / "config.yaml", "sessions:\n  storage: {path: ~no-such-user/x}\n")
    with pytest.raises(ConfigError, match="config.yaml: sessions.storage.path: cannot find"):
        load({"HOME": str(tmp_path)})


@pytest.mark.parametrize("name", ["AISH_SESSION_DIR", "AISH_CONFIG"])
def test_undecodable_paths_in_the_environment_name_the_variable(tmp_path, name):
    with pytest.raises(ConfigError, match=f"environment {name}"):
        load({"HOME": str(tmp_path), name: str(tmp_path) + "/\udcff"})


def test_cli_undecodable_environment_exits_8(aish):
    # The value reaches the program as the raw byte 0xff, which is not UTF-8.
    result = aish("aish", "--list-sessions", AISH_MAX_SESSIONS="\udcff")
    err = result.stderr.decode(errors="replace")
    assert result.returncode == CONFIG, err
    assert "AISH_MAX_SESSIONS" in err and len(err.strip().splitlines()) == 1


@pytest.mark.timeout(120)
def test_cli_billion_laughs_exits_8_with_one_line(aish, home):
    path = Path(home["HOME"]) / ".aish" / "config.yaml"
    path.write_text(billion_laughs())
    result = aish("aish", "--list-sessions")
    err = result.stderr.decode()
    assert result.returncode == CONFIG, err
    assert str(path) in err and "aliases" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
