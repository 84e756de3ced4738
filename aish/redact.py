"""Take secrets out of text that leaves aish (exports, the drawn history).

People paste keys into conversations and models repeat them; an export is often shared. What
looks like a credential is replaced by ``[REDACTED:kind]`` and counted per kind, so the user is
told what was removed. Storage keeps the raw text; ``--no-redact`` shows it unchanged.

The patterns are linear (bounded, no nested repetition), so hostile text cannot make them slow.
"""

from __future__ import annotations

import re
from collections import Counter

# Checked in order after PEM blocks (which may contain anything): the specific key shapes, then
# generic assignments, whose value may itself be one of the shapes above.
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{1,64}-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]{1,64}-----")
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")),
    ("openai-key", re.compile(r"\bsk-[A-Za-z0-9_-]{16,}")),
    ("aws-key", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")),
    ("github-token", re.compile(r"\b(?:gh[pousr]|github_pat)_[A-Za-z0-9_]{20,}")),
    ("slack-token", re.compile(r"\bxox[bpas]-[A-Za-z0-9-]{10,}")),
    ("assignment", re.compile(
        r"\b([A-Za-z0-9]{1,64}(?:_[A-Za-z0-9]{1,64}){0,8}_(?:KEY|TOKEN|SECRET|PASSWORD))\b"
        r"(\s{0,4}[=:]\s{0,4})(['\"]?)([^\s'\";,]{4,})\3", re.IGNORECASE)),
)


def redact(text: str, counts: Counter | None = None) -> str:
    """``text`` with every secret replaced; each one found is added to ``counts`` by kind."""
    text = _redact_pem(text, counts)
    for kind, pattern in _PATTERNS:
        if kind == "assignment":
            def keep_name(match: re.Match[str]) -> str:
                if match.group(4).startswith("[REDACTED:"):
                    return match.group(0)  # its value was already taken out above
                if counts is not None:
                    counts["assignment"] += 1
                quote = match.group(3)
                return f"{match.group(1)}{match.group(2)}{quote}[REDACTED:assignment]{quote}"

            text = pattern.sub(keep_name, text)
            continue
        text, found = pattern.subn(f"[REDACTED:{kind}]", text)
        if counts is not None and found:
            counts[kind] += found
    return text


def _redact_pem(text: str, counts: Counter | None) -> str:
    # A scan rather than one lazy regex: a text of many BEGIN lines and no END must stay linear.
    out, at = [], 0
    while begin := _PEM_BEGIN.search(text, at):
        end = _PEM_END.search(text, begin.end())
        if end is None:  # no later BEGIN has an END either
            break
        out += [text[at:begin.start()], "[REDACTED:pem]"]
        at = end.end()
        if counts is not None:
            counts["pem"] += 1
    return "".join(out) + text[at:] if out else text


class Redactor:
    """One redaction pass over a whole output, or none (``enabled=False``)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.counts: Counter = Counter()

    def __call__(self, text: str) -> str:
        return redact(text, self.counts) if self.enabled else text

    def report(self) -> str | None:
        """What was removed, for stderr (None when nothing was)."""
        if not self.counts:
            return None
        parts = ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts.items()))
        return f"Redacted {sum(self.counts.values())} secret(s): {parts} (--no-redact shows them)"
