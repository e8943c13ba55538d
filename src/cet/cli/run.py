"""`cet run`: the main job (what `make run` calls)."""

from __future__ import annotations

import typer

from cet.cli.common import JsonOption, console, emit_json, get_config, user_errors
from cet.errors import CetError


@user_errors
def run_command(
    db: str = typer.Option(None, "--db", help="Knowledge base (default: config kb.db)."),
    budget: str = typer.Option("default", "--budget",
                               help="quick (a smoke run), default (~30 min on 2 cores), or large (everything)."),
    quick: bool = typer.Option(False, "--quick", help="The same as --budget quick."),
    json_out: bool = JsonOption,
) -> None:
    """Ingest, evaluate retrieval, check the sandbox, train Phase 1 and Phase 2, evaluate contexts, report."""
    from cet.main_job import BUDGETS, run_main_job

    budget = "quick" if quick else budget
    if budget not in BUDGETS:
        raise CetError(f"unknown budget {budget!r}: choose one of {', '.join(BUDGETS)}")
    cfg = get_config(kb={"db": db})
    summary = run_main_job(cfg, budget=budget, show_progress=not json_out)
    if json_out:
        emit_json(summary)
    else:
        console.print(f"report: {summary['report']}", highlight=False)
