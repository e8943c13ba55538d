"""`cet context "TASK" [--code FILE] [--error FILE]`: engineer one context with the current CET.

The CET is the latest trained checkpoint (or `--checkpoint`); without one the command stops with one line, unless
`--base` asks for the untrained base model. A generation that fails is an error (exit 4), never an empty context.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cet.cli.common import JsonOption, console, emit_json, get_config, user_errors
from cet.errors import CetError


def _read(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CetError(f"cannot read the {what} file {path}: {e}") from None


@user_errors
def context_command(
    task: str = typer.Argument(..., help="The task: a requirement, a question, a bug report."),
    code: Path = typer.Option(None, "--code", help="A file with the code so far."),
    error: Path = typer.Option(None, "--error", help="A file with the error output or traceback."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="A CET checkpoint (default: the latest phase)."),
    base: bool = typer.Option(False, "--base", help="Use the untrained base model (no checkpoint needed)."),
    no_retrieval: bool = typer.Option(False, "--no-retrieval", help="Do not search the knowledge base."),
    json_out: bool = JsonOption,
) -> None:
    """Engineer the context a code-writing model needs for TASK (with retrieved knowledge)."""
    from cet.llm.base import LLMError
    from cet.serving.engine import ContextEngine

    if not task.strip():
        raise CetError("the task is empty")
    cfg = get_config()
    code_text, error_text = _read(code, "code"), _read(error, "error")
    engine = ContextEngine(cfg, checkpoint, base=base, retrieval=not no_retrieval)
    try:
        done = engine.engineer(task, code=code_text, error=error_text)
    finally:
        engine.close()
    reply, hits, parsed = done.reply, done.hits, done.reply.parsed
    result = {"context": parsed.context.to_dict() if parsed else None, "valid": bool(parsed and parsed.valid),
              "issues": parsed.issues if parsed else [], "error": reply.error, "seconds": round(reply.seconds, 3),
              "truncated": reply.truncated, "constrained": cfg.cet.constrained, "raw": reply.raw,
              "retrieved": [{"id": h.id, "title": h.title, "score": round(h.score, 4)} for h in hits],
              "checkpoint": engine.cet.info.get("phase"),
              "checkpoint_path": str(engine.cet.checkpoint) if engine.cet.checkpoint else None,
              "prompt": done.prompt}
    if json_out:
        emit_json(result)
        if reply.error:
            raise typer.Exit(LLMError.exit_code)
        return
    if reply.error or parsed is None:
        raise LLMError(f"the CET wrote no context: {reply.error}")
    console.print(parsed.context.to_text() or reply.raw, highlight=False, markup=False)
    for issue in parsed.issues:
        console.print(f"[yellow]note:[/] {issue}", highlight=False)
