"""Session management commands (save, restore, export, templates, merge, stats, info, cleanup,
remove, prune, validate, repair).

Handlers only parse, call `aish.management` and format: results and reports go to stdout (JSON
with ``--json``), progress and warnings to stderr. The work modules are imported inside the
handlers so that other commands never pay for them.
"""

from __future__ import annotations

import itertools
import json
import os
import sys

from aish.commands.context import Context
from aish.commands.registry import JSON, Arg, command, positive_int
from aish.errors import UsageError
from aish.humanize import ago, iso

# Argument types raise UsageError themselves: a bad value is a usage error (exit 2) whatever
# argparse does with the exceptions it knows.

def _duration(text: str) -> float:
    from aish.management.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--older-than: {exc}") from None


def _json(ctx: Context, value) -> None:
    # ASCII JSON: exact for any content, and inert when it reaches a terminal.
    ctx.out.data(json.dumps(value, indent=2))


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _warn_skipped(ctx: Context, sid: str, skipped: list[str]) -> None:
    if skipped:
        more = f" and {len(skipped) - 1} more" if len(skipped) > 1 else ""
        ctx.out.warn(f"session {sid}: skipped damaged content: {skipped[0]}{more}")


SESSION = Arg("ID", "the session", completes="session")
SKIP = Arg("--skip-corrupted", "emit every valid message of a damaged session", flag=True)
DRY_RUN = Arg("--dry-run", "only report what would be removed", flag=True)


# -- save, export, restore ---------------------------------------------------------------------

@command("save-session", "aish", "Write a whole session as one JSON document on stdout.",
         args=(SESSION, SKIP), example="aish --save-session sess_abc123 > my_session.json")
def save_session(ctx: Context, args) -> int:
    from aish.management import transfer

    doc = transfer.save_session(ctx.sessions, args.id, skip_corrupted=args.skip_corrupted)
    _warn_skipped(ctx, args.id, doc.get("skipped", []))
    _json(ctx, doc)
    return 0


def _format(text: str) -> str:
    from aish.exports import FORMATS

    if text not in FORMATS:
        raise UsageError(f"--format: expected one of {', '.join(FORMATS)}, got {text!r}")
    return text


@command("export-session", "aish",
         "Export one session: the JSON document (default), or its history as md, mermaid, dot, "
         "json, html or cast (secrets redacted).",
         args=(SESSION, SKIP,
               Arg("--format", "md (transcript), mermaid or dot (the tree), json (nodes, "
                   "edges, refs), html (one offline page: tree, transcript, search), "
                   "cast (an asciicast recording of the replay)",
                   type=_format, metavar="FORMAT"),
               Arg("--no-redact", "with --format: keep secrets (API keys, tokens, ...)",
                   flag=True)),
         example="aish --export-session sess_abc123 --format md > session.md")
def export_session(ctx: Context, args) -> int:
    from aish.management import transfer

    if args.format is not None:
        return _export_history(ctx, args)
    doc = transfer.save_session(ctx.sessions, args.id, skip_corrupted=args.skip_corrupted,
                                action="export")
    _warn_skipped(ctx, args.id, doc.get("skipped", []))
    _json(ctx, doc)
    return 0


def _export_history(ctx: Context, args) -> int:
    from aish.commands.history_cmds import load_history, report_redactions
    from aish.exports import render
    from aish.management.integrity import load_intact
    from aish.redact import Redactor

    found = load_intact(ctx.sessions, args.id, "export", skip_corrupted=args.skip_corrupted,
                        hint=f"add --skip-corrupted to export every valid message, or repair "
                        f"it first with aish --repair-session {args.id}")
    ctx.sessions.record_read("export", args.id, found.owner, skipped=len(found.damage))
    _warn_skipped(ctx, args.id, [str(p) for p in found.damage])
    redactor = Redactor(not args.no_redact)
    ctx.out.data(render(load_history(ctx, args.id, None), args.format, redactor, ctx.now(),
                        ctx.environ))
    report_redactions(ctx, redactor)
    return 0


@command("export-sessions", "aish", "Export every stored session as one JSON document.",
         args=(SKIP,), example="aish --export-sessions > all_sessions.json")
def export_sessions(ctx: Context, args) -> int:
    from aish.management import transfer

    docs = transfer.export_sessions(ctx.sessions, skip_corrupted=args.skip_corrupted)
    first = next(docs, None)  # every check runs before anything is printed
    header = json.dumps(transfer.export_header(ctx.sessions.now()))
    ctx.out.data(header[:-1] + ', "sessions": [', end="")
    count = 0
    for doc in itertools.chain([first] if first else [], docs):
        ctx.out.data(("," if count else "") + "\n" + json.dumps(doc), end="")
        _warn_skipped(ctx, doc["session"]["id"], doc.get("skipped", []))
        count += 1
    ctx.out.data("\n]}")
    ctx.out.note(f"Exported {_plural(count, 'session')}")
    return 0


