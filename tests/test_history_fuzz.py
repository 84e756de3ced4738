"""Fuzzing what history and exports do with arbitrary text: redaction finds every secret it
is given wherever it sits, is stable when applied twice, and diagram labels always stay inside
their quotes whatever the text holds.

AISH_FUZZ_EXAMPLES sets the number of examples per test (a nightly run asks for 10,000)."""

from __future__ import annotations

import os
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from aish.exports import dot_label, mermaid_label
from aish.redact import Redactor, redact

EXAMPLES = int(os.environ.get("AISH_FUZZ_EXAMPLES") or 200)
FUZZ = settings(max_examples=EXAMPLES, deadline=None)

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def word(alphabet: str, low: int, high: int):
    return st.text(alphabet=alphabet, min_size=low, max_size=high)


SECRETS = st.one_of(
    word(ALNUM, 20, 40).map(lambda s: "sk-" + s),
    word(UPPER, 16, 16).map(lambda s: "AKIA" + s),
    word(ALNUM, 20, 40).map(lambda s: "ghp_" + s),
    word(ALNUM, 10, 30).map(lambda s: "xoxb-" + s),
    st.tuples(word(ALNUM, 5, 20), word(ALNUM, 5, 20), word(ALNUM, 5, 20)).map(
        lambda p: f"eyJ{p[0]}.eyJ{p[1]}.{p[2]}"),
    word(ALNUM + "+/=\n", 0, 80).map(
        lambda b: f"-----BEGIN PRIVATE KEY-----\n{b}\n-----END PRIVATE KEY-----"),
)
# Text around a secret, ending and starting with something no secret shape can run into.
AROUND = st.text(max_size=60).map(lambda s: s + " ")


@FUZZ
@given(AROUND, SECRETS, AROUND)
def test_every_secret_is_taken_out_wherever_it_is(before, secret, after):
    redactor = Redactor()
    out = redactor(before + secret + " " + after)
    assert secret not in out
    assert sum(redactor.counts.values()) >= 1 and redactor.report()
    assert redact(out) == out  # a second pass finds nothing more


@FUZZ
@given(st.text(max_size=300))
def test_redaction_of_any_text_is_stable_and_counted(text):
    redactor = Redactor()
    out = redactor(text)
    assert redact(out) == out
    assert (out == text) == (not redactor.counts)
    assert Redactor(enabled=False)(text) == text


@FUZZ
@given(st.text(max_size=200))
def test_diagram_labels_never_leave_their_quotes(text):
    assert re.fullmatch(r'"[A-Za-z0-9 .,:_#;-]*"', mermaid_label(text))
    assert re.fullmatch(r'"(?:[^"\\]|\\.)*"', dot_label(text), re.DOTALL)


def test_hostile_text_stays_linear():
    # Many openings and no end: each must not rescan the rest (this finishes at once, or not).
    text = "-----BEGIN A-----" * 50_000 + "x_KEY=" * 50_000 + "eyJ" * 50_000
    assert redact(text).startswith("-----BEGIN A-----")
