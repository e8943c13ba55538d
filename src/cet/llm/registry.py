"""`open_llm(spec, cfg)`: one string names any model cet can talk to.

| spec | provider |
|---|---|
| `smollm2-135m-instruct` (a catalog name, see `cet models list`) | llama.cpp on the pulled, verified GGUF |
| `gguf:PATH` (or any `PATH.gguf`) | llama.cpp on a local GGUF file (no catalog check) |
| `openai:MODEL` | OpenAI, or `llm.openai_base_url` when set; key from `llm.openai_api_key_env` |
| `openai-compatible:URL#MODEL` | any OpenAI-compatible server (vLLM, Ollama, llama.cpp, Together); key optional |
| `anthropic:MODEL` | Anthropic; key from `llm.anthropic_api_key_env` |
| `gemini:MODEL` | Google Gemini; key from `llm.gemini_api_key_env` |
| `hf:PATH_OR_REPO` | transformers: a model folder, a `.gguf` file (dequantised) or a Hub id (online only) |

Local models are loaded once per process and shared: every `open_llm` of the same (file, threads, context, slots)
gets a handle on the same loaded model, and the model is freed when the last handle is closed.

A llama.cpp model gets `llm.n_parallel` slots (concurrent requests decode together in one batch; the team sends
it up to that many at once) and a context of `llm.n_ctx` x `llm.n_parallel`: llama.cpp divides its context among
the slots, so every request still has `llm.n_ctx` tokens.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cet.llm.base import LLM, LLMError

if TYPE_CHECKING:
    from cet.config import CetConfig
    from cet.llm.providers import Prices

SPEC_FORMS = ("a catalog name (e.g. smollm2-135m-instruct; see `cet models list`), gguf:PATH, openai:MODEL, "
              "openai-compatible:URL#MODEL, anthropic:MODEL, gemini:MODEL, hf:PATH_OR_REPO")


@dataclass
class _Shared:
    engine: Any
    refs: int = 0


_LOCK = threading.Lock()
_SHARED: dict[tuple[Any, ...], _Shared] = {}


def _acquire(key: tuple[Any, ...], load: Callable[[], Any]) -> tuple[Any, Callable[[], None]]:
    """The shared engine for `key` (loaded by `load` the first time) and the function that releases this hold."""
    with _LOCK:  # loads are serialised: two threads asking for one model must not load it twice
        shared = _SHARED.get(key)
        if shared is None:
            shared = _SHARED[key] = _Shared(load())
        shared.refs += 1

    def release() -> None:
        with _LOCK:
            shared.refs -= 1
            if shared.refs <= 0 and _SHARED.get(key) is shared:
                del _SHARED[key]
                shared.engine.close()

    return shared.engine, release


def loaded_models() -> list[dict[str, Any]]:
    """What is loaded and shared now: key and number of open handles."""
    with _LOCK:
        return [{"key": list(map(str, key)), "handles": s.refs} for key, s in _SHARED.items()]


def open_llm(spec: str, cfg: CetConfig, prices: Prices | tuple[float, float] | None = None) -> LLM:
    """The model `spec` names (see the module docstring), ready to call; `prices` (USD per 1M input/output tokens)
    for an API model's cost (without them its cost is reported as 0, `extra["cost_known"] = False`)."""
    spec = (spec or "").strip()
    if not spec:
        raise LLMError(f"no model given: use {SPEC_FORMS}")
    prefix, sep, rest = spec.partition(":")
    if not sep:
        if spec.lower().endswith(".gguf"):
            return _llamacpp(Path(spec), spec, cfg)
        from cet.llm.catalog import get_entry, model_path

        entry = get_entry(spec)
        return _llamacpp(model_path(entry, cfg.llm), entry.name, cfg, chat_template=entry.chat)
    kind = prefix.lower()
    rest = rest.strip()
    if not rest and kind in ("gguf", "openai", "openai-compatible", "anthropic", "gemini", "hf"):
        raise LLMError(f"model spec {spec!r} names no model after {prefix}:")
    llm = cfg.llm
    if kind == "gguf":
        return _llamacpp(Path(rest), spec, cfg)
    if kind == "openai":
        from cet.llm.providers.openai_compat import OpenAICompatibleLLM

        return OpenAICompatibleLLM(rest, llm.openai_base_url, llm.openai_api_key_env, prices, name=spec,
                                   timeout_s=llm.timeout_s)
    if kind == "openai-compatible":
        url, hash_sign, model = rest.rpartition("#")
        if not hash_sign or not url or not model:
            raise LLMError(f"model spec {spec!r}: write openai-compatible:URL#MODEL, e.g. "
                           f"openai-compatible:http://127.0.0.1:8000/v1#Qwen/Qwen2.5-Coder-0.5B-Instruct")
        if not url.startswith(("http://", "https://")):
            raise LLMError(f"model spec {spec!r}: the URL must start with http:// or https://")
        from cet.llm.providers.openai_compat import OpenAICompatibleLLM

        return OpenAICompatibleLLM(model, url, llm.openai_api_key_env, prices, name=spec, require_key=False,
                                   timeout_s=llm.timeout_s)
    if kind == "anthropic":
        from cet.llm.providers.anthropic_api import AnthropicLLM

        return AnthropicLLM(rest, llm.anthropic_api_key_env, prices, name=spec, timeout_s=llm.timeout_s)
    if kind == "gemini":
        from cet.llm.providers.gemini_api import GeminiLLM

        return GeminiLLM(rest, llm.gemini_api_key_env, prices, name=spec, timeout_s=llm.timeout_s)
    if kind == "hf":
        return _transformers(rest, spec, cfg)
    raise LLMError(f"unknown model spec {spec!r}: use {SPEC_FORMS}")


def _llamacpp(path: Path, name: str, cfg: CetConfig, chat_template: bool = True) -> LLM:
    from cet.llm.providers.llamacpp import LlamaCppEngine, LlamaCppLLM, check_gguf

    path = check_gguf(path).resolve()
    threads, slots = cfg.llm.n_threads, cfg.llm.n_parallel
    ctx = cfg.llm.n_ctx * slots  # divided among the slots: llm.n_ctx each
    engine, release = _acquire(("llamacpp", path, threads, ctx, slots),
                               lambda: LlamaCppEngine(path, threads, ctx, n_parallel=slots))
    return LlamaCppLLM(path, name, threads, ctx, n_parallel=slots, chat_template=chat_template, engine=engine,
                       on_close=release)


def _transformers(target: str, name: str, cfg: CetConfig) -> LLM:
    from cet.llm.providers.transformers_local import TransformersEngine, TransformersLLM, resolve

    source, gguf, local = resolve(target)
    where = str(Path(source).resolve()) if local else source
    threads = cfg.llm.n_threads
    engine, release = _acquire(("transformers", where, gguf, threads),
                               lambda: TransformersEngine(target, n_threads=threads))
    return TransformersLLM(target, name, threads, engine=engine, on_close=release)
