"""`cet train phase1|phase2|phase3`: the CET's training phases, each writing a run directory and a checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from cet.cli.common import JsonOption, console, emit_json, get_config, open_run, spinner, user_errors
from cet.errors import CetError

train_app = typer.Typer(help="Train the CET: Phase 1 (subject expertise), Phase 2 (context engineering), "
                        "Phase 3 (interactive optimisation).",
                        no_args_is_help=True)

ResumeOption = typer.Option(None, "--resume", help="A run directory of this phase to resume after an interruption.")


def _run_phase(name: str, resume: Path | None, json_out: bool, recipe: Callable[..., dict[str, Any]],
               opts: Any, line: Callable[[dict[str, Any]], str]) -> None:
    """Run a phase recipe in a (new or resumed) run directory with a spinner; print or emit its summary.
    A resumed run uses the config it was started with (its config.yaml), so it carries on the same plan."""
    from cet.knowledge.pipeline import open_retriever

    cfg, run = open_run(name, resume)
    with spinner(json_out) as progress:
        task = progress.add_task(name, total=None)
        result = recipe(cfg, opts, run, open_retriever(cfg),
                        on_step=lambda s: progress.update(task, description=s), quiet=json_out)
    run.write_json("summary.json", result)
    result["run_dir"] = str(run.path)
    if json_out:
        emit_json(result)
        return
    console.print(line(result), highlight=False)
    console.print(f"checkpoint: {result['checkpoint']}\nrun directory: {result['run_dir']}", highlight=False)


@train_app.command("phase1")
@user_errors
def phase1_command(
    rounds: int = typer.Option(2, "--rounds", min=1, help="Rounds of question → answers → jury → training."),
    questions: int = typer.Option(4, "--questions", min=1, help="Questions per round."),
    synthetic: float = typer.Option(0.25, "--synthetic", min=0.0, max=1.0,
                                    help="Share of questions reworded by the team's question writer."),
    start_from: Path = typer.Option(None, "--from", help="A CET checkpoint to continue (default: the base)."),
    judges: list[str] = typer.Option(None, "--judge", help="A model judge (repeatable; default: llm.roles.judge)."),
    teachers: list[str] = typer.Option(
        None, "--teacher", help="A model that answers as the team (repeatable, tried in order: the next answers "
        "only the questions the ones before failed in the sandbox; default: llm.roles.generator)."),
    conversations: Path = typer.Option(None, "--conversations", exists=True, dir_okay=False,
                                       help="`cet data conversations` output: its tasks asked first, each as its "
                                            "conversation's vague first message."),
    resume: Path = ResumeOption,
    json_out: bool = JsonOption,
) -> None:
    """Phase 1: the CET answers coding questions from retrieved knowledge; the jury's consensus trains it."""
    from cet.phases.phase1 import Phase1Options, run_phase1

    opts = Phase1Options(rounds=rounds, questions=questions, synthetic_share=synthetic,
                         start_from=str(start_from) if start_from else None,
                         judges=tuple(judges) if judges else None, teacher=list(teachers) if teachers else None,
                         conversations=str(conversations.resolve()) if conversations else None)
    _run_phase("phase1", resume, json_out, run_phase1, opts,
               lambda r: f"phase 1: {r['questions']} questions, trained on {r['trained_on']}; accepted by source "
                         f"{ {s: v['rate'] for s, v in r['acceptance']['by_source'].items()} }, by answerer "
                         f"{ {a: v['rate'] for a, v in r['acceptance']['by_answerer'].items()} }")


@train_app.command("phase2")
@user_errors
def phase2_command(
    conversations: Path = typer.Option(None, "--conversations",
                                       help="Phase 1 conversations JSONL (default: the run behind data/cet/phase1)."),
    tasks: int = typer.Option(12, "--tasks", min=1, help="Training tasks made into requirement pairs."),
    degraded: int = typer.Option(1, "--degraded", min=0, help="Degraded variants per requirement."),
    start_from: Path = typer.Option(None, "--from", help="The CET to continue (default: data/cet/phase1)."),
    resume: Path = ResumeOption,
    json_out: bool = JsonOption,
) -> None:
    """Phase 2: degraded requirements, partial code and bug reports → engineered contexts (SFT)."""
    from cet.phases.phase2 import Phase2Options, run_phase2

    opts = Phase2Options(conversations=str(conversations) if conversations else None, requirement_tasks=tasks,
                         degraded_per_task=degraded, start_from=str(start_from) if start_from else None)
    _run_phase("phase2", resume, json_out, run_phase2, opts, lambda r: f"phase 2: {r['pairs']} pairs {r['by_kind']}")


