"""`cet llm ...`: talk to one model through the one LLM interface (local GGUF, transformers, or an API)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import typer

from cet.cli.common import JsonOption, console, emit_json, get_config, user_errors
from cet.errors import CetError

llm_app = typer.Typer(help="Language models behind one interface: local GGUF models (llama.cpp), transformers, "
                           "OpenAI-compatible endpoints, Anthropic, Gemini.", no_args_is_help=True)


def _load_schema(path: Path) -> dict[str, Any]:
    from cet.llm.structured import check_schema

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CetError(f"schema file not found: {path}") from None
    except IsADirectoryError:
        raise CetError(f"--schema {path} is a folder; give a JSON schema file") from None
    except OSError as e:
        raise CetError(f"cannot read schema file {path}: {e.strerror}") from None
    try:
        schema = json.loads(text)
    except ValueError as e:
        raise CetError(f"schema file {path} is not valid JSON: {e}") from None
    return check_schema(schema)


def _redacted(error: CetError, cfg: Any) -> CetError:
    """The error with any API key from the configured variables masked (providers already redact; belt and braces)."""
    from cet.llm.base import api_key, redact

    keys = [api_key(var) for var in (cfg.llm.openai_api_key_env, cfg.llm.anthropic_api_key_env,
                                     cfg.llm.gemini_api_key_env)]
    message = redact(str(error), *keys)
    if message == str(error):
        return error
    clean = type(error).__new__(type(error))
    CetError.__init__(clean, message)
    return clean


@llm_app.command("ask")
@user_errors
def ask_command(
    model: str = typer.Argument(..., help="The model: a catalog name (see `cet models list`), gguf:PATH, "
                                          "openai:MODEL, openai-compatible:URL#MODEL, anthropic:MODEL, gemini:MODEL "
                                          "or hf:PATH_OR_REPO."),
    prompt: str = typer.Argument(..., help="The question (the user message); - reads it from stdin."),
    system: str = typer.Option(None, "--system", "-s", help="A system message."),
    max_tokens: int = typer.Option(None, "--max-tokens", "-n", min=1, help="Most tokens to generate "
                                                                            "(default: config llm.max_tokens)."),
    temperature: float = typer.Option(None, "--temperature", "-t", min=0.0, help="0 is greedy (default: config)."),
    seed: int = typer.Option(None, "--seed", help="Sampling seed (default: config llm.seed)."),
    schema: Path = typer.Option(None, "--schema", help="A JSON schema file: the reply must be JSON of it "
                                                       "(constrained decoding where the provider has it)."),
    raw: bool = typer.Option(False, "--raw", help="Plain completion of the prompt (no chat template, no system)."),
    timeout: float = typer.Option(None, "--timeout", min=0.1, help="Seconds before giving up (default: config)."),
    json_out: bool = JsonOption,
) -> None:
    """Ask MODEL one question; print the reply, then tokens, latency, tokens/s and cost."""
    from cet.llm.base import GenerationParams, LLMError, Message
    from cet.llm.registry import open_llm

    cfg = get_config()
    if prompt == "-":
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise CetError("the prompt is empty")
    if raw and system:
        raise CetError("--system has no meaning with --raw (a plain completion has no messages)")
    json_schema = _load_schema(schema) if schema is not None else None
    params = GenerationParams(
        max_tokens=max_tokens or cfg.llm.max_tokens,
        temperature=cfg.llm.temperature if temperature is None else temperature,
        seed=cfg.llm.seed if seed is None else seed,
        json_schema=json_schema,
        timeout_s=timeout or cfg.llm.timeout_s,
    )
    try:
        start = time.perf_counter()
        llm = open_llm(model, cfg)
        load_s = time.perf_counter() - start
        try:
            if raw:
                completion = llm.complete(prompt, params)
            else:
                messages = ([Message("system", system)] if system else []) + [Message("user", prompt)]
                completion = llm.chat(messages, params)
        finally:
            llm.close()
    except LLMError as e:
        raise _redacted(e, cfg) from None
    completion.extra["load_s"] = round(load_s, 3)
    if json_out:
        emit_json(completion.to_dict())
        return
    sys.stdout.write(completion.text + ("" if completion.text.endswith("\n") else "\n"))
    sys.stdout.flush()
    rate = completion.tokens_per_s
    cost = f"${completion.cost_usd:.6f}" + ("" if completion.extra.get("cost_known", True) else " (prices unknown)")
    parts = [f"{completion.model} ({completion.provider})",
             f"{completion.prompt_tokens} prompt + {completion.completion_tokens} completion tokens",
             f"{completion.latency_s:.2f} s", f"{rate:.1f} tokens/s" if rate is not None else "- tokens/s", cost,
             f"finish: {completion.finish_reason}", f"load {load_s:.2f} s"]
    console.print(" · ".join(parts), highlight=False)
