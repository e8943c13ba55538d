"""`cet context "TASK" [--code FILE] [--error FILE]`: engineer one context with the current CET."""

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
    no_retrieval: bool = typer.Option(False, "--no-retrieval", help="Do not search the knowledge base."),
    json_out: bool = JsonOption,
) -> None:
    """Engineer the context a code-writing model needs for TASK (with retrieved knowledge)."""
    from cet.model.cet import CETModel
    from cet.model.context import render_prompt

    if not task.strip():
        raise CetError("the task is empty")
    cfg = get_config()
    code_text, error_text = _read(code, "code"), _read(error, "error")
    hits = []
    if not no_retrieval:
        from cet.knowledge.pipeline import open_retriever

        hits = open_retriever(cfg).search(task if not error_text else f"{task}\n{error_text}", k=cfg.cet.top_k)
    cet = CETModel.open(cfg, checkpoint)
    try:
        (parsed, raw), = cet.engineer([{"task": task, "hits": hits, "code": code_text, "error": error_text}])
    finally:
        cet.close_engine()
    prompt = render_prompt(task, parsed.context, code=code_text, error=error_text)
    result = {"context": parsed.context.to_dict(), "valid": parsed.valid, "issues": parsed.issues, "raw": raw,
              "retrieved": [{"id": h.id, "title": h.title, "score": round(h.score, 4)} for h in hits],
              "checkpoint": cet.info.get("phase"), "prompt": prompt}
    if json_out:
        emit_json(result)
        return
    console.print(parsed.context.to_text() or raw, highlight=False, markup=False)
    for issue in parsed.issues:
        console.print(f"[yellow]note:[/] {issue}", highlight=False)
