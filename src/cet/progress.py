"""Human-facing output shared by the CLI and the jobs it starts: one stderr console, a progress bar and a spinner.
Here, not in `cet.cli`, so a job (the main job) shows progress without reaching into the CLI layer."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

console = Console(stderr=True, soft_wrap=True)  # human-facing messages and progress go to stderr; --json data to stdout


def progress_bar(quiet: bool) -> Progress:
    """A progress bar on stderr; silent with --json or when stderr is not a terminal."""
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=True, disable=quiet or not console.is_terminal)


def spinner(quiet: bool) -> Progress:
    """A spinner with a changing description, for multi-stage jobs whose length is not known ahead."""
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                    transient=True, disable=quiet)
