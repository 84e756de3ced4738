"""One registry of commands for the shell, the pipe face, help and completion.

A command is declared once with its words, arguments and options; the faces parse a command
line against the registry, help is generated from it, and the completer reads it.

Scopes:
- ``aish``: management commands selected by a flag (`aish --list-sessions --all`);
- ``specialist``: the command every specialist answers (`apollo --session ...`);
- ``session``: commands inside session mode (`save`, `context`, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

from aish.errors import UsageError
from aish.records import FrozenRecord, Record

TYPE_CHECKING = False  # importing typing costs every command 2-3 ms: annotations only
if TYPE_CHECKING:
    import argparse
    from typing import Any


class Arg(FrozenRecord):
    """A positional value or an option."""

    _fields = ("name", "help", "type", "flag", "nargs", "const", "metavar", "completes", "dest",
               "short", "many")
    name: str  # "ID" for a positional, "--keep-last" for an option
    help: str
    type: Callable | None  # int, str, ... ; None with flag=True is a switch
    flag: bool  # a switch that takes no value
    nargs: str | int | None  # "?", "*", 2, ...
    const: object  # the value of an option given without its optional value
    metavar: str | None
    completes: str | None  # "session", "specialist", "template", "path", "branch"
    dest: str | None  # the attribute it parses into, when its name cannot be (`--as`)
    short: str | None  # a one-letter spelling of an option: "-c" for "--continue"
    many: bool  # may be given more than once: every value is kept, in order

    def __init__(self, name: str, help: str = "", type: Callable | None = None,
                 flag: bool = False, nargs: str | int | None = None, const: object = None,
                 metavar: str | None = None, completes: str | None = None,
                 dest: str | None = None, short: str | None = None, many: bool = False) -> None:
        self._set(name, help, type, flag, nargs, const, metavar, completes, dest, short, many)

    @property
    def positional(self) -> bool:
        return not self.name.startswith("-")

    @property
    def spelled(self) -> str:
        """How help shows the option: ``-c/--continue`` when it has a short form."""
        return f"{self.short}/{self.name}" if self.short else self.name

    @property
    def value_text(self) -> str:
        """The option's value as help shows it: `` ID``, `` [ID]`` when it may be left out
        (`--session` alone starts a new session), nothing for a flag."""
        if self.flag:
            return ""
        shown = self.metavar or "N"
        return f" [{shown}]" if self.nargs == "?" else f" {shown}"

    @property
    def names(self) -> tuple[str, ...]:
        return (self.short, self.name) if self.short else (self.name,)


class Command(FrozenRecord):
    """One command as declared: its words, arguments and handler."""

    _fields = ("name", "scope", "help", "handler", "args", "aliases", "example")
    name: str
    scope: str
    help: str
    handler: Callable
    args: tuple[Arg, ...]
    aliases: tuple[str, ...]
    example: str

    def __init__(self, name: str, scope: str, help: str, handler: Callable,
                 args: tuple[Arg, ...] = (), aliases: tuple[str, ...] = (),
                 example: str = "") -> None:
        self._set(name, scope, help, handler, args, aliases, example)

    @property
    def word(self) -> str:
        """How the command is typed: `--list-sessions` for aish scope, `save` in a session."""
        return f"--{self.name}" if self.scope == "aish" else self.name

    @property
    def usage(self) -> str:
        parts = [self.word]
        for arg in self.args:
            if arg.positional:
                text = arg.metavar or arg.name
                parts.append(f"[{text}]" if arg.nargs in ("?", "*") else text)
            else:
                parts.append(f"[{arg.spelled}{arg.value_text}]")
        return " ".join(parts)

    def parser(self, prog: str) -> argparse.ArgumentParser:
        parser_class, formatter_class = _argparse_classes()
        parser = parser_class(prog=prog, add_help=False, allow_abbrev=False,
                              exit_on_error=False, formatter_class=formatter_class)
        for arg in self.args:
            kwargs: dict = {"help": arg.help}
            if arg.flag:
                kwargs["action"] = "store_true"
            else:
                if arg.many:
                    kwargs["action"] = "append"
                if arg.type:
                    kwargs["type"] = arg.type
                if arg.nargs is not None:
                    kwargs["nargs"] = arg.nargs
                if arg.const is not None:
                    kwargs["const"] = arg.const
                if arg.metavar and not arg.positional:
                    kwargs["metavar"] = arg.metavar
            if arg.dest and not arg.positional:
                kwargs["dest"] = arg.dest
            if arg.positional:
                kwargs["metavar"] = arg.metavar or arg.name
                parser.add_argument(arg.name.lower().replace("-", "_"), **kwargs)
            else:
                parser.add_argument(*arg.names, **kwargs)
        return parser

    def parse(self, tokens: list[str], prog: str | None = None) -> Any:
        """The parsed arguments (attributes named as argparse names them)."""
        simple = self._parse_simple(tokens)
        if simple is not None:
            return simple
        import argparse

        prog = prog or f"aish {self.word}"
        try:
            return self.parser(prog).parse_args(tokens)
        except argparse.ArgumentError as exc:  # with exit_on_error=False argparse raises this
            raise UsageError(f"{prog}: {exc}", hint="see 'aish --help'") from None

    def _parse_simple(self, tokens: list[str]) -> SimpleNamespace | None:
        """What argparse would make of ``tokens`` when they are only this command's switches
        and its plain positionals, each spelled exactly; None for anything else, which
        argparse parses (and words the errors of). Building argparse's parser costs more
        than most management commands' own work."""
        switches: dict[str, str] = {}
        positionals: list[str] = []
        for arg in self.args:
            if arg.positional and arg.type is None and arg.nargs is None and not arg.many:
                positionals.append(arg.name.lower().replace("-", "_"))
            elif arg.flag and not arg.positional:
                dest = arg.dest or arg.name.lstrip("-").replace("-", "_")
                switches.update(dict.fromkeys(arg.names, dest))
            else:
                return None
        values: dict[str, object] = dict.fromkeys(switches.values(), False)
        given = []
        for token in tokens:
            if token.startswith("-"):
                if token not in switches:
                    return None
                values[switches[token]] = True
            else:
                given.append(token)
        if len(given) != len(positionals):
            return None
        values.update(zip(positionals, given, strict=True))
        return SimpleNamespace(**values)