@command("restore-session", "aish",
         "Restore sessions saved or exported as JSON, or a backup log (stdin when no PATH).",
         args=(Arg("PATH", "file to read (default: stdin); a backup in sessions/backup/ too",
                   nargs="?", completes="path"),
               Arg("--as", "restore under this id (one session only)", metavar="ID"),
               Arg("--force", "replace an existing session of that id (backed up first)",
                   flag=True),
               Arg("--skip-corrupted", "restore every valid message of damaged input", flag=True),
               JSON),
         example="aish --restore-session < my_session.json")
def restore_session(ctx: Context, args) -> int:
    from aish.management import intake, restore

    config = ctx.config
    stdin = ctx.stdin if ctx.stdin is not None else sys.stdin
    data, label, note = intake.read_source(
        args.path, stdin, max(config.max_stdin_bytes, config.max_import_bytes), ctx.sessions)
    if note:
        ctx.out.note(note)
    results = restore.restore(ctx.sessions, data, target=getattr(args, "as"), force=args.force,
                               skip_corrupted=args.skip_corrupted, source=label)
    for r in results:
        _warn_skipped(ctx, r.id, r.skipped)
        if r.appended:
            ctx.out.note(f"Added {_plural(r.messages, 'unsaved message')} back to session {r.id}")
        elif r.replaced:
            ctx.out.note(f"Replaced session {r.id} with {_plural(r.messages, 'message')} "
                         f"(its previous content is kept in {r.backup})")
        elif r.renamed:
            ctx.out.note(f"Session {r.source_id} already exists; restored as {r.id} "
                         f"({_plural(r.messages, 'message')}; --force replaces {r.source_id})")
        elif r.source_id not in (None, r.id):
            ctx.out.note(f"Restored session {r.source_id} as {r.id} "
                         f"({_plural(r.messages, 'message')})")
        else:
            ctx.out.note(f"Restored session {r.id} ({_plural(r.messages, 'message')})")
    if args.json:
        _json(ctx, [r.to_json() for r in results])
    else:
        ctx.out.data("\n".join(r.id for r in results))
    return 0


# -- templates ---------------------------------------------------------------------------------

@command("save-template", "aish",
         "Keep a session's persona, settings and messages as a named template.",
         args=(Arg("NAME", "the template's name", completes="template"), SESSION, JSON),
         example='aish --save-template "code-review" sess_abc123')
def save_template(ctx: Context, args) -> int:
    from aish.management.integrity import load_intact
    from aish.templates import save_template as save

    found = load_intact(ctx.sessions, args.id, "save a template of")
    owner = found.owner
    persona = found.header.persona
    if persona is None:
        persona = ctx.specialists[owner].persona if owner in ctx.specialists else None
    location = save(ctx.sessions, args.name, args.id, persona)
    if args.json:
        _json(ctx, {"name": args.name, "source": args.id, "messages": len(found.messages),
                    "location": location})
    else:
        ctx.out.data(f"Template {args.name} saved from {args.id} "
                     f"({_plural(len(found.messages), 'message')}) to {location}")
    return 0


@command("list-templates", "aish", "List saved session templates.", args=(JSON,),
         example="aish --list-templates")
def list_templates(ctx: Context, args) -> int:
    from aish.templates import KIND

    names = ctx.sessions.list_docs(KIND)
    if args.json:
        _json(ctx, names)
    elif names:
        ctx.out.data("\n".join(names))
    else:
        ctx.out.note("No templates (save one with aish --save-template NAME ID).")
    return 0


# -- merge -------------------------------------------------------------------------------------

@command("merge-sessions", "aish",
         "Merge sessions into a new shared one, messages interleaved by time.",
         args=(Arg("IDS", "two or more sessions, separated by commas", metavar="A,B",
                   completes="session"),
               Arg("--output", "the id of the merged session (required)", metavar="ID",
                   completes="session"),
               Arg("--replace", "the merged session replaces the originals (backed up first)",
                   flag=True),
               JSON),
         example="aish --merge-sessions sess_123,sess_456 --output sess_combined")
