"""Asking a branch's questions again: every user turn of a branch's path, in order, of another
specialist or model, on a new branch from the root, so that the two conversations can be
compared turn by turn while the original stays as it was.

Each answer is a real exchange through the one exchange path (`aish.commands.exchange.send`)
on the new branch, so its context is the new branch's own path, never the original's. A failure
midway keeps what was asked so far; the error says which turn failed and how to go on from
there (``--into-branch NAME --from N``).

The comparison (``--compare``, ``--json``) shows text through `aish.redact`; what is sent to the
model is the stored text.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from aish.errors import Interrupted, ProviderError, StorageError, UsageError
from aish.messages import USER, Message

if TYPE_CHECKING:
    from aish.commands.context import Context
    from aish.redact import Redactor
    from aish.sessions import Session

MISSING = "\u2014"  # a token count or latency a message does not record
SHOWN_CHARS = 100  # of an answer's first line in the comparison


@dataclass(frozen=True)
class Turn:
    """A question on a branch's path and the first answer to it there (None: unanswered)."""

    number: int  # the question's message number on the path, from 1
    question: Message
    answer: Message | None


def turns_of(path: list[Message]) -> list[Turn]:
    turns: list[Turn] = []
    for number, message in enumerate(path, 1):
        if message.role == USER and not message.note:
            answer = None
            for later in path[number:]:
                if later.role == USER and not later.note:
                    break
                if not later.note:
                    answer = later
                    break
            turns.append(Turn(number, message, answer))
    return turns


@dataclass(frozen=True)
class Plan:
    """What one run asks: ``todo`` of ``turns`` into ``branch``; ``retry_first`` when the
    branch already ends with the first one's question (a run that failed on it)."""

    sid: str
    source: str
    branch: str
    turns: list[Turn]
    todo: list[Turn]
    retry_first: bool = False
    create: bool = True


def ask_again(ctx: Context, args) -> int:
    """`aish --replay-session ID --as NAME | --model M`: ask, then report on the new branch."""
    if not (args.as_ or args.model):
        raise UsageError("--into-branch and --compare ask a session again: add --as NAME or "
                         "--model M")
    if args.as_:
        ctx.specialist(args.as_)  # an unknown name fails before anything is stored
    plan = _plan(ctx, args)
    if plan.create:
        plan = _create(ctx, args, plan)
    branch = _ask(ctx, args, plan)
    new_path = ctx.sessions.path(plan.sid, ctx.sessions.summary(plan.sid).head(branch), 0)
    rows = list(zip(plan.turns, turns_of(new_path), strict=False))
    if args.compare or getattr(args, "json", False):
        _compare(ctx, args, plan, branch, rows)
    else:
        ctx.out.data(branch)
    ctx.out.note(f"Asked {len(plan.todo)} question(s) of branch {plan.source} again "
                 f"{_who(args)} on branch {branch} of session {plan.sid}; see it with "
                 f"aish --history {plan.sid} --branch {branch}")
    return 0


def _plan(ctx: Context, args) -> Plan:
    from aish.branches import check_branch, head_of
    from aish.commands.branch_cmds import current_branch

    summary = ctx.sessions.summary(args.id)
    sid = summary.id
    source = args.branch or current_branch(ctx, sid)
    check_branch(source)
    path = ctx.sessions.path(sid, head_of(summary, source), 0)
    to = getattr(args, "to", None)
    turns = [t for t in turns_of(path) if to is None or t.number <= to]
    if not turns:
        raise UsageError(f"branch {source} of session {sid} has no question to ask again"
                         + (f" up to message {to}" if to is not None else ""))
    into = args.into_branch
    if into is not None:
        check_branch(into)
        if into == source:
            raise UsageError(f"--into-branch must be a new branch, not {source} itself")
    start = getattr(args, "start", None)
    if start is not None:
        if into is None:
            raise UsageError("--from N goes on with asking again: name the branch with "
                             "--into-branch NAME")
        return _resume(ctx, summary, source, turns, into, start)
    if into is not None and summary.head(into) is not None:
        raise UsageError(f"session {sid} already has a branch {into}",
                         hint=f"pick another name, or go on with it: --into-branch {into} "
                         "--from N")
    name = into or _free_name(set(summary.tree.refs), _base_name(args))
    return Plan(sid, source, name, turns, turns)


def _create(ctx: Context, args, plan: Plan) -> Plan:
    """Make ``plan``'s branch at the root; a name of our choosing taken meanwhile (another
    ask-again at the same time) gives way to the next free one."""
    from aish import branches

    for _ in range(20):
        try:
            branches.create(ctx.sessions, plan.sid, plan.branch, 0, plan.source)
            return plan
        except UsageError:
            if args.into_branch is not None:
                raise
        taken = set(ctx.sessions.summary(plan.sid).tree.refs)
        plan = replace(plan, branch=_free_name(taken, _base_name(args)))
    raise StorageError(f"session {plan.sid} is too busy to make a branch in; try again")


