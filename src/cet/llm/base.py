"""One interface for every model, local or remote (DSPy's `dspy.LM` idea): `LLM.chat` / `LLM.complete`
return a `Completion` with the text, token counts, latency and cost; structured output by JSON schema.

Errors a user can cause are `LLMError`s (CetErrors: one clear line, never a traceback); their messages
never contain an API key (`redact`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from cet.errors import CetError

Role = Literal["system", "user", "assistant"]

# Where a provider that streams (the local llama.cpp one) hands each piece of text as it is generated, when the
# caller's thread has set it (the service's proxy, to stream the answer on); None marks the start of an attempt (a
# retried request starts again). A reply from the response cache, or from a provider that does not stream, reaches
# nobody here: the caller sends the whole text itself.
STREAM_SINK: ContextVar[Callable[[str | None], None] | None] = ContextVar("cet_stream_sink", default=None)


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    json_schema: dict[str, Any] | None = None  # structured output: the reply must be JSON of this schema
    grammar: str | None = None  # constrained decoding: the reply must match this GBNF grammar (llama.cpp)
    timeout_s: float = 120.0

    def cache_key_part(self) -> dict[str, Any]:
        """What of the parameters changes the reply (the timeout does not)."""
        data = asdict(self)
        data.pop("timeout_s")
        return data


@dataclass
class Completion:
    text: str
    model: str  # catalog name
    provider: str  # llamacpp | transformers | openai | anthropic | gemini
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    cost_usd: float = 0.0
    finish_reason: str | None = None
    parsed: Any = None  # the JSON value when json_schema was given and the reply parsed
    cached: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float | None:
        return self.completion_tokens / self.latency_s if self.latency_s > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tokens_per_s": self.tokens_per_s}


class LLMError(CetError):
    """A model could not answer: missing, corrupt, unreachable, rate-limited, timed out, malformed reply."""

    exit_code = 4


class ModelUnavailable(LLMError):
    """Unknown catalog name, model file missing, or its sha256 does not match."""


class EndpointUnreachable(LLMError):
    pass


class RateLimited(LLMError):
    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class LLMTimeout(LLMError):
    pass


class MalformedOutput(LLMError):
    """The reply is not the JSON the schema asked for."""

    def __init__(self, message: str, text: str = "") -> None:
        super().__init__(message)
        self.text = text


class LLM(Protocol):
    name: str
    provider: str

    def chat(self, messages: list[Message], params: GenerationParams) -> Completion: ...

    def complete(self, prompt: str, params: GenerationParams) -> Completion: ...

    def close(self) -> None: ...


_SECRET = re.compile(r"(sk-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|sk-ant-[A-Za-z0-9_\-]{8,})")


def redact(text: str, *secrets: str | None) -> str:
    """`text` with the given secrets and anything shaped like an API key replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _SECRET.sub("***", text)


def api_key(env_var: str) -> str | None:
    """An API key from the environment (never from config files, never logged)."""
    value = os.environ.get(env_var)
    return value or None
