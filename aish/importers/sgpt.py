"""shell_gpt's chat cache: one file per chat, named by the chat's id, holding a JSON list of
``{"role", "content"}`` (the first is the system role's prompt, left out here).

shell_gpt keeps the cache in ``CHAT_CACHE_PATH`` of ``~/.config/shell_gpt/.sgptrc``, by default
``chat_cache`` in the system's temporary folder. Give the folder to import every chat, or one
chat's file. The files record neither times nor models: every message is timed at the file's
last change, and no model is named.
"""

from __future__ import annotations

from pathlib import Path

from aish.importers.model import BadSource, Conversation, Turn, each, straight
from aish.importers.reading import Budget, files_in, is_dir, load_json, read_text


def read(path: Path, budget: Budget, skipped: list[str] | None = None) -> list[Conversation]:
    if not is_dir(path):
        return [_chat(path, budget)]
    return each(files_in(path), lambda file: _chat(file, budget), skipped)


def _chat(path: Path, budget: Budget) -> Conversation:
    text, mtime = read_text(path, budget)
    doc = load_json(text, str(path))
    if not isinstance(doc, list):
        raise BadSource(f"{path}: expected a list of messages, as shell_gpt's chat files hold")
    turns = []
    for number, item in enumerate(doc, start=1):
        if not isinstance(item, dict):
            raise BadSource(f"{path}: message {number} is not an object")
        role, content = item.get("role"), item.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            raise BadSource(f"{path}: message {number} has no role and text content")
        if role in ("user", "assistant") and content.strip():
            turns.append(Turn(str(number), role, content, mtime))
    return Conversation(path.name, path.name, straight(turns), created=mtime)
