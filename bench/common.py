"""Small helpers shared by the benchmarks: timing and latency statistics, a throwaway local PostgreSQL
with pgvector, and result files.

Not a command; imported by the scripts next to it, e.g.

    .venv/bin/python bench/query_latency.py --sizes 10000
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def log(message: str) -> None:
    """Progress on stderr (stdout carries the table or the JSON)."""
    print(message, file=sys.stderr, flush=True)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(fn's result, seconds it took)."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def latency_summary(seconds: list[float]) -> dict[str, float]:
    """p50 / p99 / mean in milliseconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "n": len(ms)}


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


@contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def local_postgres(data_dir: Path) -> Iterator[str]:
    """A private PostgreSQL with pgvector on ``data_dir`` (default settings), always stopped on exit."""
    from cet.knowledge.stores.postgres_local import start_local_postgres, stop_local_postgres

    try:
        yield start_local_postgres(data_dir)
    finally:
        stopped = stop_local_postgres(data_dir)
        log(f"local PostgreSQL on {data_dir} stopped" if stopped else f"no PostgreSQL left running on {data_dir}")


def fresh_database(url: str, name: str) -> str:
    """Create an empty database ``name`` on the server at ``url`` (dropping an old one); return its URL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def drop_database(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` (the directory is created when missing)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=float) + "\n", encoding="utf-8")
    return path



def run_and_report(name: str, args: Any, run: Callable[[Any], dict[str, Any]],
                   print_report: Callable[[dict[str, Any]], None]) -> int:
    """A bench's main: run it, time it, save the JSON result, print the table (or the JSON with --json)."""
    started = time.perf_counter()
    result = run(args)
    result["wall_s"] = time.perf_counter() - started
    path = write_result(name, result)
    if args.json:
        print(json.dumps(result, indent=2, default=float))
    else:
        print_report(result)
        print(f"\n(wall time {result['wall_s']:.0f} s; JSON in {path})")
    return 0
