"""What `--import-session --from chatgpt` costs for a big export, in a throwaway HOME.

Run ``python benchmarks/import_bench.py [CONVERSATIONS] [MESSAGES]`` with the venv's python
(default 500 conversations of 40 messages, each with one regenerated reply, so every
conversation has a branch). Prints the export's size, the time to read and check it without
writing (the parser and the checks), the first import (every session written), and the same
file imported again (nothing to write: every conversation is recognised), all as the user runs
them (interpreter start included).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench import environment, row, timed  # noqa: E402

from aish.importers.run import read_conversations  # noqa: E402


def _conversation(n: int, messages: int) -> dict:
    start = 1_700_000_000.0 + n * 1000
    mapping = {"root": {"message": None, "parent": None, "children": []}}
    parent = "root"
    for i in range(messages):
        key = f"m{i}"
        role = "user" if i % 2 == 0 else "assistant"
        mapping[key] = {"parent": parent, "children": [], "message": {
            "author": {"role": role}, "create_time": start + i,
            "content": {"content_type": "text", "parts": [f"message {i} of {n} " * 8]},
            "metadata": {"model_slug": "gpt-4o"} if role == "assistant" else {}}}
        mapping[parent]["children"].append(key)
        parent = key
    mapping["alt"] = {"parent": "m0", "children": [], "message": {
        "author": {"role": "assistant"}, "create_time": start + 0.5,
        "content": {"content_type": "text", "parts": ["another answer"]}, "metadata": {}}}
    return {"title": f"conversation {n}", "conversation_id": f"conv-{n}",
            "create_time": start, "current_node": parent, "mapping": mapping}


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    messages = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        env = environment(home)
        export = Path(tmp) / "conversations.json"
        export.write_text(json.dumps([_conversation(n, messages) for n in range(count)]))
        print(f"import of {count} ChatGPT conversations of {messages + 1} messages "
              f"({export.stat().st_size / 1e6:.1f} MB)")
        start = time.perf_counter()
        read_conversations("chatgpt", str(export), 1 << 30)
        row("read and build the trees, in process", time.perf_counter() - start)
        row("aish --import-session (all new)",
            timed(env, "aish", "--import-session", str(export), "--from", "chatgpt", runs=1))
        row("aish --import-session again (nothing new)",
            timed(env, "aish", "--import-session", str(export), "--from", "chatgpt", runs=3))


if __name__ == "__main__":
    main()
