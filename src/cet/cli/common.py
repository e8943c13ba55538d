"""What every command shares: config loading, --json output, one-line errors with a non-zero exit."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from cet.config import CetConfig, load_config
from cet.errors import CetError
from cet.progress import console, progress_bar, spinner

__all__ = ["JsonOption", "app_callback", "console", "emit_json", "get_config", "open_run", "progress_bar", "spinner",
           "user_errors"]

F = TypeVar("F", bound=Callable[..., Any])

_state: dict[str, Any] = {"config_path": None}

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


def app_callback(
    config: str = typer.Option(None, "--config", "-c", help="YAML config file (default: $CET_CONFIG, then built-in)."),
) -> None:
    """Context Engineering Transformers."""
    _state["config_path"] = config


def get_config(**overrides: Any) -> CetConfig:
    return load_config(_state["config_path"], **overrides)


def open_run(name: str, resume: Any = None) -> tuple[CetConfig, Any]:
    """(config, run directory): a new run named `name`, or the run at `resume` carried on with the config it was
    started with (its config.yaml), so it continues the same plan."""
    from cet.runs import RunDir

    if resume:
        if not (resume / "config.yaml").is_file():
            raise CetError(f"{resume} is not a run directory (no config.yaml) to resume")
        cfg = load_config(resume / "config.yaml")
        return cfg, RunDir.reopen(resume, cfg)
    cfg = get_config()
    return cfg, RunDir(cfg, name)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def user_errors(func: F) -> F:
    """Turn errors a user can cause into one clear line on stderr and a non-zero exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CetError as e:
            console.print(f"[bold red]error:[/] {e}", highlight=False)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted:[/] work committed so far is kept; run the command again to resume")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]
