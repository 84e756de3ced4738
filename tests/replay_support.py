"""Shared by the replay tests: a session restored with slow recorded timing."""

from __future__ import annotations

import json
import time

SECRET = "sk-abcdefghijklmnopqrstuvwx"
PIECES = [f"p{i:02d}\n\n" for i in range(1, 11)]  # one paragraph each, so each shows alone
GAP = 3.0  # recorded seconds between the pieces


def ok(result) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def slow_session(aish, env) -> str:
    """A session restored with a reply that took 30 s (a piece every 3 s), an hour between
    the turns, and a secret in the second question; returns its id."""
    now = time.time()
    marks = [[GAP * i, sum(map(len, PIECES[:i]))] for i in range(1, len(PIECES) + 1)]
    messages = [
        {"role": "user", "content": "q1", "ai": "apollo", "time": now - 7200},
        {"role": "assistant", "content": "".join(PIECES), "ai": "apollo", "time": now - 7100,
         "timing": {"first": GAP, "end": GAP * len(PIECES), "marks": marks}},
        {"role": "user", "content": f"q2 my key is {SECRET}", "ai": "apollo", "time": now - 60},
        {"role": "assistant", "content": "second answer", "ai": "apollo", "time": now - 50},
    ]
    for i, message in enumerate(messages):
        message.update(id=f"{i + 1:016x}", parent=f"{i:016x}" if i else "", ref="main")
    doc = {"format": "aish-session", "version": 1,
           "session": {"id": "sess_slow01", "owner": "apollo", "created": now - 7200,
                       "updated": now - 50, "context_window": 10, "shared": False,
                       "state": "active", "participants": ["apollo"]},
           "messages": messages}
    ok(aish("aish", "--restore-session", input=json.dumps(doc), **env))
    return "sess_slow01"
