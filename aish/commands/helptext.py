"""Help generated from the registry, so it can never drift from what the commands accept."""

from __future__ import annotations

from aish.commands.registry import REGISTRY, Command
from aish.errors import UsageError


def _describe(command: Command, prog: str) -> list[str]:
    lines = [f"usage: {prog}", "", command.help]
    options = [a for a in command.args if not a.positional]
    if options:
        lines.append("")
        for arg in options:
            lines.append(f"  {arg.spelled + arg.value_text:<24} {arg.help}")
    if command.example:
        lines += ["", f"example: {command.example}"]
    return lines


def entry(usage: str, text: str, width: int) -> list[str]:
    """One command in the overview; a long usage puts its description on the next line."""
    if len(usage) <= width:
        return [f"  {usage:<{width}} {text}"]
    return [f"  {usage}", f"  {'':<{width}} {text}"]


def render_help(ctx, topic: str | None = None, in_session: bool = False) -> str:
    """``in_session``: asked inside session mode, where `help undo` means its `undo`, not
    `aish --undo`."""
    from aish.commands.manifest import load_all

    load_all()  # help lists and describes commands of every module
    if topic:
        word = topic.lstrip("-/")
        if word in ctx.specialists or word.removesuffix("-ai") in ctx.specialists:
            ask = REGISTRY.require("specialist", "ask")
            return "\n".join(_describe(ask, f"{word.removesuffix('-ai')} {ask.usage[4:]}"))
        for scope in ("session", "aish") if in_session else ("aish", "session"):
            if found := REGISTRY.get(scope, word):
                prog = f"aish {found.usage}" if scope == "aish" else found.usage
                return "\n".join(_describe(found, prog))
        raise UsageError(f"no help for {topic!r}", hint="see 'aish --help'")
    lines = ["aish — talk to AI specialists in sessions that remember.", "",
             "usage: aish                      start the interactive shell",
             "       SPECIALIST [options] [MESSAGE]   (or: aish SPECIALIST ...)",
             "       aish --COMMAND [options]", "", "Specialists:"]
    for name, spec in sorted(ctx.specialists.items()):
        lines.append(f"  {name:<14} {spec.description}")
    ask = REGISTRY.require("specialist", "ask")
    lines += ["", "Specialist options:"]
    for arg in ask.args:
        if not arg.positional:
            lines.append(f"  {arg.spelled + arg.value_text:<24} {arg.help}")
    lines += ["", "Commands:"]
    for command in REGISTRY.in_scope("aish"):
        lines += entry(command.usage, command.help, 40)
    session_cmds = REGISTRY.in_scope("session")
    if session_cmds:
        lines += ["", "Inside session mode:"]
        for command in session_cmds:
            lines += entry(command.usage, command.help, 24)
    lines += ["", "Exit codes: 0 ok, 1 failure, 2 usage, 3 not found, 4 provider, 5 storage, "
              "6 limit, 7 refused, 8 config, 130 interrupted."]
    return "\n".join(lines)
