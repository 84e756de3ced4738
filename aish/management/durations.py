"""Durations as `--older-than` takes them: ``90s``, ``30m``, ``12h``, ``7d``, ``2w``, ``1d12h``."""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; raises ValueError with a message for the user."""
    compact = text.strip().lower().replace(" ", "")
    parts = _PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"expected a duration such as 30m, 12h, 7d or 2w, got {text[:40]!r}")
    return sum(float(number) * UNITS[unit] for number, unit in parts)


def parse_when(text: str, now: float) -> float:
    """A moment as ``--since`` takes it: a duration back from ``now`` (``7d``), or a date or
    date-time in local time (``2025-01-31``, ``2025-01-31T14:00``); raises ValueError."""
    from datetime import datetime

    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError("expected a duration such as 12h or 7d, or a date such as 2025-01-31, "
                         f"got {text[:40]!r}") from None
    return moment.timestamp()
