"""aish.sanitize: nothing a terminal would act on gets through, everything else does."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aish.sanitize import (
    ASCII_MARKS,
    MAX_SEQUENCE,
    UNICODE_MARKS,
    StreamSanitizer,
    marks_for,
    sanitize,
    valid_unicode,
)

ROOT = Path(__file__).resolve().parent.parent

# Any character a terminal may act on: C0 but \t and \n, DEL, C1, bidi controls.
DANGEROUS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")

HOSTILE = {
    "osc52 clipboard write": ("\x1b]52;c;aGVsbG8=\x07", "aGVsbG8="),
    "osc52 ended by ST": ("\x1b]52;c;aGVsbG8=\x1b\\", "aGVsbG8="),
    "osc8 hyperlink": ("\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\", "evil.example"),
    "window title": ("\x1b]0;pwned\x07", "pwned"),
    "clear screen": ("\x1b[2J\x1b[H", "2J"),
    "alternate screen": ("\x1b[?1049h", "1049"),
    "sgr colour": ("\x1b[31;1m", "31;1"),
    "dcs": ("\x1bP1$tx\x1b\\", "$tx"),
    "apc": ("\x1b_payload\x1b\\", "payload"),
    "pm": ("\x1b^payload\x1b\\", "payload"),
    "sos": ("\x1bXpayload\x1b\\", "payload"),
    "charset designation": ("\x1b(0", "(0"),
    "screen alignment test": ("\x1b#8", "#8"),
    "reset terminal": ("\x1bc", "\x1bc"),
}


@pytest.mark.parametrize("payload, secret", HOSTILE.values(), ids=HOSTILE.keys())
def test_escape_sequences_are_removed_whole(payload: str, secret: str) -> None:
    out = sanitize(f"before {payload} after")
    assert "\x1b" not in out
    assert secret not in out
    assert out.startswith("before ") and out.endswith(" after")
    assert "\u241b" in out, "the user should see that something was removed"


@pytest.mark.parametrize(
    "payload",
    ["\x9b2J", "\x9d52;c;aGVsbG8=\x9c", "\x90q\x9c", "\x85", "\x07", "\x00", "\x08", "\x7f"],
)
def test_single_controls_are_replaced_visibly(payload: str) -> None:
    out = sanitize(f"a{payload}b")
    assert not DANGEROUS.search(out)
    assert out.startswith("a") and out.endswith("b") and len(out) > 2


def test_lone_carriage_return_cannot_overwrite() -> None:
    out = sanitize("safe\rEVIL")
    assert "\r" not in out
    assert out == "safe\u240dEVIL"


def test_crlf_becomes_newline() -> None:
    assert sanitize("one\r\ntwo\r\n") == "one\ntwo\n"


@pytest.mark.parametrize(
    "bidi", ["\u202e", "\u202a", "\u202d", "\u2066", "\u2069", "\u200e", "\u200f", "\u061c"]
)
def test_bidi_controls_are_replaced(bidi: str) -> None:
    out = sanitize(f"admin{bidi}txt.exe")
    assert bidi not in out
    assert out == "admin\ufffdtxt.exe"


def test_newline_tab_and_unicode_are_untouched() -> None:
    text = "line one\n\tindented 😀 中文 ñ — «quotes» ^[regex]\n"
    assert sanitize(text) == text


def test_unterminated_sequence_is_shown_inert() -> None:
    out = sanitize("\x1b]52;c;aGVsbG8=")  # no BEL/ST: the terminal would eat what follows
    assert "\x1b" not in out
    assert out.endswith("]52;c;aGVsbG8=")


def test_overlong_osc_is_not_a_sequence() -> None:
    body = "A" * (MAX_SEQUENCE + 1)
    out = sanitize(f"\x1b]52;c;{body}\x07")
    assert not DANGEROUS.search(out)
    assert body in out


@given(st.text())
def test_output_never_contains_a_control(text: str) -> None:
    out = sanitize(text)
    assert not DANGEROUS.search(out)
    assert sanitize(out) == out


@given(st.text(st.characters(blacklist_categories=("Cc", "Cf", "Cs")) | st.sampled_from("\n\t")))
def test_text_without_controls_is_unchanged(text: str) -> None:
    assert sanitize(text) == text


@pytest.mark.parametrize("unit", ["\x1b[", "\x1b]", "\x1b]x", "\x1bP", "\x1b[1;", "\r"])
def test_linear_time_on_hostile_megabyte(unit: str) -> None:
    text = unit * (1_000_000 // len(unit))
    started = time.perf_counter()
    out = sanitize(text)
    assert time.perf_counter() - started < 10
    assert "\x1b" not in out and "\r" not in out
    started = time.perf_counter()
    stream = StreamSanitizer()
    streamed = "".join(stream.feed(text[i : i + 4096]) for i in range(0, len(text), 4096))
    assert streamed + stream.flush() == out
    assert time.perf_counter() - started < 10


# Characters that make up escape sequences, so random texts are full of (partial) ones.
_PIECES = st.sampled_from(
    [*"\x1b[]PX^_\\\x07\r\n\t(# ?1;mJaé😀\x9b\u202e", "\x1b[31m", "\x1b]52;c;", "\x1b\\"]
)


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in pairwise(points)]


def _stream(chunks: list[str], marks=UNICODE_MARKS) -> str:
    sanitizer = StreamSanitizer(marks)
    return "".join(sanitizer.feed(chunk) for chunk in chunks) + sanitizer.flush()


@settings(max_examples=500)
@given(st.lists(_PIECES, max_size=60).map("".join), st.lists(st.integers(0, 200), max_size=20),
       st.sampled_from([UNICODE_MARKS, ASCII_MARKS]))
def test_stream_equals_whole_for_any_chunking(text: str, cuts: list[int], marks) -> None:
    assert _stream(_split(text, cuts), marks) == sanitize(text, marks)


@pytest.mark.parametrize("encoding", ["ascii", "latin-1", "cp1252", "ANSI_X3.4-1968"])
def test_streams_that_cannot_show_the_marks_get_ascii_ones(encoding: str) -> None:
    marks = marks_for(encoding)
    assert marks is ASCII_MARKS
    shown = sanitize("a\x1b[31mb\x1b]52;c;eA==\x07c\x07d\u202ee\x9bf\x1b", marks)
    assert shown == "a^[b^[c?d?e?f^[" and not DANGEROUS.search(shown)
    shown.encode(encoding)  # the marks themselves can always be written


@settings(max_examples=300)
@given(st.text(st.characters(max_codepoint=0x7f)))
def test_ascii_marks_keep_ascii_text_ascii_and_inert(text: str) -> None:
    shown = sanitize(text, ASCII_MARKS)
    shown.encode("ascii")
    assert not DANGEROUS.search(shown)


def test_utf8_streams_keep_the_unicode_marks() -> None:
    assert marks_for("utf-8") is marks_for("UTF8") is marks_for(None) is UNICODE_MARKS


def test_lone_surrogates_become_replacement_characters() -> None:
    assert valid_unicode("a\ud800b\udcffc \U0001f600") == "a\ufffdb\ufffdc \U0001f600"


@pytest.mark.parametrize("opener", ["\x1b]", "\x1b[", "\x1bP", "\x1b "])
@pytest.mark.parametrize("end", ["", "\x07", "\x1b\\", "m", "\x1b"])
def test_stream_equals_whole_near_the_length_bound(opener: str, end: str) -> None:
    """Every two-chunk split, and one character at a time, of bodies around the bound."""
    filler = {"\x1b[": "1", "\x1b ": " "}.get(opener, "A")
    for length in (MAX_SEQUENCE - 1, MAX_SEQUENCE, MAX_SEQUENCE + 1, 2 * MAX_SEQUENCE + 1):
        text = f"x{opener}{filler * length}{end}y"
        whole = sanitize(text)
        assert _stream(list(text)) == whole
        for cut in range(len(text)):
            assert _stream([text[:cut], text[cut:]]) == whole, (length, cut)


def test_stream_equals_whole_for_the_longest_sequence() -> None:
    text = "\x1b[" + "1" * MAX_SEQUENCE + " " * MAX_SEQUENCE + "m"  # CSI, every part full
    assert sanitize(text) == "\u241b"
    for cut in range(len(text)):
        assert _stream([text[:cut], text[cut:]]) == "\u241b", cut


def test_stream_holds_back_a_split_sequence() -> None:
    sanitizer = StreamSanitizer()
    assert sanitizer.feed("hi \x1b]52;c;aGV") == "hi "
    assert sanitizer.feed("sbG8=\x07 there\r") == "\u241b there"
    assert sanitizer.feed("\nok") == "\nok"
    assert sanitizer.flush() == ""


def test_stream_buffering_is_bounded() -> None:
    sanitizer = StreamSanitizer()
    fed = "\x1b]52;c;"  # a hostile OSC that never ends
    out = sanitizer.feed(fed)
    for _ in range(1000):
        fed += "QUFB"
        out += sanitizer.feed("QUFB")
        # Each input character maps to one output character here, so this is what is held.
        assert len(fed) - len(out) <= 2 * MAX_SEQUENCE + 2
    out += sanitizer.flush()
    assert len(out) == len(fed)
    assert not DANGEROUS.search(out)


def test_module_imports_nothing_third_party() -> None:
    code = (
        "import sys; before = set(sys.modules); import aish.sanitize; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "print(sorted(new - {'aish'} - set(sys.stdlib_module_names)))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert found.stdout.strip() == "[]"