def _resume(ctx: Context, summary, source: str, turns: list[Turn], into: str, start: int
            ) -> Plan:
    """Go on asking into ``into``, which holds the questions before message ``start``."""
    from aish.branches import head_of

    sid = summary.id
    todo = [t for t in turns if t.number >= start]
    if not todo or todo[0].number != start:
        raise UsageError(f"message {start} of branch {source} is not a question to ask again",
                         hint="--from takes the number the error gave")
    done = len(turns) - len(todo)
    path = ctx.sessions.path(sid, head_of(summary, into), 0)
    asked = [m.content for m in path if m.role == USER and not m.note]
    wanted = [t.question.content for t in turns[:done]]
    retry = (len(asked) == done + 1 and path[-1].role == USER
             and asked[-1] == todo[0].question.content)
    if asked[:done] != wanted or not (len(asked) == done or retry):
        raise UsageError(f"branch {into} of session {sid} does not hold the questions before "
                         f"message {start} of {source}", hint="ask again into a new branch")
    return Plan(sid, source, into, turns, todo, retry, create=False)


def _base_name(args) -> str:
    if args.as_:
        from aish.specialists import ai_key

        return f"replay-{ai_key(args.as_)}"
    model = re.sub(r"[^A-Za-z0-9._-]+", "-", args.model.rstrip("/").rsplit("/", 1)[-1])
    model = re.sub(r"\.{2,}", ".", model).strip("-._")[:48]
    return f"replay-{model or 'model'}"


def _free_name(taken: set[str], base: str) -> str:
    """``base``, else ``base-2``, ``base-3``, ... (as a lost race names its branch)."""
    if base not in taken:
        return base
    number = 2
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"


def _who(args) -> str:
    parts = [f"as {args.as_}"] if args.as_ else []
    if args.model:
        parts.append(f"with model {args.model}")
    return " ".join(parts)


def _ask(ctx: Context, args, plan: Plan) -> str:
    """Ask ``plan.todo`` on its branch; returns the branch the answers went on (a lost race
    moves them to a new one, and says so)."""
    from aish.commands import exchange

    session = _open(ctx, args, plan)
    session.branch = plan.branch
    providers: dict = {}

    def provider_for(specialist):
        def made():
            if specialist.name not in providers:
                providers[specialist.name] = exchange.make(
                    ctx, specialist, getattr(args, "provider", None), args.model)
            return providers[specialist.name]
        return made

    for index, turn in enumerate(plan.todo):
        specialist = _specialist_for(ctx, args, session, turn)
        text = None if index == 0 and plan.retry_first else turn.question.content
        try:
            exchange.send(ctx, session, specialist, text, provider_for(specialist),
                          present=exchange.silent, live=False, retry_hint="")
        except (ProviderError, Interrupted) as exc:
            session.save()
            kept = turn if isinstance(exc, ProviderError) else _after(plan, turn)
            exc.hint = _resume_hint(args, plan, session.branch, turn, kept)
            raise
        finally:
            session.save()
            for notice in session.notices:
                ctx.out.warn(notice)
            session.notices.clear()
    return session.branch


def _after(plan: Plan, turn: Turn) -> Turn | None:
    later = [t for t in plan.turns if t.number > turn.number]
    return later[0] if later else None


def _resume_hint(args, plan: Plan, branch: str, failed: Turn, go_on: Turn | None) -> str:
    index = plan.turns.index(failed) + 1
    what = (f"turn {index} of {len(plan.turns)} (message {failed.number} of {plan.source}) "
            f"failed; branch {branch} keeps what was asked before it")
    if go_on is None:
        return what
    options = []
    if args.as_:
        options += ["--as", args.as_]
    if args.model:
        options += ["--model", args.model]
    if getattr(args, "provider", None):
        options += ["--provider", args.provider]
    if getattr(args, "to", None) is not None:
        options += ["--to", str(args.to)]
    command = shlex.join(["aish", "--replay-session", plan.sid, "--branch", plan.source,
                          *options, "--into-branch", branch, "--from", str(go_on.number)])
    return f"{what}; go on with: {command}"


def _open(ctx: Context, args, plan: Plan) -> Session:
    """The session, opened by its owner (so its sharing is not changed) with every specialist
    that will answer added to its participants."""
    summary = ctx.sessions.summary(plan.sid)
    names = {_name_for(ctx, args, summary, t) for t in plan.todo}
    opener = summary.header.owner or sorted(names)[0]
    session = ctx.sessions.open(opener, plan.sid)
    participants = list(session.summary.participants)
    missing = sorted(names - set(participants))
    if missing:
        session.set_meta(participants=participants + missing)
    return session


