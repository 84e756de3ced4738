"""Reports on one session — `info`, `context`, `--session-info` — shared by both faces."""

from __future__ import annotations

from aish.context import estimate_tokens, pairs_of
from aish.humanize import ago, when, window


def session_info(sessions, sid: str, environ=None, branch: str = "main") -> dict:
    """What `aish --session-info ID` and the shell's `info` print, counted from what is stored
    (``branch``: whose compaction summary is told)."""
    summary = sessions.summary(sid)
    default = sessions.config.context_window
    header = summary.header
    counted = _counted(sessions, sid)
    # A compaction's summary is stored as a reply but is nobody's message: not counted.
    notes = counted.tally.notes if counted is not None else {}
    by_ai = dict(summary.by_ai)
    for ai, count in notes.items():
        by_ai[ai] = by_ai.get(ai, 0) - count
    return {
        "id": summary.id,
        "title": header.title,
        "title_by": header.title_by,
        "ai": f"{summary.owner}-ai",
        "participants": [f"{p}-ai" for p in summary.participants],
        "state": sessions.state(summary),
        "shared": bool(summary.header.shared),
        "created": summary.created,
        "updated": summary.updated,
        "messages": summary.messages - sum(notes.values()),
        "user_messages": summary.user_messages,
        "replies_by_ai": {f"{k}-ai": v for k, v in by_ai.items() if v > 0},
        "context_used": summary.context_used(default),
        "context_window": summary.context_window(default),
        "tokens": summary.tokens,
        "model": last_model(sessions.tail(sid, 1)),
        "origin": current_origin(sessions, summary.origin),
        "renamed_from": header.extra.get("renamed_from"),
        "location": sessions.location(sid),
        # Names only: counting each branch's messages walks it (aish --list-branches does).
        "branches": summary.tree.names(),
        "costs": session_costs(sessions, sid, environ, counted),
        "summary": compaction_summary(sessions, sid, branch),
        "people": people_of(sessions, sid, counted),
    }


def compaction_summary(sessions, sid: str, branch: str) -> dict | None:
    """The summary the context of ``branch`` begins with (None: it was never compacted)."""
    from aish.compaction import find_summary, session_on
    from aish.errors import AishError

    try:
        session = session_on(sessions, sid, branch)
        note = find_summary(session, session.recent(session.context_window))
    except AishError:  # a branch checked out here but gone from the session: nothing to say
        return None
    if note is None:
        return None
    return {"id": note.id, "covers": note.covers, "made": note.time, "branch": branch}


def people_of(sessions, sid: str, counted=None) -> dict | None:
    """Members and messages per person (`aish.people.report`); None when unreadable."""
    from aish.errors import AishError
    from aish.people import report

    if counted is None:
        return None
    try:
        people = report(sessions, sid, counted=counted)
    except AishError:  # the rest of the report stands without it
        return None
    return {"members": people["members"], "messages_by_person": people["messages_by_person"]}


def provider_of(config, environ=None):
    """``provider_of(ai)``: the provider name specialist ``ai`` is configured to use now (a
    reply keeps its model, not its provider)."""
    from aish.errors import AishError

    chosen: dict[str, str | None] = {}
    loaded = []  # the roster and `choose`, loaded at the first question: a report on
    # prices that name only models, or on no prices at all, never needs them

    def of(ai: str) -> str | None:
        if not loaded:
            from aish.providers import choose
            from aish.specialists import roster

            loaded[:] = roster(config.specialists, str(config.file)), choose
        specialists, choose = loaded
        if ai not in chosen:
            try:
                chosen[ai] = (choose(specialists[ai], config, env=environ)
                              if ai in specialists else None)
            except AishError:
                chosen[ai] = None
        return chosen[ai]

    return of


def _counted(sessions, sid: str):
    """What the counts and costs come from (`aish.tallies.Counted`; None: unreadable)."""
    from aish.errors import AishError

    try:
        return sessions.counted(sid)
    except AishError:  # the rest of the report stands without it
        return None


def session_costs(sessions, sid: str, environ=None, counted=None) -> dict | None:
    """Tokens and cost of one session (each stored reply once) and of each branch's path."""
    from aish.costs import priced

    counted = counted if counted is not None else _counted(sessions, sid)
    if counted is None:
        return None
    prices, of = sessions.config.prices, provider_of(sessions.config, environ)
    branches = {}
    for name in counted.tree.names():
        head = counted.tree.head(name)
        branches[name] = priced(counted.path(head.id if head else "").groups, prices, of)
    return {"total": priced(counted.tally.groups, prices, of).to_json(),
            "branches": {name: t.to_json() for name, t in branches.items()}}


def format_costs(costs: dict) -> list[str]:
    from aish.costs import from_json as line

    if not costs["total"]["total"]:
        return []
    lines = [f"Token use: {line(costs['total'])}"]
    branches = costs["branches"]
    if len(branches) > 1:
        lines += [f"  branch {name}: {line(t)}" for name, t in branches.items()]
    return lines


