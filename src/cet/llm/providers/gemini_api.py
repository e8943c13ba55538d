"""Google's Gemini API through the official `google-genai` SDK.

Structured output: `response_mime_type="application/json"` with `response_json_schema` (a plain JSON schema);
the reply is parsed and validated all the same. Plain completion sends the prompt as one user turn. Assistant
messages are sent as the "model" role; system messages become the system instruction.

The SDK's retries are off (the team retries); the key comes from the environment only (sent in a header, not
the URL); errors are redacted.
"""

from __future__ import annotations

import time
from typing import Any

from cet.llm.base import Completion, EndpointUnreachable, GenerationParams, LLMError, LLMTimeout, Message
from cet.llm.providers import Prices, as_prices, header_dict, one_line, require_key, status_error
from cet.llm.structured import check_schema, parse_reply

GEMINI_URL = "https://generativelanguage.googleapis.com"
_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}


def _http_module() -> Any:
    try:
        import httpx2 as http
    except ImportError:  # older google-genai releases use httpx
        import httpx as http  # type: ignore[no-redef]
    return http


class GeminiLLM:
    provider = "gemini"
    thread_safe = True

    def __init__(self, model: str, api_key_env: str = "GEMINI_API_KEY",
                 prices: Prices | tuple[float, float] | None = None, *, base_url: str | None = None,
                 name: str | None = None, timeout_s: float = 120.0) -> None:
        from google import genai
        from google.genai import errors, types

        self.model = model
        self.name = name or f"gemini:{model}"
        self.base_url = (base_url or GEMINI_URL).rstrip("/")
        self.prices = as_prices(prices)
        self._key = require_key(api_key_env, "Gemini")
        self._types = types
        self._errors = errors
        self._http = _http_module()
        options = types.HttpOptions(base_url=self.base_url, timeout=int(timeout_s * 1000))
        self.client = genai.Client(api_key=self._key, http_options=options)

    def chat(self, messages: list[Message], params: GenerationParams) -> Completion:
        types = self._types
        schema = check_schema(params.json_schema) if params.json_schema is not None else None
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        contents = [types.Content(role="model" if m.role == "assistant" else "user", parts=[types.Part(text=m.content)])
                    for m in messages if m.role != "system"]
        config: dict[str, Any] = {
            "temperature": params.temperature, "top_p": params.top_p, "seed": params.seed,
            "max_output_tokens": params.max_tokens,
            "http_options": types.HttpOptions(base_url=self.base_url, timeout=int(params.timeout_s * 1000)),
        }
        if system:
            config["system_instruction"] = system
        if params.stop:
            config["stop_sequences"] = list(params.stop)
        if schema is not None:
            config["response_mime_type"] = "application/json"
            config["response_json_schema"] = schema
        start = time.perf_counter()
        reply = self._call(contents, types.GenerateContentConfig(**config), params.timeout_s)
        latency = time.perf_counter() - start
        text = _text(reply)
        usage = getattr(reply, "usage_metadata", None)
        prompt_tokens = int(getattr(usage, "prompt_token_count", 0) or 0)
        completion_tokens = int(getattr(usage, "candidates_token_count", 0) or 0) + \
            int(getattr(usage, "thoughts_token_count", 0) or 0)  # thinking tokens are billed as output
        candidates = getattr(reply, "candidates", None) or []
        raw_finish = getattr(candidates[0], "finish_reason", None) if candidates else None
        finish_name = getattr(raw_finish, "name", None) or (str(raw_finish) if raw_finish else None)
        extra: dict[str, Any] = {}
        if schema is not None:
            extra["structured"] = "response_json_schema"
        if self.prices is None:
            extra["cost_known"] = False
        completion = Completion(
            text=text, model=self.name, provider=self.provider, prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens, latency_s=latency,
            cost_usd=self.prices.cost(prompt_tokens, completion_tokens) if self.prices else 0.0,
            finish_reason=_FINISH.get(finish_name or "", finish_name.lower() if finish_name else None), extra=extra,
        )
        if schema is not None:
            completion.parsed = parse_reply(text, schema, completion.finish_reason)
        return completion

    def complete(self, prompt: str, params: GenerationParams) -> Completion:
        return self.chat([Message("user", prompt)], params)

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if callable(close):
            close()

    def _call(self, contents: list[Any], config: Any, timeout_s: float) -> Any:
        http = self._http
        try:
            return self.client.models.generate_content(model=self.model, contents=contents, config=config)
        except self._errors.APIError as e:
            detail = one_line(getattr(e, "message", None) or e, self._key)
            raise status_error(self.provider, self.model, getattr(e, "code", None), detail,
                               header_dict(getattr(getattr(e, "response", None), "headers", None))) from None
        except http.TimeoutException:
            raise LLMTimeout(f"{self.name}: no reply from {self.base_url} within {timeout_s:g} s") from None
        except http.TransportError as e:
            raise EndpointUnreachable(f"cannot reach {self.base_url} for model {self.model!r}: "
                                      f"{one_line(e, self._key)}") from None
        except (ValueError, TypeError) as e:  # the SDK's own request validation
            raise LLMError(f"{self.name}: {type(e).__name__}: {one_line(e, self._key)}") from None


def _text(reply: Any) -> str:
    """The reply's text parts joined (thought parts left out); '' when the reply has none (e.g. blocked)."""
    candidates = getattr(reply, "candidates", None) or []
    if not candidates or not getattr(candidates[0], "content", None):
        return ""
    parts = candidates[0].content.parts or []
    return "".join(p.text for p in parts if getattr(p, "text", None) and not getattr(p, "thought", False))
