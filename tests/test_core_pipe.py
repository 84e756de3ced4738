"""The pipe face, run as a user would: the README's example commands and its multi-stage
pipeline in a real bash, against the recording fault server (fast, and the requests can be
checked) and against the embedded model; streams, exit codes, and that listing sessions loads no
model client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, run

from aish.errors import LIMIT, NOT_FOUND, USAGE
from aish.store.filestore import FileStore

EXAMPLES = r"""
set -euo pipefail
SID=$(echo "Hello" | apollo --session --get-id)
echo "$SID" > sid.txt
echo "What did we discuss?" | apollo --session $SID > discuss.txt
aish apollo --session $SID "and now?" > andnow.txt
W20=$(echo "Start" | apollo --session --context-window 20 --get-id)
W0=$(echo "Start" | apollo --session --context-window 0 --get-id)
echo "$W20 $W0" > windows.txt
echo "x" | apollo --session $SID --extend-context 20 > extend.txt
apollo --session $SID --end 2> end.txt
aish --list-sessions > list.txt
aish --list-sessions --all > list-all.txt
aish --list-sessions --all --json > list.json
aish --end-session $W20 2> end-session.txt
SESSION=$(echo "Analyzing this architecture" | apollo --session --get-id)
echo "$SESSION" > shared-sid.txt
echo "Review Apollo's analysis" | athena --session $SESSION --shared > athena.txt
echo "Create a plan" | prometheus --session $SESSION --shared > prometheus.txt
echo "Design user authentication" | prometheus --session-id feature-development > design.txt
echo "Implement the design in Python" | apollo --session-id feature-development > impl.txt
aish --list-sessions --json > final.json
"""

PIPELINE = r"""
set -euo pipefail
cat > login.py <<'EOF'
def login(user, password):
    return db.query("SELECT * FROM users WHERE name='" + user + "'")
