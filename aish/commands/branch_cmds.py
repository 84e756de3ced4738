"""Branch commands: make, list, check out, undo, redo and merge the branches of a session.

Handlers parse, call `aish.branches` and format; results go to stdout (JSON with ``--json``),
notes to stderr. Message numbers count the messages of a branch from its root, from 1.
"""

from __future__ import annotations

from aish.commands.context import Context
from aish.commands.registry import JSON, Arg, command, positive_int
from aish.errors import UsageError
from aish.humanize import ago

SESSION = Arg("ID", "the session", completes="session")
ON_BRANCH = Arg("--branch", "the branch (default: the one checked out)", metavar="NAME")


def current_branch(ctx: Context, sid: str) -> str:
    """The branch this user has checked out in ``sid`` (``main`` unless they chose one)."""
    return ctx.checkouts.get(ctx.sessions.location(sid))


def _report(ctx: Context, args, text: str, **data) -> None:
    """``text`` on stderr, or ``data`` as JSON on stdout with --json."""
    if getattr(args, "json", False):
        import json

        ctx.out.data(json.dumps(data, indent=2))
    else:
        ctx.out.note(text)


def _where(ctx: Context, sid: str, head) -> str:
    """Where a branch now ends (a message or a Head), as the shell says it: by the message's
    number on its path."""
    if head is None or not head.id:
        return "the root"
    from aish.branches import number_of

    return f"message {number_of(ctx.sessions, sid, head)}"


@command("branch-session", "aish", "Make a branch of a session at message N (default: the "
         "head of the branch checked out).",
         args=(SESSION, Arg("NAME", "the new branch"),
               Arg("--at", "the message it starts from (0: before the first)",
                   type=positive_int, metavar="N"),
               ON_BRANCH, JSON),
         example="aish --branch-session sess_abc123 try-rust --at 4")
def branch_session(ctx: Context, args) -> int:
    from aish import branches

    source = args.branch or current_branch(ctx, args.id)
    start = branches.create(ctx.sessions, args.id, args.name, args.at, source)
    at = f"message {args.at}" if args.at is not None else "its head"
    _report(ctx, args, f"Branch {args.name} of session {args.id} starts at {at} of {source}; "
            f"talk on it with --branch {args.name}, or aish --checkout {args.id} {args.name}",
            session=args.id, branch=args.name, source=source, head=start)
    return 0


@command("list-branches", "aish", "List a session's branches: head, messages, last activity.",
         args=(SESSION, JSON), example="aish --list-branches sess_abc123")
def list_branches(ctx: Context, args) -> int:
    import json

    from aish import branches

    rows = branches.listing(ctx.sessions.counted(ctx.sessions.summary(args.id).id))
    current = current_branch(ctx, args.id)
    if args.json:
        ctx.out.data(json.dumps([{**r.to_json(), "current": r.name == current} for r in rows],
                                indent=2))
        return 0
    for line in branch_lines(rows, current, ctx.now()):
        ctx.out.data(line)
    return 0


def branch_lines(rows, current: str, now: float) -> list[str]:
    """One line per branch, ``current`` marked with ``*``."""
    lines = []
    for row in rows:
        mark = "*" if row.name == current else " "
        who = ", ".join(row.speakers) or "-"
        when = ago(now - row.last_activity) if row.last_activity else "-"
        lines.append(f"{mark} {row.name:<20} {row.head or '(root)':<16} "
                     f"{row.messages:>5} messages  {when:<12} {who}")
    return lines


@command("checkout", "aish", "Choose the branch later messages to a session go to (for you "
         "only).",
         args=(SESSION, Arg("BRANCH", "the branch")),
         example="aish --checkout sess_abc123 try-rust")
def checkout(ctx: Context, args) -> int:
    from aish.branches import check_branch, head_of

    check_branch(args.branch)
    head_of(ctx.sessions.summary(args.id), args.branch)  # it must exist
    ctx.checkouts.set(ctx.sessions.location(args.id), args.branch)
    ctx.out.note(f"Session {args.id}: now on branch {args.branch}")
    return 0


@command("undo", "aish", "Move a branch back N exchanges (default 1); nothing is deleted.",
         args=(SESSION, Arg("N", "exchanges to undo", type=positive_int, nargs="?"),
               ON_BRANCH, JSON),
         example="aish --undo sess_abc123")
def undo(ctx: Context, args) -> int:
    from aish import branches

    branch = args.branch or current_branch(ctx, args.id)
    count = 1 if args.n is None else args.n
    target = branches.undo(ctx.sessions, args.id, branch, count)
    where = _where(ctx, args.id, target)
    _report(ctx, args, f"Branch {branch} of session {args.id} is back at {where} "
            f"(aish --redo {args.id} brings it forward again)",
            session=args.id, branch=branch, head=target.id if target else "")
    return 0


