"""Anthropic's Messages API through the official `anthropic` SDK.

Structured output asks for `output_config.format` (a JSON schema; Anthropic's structured outputs); a model or
endpoint that refuses it (HTTP 400 naming it) is asked in words instead, for the rest of this object's life. The
reply is parsed and validated either way. Plain completion sends the prompt as one user message (the API has
no completion endpoint). This SDK version takes no temperature/top_p/seed: those parameters are not sent.

SDK retries are off (the team retries); the key comes from the environment only; errors are redacted.
"""

from __future__ import annotations

import time
from typing import Any

from cet.llm.base import Completion, EndpointUnreachable, GenerationParams, LLMError, LLMTimeout, Message
from cet.llm.providers import Prices, as_prices, header_dict, one_line, require_key, status_detail, status_error
from cet.llm.structured import NativeSchemaFallback, parse_reply

ANTHROPIC_URL = "https://api.anthropic.com"
_STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


class AnthropicLLM:
    provider = "anthropic"
    thread_safe = True

    def __init__(self, model: str, api_key_env: str = "ANTHROPIC_API_KEY",
                 prices: Prices | tuple[float, float] | None = None, *, base_url: str | None = None,
                 name: str | None = None, timeout_s: float = 120.0, max_retries: int = 0) -> None:
        import anthropic

        self.model = model
        self.name = name or f"anthropic:{model}"
        self.base_url = (base_url or ANTHROPIC_URL).rstrip("/")
        self.prices = as_prices(prices)
        self._key = require_key(api_key_env, "Anthropic")
        self._anthropic = anthropic
        self.client = anthropic.Anthropic(api_key=self._key, base_url=self.base_url, timeout=timeout_s,
                                          max_retries=max_retries)
        self._structured = NativeSchemaFallback(_refused_output_config)

    def chat(self, messages: list[Message], params: GenerationParams) -> Completion:
        return self._structured.chat(messages, params,
                                     lambda turns, schema, native: self._create(turns, params, schema, native))

    def complete(self, prompt: str, params: GenerationParams) -> Completion:
        return self.chat([Message("user", prompt)], params)

    def close(self) -> None:
        self.client.close()

    def _create(self, messages: list[Message], params: GenerationParams, schema: dict[str, Any] | None,
                native: bool) -> Completion:
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        turns = [{"role": m.role, "content": m.content} for m in messages if m.role != "system"]
        kwargs: dict[str, Any] = {"model": self.model, "max_tokens": params.max_tokens, "messages": turns,
                                  "timeout": params.timeout_s}
        if system:
            kwargs["system"] = system
        if params.stop:
            kwargs["stop_sequences"] = list(params.stop)
        if schema is not None and native:
            kwargs["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        start = time.perf_counter()
        reply = self._call(**kwargs)
        latency = time.perf_counter() - start
        text = "".join(getattr(block, "text", "") for block in (reply.content or [])
                       if getattr(block, "type", None) == "text")
        usage = reply.usage
        prompt_tokens = int(getattr(usage, "input_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "output_tokens", 0) or 0)
        extra: dict[str, Any] = {"stop_reason": reply.stop_reason}
        if schema is not None:
            extra["structured"] = "output_config" if native else "prompt"
        if self.prices is None:
            extra["cost_known"] = False
        completion = Completion(
            text=text, model=self.name, provider=self.provider, prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens, latency_s=latency,
            cost_usd=self.prices.cost(prompt_tokens, completion_tokens) if self.prices else 0.0,
            finish_reason=_STOP_REASONS.get(reply.stop_reason or "", reply.stop_reason), extra=extra,
        )
        if schema is not None:
            completion.parsed = parse_reply(text, schema, completion.finish_reason)
        return completion

    def _call(self, **kwargs: Any) -> Any:
        anthropic = self._anthropic
        try:
            return self.client.messages.create(**kwargs)
        except anthropic.APITimeoutError:
            raise LLMTimeout(f"{self.name}: no reply from {self.base_url} within {kwargs.get('timeout')} s") from None
        except anthropic.APIConnectionError as e:
            cause = one_line(e.__cause__ or e, self._key)
            raise EndpointUnreachable(f"cannot reach {self.base_url} for model {self.model!r}: {cause}") from None
        except anthropic.APIStatusError as e:
            status = 429 if isinstance(e, anthropic.RateLimitError) else e.status_code
            detail = one_line(status_detail(e), self._key)
            raise status_error(self.provider, self.model, status, detail,
                               header_dict(getattr(e.response, "headers", None))) from None
        except anthropic.AnthropicError as e:
            raise LLMError(f"{self.name}: {type(e).__name__}: {one_line(e, self._key)}") from None


def _refused_output_config(error: LLMError) -> bool:
    text = str(error).lower()
    return "http 400" in text and any(word in text for word in ("output_config", "output_format", "structured output"))
