"""How the specialist command reads which session to open (`Opening`), end to end."""

import json

from conftest import run


def _listing(env) -> list[dict]:
    return json.loads(run(env, "aish", "--list-sessions", "--all", "--json").stdout)


def test_a_session_value_with_spaces_is_the_message_of_a_new_session(env, server):
    result = run(env, "apollo", "--session", "what is x?", "--get-id")
    assert result.returncode == 0, result.stderr
    sid = result.stdout.decode().strip()
    assert server.last_messages[-1]["content"] == "what is x?"
    assert [r["id"] for r in _listing(env)] == [sid] and sid != "what is x?"


def test_end_names_the_session_from_either_option(env):
    for option in ("--session", "--session-id"):
        sid = run(env, "apollo", "--session", "--get-id", input="hi").stdout.decode().strip()
        result = run(env, "apollo", option, sid, "--end")
        assert result.returncode == 0 and f"Session {sid} ended" in result.stderr.decode()
    assert {r["state"] for r in _listing(env)} == {"ended"}
    missing = run(env, "apollo", "--session", "--end")
    assert missing.returncode == 2 and b"--end needs a session id" in missing.stderr


def test_session_id_options_reach_the_session(env):
    result = run(env, "apollo", "--session-id", "named", "--context-window", "3",
                 "--get-id", input="hi")
    assert result.returncode == 0 and result.stdout.strip() == b"named", result.stderr
    result = run(env, "apollo", "--session", "named", "--extend-context", "2", input="more")
    assert result.returncode == 0, result.stderr
    info = json.loads(run(env, "aish", "--session-info", "named", "--json").stdout)
    assert info["context_window"] == 5 and info["messages"] == 4
