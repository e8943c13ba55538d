"""The providers behind `cet.llm.base.LLM`: local GGUF models through llama.cpp (xllamacpp, in-process or on a
loopback port), local Hugging Face models through transformers, and the OpenAI(-compatible), Anthropic and Gemini
APIs. Each module imports its library only when it is used; `cet.llm.registry.open_llm` picks one from a spec.

What they share lives here: prices and cost, API keys (from the environment only), one-line error text with
every key redacted, the mapping of HTTP statuses to the LLMError family.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cet.llm.base import LLMError, RateLimited, api_key, redact


@dataclass(frozen=True)
class Prices:
    """USD per 1M tokens; cost = prompt * input / 1e6 + completion * output / 1e6."""

    input_per_1m: float = 0.0
    output_per_1m: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return round(prompt_tokens * self.input_per_1m / 1e6 + completion_tokens * self.output_per_1m / 1e6, 8)


def as_prices(prices: Prices | tuple[float, float] | None) -> Prices | None:
    if prices is None or isinstance(prices, Prices):
        return prices
    return Prices(float(prices[0]), float(prices[1]))


def require_key(env_var: str, provider: str) -> str:
    """The API key in `env_var`; an LLMError naming the variable (never a value) when it is unset or empty."""
    key = api_key(env_var)
    if key is None:
        raise LLMError(f"no API key for {provider}: set the environment variable {env_var} "
                       f"(keys are read from the environment only)")
    return key


def one_line(error: BaseException, *secrets: str | None, limit: int = 240) -> str:
    """`error` as one short line with every secret (and anything shaped like a key) replaced by ***."""
    text = " ".join(str(error).split()) or type(error).__name__
    text = redact(text, *secrets)
    return text if len(text) <= limit else text[:limit] + "..."


def status_detail(error: Any) -> str:
    """The message of an SDK's HTTP status error: the `error.message` of its JSON body when there is one (the
    OpenAI and Anthropic SDKs both carry it there), else the error's own message."""
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(error, "message", "") or error)


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from `retry-after-ms` / `retry-after` (seconds or an HTTP date); None when absent."""
    if not headers:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            from email.utils import parsedate_to_datetime

            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def status_error(provider: str, model: str, status: int | None, detail: str,
                 headers: Mapping[str, str] | None = None) -> LLMError:
    """The LLMError for an HTTP error status from a provider (`detail` must already be redacted)."""
    where = f"{provider} model {model!r}"
    if status == 429:
        wait = retry_after(headers)
        hint = f"; retry after {wait:.1f} s" if wait is not None else ""
        return RateLimited(f"{where}: rate limited (HTTP 429){hint}: {detail}", wait)
    if status in (401, 403):
        return LLMError(f"{where}: the API key was refused (HTTP {status}): {detail}")
    if status == 404:
        return LLMError(f"{where}: not found (HTTP 404; is the model name right?): {detail}")
    return LLMError(f"{where}: HTTP {status}: {detail}")


def header_dict(headers: Any) -> dict[str, str]:
    """A plain lower-cased dict of an httpx/requests headers object (or None)."""
    if not headers:
        return {}
    try:
        return {str(k).lower(): str(v) for k, v in headers.items()}
    except AttributeError:
        return {}
