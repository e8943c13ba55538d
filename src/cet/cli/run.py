"""`cet run`: the main job (what `make run` calls)."""

from __future__ import annotations

import typer

from cet.cli.common import JsonOption, console, emit_json, get_config, user_errors


@user_errors
def run_command(
    db: str = typer.Option(None, "--db", help="Knowledge base (default: config kb.db)."),
    quick: bool = typer.Option(False, "--quick", help="A small slice of each source (a smoke run)."),
    json_out: bool = JsonOption,
) -> None:
    """Ingest the default sources into the embedded store, evaluate retrieval, write the report."""
    from cet.main_job import run_main_job

    cfg = get_config(kb={"db": db})
    summary = run_main_job(cfg, quick=quick, show_progress=not json_out)
    if json_out:
        emit_json(summary)
    else:
        console.print(f"report: {summary['report']}", highlight=False)
