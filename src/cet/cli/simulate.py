"""`cet simulate`: held-out tasks replayed as developer traffic through the proxy, an A/B experiment between two
arms (two CET versions by default) with the sandbox's verdicts as feedback, and the decision with its statistics."""

from __future__ import annotations

from pathlib import Path

import typer

from cet.cli.common import JsonOption, console, emit_json, get_config, progress_bar, user_errors
from cet.errors import CetError


@user_errors
def simulate_command(
    control: str = typer.Option("phase2", "--control", help="Control arm: phase1|phase2|phase3, base, a registry "
                                                           "version (v1), a checkpoint path, or template, "
                                                           "naive_rag, none."),
    treatment: str = typer.Option("phase3", "--treatment", help="Treatment arm (the same kinds as --control)."),
    tasks: int = typer.Option(24, "--tasks", min=2, help="Held-out tasks to replay (balanced across the sets)."),
    tasks_file: Path = typer.Option(None, "--tasks-file", help="Your own tasks (JSONL, as `cet tasks import` "
                                                               "writes) instead of the held-out sets."),
    split: str = typer.Option("heldout", "--split", help="heldout (the evaluation splits: the experiment's "
                                                          "verdict) or train (traffic to retrain from: "
                                                          "`cet retrain --feedback <run>/feedback.sqlite`)."),
    min_per_arm: int = typer.Option(10, "--min-per-arm", min=1, help="Outcomes per arm before the experiment "
                                                                      "may decide."),
    max_tokens: int = typer.Option(384, "--max-tokens", min=16, help="The generator's reply budget."),
    no_retrieval: bool = typer.Option(False, "--no-retrieval", help="Do not search the knowledge base."),
    resume: Path = typer.Option(None, "--resume", help="A simulation's run directory to continue."),
    json_out: bool = JsonOption,
) -> None:
    """Replay held-out tasks through the proxy (POST /v1/chat/completions, the real generator), run each reply on
    the task's hidden tests in the sandbox, report the outcome (POST /v1/feedback), and print the experiment's
    decision (always-valid mSPRT, per-user interval)."""
    import random

    from cet.execution.tasks import iter_tasks
    from cet.phases.common import EVAL_SPLITS, TRAIN_SPLITS, load_tasks, sample_balanced
    from cet.runs import RunDir
    from cet.serving.simulate import SimulationOptions, render_report, simulate

    cfg = get_config()
    if tasks_file is not None:
        if not tasks_file.is_file():
            raise CetError(f"tasks file not found: {tasks_file}")
        skipped_lines: list[str] = []
        chosen = [t for t in iter_tasks(tasks_file, skipped_lines) if t.language == "python"][:tasks]
        if len(chosen) < 2:
            raise CetError(f"{tasks_file}: fewer than two Python tasks ({len(skipped_lines)} bad lines)")
    elif split in ("heldout", "train"):
        splits = EVAL_SPLITS if split == "heldout" else TRAIN_SPLITS
        chosen = sample_balanced(load_tasks(cfg, splits, ("exercism", "leetcode", "humaneval") if split == "heldout"
                                            else ("exercism", "leetcode")), tasks, random.Random(cfg.run.seed + 3))
    else:
        raise CetError(f"--split: heldout or train, not {split!r}")
    run = RunDir.reopen(resume, cfg) if resume else RunDir(cfg, "simulate")
    opts = SimulationOptions(control=control, treatment=treatment, tasks=len(chosen), min_per_arm=min_per_arm,
                             max_tokens=max_tokens, split="file" if tasks_file else split)
    retriever = None
    if not no_retrieval:
        from cet.knowledge.pipeline import open_retriever
        from cet.phases.common import HeldOutRetriever, held_out

        # held-out tasks (and given ones) are held out: their exercises' own documents never reach any arm's context
        retriever = HeldOutRetriever(open_retriever(cfg), held_out(cfg, [] if split == "train" else chosen))
    with progress_bar(json_out) as progress:
        bar = progress.add_task("simulate", total=len(chosen))

        def step(i: int, total: int, task_id: str) -> None:
            progress.update(bar, completed=i, description=f"simulate: {task_id}")

        result = simulate(cfg, opts, run, chosen, retriever, on_step=step)
    run.write_json("summary.json", result)
    run.log_metrics("simulate", {k: result["experiment"][k] for k in ("n_a", "n_b", "rate_a", "rate_b", "p_value")})
    report = run.write_report(render_report(result))
    result["run_dir"], result["report"] = str(run.path), str(report)
    if json_out:
        emit_json(result)
        return
    standing = result["experiment"]
    console.print(f"{standing['control']}: {standing['rate_a']:.3f} of {standing['n_a']}; {standing['treatment']}: "
                  f"{standing['rate_b']:.3f} of {standing['n_b']}; always-valid p {standing['p_value']:.3f}",
                  highlight=False)
    console.print(f"decision: {result['decision']}", highlight=False)
    console.print(f"report: {report}", highlight=False)
