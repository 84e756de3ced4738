"""Turn a command line (from argv or a shell line) into a registered command and run it."""

from __future__ import annotations

from aish.commands import manifest
from aish.commands.context import Context
from aish.commands.registry import REGISTRY, Command
from aish.errors import UsageError

_SHELL_OPERATORS = {"|", ">", ">>", "<", "&&", "||", ";"}


def load_commands() -> None:
    """Import every module that registers commands (help, completion and tests need them all)."""
    manifest.load_all()


def _aish_command(word: str) -> Command | None:
    """The `aish` command spelled ``word``, importing only the module that registers it."""
    found = REGISTRY.get("aish", word)
    if found is None and (module := manifest.AISH_COMMANDS.get(word)):
        manifest.load_module(module)
        found = REGISTRY.get("aish", word)
    return found


def find(ctx: Context, argv: list[str]) -> tuple[Command, list[str], str | None]:
    """The command ``argv`` selects, its remaining tokens, and the specialist (if any)."""
    if argv and argv[0] == "aish":
        argv = argv[1:]
    if argv and argv[0] == "--":  # `aish -- apollo hi`: the usual end of aish's own options
        argv = argv[1:]
        if argv and argv[0].startswith("-"):
            raise UsageError(f"after '--' comes a specialist's name, not {argv[0]!r}",
                             hint="drop the '--'")
    if not argv:
        raise UsageError("no command given", hint="see 'aish --help'")
    head = argv[0]
    if not head.startswith("-"):
        from aish.specialists import ai_key

        manifest.load_module(manifest.SPECIALIST_MODULE)
        if ai_key(head) in ctx.specialists:
            return REGISTRY.require("specialist", "ask"), argv[1:], ai_key(head)
        if head in ("help",):
            return REGISTRY.require("aish", "help"), argv[1:], None
        hint = "see 'aish --help' for commands and specialists"
        if ctx.interactive and _SHELL_OPERATORS.intersection(argv):
            # The guide's pipelines (`echo "Hello" | apollo --session`) pasted at `aish>`.
            hint = ("pipes and redirections are your system shell's: run the line there, "
                    "outside aish (Ctrl-D leaves aish)")
        raise UsageError(f"unknown command or specialist {head!r}", hint=hint)
    if found := _first_command(argv):
        return found
    if not manifest.loaded_all():  # a command the table does not know yet
        load_commands()
        if found := _first_command(argv):
            return found
    raise UsageError(f"unknown option {argv[0]!r}", hint="see 'aish --help'")


def _first_command(argv: list[str]) -> tuple[Command, list[str], None] | None:
    for i, token in enumerate(argv):
        if token == "--":
            break
        word = token.split("=", 1)[0]
        word = {"-h": "--help", "-c": "--continue"}.get(word, word)
        if word.startswith("--") and (found := _aish_command(word[2:])):
            rest = argv[:i] + argv[i + 1:]
            if "=" in token:
                rest.insert(i, token.split("=", 1)[1])
            return found, rest, None
    return None


def _asks_for_help(tokens: list[str]) -> bool:
    options = tokens[: tokens.index("--")] if "--" in tokens else tokens
    return "-h" in options or "--help" in options


def run(ctx: Context, argv: list[str]) -> int:
    command, rest, specialist = find(ctx, argv)
    if command.name != "help" and _asks_for_help(rest):  # `apollo --help`, `aish --X --help`
        from aish.commands.helptext import render_help

        ctx.out.data(render_help(ctx, specialist or command.name))
        return 0
    if specialist is not None:
        args = command.parse(rest, prog=specialist)
        args.specialist = specialist
    else:
        args = command.parse(rest)
    _follow_renames(ctx, command, args)
    return command.handler(ctx, args) or 0


# Arguments that name an existing session: a former id given to one of them means the session
# now called otherwise (an id that names a new session, like --output, is taken as given).
_NAMES_A_SESSION = ("ID", "IDS", "--session", "--session-id")


def _follow_renames(ctx: Context, command: Command, args) -> None:
    for arg in command.args:
        if arg.completes != "session" or arg.name not in _NAMES_A_SESSION:
            continue
        attr = arg.name.lstrip("-").lower().replace("-", "_")
        value = getattr(args, attr, None)
        if not isinstance(value, str) or not value or value.startswith("-"):
            continue
        parts = value.split(",") if arg.name == "IDS" else [value]
        current = []
        for part in parts:
            new = ctx.sessions.resolve(part)
            if new is not None:
                ctx.out.note(f"session {part} was renamed {new}")
            current.append(new or part)
        setattr(args, attr, ",".join(current))
