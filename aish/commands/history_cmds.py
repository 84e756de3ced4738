"""`aish --history`: a session's whole tree, drawn, or as JSON nodes, edges and refs.

Text shown goes through `aish.redact` (unless --no-redact) and the sanitiser; what was
redacted is reported on stderr. Rich is imported only to draw.
"""

from __future__ import annotations

import json

from aish.commands.branch_cmds import ON_BRANCH, SESSION, current_branch
from aish.commands.context import Context
from aish.commands.registry import JSON, Arg, command

NO_REDACT = Arg("--no-redact", "show secrets (API keys, tokens, ...) as they are", flag=True)


def load_history(ctx: Context, sid: str, branch: str | None, first_lines: bool = False):
    """The history of ``sid`` (only ``branch``'s path when given) and this user's branch.
    ``first_lines``: only each message's first line is needed (drawing), which the store may
    keep apart from the log and read far faster."""
    from aish.branches import check_branch, head_of
    from aish.history import build

    summary = ctx.sessions.summary(sid)
    if branch is not None:
        check_branch(branch)
        head_of(summary, branch)  # it must exist
    loaded = ctx.sessions.skeleton(summary.id) if first_lines else None
    if loaded is None:
        loaded = ctx.sessions.load(summary.id)
    return build(loaded, summary.id, current_branch(ctx, sid), branch)


def report_redactions(ctx: Context, redactor) -> None:
    text = redactor.report()
    if text:
        ctx.out.note(text)


@command("history", "aish", "Draw a session's whole tree of messages and branches.",
         args=(SESSION, ON_BRANCH,
               Arg("--all", "show every message (long straight runs are folded otherwise)",
                   flag=True),
               Arg("--graph", "draw branches as lanes, newest first (as git log --graph)",
                   flag=True),
               NO_REDACT, JSON),
         example="aish --history sess_abc123")
def history(ctx: Context, args) -> int:
    from aish.redact import Redactor

    redactor = Redactor(not args.no_redact)
    if args.json:
        tree = load_history(ctx, args.id, args.branch)
        ctx.out.data(json.dumps(tree.to_json(redactor), indent=2))
        report_redactions(ctx, redactor)
        return 0
    from aish.history import WIDEST, Style, graph_lines, tree_lines
    from aish.sanitize import marks_for, sanitize

    console = ctx.out.console()
    tree = load_history(ctx, args.id, args.branch, first_lines=console.width <= WIDEST)
    marks = marks_for(getattr(ctx.out.stdout, "encoding", None))
    # ASCII guides where box drawing may not show: a stream that cannot encode it, or NO_COLOR
    # (often a plain console or a screen reader).
    ascii_only = "NO_COLOR" in ctx.environ or not console.encoding.lower().startswith("utf")
    style = Style(console.width, ascii_only, not args.all, ctx.now(),
                  lambda text: sanitize(text, marks), redactor)
    lines = graph_lines(tree, style, ctx.out.color) if args.graph else tree_lines(tree, style)
    print_lines(console, lines)
    report_redactions(ctx, redactor)
    return 0


def print_lines(console, lines) -> None:
    """Print rows as they are made: the first screenful goes out at once, before the rest of a
    long history is laid out; later rows go in batches (one print each costs more than a row)."""
    batch, size = [], max(console.height, 1)
    for line in lines:
        batch.append(line)
        if len(batch) >= size:
            _flush(console, batch)
            size = 1000
    _flush(console, batch)


def _flush(console, batch: list) -> None:
    if batch:
        from rich.text import Text

        # Cropped, never wrapped: a row too wide for the terminal stays one line.
        console.print(Text("\n").join(batch), no_wrap=True, overflow="crop", crop=True)
        batch.clear()
