"""`cet exec ...`: run solutions of coding tasks in the sandbox and report every signal."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import typer
from rich.table import Table

from cet.cli.common import JsonOption, console, emit_json, get_config, progress_bar, user_errors
from cet.errors import CetError

exec_app = typer.Typer(help="Execution sandbox: run a solution against a task's tests (compile, tests, timing, "
                            "lint, security, reward).", no_args_is_help=True)

IsolationOption = typer.Option(None, "--isolation", help="auto | bubblewrap | weak (default: config exec.isolation).")
TimeoutOption = typer.Option(None, "--timeout", help="Wall-clock limit per run in seconds (default: config).")
PoolOption = typer.Option(None, "--pool/--no-pool", help="Warm fork-server workers (default: on for batches).")


def _executor(stack: ExitStack, isolation: str | None, timeout: float | None, workers: int | None, pool: bool):
    from cet.execution.executor import Executor
    from cet.execution.pool import WarmPool

    if isolation is not None and isolation not in ("auto", "bubblewrap", "weak"):
        raise CetError(f"unknown --isolation {isolation!r}: use auto, bubblewrap or weak")
    cfg = get_config(exec={"isolation": isolation, "workers": workers, "limits": {"wall_timeout_s": timeout}})
    executor = Executor(cfg.exec)
    if executor.backend.warning:
        console.print(f"[bold yellow]warning:[/] {executor.backend.warning}", highlight=False)
    if pool and executor.backend.isolation == "bubblewrap":
        backend = stack.enter_context(WarmPool(cfg.exec, executor.backend.sandbox))
        executor = Executor(cfg.exec, backend=backend)
    return cfg, executor


@exec_app.command("run")
@user_errors
def run_command(
    task: Path = typer.Option(..., "--task", "-t", help="A task: one line of a tasks file, as a file."),
    solution: Path = typer.Option(..., "--solution", "-s", help="The solution's source file."),
    isolation: str = IsolationOption,
    timeout: float = TimeoutOption,
    json_out: bool = JsonOption,
) -> None:
    """Run one solution against one task. Exit status: 0 passed, 1 did not pass, 2 bad input."""
    from cet.execution.tasks import load_task

    coding_task = load_task(task)
    try:
        source = solution.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise CetError(f"solution file not found: {solution}") from None
    except OSError as e:
        raise CetError(f"cannot read solution {solution}: {e.strerror}") from None
    with ExitStack() as stack:
        _, executor = _executor(stack, isolation, timeout, 1, pool=False)
        result = executor.run(coding_task, source)
    if json_out:
        emit_json(result.model_dump(mode="json"))
    else:
        _print_result(result)
    raise typer.Exit(0 if result.passed else 1)


@exec_app.command("batch")
@user_errors
def batch_command(
    tasks: Path = typer.Option(..., "--tasks", "-t", help="A tasks file (JSONL)."),
    out: Path = typer.Option(..., "--out", "-o", help="Results file (JSONL, appended; a re-run resumes)."),
    solutions: Path = typer.Option(None, "--solutions", "-s",
                                   help="JSONL of {task_id, solution}, or a folder of <task id with / as __>.py"),
    reference: bool = typer.Option(False, "--reference", help="Run each task's own reference solution."),
    workers: int = typer.Option(None, "--workers", "-w", min=1, help="Concurrent runs (default: config)."),
    pool: bool = PoolOption,
    isolation: str = IsolationOption,
    timeout: float = TimeoutOption,
    json_out: bool = JsonOption,
) -> None:
    """Run many solutions; results are appended to --out as they finish; the summary goes to a run directory."""
    from cet.execution.batch import SolutionSource, run_batch
    from cet.execution.report import write_batch_report
    from cet.runs import RunDir

    if not tasks.is_file():
        raise CetError(f"tasks file not found: {tasks}")
    if out.is_dir():
        raise CetError(f"--out {out} is a folder; give the results file, e.g. {out / 'results.jsonl'}")
    source = SolutionSource(solutions, reference=reference)
    with ExitStack() as stack:
        cfg, executor = _executor(stack, isolation, timeout, workers, pool=True if pool is None else pool)
        run_dir = RunDir(cfg, "exec-batch")
        with progress_bar(json_out) as progress:
            bar = progress.add_task("exec", total=None)
            counts = {"ran": 0, "passed": 0}

            def update(result) -> None:  # noqa: ANN001
                counts["ran"] += 1
                counts["passed"] += int(result.passed)
                progress.update(bar, advance=1, description=f"exec: {counts['passed']}/{counts['ran']} passed")

            summary = run_batch(tasks, source, out, executor, on_result=update)
    data = {**summary.to_dict(), "results": str(out), "run_dir": str(run_dir.path)}
    write_batch_report(run_dir, data, out)
    if json_out:
        emit_json(data)
        return
    table = Table(title=f"exec batch {tasks}", show_header=False)
    for key, value in data.items():
        if key != "bad_task_examples":
            table.add_row(key, str(value))
    console.print(table)


def _print_result(result) -> None:  # noqa: ANN001
    colour = "green" if result.passed else "red"
    console.print(f"[bold {colour}]{'PASSED' if result.passed else 'NOT PASSED'}[/] {result.task_id}: "
                  f"{result.exit_reason} ({result.detail})", highlight=False)
    if result.isolation_warning:
        console.print(f"[bold yellow]{result.isolation_warning}[/]", highlight=False)
    table = Table(show_header=True)
    for column in ("test", "outcome", "seconds", "error"):
        table.add_column(column)
    for case in result.tests.cases:
        table.add_row(case.name, case.outcome, f"{case.duration_s:.4f}" if case.duration_s is not None else "",
                      f"{case.error_type or ''} {(case.message or '')[:80]}".strip())
    console.print(table)
    extras = [f"tests {result.tests.passed}/{result.tests.total}", f"reward {result.reward}"]
    if result.lint:
        extras.append(f"lint findings {len(result.lint.findings)}")
    if result.security:
        extras.append(f"security findings {len(result.security.findings)}")
    if result.performance:
        extras.append(f"{result.performance.ratio}x the reference's time")
    if result.resources:
        extras.append(f"{result.resources.wall_s:.2f} s wall, {result.resources.peak_memory_mb or 0:.0f} MB peak")
    console.print(" · ".join(extras), highlight=False)
