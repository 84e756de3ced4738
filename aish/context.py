"""Which messages are sent: the context window, counted in pairs and capped in tokens."""

from __future__ import annotations

from aish.messages import Message


def estimate_tokens(text: str) -> int:
    """A cheap, stable estimate (~4 characters per token, plus framing per message)."""
    return len(text) // 4 + 4


# Tokens a chat template adds around the messages (role markers, the reply's opening).
TEMPLATE_TOKENS = 64


def prompt_budget(context_length: int | None, reply_tokens: int) -> int | None:
    """Tokens a prompt may use in a model of ``context_length`` tokens (None: unknown) while
    leaving room for a reply of ``reply_tokens``; the persona and messages must fit in it."""
    if not context_length:
        return None
    return max(256, context_length - reply_tokens - TEMPLATE_TOKENS)


def pairs_of(messages: list[Message]) -> list[list[Message]]:
    """Group messages into pairs: each user message with the replies that follow it."""
    groups: list[list[Message]] = []
    for message in messages:
        if message.role == "user" or not groups:
            groups.append([message])
        else:
            groups[-1].append(message)
    return groups


def select_window(history: list[Message], pairs: int, max_tokens: int,
                  fixed_tokens: int = 0) -> list[Message]:
    """The messages to send for ``history``, whose last pair holds the new user message.

    ``pairs`` earlier pairs are kept (0 = all of them); then the oldest kept pairs are dropped
    until the estimate, including ``fixed_tokens`` (the persona), fits ``max_tokens``. The newest
    pair is always sent.
    """
    groups = pairs_of(history)
    if not groups:
        return []
    newest, earlier = groups[-1], groups[:-1]
    if pairs > 0:
        earlier = earlier[-pairs:]
    budget = max_tokens - fixed_tokens - sum(estimate_tokens(m.content) for m in newest)
    kept: list[list[Message]] = []
    for group in reversed(earlier):
        cost = sum(estimate_tokens(m.content) for m in group)
        if cost > budget:
            break
        budget -= cost
        kept.append(group)
    kept.reverse()
    return [m for group in kept for m in group] + newest


def window_pairs(history: list[Message], pairs: int) -> int:
    """How many complete pairs of ``history`` fall in a window of ``pairs`` (0 = unlimited)."""
    count = len(pairs_of(history))
    return count if pairs == 0 else min(count, pairs)


# Tokens the words around a summary add ("Summary of the earlier conversation ...").
SUMMARY_FRAME_TOKENS = 16


def summarised_window(history: list[Message], summary: Message | None, pairs: int,
                      max_tokens: int, fixed_tokens: int = 0
                      ) -> tuple[list[Message], str | None]:
    """`select_window` after a summary of the path up to ``summary.source`` (None: no
    summary): the messages it covers are not sent again, and its text counts against
    ``max_tokens``. Also returns the id of the newest message left out that no summary covers
    (None: every message before the window is summarised, or there is none)."""
    if summary is not None:
        ids = [m.id for m in history]
        if summary.source in ids:
            history = history[ids.index(summary.source) + 1:]
        fixed_tokens += estimate_tokens(summary.content) + SUMMARY_FRAME_TOKENS
    window = select_window(history, pairs, max_tokens, fixed_tokens)
    before = window[0].parent if window else None
    if not before or (summary is not None and before == summary.source):
        return window, None
    return window, before
