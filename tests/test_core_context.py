"""The context window: N message pairs (default 10, 0 = unlimited, --extend-context), capped by
`limits.max_context_size` tokens with the oldest pairs dropped first.

Checked twice: `aish.context.select_window` directly, and the chat a real `apollo` process sends
to an OpenAI-compatible endpoint (the recording fault server), with the history on disk intact.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import run
from fakes import Scripted
from fault_server import FaultServer

from aish.context import estimate_tokens, pairs_of, select_window, window_pairs
from aish.messages import ASSISTANT, USER, Message
from aish.specialists import BUILTIN
from aish.store.filestore import FileStore

# -- select_window, directly -------------------------------------------------------------------


def history(n_pairs: int, size: int = 10, new: str = "NEW") -> list[Message]:
    out = []
    t = 1000.0
    for i in range(n_pairs):
        out.append(Message(USER, f"u{i}".ljust(size, "."), "apollo", t))
        out.append(Message(ASSISTANT, f"a{i}".ljust(size, "."), "apollo", t + 1))
        t += 2
    out.append(Message(USER, new, "apollo", t))
    return out


def labels(messages: list[Message]) -> list[str]:
    return [m.content.rstrip(".") for m in messages]


def expected(first: int, last: int) -> list[str]:
    return [x for i in range(first, last + 1) for x in (f"u{i}", f"a{i}")] + ["NEW"]


@pytest.mark.parametrize("pairs, first", [(10, 5), (3, 12), (1, 14), (15, 0), (40, 0)])
def test_window_keeps_the_last_n_pairs_and_the_new_message(pairs, first):
    assert labels(select_window(history(15), pairs, 100_000)) == expected(first, 14)


def test_window_zero_is_unlimited():
    got = select_window(history(500), 0, 10**9)
    assert labels(got) == expected(0, 499)


def test_window_of_a_new_session_is_just_the_message():
    assert labels(select_window(history(0), 10, 100_000)) == ["NEW"]
    assert select_window([], 10, 100_000) == []


def test_unanswered_messages_count_as_pairs_and_are_sent():
    msgs = history(2)
    failed = Message(USER, "failed once", "apollo", 1003.5)
    msgs.insert(4, failed)  # u0 a0 u1 a1 [failed] NEW
    assert [len(g) for g in pairs_of(msgs)] == [2, 2, 1, 1]
    assert labels(select_window(msgs, 1, 100_000)) == ["failed once", "NEW"]
    assert labels(select_window(msgs, 2, 100_000)) == ["u1", "a1", "failed once", "NEW"]


def test_token_cap_drops_the_oldest_pairs_first():
    msgs = history(15, size=400)
    pair = 2 * estimate_tokens("x" * 400)
    fixed = 120
    new = estimate_tokens("NEW")
    for keep in (0, 1, 3, 7):
        cap = fixed + new + keep * pair + pair // 2  # room for `keep` pairs and a half
        assert labels(select_window(msgs, 10, cap, fixed)) == expected(15 - keep, 14)[-(
            2 * keep + 1):]
        assert labels(select_window(msgs, 0, cap, fixed)) == expected(15 - keep, 14)[-(
            2 * keep + 1):]
    # A window smaller than what the cap allows: the window wins.
    assert labels(select_window(msgs, 2, 10**6, fixed)) == expected(13, 14)


def test_token_cap_never_drops_the_new_message():
    msgs = history(3, size=10)
    msgs[-1] = Message(USER, "N" * 4000, "apollo", 9999)
    got = select_window(msgs, 10, 50, 0)
    assert got == [msgs[-1]]


def test_window_pairs_counts_what_is_in_use():
    msgs = history(8)[:-1]
    assert window_pairs(msgs, 10) == 8
    assert window_pairs(msgs, 5) == 5
    assert window_pairs(msgs, 0) == 8


# -- what a real process sends -------------------------------------------------------------


def seed(sessions_dir: Path, sid: str, start: int, count: int, size: int = 10) -> None:
    """Append ``count`` finished pairs (u{i}/a{i}) to a session, as earlier exchanges."""
    store = FileStore(sessions_dir)
    t = time.time()
    records = []
    for i in range(start, start + count):
        records.append(Message(USER, f"u{i}".ljust(size, "."), "apollo", t).to_record())
        records.append(Message(ASSISTANT, f"a{i}".ljust(size, "."), "apollo", t).to_record())
        t += 0.001
    store.append(sid, records)


def sent(server: FaultServer) -> list[str]:
    """The non-system messages of the last request, shortened to their labels."""
    messages = server.last_messages
    assert messages[0]["role"] == "system"
    return [m["content"].rstrip(".") for m in messages[1:]]


def roles(server: FaultServer) -> list[str]:
    return [m["role"] for m in server.last_messages]


def run_ok(env, *args, input=None):
    result = run(env, *args, input=input)
    assert result.returncode == 0, result.stderr.decode()
    return result


def new_session(env, *flags: str) -> str:
    result = run_ok(env, "apollo", "--session", "--get-id", *flags, input="first")
    sid = result.stdout.decode().strip()
    assert sid.startswith("sess_"), result.stdout
    return sid


def stored(sessions_dir: Path, sid: str):
    return FileStore(sessions_dir).load(sid)


def test_default_window_sends_the_last_10_pairs(env, server, sessions_dir):
    sid = new_session(env)
    assert sent(server) == ["first"]
    assert stored(sessions_dir, sid).meta["context_window"] == 10
    seed(sessions_dir, sid, 1, 14)  # pairs: first, u1..u14
    run_ok(env, "apollo", "--session", sid, input="NEW")
    assert sent(server) == expected(5, 14)
    assert roles(server) == ["system"] + ["user", "assistant"] * 10 + ["user"]
    assert server.last_messages[0]["content"] == BUILTIN["apollo"]["persona"]
    # The window limits what is sent, not what is kept.
    loaded = stored(sessions_dir, sid)
    assert loaded.problems == []
    assert len(loaded.messages) == 2 * 16
    assert loaded.messages[0].content == "first" and loaded.messages[-2].content == "NEW"


def test_context_window_n_for_a_new_session(env, server, sessions_dir):
    sid = new_session(env, "--context-window", "3")
    seed(sessions_dir, sid, 1, 10)
    run_ok(env, "apollo", "--session", sid, input="NEW")
    assert sent(server) == expected(8, 10)
    assert stored(sessions_dir, sid).meta["context_window"] == 3


def test_context_window_can_be_changed_when_continuing(env, server, sessions_dir):
    sid = new_session(env)
    seed(sessions_dir, sid, 1, 12)
    run_ok(env, "apollo", "--session", sid, "--context-window", "2", input="NEW")
    assert sent(server) == expected(11, 12)
    run_ok(env, "apollo", "--session", sid, input="AGAIN")
    assert sent(server)[-1] == "AGAIN" and len(sent(server)) == 5  # stays 2 pairs


def test_context_window_zero_sends_everything(env, server, sessions_dir):
    sid = new_session(env, "--context-window", "0")
    seed(sessions_dir, sid, 1, 40)
    run_ok(env, "apollo", "--session", sid, input="NEW")
    assert sent(server) == ["first", "ok: first"] + expected(1, 40)
    listing = json.loads(run_ok(env, "aish", "--list-sessions", "--json").stdout)
    assert listing[0]["context_window"] == 0


def test_extend_context_raises_the_window(env, server, sessions_dir):
    sid = new_session(env, "--context-window", "3")
    seed(sessions_dir, sid, 1, 10)
    run_ok(env, "apollo", "--session", sid, "--extend-context", "2", input="NEW")
    assert sent(server) == expected(6, 10)  # 5 pairs
    assert stored(sessions_dir, sid).meta["context_window"] == 5
    run_ok(env, "aish", "apollo", "--session", sid, "--extend-context", "20", "NEXT")
    assert stored(sessions_dir, sid).meta["context_window"] == 25
    assert len(sent(server)) == 2 * 12 + 1  # every pair so far (first, u1..u10, NEW)


def test_extend_context_leaves_unlimited_unlimited(env, server, sessions_dir):
    sid = new_session(env, "--context-window", "0")
    run_ok(env, "apollo", "--session", sid, "--extend-context", "5", input="NEW")
    assert stored(sessions_dir, sid).meta["context_window"] == 0


def test_default_window_from_environment_and_config(env, server, sessions_dir, home):
    sid = new_session({**env, "AISH_DEFAULT_CONTEXT": "4"})
    seed(sessions_dir, sid, 1, 10)
    run_ok(env, "apollo", "--session", sid, input="NEW")
    assert sent(server) == expected(7, 10)

    config = Path(home["HOME"]) / ".aish" / "config.yaml"
    config.write_text(config.read_text() + "sessions:\n  defaults: {context_window: 6}\n")
    sid = new_session(env)
    seed(sessions_dir, sid, 1, 10)
    run_ok(env, "apollo", "--session", sid, input="NEW")
    assert sent(server) == expected(5, 10)


def test_token_cap_drops_the_oldest_pairs_from_what_is_sent(env, server, sessions_dir, home):
    persona = BUILTIN["apollo"]["persona"]
    pair = 2 * estimate_tokens("x" * 400)
    cap = estimate_tokens(persona) + estimate_tokens("NEW") + 3 * pair + pair // 2
    config = Path(home["HOME"]) / ".aish" / "config.yaml"
    config.write_text(config.read_text() + f"sessions:\n  limits: {{max_context_size: {cap}}}\n")
    sid = new_session(env)
    seed(sessions_dir, sid, 1, 9, size=400)
    run_ok(env, "apollo", "--session", sid, input="NEW")
    assert sent(server) == expected(7, 9)  # the window would allow 10 pairs; tokens allow 3
    assert len(stored(sessions_dir, sid).messages) == 2 * 11  # nothing was removed


# -- Session.exchange with a scripted provider ---------------------------------------------------


def open_sessions(tmp_path):
    from aish.config import load
    from aish.sessions import Sessions

    return Sessions(FileStore(tmp_path / "s"), load({"HOME": str(tmp_path)}))


def test_exchange_respects_the_providers_context_limit(tmp_path):
    from aish.messages import Chunk
    from aish.specialists import roster

    sessions = open_sessions(tmp_path)
    session = sessions.create("apollo")
    seed(tmp_path / "s", session.id, 0, 10, size=2000)
    apollo = roster({})["apollo"]
    pair = 2 * estimate_tokens("x" * 2000)
    limit = estimate_tokens(apollo.persona) + estimate_tokens("NEW") + 2 * pair + 10
    small = Scripted(chunks=[Chunk("fine"), Chunk(finished=True)], context_limit=limit)
    session.exchange(apollo, "NEW", small)
    assert [m.content.rstrip(".") for m in small.chats[0][1:]] == expected(8, 9)
    big = Scripted(chunks=[Chunk("fine"), Chunk(finished=True)])  # no limit: the window of 10 pairs
    session.exchange(apollo, "AGAIN", big)
    assert len(big.chats[0]) == 1 + 2 * 10 + 1


def test_exchange_keeps_the_message_when_the_stream_never_finishes(tmp_path):
    from aish.errors import ProviderError
    from aish.messages import Chunk
    from aish.specialists import roster

    sessions = open_sessions(tmp_path)
    session = sessions.create("apollo")
    apollo = roster({})["apollo"]
    with pytest.raises(ProviderError, match="ended before it finished"):
        session.exchange(apollo, "hello", Scripted(chunks=[Chunk("half")]))
    stored = FileStore(tmp_path / "s").load(session.id).messages
    assert [(m.role, m.content) for m in stored] == [("user", "hello")]
    session.exchange(apollo, None, Scripted(chunks=[Chunk("whole"), Chunk(finished=True)]))
    stored = FileStore(tmp_path / "s").load(session.id).messages
    assert [(m.role, m.content) for m in stored] == [("user", "hello"), ("assistant", "whole")]
