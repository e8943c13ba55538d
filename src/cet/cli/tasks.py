"""`cet tasks ...`: import problem sets as coding tasks (a tasks JSONL file) and inspect tasks files."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.table import Table

from cet.cli.common import JsonOption, console, emit_json, get_config, user_errors
from cet.errors import CetError

tasks_app = typer.Typer(help="Coding tasks: import Exercism, HumanEval and LeetCode as executable tasks; stats.",
                        no_args_is_help=True)

MAX_EXAMPLES = 20  # skipped problems listed in the --json report


@tasks_app.command("import")
@user_errors
def import_command(
    path: str = typer.Argument(..., help="The data: a folder or file ('packaged' for the packaged HumanEval or "
                                         "LeetCode data)."),
    format: str = typer.Option(..., "--format", "-f", help="exercism | humaneval | leetcode"),
    out: Path = typer.Option(..., "--out", "-o", help="The tasks file to write (JSONL; replaced atomically)."),
    json_out: bool = JsonOption,
) -> None:
    """Import a problem set as coding tasks with executable pytest files; report what was skipped and why."""
    from cet.execution.importers import import_tasks
    from cet.execution.tasks import write_tasks

    if out.is_dir():
        raise CetError(f"--out {out} is a folder; give the tasks file to write, e.g. {out / 'tasks.jsonl'}")
    tasks, skipped = import_tasks(format, path)
    splits: Counter[str] = Counter()

    def counted() -> Iterator:
        for task in tasks:
            splits[task.metadata.split] += 1
            yield task

    try:
        imported = write_tasks(counted(), out)
    except OSError as e:
        raise CetError(f"cannot write {out}: {e.strerror or e}") from None
    finally:
        out.with_name(out.name + ".tmp").unlink(missing_ok=True)  # write_tasks's temporary file, if it stopped
    reasons = Counter(s.reason for s in skipped)
    report = {
        "format": format, "path": path, "out": str(out), "imported": imported, "skipped": len(skipped),
        "skipped_reasons": dict(reasons.most_common()), "splits": dict(sorted(splits.items())),
        "skipped_examples": [s.to_dict() for s in skipped[:MAX_EXAMPLES]],
    }
    if json_out:
        emit_json(report)
        return
    table = Table(title=f"import {format} → {out}", show_header=False)
    table.add_row("path", path)
    table.add_row("imported", str(imported))
    table.add_row("splits", ", ".join(f"{k}: {v}" for k, v in report["splits"].items()) or "-")
    table.add_row("skipped", str(len(skipped)))
    for reason, count in reasons.most_common():
        table.add_row(f"  {reason}", str(count))
    console.print(table)
    if not imported:
        console.print(f"[yellow]warning:[/] no tasks imported from {path}", highlight=False)


@tasks_app.command("stats")
@user_errors
def stats_command(
    tasks_file: Path = typer.Argument(..., help="A tasks JSONL file."),
    json_out: bool = JsonOption,
) -> None:
    """Counts of a tasks file by source, split and language; lines that are not valid tasks are counted."""
    from cet.execution.tasks import iter_tasks

    bad: list[str] = []
    by: dict[str, Counter[str]] = {"source": Counter(), "split": Counter(), "language": Counter()}
    total = evaluation_only = with_reference = 0
    for task in iter_tasks(tasks_file, skipped=bad):
        total += 1
        by["source"][task.metadata.source] += 1
        by["split"][task.metadata.split] += 1
        by["language"][task.language] += 1
        evaluation_only += task.metadata.evaluation_only
        with_reference += task.reference_solution is not None
    stats = {
        "path": str(tasks_file), "tasks": total, "bad_lines": len(bad), "bad_examples": bad[:5],
        "evaluation_only": evaluation_only, "with_reference_solution": with_reference,
        **{f"by_{key}": dict(sorted(counts.items())) for key, counts in by.items()},
    }
    if json_out:
        emit_json(stats)
        return
    table = Table(title=f"tasks {tasks_file}", show_header=False)
    for key in ("tasks", "bad_lines", "evaluation_only", "with_reference_solution"):
        table.add_row(key, str(stats[key]))
    for key in by:
        table.add_row(f"by_{key}", ", ".join(f"{k}: {v}" for k, v in stats[f"by_{key}"].items()) or "-")
    console.print(table)
    for line in bad[:5]:
        console.print(f"[yellow]bad line:[/] {line}", highlight=False)


@tasks_app.command("repo")
@user_errors
def repo_command(
    specs: list[str] = typer.Argument(..., help="Repositories: NAME, NAME==VERSION (a source distribution from the "
                                                "package index) or a local .tar.gz/.zip source distribution."),
    out: Path = typer.Option(Path("data/tasks/repository.jsonl"), "--out", "-o",
                             help="The tasks file to write (JSONL; replaced atomically). Finished repositories are "
                                  "kept beside it in <out>.parts/. Held-out repository tasks in the default file "
                                  "are kept out of every retrieval, as the other evaluation sets are."),
    split: str = typer.Option("test", help="The split of every task: the benchmark is split by repository "
                                           "(test: held out; train: may be trained on)."),
    max_tasks: int = typer.Option(None, "--max-tasks", min=1, help="At most this many tasks per repository."),
    max_tests: int = typer.Option(20, "--max-tests", min=1, help="At most this many tests decide a task."),
    json_out: bool = JsonOption,
) -> None:
    """Repository tasks: each library function with a docstring and tests becomes a task (body removed; the
    repository's tests that exercise it, found by tracing them, decide), kept only when the sandbox confirms the
    original passes and the empty body fails."""
    from cet.execution.executor import Executor
    from cet.execution.importers.repository import RepositoryTaskOptions, make_repository_tasks
    from cet.progress import spinner

    if out.is_dir():
        raise CetError(f"--out {out} is a folder; give the tasks file to write, e.g. {out / 'repo_tasks.jsonl'}")
    cfg = get_config()
    executor = Executor(cfg.exec.model_copy(update={"performance": False, "lint": False, "security": False}))
    options = RepositoryTaskOptions(split=split, max_tasks=max_tasks, max_tests=max_tests)
    with spinner(json_out) as progress:
        job = progress.add_task("repositories", total=None)
        reports = make_repository_tasks(specs, out, Path(cfg.exec.repos_dir), executor, options,
                                        on_progress=lambda text: progress.update(job, description=text),
                                        index_url=cfg.exec.package_index)
    rows = [vars(r) for r in reports]
    failed = [r for r in reports if r.error]
    if json_out:
        emit_json({"out": str(out), "tasks": sum(r.tasks for r in reports), "repositories": rows})
        if failed:
            raise typer.Exit(1)
        return
    table = Table(title=f"repository tasks → {out}")
    for column in ("repository", "map", "tests", "tested/functions", "tasks", "skipped"):
        table.add_column(column)
    for r in reports:
        name = f"{r.name} {r.version}" if r.name else r.spec
        if r.error:
            table.add_row(name, "-", "-", "-", "0", f"[red]{r.error}[/]")
            continue
        table.add_row(name, r.map_method or "-", str(r.tests_mapped), f"{r.functions_tested}/{r.functions}",
                      str(r.tasks), ", ".join(f"{k} {v}" for k, v in (r.skipped or {}).items()))
    console.print(table)
    if failed:
        console.print(f"[red]{len(failed)} of {len(reports)} repositories failed[/]", highlight=False)
        raise typer.Exit(1)
