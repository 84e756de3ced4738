"""`aish --compact-session`: the specialist's model summarises what left a branch's context
window, so that its context carries a summary of the older messages instead of dropping them."""

from __future__ import annotations

from aish.commands.context import Context
from aish.commands.registry import JSON, Arg, command


@command("compact-session", "aish",
         "Summarise the messages that left a branch's context window (the session's model "
         "writes it); the branch's context then begins with the summary. Nothing is removed.",
         args=(Arg("ID", "the session", completes="session"),
               Arg("--branch", "the branch (default: the one checked out)", metavar="NAME",
                   completes="branch"),
               Arg("--provider", "openai or local (default: the specialist's)", metavar="NAME"),
               Arg("--model", "the model that summarises", metavar="MODEL"), JSON),
         example="aish --compact-session sess_abc123")
def compact_session(ctx: Context, args) -> int:
    import json

    from aish import compaction
    from aish.commands.branch_cmds import current_branch
    from aish.commands.core import _provider

    branch = args.branch or current_branch(ctx, args.id)
    session = compaction.session_on(ctx.sessions, args.id, branch)
    owner = session.summary.owner
    specialist = ctx.specialist(owner if owner in ctx.specialists else "apollo")
    done = compaction.compact(session, specialist, _provider(ctx, specialist, args))
    if args.json:
        ctx.out.data(json.dumps({"session": session.id, "branch": branch,
                                 "compacted": done is not None,
                                 "summary": done.note.id if done else None,
                                 "covers": done.note.covers if done else None,
                                 "added": done.added if done else 0}, indent=2))
    elif done is None:
        ctx.out.note(f"Nothing to compact: every message before the context window of branch "
                     f"{branch} of session {session.id} is summarised already (or none is "
                     f"left out)")
    else:
        ctx.out.note(f"Summarised messages 1\u2013{done.note.covers} of branch {branch} of "
                     f"session {session.id} ({done.added} new); its context now begins with "
                     f"the summary")
    return 0
