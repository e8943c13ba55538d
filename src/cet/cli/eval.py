"""`cet eval context`: the context evaluation (intrinsic metrics + the generator's pass rate, five conditions)."""

from __future__ import annotations

from pathlib import Path

import typer

from cet.cli.common import JsonOption, console, emit_json, get_config, spinner, user_errors

eval_app = typer.Typer(help="Evaluate: context quality on held-out tasks.", no_args_is_help=True)


@eval_app.command("context")
@user_errors
def context_eval_command(
    tasks: int = typer.Option(10, "--tasks", min=1, help="Held-out tasks to evaluate on."),
    phase1: Path = typer.Option(None, "--phase1", help="CET checkpoint after Phase 1 (default: data/cet/phase1)."),
    phase2: Path = typer.Option(None, "--phase2", help="CET checkpoint after Phase 2 (default: data/cet/phase2)."),
    no_noise: bool = typer.Option(False, "--no-noise", help="Skip the noisy copies (no noise-reduction metric)."),
    json_out: bool = JsonOption,
) -> None:
    """Compare raw task / naive RAG / rule-based template / CET after Phase 1 / after Phase 2."""
    from cet.evaluation.context_eval import ContextEvalOptions, run_context_eval
    from cet.evaluation.context_report import render_context_eval
    from cet.knowledge.pipeline import open_retriever
    from cet.runs import RunDir

    cfg = get_config()
    run = RunDir(cfg, "eval-context")
    opts = ContextEvalOptions(tasks=tasks, phase1=str(phase1) if phase1 else None,
                              phase2=str(phase2) if phase2 else None, noise=not no_noise)
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