def merge_sessions(ctx: Context, args) -> int:
    from aish.management import merge

    if not args.output:
        raise UsageError("--merge-sessions needs --output ID",
                         hint="aish --merge-sessions sess_123,sess_456 --output sess_combined")
    ids = merge.parse_ids(args.ids)
    result = merge.merge(ctx.sessions, ids, args.output, replace_sources=args.replace)
    if args.json:
        _json(ctx, result.to_json())
        return 0
    verb = "Rewrote" if result.rewritten else "Created"
    ctx.out.data(f"Merged {', '.join(ids)} into {result.id}: {verb.lower()} it with "
                 f"{_plural(result.messages, 'message')} from "
                 f"{', '.join(p + '-ai' for p in result.participants)} (shared)")
    for sid in result.removed:
        ctx.out.data(f"Removed {sid} (backup: {result.backups[sid]})")
    if result.rewritten:
        ctx.out.note(f"The previous {result.id} is kept in {result.backups[result.id]}")
    return 0


# -- reports -----------------------------------------------------------------------------------

def _by(text: str) -> str:
    from aish.costs import GROUPS

    if text not in GROUPS:
        raise UsageError(f"--by: expected one of {', '.join(GROUPS)}, got {text!r}")
    return text


@command("session-stats", "aish",
         "Statistics over stored sessions: active, messages, context, most active AI, tokens "
         "and cost.",
         args=(Arg("--by", "token use and cost per ai, model or day (UTC)", type=_by,
                   metavar="GROUP"), JSON),
         example="aish --session-stats --by model")
def session_stats(ctx: Context, args) -> int:
    from aish.management.stats import format_stats, session_stats

    stats = session_stats(ctx.sessions, args.by, ctx.environ)
    if args.json:
        _json(ctx, stats)
    else:
        ctx.out.data(format_stats(stats))
    return 0


@command("session-info", "aish", "Details of one session.", args=(SESSION, JSON),
         example="aish --session-info sess_abc123")
def session_info(ctx: Context, args) -> int:
    from aish.reports import format_info
    from aish.reports import session_info as info_of

    # The checked-out branch, read here rather than through the branch commands' module,
    # which a management command should not have to import.
    branch = ctx.checkouts.get(ctx.sessions.location(args.id))
    info = info_of(ctx.sessions, args.id, ctx.environ, branch)
    if args.json:
        _json(ctx, {**info, "created": iso(info["created"]), "updated": iso(info["updated"])})
    else:
        ctx.out.data(format_info(info, ctx.sessions.now()))
    return 0


# -- hygiene -----------------------------------------------------------------------------------

def _report_removals(ctx: Context, removals, dry_run: bool, as_json: bool, nothing: str) -> None:
    if as_json:
        _json(ctx, {"dry_run": dry_run, "removed": [r.to_json() for r in removals]})
        return
    if not removals:
        ctx.out.note(nothing)
        return
    now = ctx.sessions.now()
    verb = "Would remove" if dry_run else "Removed"
    ctx.out.data("\n".join(
        f"{verb} {r.id} ({r.ai}, {r.state}, {_plural(r.messages, 'message')}, "
        f"last activity {ago(now - r.updated)})" for r in removals))
    if dry_run:
        ctx.out.note(f"{_plural(len(removals), 'session')} would be removed (dry run: "
                     "nothing was changed)")
    else:
        folder = os.path.dirname(removals[0].backup or "")
        where = f"; backups in {folder}" if folder else ""
        ctx.out.note(f"Removed {_plural(len(removals), 'session')}{where}")


@command("cleanup-sessions", "aish",
         "Remove ended and expired sessions (a backup of each is kept first).",
         args=(Arg("--older-than", "only those idle longer than AGE (30m, 12h, 7d, 2w)",
                   type=_duration, metavar="AGE"),
               DRY_RUN, JSON),
         example="aish --cleanup-sessions --older-than 7d")
def cleanup_sessions(ctx: Context, args) -> int:
    from aish.management.hygiene import cleanup

    removals = cleanup(ctx.sessions, older_than=args.older_than, dry_run=args.dry_run)
    _report_removals(ctx, removals, args.dry_run, args.json, "Nothing to clean up.")
    return 0


@command("remove-sessions", "aish",
         "Remove every session a specialist owns (a backup of each is kept first).",
         args=(Arg("--ai", "the specialist, apollo or apollo-ai (required)", metavar="NAME",
                   completes="specialist"),
               DRY_RUN, JSON),
         example="aish --remove-sessions --ai apollo-ai")
def remove_sessions(ctx: Context, args) -> int:
    from aish.management.hygiene import remove_for_ai
    from aish.specialists import ai_key

    if not args.ai:
        raise UsageError("--remove-sessions needs --ai NAME",
                         hint="aish --remove-sessions --ai apollo-ai")
    removals = remove_for_ai(ctx.sessions, args.ai, dry_run=args.dry_run)
    _report_removals(ctx, removals, args.dry_run, args.json,
                     f"No sessions owned by {ai_key(args.ai)}-ai.")
    return 0