def current_origin(sessions, origin: dict) -> dict:
    """``origin`` with the sessions it names (a merge's, a fork's) under their current ids: a
    session renamed since is shown as ``old (now new)``."""
    def now_called(sid: str) -> str:
        new = sessions.resolve(sid.strip())
        return f"{sid.strip()} (now {new})" if new else sid.strip()

    out = dict(origin)
    if isinstance(out.get("merged"), str):
        out["merged"] = ", ".join(now_called(s) for s in out["merged"].split(","))
    if isinstance(out.get("fork"), str) and out["fork"]:
        first, _, rest = out["fork"].partition(" ")
        out["fork"] = " ".join(p for p in (now_called(first), rest) if p)
    return out


def last_model(messages) -> str | None:
    """The model that wrote the newest reply, as its endpoint reported it."""
    return next((m.model for m in reversed(messages) if m.model), None)


def format_info(info: dict, now: float) -> str:
    lines = [f"Session: {info['id']}"]
    if info.get("title"):
        by = " (automatic)" if info.get("title_by") == "auto" else ""
        lines.append(f"Title: {info['title']}{by}")
    lines.append(f"AI: {info['ai']}")
    if len(info["participants"]) > 1:
        lines.append(f"Participants: {', '.join(info['participants'])}")
    lines += [
        f"State: {info['state']}" + (" (shared)" if info["shared"] else ""),
        f"Created: {when(info['created'])}",
        f"Messages: {info['messages']}",
        f"Context used: {window(info['context_used'], info['context_window'])}",
        f"Last activity: {ago(now - info['updated'])}",
    ]
    if info["tokens"]:
        lines.append(f"Tokens: {info['tokens']:,}")
    if info.get("costs"):
        lines += format_costs(info["costs"])
    if info.get("model"):
        lines.append(f"Model: {info['model']}")
    if info.get("summary"):
        lines.append(f"Summary of messages 1\u2013{info['summary']['covers']} included (made "
                     f"{ago(now - info['summary']['made'])})")
    branches = info.get("branches") or []
    if len(branches) > 1:
        lines.append(f"Branches: {len(branches)} ({', '.join(branches[:8])}"
                     f"{', ...' if len(branches) > 8 else ''})")
    if info.get("renamed_from"):
        lines.append(f"Renamed from: {info['renamed_from']}")
    if info.get("origin"):
        lines.append("Origin: " + ", ".join(f"{k} {v}" for k, v in info["origin"].items()))
    people = info.get("people") or {}
    if people.get("members"):
        lines.append("Members: " + ", ".join(
            f"{r['user']} ({r['role']}{'' if r['active'] else ', expired'})"
            for r in people["members"]))
    if people.get("messages_by_person"):
        lines.append("Messages by person: " + ", ".join(
            f"{who} {n}" for who, n in people["messages_by_person"].items()))
    return "\n".join(lines)


def context_report(session, specialist, now: float) -> dict:
    """What the shell's `context` shows: the window in use, its oldest message, its tokens.
    Counted from what the next message would really carry: when the model's context is known
    (``session.fit_to``), the older pairs that do not fit it are counted as left out."""
    from aish.compaction import describe
    from aish.context import window_pairs
    from aish.messages import USER, Message

    specialist = session.as_owner_sees_it(specialist)
    upcoming = Message(USER, "", specialist.name, now)
    built = session.context(specialist, upcoming=upcoming)
    sent = built.window[:-1]
    oldest = sent[0].time if sent else None
    tokens = estimate_tokens(specialist.persona) + sum(estimate_tokens(m.content) for m in sent)
    if built.summary is not None:
        tokens += estimate_tokens(built.summary.content)
    size = session.context_window
    used = len(pairs_of(sent))
    return {"used": used, "window": size, "oldest": oldest, "tokens": tokens,
            "age": None if oldest is None else now - oldest,
            "left_out": max(0, window_pairs(session.recent(size), size) - used),
            "context_length": session.context_length,
            "summary": describe(built.summary, now),
            "unsummarised": built.gap is not None and built.summary is not None}


def format_context(report: dict) -> str:
    lines = [f"Using {window(report['used'], report['window'])} context window"]
    if report.get("left_out"):
        pairs = "pair does" if report["left_out"] == 1 else "pairs do"
        limit = (f"the model's {report['context_length']}-token context"
                 if report.get("context_length") else "sessions.limits.max_context_size")
        lines[0] += f" ({report['left_out']} older {pairs} not fit {limit})"
    if report.get("summary"):
        lines.append(report["summary"] + (" (newer messages left out since: aish "
                                          "--compact-session summarises them)"
                                          if report.get("unsummarised") else ""))
    if report["oldest"] is not None:
        lines.append(f"Oldest message: {ago(report['age'])}")
    lines.append(f"Estimated tokens: {report['tokens']:,}")
    return "\n".join(lines)
