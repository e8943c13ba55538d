"""Ingest throughput (chunks/s) with and without embedding, SQLite and pgvector side by side, in one run.

The same ~300 real chunk texts (sampled from data/kb.sqlite across its sources, each made into a
document of its own with a unique id) are ingested through cet's Ingestor, into fresh stores, case by
case on both backends in turn (so both are timed under the same machine load):

  (a) embedding with SentenceTransformerEmbedder (the packaged all-MiniLM-L6-v2, torch, CPU)
  (b) embedding with OnnxEmbedder (its int8 ONNX twin)
  (c) without embedding: the same documents with changed metadata ingested again into store (a), so
      every document is rewritten and every vector comes from the embedding cache
  (c') without embedding, store only: write_batch with the stored real vectors, into a fresh store
  (d) a re-ingest of unchanged data into store (a): every document is skipped by its hash

Where the index work goes: SQLite writes no ANN index at ingest (its HNSW sidecar catches up at the
next query), while pgvector inserts every row into its HNSW index (the Ingestor does not use
bulk_load). A rewrite (c) re-inserts vectors the index already holds, which pgvector's HNSW handles
cheaply as duplicates; a fresh store (a, b, c') pays the full insert cost.

The cases without embedding take well under a second, so they are repeated (median of --repeats).

pgvector runs on a private local PostgreSQL (default settings) started here and stopped at the end.
All ratios compare numbers from this run (the machine is shared and noisy).

    .venv/bin/python bench/ingest_throughput.py [--n 300] [--stores sqlite pgvector] [--db data/kb.sqlite]
        [--seed 0] [--repeats 3] [--json]

Always writes bench/results/ingest_throughput.json; ``--json`` also prints it instead of the table.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from cet.knowledge.chunking import chunk_document
from cet.knowledge.embedding import Embedder
from cet.knowledge.ingest import Ingestor
from cet.knowledge.records import Chunk, Document
from cet.knowledge.stores.base import DocumentBatch, Store
from common import drop_database, fresh_database, local_postgres, log, ratio, run_and_report, temp_dir
from corpus import DEFAULT_DB, load_real_corpus, stored_model

SOURCE = "bench"
BATCH_DOCUMENTS = 64  # the Ingestor's default
CASES = {
    "st": "(a) embed: sentence-transformers",
    "onnx": "(b) embed: onnx int8",
    "cached": "(c) no embedding: Ingestor, cache hit",
    "write_only": "(c') no embedding: write_batch only",
    "unchanged": "(d) re-ingest unchanged (skipped)",
}
StoreFactory = Callable[[str], AbstractContextManager[Store]]


# --- data ---------------------------------------------------------------------------------------
def sample_documents(db: str, n: int, seed: int) -> tuple[list[Document], dict[str, np.ndarray]]:
    """``n`` real chunks (a seeded sample over all sources) as one-chunk documents, and doc_id -> stored vector."""
    _, chunks, vectors = load_real_corpus(db)
    flat = [c for doc_chunks in chunks for c in doc_chunks]
    picked = sorted(random.Random(seed).sample(range(len(flat)), min(n, len(flat))))
    documents = [_as_document(i, flat[row]) for i, row in enumerate(picked)]
    return documents, {d.doc_id: vectors[row] for d, row in zip(documents, picked, strict=True)}


def _as_document(number: int, chunk: Chunk) -> Document:
    metadata = {k: v for k, v in chunk.metadata.items() if k != "format"}
    return Document(source=SOURCE, doc_id=f"{SOURCE}:{number}", title=chunk.title, text=chunk.text, kind=chunk.kind,
                    path=chunk.path, format="text", language=chunk.language, metadata=metadata)


def with_changed_metadata(documents: list[Document], revision: int) -> list[Document]:
    """The same texts with one metadata field more: new document hashes, unchanged chunk text hashes."""
    return [replace(d, metadata={**d.metadata, "bench_revision": revision}) for d in documents]


def chunk_count(documents: list[Document]) -> int:
    return sum(len(chunk_document(d)) for d in documents)


# --- stores -------------------------------------------------------------------------------------
def sqlite_factory(root: Path) -> StoreFactory:
    @contextmanager
    def make(name: str) -> Iterator[Store]:
        from cet.knowledge.stores.sqlite import SQLiteStore

        store = SQLiteStore(root / f"{name}.sqlite")
        try:
            yield store
        finally:
            store.close()

    return make


def pgvector_factory(server_url: str) -> StoreFactory:
    @contextmanager
    def make(name: str) -> Iterator[Store]:
        from cet.config import KnowledgeConfig
        from cet.knowledge.stores.pgvector import PgVectorStore

        cfg = KnowledgeConfig()
        store = PgVectorStore(fresh_database(server_url, name), hnsw_m=cfg.hnsw_m,
                              hnsw_ef_construction=cfg.hnsw_ef_construction, hnsw_ef_search=cfg.hnsw_ef_search)
        try:
            yield store
        finally:
            store.close()
            drop_database(server_url, name)

    return make


# --- cases --------------------------------------------------------------------------------------
def timed_ingest(store: Store, embedder: Embedder, documents: list[Document], n_chunks: int) -> dict[str, Any]:
    """Ingest through cet's Ingestor; throughput counts the chunks the documents hold, written or not."""
    ingestor = Ingestor(store, embedder)
    started = time.perf_counter()
    report = ingestor.ingest(iter(documents), SOURCE, "bench")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "chunks": n_chunks, "chunks_per_s": n_chunks / seconds,
            "chunks_written": report.chunks_written, "texts_embedded": report.texts_embedded,
            "embeddings_reused": report.embeddings_reused, "documents_unchanged": report.documents_unchanged,
            "embed_seconds": report.embed_seconds}


