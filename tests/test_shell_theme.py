"""Themes: the shipped files load cleanly, a user's theme wins, mistakes are reported, not fatal;
and NO_COLOR turns colour off in the shell's console."""

from __future__ import annotations

import io

import pytest

from aish.output import Output
from aish.theme import available, load_theme, to_prompt_toolkit


@pytest.mark.parametrize("name", ["default", "dark", "light"])
def test_shipped_themes_load_without_problems(name, tmp_path):
    theme = load_theme(name, {"HOME": str(tmp_path)})
    assert theme.problems == ()
    assert theme.source and theme.source.endswith(f"themes/{name}.yaml")
    assert theme.rich.styles["aish.reply_prefix"]
    rules = dict(theme.prompt_style.style_rules)
    assert rules["prompt"] and rules["bottom-toolbar"]


def test_default_uses_the_terminal_palette(tmp_path):
    # ANSI colours and an ANSI code theme: the terminal maps them for light or dark backgrounds.
    theme = load_theme("default", {"HOME": str(tmp_path)})
    assert theme.code in ("ansi_light", "ansi_dark")
    assert all("#" not in value for value in theme.styles.values())


def test_user_theme_wins_and_bad_values_are_reported(tmp_path):
    folder = tmp_path / ".aish" / "themes"
    folder.mkdir(parents=True)
    (folder / "mine.yaml").write_text(
        'code: native\nstyles:\n  prompt: "bold #ff0000"\n  reply_prefix: "bold blurple"\n'
        "  nonsense: red\n")
    theme = load_theme("mine", {"HOME": str(tmp_path)})
    assert theme.code == "native"
    assert theme.styles["prompt"] == "bold #ff0000"
    assert theme.styles["reply_prefix"] == "bold"  # the fallback, since blurple is no colour
    assert len(theme.problems) == 2
    assert "mine" in available({"HOME": str(tmp_path)})


def test_unknown_or_unsafe_theme_falls_back(tmp_path):
    assert "no theme called 'nope'" in load_theme("nope", {"HOME": str(tmp_path)}).problems[0]
    theme = load_theme("../../etc/passwd", {"HOME": str(tmp_path)})
    assert theme.source is None and "invalid theme name" in theme.problems[0]


def test_unknown_code_style_is_reported(tmp_path):
    folder = tmp_path / ".aish" / "themes"
    folder.mkdir(parents=True)
    (folder / "x.yaml").write_text("code: no-such-pygments-style\n")
    theme = load_theme("x", {"HOME": str(tmp_path)})
    assert theme.code == "ansi_light" and "no Pygments style" in theme.problems[0]


def test_rich_words_translate_to_prompt_toolkit():
    assert to_prompt_toolkit("bold cyan") == "bold fg:ansicyan"
    assert to_prompt_toolkit("#f8f8f2 on #3e3d32") == "fg:#f8f8f2 bg:#3e3d32"
    assert to_prompt_toolkit("dim white on bright_black") == "fg:ansigray bg:ansibrightblack"
    assert to_prompt_toolkit("reverse bright_white") == "reverse fg:ansiwhite"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_color_turns_colour_off_in_rendered_replies():
    colour = Output(stdout=_Tty(), stderr=io.StringIO(), environ={})
    plain = Output(stdout=_Tty(), stderr=io.StringIO(), environ={"NO_COLOR": "1"})
    for out in (colour, plain):
        renderer = out.reply_renderer()
        renderer.feed("# Title\n\n```python\nx = 1\n```\n")
        renderer.finish()
    assert "\x1b[" in colour.stdout.getvalue()
    assert "\x1b[" not in plain.stdout.getvalue()
    assert "x = 1" in plain.stdout.getvalue()
    # ... but not the layout: the heading is still laid out as Markdown, not `# Title`.
    assert "# Title" not in plain.stdout.getvalue()
    assert plain.stdout.getvalue().splitlines()[0].strip() == "Title"


def test_config_picks_the_theme_and_a_bad_one_warns(tmp_path):
    from aish.commands.context import Context
    from aish.shell.lines import shell_theme

    home = tmp_path / "home"
    (home / ".aish").mkdir(parents=True)
    config = home / ".aish" / "config.yaml"
    config.write_text("ui: {theme: dark}\n")
    out = Output(stdout=_Tty(), stderr=io.StringIO(), environ={})
    ctx = Context(environ={"HOME": str(home)}, out=out)
    theme = shell_theme(ctx)
    assert (theme.name, theme.code) == ("dark", "monokai")
    assert str(out.console().get_style("aish.prompt")) == "bold #66d9ef"
    assert out.stderr.getvalue() == ""

    config.write_text("ui: {theme: nope}\n")
    out = Output(stdout=_Tty(), stderr=io.StringIO(), environ={})
    theme = shell_theme(Context(environ={"HOME": str(home)}, out=out))
    assert theme.name == "nope" and theme.source is None
    assert "aish: warning: ui.theme: no theme called 'nope'" in out.stderr.getvalue()


@pytest.mark.parametrize("text, why", [
    ("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True))
     + "styles: *i\n", "aliases"),
    ("styles: " + "[" * 5000 + "]" * 5000 + "\n", "nest"),
    (b"styles: {prompt: \"bold\"}\n" + b"\xff\xfe", None),
])
def test_a_hostile_theme_file_is_a_problem_not_a_hang(tmp_path, text, why):
    folder = tmp_path / ".aish" / "themes"
    folder.mkdir(parents=True)
    data = text if isinstance(text, bytes) else text.encode()
    (folder / "evil.yaml").write_bytes(data)
    theme = load_theme("evil", {"HOME": str(tmp_path)})
    assert theme.source is not None and len(theme.problems) == 1
    assert "cannot read theme" in theme.problems[0]
    if why:
        assert why in theme.problems[0]