EOF
SESSION_ID=$(echo "I need to refactor a login system" | apollo --session --get-id)
echo "Here's the current code: $(cat login.py)" | apollo --session $SESSION_ID > analysis.md
echo "What security issues should I address?" | apollo --session $SESSION_ID > security.md
echo "Create an implementation plan" | apollo --session $SESSION_ID > plan.md
echo $SESSION_ID > sid.txt
"""


def bash(env: dict, script: str, cwd: Path, timeout: float = 1200) -> subprocess.CompletedProcess:
    result = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr.decode()
    return result


def read(cwd: Path, name: str) -> str:
    return (cwd / name).read_text()


def check_examples(cwd: Path, sessions_dir: Path) -> dict:
    """What must hold after EXAMPLES whichever model answered; returns the sessions by id."""
    sid = read(cwd, "sid.txt").strip()
    assert sid.startswith("sess_") and len(sid) == 11
    for name in ("discuss.txt", "andnow.txt", "extend.txt", "athena.txt", "prometheus.txt",
                 "design.txt", "impl.txt"):
        assert read(cwd, name).strip(), f"{name} is empty"
    store = FileStore(sessions_dir)
    loaded = {s: store.load(s) for s in store.ids()}
    main = loaded[sid]
    assert [m.content for m in main.messages if m.role == "user"] == [
        "Hello", "What did we discuss?", "and now?", "x"]
    assert all(m.role == "assistant" and m.content for m in main.messages[1::2])
    assert main.meta["context_window"] == 30 and main.meta["state"] == "ended"
    assert f"Session {sid} ended" in read(cwd, "end.txt")
    w20, w0 = read(cwd, "windows.txt").split()
    assert loaded[w20].meta["context_window"] == 20 and loaded[w0].meta["context_window"] == 0
    assert loaded[w20].meta["state"] == "ended"
    assert sid not in read(cwd, "list.txt") and w0 in read(cwd, "list.txt")
    assert sid in read(cwd, "list-all.txt")
    assert {r["id"]: r["state"] for r in json.loads(read(cwd, "list.json"))}[sid] == "ended"
    shared = loaded[read(cwd, "shared-sid.txt").strip()]
    assert shared.meta["participants"] == ["apollo", "athena", "prometheus"]
    assert [m.ai for m in shared.messages] == ["apollo"] * 2 + ["athena"] * 2 + ["prometheus"] * 2
    named = loaded["feature-development"]
    assert named.meta["participants"] == ["prometheus", "apollo"] and named.meta["shared"]
    final = {r["id"] for r in json.loads(read(cwd, "final.json"))}
    assert final == {w0, shared.meta["id"], "feature-development"}
    return loaded


def test_issue_examples_against_an_endpoint(env, server, sessions_dir, tmp_path):
    bash(env, EXAMPLES, tmp_path)
    check_examples(tmp_path, sessions_dir)
    assert read(tmp_path, "discuss.txt") == "ok: What did we discuss?\n"
    assert read(tmp_path, "andnow.txt") == "ok: and now?\n"
    # What each request carried: the second sees the first exchange, and so on.
    by_last = {r["messages"][-1]["content"]: r["messages"] for r in server.requests}
    assert [m["content"] for m in by_last["What did we discuss?"][1:]] == [
        "Hello", "ok: Hello", "What did we discuss?"]
    assert [m["content"] for m in by_last["x"][1:]] == [
        "Hello", "ok: Hello", "What did we discuss?", "ok: What did we discuss?",
        "and now?", "ok: and now?", "x"]
    assert {"role": "user", "content": "apollo-ai said: ok: Analyzing this architecture"} in \
        by_last["Create a plan"]
    assert {"role": "user", "content": "athena-ai said: ok: Review Apollo's analysis"} in \
        by_last["Create a plan"]
    assert {"role": "user", "content": "prometheus-ai said: ok: Design user authentication"} in \
        by_last["Implement the design in Python"]


def test_multi_stage_pipeline_each_stage_sees_the_earlier_ones(env, server, sessions_dir,
                                                                tmp_path):
    server.reply = lambda body: f"reply {len(body['messages'])}"
    bash(env, PIPELINE, tmp_path)
    assert read(tmp_path, "analysis.md") == "reply 4\n"
    assert read(tmp_path, "security.md") == "reply 6\n"
    assert read(tmp_path, "plan.md") == "reply 8\n"
    stages = [r["messages"] for r in server.requests]
    assert len(stages) == 4
    code = (tmp_path / "login.py").read_text().rstrip("\n")
    plan = [m["content"] for m in stages[3]]
    assert plan[1:] == ["I need to refactor a login system", "reply 2",
                        f"Here's the current code: {code}", "reply 4",
                        "What security issues should I address?", "reply 6",
                        "Create an implementation plan"]
    assert [m["content"] for m in stages[2][1:]] == plan[1:6]
    assert [m["role"] for m in stages[3]] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    sid = read(tmp_path, "sid.txt").strip()
    assert len(FileStore(sessions_dir).load(sid).messages) == 8


@pytest.mark.model
def test_issue_examples_with_the_embedded_model(home, sessions_dir, tmp_path):
    # Nine model calls: short replies keep this quick; the endpoint test checks the content.
    (Path(home["HOME"]) / ".aish" / "config.yaml").write_text(
        "providers:\n  local: {max_tokens: 8, temperature: 0}\n")
    bash(home, EXAMPLES, tmp_path)
    loaded = check_examples(tmp_path, sessions_dir)
    sid = read(tmp_path, "sid.txt").strip()
    usage = [m.usage for m in loaded[sid].messages if m.role == "assistant"]
    assert all(u and u.prompt_tokens > 0 and 0 < u.completion_tokens <= 8 for u in usage)


@pytest.mark.model
def test_embedded_model_answers_the_pipeline_and_one_shots(home, sessions_dir, tmp_path):
    bash(home, PIPELINE, tmp_path)
    for name in ("analysis.md", "security.md", "plan.md"):
        assert read(tmp_path, name).strip()
    sid = read(tmp_path, "sid.txt").strip()
    stored = FileStore(sessions_dir).load(sid).messages
    assert len(stored) == 8 and stored[-1].content == read(tmp_path, "plan.md").strip()
    # Each stage was sent more context than the one before.
    prompts = [m.usage.prompt_tokens for m in stored if m.role == "assistant"]
    assert prompts == sorted(prompts) and prompts[0] < prompts[-1]
    one = run(home, "hermes", "What is a variable?")
    assert one.returncode == 0 and one.stdout.strip()
    assert one.stderr in (b"", b"[reply cut at 24 tokens]\n"), one.stderr
    # A one-shot question is kept as an ended one-off session of one exchange.
    (oneoff,) = set(FileStore(sessions_dir).ids()) - {sid}
    logged = FileStore(sessions_dir).summary(oneoff)
    assert logged.header.oneshot and logged.header.state.value == "ended"
    assert logged.messages == 2


# -- streams and exit codes ----------------------------------------------------------------------


def test_streams_reply_on_stdout_status_on_stderr(env, server):
    server.reply = "plain reply"
    sid = run(env, "apollo", "--session", "--get-id", input="hi").stdout.decode().strip()
    result = run(env, "apollo", "--session", sid, input="more", NO_COLOR="1")
    assert result.stdout == b"plain reply\n" and result.stderr == b""
    result = run(env, "apollo", "--session", sid, "--end")
    assert result.stdout == b"" and f"Session {sid} ended".encode() in result.stderr
    # Naming an ended session continues it: it becomes active again.
    result = run(env, "aish", "apollo", "--session", sid, "back", "again")
    assert result.returncode == 0 and server.last_messages[-1]["content"] == "back again"
    listing = json.loads(run(env, "aish", "--list-sessions", "--json").stdout)
    assert [(r["id"], r["state"]) for r in listing] == [(sid, "active")]


def test_usage_and_missing_session_exit_codes(env):
    cases = [
        (("aish", "nobody", "--session"), USAGE, "unknown command or specialist"),
        (("apollo", "--get-id", "hi"), USAGE, "--get-id needs --session"),
        (("aish", "--no-such-flag"), USAGE, "unknown option"),
        (("apollo", "--session", "sess_zzzzzz"), NOT_FOUND, "sess_zzzzzz not found"),
        (("aish", "--end-session", "sess_zzzzzz"), NOT_FOUND, "not found"),
    ]
    for argv, code, words in cases:
        result = run(env, *argv, input="hello")
        err = result.stderr.decode()
        assert result.returncode == code, (argv, err)
        assert words in err and "Traceback" not in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, err
        assert result.stdout == b""


@pytest.mark.parametrize("value", ["-3", "abc"])
def test_bad_option_values_are_usage_errors(env, value):
    result = run(env, "apollo", "--session", "--context-window", value, input="hello")
    err = result.stderr.decode()
    assert result.returncode == USAGE, err
    assert "--context-window" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_stdin_limits_and_encoding(env, home, server, sessions_dir):
    config = Path(home["HOME"]) / ".aish" / "config.yaml"
    config.write_text(config.read_text() + "sessions:\n  limits: {max_stdin_bytes: 1000}\n")
    result = run(env, "apollo", "--session", "--get-id", input="x" * 1001)
    assert result.returncode == LIMIT and b"max_stdin_bytes" in result.stderr
    assert FileStore(sessions_dir).ids() == []
    result = run(env, "apollo", "--session", "--get-id", input=b"caf\xe9 ok")
    assert result.returncode == 0
    assert b"not valid UTF-8" in result.stderr
    assert server.last_messages[-1]["content"] == "caf\ufffd ok"


# -- what listing sessions costs -----------------------------------------------------------------

HEAVY = ("openai", "llama_cpp", "prompt_toolkit", "rich.markdown", "httpx", "pygments")

PROBE = r"""
import json, sys
from aish.cli import main
code = main(sys.argv[2:])
heavy = [m for m in sys.argv[1].split(",") if m in sys.modules]
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [("--list-sessions",), ("--list-sessions", "--all", "--json"),
                                  ("--end-session", "sess_aaaaaa")])
