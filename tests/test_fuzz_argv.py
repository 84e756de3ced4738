"""Fuzzing the command line: random argv built from the registry's real flag names and hostile
values (over-long ids and paths, unicode, control characters, numbers) runs through the real
dispatcher in process. Whatever it is given, `aish.cli.main` returns an exit code and prints
no traceback; usage errors are exit 2 and path errors are one line with a code."""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

import pytest
from fault_server import refused_url
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aish import cli
from aish.commands.dispatch import load_commands
from aish.commands.registry import REGISTRY
from aish.errors import USAGE

EXAMPLES = int(os.environ.get("AISH_FUZZ_EXAMPLES") or 300)
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CODES = {0, 1, 2, 3, 4, 5, 6, 7, 8, 130}

load_commands()
FLAGS = sorted({c.word for c in REGISTRY.in_scope("aish")}
               | {a.name for scope in ("aish", "specialist") for c in REGISTRY.in_scope(scope)
                  for a in c.args if not a.positional})
HEADS = ["apollo", "athena", "prometheus", "hermes", "aish", "help", "sherlock"]
PROVIDERS = ["openai", "nope", ""]

ids = (st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,70}", fullmatch=True)
       | st.integers(40, 5000).map(lambda n: "a" * n)
       | st.sampled_from(["sess_abc123", "..", "../x", "", "-", "a/b", "a\x1bb", "\x00"]))
paths = (st.text(max_size=40).filter(lambda p: "\x00" not in p)
         | st.integers(200, 5000).map(lambda n: "p" * n)
         | st.integers(2, 200).map(lambda n: "/".join(["d" * 200] * n))
         | st.sampled_from(["nonexistent.json", "missing/dir/x.json", ".", "\x00"]))
numbers = st.integers(-10, 10**20).map(str) | st.sampled_from(["1e9", "-0", "nan", "0x10", "٣"])
tokens = (st.sampled_from(FLAGS) | st.sampled_from(FLAGS).map(lambda f: f + "=")
          | ids | paths | numbers | st.text(max_size=20) | st.sampled_from(PROVIDERS)
          | st.sampled_from(["--", "-h", "--help"])
          ).filter(lambda t: t.strip() != "local" and not t.startswith(("/", "~")))
# ("local" would load the model; an absolute path could let --install-shims write outside the
# example's own directory.)
argvs = st.builds(lambda head, rest: [head, *rest],
                  st.sampled_from(HEADS) | st.sampled_from(FLAGS),
                  st.lists(tokens, max_size=6))


@pytest.fixture(scope="module")
def world():
    """One isolated HOME; each example gets its own session directory and working directory."""
    with tempfile.TemporaryDirectory() as root:
        home = Path(root) / "home"
        (home / ".aish").mkdir(parents=True)
        config = home / ".aish" / "config.yaml"
        config.write_text("providers:\n  openai: {timeout: 5, max_retries: 0}\n")
        os.chmod(config, 0o600)
        yield Path(root)


def run_main(world: Path, argv: list[str]) -> tuple[int, str]:
    work = Path(tempfile.mkdtemp(dir=world))
    env = {"HOME": str(world / "home"), "AISH_SESSION_DIR": str(work / "sessions"),
           "AISH_PROVIDER": "openai", "OPENAI_BASE_URL": refused_url(),
           "OPENAI_API_KEY": "fuzz-key"}
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith(("AISH_", "OPENAI_")):
                mp.delenv(key)
        for key, value in env.items():
            mp.setenv(key, value)
        mp.chdir(work)  # relative paths (shims, exports) land here
        err = io.StringIO()
        mp.setattr(sys, "stdin", io.StringIO("hello from stdin\n"))
        mp.setattr(sys, "stdout", io.StringIO())
        mp.setattr(sys, "stderr", err)
        code = cli.main(argv)
    return code, err.getvalue()


@FUZZ
@given(argv=argvs)
def test_any_argv_gives_an_exit_code_and_no_traceback(world, argv):
    try:
        code, err = run_main(world, argv)
    except SystemExit as exc:  # argparse must never exit on its own
        pytest.fail(f"SystemExit({exc.code!r}) for {argv!r}")
    assert isinstance(code, int) and code in CODES, (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code:
        assert err.strip(), f"exit {code} with nothing on stderr for {argv!r}"


@pytest.mark.parametrize("argv", [
    ["apollo", "--session", "a" * 300, "hi"],
    ["apollo", "--session-id", "a" * 5000, "hi"],
    ["aish", "--session-info", "b" * 4000],
    ["aish", "--save-session", "c" * 300],
])
def test_overlong_ids_are_usage_errors(world, argv):
    code, err = run_main(world, argv)
    assert code == USAGE, err
    assert len(err.strip().splitlines()) == 1 and "invalid session id" in err


@pytest.mark.parametrize("path", ["p" * 5000, "/".join(["d" * 255] * 20), "x/" * 3000])
def test_overlong_restore_path_is_one_line(world, path):
    code, err = run_main(world, ["aish", "--restore-session", path])
    assert code in (3, 5), err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aish: error:"), err
    assert len(lines[0]) < 300  # the path is shortened, not dumped