@command("prune-session", "aish",
         "Keep only a session's last N message pairs (a backup is kept first).",
         args=(SESSION,
               Arg("--keep-recent", "how many recent pairs to keep (required)", type=positive_int,
                   metavar="N"),
               JSON),
         example="aish --prune-session sess_abc123 --keep-recent 5")
def prune_session(ctx: Context, args) -> int:
    from aish.management.hygiene import prune

    if args.keep_recent is None:
        raise UsageError("--prune-session needs --keep-recent N",
                         hint="aish --prune-session sess_abc123 --keep-recent 5")
    result = prune(ctx.sessions, args.id, args.keep_recent)
    if args.json:
        _json(ctx, result.to_json())
    elif result.backup is None:
        ctx.out.data(f"Session {result.id} has {_plural(result.total_pairs, 'pair')}; "
                     "nothing to prune")
    else:
        ctx.out.data(f"Pruned {result.id}: kept {result.kept_pairs} of "
                     f"{_plural(result.total_pairs, 'pair')} ({result.kept_messages} of "
                     f"{_plural(result.total_messages, 'message')})")
        ctx.out.note(f"The previous content is kept in {result.backup}")
    return 0


# -- integrity ---------------------------------------------------------------------------------

def _problem_json(problem) -> dict:
    return {"line": problem.line, "kind": problem.kind, "detail": problem.detail}


@command("validate-session", "aish",
         "Check a stored session and report every problem (exit 1 when there is one).",
         args=(SESSION, JSON), example="aish --validate-session sess_abc123")
def validate_session(ctx: Context, args) -> int:
    from aish.management.integrity import inspect

    found = inspect(ctx.sessions, args.id)
    if args.json:
        _json(ctx, {"id": args.id, "ok": not found.problems, "messages": len(found.messages),
                    "problems": [_problem_json(p) for p in found.problems]})
    elif not found.problems:
        ctx.out.data(f"Session {args.id}: OK ({_plural(len(found.messages), 'message')})")
    else:
        lines = [f"Session {args.id}: {_plural(len(found.problems), 'problem')}"]
        lines += [f"  {p}" for p in found.problems]
        ctx.out.data("\n".join(lines))
        if found.unusable is not None:  # repair will not touch such a log either: say what will
            ctx.out.note(found.unusable.hint or "replace it with the session's real log file")
        else:
            ctx.out.note(f"repair it with: aish --repair-session {args.id}")
    return 1 if found.problems else 0


@command("repair-session", "aish",
         "Rewrite a damaged session from its complete messages (the original is backed up).",
         args=(SESSION, JSON), example="aish --repair-session sess_abc123")
def repair_session(ctx: Context, args) -> int:
    from aish.management.integrity import repair

    result = repair(ctx.sessions, args.id)
    if args.json:
        _json(ctx, {"id": result.sid,
                    "repaired": result.backup is not None,
                    "problems": [_problem_json(p) for p in result.problems],
                    "kept": result.kept, "set_aside": result.set_aside,
                    "reordered": result.reordered, "backup": result.backup,
                    "owner": result.owner, "modes_fixed": result.modes_fixed})
        return 0
    if result.backup is None:
        ctx.out.data(f"Session {result.sid}: nothing to repair "
                     f"({_plural(result.kept, 'message')})")
    else:
        extra = "; messages put back in time order" if result.reordered else ""
        owner = (f"owner {result.owner}-ai" if result.owner else
                 "owner unknown: the first specialist to continue it becomes its owner")
        ctx.out.data(f"Repaired {result.sid}: kept {_plural(result.kept, 'message')}, set "
                     f"aside {_plural(result.set_aside, 'damaged line')}{extra}; {owner}")
        ctx.out.note(f"The original is kept in {result.backup}")
    if result.modes_fixed:
        ctx.out.note(f"Made private (only you can read them): {', '.join(result.modes_fixed)}")
    return 0


def _since(text: str):
    from aish.management.durations import parse_when

    # Resolved against the clock when the command runs: argparse has no context to ask.
    try:
        parse_when(text, 0.0)
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None
    return text


SEARCH_ARGS = (
    Arg("--ai", "only sessions this specialist takes part in", metavar="NAME",
        completes="specialist"),
    Arg("--branch", "only messages on the path of this branch", metavar="B", completes="branch"),
    Arg("--since", "only messages since then: a duration back (7d, 12h) or a date (2025-01-31)",
        type=_since, metavar="WHEN"),
    Arg("--limit", "at most N hits (default 50)", type=positive_int, metavar="N"),
    Arg("--no-redact", "show secrets (API keys, tokens, ...) in excerpts as they are",
        flag=True),
    JSON)


