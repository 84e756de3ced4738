"""aichat's sessions: a YAML file per session (``~/.config/aichat/sessions/NAME.yaml``) with the
session's ``model`` (``client:model``) and its ``messages``, each a ``role`` and a ``content``
that is text, a list of parts (only ``text`` parts are kept), or a tool call's record (its
``text``). Messages aichat compressed into a summary are kept under ``compressed_messages``:
they come first. Give one file or the sessions folder.

The YAML is parsed with bounded work (no alias bombs, no deep nesting). Sessions record no
times: every message is timed at the file's last change. Every reply is credited to the
session's model.
"""

from __future__ import annotations

from pathlib import Path

from aish.errors import ConfigError
from aish.importers.model import BadSource, Conversation, Turn, each, straight, text_or_none
from aish.importers.reading import Budget, files_in, is_dir, read_text

MAX_NODES = 2_000_000  # YAML values in one session, counting every alias as what it stands for
MAX_DEPTH = 64


def read(path: Path, budget: Budget, skipped: list[str] | None = None) -> list[Conversation]:
    if is_dir(path):
        files = files_in(path, lambda p: p.suffix in (".yaml", ".yml"))
        if not files:
            raise BadSource(f"{path}: no aichat session (.yaml) in it")
        return each(files, lambda file: _session(file, budget), skipped)
    return [_session(path, budget)]


def _content(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(part["text"] for part in value if isinstance(part, dict)
                         and part.get("type") == "text" and isinstance(part.get("text"), str))
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return value["text"]
    return None


def _session(path: Path, budget: Budget) -> Conversation:
    from aish import boundedyaml

    text, mtime = read_text(path, budget)
    try:
        doc = boundedyaml.load(text, str(path), max_nodes=MAX_NODES, max_depth=MAX_DEPTH)
    except ConfigError as exc:
        raise BadSource(str(exc)) from None
    if not isinstance(doc, dict):
        raise BadSource(f"{path}: expected an aichat session (model, messages)")
    model = text_or_none(doc.get("model"))
    items: list = []
    for key in ("compressed_messages", "messages"):
        value = doc.get(key, [])
        if value is None:
            continue
        if not isinstance(value, list):
            raise BadSource(f"{path}: {key} is not a list")
        items += value
    turns = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise BadSource(f"{path}: message {number} is not a mapping")
        role, content = item.get("role"), _content(item.get("content"))
        if not isinstance(role, str) or content is None:
            raise BadSource(f"{path}: message {number} has no role and content")
        if role in ("user", "assistant") and content.strip():
            turns.append(Turn(str(number), role, content, mtime,
                              model if role == "assistant" else None))
    return Conversation(path.stem, path.stem, straight(turns), created=mtime)
