"""`--import-session`: conversations from ChatGPT, llm, shell_gpt, gptme or aichat as sessions."""

from __future__ import annotations

import json

from aish.commands.context import Context
from aish.commands.registry import JSON, Arg, command
from aish.errors import LIMIT, UsageError

_SOURCES = "chatgpt, llm, sgpt, gptme or aichat"


def _source(text: str) -> str:
    from aish.importers import SOURCES

    if text not in SOURCES:
        raise UsageError(f"--from: expected one of {', '.join(SOURCES)}, got {text!r}")
    return text


@command("import-session", "aish",
         f"Import conversations another tool saved ({_SOURCES}) as sessions; importing the "
         "same file again adds nothing.",
         args=(Arg("FILE", "ChatGPT's conversations.json, llm's logs.db, a shell_gpt chat "
                   "file or its chat_cache folder, a gptme conversation.jsonl or logs folder, "
                   "an aichat session .yaml or sessions folder (default: where the tool keeps "
                   "them; ChatGPT has no default)", nargs="?", completes="path"),
               Arg("--from", "the tool that wrote FILE: " + _SOURCES, type=_source,
                   metavar="TOOL", dest="source"),
               Arg("--ai", "the specialist the sessions belong to (default apollo)",
                   metavar="NAME", completes="specialist"),
               Arg("--conversation", "import only the conversation with this id",
                   metavar="ID"),
               Arg("--skip-corrupted", "leave out conversations that cannot be imported "
                   "(each is named) instead of importing none", flag=True),
               JSON),
         example="aish --import-session conversations.json --from chatgpt")
def import_session(ctx: Context, args) -> int:
    from aish.importers.run import import_sessions

    if args.source is None:
        raise UsageError("--import-session needs --from TOOL",
                         hint=f"TOOL is one of {_SOURCES}")
    ai = ctx.specialist(args.ai).name if args.ai else "apollo"
    path = args.file
    if path is None:
        from aish.importers.places import default_location

        place = default_location(args.source, ctx.environ)
        if place is None:
            raise UsageError(f"--from {args.source} needs the FILE to import",
                             hint="aish --import-session conversations.json --from chatgpt")
        ctx.out.note(f"Importing from {place}")
        path = str(place)
    report = import_sessions(ctx.sessions, args.source, path, ai=ai,
                             conversation=args.conversation,
                             skip_corrupted=args.skip_corrupted)
    results = report.sessions
    _warn_left_out(ctx, report.skipped, "damaged conversations")
    _warn_left_out(ctx, report.too_large, "conversations over the session size limit")
    if report.empty:
        ctx.out.note(f"Left out {len(report.empty)} conversation(s) without messages: "
                     f"{', '.join(report.empty[:5])}{' ...' if len(report.empty) > 5 else ''}")
    for r in results:
        # One line per conversation, whatever its title holds (the stored title is folded).
        title = f" ({' '.join(r.title.split())})" if r.title else ""
        if r.existing:
            ctx.out.note(f"Conversation {r.source_id}{title} was imported before as {r.id}; "
                         "nothing new to import")
            continue
        branches = [b for b in r.branches if b != "main"]
        extra = f", branches: {', '.join(branches)}" if branches else ""
        ctx.out.note(f"Imported conversation {r.source_id}{title} as {r.id} "
                     f"({r.messages:,} message{'' if r.messages == 1 else 's'}{extra})")
        if r.earlier:
            ctx.out.note(f"  it changed since it was imported as {', '.join(r.earlier)}, "
                         "which is kept as it was")
    if args.json:
        ctx.out.data(json.dumps([r.to_json() for r in results], indent=2))
    else:
        ctx.out.data("\n".join(r.id for r in results))
    # Some were imported and some could not be: the exit code of the limit says it was partial
    # (the same import again, with the limit raised, adds only those left out).
    return LIMIT if report.too_large else 0


def _warn_left_out(ctx: Context, reasons: list[str], what: str) -> None:
    """One line per conversation left out (the first ten), naming it and why."""
    for reason in reasons[:10]:
        ctx.out.warn(f"left out: {reason}")
    if len(reasons) > 10:
        ctx.out.warn(f"left out {len(reasons) - 10} more {what}")
