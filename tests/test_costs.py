"""Tokens and cost: reported usage or an estimate marked as one, priced per million tokens from
the config, per session, per branch (its path) and per ai, model or day."""

from __future__ import annotations

import calendar
import json
from pathlib import Path

import pytest
from conftest import run
from manage_support import ok, sessions_for, stderr

from aish.config import load
from aish.costs import Totals, message_tokens, money, shown_tokens, total
from aish.errors import CONFIG, USAGE, ConfigError
from aish.messages import ASSISTANT, USER, Message, Usage


def add_prices(home: dict, text: str) -> None:
    cfg = Path(home["HOME"]) / ".aish" / "config.yaml"
    cfg.write_text(cfg.read_text() + text)


def no_provider(m):
    return None


# -- arithmetic --------------------------------------------------------------------------------

def test_message_tokens_reported_or_estimated():
    reply = Message(ASSISTANT, "x" * 400, "apollo", 1.0, usage=Usage(50, 7))
    assert message_tokens(reply) == (7, False) and shown_tokens(reply) == "7"
    unreported = Message(ASSISTANT, "x" * 40, "apollo", 1.0)
    assert message_tokens(unreported) == (14, True) and shown_tokens(unreported) == "~14"
    question = Message(USER, "y" * 8, "apollo", 1.0)
    assert message_tokens(question) == (6, True)


def test_totals_mix_reported_and_estimated_replies():
    q1 = Message(USER, "y" * 8, "apollo", 1.0, id="q1", parent="")
    a1 = Message(ASSISTANT, "x" * 40, "apollo", 2.0, id="a1", parent="q1")  # ~6 in, ~14 out
    q2 = Message(USER, "z", "apollo", 3.0, id="q2", parent="a1")
    a2 = Message(ASSISTANT, "ok", "apollo", 4.0, id="a2", parent="q2", usage=Usage(60, 20),
                 model="m")
    t = total([q1, a1, q2, a2], {}, no_provider)
    assert (t.input, t.output, t.estimated, t.replies) == (66, 34, 20, 2)
    assert t.estimated_share == 20 and t.cost is None  # no price: no cost
    assert t.to_json() == {"input": 66, "output": 34, "total": 100, "estimated": 20,
                           "estimated_share": 20, "cost": None}


def test_prices_per_million_by_model_then_provider():
    prices = {"m": {"input": 3.0, "output": 15.0}, "openai": {"input": 1.0, "output": 2.0}}
    by_model = Message(ASSISTANT, "a", "apollo", 1.0, usage=Usage(1_000_000, 100_000),
                       model="m")
    by_provider = Message(ASSISTANT, "b", "apollo", 1.0, usage=Usage(2_000, 500),
                          model="other")
    t = total([by_model], prices, lambda m: "openai")
    assert t.cost == 3.0 + 1.5
    t = total([by_provider], prices, lambda m: "openai")
    assert t.to_json()["cost"] == 0.003  # 2,000 * 1 + 500 * 2 per million
    t = total([by_provider], prices, no_provider)
    assert t.cost is None  # neither its model nor its provider has a price


def test_cost_rounds_once_so_tiny_costs_add_up():
    prices = {"m": {"input": 0.1, "output": 0.0}}
    replies = [Message(ASSISTANT, "a", "apollo", 1.0, usage=Usage(1, 0), model="m")] * 10
    assert total(replies, prices, no_provider).to_json()["cost"] == 0.000001
    assert total(replies[:1], prices, no_provider).to_json()["cost"] == 0.0  # 1e-7 rounds away
    assert [money(v) for v in (0.0, 12.345, 0.0012, 0.00001)] == [
        "$0.00", "$12.35", "$0.0012", "$1.00e-05"]
    assert Totals().estimated_share == 0


# -- config ------------------------------------------------------------------------------------

def config_file(tmp_path, text: str) -> dict:
    (tmp_path / ".aish").mkdir(exist_ok=True)
    (tmp_path / ".aish" / "config.yaml").write_text(text)
    return {"HOME": str(tmp_path)}


