"""Colour themes: one YAML file drives both Rich (replies, code) and prompt_toolkit (prompt,
toolbar, completion menu), so the shell's colours are chosen in one place.

A theme file (``themes/NAME.yaml`` in the repository, or ``~/.aish/themes/NAME.yaml``, which
wins) looks like::

    description: what it suits
    code: ansi_light              # a Pygments style, or Rich's ansi_dark / ansi_light
    styles:                       # aish's own style keys, in Rich's style words
      prompt: bold cyan
      reply_prefix: bold magenta
    rich:                         # optional: any other Rich style name (markdown.h1, ...)
      markdown.h1: bold underline

Style words are Rich's: ``bold``, ``italic``, ``underline``, ``dim``, ``reverse``, a colour
(``red``, ``bright_blue``, ``#d75f00``) and ``on COLOUR`` for a background. They are translated
for prompt_toolkit here. A broken or missing theme never stops the shell: the problems are
collected in ``Theme.problems`` (the shell prints them as warnings) and the built-in fallback
fills the gaps.

Neither Rich nor prompt_toolkit is imported until a style object is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

#: The keys aish's own code uses. Rich sees them as ``aish.KEY``; prompt_toolkit as below.
STYLE_KEYS = {
    "prompt": "prompt",  # `aish> `, `apollo (session)> `
    "prompt.session": "prompt.session",  # the `(session: sess_...)` part
    "reply_prefix": "reply-prefix",  # `apollo> ` before a reply
    "spinner": "spinner",  # the status shown until the first token arrives
    "toolbar": "bottom-toolbar",
    "toolbar.value": "bottom-toolbar.value",
    "completion": "completion-menu.completion",
    "completion.current": "completion-menu.completion.current",
    "completion.meta": "completion-menu.meta.completion",
}

#: Used when no theme file can be read: plain attributes that suit any terminal.
FALLBACK: dict[str, Any] = {
    "description": "built-in fallback",
    "code": "ansi_light",
    "styles": {"prompt": "bold", "prompt.session": "", "reply_prefix": "bold",
               "spinner": "", "toolbar": "reverse", "toolbar.value": "reverse bold"},
}

_ANSI = ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white")
_PT_ATTRS = {"bold", "italic", "underline", "reverse", "blink", "strike", "hidden"}


def theme_dirs(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where themes are looked for, first match wins: the user's, then the shipped ones."""
    environ = os.environ if environ is None else environ
    home = Path(environ.get("HOME") or Path.home())
    package = Path(__file__).resolve().parent
    return [home / ".aish" / "themes", package.parent / "themes", package / "themes"]


def available(environ: Mapping[str, str] | None = None) -> list[str]:
    names: set[str] = set()
    for folder in theme_dirs(environ):
        if folder.is_dir():
            names.update(p.stem for p in folder.glob("*.yaml"))
    return sorted(names)


@dataclass(frozen=True)
class Theme:
    name: str
    code: str
    styles: dict[str, str]
    rich_styles: dict[str, str] = field(default_factory=dict)
    description: str = ""
    source: str | None = None
    problems: tuple[str, ...] = ()

    @cached_property
    def rich(self):
        """A ``rich.theme.Theme`` with ``aish.KEY`` styles plus the file's raw Rich styles."""
        from rich.theme import Theme as RichTheme

        return RichTheme({**{f"aish.{k}": v or "none" for k, v in self.styles.items()},
                          **self.rich_styles})

    @cached_property
    def prompt_style(self):
        """The prompt_toolkit style for the prompt, the toolbar and the completion menu."""
        from prompt_toolkit.styles import Style

        rules = []
        for key, value in self.styles.items():
            selector = STYLE_KEYS.get(key)
            if selector:
                rules.append((selector, to_prompt_toolkit(value)))
        return Style(rules)


def to_prompt_toolkit(words: str) -> str:
    """Translate Rich style words into prompt_toolkit's (`on blue` → `bg:ansiblue`)."""
    out: list[str] = []
    background = False
    for word in words.split():
        lowered = word.lower()
        if lowered == "on":
            background = True
            continue
        if lowered in _PT_ATTRS:
            out.append(lowered)
        elif lowered.startswith("not") or lowered in ("dim", "none", "default", "conceal"):
            pass  # prompt_toolkit has no dim; "none"/"default" mean "leave as is"
        else:
            colour = _colour(lowered)
            if colour:
                out.append(("bg:" if background else "fg:") + colour)
        background = False
    return " ".join(out)


