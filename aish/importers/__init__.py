"""Bringing conversations from other AI tools into aish sessions (`--import-session`).

Each source has its own reader module that turns a tool's files into `Conversation`s
(`aish.importers.model`); `aish.importers.intake` checks them all with the same checks as
`--restore-session` before anything is written, and stores them through `Sessions`.
"""

from __future__ import annotations

SOURCES = ("chatgpt", "llm", "sgpt", "gptme", "aichat")
