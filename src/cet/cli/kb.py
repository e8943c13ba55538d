"""`cet kb ...`: build, search and inspect the knowledge base."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from cet.cli.common import JsonOption, console, emit_json, get_config, progress_bar, user_errors
from cet.errors import CetError
from cet.knowledge.records import Filters

kb_app = typer.Typer(help="Knowledge base: ingest sources, search, stats, a local PostgreSQL.", no_args_is_help=True)
postgres_app = typer.Typer(help="A local PostgreSQL with pgvector for trying the scale-out store.",
                           no_args_is_help=True)
kb_app.add_typer(postgres_app, name="postgres")

DbOption = typer.Option(None, "--db", help="SQLite path or postgresql:// URL (default: config kb.db).")


@kb_app.command("ingest")
@user_errors
def ingest_command(
    path: str = typer.Argument(..., help="Where the source is ('packaged' for the packaged LeetCode set)."),
    source: str = typer.Option(..., "--source", "-s",
                               help="exercism | freecodecamp | stackexchange | git | docs | leetcode"),
    db: str = DbOption,
    embedder: str = typer.Option(None, "--embedder", help="sentence-transformers | onnx | openai"),
    min_score: int = typer.Option(None, "--min-score", help="Stack Exchange: minimum question score."),
    tags: list[str] = typer.Option(None, "--tag", help="Stack Exchange: keep questions with any of these tags."),
    json_out: bool = JsonOption,
) -> None:
    """Read a source and store its chunks and embeddings (idempotent; a re-run resumes)."""
    from cet.knowledge.ingest import IngestReport
    from cet.knowledge.pipeline import ingest_source

    cfg = get_config(kb={"db": db, "embedding": {"backend": embedder}})
    options = {}
    if source == "stackexchange":
        options = {"min_score": cfg.sources.stackexchange_min_score if min_score is None else min_score,
                   "tags": tags or cfg.sources.stackexchange_tags or None}
    with progress_bar(json_out) as progress:
        task = progress.add_task(f"ingest {source}", total=None)

        def update(r: IngestReport) -> None:
            progress.update(task, completed=r.documents_read, description=f"ingest {source}: {r.documents_read} "
                            f"docs, {r.chunks_written} chunks, {r.skipped} skipped")

        report = ingest_source(cfg, source, path, options, on_progress=update)
    if json_out:
        emit_json(report.to_dict())
        if report.error:
            raise typer.Exit(1)
        return
    table = Table(title=f"ingest {source} into {cfg.kb.db}", show_header=False)
    for key, value in report.to_dict().items():
        if key not in ("skipped_examples",):
            table.add_row(key, str(value))
    console.print(table)
    if report.error:
        raise CetError(f"the {source} reader stopped early ({report.error}); committed batches are kept")


@kb_app.command("search")
@user_errors
def search_command(
    query: str = typer.Argument(..., help="What to look for."),
    db: str = DbOption,
    k: int = typer.Option(None, "--k", "-k", help="How many hits (default: config kb.top_k = 5)."),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid | bm25 | vector"),
    fusion: str = typer.Option(None, "--fusion", help="hybrid fusion: convex | rrf (default: config kb.fusion)."),
    source: list[str] = typer.Option(None, "--source", help="Only these sources."),
    language: list[str] = typer.Option(None, "--language", help="Only these languages."),
    kind: list[str] = typer.Option(None, "--kind", help="Only these kinds (statement, approach, qa, code, doc...)."),
    json_out: bool = JsonOption,
) -> None:
    """Hybrid (BM25 + vector, rank-fused) search over the knowledge base."""
    from cet.knowledge.pipeline import open_retriever
    from cet.knowledge.retrieval import FUSIONS, MODES

    if mode not in MODES:
        raise CetError(f"unknown --mode {mode!r}: choose {', '.join(MODES)}")
    if fusion is not None and fusion not in FUSIONS:
        raise CetError(f"unknown --fusion {fusion!r}: choose {', '.join(FUSIONS)}")
    if not query.strip():
        raise CetError("the query is empty")
    if k is not None and k < 1:
        raise CetError(f"--k must be at least 1, not {k}")
    cfg = get_config(kb={"db": db, "fusion": fusion})
    retriever = open_retriever(cfg)
    filters = Filters(source=source or None, language=language or None, kind=kind or None)
    hits = retriever.search(query, k or cfg.kb.top_k, filters, mode=mode)  # type: ignore[arg-type]
    if json_out:
        emit_json([h.to_dict() for h in hits])
        return
    if not hits:
        console.print("no hits")
    for rank, hit in enumerate(hits, start=1):
        console.rule(f"{rank}. {hit.title}  [dim]{hit.source}/{hit.kind}  score {hit.score:.4f}[/]")
        console.print(f"[dim]{hit.path}  id {hit.id}[/]", highlight=False)
        text = hit.text if len(hit.text) < 600 else hit.text[:600] + " …"
        console.print(text, markup=False, highlight=False)


@kb_app.command("stats")
@user_errors
def stats_command(db: str = DbOption, json_out: bool = JsonOption) -> None:
    """What the knowledge base holds: counts by source, kind and language, embedding model, ingests."""
    from cet.knowledge.stores import open_store

    cfg = get_config(kb={"db": db})
    store = open_store(cfg.kb.db, cfg.kb, must_exist=True, read_only=True)
    stats = store.stats()
    store.close()
    if json_out:
        emit_json(stats)
        return
    table = Table(title=f"knowledge base {stats['db']}", show_header=False)
    for key in ("backend", "documents", "chunks", "embeddings", "embedding_model", "embedding_dim"):
        table.add_row(key, str(stats.get(key)))
    for group in ("by_source", "by_kind", "by_language"):
        table.add_row(group, ", ".join(f"{k or '-'}: {v}" for k, v in stats.get(group, {}).items()))
    console.print(table)


PgDirOption = typer.Option(Path("data/postgres"), "--data-dir", help="Where the local cluster lives.")


@postgres_app.command("start")
@user_errors
def postgres_start(data_dir: Path = PgDirOption, json_out: bool = JsonOption) -> None:
    """Start (or reuse) a local PostgreSQL with pgvector and print its URL for --db."""
    from cet.knowledge.stores.postgres_local import start_local_postgres

    url = start_local_postgres(data_dir)
    if json_out:
        emit_json({"url": url, "data_dir": str(data_dir)})
    else:
        console.print(f"PostgreSQL with pgvector is running; use:  --db '{url}'", highlight=False)
        print(url)


@postgres_app.command("stop")
@user_errors
def postgres_stop(data_dir: Path = PgDirOption, json_out: bool = JsonOption) -> None:
    """Stop the local PostgreSQL started by `cet kb postgres start`."""
    from cet.knowledge.stores.postgres_local import stop_local_postgres

    stopped = stop_local_postgres(data_dir)
    if json_out:
        emit_json({"stopped": stopped, "data_dir": str(data_dir)})
    else:
        console.print("stopped" if stopped else "no local PostgreSQL was running there")


@postgres_app.command("status")
@user_errors
def postgres_status(data_dir: Path = PgDirOption, json_out: bool = JsonOption) -> None:
    """Whether the local PostgreSQL runs, and its URL."""
    from cet.knowledge.stores.postgres_local import local_postgres_status

    status = local_postgres_status(data_dir)
    if json_out:
        emit_json(status)
    else:
        console.print(status)


@kb_app.command("testmap")
@user_errors
def testmap_command(
    path: Path = typer.Argument(..., help="A Python repository (a folder with its tests)."),
    method: str = typer.Option("auto", "--method", help="traced (run the tests under coverage), static (read the "
                                                        "code only) or auto (traced, else static)."),
    out: Path = typer.Option(None, "--out", "-o", help="Write the map (function -> tests) here as JSON."),
    per_test_s: int = typer.Option(20, "--per-test-s", min=1, help="Traced: stop a test after this many seconds."),
    json_out: bool = JsonOption,
) -> None:
    """Which tests exercise each function and method of a repository (function level: fixtures, helpers,
    subclassed test classes and the library's own calls followed)."""
    from cet.knowledge.function_map import map_repository
    from cet.progress import spinner

    with spinner(json_out) as progress:
        progress.add_task(f"mapping the tests of {path} ({method})", total=None)
        fmap = map_repository(path, method, per_test_s=per_test_s)
    data = fmap.to_json()
    if out:
        try:
            out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        except OSError as e:
            raise CetError(f"cannot write {out}: {e.strerror or e}") from None
    if json_out:
        emit_json(data if not out else {k: v for k, v in data.items() if k != "map"} | {"out": str(out)})
        return
    table = Table(title=f"test map of {path}", show_header=False)
    for key in ("method", "problem", "tests", "functions", "functions_tested"):
        table.add_row(key, str(data[key]))
    table.add_row("untested", ", ".join(sorted(set(_library(path)) - set(data["map"]))[:10]) or "-")
    console.print(table)


def _library(path: Path) -> list[str]:
    from cet.knowledge.function_map import PythonRepo, read_python_files

    repo = PythonRepo(read_python_files(path)[0])
    return [q for q, f in repo.functions.items() if not f.test]
