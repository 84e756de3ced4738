"""Names stored in a log reach the terminal only as visible marks.

A shared Redis or a synced folder lets another writer put anything into a record's ``by`` or
``ai``; the history and its exports must never pass the terminal escapes in them on.
"""

from __future__ import annotations

import json
from pathlib import Path

from history_support import ok

FORGED_BY = "\x1b]0;HACK\x07\x1b[31mmallory"


def test_escapes_in_a_stored_author_are_shown_as_marks(env):
    ok(env, "apollo", "--session-id", "names", input="hello")
    log = Path(env["HOME"]) / ".aish" / "sessions" / "names.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    for record in records:
        if record.get("role") == "user":
            record["by"] = FORGED_BY
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    for args in (("--history", "names"), ("--history", "names", "--graph"),
                 ("--export-session", "names", "--format", "md")):
        out = ok(env, "aish", *args).stdout.decode()
        assert "\x1b" not in out and "\x07" not in out, args
        assert "mallory" in out and "\u241b" in out, args  # ␛: the escape, visible
