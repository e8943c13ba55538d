"""A local Hugging Face causal LM through transformers (torch, CPU): a model folder, a `.gguf` file (transformers
dequantises it into a float model; needs the `gguf` package), or a Hub id (only when online).

Chat goes through the tokenizer's chat template (a tokenizer without one gets a plain "Role: text" prompt).
Structured output is asked for in words and then parsed and validated (MalformedOutput when the reply is not
the JSON asked for): transformers has no grammar-constrained decoding. The timeout is transformers' own
`max_time` (generation stops there, and the call raises LLMTimeout). Calls are serialised by a lock (torch's
seeding is process-global), so `thread_safe` is False.

This is the provider for models cet trains itself (a saved folder); llama.cpp is much faster for inference
of the packaged GGUFs (a dequantised SmolLM2-135M takes ~30-40 s to load here, against ~1 s in llama.cpp).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cet.llm.base import Completion, GenerationParams, LLMError, LLMTimeout, Message, ModelUnavailable
from cet.llm.structured import check_schema, parse_reply, prompt_with_schema, with_schema_instruction

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def resolve(model_name_or_path: str | Path, gguf_file: str | None = None) -> tuple[str, str | None, bool]:
    """(what from_pretrained takes, the gguf file name in it or None, whether it is local)."""
    path = Path(model_name_or_path).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelUnavailable(f"{path} is a file but not a .gguf: give a model folder, a .gguf file or a Hub id")
        return str(path.parent), path.name, True
    if path.is_dir():
        return str(path), gguf_file, True
    text = str(model_name_or_path)
    if not _HUB_ID.fullmatch(text):
        raise ModelUnavailable(f"model path {path} does not exist (and it is not a Hub id like org/name)")
    return text, gguf_file, False  # a Hub id like "HuggingFaceTB/SmolLM2-135M-Instruct"


class TransformersEngine:
    """The loaded tokenizer and model; `load_s`: seconds the load took."""

    def __init__(self, model_name_or_path: str | Path, gguf_file: str | None = None, n_threads: int | None = None,
                 dtype: str | None = None) -> None:
        source, gguf, local = resolve(model_name_or_path, gguf_file)
        self.source = source
        self.gguf_file = gguf
        start = time.perf_counter()
        try:
            import torch
            import transformers
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:
            raise ModelUnavailable(f"transformers/torch are not installed ({e}): pip install -r requirements.txt") \
                from None
        if n_threads:
            torch.set_num_threads(n_threads)
        self._torch = torch
        kwargs: dict[str, Any] = {"local_files_only": local or _offline()}
        if gguf:
            kwargs["gguf_file"] = gguf
        bars = transformers.utils.logging.is_progress_bar_enabled()
        transformers.utils.logging.disable_progress_bar()
        verbosity = transformers.utils.logging.get_verbosity()
        transformers.utils.logging.set_verbosity_error()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            model_kwargs = dict(kwargs)
            if dtype:
                model_kwargs["dtype"] = getattr(torch, dtype)
            self.model = AutoModelForCausalLM.from_pretrained(source, **model_kwargs)
        except (OSError, ValueError, KeyError, RuntimeError, ImportError) as e:
            what = f"{source}/{gguf}" if gguf else source
            raise ModelUnavailable(f"transformers could not load {what}: {' '.join(str(e).split())[:300]}") from None
        finally:
            transformers.utils.logging.set_verbosity(verbosity)
            if bars:
                transformers.utils.logging.enable_progress_bar()
        self.model.eval()
        if self.tokenizer.pad_token_id is None and self.tokenizer.eos_token_id is not None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.load_s = time.perf_counter() - start
        self.lock = threading.Lock()

    def close(self) -> None:
        self.model = None
        self.tokenizer = None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


class TransformersLLM:
    """A local causal LM through transformers (see the module docstring)."""

    provider = "transformers"
    thread_safe = False

    def __init__(self, model_name_or_path: str | Path, name: str | None = None, n_threads: int | None = None, *,
                 gguf_file: str | None = None, dtype: str | None = None, engine: TransformersEngine | None = None,
                 on_close: Callable[[], None] | None = None) -> None:
        self.engine = engine or TransformersEngine(model_name_or_path, gguf_file, n_threads, dtype)
        self.name = name or f"hf:{model_name_or_path}"
        self._on_close = on_close if engine is not None else self.engine.close
        self._closed = False

    @property
    def load_s(self) -> float:
        return self.engine.load_s

    def chat(self, messages: list[Message], params: GenerationParams) -> Completion:
        schema = check_schema(params.json_schema) if params.json_schema is not None else None
        if schema is not None:
            messages = with_schema_instruction(messages, schema)
        tokenizer = self.engine.tokenizer
        if tokenizer is None:
            raise LLMError(f"model {self.name} is closed")
        turns = [{"role": m.role, "content": m.content} for m in messages]
        if getattr(tokenizer, "chat_template", None):
            inputs = tokenizer.apply_chat_template(turns, add_generation_prompt=True, return_dict=True,
                                                   return_tensors="pt")
        else:
            prompt = "\n\n".join(f"{m.role.capitalize()}: {m.content}" for m in messages) + "\n\nAssistant:"
            inputs = tokenizer(prompt, return_tensors="pt")
        return self._generate(inputs, params, schema)

    def complete(self, prompt: str, params: GenerationParams) -> Completion:
        schema = check_schema(params.json_schema) if params.json_schema is not None else None
        if schema is not None:
            prompt = prompt_with_schema(prompt, schema)
        tokenizer = self.engine.tokenizer
        if tokenizer is None:
            raise LLMError(f"model {self.name} is closed")
        return self._generate(tokenizer(prompt, return_tensors="pt"), params, schema)

    def _generate(self, inputs: Any, params: GenerationParams, schema: dict[str, Any] | None) -> Completion:
        engine = self.engine
        torch = engine._torch
        tokenizer, model = engine.tokenizer, engine.model
        if model is None:
            raise LLMError(f"model {self.name} is closed")
        sample = params.temperature > 0
        kwargs: dict[str, Any] = {"max_new_tokens": params.max_tokens, "do_sample": sample,
                                  "max_time": params.timeout_s, "pad_token_id": tokenizer.pad_token_id}
        if sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p)
        else:  # the model's generation_config may carry sampling defaults; greedy decoding ignores them
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=tokenizer)
        n_prompt = int(inputs["input_ids"].shape[1])
        with engine.lock:
            torch.manual_seed(params.seed)
            start = time.perf_counter()
            try:
                with torch.inference_mode():
                    output = model.generate(**inputs, **kwargs)
            except (RuntimeError, ValueError, IndexError) as e:
                raise LLMError(f"{self.name}: generation failed: {' '.join(str(e).split())[:300]}") from None
            latency = time.perf_counter() - start
        new_ids = output[0, n_prompt:].tolist()
        eos = _eos_ids(model, tokenizer)
        ended = bool(new_ids) and new_ids[-1] in eos
        text = tokenizer.decode(new_ids, skip_special_tokens=True)
        finish = "stop" if ended else "length"
        for stop in params.stop:  # OpenAI semantics: the reply ends before the stop string
            cut = text.find(stop)
            if cut >= 0:
                text, finish = text[:cut], "stop"
        if not ended and finish == "length" and len(new_ids) < params.max_tokens and latency >= params.timeout_s:
            raise LLMTimeout(f"{self.name} did not finish within {params.timeout_s:g} s "
                             f"({len(new_ids)} tokens generated)")
        extra: dict[str, Any] = {"structured": "prompt"} if schema is not None else {}
        completion = Completion(text=text, model=self.name, provider=self.provider, prompt_tokens=n_prompt,
                                completion_tokens=len(new_ids), latency_s=latency, cost_usd=0.0,
                                finish_reason=finish, extra=extra)
        if schema is not None:
            completion.parsed = parse_reply(text, schema, finish)
        return completion

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._on_close is not None:
                self._on_close()


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), getattr(model, "config", None)):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids
