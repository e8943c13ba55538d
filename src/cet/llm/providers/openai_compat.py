"""OpenAI and every OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp's server, Together, ...) through the
official `openai` client: chat and plain completions, structured output, errors mapped onto the LLMError family.

Structured output asks for `response_format: {"type": "json_schema", ...}` (OpenAI, vLLM and llama.cpp honour it);
an endpoint that refuses the parameter (HTTP 400/422 naming it) is asked in words instead, for the rest of this
object's life. Plain completions always ask in words (there is no portable schema parameter there). Either way
the reply is parsed and validated (`cet.llm.structured`).

The client's own retries are off (`max_retries=0`): the team retries rate limits, timeouts and unreachable
endpoints with its own backoff (`llm.retries`). Keys come from the environment only, and every error message is
passed through `redact` with the key.
"""

from __future__ import annotations

import time
from typing import Any

from cet.llm.base import (
    Completion,
    EndpointUnreachable,
    GenerationParams,
    LLMError,
    LLMTimeout,
    Message,
    api_key,
)
from cet.llm.providers import Prices, as_prices, header_dict, one_line, status_detail, status_error
from cet.llm.providers import require_key as key_from_env
from cet.llm.structured import (
    NativeSchemaFallback,
    check_schema,
    parse_reply,
    prompt_with_schema,
)

OPENAI_URL = "https://api.openai.com/v1"


class OpenAICompatibleLLM:
    """A model behind an OpenAI-compatible API. `base_url` None: OpenAI itself (a key is then required);
    another URL: any compatible server (the key is optional, `require_key` to insist)."""

    provider = "openai"
    thread_safe = True

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 prices: Prices | tuple[float, float] | None = None, *, name: str | None = None,
                 require_key: bool | None = None, timeout_s: float = 120.0, max_retries: int = 0) -> None:
        import openai

        self.model = model
        self.base_url = (base_url or OPENAI_URL).rstrip("/")
        self.official = base_url is None or self.base_url.startswith(OPENAI_URL)
        self.name = name or (f"openai:{model}" if self.official else f"openai-compatible:{self.base_url}#{model}")
        self.prices = as_prices(prices)
        self.api_key_env = api_key_env
        needs_key = self.official if require_key is None else require_key
        self._key = key_from_env(api_key_env, "OpenAI") if needs_key else api_key(api_key_env)
        self._openai = openai
        self.client = openai.OpenAI(api_key=self._key or "not-needed", base_url=self.base_url, timeout=timeout_s,
                                    max_retries=max_retries)
        self._structured = NativeSchemaFallback(_refused_response_format)

    # ---- the LLM interface

    def chat(self, messages: list[Message], params: GenerationParams) -> Completion:
        return self._structured.chat(
            messages, params, lambda turns, schema, native: self._chat(turns, params, schema, response_format=native))

    def complete(self, prompt: str, params: GenerationParams) -> Completion:
        schema = check_schema(params.json_schema) if params.json_schema is not None else None
        if schema is not None:
            prompt = prompt_with_schema(prompt, schema)
        kwargs = self._sampling(params, chat=False)
        start = time.perf_counter()
        reply = self._call(self.client.completions.create, model=self.model, prompt=prompt, **kwargs)
        latency = time.perf_counter() - start
        choice = reply.choices[0] if reply.choices else None
        text = (choice.text if choice else "") or ""
        return self._completion(text, reply, choice, latency, schema, "prompt" if schema is not None else None)

    def close(self) -> None:
        self.client.close()

    # ---- internals

    def _sampling(self, params: GenerationParams, chat: bool) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"temperature": params.temperature, "top_p": params.top_p, "seed": params.seed,
                                  "timeout": params.timeout_s}
        # OpenAI's newer models take max_completion_tokens on chat; compatible servers all know max_tokens
        kwargs["max_completion_tokens" if chat and self.official else "max_tokens"] = params.max_tokens
        if params.stop:
            kwargs["stop"] = list(params.stop)
        return kwargs

    def _chat(self, messages: list[Message], params: GenerationParams, schema: dict[str, Any] | None,
              response_format: bool) -> Completion:
        kwargs = self._sampling(params, chat=True)
        if schema is not None and response_format:
            kwargs["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "reply", "schema": schema, "strict": False}}
        start = time.perf_counter()
        reply = self._call(self.client.chat.completions.create, model=self.model,
                           messages=[{"role": m.role, "content": m.content} for m in messages], **kwargs)
        latency = time.perf_counter() - start
        choice = reply.choices[0] if reply.choices else None
        text = (choice.message.content if choice and choice.message else "") or ""
        mode = None if schema is None else ("response_format" if response_format else "prompt")
        return self._completion(text, reply, choice, latency, schema, mode)

    def _completion(self, text: str, reply: Any, choice: Any, latency: float, schema: dict[str, Any] | None,
                    mode: str | None) -> Completion:
        usage = getattr(reply, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        extra: dict[str, Any] = {"base_url": self.base_url}
        if mode:
            extra["structured"] = mode
        if self.prices is None:
            extra["cost_known"] = False
        completion = Completion(
            text=text, model=self.name, provider=self.provider, prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens, latency_s=latency,
            cost_usd=self.prices.cost(prompt_tokens, completion_tokens) if self.prices else 0.0,
            finish_reason=getattr(choice, "finish_reason", None), extra=extra,
        )
        if schema is not None:
            completion.parsed = parse_reply(text, schema, completion.finish_reason)
        return completion

    def _call(self, method: Any, **kwargs: Any) -> Any:
        openai = self._openai
        try:
            return method(**kwargs)
        except openai.APITimeoutError:
            raise LLMTimeout(f"{self.name}: no reply from {self.base_url} within {kwargs.get('timeout')} s") from None
        except openai.APIConnectionError as e:
            cause = one_line(e.__cause__ or e, self._key)
            raise EndpointUnreachable(f"cannot reach {self.base_url} for model {self.model!r}: {cause}") from None
        except openai.APIStatusError as e:
            detail = one_line(status_detail(e), self._key)
            raise status_error(self.provider, self.model, e.status_code, detail,
                               header_dict(getattr(e.response, "headers", None))) from None
        except openai.OpenAIError as e:
            raise LLMError(f"{self.name}: {type(e).__name__}: {one_line(e, self._key)}") from None


def _refused_response_format(error: LLMError) -> bool:
    text = str(error).lower()
    return any(f"http {code}" in text for code in (400, 422)) and ("response_format" in text or
                                                                   "json_schema" in text)
