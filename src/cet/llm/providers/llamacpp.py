"""Local GGUF models through llama.cpp, in-process, with xllamacpp (prebuilt CPU wheels; no compiler needed).

- `LlamaCppEngine`: one loaded model, an `xllamacpp.Server`. Requests go in as OpenAI-shaped dicts
  (`handle_chat_completions` / `handle_completions`), streamed into a callback so a request past its timeout
  is cancelled (the callback returns True) instead of running on. Thread-safe: llama.cpp queues requests into
  its slots. A Server always serves the same model on a loopback HTTP port as well; an engine made for
  in-process use locks that port with a random API key nobody is told.
- `LlamaCppLLM`: the `LLM` interface over an engine: chat (the model's own chat template) and plain completion,
  token counts from llama.cpp's usage, latency measured around the call, cost 0. Structured output is
  grammar-constrained decoding from the JSON schema (llama.cpp's `json_schema`), then parsed and validated;
  a schema llama.cpp cannot turn into a grammar falls back to asking in words (and is still validated).
- `LlamaCppServer`: the model on an OpenAI-compatible endpoint on 127.0.0.1 (a free port by default), as a
  context manager: for tests and for users who want a local endpoint (`openai-compatible:URL#MODEL`).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from cet.llm.base import (
    STREAM_SINK,
    Completion,
    GenerationParams,
    LLMError,
    LLMTimeout,
    Message,
    ModelUnavailable,
)
from cet.llm.structured import check_schema, parse_reply, prompt_with_schema, with_schema_instruction

GGUF_MAGIC = b"GGUF"
_UNCLOSABLE: list[Any] = []  # servers whose request loop may not have started: destroying them could hang
Kind = Literal["chat", "completion"]


def check_gguf(model_path: str | Path) -> Path:
    """`model_path` if it is a readable GGUF file; else ModelUnavailable saying what is wrong."""
    path = Path(model_path).expanduser()
    if not path.exists():
        raise ModelUnavailable(f"model file {path} does not exist")
    if not path.is_file():
        raise ModelUnavailable(f"model path {path} is not a file")
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelUnavailable(f"cannot read model file {path}: {e.strerror}") from None
    if magic != GGUF_MAGIC:
        raise ModelUnavailable(f"{path} is not a GGUF file (it starts with {magic!r}, not {GGUF_MAGIC!r})")
    return path


def _import_xllamacpp() -> Any:
    # the wheel's OpenMP threads spin while they wait; with anything else on the cores that collapses decoding
    # (measured at load 4.4, 2 threads: 1.1 tokens/s spinning, 13.8 passive). Set before the library loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import xllamacpp
    except ImportError as e:
        raise ModelUnavailable(f"xllamacpp is not installed ({e}): pip install -r requirements.txt") from None
    return xllamacpp


class LlamaCppEngine:
    """One GGUF model loaded by llama.cpp. `load_s`: seconds the load took."""

    def __init__(self, model_path: str | Path, n_threads: int = 2, n_ctx: int = 4096, *, n_parallel: int = 1,
                 host: str = "127.0.0.1", port: int = 0, api_key: str | None = None, lock_http: bool = True,
                 alias: str | None = None, verbosity: int = 0,
                 lora: Sequence[tuple[str | Path, float]] = ()) -> None:
        """`lora`: GGUF LoRA adapters (path, scale) applied on the model. `lock_http`: protect the HTTP port
        every xllamacpp Server opens with a random key (in-process use); otherwise `api_key` (None: no key)
        guards it. `verbosity`: llama.cpp's log threshold (0 silent, 1 errors, 3 info); errors reach the caller
        as LLMErrors either way."""
        self.path = check_gguf(model_path)
        xllamacpp = _import_xllamacpp()
        self._xllamacpp = xllamacpp
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        params = xllamacpp.CommonParams()
        params.model.path = str(self.path)
        params.n_ctx = n_ctx
        params.n_parallel = n_parallel
        params.cpuparams.n_threads = n_threads
        params.cpuparams_batch.n_threads = n_threads
        params.warmup = False  # the one-token request below warms up instead
        # llama.cpp's server keeps every finished prompt's KV state in a host-memory cache (8 GiB by default) for
        # reuse: ~8.6 MB more resident per request on SmolLM2 (measured), 4.4 GB after ~250 evaluation requests.
        # Nothing here reuses prompts (replies must not depend on what came before), so it is off.
        params.cache_ram_mib = 0
        params.verbosity = verbosity
        params.hostnames = [host]
        params.port = port
        params.n_threads_http = 2
        params.model_alias = {alias or self.path.name}
        if lora:
            params.lora_adapters = [xllamacpp.CommonAdapterLoraInfo(str(path), float(scale)) for path, scale in lora]
        key = secrets.token_urlsafe(24) if lock_http else api_key
        if key:
            params.api_keys = [key]
        start = time.perf_counter()
        try:
            self._server: Any = xllamacpp.Server(params)
        except (RuntimeError, ValueError) as e:
            raise ModelUnavailable(f"llama.cpp could not load {self.path} ({e}): the file may be corrupt or of an "
                                   f"architecture this xllamacpp build does not support") from None
        # One token through the request loop before anyone can close the engine: destroying an xllamacpp Server
        # whose loop thread has not started yet can hang for ever (its terminate() races start_loop()). It also
        # warms the model up.
        try:
            probe = self._server.handle_completions({"prompt": "Hello", "max_tokens": 1, "temperature": 0.0})
            failure = probe.get("error") if isinstance(probe, dict) else None
        except (RuntimeError, ValueError) as e:
            failure = str(e)
        if failure:
            _UNCLOSABLE.append(self._server)  # never destroyed: see above
            self._server = None
            raise ModelUnavailable(f"llama.cpp loaded {self.path} but cannot generate with it: {failure}")
        self.load_s = time.perf_counter() - start
        self.address: str = self._server.listening_address  # http://127.0.0.1:PORT
        self._grammar_ok: dict[str, bool] = {}
        self._lock = threading.Lock()

    def grammar_supported(self, schema: dict[str, Any]) -> bool:
        """Whether llama.cpp can turn `schema` into a grammar (cached per schema)."""
        key = json.dumps(schema, sort_keys=True)
        with self._lock:
            known = self._grammar_ok.get(key)
        if known is None:
            try:
                self._xllamacpp.json_schema_to_grammar(schema)
                known = True
            except (ValueError, RuntimeError):
                known = False
            with self._lock:
                self._grammar_ok[key] = known
        return known

    def mark_grammar_unsupported(self, schema: dict[str, Any]) -> None:
        with self._lock:
            self._grammar_ok[json.dumps(schema, sort_keys=True)] = False

    def run(self, kind: Kind, request: dict[str, Any], timeout_s: float, model: str) -> dict[str, Any]:
        """Run one request (streamed, cancelled past `timeout_s`); {"text", "finish_reason", "usage", "timings"}."""
        server = self._server
        if server is None:
            raise LLMError(f"model {model} is closed")
        request = {**request, "stream": True, "stream_options": {"include_usage": True}}
        parts: list[str] = []
        state: dict[str, Any] = {"finish_reason": None, "usage": None, "timings": None, "error": None,
                                 "timed_out": False, "failure": None}
        deadline = time.monotonic() + timeout_s
        sink = STREAM_SINK.get()  # read here: llama.cpp calls on_chunk from its own thread

        def on_chunk(chunk: Any) -> bool:
            try:
                if not isinstance(chunk, dict):
                    return False
                if "error" in chunk:
                    state["error"] = chunk["error"]
                    return True
                for choice in chunk.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content") if kind == "chat" else choice.get("text")
                    if piece:
                        parts.append(piece)
                        if sink is not None:
                            sink(piece)
                    if choice.get("finish_reason"):
                        state["finish_reason"] = choice["finish_reason"]
                if chunk.get("usage"):
                    state["usage"] = chunk["usage"]
                if chunk.get("timings"):
                    state["timings"] = chunk["timings"]
                if time.monotonic() > deadline:
                    state["timed_out"] = True
                    return True  # cancels the generation
                return False
            except Exception as e:  # noqa: BLE001 - must not escape into llama.cpp's thread
                state["failure"] = e
                return True

        handle = server.handle_chat_completions if kind == "chat" else server.handle_completions
        if sink is not None:
            sink(None)  # an attempt starts: what a failed one streamed before is not part of this answer
        try:
            handle(request, on_chunk)
        except (ValueError, RuntimeError) as e:
            raise LLMError(f"llama.cpp rejected the request to {model}: {' '.join(str(e).split())[:300]}") from None
        if state["timed_out"]:
            raise LLMTimeout(f"{model} did not finish within {timeout_s:g} s (cancelled after "
                             f"{len(parts)} streamed pieces)")
        if state["error"] is not None:
            raise _error_from(state["error"], model, self.n_ctx)
        if state["failure"] is not None:
            raise LLMError(f"reading {model}'s reply failed: {type(state['failure']).__name__}: {state['failure']}")
        if state["usage"] is None and not parts:
            raise LLMError(f"llama.cpp returned no reply from {model}")
        return {"text": "".join(parts), "finish_reason": state["finish_reason"], "usage": state["usage"] or {},
                "timings": state["timings"] or {}}

    def close(self) -> None:
        """Free the model (and stop its HTTP port); requests already running finish first."""
        self._server = None

    @property
    def closed(self) -> bool:
        return self._server is None


def _error_from(error: Any, model: str, n_ctx: int) -> LLMError:
    if not isinstance(error, dict):
        return LLMError(f"llama.cpp failed on {model}: {error}")
    message = " ".join(str(error.get("message", "")).split())[:300]
    if error.get("type") == "exceed_context_size_error":
        return LLMError(f"the prompt is too long for {model}: {error.get('n_prompt_tokens', '?')} tokens, the context "
                        f"window is {error.get('n_ctx', n_ctx)} (raise llm.n_ctx or shorten the prompt)")
    return LLMError(f"llama.cpp failed on {model} (HTTP {error.get('code', '?')} {error.get('type', '')}): {message}")


def _render_plain(messages: list[Message]) -> str:
    """Messages as a plain prompt, for a base model without a chat template."""
    lines = [f"{m.role.capitalize()}: {m.content}" for m in messages]
    return "\n\n".join(lines) + "\n\nAssistant:"


class LlamaCppLLM:
    """A GGUF model through llama.cpp in this process (see the module docstring)."""

    provider = "llamacpp"
    thread_safe = True  # llama.cpp queues concurrent requests into its slots

    def __init__(self, model_path: str | Path, name: str | None = None, n_threads: int = 2, n_ctx: int = 4096, *,
                 n_parallel: int = 1, chat_template: bool = True, verbosity: int = 0,
                 engine: LlamaCppEngine | None = None, on_close: Callable[[], None] | None = None,
                 lora: Sequence[tuple[str | Path, float]] = ()) -> None:
        """`chat_template`: False for a base model (no template): `chat` then renders the messages as a plain
        prompt. `engine`/`on_close`: a shared, already loaded engine and how to release it (the registry)."""
        self.engine = engine or LlamaCppEngine(model_path, n_threads, n_ctx, n_parallel=n_parallel,
                                               verbosity=verbosity, lora=lora)
        self.name = name or self.engine.path.stem
        self.model_path = self.engine.path
        self.chat_template = chat_template
        self._on_close = on_close if engine is not None else self.engine.close
        self._closed = False

    @property
    def load_s(self) -> float:
        return self.engine.load_s

    def chat(self, messages: list[Message], params: GenerationParams) -> Completion:
        if not self.chat_template:
            return self._run("completion", _render_plain(messages), params)
        return self._run("chat", messages, params)

    def complete(self, prompt: str, params: GenerationParams) -> Completion:
        return self._run("completion", prompt, params)

    def _run(self, kind: Kind, content: list[Message] | str, params: GenerationParams) -> Completion:
        schema = params.json_schema
        if schema is None:
            return self._request(kind, content, params, None)
        check_schema(schema)
        if self.engine.grammar_supported(schema):
            try:
                return self._request(kind, content, params, "grammar")
            except LLMError as e:
                if "json schema" not in str(e).lower():
                    raise
                self.engine.mark_grammar_unsupported(schema)  # e.g. a $ref llama.cpp cannot resolve
        # ask in words; the reply is validated all the same
        asked = prompt_with_schema(content, schema) if isinstance(content, str) else \
            with_schema_instruction(content, schema)
        return self._request(kind, asked, params, "prompt")

    def _request(self, kind: Kind, content: list[Message] | str, params: GenerationParams,
                 structured: str | None) -> Completion:
        request: dict[str, Any] = {"max_tokens": params.max_tokens, "temperature": params.temperature,
                                   "top_p": params.top_p, "seed": params.seed}
        if params.stop:
            request["stop"] = list(params.stop)
        if structured == "grammar":
            request["json_schema"] = params.json_schema
        if params.grammar is not None:
            request["grammar"] = params.grammar  # GBNF
        if isinstance(content, str):
            request["prompt"] = content
        else:
            request["messages"] = [{"role": m.role, "content": m.content} for m in content]
        start = time.perf_counter()
        reply = self.engine.run(kind, request, params.timeout_s, self.name)
        latency = time.perf_counter() - start
        usage, timings = reply["usage"], reply["timings"]
        extra: dict[str, Any] = {}
        if timings:
            extra["timings"] = {k: round(float(timings[k]), 3) for k in
                                ("prompt_ms", "predicted_ms", "prompt_per_second", "predicted_per_second")
                                if k in timings}
        if structured:
            extra["structured"] = structured
        completion = Completion(
            text=reply["text"], model=self.name, provider=self.provider,
            prompt_tokens=int(usage.get("prompt_tokens", 0)), completion_tokens=int(usage.get("completion_tokens", 0)),
            latency_s=latency, cost_usd=0.0, finish_reason=reply["finish_reason"], extra=extra,
        )
        if params.json_schema is not None:
            completion.parsed = parse_reply(completion.text, params.json_schema, completion.finish_reason)
        return completion

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._on_close is not None:
                self._on_close()

    def __enter__(self) -> LlamaCppLLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LlamaCppServer:
    """A GGUF model on an OpenAI-compatible HTTP endpoint on loopback; `with LlamaCppServer(path) as base_url:`.

    `base_url` (…/v1) is what `OpenAICompatibleLLM` and `openai-compatible:URL#MODEL` take. `api_key`: require
    this bearer key (None: no key; the port is on 127.0.0.1 only by default)."""

    def __init__(self, model_path: str | Path, n_threads: int = 2, n_ctx: int = 4096, *, n_parallel: int = 1,
                 host: str = "127.0.0.1", port: int = 0, api_key: str | None = None, alias: str | None = None,
                 verbosity: int = 0, ready_timeout_s: float = 60.0) -> None:
        self.model_path = Path(model_path)
        self.alias = alias
        self._options = {"n_threads": n_threads, "n_ctx": n_ctx, "n_parallel": n_parallel, "host": host,
                         "port": port, "api_key": api_key, "verbosity": verbosity}
        self.ready_timeout_s = ready_timeout_s
        self.engine: LlamaCppEngine | None = None

    @property
    def url(self) -> str:
        if self.engine is None:
            raise LLMError("the llama.cpp server is not running (call start() first)")
        return self.engine.address

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def model_name(self) -> str:
        return self.alias or self.model_path.name

    def start(self) -> str:
        """Load the model, wait until the port answers /health; the OpenAI base URL."""
        if self.engine is None:
            opts = self._options
            self.engine = LlamaCppEngine(self.model_path, opts["n_threads"], opts["n_ctx"],
                                         n_parallel=opts["n_parallel"], host=opts["host"], port=opts["port"],
                                         api_key=opts["api_key"], lock_http=False, alias=self.model_name,
                                         verbosity=opts["verbosity"])
            self._wait_ready()
        return self.base_url

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as reply:  # noqa: S310 - loopback
                    if reply.status == 200:
                        return
                    last = f"HTTP {reply.status}"
            except (urllib.error.URLError, OSError) as e:
                last = str(e)
            time.sleep(0.1)
        self.stop()
        raise LLMError(f"the llama.cpp server did not become ready within {self.ready_timeout_s:g} s ({last})")

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
