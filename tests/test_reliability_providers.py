"""Providers that tell the truth and never hang: the configured timeout bounds the whole wait,
retries included, and each retry is announced; the model used is the one the endpoint serves
and the one its replies report; every request carries max_tokens and a reply cut there says so;
the window sent fits the model's context and `context` reports what is really sent; an API key
is cleaned on reading and appears in no output and no file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from conftest import run
from fakes import Scripted
from fault_server import FaultServer, refused_url

from aish.errors import CONFIG, PROVIDER
from aish.store.filestore import FileStore


@pytest.fixture
def server():
    with FaultServer(stall_seconds=30) as s:
        yield s


def write_config(home: dict, text: str) -> None:
    (Path(home["HOME"]) / ".aish" / "config.yaml").write_text(text)


def pipe_env(home: dict, server, **extra) -> dict:
    return {**home, "OPENAI_BASE_URL": server.base, "OPENAI_API_KEY": "test-key", **extra}


def records(home: dict, sid: str) -> list[dict]:
    path = next((Path(home["HOME"]) / ".aish" / "sessions").rglob(f"{sid}*.jsonl"))
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in lines if r.get("t") == "msg"]


def stderr_lines(result) -> list[str]:
    text = result.stderr.decode()
    assert "Traceback" not in text, text
    return text.strip().splitlines()


# -- 1. a hung endpoint: the timeout bounds the whole wait ---------------------------------------


def test_hung_endpoint_fails_once_the_whole_timeout_is_spent(home, server):
    write_config(home, "providers:\n  openai: {timeout: 2, max_retries: 2}\n")
    server.mode = "stall"
    result = run(pipe_env(home, server), "apollo", "--session", "--get-id", input="anyone?")
    assert result.returncode == PROVIDER
    lines = stderr_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith("aish: error: ") and "timed out after 2s" in lines[0]
    # The first attempt had the whole budget; nothing was left to try again with.
    assert len(server.requests) == 1


def test_retries_are_announced_and_share_the_deadline(home, server):
    write_config(home, "providers:\n  openai: {timeout: 6, max_retries: 2}\n")
    server.script = ["500", "stall"]
    result = run(pipe_env(home, server), "apollo", "--session", "--get-id", input="hello")
    assert result.returncode == PROVIDER
    lines = stderr_lines(result)
    assert lines[0] == ("aish: retrying in 1s (attempt 2 of 3): HTTP 500: "
                        "the fault server failed on purpose")
    assert len(lines) == 2 and "timed out after 6s" in lines[1], lines
    assert len(server.requests) == 2  # the stalled attempt used up what was left


def test_retried_failures_then_a_reply(home, server, sessions_dir):
    write_config(home, "providers:\n  openai: {timeout: 20, max_retries: 2}\n")
    server.script = ["500", "429"]
    result = run(pipe_env(home, server), "apollo", "--session", "--get-id", input="patience")
    assert result.returncode == 0, result.stderr.decode()
    lines = stderr_lines(result)
    assert [line.split(":")[1].strip() for line in lines] == [
        "retrying in 1s (attempt 2 of 3)", "retrying in 2s (attempt 3 of 3)"]
    assert "HTTP 429" in lines[1]
    assert len(server.requests) == 3


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_waiting_note_only_on_a_terminal_and_erased_by_the_answer():
    from aish.output import Output

    tty, pipe = _Terminal(), io.StringIO()
    for stream in (tty, pipe):
        out = Output(stdout=io.StringIO(), stderr=stream, environ={})
        out.provider_event("waiting", "waiting for http://h/v1")
        out.provider_event("retry", "retrying in 1s (attempt 2 of 3): HTTP 500: x")
        out.provider_event("answered", "")
    assert pipe.getvalue() == "aish: retrying in 1s (attempt 2 of 3): HTTP 500: x\n"
    shown = tty.getvalue()
    assert shown.startswith("waiting for http://h/v1...")
    assert shown.endswith("\r\x1b[K")  # gone before the reply is written
    assert "aish: retrying in 1s" in shown


# -- 2. the model the endpoint serves, max_tokens on every request ------------------------------


def test_unconfigured_model_is_asked_of_the_endpoint_and_the_reported_one_stored(home, server):
    write_config(home, "providers:\n  openai: {max_tokens: 33, timeout: 20, max_retries: 0}\n")
    server.models = ["served-first", "served-second"]
    server.served_model = "served-first-q4"
    result = run(pipe_env(home, server), "apollo", "--session", "--get-id", input="hi")
    assert result.returncode == 0, result.stderr.decode()
    sid = result.stdout.decode().strip()
    assert any(p.rstrip("/").endswith("/models") for p in server.gets)
    assert server.requests[-1]["model"] == "served-first"
    assert server.requests[-1]["max_tokens"] == 33
    reply = records(home, sid)[-1]
    assert reply["role"] == "assistant" and reply["model"] == "served-first-q4"
    info = json.loads(run(pipe_env(home, server), "aish", "--session-info", sid, "--json").stdout)
    assert info["model"] == "served-first-q4"


def test_configured_model_is_sent_without_asking_and_max_tokens_defaults(home, server):
    write_config(home, "providers:\n  openai: {timeout: 20, max_retries: 0}\n")
    result = run(pipe_env(home, server, OPENAI_MODEL="chosen-model"), "apollo", "--session",
                 "--get-id", input="hi")
    assert result.returncode == 0, result.stderr.decode()
    assert server.gets == []
    assert server.requests[-1]["model"] == "chosen-model"
    assert server.requests[-1]["max_tokens"] == 512
    result = run(pipe_env(home, server), "apollo", "--model", "flag-model", input="one shot")
    assert result.returncode == 0, result.stderr.decode()
    assert server.requests[-1]["model"] == "flag-model"
    assert server.requests[-1]["max_tokens"] == 512


@pytest.mark.model
def test_llama_server_model_is_discovered_and_reply_capped(home, llama_server):
    env = {**home, "OPENAI_BASE_URL": llama_server, "OPENAI_API_KEY": "x"}
    result = run(env, "apollo", "--session", "--get-id", input="Tell me a long story.")
    assert result.returncode == 0, result.stderr.decode()
    reply = records(home, result.stdout.decode().strip())[-1]
    assert reply["model"] == "smollm2"  # the server's alias, not a made-up gpt-4o-mini
    # Capped at the test config's max_tokens (24): llama_cpp.server streams no usage, but says
    # that it stopped at the limit, which aish stores.
    assert reply.get("cut") is True, reply
    assert reply.get("usage") is None or reply["usage"]["completion_tokens"] <= 24


# -- 4. a reply cut at max_tokens says so --------------------------------------------------------


def test_reply_cut_at_max_tokens_is_marked_and_stored(home, server):
    write_config(home, "providers:\n  openai: {max_tokens: 7, timeout: 20, max_retries: 0}\n")
    server.finish = "length"
    result = run(pipe_env(home, server), "apollo", "--session", "--get-id", input="go on")
    assert result.returncode == 0, result.stderr.decode()
    assert stderr_lines(result) == ["[reply cut at 7 tokens]"]
    sid = result.stdout.decode().strip()
    assert records(home, sid)[-1]["cut"] is True
    one_shot = run(pipe_env(home, server), "apollo", input="and again")
    assert one_shot.returncode == 0, one_shot.stderr.decode()
    assert stderr_lines(one_shot) == ["[reply cut at 7 tokens]"]
    assert one_shot.stdout.decode().startswith("ok: and again")

    server.finish = "stop"
    result = run(pipe_env(home, server), "apollo", "--session", sid, input="whole")
    assert result.returncode == 0 and result.stderr == b""
    assert "cut" not in records(home, sid)[-1]


# -- 3. the window fits the model's context, and `context` says what is sent ---------------------


def test_window_sent_and_reported_fits_the_models_context(tmp_path):
    from aish.config import load
    from aish.context import pairs_of, prompt_budget
    from aish.messages import ASSISTANT, USER, Chunk, Message
    from aish.providers.local import LocalProvider
    from aish.reports import context_report, format_context
    from aish.sessions import Sessions
    from aish.specialists import roster

    sessions = Sessions(FileStore(tmp_path / "s"), load({"HOME": str(tmp_path)}))
    session = sessions.create("apollo")
    for i in range(10):  # ten pairs of ~1,000 estimated tokens each
        session.add(Message(USER, f"q{i} " + "x" * 2000, "apollo", float(i)))
        session.add(Message(ASSISTANT, f"a{i} " + "y" * 2000, "apollo", float(i)))
    session.save()
    apollo = roster({})["apollo"]

    # Before anything is sent, `context` sizes the window for the local model's 4,096 tokens.
    session.fit_to(LocalProvider.from_settings({}, apollo), apollo)
    report = context_report(session, apollo, now=100.0)
    assert report["used"] < 10
    first_line = format_context(report).splitlines()[0]
    assert first_line == (f"Using {report['used']}/10 context window ({10 - report['used']} "
                          "older pairs do not fit the model's 4096-token context)")
    assert session.window_use() == (report["used"], 10)

    small = Scripted(chunks=[Chunk("fine"), Chunk(finished=True, model="small",
                                                  finish_reason="stop")],
                     context_length=4096, context_limit=prompt_budget(4096, 512))
    session.exchange(apollo, "NEW", small)
    sent_pairs = len(pairs_of([m for m in small.chats[0][1:]]))
    assert sent_pairs - 1 == report["used"]  # the new message's pair, plus what was reported
    assert small.chats[0][-1].content == "NEW"
    assert small.chats[0][1].content.startswith(f"q{10 - report['used']} ")
    assert sum(len(m.content) // 4 + 4 for m in small.chats[0]) <= small.context_limit

    # With no limit known the window is counted in pairs alone, as before.
    fresh = sessions.open("apollo", session.id)
    assert fresh.window_use() == (10, 10)
    assert "do not fit" not in format_context(context_report(fresh, apollo, now=100.0))


def test_context_command_sizes_the_window_before_anything_is_sent(tmp_path):
    from types import SimpleNamespace

    from aish.commands.context import Context
    from aish.commands.session_cmds import SessionState, context
    from aish.messages import ASSISTANT, USER, Message
    from aish.output import Output
    from aish.specialists import roster

    shown = io.StringIO()
    ctx = Context(environ={"HOME": str(tmp_path)},
                  out=Output(stdout=shown, stderr=io.StringIO(), environ={}))
    session = ctx.sessions.create("apollo")
    for i in range(10):  # the local model (4,096 tokens, 512 for the reply) takes 3 of these
        session.add(Message(USER, "x" * 2000, "apollo", float(i)))
        session.add(Message(ASSISTANT, "y" * 2000, "apollo", float(i)))
    session.save()
    apollo = roster({})["apollo"]
    assert context(ctx, SimpleNamespace(state=SessionState(session, apollo))) == 0
    assert shown.getvalue().splitlines()[0] == (
        "Using 3/10 context window (7 older pairs do not fit the model's 4096-token context)")


def test_providers_say_their_context_and_what_a_prompt_may_use():
    from aish.providers.local import LocalProvider
    from aish.providers.openai_provider import OpenAIProvider
    from aish.specialists import roster

    apollo = roster({})["apollo"]
    local = LocalProvider.from_settings({"n_ctx": 2048, "max_tokens": 100}, apollo)
    assert (local.context_length, local.max_tokens, local.context_limit) == (2048, 100, 1884)
    remote = OpenAIProvider.from_settings({}, apollo, {"OPENAI_BASE_URL": "http://h/v1"})
    assert remote.context_limit is None and remote.max_tokens == 512
    sized = OpenAIProvider.from_settings({"n_ctx": 8192, "max_tokens": 256}, apollo,
                                         {"OPENAI_BASE_URL": "http://h/v1"})
    assert sized.context_limit == 8192 - 256 - 64


# -- 5. API keys: cleaned on reading, refused with inner whitespace, never shown ----------------

KEY = "sk-TRAILING/key+7Zq"


def all_bytes_under(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def key_free(data: bytes) -> bool:
    from urllib.parse import quote

    return all(form.encode() not in data for form in (KEY, quote(KEY, safe=""), "TRAILING"))


def test_key_with_a_trailing_newline_works_and_is_never_shown(home, server):
    home_dir = Path(home["HOME"])
    outputs = []
    base = {k: v for k, v in pipe_env(home, server).items() if k != "OPENAI_API_KEY"}

    write_config(home, f"providers:\n  openai:\n    timeout: 5\n    max_retries: 0\n"
                       f"    api_key: |\n      {KEY}\n")
    result = run(base, "apollo", "--session", "--get-id", input="from the file")
    outputs.append(result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr.decode()
    assert server.headers[-1]["authorization"] == f"Bearer {KEY}"
    sid = result.stdout.decode().strip()
    server.mode = "401"  # the endpoint quotes the key back
    result = run(base, "apollo", "--session", sid, input="rejected")
    outputs.append(result.stdout + result.stderr)
    assert result.returncode == PROVIDER and b"***" in result.stderr

    write_config(home, "providers:\n  openai: {timeout: 5, max_retries: 0}\n")
    from_env = {**base, "OPENAI_API_KEY": KEY + "\n"}
    server.mode = "reply"
    result = run(from_env, "apollo", "--session", sid, input="from the environment")
    outputs.append(result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr.decode()
    assert server.headers[-1]["authorization"] == f"Bearer {KEY}"
    result = run({**from_env, "OPENAI_BASE_URL": refused_url()}, "apollo", "--session", sid,
                 input="nobody there")
    outputs.append(result.stdout + result.stderr)
    assert result.returncode == PROVIDER

    for output in outputs:
        assert key_free(output), output
    for path, data in all_bytes_under(home_dir).items():
        assert key_free(data), f"API key written to {path}"


def test_key_with_inner_whitespace_is_a_config_error_naming_its_source(home, server):
    base = {k: v for k, v in pipe_env(home, server).items() if k != "OPENAI_API_KEY"}
    write_config(home, "providers:\n  openai: {api_key: 'sk-TRAILING inner'}\n")
    result = run(base, "apollo", "--session", "--get-id", input="x")
    assert result.returncode == CONFIG
    lines = stderr_lines(result)
    assert len(lines) == 1 and "config.yaml: providers.openai.api_key" in lines[0]
    assert b"TRAILING" not in result.stdout + result.stderr

    write_config(home, "providers:\n  openai: {timeout: 5, max_retries: 0}\n")
    result = run({**base, "OPENAI_API_KEY": "sk-TRAILING\tinner"}, "apollo", input="x")
    assert result.returncode == CONFIG
    lines = stderr_lines(result)
    assert len(lines) == 1 and "environment OPENAI_API_KEY" in lines[0]
    assert b"TRAILING" not in result.stdout + result.stderr
    assert server.requests == []


def test_every_form_of_the_key_is_masked_in_errors():
    from urllib.parse import quote, quote_plus

    from aish.providers.openai_provider import OpenAIProvider
    from aish.specialists import roster

    raw = KEY + "\n"
    provider = OpenAIProvider.from_settings({"api_key": raw}, roster({})["apollo"],
                                            {"OPENAI_BASE_URL": "http://h/v1"})
    for form in (KEY, repr(raw), repr(raw.encode()), quote(KEY, safe=""), quote_plus(KEY),
                 quote(raw, safe="")):
        message = str(provider._fail(f"Illegal header value b'Bearer {form}' in {form}"))
        assert "TRAILING" not in message, (form, message)


def test_a_model_file_llama_cpp_cannot_load_is_one_line_not_a_traceback(home):
    # llama-cpp-python's half-built model fails again when it is freed; that must not reach
    # the user as an "Exception ignored" traceback after aish's own error.
    bad = Path(home["HOME"]) / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00not a model")
    write_config(home, f"providers:\n  local: {{max_tokens: 8, model_path: {bad}}}\n")
    proc = run({**home, "AISH_WARM": "0"}, "aish", "apollo", "hello")
    assert proc.returncode == PROVIDER
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and "broken.gguf" in lines[0] and "message is kept" in lines[0]
