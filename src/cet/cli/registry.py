"""`cet registry`: the versioned CET checkpoints and the champion the service serves (Phase 4)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cet.cli.common import JsonOption, console, emit_json, user_errors
from cet.errors import CetError

registry_app = typer.Typer(help="CET checkpoint versions, the champion, promotion and rollback.",
                           no_args_is_help=True)
RootOption = typer.Option(None, "--root", help="The registry folder (default: config serve.registry_dir).")


def _registry(root: Path | None):  # noqa: ANN202 - Registry, imported lazily
    from cet.cli.common import get_config
    from cet.serving.registry import Registry

    return Registry(root or get_config().serve.registry_dir)


def _show(data: dict, json_out: bool) -> None:
    if json_out:
        emit_json(data)
        return
    for v in data["versions"]:
        mark = "*" if v["id"] == data["champion"] else " "
        console.print(f"{mark} {v['id']}  {v['phase']}  offline {v['offline_pass_rate']}  {v['source']}",
                      highlight=False)
    for h in data["history"]:
        why = f" ({h['reason']})" if h.get("reason") else ""
        console.print(f"  {h['action']}: {h['from']} -> {h['to']}{why}", highlight=False)


@registry_app.command("add")
@user_errors
def add_command(checkpoint: Path = typer.Argument(..., help="A CET checkpoint folder."),
                offline_pass_rate: float = typer.Option(None, "--offline-pass-rate",
                                                        help="Its pass@1 on the held-out evaluation."),
                root: Path = RootOption, json_out: bool = JsonOption) -> None:
    """Register a checkpoint as the next version (the first becomes the champion)."""
    registry = _registry(root)
    registry.register(checkpoint, offline_pass_rate)
    _show(registry.read(), json_out)


@registry_app.command("list")
@user_errors
def list_command(root: Path = RootOption, json_out: bool = JsonOption) -> None:
    """The versions (* the champion) and the history of swaps."""
    _show(_registry(root).read(), json_out)


@registry_app.command("promote")
@user_errors
def promote_command(version: str = typer.Argument(..., help="The version to make the champion."),
                    evidence: Path = typer.Option(..., "--evidence", help="JSON with the experiment's standing "
                                                  "(GET /v1/experiment) as 'experiment' and GET /v1/guardrails as "
                                                  "'guardrails'."),
                    arm: str = typer.Option(None, "--arm", help="The experiment arm that served this version "
                                                               "(default: the version id)."),
                    root: Path = RootOption, json_out: bool = JsonOption) -> None:
    """Promote a version when the experiment decided for it, no guardrail is breached and its offline pass rate is
    not below the champion's; otherwise say what blocks it (non-zero exit)."""
    try:
        facts = json.loads(evidence.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CetError(f"cannot read the evidence file {evidence}: {e}") from None
    if not isinstance(facts, dict):
        raise CetError("the evidence file must hold a JSON object with 'experiment' and 'guardrails'")
    _show(_registry(root).promote(version, facts.get("experiment"), facts.get("guardrails"), arm), json_out)


@registry_app.command("rollback")
@user_errors
def rollback_command(reason: str = typer.Option(..., "--reason", help="Why (recorded in the history)."),
                     root: Path = RootOption, json_out: bool = JsonOption) -> None:
    """Return to the previous champion."""
    _show(_registry(root).rollback(reason), json_out)


@registry_app.command("offline")
@user_errors
def offline_command(version: str = typer.Argument(..., help="The version (e.g. v3)."),
                    pass_rate: float = typer.Argument(..., help="Its held-out pass rate from `cet eval context`."),
                    root: Path = RootOption, json_out: bool = JsonOption) -> None:
    """Record a version's offline held-out pass rate (promotion refuses a candidate below the champion's)."""
    _show(_registry(root).set_offline_pass_rate(version, pass_rate), json_out)
