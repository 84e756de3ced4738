"""Session titles: a person's (``--title-session``) or one the session's model suggests after
the first exchange. A title is shown in listings, so it is one line of plain text, bounded."""

from __future__ import annotations

import re

from aish.sanitize import sanitize, valid_unicode

MAX_TITLE = 80  # what a person may set
MAX_AUTO_TITLE = 60  # what a model's suggestion is cut to
AUTO_MAX_TOKENS = 16
AUTO_PROMPT = ("Give a short title (at most six words) for a conversation that starts like "
               "this. Reply with the title only, no quotes.")

_SPACE = re.compile(r"\s+")


def clean_title(text: str, limit: int = MAX_TITLE) -> str:
    """``text`` as a title: control characters and escape sequences made inert, all white
    space (newlines included) folded to single spaces, cut to ``limit`` characters."""
    text = sanitize(valid_unicode(text))
    text = _SPACE.sub(" ", text).strip()
    if len(text) > limit:
        text = text[:limit - 1].rstrip() + "…"
    return text


def clean_suggestion(text: str) -> str:
    """A model's reply as a title: its first non-empty line, without quotes or a label."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    for _ in range(2):  # a label inside quotes, or quotes after a label
        line = line.strip().strip("\"'`*#").strip()
        line = re.sub(r"^title\s*:\s*", "", line, flags=re.IGNORECASE)
    return clean_title(line, MAX_AUTO_TITLE)


def title_record(title: str, by: str) -> dict:
    """The meta record that sets (or, with ``""``, clears) a title."""
    if not title:
        return {"t": "meta", "title": None, "title_by": None}
    return {"t": "meta", "title": title, "title_by": by}


def suggest_title(provider, specialist, question: str, answer: str) -> str:
    """A title for a conversation that began with ``question`` and ``answer``, from
    ``provider`` with a small reply budget ("" when it says nothing usable)."""
    from aish.messages import ChatMessage

    chat = [ChatMessage("system", AUTO_PROMPT),
            ChatMessage("user", f"User: {question[:2000]}\n\nAssistant: {answer[:2000]}")]
    # The request is the provider's own (its endpoint, model and key), only smaller and
    # quiet: no "waiting" notes, no retries, a reply of a few tokens.
    parts = []
    for chunk in provider.stream(chat, specialist, max_tokens=AUTO_MAX_TOKENS, quiet=True,
                                 retries=0):
        parts.append(chunk.text or "")
        if chunk.finished:
            break
    return clean_suggestion("".join(parts))


def auto_title(session, specialist, provider, reply) -> bool:
    """Title ``session`` after its first exchange (``reply``), unless it has a title, auto
    titles are off or sessions are encrypted; any failure leaves it untitled, silently. True
    when titled."""
    config = session.sessions.config
    if not config.auto_title or reply.interrupted or not reply.text.strip():
        return False
    # Titles are stored as plain session metadata; one drawn from encrypted messages would
    # give away what they hide.
    if config.encrypt:
        return False
    header = session.summary.header
    # A one-off question is its own title, and the extra request would slow every one.
    if header.title is not None or header.oneshot:
        return False
    users = session.summary.user_messages + sum(m.role == "user" for m in session.pending)
    if users != 1:
        return False
    try:
        question = next((m.content for m in session.recent(1) if m.role == "user"), "")
        title = suggest_title(provider, specialist, question, reply.text)
        if not title:
            return False
        return session.set_auto_title(title)
    except (Exception, KeyboardInterrupt):  # noqa: BLE001 - a title is never worth an error
        return False
