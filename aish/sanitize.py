"""Make untrusted text safe to write to a terminal.

Model replies (and anything quoted in them) are untrusted. Terminals act on control
characters: ``ESC ] 52`` writes the clipboard, ``ESC ] 8`` hides a link target behind
innocent text, ``ESC [ 2 J`` clears the screen, a lone ``\\r`` lets later text overwrite
earlier text, and bidi overrides reorder what the reader sees. Rich passes all of these
through, so every piece of untrusted text goes through :func:`sanitize` (or a
:class:`StreamSanitizer` for streamed text) just before display. Storage keeps the raw text.

What is shown instead:

* a whole escape sequence (CSI, OSC, DCS, SOS, PM, APC, two-character ``ESC x``) becomes
  one ``␛`` (U+241B), so the user can see that something was removed without the payload
  (clipboard data, link target, ...) reaching the screen;
* any other C0 control character becomes its Unicode "control picture" (``␇`` for BEL,
  ``␍`` for a lone CR, ``␛`` for a stray ESC); DEL becomes ``␡``. Control pictures are
  visible, one column wide and unambiguous, unlike caret notation: ``^[`` is also ordinary
  text in a regex, which model replies contain all the time;
* 8-bit C1 controls (U+0080–U+009F, including the one-character CSI U+009B) and bidi
  controls have no control picture, so they become U+FFFD. Their parameters, if any, stay
  as inert visible text.

``\\n`` and ``\\t`` are kept, and ``\\r\\n`` becomes ``\\n``.

A stream that cannot encode those marks (``PYTHONIOENCODING=ascii``, latin-1, cp1252) gets
:data:`ASCII_MARKS` instead: ``^[`` for an escape sequence or a stray ESC, ``?`` for anything
else neutralised, so the marks themselves can never make printing fail.

Everything is one compiled regex with possessive, bounded quantifiers, so the cost is
linear in the input even for hostile input such as a megabyte of ``ESC [``. A sequence
whose body is longer than :data:`MAX_SEQUENCE` characters is not treated as a sequence:
its ESC becomes ``␛`` and its body is shown as text. That bound is also what lets
:class:`StreamSanitizer` hold back only a few hundred characters at a chunk boundary.

This module is on the fast path of every reply, so it imports nothing outside the
standard library.
"""

from __future__ import annotations

import re

__all__ = ["ASCII_MARKS", "MAX_SEQUENCE", "UNICODE_MARKS", "Marks", "StreamSanitizer",
           "marks_for", "sanitize", "valid_unicode"]

#: Longest body (parameters, intermediates or string payload) of a recognised sequence.
MAX_SEQUENCE = 256

SEQUENCE_MARK = "\u241b"  # ␛
REPLACEMENT = "\ufffd"

_M = MAX_SEQUENCE
# ESC followed by: CSI | OSC, DCS, SOS, PM, APC (string ended by BEL or ST) | nF with
# intermediates | a two-character sequence (any final except the string/CSI openers).
_SEQUENCE = (
    rf"\x1b(?:"
    rf"\[[0-?]{{0,{_M}}}+[ -/]{{0,{_M}}}+[@-~]"
    rf"|[\]PX^_][^\x07\x1b]{{0,{_M}}}+(?:\x07|\x1b\\)"
    rf"|[ -/]{{1,{_M}}}+[0-~]"
    rf"|[0-OQ-WYZ\\`a-~]"
    rf")"
)
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
# Single characters to neutralise: C0 except \t and \n (so a lone \r and a stray ESC),
# DEL, C1, bidi controls.
_CONTROL = rf"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]"

_DANGER = re.compile(rf"{_SEQUENCE}|\r\n|{_CONTROL}")

# A tail that could still become something else once more text arrives: the proper
# prefixes of every sequence above, and a final \r (it may be half of \r\n).
_UNFINISHED = re.compile(
    rf"(?:\x1b(?:"
    rf"\[[0-?]{{0,{_M}}}+[ -/]{{0,{_M}}}+"
    rf"|[\]PX^_][^\x07\x1b]{{0,{_M}}}+\x1b?"
    rf"|[ -/]{{0,{_M}}}+"
    rf")|\r)\Z"
)
# No unfinished tail is longer than this (ESC [ params intermediates).
_HOLD_LIMIT = 2 * _M + 2

_PICTURES = {chr(c): chr(0x2400 + c) for c in range(0x20)}
_PICTURES["\x7f"] = "\u2421"  # ␡


class Marks:
    """What neutralised text is shown as; called with each match of the danger regex."""

    def __init__(self, sequence: str, pictures: dict[str, str], other: str) -> None:
        self.sequence = sequence  # a whole escape sequence
        self.pictures = pictures  # single control characters
        self.other = other  # anything else neutralised (C1, bidi, controls without a picture)

    def __call__(self, match: re.Match[str]) -> str:
        found = match.group()
        if len(found) > 1:
            return "\n" if found == "\r\n" else self.sequence
        return self.pictures.get(found, self.other)


UNICODE_MARKS = Marks(SEQUENCE_MARK, _PICTURES, REPLACEMENT)
ASCII_MARKS = Marks("^[", {"\x1b": "^["}, "?")


def marks_for(encoding: str | None) -> Marks:
    """The marks a stream with ``encoding`` can show: the Unicode ones when it can encode them."""
    if not encoding:
        return UNICODE_MARKS
    try:
        (SEQUENCE_MARK + REPLACEMENT + "".join(_PICTURES.values())).encode(encoding)
    except (UnicodeError, LookupError):
        return ASCII_MARKS
    return UNICODE_MARKS


_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_unicode(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD.

    Undecodable argv bytes arrive as surrogates, and a JSON stream may carry an unpaired
    ``\\ud800``; either would be stored, then fail every later request that has to encode it.
    """
    return _SURROGATE.sub(REPLACEMENT, text)


def sanitize(text: str, marks: Marks = UNICODE_MARKS) -> str:
    """Return ``text`` with every terminal control neutralised (see the module doc)."""
    return _DANGER.sub(marks, text)


class StreamSanitizer:
    """Sanitise text that arrives in chunks, as if it had arrived whole.

    An escape sequence (or a ``\\r\\n``) can be split across two chunks; sanitising each
    chunk alone would show the first half as ``␛`` and the second half as plain text.
    So :meth:`feed` holds back an unfinished tail until the next chunk decides it. The
    tail is at most ``2 * MAX_SEQUENCE + 2`` characters, because a longer body stops
    being a sequence, so a hostile unterminated OSC cannot make it buffer forever.

    For every way of splitting a text, the concatenated outputs of :meth:`feed` and
    :meth:`flush` equal ``sanitize(text)``.
    """

    def __init__(self, marks: Marks = UNICODE_MARKS) -> None:
        self._pending = ""
        self._marks = marks

    def feed(self, chunk: str) -> str:
        """Take the next chunk; return the sanitised text that is now decided."""
        text = self._pending + chunk
        start = max(0, len(text) - _HOLD_LIMIT)
        tail = _UNFINISHED.search(text, start)
        cut = tail.start() if tail else len(text)
        self._pending = text[cut:]
        return sanitize(text[:cut], self._marks)

    def flush(self) -> str:
        """End of stream: return whatever was held back, sanitised."""
        text, self._pending = self._pending, ""
        return sanitize(text, self._marks)
