"""`--session-stats`: counts over every stored session, from the stores' summaries (no history
is read), printed the way the README shows them."""

from __future__ import annotations

from collections import Counter

from aish.management.integrity import is_count
from aish.sessions import ACTIVE, ENDED, EXPIRED


def session_stats(sessions, by: str | None = None, environ=None) -> dict:
    """``by`` (ai, model or day): token use and cost, in all and per group, as well."""
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
        # Token use reads every log, so only when asked: the summaries keep the plain report's
        # cost the same however long the sessions are.
        **(token_use(sessions, [s.id for s, _ in rows], by, environ) if by else {}),
    }


def token_use(sessions, ids: list[str], by: str | None, environ=None) -> dict:
    """Input, output, estimated tokens and cost over every stored reply (read from the logs),
    and per ``by`` group when asked."""
    from aish.costs import GROUPS, Totals, totals
    from aish.errors import AishError
    from aish.reports import provider_of

    prices, of = sessions.config.prices, provider_of(sessions.config, environ)
    overall, groups = Totals(), dict[str, Totals]()
    for sid in ids:
        try:
            messages = sessions.load(sid).messages
        except AishError:  # unreadable here (a key missing, ...): listing says so elsewhere
            continue
        for name, t in totals(messages, prices, of, GROUPS[by] if by else None).items():
            for into in (overall, groups.setdefault(name, Totals())):
                into.merge(t)
    out: dict = {"token_use": overall.to_json()}
    if by:
        out["by"] = by
        out["groups"] = {name: groups[name].to_json() for name in sorted(groups)}
    return out


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
    from aish.costs import from_json

    use = stats.get("token_use")
    if use and use["total"]:
        lines.append(f"Token use: {from_json(use)}")
    for name, group in (stats.get("groups") or {}).items():
        lines.append(f"  {name}: {from_json(group)}")
    return "\n".join(lines)
