"""`--session-stats`: counts over every stored session, from the stores' summaries (no history
is read), printed the way the README shows them."""

from __future__ import annotations

from collections import Counter

from aish.management.integrity import is_count
from aish.sessions import ACTIVE, ENDED, EXPIRED


def session_stats(sessions) -> dict:
    rows = sessions.listing(include_all=True)
    states = Counter(state for _, state in rows)
    lengths = [s.context_used(sessions.config.context_window) for s, _ in rows]
    replies: Counter = Counter()
    for summary, _ in rows:
        for ai, count in summary.by_ai.items():
            if is_count(count):
                replies[str(ai)] += count
    total_replies = sum(replies.values())
    most = None
    if total_replies:
        ai, count = min(replies.items(), key=lambda item: (-item[1], item[0]))
        most = {"ai": f"{ai}-ai", "replies": count, "share": round(100 * count / total_replies)}
    return {
        "active_sessions": states[ACTIVE],
        "sessions": {"total": len(rows), "active": states[ACTIVE], "ended": states[ENDED],
                     "expired": states[EXPIRED]},
        "total_messages": sum(s.messages for s, _ in rows),
        "average_context_length": round(sum(lengths) / len(lengths), 2) if lengths else 0.0,
        "most_active_ai": most,
        "replies_by_ai": {f"{ai}-ai": n for ai, n in sorted(replies.items())},
        "tokens": sum(s.tokens for s, _ in rows),
    }


def format_stats(stats: dict) -> str:
    most = stats["most_active_ai"]
    counts = stats["sessions"]
    lines = [
        f"Active sessions: {stats['active_sessions']:,}",
        f"Total messages: {stats['total_messages']:,}",
        f"Average context length: {stats['average_context_length']:.1f}",
        f"Most active AI: {most['ai']} ({most['share']}%)" if most else "Most active AI: none",
        f"Stored sessions: {counts['total']:,} ({counts['active']:,} active, "
        f"{counts['ended']:,} ended, {counts['expired']:,} expired)",
    ]
    if stats["tokens"]:
        lines.append(f"Tokens: {stats['tokens']:,}")
    return "\n".join(lines)
