"""Fuzzing the config loader: whatever a config file or the environment holds, loading either
gives a Config or a ConfigError naming the file (or variable) on one line, never another
exception, and never a hang (the loader bounds its work; the timeout is only a safety net).

AISH_FUZZ_EXAMPLES sets the number of examples per test (a nightly run asks for 10,000)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aish.config import ENV_KEYS, KNOWN_KEYS, load
from aish.errors import ConfigError

EXAMPLES = int(os.environ.get("AISH_FUZZ_EXAMPLES") or 200)
# The fixtures used here hold no per-example state, so sharing them across examples is fine.
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

pytestmark = pytest.mark.timeout(max(300, EXAMPLES // 10))


def known_names(known: dict) -> list[str]:
    out = []
    for key, sub in known.items():
        out.append("apollo" if key == "*" else key)
        if isinstance(sub, dict):
            out += known_names(sub)
    return out


NAMES = sorted(set(known_names(KNOWN_KEYS)))

# Pieces of YAML syntax, known keys and awkward values, glued at random: most results are
# nearly-YAML, which reaches deeper into the parser than uniformly random text does.
FRAGMENTS = st.sampled_from([
    *NAMES, ": ", ":", "\n", "\n  ", "\n    ", "- ", "[", "]", "{", "}", ", ", "&a ", "*a",
    "&b ", "*b", "<<: ", "? ", "!!str ", "!!int ", "!!binary ", "!!set ", "!!python/name:os ",
    "---\n", "...\n", "|\n  ", ">-\n  ", "'", '"', "\\", "#", "%YAML 1.1\n", "~", "null", "true",
    "yes", ".nan", ".inf", "-.inf", "1e400", "0x1F", "0o17", "9" * 50, "-1", "0", "3.5",
    "2001-12-14", "redis://:pw@h/x", "redis://h/-1", "\t", "\x00", "\ufeff", "\x85", "\u2028",
    "\ud800", "é",
])
YAMLISH = st.lists(FRAGMENTS, max_size=60).map("".join)

SCALARS = (st.none() | st.booleans() | st.integers() | st.floats()
           | st.text(max_size=20) | st.sampled_from(NAMES))
KEYS = st.sampled_from(NAMES) | st.text(max_size=10) | st.integers(-5, 5)
TREES = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4)
                     | st.dictionaries(KEYS, kids, max_size=4), max_leaves=30)


def dump(tree) -> str:
    from io import StringIO

    from ruamel.yaml import YAML

    out = StringIO()
    YAML(typ="safe", pure=True).dump({"sessions": tree} if not isinstance(tree, dict) else tree,
                                     out)
    return out.getvalue()


@st.composite
def alias_bombs(draw) -> str:
    levels, fan = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels + 1):
        items = ", ".join([f"*a{i - 1}"] * fan)
        lines.append(f"a{i}: &a{i} [{items}]" if draw(st.booleans())
                     else f"a{i}: &a{i} {{{', '.join(f'k{j}: *a{i - 1}' for j in range(fan))}}}")
    return "\n".join(lines) + "\n"


@st.composite
def deep_nesting(draw) -> str:
    depth = draw(st.integers(1, 3000))
    style = draw(st.sampled_from(["list", "map", "block", "unclosed"]))
    if style == "list":
        return "a: " + "[" * depth + "]" * depth + "\n"
    if style == "map":
        return "a: " + "{k: " * depth + "1" + "}" * depth + "\n"
    if style == "block":
        depth = min(depth, 300)
        return "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "x\n"
    return "sessions: " + "[" * depth + "\n"


@pytest.fixture
def path(tmp_path) -> Path:
    """The one config file a test rewrites for each example."""
    return tmp_path / "config.yaml"


def check(path: Path, content: str | bytes) -> None:
    if isinstance(content, str):
        content = content.encode("utf-8", "surrogatepass")
    path.write_bytes(content)
    try:
        config = load({"HOME": str(path.parent), "AISH_CONFIG": str(path)})
    except ConfigError as exc:
        message = str(exc)
        assert str(path) in message and "\n" not in message, message
    else:
        assert all(str(path) in w and "\n" not in w for w in config.warnings), config.warnings


@FUZZ
@given(text=YAMLISH)
def test_yamlish_text(path, text):
    check(path, text)


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes(path, data):
    check(path, data)


@FUZZ
@given(tree=TREES)
def test_random_structures(path, tree):
    check(path, dump(tree))


@FUZZ
@given(text=alias_bombs() | deep_nesting())
def test_alias_bombs_and_deep_nesting(path, text):
    check(path, text)


@FUZZ
@given(name=st.sampled_from(sorted(ENV_KEYS)),
       value=st.text(min_size=1, max_size=40) | st.sampled_from(
           ["9" * 5000, "nan", "-nan", "inf", "1e400", "-0", "0", "\udcff", "1_000", "٣"]))
def test_environment_values(tmp_path, name, value):
    try:
        load({"HOME": str(tmp_path), name: value})
    except ConfigError as exc:
        assert f"environment {name}" in str(exc) and "\n" not in str(exc), str(exc)
