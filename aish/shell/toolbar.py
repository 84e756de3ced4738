"""The bottom toolbar: session id, window use, specialist, model, branch and fork in session
mode; hints at the `aish>` prompt. Its text is computed once per prompt (not per keystroke),
because window use and the tree are read from storage."""

from __future__ import annotations

from aish.humanize import window
from aish.sanitize import sanitize
from aish.sessions import MAIN

SEP = " │ "
TITLE_WIDTH = 32  # a longer title is cut in the toolbar (listing and info show it whole)
HINTS = "Tab completes · Esc-Enter new line · Ctrl-X Ctrl-E editor · Ctrl-D leaves"


def session_toolbar(sid: str, used: int, size: int, specialist: str, model: str | None,
                    unsaved: int = 0, branch: str = MAIN, fork: str | None = None,
                    title: str | None = None) -> list[tuple[str, str]]:
    """Formatted text fragments: ``sess_k3f9x2 │ window 8/10 │ apollo │ model smollm2``, then
    the branch when it is not main and, at a fork, which side is shown (``fork 2/3``); a
    session's title follows its id."""
    parts = [("session", sid)]
    if title:
        shown = title if len(title) <= TITLE_WIDTH else title[:TITLE_WIDTH - 1] + "…"
        parts.append(("", sanitize(shown)))
    parts += [("window", window(used, size)), ("", specialist),
              ("model", sanitize(model or "?"))]
    if branch != MAIN:
        parts.append(("branch", sanitize(branch)))
    if fork:
        parts.append(("fork", f"{fork} Alt-←/→"))
    if unsaved:
        parts.append(("unsaved", str(unsaved)))
    return _fragments(parts)


def shell_toolbar(active: int | None) -> list[tuple[str, str]]:
    parts = []
    if active is not None:
        parts.append(("active sessions", str(active)))
    parts.append(("", HINTS))
    return _fragments(parts)


def _fragments(parts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = [("class:bottom-toolbar", " ")]
    for i, (label, value) in enumerate(parts):
        if i:
            out.append(("class:bottom-toolbar", SEP))
        if label:
            out.append(("class:bottom-toolbar", label + " "))
        out.append(("class:bottom-toolbar.value", value))
    out.append(("class:bottom-toolbar", " "))
    return out


def plain(fragments: list[tuple[str, str]]) -> str:
    return "".join(text for _style, text in fragments)