@train_app.command("phase3")
@user_errors
def phase3_command(
    budget: str = typer.Option("demo", "--budget", help="demo (a few tasks, one round: what `make run` does) or "
                               "large (240 tasks, 3 rounds; resumable with --resume)."),
    tasks: int = typer.Option(None, "--tasks", min=1, help="Training tasks rolled out per round (overrides --budget)."),
    dev_tasks: int = typer.Option(None, "--dev-tasks", min=1, help="Training tasks kept apart for early stopping."),
    rounds: int = typer.Option(None, "--rounds", min=1, help="Rounds of rollouts → playbook → training."),
    samples: int = typer.Option(None, "--samples", min=0, help="Sampled CET contexts per task (cet.phase3.samples)."),
    generators: list[str] = typer.Option(None, "--generator", help="A generator of the team (repeatable; default "
                                         "cet.phase3.generators)."),
    learner: str = typer.Option(None, "--learner", help="rest (ReST-EM: SFT on the best context) or dpo."),
    start_from: Path = typer.Option(None, "--from", help="The CET to continue (default: data/cet/phase2)."),
    conversations: Path = typer.Option(None, "--conversations", exists=True, dir_okay=False,
                                       help="`cet data conversations` output: its failing first attempts, re-run in "
                                            "the sandbox, seed the playbook's failure patterns."),
    resume: Path = ResumeOption,
    json_out: bool = JsonOption,
) -> None:
    """Phase 3: contexts rolled out through the generator team on training tasks' hidden tests; failure patterns
    mined into a playbook; the CET trained toward the contexts that worked, with early stopping on dev tasks."""
    from cet.phases.phase3 import options_for, run_phase3

    if learner not in (None, "rest", "dpo"):
        raise CetError(f"unknown learner {learner!r}; choose rest or dpo")
    opts = options_for(budget, tasks=tasks, dev_tasks=dev_tasks, rounds=rounds, samples=samples, learner=learner,
                       generators=tuple(generators) if generators else None,
                       start_from=str(start_from) if start_from else None,
                       conversations=str(conversations.resolve()) if conversations else None)
    _run_phase("phase3", resume, json_out, run_phase3, opts, _phase3_line)


def _phase3_line(r: dict[str, Any]) -> str:
    active = sum(1 for i in r["playbook"]["items"] if i["status"] == "active")
    return (f"phase 3: {r['rollouts']} rollouts, best round {r['best_round']} (dev score {r['dev_best']['score']} vs "
            f"raw {r['dev_best']['raw']}), playbook v{r['playbook']['version']} with {active} active items")


@train_app.command("sft")
@user_errors
def sft_command(
    examples: Path = typer.Argument(..., help="JSONL of {prompt: [messages], completion: [assistant message]} (as "
                                    "Phase 3 writes round-N/examples.jsonl)."),
    out: Path = typer.Option(..., "--out", help="Where the trained CET is saved (and the trainer's checkpoints)."),
    start_from: Path = typer.Option(None, "--from", help="The CET checkpoint to continue (default: the base)."),
    epochs: float = typer.Option(None, "--epochs", min=0.01, help="Default: cet.train.epochs."),
    json_out: bool = JsonOption,
) -> None:
    """Supervised fine-tuning of the CET on a file of examples. Runs as one process, or data-parallel under
    `torchrun --nproc_per_node N` / `accelerate launch` (each process one shard of every batch; the first saves)."""
    import json
    import os

    from cet.model.cet import CETModel
    from cet.model.training import data_version, train_sft
    from cet.phases.common import read_jsonl

    cfg = get_config()
    if not examples.is_file():
        raise CetError(f"examples file not found: {examples}")
    skipped: list[str] = []
    rows = [r for r in read_jsonl(examples, skipped) if _is_example(r)]
    bad = len(read_jsonl(examples)) - len(rows)
    if not rows:
        raise CetError(f"{examples}: no {{prompt, completion}} chat examples ({len(skipped)} unreadable lines, "
                       f"{bad} malformed)")
    cet = CETModel.load(start_from, cfg, trainable=True) if start_from else CETModel.from_base(cfg)
    settings = cfg.cet.train.model_copy(update={"epochs": epochs}) if epochs else cfg.cet.train
    report = train_sft(cet, rows, settings, out, cfg.run.seed, quiet=json_out)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    result = {"examples": len(rows), "skipped_lines": len(skipped), "malformed": bad, "processes": world, "rank": rank,
              "training": report.to_dict()}
    if rank == 0:
        result["checkpoint"] = str(cet.save(out / "checkpoint", "sft", data_version(rows), processes=world))
    if json_out:
        if rank == 0:
            emit_json(result)
        return
    if rank == 0:
        console.print(json.dumps({k: v for k, v in result.items() if k != "training"}), highlight=False)


def _is_example(row: object) -> bool:
    """A prompt-completion chat example: both lists of {role, content} messages with text content."""
    def messages(value: object) -> bool:
        return isinstance(value, list) and bool(value) and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in value)
    return isinstance(row, dict) and messages(row.get("prompt")) and messages(row.get("completion"))
