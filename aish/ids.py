"""Session ids: generation and the one check every id passes before it is used.

An id never becomes a path on its own: stores build paths from ids only after `check_id`.
"""

import re

from aish.errors import UsageError

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# A branch that another device moved apart from this one's is kept beside it as NAME@DEVICE.
BRANCH_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}(@[A-Za-z0-9][A-Za-z0-9_-]{0,23})?")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def new_id() -> str:
    """A generated id such as ``sess_k3f9x2`` (36^6 ≈ 2e9 values; callers retry on a clash)."""
    import secrets  # here, not at the top: loading it costs reads that never make an id

    return "sess_" + "".join(secrets.choice(_ALPHABET) for _ in range(6))


def check_id(value: str, what: str = "session id") -> str:
    """Return ``value`` if it is a valid id, else raise a UsageError that shows it safely."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value) or ".." in value:
        shown = repr(value)[:80]
        raise UsageError(
            f"invalid {what} {shown}",
            hint="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return value


def check_branch_name(value: str) -> str:
    """Return ``value`` if it is a valid branch name (an id, or ``NAME@DEVICE``)."""
    if not isinstance(value, str) or not BRANCH_PATTERN.fullmatch(value) or ".." in value:
        raise UsageError(
            f"invalid branch name {repr(value)[:80]}",
            hint="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return value