def test_management_commands_import_no_model_client(home, sessions_dir, argv):
    store = FileStore(sessions_dir)
    for i in range(50):
        store.create({"id": f"sess_{i:06d}", "owner": "apollo", "created": 1e9,
                      "context_window": 10, "participants": ["apollo"]})
    store.create({"id": "sess_aaaaaa", "owner": "apollo", "participants": ["apollo"]})
    result = subprocess.run([sys.executable, "-c", PROBE, ",".join(HEAVY), *argv], env=home,
                            cwd=REPO,
                            capture_output=True, timeout=600)
    report = json.loads(result.stderr.decode().strip().splitlines()[-1])
    assert report["code"] == 0, result.stderr.decode()
    assert report["heavy"] == [], f"{argv} imported {report['heavy']}"
    if argv[-1] == "--json":
        assert len(json.loads(result.stdout)) == 51


def test_message_is_kept_when_the_provider_cannot_even_be_built(aish, sessions_dir):
    # --provider openai with no key and no endpoint: the provider fails before any request.
    result = aish("apollo", "--session", "--get-id", "--provider", "openai",
                  input="remember this question")
    assert result.returncode == 4, result.stderr
    sid = result.stdout.decode().strip()
    assert "no API key" in result.stderr.decode() and "--retry" in result.stderr.decode()
    messages = FileStore(sessions_dir).load(sid).messages
    assert [(m.role, m.content) for m in messages] == [("user", "remember this question")]
