"""Tokens and cost of stored messages: what the provider reported, else an estimate marked as
one, priced from the config's ``prices`` table (USD per million tokens). Pure: no store, no
provider."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from aish.context import estimate_tokens
from aish.messages import ASSISTANT, Message
from aish.records import Record

PER = 1_000_000  # prices are per million tokens
COST_DIGITS = 6  # a millionth of a dollar: one token at the cheapest real prices


def message_tokens(m: Message) -> tuple[int, bool]:
    """A message's own tokens and whether they are estimated: a reply's completion tokens as
    its endpoint reported them, else an estimate from its text."""
    if m.role == ASSISTANT and m.usage is not None:
        return m.usage.completion_tokens, False
    return estimate_tokens(m.content), True


def shown_tokens(m: Message) -> str:
    """``12`` when reported, ``~12`` when estimated."""
    count, estimated = message_tokens(m)
    return f"~{count}" if estimated else str(count)


class Totals(Record):
    """Input and output tokens of some replies, how many of them are estimates, and the cost of
    the priced ones (None while no reply had a known price)."""

    _fields = ("input", "output", "estimated", "cost", "replies")

    def __init__(self, input: int = 0, output: int = 0, estimated: int = 0,
                 cost: float | None = None, replies: int = 0) -> None:
        self.input = input
        self.output = output
        self.estimated = estimated
        self.cost = cost
        self.replies = replies

    @property
    def tokens(self) -> int:
        return self.input + self.output

    @property
    def estimated_share(self) -> int:
        """Percent of the tokens that are estimates (0 when there are none)."""
        return round(100 * self.estimated / self.tokens) if self.tokens else 0

    def add(self, reply: Message, prompt: Message | None, price: dict | None) -> None:
        """Count one reply; ``prompt``: the message it answers, for estimating the input of a
        reply whose usage was not reported."""
        if reply.usage is not None:
            tokens_in, tokens_out = reply.usage.prompt_tokens, reply.usage.completion_tokens
        else:
            tokens_in = estimate_tokens(prompt.content) if prompt is not None else 0
            tokens_out = estimate_tokens(reply.content)
            self.estimated += tokens_in + tokens_out
        self.input += tokens_in
        self.output += tokens_out
        self.replies += 1
        if price is not None:
            self.cost = (self.cost or 0.0) + cost_of(tokens_in, tokens_out, price)

    def merge(self, other: Totals) -> None:
        self.input += other.input
        self.output += other.output
        self.estimated += other.estimated
        self.replies += other.replies
        if other.cost is not None:
            self.cost = (self.cost or 0.0) + other.cost

    def to_json(self) -> dict:
        return {"input": self.input, "output": self.output, "total": self.tokens,
                "estimated": self.estimated, "estimated_share": self.estimated_share,
                # Summed unrounded, rounded once: many tiny costs still add up.
                "cost": None if self.cost is None else round(self.cost, COST_DIGITS)}


def cost_of(tokens_in: int, tokens_out: int, price: dict) -> float:
    return (tokens_in * price["input"] + tokens_out * price["output"]) / PER


ProviderOf = Callable[[str], "str | None"]  # a specialist's name -> its provider's


def price_for(m: Message, prices: dict, provider_of: ProviderOf) -> dict | None:
    return price_of(m.model, m.ai, prices, provider_of)


def price_of(model: str | None, ai: str, prices: dict, provider_of: ProviderOf) -> dict | None:
    """The price of a reply: by the model that wrote it, else by the name of its specialist's
    provider (asked of ``provider_of`` only then: finding it loads the provider configuration)."""
    if model and model in prices:
        return prices[model]
    if not prices:
        return None
    provider = provider_of(ai)
    return prices.get(provider) if provider else None


def totals(messages: Iterable[Message], prices: dict, provider_of: ProviderOf,
           key: Callable[[Message], str] | None = None) -> dict[str, Totals]:
    """Totals of the replies among ``messages``, grouped by ``key(reply)`` (one group, "", when
    no key is given). A reply's prompt is its parent when that is among ``messages``."""
    messages = list(messages)
    by_id = {m.id: m for m in messages}
    out: dict[str, Totals] = {}
    for m in messages:
        if m.role != ASSISTANT or m.note:
            continue
        group = out.setdefault(key(m) if key else "", Totals())
        group.add(m, by_id.get(m.parent or ""), price_for(m, prices, provider_of))
    return out


def total(messages: Iterable[Message], prices: dict, provider_of: ProviderOf) -> Totals:
    return totals(messages, prices, provider_of).get("", Totals())


def priced(groups: dict[tuple[str, str], list[int]], prices: dict,
           provider_of: ProviderOf) -> Totals:
    """Totals of reply tokens grouped by (model or "", specialist) as `aish.tallies` keeps
    them: [input, output, estimated, replies] per group, each group priced as a whole."""
    out = Totals()
    for (model, ai), (tokens_in, tokens_out, estimated, replies) in groups.items():
        out.input += tokens_in
        out.output += tokens_out
        out.estimated += estimated
        out.replies += replies
        price = price_of(model or None, ai, prices, provider_of)
        if price is not None:
            out.cost = (out.cost or 0.0) + cost_of(tokens_in, tokens_out, price)
    return out


GROUPS: dict[str, Callable[[Message], str]] = {
    "ai": lambda m: f"{m.ai}-ai",
    "model": lambda m: m.model or "unknown",
    "day": lambda m: time.strftime("%Y-%m-%d", time.gmtime(m.time)),  # UTC: the same anywhere
}


def describe(t: Totals) -> str:
    """``1,234 (1,000 in, 234 out; 12% estimated), $0.0012``."""
    text = f"{t.tokens:,} ({t.input:,} in, {t.output:,} out"
    share = f"{t.estimated_share}%" if t.estimated_share else "<1%"
    text += f"; {share} estimated)" if t.estimated else ")"
    if t.cost is not None:
        text += f", {money(t.cost)}"
    return text


def from_json(t: dict) -> str:
    """:func:`describe` of totals as :meth:`Totals.to_json` wrote them."""
    return describe(Totals(t["input"], t["output"], t["estimated"], t["cost"]))


def money(usd: float) -> str:
    """Dollars to the cent, or to four significant digits below a cent."""
    if usd == 0 or usd >= 0.01:
        return f"${usd:,.2f}"
    return f"${usd:.4g}" if usd >= 1e-4 else f"${usd:.2e}"