@command("search-sessions", "aish",
         "Find messages across all stored sessions: every word (or \"quoted phrase\") of TEXT.",
         args=(Arg("TEXT", "the words to look for (case-insensitive; word* for a prefix)"),
               *SEARCH_ARGS),
         example='aish --search-sessions "memory leak" --since 7d')
def search_sessions(ctx: Context, args) -> int:
    return run_search(ctx, args, args.text)


def run_search(ctx: Context, args, text: str, session: str | None = None) -> int:
    """Search and show the hits (both faces): excerpts highlighted on a terminal, matches in
    [brackets] otherwise, or JSON."""
    from aish.management.durations import parse_when
    from aish.redact import Redactor
    from aish.search_index import Filters, search
    from aish.specialists import ai_key

    since = parse_when(args.since, ctx.now()) if args.since else None
    filters = Filters(ai=ai_key(args.ai) if args.ai else None, branch=args.branch, since=since,
                      session=session, limit=args.limit or 50)
    hits = _redacted(ctx, search(ctx.sessions, text, filters, warn=ctx.out.warn),
                     Redactor(not args.no_redact))
    if args.json:
        _json(ctx, [h.to_json() for h in hits])
    elif not hits:
        ctx.out.note(f"No message contains {text!r}.")
    else:
        _show_hits(ctx, hits)
    return 0 if hits else 1


def _redacted(ctx: Context, hits, redactor) -> list:
    """Hits with secrets in their excerpts redacted, as every other view of stored text has
    them (counts on stderr); an excerpt that lost one loses its highlighting too, since the
    match may have been inside the secret."""
    from dataclasses import replace

    out = []
    for hit in hits:
        plain = redactor(hit.snippet)
        out.append(hit if plain == hit.snippet else replace(hit, marked=plain))
    note = redactor.report()
    if note:
        ctx.out.note(note)
    return out


def _hit_head(h) -> str:
    who = "title" if h.number == 0 else (
        f"{h.ai}-ai" if h.role == "assistant" else "user")
    number = f"#{h.number}" if h.number else ""
    return f"{h.session}{number:<5} {h.branch or '-':<12} {who:<14} {iso(h.time)}  "


def _show_hits(ctx: Context, hits) -> None:
    if not ctx.out.color:
        ctx.out.data("\n".join(_hit_head(h) + h.bracketed() for h in hits))
        return
    from rich.text import Text

    from aish.sanitize import sanitize
    from aish.search_index import CLOSE, OPEN

    console = ctx.out.console()
    for h in hits:
        line = Text(sanitize(_hit_head(h)), style="dim")
        for i, piece in enumerate(h.marked.replace(CLOSE, OPEN).split(OPEN)):
            line.append(sanitize(piece), style="bold reverse" if i % 2 else "")
        console.print(line, soft_wrap=True)


@command("reindex", "aish", "Build the search index again from the stored sessions.",
         args=(JSON,), example="aish --reindex")
def reindex(ctx: Context, args) -> int:
    from aish.search_index import reindex as rebuild
    from aish.search_index import usable

    if not usable(ctx.config):
        raise UsageError("the search index is not in use",
                         hint="encrypted sessions are indexed only with search.index_plaintext: "
                         "true; search.index: false turns it off")
    sessions, messages = rebuild(ctx.sessions)
    if args.json:
        _json(ctx, {"sessions": sessions, "messages": messages})
    else:
        ctx.out.note(f"Indexed {_plural(messages, 'message')} in {_plural(sessions, 'session')}")
    return 0


@command("fork-session", "aish", "Branch a session: a new one with its first N messages.",
         args=(SESSION,
               Arg("--at", "keep messages 1..N (required)", type=positive_int, metavar="N"),
               Arg("--output", "the new session's id (default: generated)", metavar="ID"),
               JSON),
         example="aish --fork-session sess_abc123 --at 4 --output try-another-way")
def fork_session(ctx: Context, args) -> int:
    from aish.management.discovery import fork

    if args.at is None:
        raise UsageError("--fork-session needs --at N (how many messages to keep)")
    from aish.commands.branch_cmds import current_branch

    session = fork(ctx.sessions, args.id, args.at, args.output, current_branch(ctx, args.id))
    if args.json:
        _json(ctx, {"id": session.id, "source": args.id, "messages": args.at})
    else:
        ctx.out.data(session.id)
        ctx.out.note(f"Forked {args.id} at message {args.at} into {session.id}")
    return 0
