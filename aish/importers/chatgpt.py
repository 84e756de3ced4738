"""ChatGPT's data export: ``conversations.json``, a list of conversations.

Each conversation holds its messages as a tree, ``mapping`` (node id -> ``{message, parent,
children}``), and ``current_node``, the node the user last looked at. The tree is kept: the
path to ``current_node`` becomes ``main``, every other leaf a branch ``branch-N`` (oldest
first). Nodes that are not someone's words are left out, and their children follow the nearest
kept node above them: the empty root, system and tool messages, messages hidden from the
conversation, an assistant's calls to its tools, and content without text (images, browsing
displays). Of a message's parts only the text is kept.
"""

from __future__ import annotations

import heapq
from pathlib import Path

from aish.importers.model import (
    BadSource,
    Conversation,
    Turn,
    each,
    text_or_none,
    time_or_none,
)
from aish.importers.reading import Budget, load_json, read_text

_TEXT_TYPES = ("text", "multimodal_text")


def read(path: Path, budget: Budget, skipped: list[str] | None = None) -> list[Conversation]:
    text, mtime = read_text(path, budget)
    doc = load_json(text, str(path))
    if isinstance(doc, dict) and isinstance(doc.get("mapping"), dict):
        doc = [doc]  # one conversation, as some tools save it
    if not isinstance(doc, list):
        raise BadSource(f"{path}: expected a list of conversations, as ChatGPT's "
                        "conversations.json holds")
    return each(enumerate(doc, start=1),
                lambda pair: _conversation(pair[1], f"{path}: conversation {pair[0]}", mtime),
                skipped)


def _conversation(item: object, where: str, mtime: float) -> Conversation:
    if not isinstance(item, dict):
        raise BadSource(f"{where} is not an object")
    mapping = item.get("mapping")
    if not isinstance(mapping, dict):
        raise BadSource(f"{where}: its \"mapping\" is not an object")
    source_id = (text_or_none(item.get("conversation_id")) or text_or_none(item.get("id"))
                 or where.rsplit(" ", 1)[-1])
    created = time_or_none(item.get("create_time"))
    fallback = created if created is not None else mtime
    nodes: dict[str, object] = {}
    turns: dict[str, Turn] = {}
    for key, node in mapping.items():
        if not isinstance(node, dict):
            raise BadSource(f"{where}: node {str(key)[:40]!r} is not an object")
        nodes[key] = node.get("parent")
        turn = _turn(key, node.get("message"), fallback)
        if turn is not None:
            turns[key] = turn
    above = _nearest_kept(nodes, turns)
    children: dict[str, list[str]] = {}
    linked: dict[str, Turn] = {}
    for key, turn in turns.items():
        parent = above(nodes[key])
        linked[key] = Turn(key, turn.role, turn.text, turn.time, turn.model, parent)
        children.setdefault(parent, []).append(key)
    order = _in_time_order(children, linked)
    leaves = [key for key in order if key not in children]
    current = item.get("current_node")
    main = above(current) if isinstance(current, str) and current in nodes else ""
    if not main and leaves:
        main = max(leaves, key=lambda k: (linked[k].time, k))
    branches = {"main": main} if main else {}
    others = sorted((k for k in leaves if k != main), key=lambda k: (linked[k].time, k))
    for number, key in enumerate(others, start=1):
        branches[f"branch-{number}"] = key
    return Conversation(source_id, text_or_none(item.get("title"), 1000),
                        [linked[k] for k in order], branches, created)


def _turn(key: str, message: object, fallback: float) -> Turn | None:
    if not isinstance(message, dict):
        return None
    author = message.get("author")
    role = author.get("role") if isinstance(author, dict) else None
    if role not in ("user", "assistant"):
        return None
    metadata = message.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    if metadata.get("is_visually_hidden_from_conversation") is True:
        return None
    if message.get("recipient", "all") != "all":  # a call to a tool, not words to the user
        return None
    content = message.get("content")
    if not isinstance(content, dict) or content.get("content_type") not in _TEXT_TYPES:
        return None
    parts = content.get("parts")
    if not isinstance(parts, list):
        return None
    text = "\n".join(p for p in parts if isinstance(p, str) and p)
    if not text.strip():
        return None
    when = time_or_none(message.get("create_time"))
    model = text_or_none(metadata.get("model_slug")) if role == "assistant" else None
    return Turn(key, role, text, fallback if when is None else when, model)


def _nearest_kept(nodes: dict[str, object], kept: dict[str, Turn]):
    """A function from a node id to the nearest kept node at or above it ("" for none).

    Each node is walked once: the answer is remembered for every node on the way up, and a
    parent link that loops ends the walk as if it reached the root.
    """
    memo: dict[str, str] = {}

    def above(start: object) -> str:
        path: list[str] = []
        seen: set[str] = set()
        node = start
        found = ""
        while isinstance(node, str) and node in nodes and node not in seen:
            if node in memo:
                found = memo[node]
                break
            if node in kept:
                found = node
                break
            seen.add(node)
            path.append(node)
            node = nodes[node]
        for visited in path:
            memo[visited] = found
        return found

    return above


def _in_time_order(children: dict[str, list[str]], turns: dict[str, Turn]) -> list[str]:
    """Keys oldest first, as a log keeps them, and every parent before its children (a child
    timed before its parent comes right after it)."""
    order: list[str] = []
    ready = [(turns[k].time, k) for k in children.get("", [])]
    heapq.heapify(ready)
    while ready:
        _, key = heapq.heappop(ready)
        order.append(key)
        for child in children.get(key, []):
            heapq.heappush(ready, (turns[child].time, child))
    return order