def test_prices_config_is_read_and_typed(tmp_path):
    c = load(config_file(tmp_path, "prices:\n  gpt-4o-mini: {input: 0.15, output: 0.6}\n"
                                   "  local: {input: 0, output: 0}\n"))
    assert c.prices == {"gpt-4o-mini": {"input": 0.15, "output": 0.6},
                        "local": {"input": 0.0, "output": 0.0}}
    assert c.warnings == ()
    assert load({"HOME": str(tmp_path / "none")}).prices == {}


@pytest.mark.parametrize("text, message", [
    ("prices:\n  m: {input: -1, output: 2}\n",
     "prices.m.input: expected a number >= 0 (USD per million tokens), got -1"),
    ("prices:\n  m: {input: 1, output: cheap}\n",
     "prices.m.output: expected a number >= 0 (USD per million tokens), got 'cheap'"),
    ("prices:\n  m: {input: 1}\n",
     "prices.m.output: expected a number >= 0 (USD per million tokens)"),
    ("prices:\n  m: {input: .nan, output: 1}\n", "prices.m.input: expected a number >= 0"),
    ("prices:\n  m: 3\n", "prices.m: expected a mapping, got 3"),
    ("prices: [1]\n", "prices: expected a mapping"),
])
def test_bad_prices_are_one_line_config_errors(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        load(config_file(tmp_path, text))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_bad_prices_through_the_program(aish, home):
    add_prices(home, "prices:\n  m: {input: -1, output: 2}\n")
    result = aish("aish", "--session-stats")
    assert result.returncode == CONFIG
    line = stderr(result).strip()
    assert len(line.splitlines()) == 1 and "prices.m.input: expected a number >= 0" in line
    assert "Traceback" not in line


def test_a_misspelt_price_key_is_a_warning(tmp_path):
    c = load(config_file(tmp_path, "prices:\n  m: {input: 1, output: 2, outptu: 3}\n"))
    assert any("prices.m.outptu" in w and "output" in w for w in c.warnings)


# -- per session and per branch, through the program -------------------------------------------

def test_session_info_per_branch(env, server):
    """The scripted server reports 11 prompt tokens and one completion token per streamed piece
    of six characters; the replies say they came from ``gpt-test``."""
    server.served_model = "gpt-test"
    add_prices(env, "prices:\n  gpt-test: {input: 3, output: 15}\n")

    def say(sid, text, *flags):
        return ok(run(env, "apollo", "--session", sid, *flags, input=text))

    sid = ok(run(env, "apollo", "--session", "--get-id", input="q1")).strip()
    say(sid, "q2")
    say(sid, "q3")  # main: 3 replies "ok: qN", one piece each
    ok(run(env, "aish", "--branch-session", sid, "alt", "--at", "2"))
    say(sid, "other way", "--branch", "alt")  # "ok: other way": three pieces

    info = json.loads(ok(run(env, "aish", "--session-info", sid, "--json")))
    costs = info["costs"]
    assert costs["total"] == {"input": 44, "output": 6, "total": 50, "estimated": 0,
                              "estimated_share": 0, "cost": 0.000222}  # (44*3 + 6*15) / 1e6
    assert costs["branches"]["main"] == {"input": 33, "output": 3, "total": 36, "estimated": 0,
                                         "estimated_share": 0, "cost": 0.000144}
    assert costs["branches"]["alt"] == {"input": 22, "output": 4, "total": 26, "estimated": 0,
                                        "estimated_share": 0, "cost": 0.000126}
    assert info["tokens"] == 50  # the existing key is kept
    text = ok(run(env, "aish", "--session-info", sid)).splitlines()
    assert "Tokens: 50" in text
    assert "Token use: 50 (44 in, 6 out), $0.000222" in text
    assert "  branch main: 36 (33 in, 3 out), $0.000144" in text
    assert "  branch alt: 26 (22 in, 4 out), $0.000126" in text

    # each message's own tokens: a reply's as reported, a question's estimated
    nodes = json.loads(ok(run(env, "aish", "--history", sid, "--json")))["nodes"]
    own = {n["first_line"]: (n["message_tokens"], n["message_tokens_estimated"]) for n in nodes}
    assert own["q1"] == (4, True) and own["other way"] == (6, True)
    assert own["ok: q1"] == (1, False) and own["ok: other way"] == (3, False)


def test_session_info_marks_estimates_and_omits_unknown_cost(aish, home):
    sessions = sessions_for(home)
    q = Message(USER, "y" * 8, "apollo", 1e9, id="q1", parent="")
    a = Message(ASSISTANT, "x" * 40, "apollo", 1e9 + 1, id="a1", parent="q1")
    sessions.create("apollo", "est", messages=[q, a])
    info = json.loads(ok(aish("aish", "--session-info", "est", "--json")))
    assert info["costs"]["total"] == {"input": 6, "output": 14, "total": 20, "estimated": 20,
                                      "estimated_share": 100, "cost": None}
    assert "Token use: 20 (6 in, 14 out; 100% estimated)" in ok(
        aish("aish", "--session-info", "est")).splitlines()


# -- --session-stats --by ----------------------------------------------------------------------

DAY1 = calendar.timegm((2026, 3, 1, 23, 30, 0))  # late on 1 March, UTC
DAY2 = DAY1 + 3600  # early on 2 March, UTC


def stored_replies(home):
    def pair(n, ai, t, model, usage):
        q = Message(USER, f"q{n}", ai, t, id=f"q{n}", parent=f"a{n - 1}" if n > 1 else "")
        return [q, Message(ASSISTANT, f"a{n}", ai, t + 1, id=f"a{n}", parent=f"q{n}",
                           model=model, usage=usage)]

    sessions = sessions_for(home, now=DAY2 + 10)
    sessions.create("apollo", "one", messages=[
        *pair(1, "apollo", DAY1, "m1", Usage(1000, 100)),
        *pair(2, "apollo", DAY2, "m2", Usage(2000, 200))])
    # no usage reported, no model: ~4 in ("q1": 2 // 4 + 4), ~4 out ("a1")
    sessions.create("athena", "two", messages=pair(1, "athena", DAY2, None, None))


def test_session_stats_totals_and_by(aish, home):
    stored_replies(home)
    add_prices(home, "prices:\n  m1: {input: 1, output: 10}\n  m2: {input: 2, output: 20}\n")
    stats = json.loads(ok(aish("aish", "--session-stats", "--json")))
    assert stats["tokens"] == 3300  # reported only, as before
    # The plain report reads only the summaries; token use (from the logs) comes with --by.
    assert "token_use" not in stats and "by" not in stats and "groups" not in stats
    stats = json.loads(ok(aish("aish", "--session-stats", "--by", "ai", "--json")))
    assert stats["token_use"] == {"input": 3004, "output": 304, "total": 3308, "estimated": 8,
                                  "estimated_share": 0, "cost": 0.01}  # 0.002 + 0.008

    def by(group):
        out = json.loads(ok(aish("aish", "--session-stats", "--by", group, "--json")))
        assert out["by"] == group
        return {name: (t["input"], t["output"], t["estimated"], t["cost"])
                for name, t in out["groups"].items()}

    assert by("ai") == {"apollo-ai": (3000, 300, 0, 0.01), "athena-ai": (4, 4, 8, None)}
    assert by("model") == {"m1": (1000, 100, 0, 0.002), "m2": (2000, 200, 0, 0.008),
                           "unknown": (4, 4, 8, None)}
    assert by("day") == {"2026-03-01": (1000, 100, 0, 0.002),
                         "2026-03-02": (2004, 204, 8, 0.008)}
    text = ok(aish("aish", "--session-stats", "--by", "model")).splitlines()
    assert text[0].startswith("Active sessions:")  # the existing report comes first, unchanged
    assert text[-4:] == ["Token use: 3,308 (3,004 in, 304 out; <1% estimated), $0.01",
                         "  m1: 1,100 (1,000 in, 100 out), $0.002",
                         "  m2: 2,200 (2,000 in, 200 out), $0.008",
                         "  unknown: 8 (4 in, 4 out; 100% estimated)"]


def test_session_stats_by_needs_a_known_group(aish):
    result = aish("aish", "--session-stats", "--by", "week")
    assert result.returncode == USAGE
    assert "--by: expected one of ai, model, day, got 'week'" in stderr(result)