@command("redo", "aish", "Move a branch forward again after an undo.",
         args=(SESSION, ON_BRANCH, JSON), example="aish --redo sess_abc123")
def redo(ctx: Context, args) -> int:
    from aish import branches

    branch = args.branch or current_branch(ctx, args.id)
    head = branches.redo(ctx.sessions, args.id, branch)
    _report(ctx, args, f"Branch {branch} of session {args.id} is at "
            f"{_where(ctx, args.id, head)} again",
            session=args.id, branch=branch, head=head.id)
    return 0


def _pick_range(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    first, sep, last = text.partition("..")
    try:
        low, high = int(first), int(last if sep else first)
    except ValueError:
        raise UsageError(f"--pick expects N..M, got {text!r}") from None
    if low < 1 or high < low:
        raise UsageError(f"--pick expects 1 <= N <= M, got {text!r}")
    return low, high


@command("merge-branch", "aish", "Bring branch SRC into DST: fast-forward, a summary note, or "
         "copies of picked messages.",
         args=(SESSION, Arg("SRC", "the branch to bring in"),
               Arg("--into", "the branch that receives it (default: main)", metavar="DST"),
               Arg("--mode", "ff (move DST to SRC), summary or pick", metavar="MODE"),
               Arg("--pick", "with --mode pick: SRC's messages N..M", metavar="N..M"),
               Arg("--dry-run", "say what would change; store nothing", flag=True),
               Arg("--yes", "apply a summary without asking", flag=True),
               Arg("--provider", "openai or local (summary)", metavar="NAME"),
               Arg("--model", "model (summary)", metavar="MODEL")),
         example="aish --merge-branch sess_abc123 try-rust --into main --mode summary")
def merge_branch(ctx: Context, args) -> int:
    from aish import branches

    mode = args.mode or "ff"
    dst = args.into or "main"
    plan = branches.plan_merge(ctx.sessions, args.id, args.src, dst, mode,
                               _pick_range(args.pick))
    if mode == "ff" and plan.target is None:
        ctx.out.note(f"Branch {dst} already has everything on {args.src}")
        return 0
    if mode != "ff" and not plan.changes:
        what = "is already on" if mode == "pick" else "was already merged into"
        ctx.out.note(f"Nothing to merge: {args.src} {what} {dst}")
        return 0
    if mode == "ff":
        assert plan.target is not None
        would = f"Would move branch {dst} to message {plan.target.id} (the head of {args.src})"
        done = f"Branch {dst} fast-forwarded to {args.src}"
    elif mode == "pick":
        would = f"Would copy {plan.changes} message(s) of {args.src} onto {dst}"
        done = f"Copied {plan.changes} message(s) of {args.src} onto {dst}"
    else:  # the summary is made (by the model) and approved below
        would = (f"Would summarise {plan.changes} message(s) of {args.src} since it parted "
                 f"from {dst}, and add the summary to {dst}")
        done = ""
    if args.dry_run:
        ctx.out.note(would)
        return 0
    if done:
        branches.apply_merge(ctx.sessions, args.id, plan)
        ctx.out.note(done)
        return 0
    note = _summary_note(ctx, args, plan)
    ctx.out.data(note.content)
    if not args.yes and ctx.stdin_is_tty:
        answer = ctx.ask_line(f"Add this summary to branch {dst}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            ctx.out.note("Nothing was changed")
            return 1
    branches.apply_merge(ctx.sessions, args.id, plan, note)
    ctx.out.note(f"Added the summary of {args.src} to branch {dst}; its context includes it")
    return 0


def _summary_note(ctx: Context, args, plan):
    """The specialist's summary of ``plan.since``, as a note for the receiving branch."""
    from aish.commands.core import _provider
    from aish.conversation import build_chat
    from aish.errors import ProviderError
    from aish.messages import ASSISTANT, USER, Message

    summary = ctx.sessions.summary(args.id)
    specialist = ctx.specialist(summary.owner if summary.owner in ctx.specialists else "apollo")
    transcript = "\n".join(
        f"{'User' if m.role == USER else m.ai}: {m.content}" for m in plan.since)
    request = Message(USER, "Summarise this side conversation in a few sentences, keeping "
                      "decisions, facts and open questions:\n\n" + transcript,
                      specialist.name, ctx.now())
    provider = _provider(ctx, specialist, args)
    parts = []
    finished = None
    for chunk in provider.stream(build_chat(specialist, [request], False), specialist):
        parts.append(chunk.text)
        if chunk.finished:
            finished = chunk
            break
    if finished is None:
        raise ProviderError(provider.endpoint, "the reply stream ended before it finished")
    text = "".join(parts).strip() or "(empty summary)"
    return Message(ASSISTANT, f"Summary of branch {plan.src}: {text}", specialist.name,
                   ctx.now(), note="merge", source=plan.since[-1].id, model=finished.model)
