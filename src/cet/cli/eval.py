"""`cet eval context`: the context evaluation (the generator's pass rate on hidden tests under each condition,
paired statistics, intrinsic metrics)."""

from __future__ import annotations

from pathlib import Path

import typer

from cet.cli.common import JsonOption, console, emit_json, get_config, spinner, user_errors
from cet.errors import CetError

# the evaluation's conditions (kept here so `--help` needs no model import; a test checks they match)
CONDITION_NAMES = ("raw", "full_input", "naive_rag", "rule_based", "playbook", "cet_phase1", "cet_phase2",
                   "cet_phase3")

eval_app = typer.Typer(help="Evaluate: context quality on held-out tasks.", no_args_is_help=True)


@eval_app.command("context")
@user_errors
def context_eval_command(
    tasks: int = typer.Option(150, "--tasks", min=1, help="Held-out tasks to draw (balanced across the sets)."),
    tasks_file: Path = typer.Option(None, "--tasks-file", help="Your own tasks file (JSONL of coding tasks, as "
                                    "`cet tasks import` writes); replaces the default held-out set."),
    conditions: str = typer.Option(",".join(CONDITION_NAMES), "--conditions",
                                   help="Comma-separated conditions to run."),
    limit: int = typer.Option(None, "--limit", min=1, help="At most this many tasks (after drawing)."),
    phase1: Path = typer.Option(None, "--phase1", help="CET checkpoint after Phase 1 (default: data/cet/phase1)."),
    phase2: Path = typer.Option(None, "--phase2", help="CET checkpoint after Phase 2 (default: data/cet/phase2)."),
    phase3: Path = typer.Option(None, "--phase3", help="CET checkpoint after Phase 3, with its playbook (default: "
                                "data/cet/phase3)."),
    no_noise: bool = typer.Option(False, "--no-noise", help="Skip the noisy copies (no noise-reduction metric)."),
    json_out: bool = JsonOption,
) -> None:
    """Compare raw task / full input / naive RAG / rule-based template / Phase 3's playbook alone / the CET after
    Phase 1, 2 and 3, on the hidden tests of held-out tasks; the latest CET run is the one under test."""
    from cet.evaluation.context_eval import ContextEvalOptions, run_context_eval
    from cet.evaluation.context_report import render_context_eval
    from cet.knowledge.pipeline import open_retriever
    from cet.runs import RunDir

    cfg = get_config()
    run = RunDir(cfg, "eval-context")
    chosen = tuple(c.strip() for c in conditions.split(",") if c.strip())
    unknown = [c for c in chosen if c not in CONDITION_NAMES]
    if unknown or not chosen:
        raise CetError(f"unknown condition(s) {', '.join(unknown) or '(none given)'}; choose from "
                       f"{', '.join(CONDITION_NAMES)}")
    if tasks_file is not None and not tasks_file.is_file():
        raise CetError(f"tasks file not found: {tasks_file}")
    opts = ContextEvalOptions(tasks=tasks, tasks_file=str(tasks_file) if tasks_file else None, limit=limit,
                              conditions=chosen, phase1=str(phase1) if phase1 else None,
                              phase2=str(phase2) if phase2 else None, phase3=str(phase3) if phase3 else None,
                              noise=not no_noise)
    with spinner(json_out) as progress:
        task = progress.add_task("context evaluation", total=None)
        result = run_context_eval(cfg, opts, run, open_retriever(cfg),
                                  on_step=lambda s: progress.update(task, description=s))
    run.write_json("summary.json", result)
    report = run.write_report("# cet context evaluation\n" + "\n".join(render_context_eval(result)) + "\n")
    result["run_dir"], result["report"] = str(run.path), str(report)
    if json_out:
        emit_json(result)
        return
    for condition, rate in result["pass_rates"].items():
        console.print(f"{condition:12s} {rate['passed']}/{rate['n']}  {rate['rate']:.3f}", highlight=False)
    console.print(f"report: {report}", highlight=False)
