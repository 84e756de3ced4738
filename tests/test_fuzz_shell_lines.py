"""Fuzzing the shell's own face: scripts of random lines (command words of the registry with
hostile arguments, unbalanced quotes, shell operators, backslashes, control characters) typed at
session mode and at the `aish>` prompt, in process. Whatever is typed, the loop runs to the end
of the script and returns an exit code, no exception escapes and no traceback is printed, and
every session it stored still loads whole.

The argv fuzzer (tests/test_fuzz_argv.py) covers the command line; this covers what only the
shell parses: quoting, the session words, the escape, lines after an error.
AISH_FUZZ_EXAMPLES sets the number of examples per test."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from fakes import Scripted
from fault_server import refused_url
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aish.commands.context import Context
from aish.commands.dispatch import load_commands
from aish.commands.registry import REGISTRY
from aish.output import Output
from aish.shell.lines import StreamLines
from aish.shell.repl import ShellContext, loop
from aish.shell.session_mode import SessionMode

EXAMPLES = int(os.environ.get("AISH_FUZZ_EXAMPLES") or 100)
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CODES = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 130}

load_commands()
# Left out: words that wait for something outside the script (`follow` watches until Ctrl-C,
# `tree` is full-screen, `edit` opens $EDITOR) or reach outside the example's folders.
SESSION_WORDS = sorted({c.word for c in REGISTRY.in_scope("session")}
                       - {"follow", "tree", "edit"})
SHELL_HEADS = ["--list-sessions", "--session-info", "--session-stats", "--end-session",
               "--validate-session", "--repair-session", "--prune-session", "--save-session",
               "--title-session", "--search-sessions", "--undo", "--who", "help", "apollo",
               "athena", "aish", "bogus", "echo"]

pieces = (st.sampled_from(["sess_abc123", "apollo", "--keep-last", "-1", "0", "5", "--", "|",
                           ">", "'unclosed", '"', "\\", "\\save", "/save", "/context", "--here",
                           "--json", "--ai", "--branch", "main", "x" * 300, "☃", "\x1b[31m",
                           "\x07", "--session", "--session-id", "--shared", "--get-id"])
          | st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                           blacklist_characters="\n\r\x00"), max_size=12))


def line_of(heads: list[str]) -> st.SearchStrategy[str]:
    words = st.lists(pieces, max_size=4)
    return st.builds(lambda head, rest, slash: ("/" if slash else "") + " ".join([head, *rest]),
                     st.sampled_from(heads), words, st.booleans()) | pieces


def scripts(heads: list[str]) -> st.SearchStrategy[str]:
    return st.lists(line_of(heads), max_size=6).map(lambda lines: "\n".join(lines) + "\n")


def all_sessions_load(context: Context) -> None:
    for row, _ in context.sessions.list_rows(include_all=True):
        context.store.load(row.id)  # raises if a stored session was left half-written


def environ(root: Path) -> dict[str, str]:
    home = root / "home"
    (home / ".aish").mkdir(parents=True, exist_ok=True)
    config = home / ".aish" / "config.yaml"
    config.write_text("providers:\n  openai: {timeout: 5, max_retries: 0}\n")
    os.chmod(config, 0o600)
    return {"HOME": str(home), "AISH_AUTO_TITLE": "false", "AISH_PROVIDER": "openai",
            "OPENAI_BASE_URL": refused_url(), "OPENAI_API_KEY": "fuzz-key", "AISH_WARM": "0",
            "EDITOR": "true"}


def run_and_check(root: str, script: str, make_context, run) -> tuple[Context, Output]:
    """Run ``run(ctx)`` in ``root`` (where `export` writes relative paths) on a fresh Output;
    check its code, that no traceback was printed and that every stored session loads."""
    out = Output(stdout=io.StringIO(), stderr=io.StringIO(), environ={})
    ctx = make_context(environ(Path(root)), out)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        code = run(ctx)
    finally:
        os.chdir(cwd)
    err = out.stderr.getvalue()
    assert code in CODES, (script, code, err)
    assert "Traceback" not in err, (script, err)
    all_sessions_load(ctx)
    return ctx, out


@FUZZ
@given(script=scripts(SESSION_WORDS))
def test_any_lines_in_session_mode_leave_it_whole(script):
    def run(ctx):
        session = ctx.sessions.create("apollo")
        return SessionMode(ctx, ctx.specialist("apollo"), session,
                           StreamLines(io.StringIO(script)), Scripted()).run()

    with tempfile.TemporaryDirectory() as root:
        run_and_check(root, script, lambda env, out: Context(
            environ=env, stdin=io.StringIO(""), out=out, interactive=True), run)


@FUZZ
@given(script=scripts(SHELL_HEADS))
def test_any_lines_at_the_aish_prompt_run_to_the_end(script):
    lines = StreamLines(io.StringIO(script + "--version\n"))
    with tempfile.TemporaryDirectory() as root:
        _, out = run_and_check(root, script, lambda env, out: ShellContext(
            environ=env, stdin=io.StringIO(""), out=out, interactive=True, lines=lines), loop)
    # The loop went on to the last line (unless a line left the shell on purpose).
    left = any(line.strip() in ("exit", "quit") for line in script.splitlines())
    assert left or out.stdout.getvalue().rstrip().endswith("aish 0.1.0"), script