def timed_write_only(
    store: Store, model: str, documents: list[Document], vectors: dict[str, np.ndarray]
) -> dict[str, Any]:
    """write_batch in Ingestor-sized batches, each chunk given its document's stored vector (no embedding)."""
    store.bind_embedding_model(model, int(next(iter(vectors.values())).shape[0]))
    started = time.perf_counter()
    written = 0
    for start in range(0, len(documents), BATCH_DOCUMENTS):
        docs = documents[start : start + BATCH_DOCUMENTS]
        chunks = [chunk_document(d) for d in docs]
        rows = np.stack([vectors[d.doc_id] for d, doc_chunks in zip(docs, chunks, strict=True) for _ in doc_chunks])
        store.write_batch(DocumentBatch(docs, chunks, rows), model)
        written += len(rows)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "chunks": written, "chunks_per_s": written / seconds, "chunks_written": written}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median time, with every run's seconds beside it."""
    chosen = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    return {**chosen, "runs_seconds": [r["seconds"] for r in runs]} if len(runs) > 1 else chosen


def _each(makers: dict[str, StoreFactory], turn: int) -> list[tuple[str, StoreFactory]]:
    """The backends in an order that alternates from one turn to the next (neither always goes first)."""
    items = list(makers.items())
    return items if turn % 2 == 0 else items[::-1]


