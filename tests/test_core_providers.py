"""Providers and their faults. Every failure — refused connection, timeout, HTTP 500, HTTP 429, a
stream cut mid-way, a stream that ends without a finish — is one clear line on stderr naming the
endpoint and the cause, exit 4, no traceback; the user's message stays in the session unanswered,
and `--retry` answers it later. API keys never reach a file or an output. The OpenAI path also runs
end to end against llama-cpp-python's own server with the embedded model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run
from fault_server import FaultServer, refused_url

from aish.errors import PROVIDER, USAGE
from aish.store.filestore import FileStore

FAST_FAIL = """\
providers:
  openai: {timeout: 1, max_retries: 0}
"""


@pytest.fixture
def server():
    with FaultServer(stall_seconds=6) as s:
        yield s


@pytest.fixture
def env(home, server):
    (Path(home["HOME"]) / ".aish" / "config.yaml").write_text(FAST_FAIL)
    return {**home, "OPENAI_BASE_URL": server.base, "OPENAI_API_KEY": "test-key"}


def empty_session(env) -> str:
    """A new session, created without asking the model anything."""
    result = run(env, "apollo", "--session", "--get-id")
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().strip()


def messages(sessions_dir: Path, sid: str) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in FileStore(sessions_dir).load(sid).messages]


def one_clean_line(err: bytes) -> str:
    text = err.decode()
    assert "Traceback" not in text, text
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert lines[0].startswith("aish: error: ")
    return lines[0]


FAULTS = {  # mode: words the error line must contain
    "refused": ("cannot connect", "refused"),
    "stall": ("timed out",),
    "stall_mid": ("timed out",),
    "500": ("HTTP 500", "failed on purpose"),
    "429": ("HTTP 429", "rate limited"),
    "cut": ("stream broke",),
    "eof": ("ended before it finished",),
    "nofinish": ("ended before it finished",),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_is_one_line_exit_4_message_kept_and_retry_answers(env, server, sessions_dir,
                                                                 fault):
    sid = empty_session(env)
    endpoint = server.base
    failing = dict(env)
    if fault == "refused":
        endpoint = refused_url()
        failing["OPENAI_BASE_URL"] = endpoint
    else:
        server.mode = fault
    result = run(failing, "apollo", "--session", sid, input="remember me")
    line = one_clean_line(result.stderr)
    assert result.returncode == PROVIDER, line
    assert endpoint in line, line
    for word in FAULTS[fault]:
        assert word in line, line
    assert f"--session {sid} --retry" in line
    assert messages(sessions_dir, sid) == [("user", "remember me")]

    server.mode = "reply"
    before = len(server.requests)
    result = run(env, "apollo", "--session", sid, "--retry")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode() == "ok: remember me\n"
    assert len(server.requests) == before + 1
    sent = [m["content"] for m in server.last_messages if m["role"] == "user"]
    assert sent == ["remember me"], "the retried message must be sent exactly once"
    assert messages(sessions_dir, sid) == [("user", "remember me"),
                                           ("assistant", "ok: remember me")]


def test_retry_after_several_failures_and_new_messages_keep_order(env, server, sessions_dir):
    sid = empty_session(env)
    server.script = ["500", "429"]
    for _ in range(2):
        assert run(env, "apollo", "--session", sid, input="first").returncode == PROVIDER
    assert messages(sessions_dir, sid) == [("user", "first"), ("user", "first")]
    result = run(env, "apollo", "--session", sid, input="second")
    assert result.returncode == 0
    # The unanswered messages are part of the conversation the model sees.
    assert [m["content"] for m in server.last_messages[1:]] == ["first", "first", "second"]


def test_retry_needs_an_unanswered_message(env, server):
    sid = empty_session(env)
    result = run(env, "apollo", "--session", sid, "--retry")
    assert result.returncode == USAGE
    assert "no unanswered message" in one_clean_line(result.stderr)
    assert server.requests == []


def test_get_id_still_prints_the_id_when_the_model_fails(env, server, sessions_dir):
    server.mode = "500"
    result = run(env, "apollo", "--session", "--get-id", input="Hello")
    assert result.returncode == PROVIDER
    sid = result.stdout.decode().strip()
    assert result.stdout.decode() == f"{sid}\n" and sid.startswith("sess_")
    one_clean_line(result.stderr)
    assert messages(sessions_dir, sid) == [("user", "Hello")]


def test_one_shot_faults_are_one_line_too(env, server):
    server.mode = "500"
    result = run(env, "apollo", "what is CQRS?")
    assert result.returncode == PROVIDER
    assert "HTTP 500" in one_clean_line(result.stderr)
    result = run({**env, "OPENAI_BASE_URL": refused_url()}, "athena", "hello")
    assert result.returncode == PROVIDER
    assert "cannot connect" in one_clean_line(result.stderr)


def test_partial_reply_of_a_broken_stream_is_not_stored(env, server, sessions_dir):
    sid = empty_session(env)
    server.mode = "cut"
    server.reply = "a reply that will be cut in the middle"
    result = run(env, "apollo", "--session", sid, input="go")
    assert result.returncode == PROVIDER
    assert result.stdout.decode().startswith("a repl")  # what arrived was shown
    assert messages(sessions_dir, sid) == [("user", "go")]


def test_configured_retries_are_used(env, home, server, sessions_dir):
    (Path(home["HOME"]) / ".aish" / "config.yaml").write_text(
        "providers:\n  openai: {timeout: 5, max_retries: 2}\n")
    sid = empty_session(env)
    server.script = ["500", "429"]
    result = run(env, "apollo", "--session", sid, input="patience")
    assert result.returncode == 0, result.stderr.decode()
    assert len(server.requests) == 3
    assert messages(sessions_dir, sid)[-1] == ("assistant", "ok: patience")


def test_missing_local_model_is_a_provider_error(home, sessions_dir, tmp_path):
    missing = tmp_path / "nowhere.gguf"
    (Path(home["HOME"]) / ".aish" / "config.yaml").write_text(
        f"providers:\n  local: {{model_path: {missing}}}\n")
    result = run(home, "apollo", "--session", "--get-id", input="hello")
    assert result.returncode == PROVIDER
    line = one_clean_line(result.stderr)
    assert "local model" in line and str(missing) in line
    sid = result.stdout.decode().strip()
    assert messages(sessions_dir, sid) == [("user", "hello")]


def test_provider_selection_order(home, server):
    """flag > specialist config > global config > environment > local."""
    config = Path(home["HOME"]) / ".aish" / "config.yaml"
    bad_local = "providers:\n  local: {model_path: /nonexistent.gguf}\n"
    config.write_text(bad_local)
    with_env = {**home, "OPENAI_BASE_URL": server.base, "OPENAI_API_KEY": "k"}
    assert run(with_env, "apollo", "hi").returncode == 0  # environment selects openai
    assert run(with_env, "apollo", "--provider", "local", "hi").returncode == PROVIDER
    config.write_text(bad_local + "  default: local\n")
    assert run(with_env, "apollo", "hi").returncode == PROVIDER  # global config beats env
    config.write_text(bad_local + "  default: local\nspecialists:\n  apollo: {provider: openai}\n")
    assert run(with_env, "apollo", "hi").returncode == 0  # specialist beats global
    assert run(with_env, "athena", "hi").returncode == PROVIDER
    config.write_text(f"providers:\n  openai: {{base_url: '{server.base}'}}\n")
    assert run(home, "apollo", "hi").returncode == 0  # a configured endpoint needs no env
    assert run(home, "apollo", "--provider", "nope", "hi").returncode == USAGE


# -- API keys ------------------------------------------------------------------------------------

MARKER = "sk-test-MARKER-7f3a9c"


def all_bytes_under(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def test_api_keys_never_reach_disk_or_output(home, server, sessions_dir):
    home_dir = Path(home["HOME"])
    (home_dir / ".aish" / "config.yaml").write_text(FAST_FAIL)
    env = {**home, "OPENAI_BASE_URL": server.base, "OPENAI_API_KEY": MARKER}
    outputs = []

    def go(*args, input=None, env=env):
        result = run(env, *args, input=input)
        outputs.append(result.stdout + result.stderr)
        return result

    sid = go("apollo", "--session", "--get-id", input="hello").stdout.decode().strip()
    go("apollo", "--session", sid, input="again")
    server.mode = "401"  # the endpoint quotes the key back in its error, as OpenAI does
    assert go("apollo", "--session", sid, input="bad key").returncode == PROVIDER
    server.mode = "500"
    assert go("apollo", "--session", sid, input="fails").returncode == PROVIDER
    go("apollo", "--session", sid, input="refused", env={**env, "OPENAI_BASE_URL": refused_url()})
    server.mode = "reply"
    go("apollo", "--session", sid, "--retry")
    go("athena", "--session", sid, "--shared", input="join")
    go("apollo", "--session-id", "named", input="named")
    go("aish", "--list-sessions", "--all", "--json")
    go("apollo", "--session", sid, "--end")
    assert server.headers[0]["authorization"] == f"Bearer {MARKER}"  # the key was used...

    for output in outputs:  # ...but never shown
        assert MARKER.encode() not in output
    assert any(b"Incorrect API key provided" in o for o in outputs)
    files = all_bytes_under(home_dir)
    assert any(p.suffix == ".jsonl" for p in files)
    for path, data in files.items():
        assert MARKER.encode() not in data, f"API key written to {path}"

    # A key from the config file is used the same way and lands nowhere else either.
    (home_dir / ".aish" / "config.yaml").write_text(
        f"providers:\n  openai: {{api_key: {MARKER}-file, timeout: 1, max_retries: 0}}\n")
    no_env_key = {k: v for k, v in env.items() if k != "OPENAI_API_KEY"}
    server.mode = "401"
    result = run(no_env_key, "apollo", "--session", sid, input="file key")
    assert result.returncode == PROVIDER
    assert server.headers[-1]["authorization"] == f"Bearer {MARKER}-file"
    assert MARKER.encode() not in result.stdout + result.stderr
    for path, data in all_bytes_under(home_dir).items():
        if path.name != "config.yaml":
            assert MARKER.encode() not in data, f"API key written to {path}"


# -- the real thing: llama-cpp-python's OpenAI-compatible server ---------------------------------


@pytest.mark.model
def test_openai_path_end_to_end_against_llama_server(home, llama_server, sessions_dir):
    env = {**home, "OPENAI_BASE_URL": llama_server, "OPENAI_API_KEY": "x"}
    created = run(env, "apollo", "--session", "--get-id", input="Hello, my name is Bob")
    assert created.returncode == 0, created.stderr.decode()
    sid = created.stdout.decode().strip()
    assert created.stdout.decode() == f"{sid}\n" and sid.startswith("sess_")
    follow = run(env, "apollo", "--session", sid, input="What is my name?")
    assert follow.returncode == 0, follow.stderr.decode()
    assert follow.stdout.decode().strip()
    # Quiet but for the mark of a reply that reached the test config's max_tokens.
    assert follow.stderr in (b"", b"[reply cut at 24 tokens]\n"), follow.stderr
    stored = FileStore(sessions_dir).load(sid)
    assert [m.role for m in stored.messages] == ["user", "assistant", "user", "assistant"]
    assert stored.messages[0].content == "Hello, my name is Bob"
    assert stored.messages[3].content == follow.stdout.decode().strip()
    assert all(m.content.strip() for m in stored.messages)
    listing = json.loads(run(env, "aish", "--list-sessions", "--json").stdout)
    assert listing[0]["id"] == sid and listing[0]["messages"] == 4


def test_local_provider_leaves_room_for_the_reply_in_its_context():
    from aish.providers.local import LocalProvider
    from aish.specialists import roster

    apollo = roster({})["apollo"]
    provider = LocalProvider.from_settings({"n_ctx": 2048, "max_tokens": 100}, apollo)
    assert provider.context_limit == 2048 - 100 - 64
    assert LocalProvider.from_settings({}, apollo).context_limit == 4096 - 512 - 64


def test_local_model_gets_a_repeat_penalty_unless_configured():
    from aish.providers.local import LocalProvider
    from aish.specialists import roster

    apollo = roster({})["apollo"]
    assert LocalProvider.from_settings({}, apollo).options["repeat_penalty"] == 1.2
    tuned = LocalProvider.from_settings({"repeat_penalty": 1.0}, apollo)
    assert tuned.options["repeat_penalty"] == 1.0
