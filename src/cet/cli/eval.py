"""`cet eval context`: the context evaluation (the generator's pass rate on hidden tests under each condition,
paired statistics, intrinsic metrics)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cet.cli.common import JsonOption, console, emit_json, open_run, spinner, user_errors
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

    chosen = tuple(c.strip() for c in conditions.split(",") if c.strip())
    unknown = [c for c in chosen if c not in CONDITION_NAMES]
    if unknown or not chosen:
        raise CetError(f"unknown condition(s) {', '.join(unknown) or '(none given)'}; choose from "
                       f"{', '.join(CONDITION_NAMES)}")
    if tasks_file is not None and not tasks_file.is_file():
        raise CetError(f"tasks file not found: {tasks_file}")
    cfg, run = open_run("eval-context")  # after the checks: a refused command leaves no run directory
    opts = ContextEvalOptions(tasks=tasks, tasks_file=str(tasks_file) if tasks_file else None, limit=limit,
                              conditions=chosen, phase1=str(phase1) if phase1 else None,
                              phase2=str(phase2) if phase2 else None, phase3=str(phase3) if phase3 else None,
                              noise=not no_noise)
    with spinner(json_out) as progress:
        task = progress.add_task("context evaluation", total=None)
        result = run_context_eval(cfg, opts, run, open_retriever(cfg),
                                  on_step=lambda s: progress.update(task, description=s))
    _finish(run, result, "# cet context evaluation\n" + "\n".join(render_context_eval(result)), json_out)


@eval_app.command("ablation")
@user_errors
def ablation_command(
    tasks: int = typer.Option(150, "--tasks", min=1, help="Held-out tasks to draw (balanced across the sets)."),
    tasks_file: Path = typer.Option(None, "--tasks-file", help="Your own tasks file instead of the default pool."),
    repo_tasks: Path = typer.Option(None, "--repo-tasks", help="Repository tasks (`cet tasks repo`) of held-out "
                                    "repositories, added to the tasks."),
    limit: int = typer.Option(None, "--limit", min=1, help="At most this many tasks of each set (after drawing)."),
    arms: str = typer.Option(None, "--arms", help="Comma-separated arms (default: all): raw, phase1, phase1-2, "
                             "phase1-3, all, skip_phase2, skip_phase3, naive_rag, template, no_retrieval, sections."),
    phase1: Path = typer.Option(None, "--phase1", help="The Phase 1 CET checkpoint (default: data/cet/phase1)."),
    phase2: Path = typer.Option(None, "--phase2", help="The Phase 1-2 CET checkpoint (default: data/cet/phase2)."),
    phase3: Path = typer.Option(None, "--phase3", help="The target, the Phase 1-3 CET checkpoint with its playbook "
                                "(default: data/cet/phase3)."),
    phase4: Path = typer.Option(None, "--phase4", help="The 'all' arm: a Phase 4 (retrained) CET checkpoint."),
    skip_phase3: Path = typer.Option(None, "--skip-phase3", help="Phase 4's retraining of the Phase 2 CET."),
    phase3_budget: str = typer.Option("demo", "--phase3-budget", help="skip_phase2's Phase 3 budget (demo|large)."),
    phase3_tasks: int = typer.Option(None, "--phase3-tasks", min=1, help="skip_phase2: Phase 3 training tasks."),
    phase3_dev_tasks: int = typer.Option(None, "--phase3-dev-tasks", min=1, help="skip_phase2: Phase 3 dev tasks."),
    phase3_samples: int = typer.Option(None, "--phase3-samples", min=0, help="skip_phase2: Phase 3 samples."),
    simulation: Path = typer.Option(None, "--simulation", help="A `cet simulate` run: Phase 4's online metrics."),
    resume: Path = typer.Option(None, "--resume", help="An ablation run directory to carry on (finished arms kept)."),
    json_out: bool = JsonOption,
) -> None:
    """Ablations on the same held-out tasks and generator: no CET, Phase 1 only, 1-2, 1-3, all, Phase 2 or 3
    skipped, the naive-RAG and template baselines, retrieval off and each context section removed; paired
    comparisons, a plot, phase-specific metrics."""
    from cet.evaluation.ablation import (
        OTHER_ARMS,
        PHASE_ARMS,
        AblationOptions,
        render_ablation,
        resumed_options,
        run_ablation,
        stored_options,
    )
    from cet.knowledge.pipeline import open_retriever
    from cet.model.cet import MANIFEST

    chosen = tuple(a.strip() for a in arms.split(",") if a.strip()) if arms else (*PHASE_ARMS, *OTHER_ARMS)
    unknown = [a for a in chosen if a not in (*PHASE_ARMS, *OTHER_ARMS)]
    if unknown or not chosen:
        raise CetError(f"unknown arm(s) {', '.join(unknown) or '(none given)'}; choose from "
                       f"{', '.join((*PHASE_ARMS, *OTHER_ARMS))}")
    for given in (tasks_file, repo_tasks):
        if given is not None and not given.is_file():
            raise CetError(f"tasks file not found: {given}")
    for given in (phase1, phase2, phase3, phase4, skip_phase3):
        if given is not None and not (given / MANIFEST).is_file():
            raise CetError(f"{given} is not a CET checkpoint (no {MANIFEST})")
    if resume and not (resume / "ablation_options.json").is_file():
        raise CetError(f"{resume} is not an ablation run (no ablation_options.json) to resume")
    cfg, run = open_run("eval-ablation", resume)
    opts = AblationOptions(tasks=tasks, tasks_file=str(tasks_file) if tasks_file else None,
                           repo_tasks=str(repo_tasks) if repo_tasks else None, limit=limit, arms=chosen,
                           phase1=str(phase1) if phase1 else None, phase2=str(phase2) if phase2 else None,
                           phase3=str(phase3) if phase3 else None, phase4=str(phase4) if phase4 else None,
                           skip_phase3=str(skip_phase3) if skip_phase3 else None, phase3_budget=phase3_budget,
                           phase3_changes={k: v for k, v in (("tasks", phase3_tasks), ("dev_tasks", phase3_dev_tasks),
                                                             ("samples", phase3_samples)) if v is not None},
                           simulation=str(simulation) if simulation else None)
    if resume:  # the run carries on with the options it was started with (see resumed_options)
        opts = resumed_options(stored_options(resume / "ablation_options.json"), opts, bool(arms))
    run.write_json("ablation_options.json", vars(opts))  # what the run is now
    with spinner(json_out) as progress:
        task = progress.add_task("ablation", total=None)
        result = run_ablation(cfg, opts, run, open_retriever(cfg),
                              on_step=lambda s: progress.update(task, description=s))
    for arm, why in result["skipped_arms"].items():
        console.print(f"[yellow]skipped {arm}:[/] {why}", highlight=False)
    _finish(run, result, "# cet ablation study\n\n" + "\n".join(render_ablation(result)), json_out)


def _finish(run: Any, result: dict[str, Any], report_text: str, json_out: bool) -> None:
    """The run's summary.json and report.md written; the result emitted (--json) or its pass rates printed."""
    run.write_json("summary.json", result)
    report = run.write_report(report_text + "\n")
    result["run_dir"], result["report"] = str(run.path), str(report)
    if json_out:
        emit_json(result)
        return
    for name, rate in result["pass_rates"].items():
        console.print(f"{name:14s} {rate['passed']}/{rate['n']}  {rate['rate']:.3f}", highlight=False)
    console.print(f"report: {report}", highlight=False)
