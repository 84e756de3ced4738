"""The roster of AI specialists: the built-in four, overridden or extended by the config file."""

from __future__ import annotations

from dataclasses import dataclass, field

from aish.errors import ConfigError, UsageError
from aish.ids import ID_PATTERN

BUILTIN: dict[str, dict] = {
    "apollo": {
        "description": "builds and debugs software",
        "persona": (
            "You are Apollo, a senior software engineer. You help people build and debug "
            "software: you ask for the error, the code and the environment when they are "
            "missing, reason from evidence, and answer with working code and the exact commands "
            "to run. You prefer small, testable steps and say plainly when you are unsure."
        ),
    },
    "athena": {
        "description": "reviews, critiques and knows",
        "persona": (
            "You are Athena, a careful reviewer and a source of knowledge. You critique designs, "
            "code and arguments: you look for bugs, security holes, unclear reasoning and missing "
            "cases, rank what you find by importance, and explain why each point matters. You "
            "are direct but fair, and you cite the principle or fact behind each judgement."
        ),
    },
    "prometheus": {
        "description": "plans and designs",
        "persona": (
            "You are Prometheus, a systems architect and planner. You turn goals into designs and "
            "plans: you name the components, their responsibilities and interfaces, the "
            "trade-offs you chose and why, the risks, and an ordered list of steps with what "
            "'done' means for each."
        ),
    },
    "hermes": {
        "description": "teaches and explains",
        "persona": (
            "You are Hermes, a patient teacher. You explain ideas step by step, starting from what "
            "the learner already knows, with small concrete examples, and you build on what was "
            "said earlier in the conversation. You end with a short question or exercise that "
            "checks understanding."
        ),
    },
}


@dataclass(frozen=True)
class Specialist:
    """A specialist of the roster: its name, persona and model settings."""

    name: str
    persona: str
    description: str = ""
    provider: str | None = None  # "openai" or "local"; None = choose by the selection order
    model: str | None = None
    settings: dict = field(default_factory=dict)  # temperature, max_tokens, ...

    @property
    def ai_name(self) -> str:
        return f"{self.name}-ai"


# Words the command line and the shell's prompt take for themselves: a specialist so named
# would be unreachable, or would hide `help`.
RESERVED = ("aish", "help", "exit", "quit")


def roster(config_specialists: dict, source: str = "config") -> dict[str, Specialist]:
    """Built-in specialists with the config's overrides and additions applied.

    ``source`` (the config file) prefixes every error, which names the key and what is expected.
    """
    merged: dict[str, dict] = {name: dict(spec) for name, spec in BUILTIN.items()}
    for name, spec in (config_specialists or {}).items():
        if not isinstance(name, str) or not ID_PATTERN.fullmatch(name) or name.endswith("-ai"):
            raise ConfigError(f"{source}: specialists: invalid specialist name {name!r}",
                              hint="use letters, digits, '.', '_' or '-', not ending in -ai")
        if name in RESERVED:
            raise ConfigError(f"{source}: specialists: {name!r} is a word of aish's own",
                              hint="the command line and the aish> prompt use it; choose "
                              "another name")
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise ConfigError(f"{source}: specialists.{name}: expected a mapping")
        for key in ("persona", "description", "model"):
            if spec.get(key) is not None and not isinstance(spec[key], str):
                raise ConfigError(f"{source}: specialists.{name}.{key}: expected a string, "
                                  f"got {spec[key]!r}")
        for key in ("temperature", "max_tokens", "top_p"):
            value = spec.get(key)
            # NaN and infinities fail the range check; huge ints would overflow a float later.
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                      or not 0 <= value <= 2**53):
                raise ConfigError(f"{source}: specialists.{name}.{key}: expected a number >= 0, "
                                  f"got {value!r}")
        merged[name] = {**merged.get(name, {}), **spec}
    out = {}
    for name, spec in merged.items():
        persona = spec.get("persona") or f"You are {name}, a helpful AI specialist."
        settings = {k: spec[k] for k in ("temperature", "max_tokens", "top_p") if k in spec}
        provider = spec.get("provider")
        if provider not in (None, "openai", "local"):
            raise ConfigError(
                f"{source}: specialists.{name}.provider: expected openai or local, "
                f"got {provider!r}")
        out[name] = Specialist(
            name=name,
            persona=str(persona),
            description=str(spec.get("description", "")),
            provider=provider,
            model=spec.get("model"),
            settings=settings,
        )
    return out


def resolve(name: str, specialists: dict[str, Specialist]) -> Specialist:
    """Find a specialist by name or AI name (`apollo` and `apollo-ai` alike)."""
    key = name[:-3] if name.endswith("-ai") else name
    if key not in specialists:
        known = ", ".join(sorted(specialists))
        raise UsageError(f"unknown specialist {name!r}", hint=f"known: {known}")
    return specialists[key]


def ai_key(name: str) -> str:
    """Normalise `apollo-ai` to `apollo` without needing the roster."""
    return name[:-3] if name.endswith("-ai") else name
