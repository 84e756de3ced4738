"""`aish --replay-session`: a session's conversation again. Asking again (--as, --model) is
`aish.reask`; playing it back is not in this module yet.
"""

from __future__ import annotations

from aish.commands.branch_cmds import ON_BRANCH, SESSION
from aish.commands.context import Context
from aish.commands.history_cmds import NO_REDACT
from aish.commands.registry import JSON, Arg, command, positive_int
from aish.errors import UsageError

REASK = (Arg("--as", "ask every question of the branch again, of this specialist",
             metavar="NAME", dest="as_", completes="specialist"),
         Arg("--model", "ask every question of the branch again, of this model", metavar="M"),
         Arg("--into-branch", "with --as/--model: the new branch (default: replay-NAME)",
             metavar="NAME"),
         Arg("--compare", "with --as/--model: each turn's old and new answer, tokens and "
             "latency, and the first turn where they differ", flag=True),
         Arg("--provider", "with --as/--model: openai or local", metavar="NAME"))


@command("replay-session", "aish",
         "A session's conversation again: with --as or --model, every question asked again "
         "on a new branch.",
         args=(SESSION, ON_BRANCH,
               Arg("--from", "the first message (its number on the path); asking again: "
                   "resume an --into-branch from there", type=positive_int, metavar="N",
                   dest="start"),
               Arg("--to", "the last message", type=positive_int, metavar="M"),
               Arg("--speed", "play X times as fast", metavar="X"),
               Arg("--idle-limit", "the longest pause, in seconds", metavar="S"),
               NO_REDACT, *REASK, JSON),
         example="aish --replay-session sess_abc123 --as athena --compare")
def replay_session(ctx: Context, args) -> int:
    if args.as_ or args.model or args.into_branch or args.compare:
        from aish.reask import ask_again

        return ask_again(ctx, args)
    raise UsageError("--replay-session plays a session back: not here yet",
                     hint="ask again with --as NAME or --model M")