def run_cases(
    makers: dict[str, StoreFactory], embedders: dict[str, Embedder], documents: list[Document],
    vectors: dict[str, np.ndarray], model: str, repeats: int,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every case on every backend, case by case, so the backends are timed side by side (the machine's load
    drifts); fresh stores, except that (a), (c) and (d) share one per backend (they build on each other).

    The cases without embedding are quick, so they run ``repeats`` times (median kept): (c) with a new
    metadata revision each time, (d) on the last revision, (c') into a fresh store each time.
    """
    n_chunks = chunk_count(documents)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {name: defaultdict(list) for name in makers}

    def record(name: str, case: str, run: dict[str, Any]) -> None:
        runs[name][case].append(run)
        log(f"{name} {CASES[case].split(' ')[0]} {run['chunks_per_s']:.1f} chunks/s")

    revisions = [with_changed_metadata(documents, r) for r in range(1, repeats + 1)]
    with ExitStack() as stack:
        shared = {name: stack.enter_context(make("bench_st")) for name, make in makers.items()}
        for name, _ in _each(makers, 0):
            record(name, "st", timed_ingest(shared[name], embedders["st"], documents, n_chunks))
        for turn, docs in enumerate(revisions):
            for name, _ in _each(makers, turn):
                record(name, "cached", timed_ingest(shared[name], embedders["st"], docs, n_chunks))
        for turn in range(repeats):
            for name, _ in _each(makers, turn):
                record(name, "unchanged", timed_ingest(shared[name], embedders["st"], revisions[-1], n_chunks))
    for name, make in _each(makers, 1):
        with make("bench_onnx") as store:
            record(name, "onnx", timed_ingest(store, embedders["onnx"], documents, n_chunks))
    for turn in range(repeats):
        for name, make in _each(makers, turn):
            with make(f"bench_write_{turn}") as store:
                record(name, "write_only", timed_write_only(store, model, documents, vectors))
    return {name: {case: median_run(runs[name][case]) for case in CASES} for name in makers}


def load_embedders(warmup: list[str]) -> dict[str, Embedder]:
    """Both packaged embedders, loaded and warmed up (loading is not part of any timing)."""
    from cet.knowledge.embedding import OnnxEmbedder, SentenceTransformerEmbedder

    embedders: dict[str, Embedder] = {"st": SentenceTransformerEmbedder(), "onnx": OnnxEmbedder()}
    for embedder in embedders.values():
        embedder.embed(warmup)
    return embedders


# --- report -------------------------------------------------------------------------------------
def ratios(cases: dict[str, dict[str, Any]]) -> dict[str, float]:
    speed = {name: case["chunks_per_s"] for name, case in cases.items()}
    return {
        "(c)/(a) no embedding vs sentence-transformers": ratio(speed["cached"], speed["st"]),
        "(c)/(b) no embedding vs onnx": ratio(speed["cached"], speed["onnx"]),
        "(b)/(a) onnx vs sentence-transformers": ratio(speed["onnx"], speed["st"]),
        "(c')/(c) write_batch only vs Ingestor cache hit": ratio(speed["write_only"], speed["cached"]),
        "(d)/(c) unchanged skip vs rewrite": ratio(speed["unchanged"], speed["cached"]),
        "embedding share of (a) time": cases["st"]["embed_seconds"] / cases["st"]["seconds"],
        "embedding share of (b) time": cases["onnx"]["embed_seconds"] / cases["onnx"]["seconds"],
    }


def print_report(result: dict[str, Any]) -> None:
    stores = list(result["stores"])
    print(f"{result['documents']} documents / {result['chunks']} chunks of real text "
          f"(mean {result['mean_chars']:.0f} chars), {result['cpus']} CPUs")
    print(f"{'case':40}" + "".join(f"{s + ' chunks/s':>20}{'s':>8}" for s in stores)
          + (f"{'pgvector/sqlite':>17}" if len(stores) == 2 else ""))
    for case, label in CASES.items():
        row = {s: result["stores"][s][case] for s in stores}
        cells = "".join(f"{row[s]['chunks_per_s']:>20.1f}{row[s]['seconds']:>8.3f}" for s in stores)
        extra = ""
        if len(stores) == 2:
            extra = f"{ratio(row['pgvector']['chunks_per_s'], row['sqlite']['chunks_per_s']):>16.2f}x"
        print(f"{label:40}{cells}{extra}")
    if "pgvector" in stores:
        print("(pgvector maintains its HNSW index row by row here; (c) rewrites vectors already in the index)")
    for s in stores:
        print(f"\n{s} ratios:")
        for name, value in result["ratios"][s].items():
            print(f"  {name:50} {value:8.2f}{'' if 'share' in name else 'x'}")


# --- main ---------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="number of real chunk texts")
    parser.add_argument("--stores", nargs="+", choices=("sqlite", "pgvector"), default=["sqlite", "pgvector"])
    parser.add_argument("--db", default=DEFAULT_DB, help="the real knowledge base to sample texts from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each case without embedding (median)")
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    return parser.parse_args()


def run(args: argparse.Namespace) -> dict[str, Any]:
    model = stored_model(args.db)
    documents, vectors = sample_documents(args.db, args.n, args.seed)
    log(f"{len(documents)} documents sampled from {args.db}; loading embedders")
    embedders = load_embedders([d.text for d in documents[:16]])
    result: dict[str, Any] = {
        "documents": len(documents), "chunks": chunk_count(documents), "model_of_stored_vectors": model,
        "mean_chars": float(np.mean([len(d.text) for d in documents])), "cpus": os.cpu_count(),
        "batch_documents": BATCH_DOCUMENTS, "repeats_without_embedding": args.repeats, "stores": {},
    }
    with temp_dir("cet-bench-ingest-") as tmp:
        server: AbstractContextManager[str | None] = (
            local_postgres(tmp / "pg") if "pgvector" in args.stores else nullcontext(None)
        )
        with server as url:
            makers: dict[str, StoreFactory] = {}
            if "sqlite" in args.stores:
                makers["sqlite"] = sqlite_factory(tmp)
            if url is not None:
                makers["pgvector"] = pgvector_factory(url)
            result["stores"] = run_cases(makers, embedders, documents, vectors, model, args.repeats)
    result["ratios"] = {s: ratios(cases) for s, cases in result["stores"].items()}
    return result


def main() -> int:
    return run_and_report("ingest_throughput", parse_args(), run, print_report)


if __name__ == "__main__":
    raise SystemExit(main())
