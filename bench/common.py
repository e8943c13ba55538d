"""Small helpers shared by the benchmarks: latency statistics, a precomputed-vector embedder, a throwaway
local PostgreSQL with pgvector, and result files.

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


class PrecomputedEmbedder:
    """An Embedder whose embed() returns vectors computed beforehand (retrieval is timed, not embedding)."""

    def __init__(self, name: str, texts: list[str], vectors: np.ndarray) -> None:
        self.name = name
        self.dim = int(vectors.shape[1])
        self._vectors = dict(zip(texts, vectors, strict=True))

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._vectors[t] for t in texts]).astype(np.float32)


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


# --- a workaround for a bug in src (applied only while the bug is there) ---------------------------
class _DowncastIdMap:
    """An IndexIDMap2 whose ``.index`` is the downcast inner index (so ``.index.hnsw`` exists)."""

    def __init__(self, id_map: Any) -> None:
        import faiss

        self._id_map = id_map
        self.index = faiss.downcast_index(id_map.index)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._id_map, name)


def patch_sqlite_hnsw_if_broken() -> bool:
    """Work around ``_HnswIndex.search`` setting ``self.index.index.hnsw.efSearch`` on a faiss IndexIDMap2.

    faiss returns the inner index of an IndexIDMap2 as a plain ``faiss.Index`` proxy, without ``.hnsw``,
    so every HNSW search of SQLiteStore raises AttributeError (src/cet/knowledge/stores/sqlite.py).
    While that line is there, searches run the same code with the inner index downcast. True if patched.
    """
    import inspect

    import faiss

    from cet.knowledge.stores import sqlite

    probe = faiss.IndexIDMap2(faiss.IndexHNSWFlat(4, 8))
    if hasattr(probe.index, "hnsw") or "self.index.index.hnsw" not in inspect.getsource(sqlite._HnswIndex.search):
        return False
    original = sqlite._HnswIndex.search

    def search(self: Any, *args: Any, **kwargs: Any) -> Any:
        real = self.index
        wrapped = getattr(self, "_bench_downcast", None)
        if wrapped is None or wrapped._id_map is not real:
            wrapped = self._bench_downcast = _DowncastIdMap(real)
        self.index = wrapped
        try:
            return original(self, *args, **kwargs)
        finally:
            self.index = real

    sqlite._HnswIndex.search = search  # type: ignore[method-assign]
    log("NOTE: SQLiteStore HNSW search is broken in src (AttributeError: 'Index' object has no attribute 'hnsw'); "
        "benchmarking it with the inner faiss index downcast (faiss.downcast_index), all else unchanged")
    return True
