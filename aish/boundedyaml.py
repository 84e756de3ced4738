"""YAML parsing whose work is bounded by construction, for files a user (or an attacker) wrote.

A plain safe load of hostile text can run for ever or blow the stack: aliases to aliases
("billion laughs") build a tree whose walk is exponential in the file's size, and deep nesting
makes the composer recurse until RecursionError. Here every parser event is counted as the
composer asks for it, before anything is built: nesting depth, aliases, and the number of nodes
the tree would have with every alias expanded. Past a limit the load stops with a ConfigError,
so the cost is linear in the (capped) input whatever it contains.
"""

from __future__ import annotations

from typing import Any

from aish.errors import ConfigError

MAX_DEPTH = 20
MAX_ALIASES = 50
MAX_NODES = 2_000  # counting every alias as the whole node it stands for


class _Limits:
    """The running counts of one load, fed one parser event at a time."""

    def __init__(self, where: str, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH):
        self.where = where
        self.max_nodes = max_nodes
        self.max_depth = max_depth
        self.nodes = 0
        self.aliases = 0
        self.open: list[tuple[str | None, int]] = []  # (anchor, nodes before) per open collection
        self.sizes: dict[str, int] = {}  # anchor -> expanded size of its node

    def refuse(self, what: str) -> None:
        raise ConfigError(f"{self.where}: {what}")

    def see(self, event: Any) -> None:
        from ruamel.yaml import events

        if isinstance(event, events.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                self.refuse(f"too many aliases (more than {MAX_ALIASES})")
            self.add(self.sizes.get(event.anchor, 1), "aliases expand")
        elif isinstance(event, events.ScalarEvent):
            if not self.open and event.value != "":  # "" is an empty document: no settings
                self.refuse("expected a mapping at the top level")
            self.add(1, "too many values")
            if event.anchor:
                self.sizes[event.anchor] = 1
        elif isinstance(event, events.CollectionStartEvent):
            if not self.open and not isinstance(event, events.MappingStartEvent):
                self.refuse("expected a mapping at the top level")
            if len(self.open) >= self.max_depth:
                self.refuse(f"nested deeper than {self.max_depth} levels")
            self.add(1, "too many values")
            self.open.append((event.anchor, self.nodes))
        elif isinstance(event, events.CollectionEndEvent) and self.open:
            anchor, before = self.open.pop()
            if anchor:
                self.sizes[anchor] = self.nodes - before + 1

    def add(self, count: int, what: str) -> None:
        self.nodes += count
        if self.nodes > self.max_nodes:
            if what == "aliases expand":
                self.refuse(f"aliases expand to more than {self.max_nodes} values")
            self.refuse(f"{what} (more than {self.max_nodes})")


def load(text: str, where: str, *, max_nodes: int = MAX_NODES,
         max_depth: int = MAX_DEPTH) -> Any:
    """The one YAML document in ``text`` (None when it holds none), or ConfigError naming
    ``where``. The top level must be a mapping. The limits suit a config file; a bigger
    document (a saved conversation) may raise them."""
    from ruamel.yaml import YAML
    from ruamel.yaml.constructor import DuplicateKeyError
    from ruamel.yaml.parser import Parser
    from ruamel.yaml.reader import ReaderError

    limits = _Limits(where, max_nodes, max_depth)

    class BoundedParser(Parser):
        def get_event(self) -> Any:
            event = super().get_event()
            limits.see(event)
            return event

    yaml = YAML(typ="safe", pure=True)
    yaml.Parser = BoundedParser
    try:
        return yaml.load(text)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - a parser fed hostile text may raise anything
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        # A parser's own message says what is wrong; others (an int too long to convert, ...)
        # might quote the value, so only their kind is shown.
        problem = getattr(exc, "problem", None)
        if isinstance(exc, DuplicateKeyError):  # its message quotes both values: maybe a secret
            problem = str(problem).split(" with value ")[0]
        if problem is None and isinstance(exc, ReaderError):  # names the character, not the text
            problem = str(exc).split(":")[0]
        problem = problem or f"unreadable value ({type(exc).__name__})"
        raise ConfigError(f"{where}: not valid YAML{line}: {_short(problem)}") from None


def _short(text: Any) -> str:
    return " ".join(str(text).split())[:120]
