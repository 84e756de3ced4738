"""Where replies come from. Providers know only message types; they are imported lazily.

Selection order: flag > specialist config > global config > environment > local.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from aish.config import Config
from aish.errors import UsageError
from aish.specialists import Specialist

if TYPE_CHECKING:
    from aish.providers.base import Notify, Provider

PROVIDERS = ("openai", "local")
DEFAULT_MAX_TOKENS = 512  # every request's reply budget, unless providers.<name>.max_tokens


def choose(specialist: Specialist, config: Config, flag: str | None = None,
           env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    for choice in (flag, specialist.provider, config.providers.get("default")):
        if choice:
            if choice not in PROVIDERS:
                raise UsageError(f"unknown provider {choice!r}", hint="use openai or local")
            return choice
    if (config.providers.get("openai") or {}).get("base_url"):
        return "openai"
    if env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL"):
        return "openai"
    return "local"


def make_provider(name: str, specialist: Specialist, config: Config, model: str | None = None,
                  env: Mapping[str, str] | None = None, notify: Notify | None = None
                  ) -> Provider:
    """The provider; ``notify(kind, text)``, if given, hears about waits and retries."""
    env = os.environ if env is None else env
    settings = dict(config.providers.get(name) or {})
    provider: Provider
    if name == "openai":
        from aish.providers.openai_provider import OpenAIProvider

        provider = OpenAIProvider.from_settings(settings, specialist, env, model,
                                                str(config.file))
    else:
        from aish.providers.local import LocalProvider

        provider = LocalProvider.from_settings(settings, specialist, model)
    if notify is not None:
        provider.notify = notify
    return provider


def generation_options(settings: dict, specialist: Specialist) -> dict:
    """Generation settings: the provider's config, overridden by the specialist's."""
    options = {k: settings[k] for k in ("temperature", "max_tokens", "top_p") if k in settings}
    options.update(specialist.settings)
    return options


def cut_note(provider: Provider) -> str:
    """What a reply that stopped at the max_tokens limit is marked with."""
    limit = getattr(provider, "max_tokens", None)
    return f"[reply cut at {limit} tokens]" if limit else "[reply cut at the token limit]"
