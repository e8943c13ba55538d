"""`cet data ...`: training-data generation (synthetic developer conversations)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import typer

from cet.cli.common import JsonOption, console, emit_json, get_config, spinner, user_errors
from cet.errors import CetError

data_app = typer.Typer(help="Training data: synthetic developer conversations checked in the sandbox.",
                       no_args_is_help=True)


@data_app.command("conversations")
@user_errors
def conversations_command(
    tasks: int = typer.Option(40, "--tasks", min=1, help="Training tasks to ground one conversation each in."),
    sets: str = typer.Option("exercism,leetcode", "--sets", help="Comma-separated task sets (training splits)."),
    out: Path = typer.Option(None, "--out", "-o", help="Also copy the JSON Lines here (the run directory always "
                                                      "holds conversations.jsonl)."),
    near_duplicate: float = typer.Option(0.8, "--near-duplicate", min=0.0, max=1.0,
                                         help="Word 5-gram Jaccard of two asks past which the later is dropped."),
    model: str = typer.Option(None, "--model", help="One model writes and codes every turn (default: the team's "
                                                    "question_writer and generator roles)."),
    json_out: bool = JsonOption,
) -> None:
    """Developer conversations on training tasks (vague ask, clarifying turn, first attempt, the sandbox's failure,
    the fix), every claimed solution run in the sandbox; diversity measured, near-duplicates removed."""
    from cet.data.conversations import ConversationOptions, drop_near_duplicates, make_conversations, summarise
    from cet.knowledge.embedding import make_embedder
    from cet.llm.team import Team
    from cet.phases.common import TRAIN_SPLITS, load_tasks, sample_balanced, sandbox_executor
    from cet.runs import RunDir

    cfg = get_config()
    chosen = tuple(s.strip() for s in sets.split(",") if s.strip())
    if not chosen:
        raise CetError("--sets names no task set")
    run = RunDir(cfg, "data-conversations")
    pool = sample_balanced(load_tasks(cfg, TRAIN_SPLITS, chosen), tasks, random.Random(cfg.run.seed + 13))
    opts = ConversationOptions(near_duplicate=near_duplicate, seed=cfg.run.seed, model=model)
    with spinner(json_out) as progress:
        job = progress.add_task("conversations", total=None)
        with Team(cfg) as team, sandbox_executor(cfg) as executor:
            records = make_conversations(pool, team, executor, opts, cfg.exec.visible_tests,
                                         on_step=lambda s: progress.update(job, description=s))
        kept, dropped = drop_near_duplicates(records, near_duplicate)
        progress.update(job, description="conversations: diversity")
        embedder = make_embedder(cfg.kb.embedding)
        summary = summarise(kept, dropped, embedder.embed)
    target = run.path / "conversations.jsonl"
    target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")
    if out:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(target.read_text(encoding="utf-8"), encoding="utf-8")
        except OSError as e:
            raise CetError(f"cannot write {out}: {e.strerror or e}") from None
    summary |= {"file": str(out or target), "run_dir": str(run.path), "tasks_drawn": len(pool)}
    run.write_json("summary.json", summary)
    run.log_metrics("conversations", summary)
    if json_out:
        emit_json(summary)
        return
    console.print(json.dumps({k: v for k, v in summary.items() if k != "shapes"}, indent=1), highlight=False)