def _name_for(ctx: Context, args, summary, turn: Turn) -> str:
    """Who answers ``turn``: --as, else whom it was asked of, else the session's owner."""
    from aish.specialists import ai_key

    if args.as_:
        return ai_key(args.as_)
    for name in (turn.question.ai, summary.header.owner):
        if name and name in ctx.specialists:
            return name
    return "apollo"


def _specialist_for(ctx: Context, args, session: Session, turn: Turn):
    return ctx.specialist(_name_for(ctx, args, session.summary, turn))


# -- the comparison -------------------------------------------------------------------------
def _tokens(message: Message | None) -> int | None:
    usage = message.usage if message is not None else None
    return None if usage is None else usage.prompt_tokens + usage.completion_tokens


def _latency(message: Message | None) -> float | None:
    timing = getattr(message, "timing", None)  # recorded by newer versions only
    end = getattr(timing, "end", None)
    return float(end) if isinstance(end, int | float) else None


def _diff(old, new):
    return None if old is None or new is None else new - old


def _first_line(message: Message | None, text: Redactor) -> str | None:
    from aish.history import first_line

    if message is None:
        return None
    line = text(first_line(message.content))
    return line if len(line) <= SHOWN_CHARS else line[:SHOWN_CHARS - 3] + "..."


def _side(message: Message | None, text: Redactor) -> dict | None:
    if message is None:
        return None
    return {"ai": message.ai, "model": message.model, "first_line": _first_line(message, text),
            "tokens": _tokens(message), "latency": _latency(message)}


def _content(turn: Turn) -> str | None:
    return turn.answer.content if turn.answer is not None else None


def report(plan: Plan, branch: str, rows: list[tuple[Turn, Turn]], text: Redactor) -> dict:
    """The comparison as data: per turn both answers, their token and latency differences,
    and the first turn whose answers differ (None: none do)."""
    turns = []
    divergence = None
    for index, (old, new) in enumerate(rows, 1):
        same = _content(old) == _content(new)
        if not same and divergence is None:
            divergence = index
        latency = _diff(_latency(old.answer), _latency(new.answer))
        turns.append({
            "turn": index, "message": old.number,
            "question": text(_question(old)),
            "original": _side(old.answer, text), "new": _side(new.answer, text),
            "tokens_diff": _diff(_tokens(old.answer), _tokens(new.answer)),
            "latency_diff": None if latency is None else round(latency, 3), "same": same})
    return {"session": plan.sid, "source": plan.source, "branch": branch, "turns": turns,
            "first_divergence": divergence}


def _question(turn: Turn) -> str:
    from aish.history import first_line

    return first_line(turn.question.content)


def _shown(value, unit: str = "", signed: bool = False) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float):
        return (f"{value:+.2f}" if signed else f"{value:.2f}") + unit
    return (f"{value:+d}" if signed else str(value)) + unit


def format_report(data: dict) -> list[str]:
    lines = [f"Session {data['session']}: branch {data['source']} asked again on branch "
             f"{data['branch']}"]
    for turn in data["turns"]:
        lines.append(f"turn {turn['turn']} (message {turn['message']}): {turn['question']}")
        for label in ("original", "new"):
            side = turn[label]
            shown = "(no answer)" if side is None else f"{side['ai']}: {side['first_line']}"
            lines.append(f"  {label:<9} {shown}")
        old, new = turn["original"] or {}, turn["new"] or {}
        lines.append(f"  tokens    {_shown(old.get('tokens'))} -> {_shown(new.get('tokens'))}"
                     f" ({_shown(turn['tokens_diff'], signed=True)})")
        lines.append(f"  latency   {_shown(old.get('latency'), 's')} -> "
                     f"{_shown(new.get('latency'), 's')} "
                     f"({_shown(turn['latency_diff'], 's', signed=True)})")
    divergence = data["first_divergence"]
    if divergence is None:
        lines.append("No divergence: every answer is the same")
    else:
        turn = data["turns"][divergence - 1]
        lines.append(f"First divergence: turn {divergence} (message {turn['message']} of "
                     f"{data['source']})")
    return lines


def _compare(ctx: Context, args, plan: Plan, branch: str, rows) -> None:
    from aish.commands.history_cmds import report_redactions
    from aish.redact import Redactor

    redactor = Redactor(not args.no_redact)
    data = report(plan, branch, rows, redactor)
    if getattr(args, "json", False):
        ctx.out.data(json.dumps(data, indent=2))
    else:
        ctx.out.data("\n".join(format_report(data)))
    report_redactions(ctx, redactor)
