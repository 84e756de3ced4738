"""gptme's conversation logs: ``conversation.jsonl``, one JSON message per line (``role``,
``content``, ``timestamp``; a reply's ``metadata`` names its ``model`` and ``usage``), in a
folder named after the conversation under ``~/.local/share/gptme/logs``.

Give a ``conversation.jsonl``, its folder, or the logs folder to import every conversation.
System messages (gptme's prompt, tool output) and messages marked ``hide`` are left out, and
so is a last line without its newline yet (gptme is still writing it).
gptme writes local times without a zone: they are read as this machine's local time.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from aish.importers.model import (
    BadSource,
    Conversation,
    Turn,
    each,
    straight,
    text_or_none,
    time_or_none,
    tokens,
)
from aish.importers.reading import Budget, folders_in, is_dir, load_json, read_text

LOG = "conversation.jsonl"


def read(path: Path, budget: Budget, skipped: list[str] | None = None) -> list[Conversation]:
    if not is_dir(path):
        return [_log(path, budget)]
    if (path / LOG).exists():
        return [_log(path / LOG, budget)]
    logs = [folder / LOG for folder in folders_in(path) if (folder / LOG).exists()]
    if not logs:
        raise BadSource(f"{path}: no gptme {LOG} in it or in its folders")
    return each(logs, lambda log: _log(log, budget), skipped)


def _when(value: object) -> float | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return time_or_none(datetime.fromisoformat(value).timestamp())
    except (ValueError, OverflowError, OSError):
        return None


def _log(path: Path, budget: Budget) -> Conversation:
    text, mtime = read_text(path, budget)
    name = path.parent.name if path.name == LOG else path.stem
    turns = []
    last: float | None = None  # a message without a time has the one before it's
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = load_json(line, f"{path} line {number}")
        except BadSource:
            if number == len(lines):  # no newline yet: a line gptme is still writing
                break
            raise
        if not isinstance(item, dict):
            raise BadSource(f"{path} line {number}: not a message object")
        role, content = item.get("role"), item.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            raise BadSource(f"{path} line {number}: a message needs a role and text content")
        when = _when(item.get("timestamp"))
        last = when if when is not None else last
        if role not in ("user", "assistant") or item.get("hide") is True or not content.strip():
            continue
        meta = item.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        used = meta.get("usage")
        usage = (tokens(used.get("input_tokens"), used.get("output_tokens"))
                 if isinstance(used, dict) else None)
        model = text_or_none(meta.get("model")) if role == "assistant" else None
        turns.append(Turn(str(number), role, content, mtime if last is None else last, model,
                          usage=usage if role == "assistant" else None))
    if not text.strip():
        raise BadSource(f"{path} is empty")
    return Conversation(name, name, straight(turns),
                        created=turns[0].time if turns else mtime)
