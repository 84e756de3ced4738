"""Session templates: a session's persona, settings and messages kept under a name.

Credentials are never part of a session, so they can never reach a template.
"""

from __future__ import annotations

import math

from aish.errors import SessionNotFound, StorageError
from aish.header import Header
from aish.ids import check_id
from aish.messages import Message

KIND = "templates"


def save_template(sessions, name: str, sid: str, persona: str | None = None) -> str:
    check_id(name, "template name")
    loaded = sessions.load(sid)
    header, _ = Header.decode(loaded.meta)
    doc = {
        "name": name,
        "source": sid,
        "owner": header.owner,
        "context_window": header.context_window,
        "persona": persona,
        "messages": [m.to_record() for m in loaded.path(loaded.tree.head("main"))],
    }
    return sessions.put_doc(KIND, name, doc, action="template", sid=sid, ai=header.owner,
                            template=name)


def load_template(sessions, name: str) -> tuple[dict, list[Message]]:
    doc = sessions.get_doc(KIND, check_id(name, "template name"))
    if doc is None:
        known = ", ".join(sessions.list_docs(KIND)) or "none saved yet"
        raise SessionNotFound(f"template {name!r} not found", hint=f"templates: {known}")
    try:
        if not isinstance(doc, dict) or not isinstance(doc.get("messages", []), list):
            raise TypeError("not a template document")
        messages = [Message.from_record(r) for r in doc.get("messages", [])]
        if not all(math.isfinite(m.time) for m in messages):
            raise ValueError("a message has no valid time")
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
        raise StorageError(f"template {name!r} is damaged: {exc}") from None
    return doc, messages


def start_from_template(sessions, name: str, ai: str, sid: str | None = None,
                        context_window: int | None = None):
    doc, messages = load_template(sessions, name)
    window = context_window if context_window is not None else doc.get("context_window")
    if isinstance(window, bool) or not isinstance(window, int) or window < 0:
        window = None  # the configured default
    # The persona is that of the specialist the template was saved from; another specialist
    # starting from the template keeps its own.
    persona = doc.get("persona")
    same = doc.get("owner") in (None, ai)
    extra = {"persona": persona} if isinstance(persona, str) and persona and same else None
    return sessions.create(ai, sid, named=sid is not None, context_window=window,
                           origin={"template": name}, messages=messages, extra_meta=extra)
