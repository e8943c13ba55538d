"""Structured output, shared by every provider: check a JSON schema, ask for it in words where a provider cannot
constrain decoding, and turn a reply into the JSON value it must be (validated with `jsonschema`).

Providers that constrain decoding (llama.cpp grammars, OpenAI `response_format`, Gemini `response_json_schema`,
Anthropic `output_config.format`) still pass the reply through `parse_reply`: a truncated reply (max_tokens) or
a server that ignored the schema is caught here, as a `MalformedOutput` that carries the text.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from cet.llm.base import Completion, GenerationParams, LLMError, MalformedOutput, Message

_PREVIEW = 160


def check_schema(schema: Any) -> dict[str, Any]:
    """`schema` if it is a valid JSON schema (an object, valid under its own metaschema); else a clear LLMError."""
    from jsonschema import SchemaError, validators

    if not isinstance(schema, dict):
        raise LLMError(f"a JSON schema must be a JSON object, not {type(schema).__name__}")
    try:
        validators.validator_for(schema).check_schema(schema)
    except SchemaError as e:
        where = "/".join(str(p) for p in e.path) or "the top level"
        raise LLMError(f"invalid JSON schema at {where}: {e.message}") from None
    return schema


def schema_instruction(schema: dict[str, Any]) -> str:
    """The words that ask a model for JSON of `schema` (for providers without constrained decoding)."""
    return ("Reply with one JSON value and nothing else (no prose, no code fence). It must match this JSON schema:\n"
            + json.dumps(schema, ensure_ascii=False))


def with_schema_instruction(messages: list[Message], schema: dict[str, Any]) -> list[Message]:
    """`messages` with the schema instruction added to the system message (one is created when there is none)."""
    instruction = schema_instruction(schema)
    if messages and messages[0].role == "system":
        first = Message("system", f"{messages[0].content}\n\n{instruction}")
        return [first, *messages[1:]]
    return [Message("system", instruction), *messages]


def prompt_with_schema(prompt: str, schema: dict[str, Any]) -> str:
    """A plain-completion prompt that asks for JSON of `schema`."""
    return f"{schema_instruction(schema)}\n\n{prompt}\n"


def _strip_fence(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("```"):
        body = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        if body.rstrip().endswith("```"):
            body = body.rstrip()[:-3]
        return body.strip()
    return stripped


def extract_json(text: str) -> Any:
    """The JSON value in `text`: the whole text, else inside a code fence, else the first JSON object or array
    that decodes (models often wrap JSON in prose). ValueError when there is none."""
    candidate = _strip_fence(text)
    try:
        return json.loads(candidate)
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    for i, ch in enumerate(candidate):
        if ch in "{[":
            try:
                value, _ = decoder.raw_decode(candidate, i)
            except ValueError:
                continue
            return value
    raise ValueError("no JSON value found")


def _preview(text: str) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= _PREVIEW else one_line[:_PREVIEW] + "..."


def parse_reply(text: str, schema: dict[str, Any], finish_reason: str | None = None) -> Any:
    """The JSON value of a reply that must match `schema`; MalformedOutput (carrying `text`) when the reply is not
    JSON or does not validate."""
    from jsonschema import validators

    truncated = " (the reply was cut off at max_tokens)" if finish_reason == "length" else ""
    try:
        value = extract_json(text)
    except ValueError:
        raise MalformedOutput(f"the reply is not JSON{truncated}: {_preview(text)!r}", text) from None
    validator = validators.validator_for(schema)(schema)
    try:
        error = next(iter(sorted(validator.iter_errors(value), key=lambda e: str(list(e.path)))), None)
    except Exception as e:  # noqa: BLE001 - e.g. a $ref that cannot be resolved (nothing is fetched)
        raise LLMError(f"the JSON schema cannot be used to validate: {type(e).__name__}: {_preview(str(e))}") from None
    if error is not None:
        where = "/".join(str(p) for p in error.path) or "the top level"
        raise MalformedOutput(f"the reply's JSON does not match the schema at {where}: {_preview(error.message)}"
                              f"{truncated}", text)
    return value


Send = Callable[[list[Message], "dict[str, Any] | None", bool], Completion]


class NativeSchemaFallback:
    """Structured output through an API's native schema option (`send(messages, schema, native=True)`); once
    the endpoint refuses that option (`refused(error)`), the schema goes in words for good (`native=False`),
    and the reply is validated either way. Shared by the OpenAI-compatible and Anthropic providers."""

    def __init__(self, refused: Callable[[LLMError], bool]) -> None:
        self._refused = refused
        self.in_words = False
        self._lock = threading.Lock()

    def chat(self, messages: list[Message], params: GenerationParams, send: Send) -> Completion:
        schema = check_schema(params.json_schema) if params.json_schema is not None else None
        if schema is not None and not self.in_words:
            try:
                return send(messages, schema, True)
            except LLMError as e:
                if not self._refused(e):
                    raise
                with self._lock:
                    self.in_words = True
        if schema is not None:
            return send(with_schema_instruction(messages, schema), schema, False)
        return send(messages, None, False)