def _colour(word: str) -> str | None:
    if word.startswith("#") and len(word) in (4, 7):
        return word
    bright = word.startswith("bright_")
    base = word.removeprefix("bright_")
    if base not in _ANSI:
        return None
    # prompt_toolkit calls ANSI 7 "gray" and ANSI 15 "white"; Rich calls them white and
    # bright_white.
    if base == "white":
        return "ansiwhite" if bright else "ansigray"
    if base == "black" and bright:
        return "ansibrightblack"
    return f"ansibright{base}" if bright else f"ansi{base}"


def load_theme(name: str = "default", environ: Mapping[str, str] | None = None) -> Theme:
    """The theme called ``name``; problems are collected, never raised."""
    problems: list[str] = []
    data = None
    source = None
    if not _safe_name(name):
        problems.append(f"ui.theme: invalid theme name {name!r}")
    else:
        for folder in theme_dirs(environ):
            path = folder / f"{name}.yaml"
            if path.is_file():
                source = str(path)
                data = _read(path, problems)
                break
        else:
            known = ", ".join(available(environ)) or "none found"
            problems.append(f"ui.theme: no theme called {name!r} (available: {known})")
    if not isinstance(data, dict):
        data = FALLBACK
    return _build(name, data, source, problems)


def _safe_name(name: str) -> bool:
    return bool(name) and name.replace("-", "").replace("_", "").isalnum()


def _read(path: Path, problems: list[str]):
    # A theme file is user-written text like the config: parsed with the same bounds, so an
    # alias bomb or deep nesting is a problem reported, not a hang.
    from aish.boundedyaml import load
    from aish.errors import ConfigError

    try:
        if path.stat().st_size > 64 * 1024:
            raise ConfigError(f"{path}: larger than 64 KiB")
        data = load(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError, ConfigError) as exc:
        problems.append(f"cannot read theme ({str(exc).splitlines()[0][:160]})")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path}: a theme is a mapping with 'code' and 'styles'")
        return None
    return data


def _build(name: str, data: dict, source: str | None, problems: list[str]) -> Theme:
    where = source or "built-in theme"
    styles = dict(FALLBACK["styles"])
    given = data.get("styles") or {}
    if not isinstance(given, dict):
        problems.append(f"{where}: styles: expected a mapping")
        given = {}
    for key, value in given.items():
        if key not in STYLE_KEYS:
            problems.append(f"{where}: styles.{key}: unknown key "
                            f"(known: {', '.join(STYLE_KEYS)})")
        elif _valid_style(value):
            styles[key] = str(value or "")
        else:
            problems.append(f"{where}: styles.{key}: not a valid style: {value!r}")
    rich_styles = {}
    extra = data.get("rich") or {}
    if isinstance(extra, dict):
        for key, value in extra.items():
            if _valid_style(value):
                rich_styles[str(key)] = str(value)
            else:
                problems.append(f"{where}: rich.{key}: not a valid style: {value!r}")
    code = data.get("code") or FALLBACK["code"]
    if not _valid_code_theme(str(code)):
        problems.append(f"{where}: code: no Pygments style called {code!r}")
        code = FALLBACK["code"]
    return Theme(name=name, code=str(code), styles=styles, rich_styles=rich_styles,
                 description=str(data.get("description", "")), source=source,
                 problems=tuple(problems))


def _valid_style(value) -> bool:
    if value is None or value == "":
        return True
    if not isinstance(value, str):
        return False
    from rich.errors import StyleSyntaxError
    from rich.style import Style

    try:
        Style.parse(value)
    except StyleSyntaxError:
        return False
    return True


def _valid_code_theme(name: str) -> bool:
    if name in ("ansi_dark", "ansi_light"):
        return True
    from pygments.styles import get_style_by_name
    from pygments.util import ClassNotFound

    try:
        get_style_by_name(name)
    except ClassNotFound:
        return False
    return True