def _argparse_classes() -> tuple[type[argparse.ArgumentParser], type[argparse.HelpFormatter]]:
    """argparse's parser and formatter as the registry uses them, made on first use: a
    command line the simple parse handles never imports argparse."""
    import argparse

    class _Formatter(argparse.HelpFormatter):
        """argparse builds a formatter for every option it adds, and by default asks the
        terminal for its width (importing shutil) to do so; help comes from the registry."""

        def __init__(self, prog: str) -> None:
            super().__init__(prog, width=100)

    class _Parser(argparse.ArgumentParser):
        """argparse that raises UsageError instead of printing and exiting."""

        def error(self, message: str):
            raise UsageError(f"{self.prog}: {message}", hint="see 'aish --help'")

        def exit(self, status=0, message=None):
            raise UsageError(message or f"{self.prog}: invalid arguments")

    return _Parser, _Formatter


class Registry(Record):
    """Every declared command, by scope and word."""

    _fields = ("commands",)

    def __init__(self, commands: dict[tuple[str, str], Command] | None = None) -> None:
        self.commands = {} if commands is None else commands

    def add(self, command: Command) -> None:
        for word in (command.name, *command.aliases):
            key = (command.scope, word)
            if key in self.commands:
                raise ValueError(f"command {word!r} registered twice in {command.scope}")
            self.commands[key] = command

    def get(self, scope: str, word: str) -> Command | None:
        return self.commands.get((scope, word))

    def require(self, scope: str, word: str) -> Command:
        """A command that is always registered (``ask``, ``help``); KeyError if it is not."""
        return self.commands[(scope, word)]

    def in_scope(self, scope: str) -> list[Command]:
        seen: dict[str, Command] = {}
        for (s, _), command in self.commands.items():
            if s == scope:
                seen.setdefault(command.name, command)
        return sorted(seen.values(), key=lambda c: c.name)


REGISTRY = Registry()


def command(name: str, scope: str, help: str, args: tuple[Arg, ...] = (),
            aliases: tuple[str, ...] = (), example: str = ""):
    """Register the decorated function as the handler of a command."""

    def wrap(handler):
        REGISTRY.add(Command(name, scope, help, handler, tuple(args), tuple(aliases), example))
        return handler

    return wrap


JSON = Arg("--json", "print JSON", flag=True)


def positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value
