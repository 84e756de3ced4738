"""Tab completion, read from the command registry.

:func:`suggest` is a pure function of the text before the cursor, the scope (``shell`` for the
`aish>` prompt, ``session`` inside session mode) and a :class:`Vocabulary` that supplies the
names that live in storage (session ids, templates) — so it is tested without a terminal.
:func:`make_completer` wraps it in a thin prompt_toolkit ``Completer``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from aish.commands.registry import REGISTRY, Arg, Command, Registry
from aish.errors import AishError

SHELL_WORDS = {"help": "show commands and specialists", "exit": "leave the shell",
               "quit": "leave the shell"}


@dataclass(frozen=True)
class Suggestion:
    text: str
    start: int  # where the replaced text starts, relative to the cursor (0 or negative)
    meta: str = ""


class Vocabulary(Protocol):
    def specialists(self) -> dict[str, str]: ...  # name -> description

    def sessions(self) -> list[str]: ...

    def templates(self) -> list[str]: ...

    def paths(self, prefix: str) -> list[str]: ...


def suggest(text: str, scope: str, vocab: Vocabulary,
            registry: Registry = REGISTRY) -> list[Suggestion]:
    """What may replace the word under the cursor at the end of ``text``."""
    words = text.split()
    current = "" if not text or text[-1].isspace() else words.pop()
    if scope == "session":
        return _session(words, current, vocab, registry)
    return _shell(words, current, vocab, registry)


def _shell(words: list[str], current: str, vocab: Vocabulary,
           registry: Registry) -> list[Suggestion]:
    if words and words[0] == "aish":
        words = words[1:]
    if not words:
        candidates: list[tuple[str, str]] = []
        if not current.startswith("-"):
            candidates += sorted(vocab.specialists().items())
            candidates += SHELL_WORDS.items()
        candidates += [(c.word, c.help) for c in registry.in_scope("aish")]
        return _matching(candidates, current)
    head = words[0]
    if head == "help":
        return _matching(_topics(vocab, registry), current) if len(words) == 1 else []
    if _specialist_name(head) in vocab.specialists():
        command = registry.get("specialist", "ask")
    elif head.startswith("--") and registry.get("aish", head[2:]):
        command = registry.get("aish", head[2:])
    else:
        return []
    if command is None:
        return []
    return _arguments(command, words[1:], current, vocab, registry)


def _session(words: list[str], current: str, vocab: Vocabulary,
             registry: Registry) -> list[Suggestion]:
    if not words:
        if current.startswith("\\"):
            return []  # an escaped message
        slash = "/" if current.startswith("/") else ""
        return _matching([(slash + c.name, c.help) for c in registry.in_scope("session")],
                         current)
    head = words[0].removeprefix("/")
    command = registry.get("session", head) if head else None
    if command is None:
        return []  # a message: nothing to complete
    return _arguments(command, words[1:], current, vocab, registry)


def _arguments(command: Command, given: list[str], current: str, vocab: Vocabulary,
               registry: Registry) -> list[Suggestion]:
    options = {n: a for a in command.args if not a.positional for n in a.names}
    previous = options.get(given[-1]) if given else None
    if previous is not None and not previous.flag and not current.startswith("-"):
        values = _values(previous, current, vocab, registry)
        if values or previous.nargs != "?":
            return values
    if current.startswith("-"):
        used = set(given)
        return _matching([(n, a.help) for n, a in options.items() if n not in used], current)
    positionals = [a for a in command.args if a.positional]
    index = _positional_index(given, options)
    if index < len(positionals):
        arg = positionals[index]
    elif positionals and positionals[-1].nargs == "*":
        arg = positionals[-1]
    else:
        arg = None
    values = _values(arg, current, vocab, registry) if arg else []
    if not values and not current:
        used = set(given)
        return _matching([(n, a.help) for n, a in options.items() if n not in used], current)
    return values


def _positional_index(given: list[str], options: dict[str, Arg]) -> int:
    """How many positional values ``given`` already holds (option values do not count)."""
    count = 0
    skip = False
    for word in given:
        if skip:
            skip = False
            continue
        option = options.get(word.split("=", 1)[0])
        if option is not None:
            skip = not option.flag and "=" not in word and option.nargs != "?"
            continue
        if not word.startswith("-"):
            count += 1
    return count


def _values(arg: Arg, current: str, vocab: Vocabulary, registry: Registry) -> list[Suggestion]:
    kind = arg.completes
    if kind == "session":
        return _matching(((s, "session") for s in vocab.sessions()), current)
    if kind == "template":
        return _matching(((t, "template") for t in vocab.templates()), current)
    if kind == "specialist":
        return _matching(sorted(vocab.specialists().items()), current)
    if kind == "command":
        return _matching(_topics(vocab, registry), current)
    if kind == "path":
        return _matching(((p, "") for p in vocab.paths(current)), current)
    if kind == "branch":
        branches = getattr(vocab, "branches", None)  # only session mode knows its session
        return _matching(((b, "branch") for b in branches()), current) if branches else []
    return []


def _topics(vocab: Vocabulary, registry: Registry) -> list[tuple[str, str]]:
    topics = sorted(vocab.specialists().items())
    for scope in ("aish", "session"):
        topics += [(c.name, c.help) for c in registry.in_scope(scope)]
    return topics


def _specialist_name(word: str) -> str:
    return word.removesuffix("-ai")


def _matching(candidates: Iterable[tuple[str, str]], current: str) -> list[Suggestion]:
    seen: set[str] = set()
    out = []
    for text, meta in candidates:
        if text.startswith(current) and text not in seen:
            seen.add(text)
            out.append(Suggestion(text, -len(current), meta))
    return out


class ContextVocabulary:
    """The names a running aish knows, read when Tab is pressed (storage errors mean none)."""

    def __init__(self, ctx):
        self.ctx = ctx

    def specialists(self) -> dict[str, str]:
        try:
            return {name: spec.description for name, spec in self.ctx.specialists.items()}
        except AishError:
            return {}

    def sessions(self) -> list[str]:
        try:
            return sorted(self.ctx.sessions.ids())
        except (AishError, OSError):
            return []

    def templates(self) -> list[str]:
        try:
            return list(self.ctx.sessions.list_docs("templates"))
        except (AishError, OSError):
            return []

    def paths(self, prefix: str) -> list[str]:
        return complete_path(prefix)

    def branches(self) -> list[str]:
        """The branches of the session that session mode is in (none outside it)."""
        state = self.ctx.in_session
        if state is None or not state.session.stored:
            return []
        try:
            return state.session.sessions.summary(state.session.id).tree.names()
        except (AishError, OSError):
            return []


def complete_path(prefix: str) -> list[str]:
    """Files and folders whose path starts with ``prefix`` (as typed, `~` kept)."""
    head, _, tail = prefix.rpartition("/")
    shown = head + "/" if head or prefix.startswith("/") else ""
    folder = os.path.expanduser(shown or ".")
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    out = []
    for name in names:
        if name.startswith(tail) and (tail.startswith(".") or not name.startswith(".")):
            is_dir = os.path.isdir(os.path.join(folder, name))
            out.append(shown + name + ("/" if is_dir else ""))
    return out


def make_completer(scope: str, vocab: Vocabulary):
    """A prompt_toolkit ``Completer`` over :func:`suggest`."""
    from prompt_toolkit.completion import Completer, Completion

    from aish.commands.dispatch import load_commands

    load_commands()

    class RegistryCompleter(Completer):
        def get_completions(self, document, complete_event):
            try:
                found = suggest(document.text_before_cursor, scope, vocab)
            except Exception:  # noqa: BLE001 - a completion bug must never break the prompt
                found = []
            for s in found:
                # A finished word gets its space, so the next Tab completes the next word.
                text = s.text if s.text.endswith("/") else s.text + " "
                yield Completion(text, start_position=s.start, display=s.text,
                                 display_meta=s.meta)

    return RegistryCompleter()
