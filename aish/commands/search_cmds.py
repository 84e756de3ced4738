"""`search` inside session mode: the same search as `aish --search-sessions`, over every session
or, with ``--here``, the open one."""

from __future__ import annotations

from aish.commands.context import Context
from aish.commands.manage import SEARCH_ARGS, run_search
from aish.commands.registry import Arg, command


def _query(words: list[str]) -> str:
    # The line was split like a shell's, so a quoted phrase arrives as one word with spaces.
    return " ".join(f'"{w}"' if len(w.split()) > 1 else w for w in words)


@command("search", "session",
         'Search all sessions for every word (or "quoted phrase"); --here: this one only.',
         args=(Arg("TEXT", "the words to look for", nargs="+"),
               Arg("--here", "only this session", flag=True), *SEARCH_ARGS),
         example='search "memory leak" --since 7d')
def search(ctx: Context, args) -> int:
    session = args.state.session
    if session.unsaved:
        ctx.out.note(f"{session.unsaved} unsaved message(s) are not searched (type 'save')")
    here = session.id if args.here else None
    if args.here and not session.stored:
        ctx.out.note("No messages yet: the session is stored with its first message.")
        return 1
    return run_search(ctx, args, _query(args.text), session=here)
