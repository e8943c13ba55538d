"""Query latency and ANN recall of both stores at 10k and 100k chunks, from real vectors (no corpus embedding).

For each size, builds a fresh SQLiteStore in a temporary directory and a fresh database on a private
local PostgreSQL with pgvector (started here, stopped at the end), loads the same corpus into both
(the SQLite file is searched twice: "sqlite" with its keyword half in the Tantivy index, "sqlite-fts5" with
SQLite FTS5 as before issue 14, the baseline measured in the same rounds)
(real chunks and vectors from data/kb.sqlite, grown synthetically, see bench/corpus.py), and times
per query, p50/p99, warm: BM25 (k=50), exact vector search (k=10), HNSW vector search (k=10), and
hybrid retrieval through HybridRetriever.ranked (BM25 50 + vectors 50, k=10; with the configured
fusion, convex by default, and with RRF) given the precomputed query vector, so retrieval is timed
without embedding; query embedding latency is measured on its own. Recall@10 is HNSW against exact,
and hybrid-with-HNSW against hybrid-with-exact. Load throughput and index build times come out of
the same run. Every ratio compares numbers measured in this run (the machine is shared and noisy).

    .venv/bin/python bench/query_latency.py [--sizes 10000 100000] [--queries 200] [--stores sqlite pgvector]
        [--db data/kb.sqlite] [--seed 0] [--fusions convex rrf] [--json]

Always writes bench/results/query_latency.json; ``--json`` also prints that JSON instead of the table.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from cet.config import KnowledgeConfig
from cet.knowledge.records import Filters
from cet.knowledge.retrieval import FUSIONS, Fusion, HybridRetriever
from cet.knowledge.stores.base import DocumentBatch, Store
from common import (
    drop_database,
    fresh_database,
    latency_summary,
    local_postgres,
    log,
    ratio,
    run_and_report,
    temp_dir,
    timed,
)
from corpus import (
    DEFAULT_DB,
    Corpus,
    batches,
    corpus_size,
    load_real_corpus,
    query_texts,
    stored_model,
    synthetic_corpus,
)

GOAL_P50_MS = 20.0
GOAL_RECALL = 0.95
GOAL_SIZE = 100_000
WARMUP_QUERIES = 20
ROUND_QUERIES = 20
EMBED_QUERIES = 40
DOCS_PER_BATCH = 1000
NO_FILTERS = Filters()
BASE_MODES = {  # mode -> label in the table; hybrid modes are added per fusion (see hybrid_mode)
    "bm25": "BM25 (k=50)",
    "exact": "vector exact (k=10)",
    "hnsw": "vector HNSW (k=10)",
}
Runner = Callable[[str, np.ndarray], list[str]]


# --- loading ----------------------------------------------------------------------------------
def write_corpus(store: Store, corpus: Corpus, model: str) -> float:
    """Write the corpus in batches of DOCS_PER_BATCH documents; seconds taken."""
    started = time.perf_counter()
    for documents, chunks, vectors in batches(corpus, DOCS_PER_BATCH):
        store.write_batch(DocumentBatch(documents, chunks, vectors), model)
    return time.perf_counter() - started


def load_sqlite(path: Path, corpus: Corpus, model: str, probe: np.ndarray, cfg: KnowledgeConfig) -> tuple[Any, dict]:
    """A SQLiteStore (HNSW from the first vector on) holding the corpus, and its load/build timings."""
    from cet.knowledge.stores.sqlite import SQLiteStore

    def open_store() -> SQLiteStore:
        return SQLiteStore(path, ann_threshold=1, hnsw_m=cfg.hnsw_m, hnsw_ef_construction=cfg.hnsw_ef_construction,
                           hnsw_ef_search=cfg.hnsw_ef_search, keyword_index_threshold=1)

    store = open_store()
    store.bind_embedding_model(model, int(corpus[2].shape[1]))
    write_s = write_corpus(store, corpus, model)
    _, cache_s = timed(lambda: store.vector_search(probe, 10, NO_FILTERS, exact=True))  # reads the matrix
    _, build_s = timed(lambda: store.vector_search(probe, 10, NO_FILTERS))  # builds and saves the index
    _, keyword_build_s = timed(lambda: store.keyword_search("index build probe", 10, NO_FILTERS))  # Tantivy
    reopened = open_store()
    try:
        _, reload_cache_s = timed(lambda: reopened.vector_search(probe, 10, NO_FILTERS, exact=True))
        _, reload_s = timed(lambda: reopened.vector_search(probe, 10, NO_FILTERS))  # reads the saved index
    finally:
        reopened.close()
    n = corpus_size(corpus)
    return store, {
        "write_s": write_s, "write_chunks_per_s": n / write_s, "vector_cache_load_s": cache_s,
        "hnsw_build_s": build_s, "hnsw_load_from_disk_s": reload_s, "vector_cache_reload_s": reload_cache_s,
        "load_total_s": write_s + cache_s + build_s, "chunks_per_s_incl_index": n / (write_s + cache_s + build_s),
        "db_bytes": path.stat().st_size, "hnsw_file_bytes": Path(f"{path}.hnsw").stat().st_size,
        "tantivy_build_s": keyword_build_s,
        "tantivy_bytes": sum(f.stat().st_size for f in Path(f"{path}.tantivy").rglob("*") if f.is_file()),
    }


def fts5_twin(path: Path, cfg: KnowledgeConfig) -> Any:
    """The same SQLite file opened with its keyword search on FTS5 (the baseline before issue 14)."""
    from cet.knowledge.stores.sqlite import SQLiteStore

    return SQLiteStore(path, ann_threshold=1, hnsw_m=cfg.hnsw_m, hnsw_ef_construction=cfg.hnsw_ef_construction,
                       hnsw_ef_search=cfg.hnsw_ef_search, keyword_index_threshold=10**12,
                       bm25_common_fraction=cfg.bm25_common_fraction)


def load_pgvector(url: str, corpus: Corpus, model: str, cfg: KnowledgeConfig) -> tuple[Any, dict]:
    """A PgVectorStore holding the corpus (bulk_load: HNSW built once at the end), and its timings."""
    from cet.knowledge.stores.pgvector import PgVectorStore

    store = PgVectorStore(url, hnsw_m=cfg.hnsw_m, hnsw_ef_construction=cfg.hnsw_ef_construction,
                          hnsw_ef_search=cfg.hnsw_ef_search)
    store.bind_embedding_model(model, int(corpus[2].shape[1]))
    started = time.perf_counter()
    with store.bulk_load():
        write_s = write_corpus(store, corpus, model)
    total_s = time.perf_counter() - started
    n = corpus_size(corpus)
    return store, {
        "write_s": write_s, "write_chunks_per_s": n / write_s, "hnsw_build_s": total_s - write_s,
        "load_total_s": total_s, "chunks_per_s_incl_index": n / total_s,
        "db_bytes": store.stats()["db_bytes"],
    }


# --- measuring --------------------------------------------------------------------------------
def hybrid_mode(fusion: str, exact: bool = False) -> str:
    return f"hybrid {fusion}, {'exact' if exact else 'HNSW'}"


def mode_labels(fusions: list[str]) -> dict[str, str]:
    labels = dict(BASE_MODES)
    for fusion in fusions:
        labels |= {hybrid_mode(fusion): hybrid_mode(fusion), hybrid_mode(fusion, True): hybrid_mode(fusion, True)}
    return labels


def runners(store: Store, retriever: HybridRetriever, fusions: list[Fusion]) -> dict[str, Runner]:
    """The timed operations on one store; hybrid ones get the query vector precomputed (no embedding)."""

    def ids(ranked: list[tuple[str, float]]) -> list[str]:
        return [cid for cid, _ in ranked]

    def hybrid(exact: bool, fusion: Fusion) -> Runner:
        return lambda q, v: ids(retriever.ranked(q, 10, NO_FILTERS, "hybrid", exact=exact, fusion=fusion,
                                                 query_vector=v))

    out: dict[str, Runner] = {
        "bm25": lambda q, v: ids(store.keyword_search(q, 50, NO_FILTERS)),
        "exact": lambda q, v: ids(store.vector_search(v, 10, NO_FILTERS, exact=True)),
        "hnsw": lambda q, v: ids(store.vector_search(v, 10, NO_FILTERS)),
    }
    for fusion in fusions:
        out[hybrid_mode(fusion)] = hybrid(False, fusion)
        out[hybrid_mode(fusion, True)] = hybrid(True, fusion)
    return out


def measure(
    by_store: dict[str, dict[str, Runner]], texts: list[str], vectors: np.ndarray
) -> tuple[dict[str, dict[str, list[float]]], dict[str, dict[str, list[list[str]]]]]:
    """Per-query seconds and result ids of every (store, mode), after a warm-up.

    The queries run in rounds of ROUND_QUERIES; within a round each (store, mode) runs over the round's
    queries back to back, in an order rotated every round. So every operation is timed after calls of
    its own kind (not in the wake of another's threads), and the load of the shared machine, which
    drifts, is spread evenly over all of them.
    """
    for i in range(min(WARMUP_QUERIES, len(texts))):
        for modes in by_store.values():
            for run in modes.values():
                run(texts[i], vectors[i])
    jobs = [(store, mode, run) for store, modes in by_store.items() for mode, run in modes.items()]
    seconds: dict[str, dict[str, list[float]]] = {s: {m: [0.0] * len(texts) for m in ms} for s, ms in by_store.items()}
    results: dict[str, dict[str, list[list[str]]]] = {s: {m: [[] for _ in texts] for m in ms}
                                                      for s, ms in by_store.items()}
    for number, start in enumerate(range(0, len(texts), ROUND_QUERIES)):
        shift = number % len(jobs)
        for store, mode, run in jobs[shift:] + jobs[:shift]:
            for i in range(start, min(start + ROUND_QUERIES, len(texts))):
                started = time.perf_counter()
                results[store][mode][i] = run(texts[i], vectors[i])
                seconds[store][mode][i] = time.perf_counter() - started
    return seconds, results


def recall_at_10(approx: list[list[str]], exact: list[list[str]]) -> float:
    """Mean over queries of |approx top-10 & exact top-10| / |exact top-10|."""
    values = [len(set(a[:10]) & set(e[:10])) / len(e[:10]) for a, e in zip(approx, exact, strict=True) if e]
    return float(np.mean(values)) if values else 0.0


def embedding_latency(texts: list[str]) -> dict[str, dict[str, float]]:
    """p50/p99 of embedding one short query at a time, for both packaged MiniLM backends."""
    from cet.knowledge.embedding import OnnxEmbedder, SentenceTransformerEmbedder

    out = {}
    for name, make in (("onnx", OnnxEmbedder), ("sentence-transformers", SentenceTransformerEmbedder)):
        embedder: Any = make()
        for text in texts[:5]:
            embedder.embed([text])
        seconds = []
        for text in texts[:EMBED_QUERIES]:
            started = time.perf_counter()
            embedder.embed([text])
            seconds.append(time.perf_counter() - started)
        out[name] = latency_summary(seconds)
        log(f"query embedding {name}: p50 {out[name]['p50_ms']:.1f} ms")
    return out


# --- one size ---------------------------------------------------------------------------------
def bench_size(
    n: int, real: Corpus, queries: tuple[list[str], np.ndarray], model: str, cfg: KnowledgeConfig, seed: int,
    sqlite: bool, pg_url: str | None, fusions: list[Fusion],
) -> dict[str, Any]:
    """Load an ``n``-chunk corpus into the chosen stores and measure them; the stores are removed after."""
    texts, vectors = queries
    corpus, gen_s = timed(lambda: synthetic_corpus(real, n, seed))
    size = corpus_size(corpus)
    log(f"[{n}] corpus: {size} chunks in {len(corpus[0])} documents ({gen_s:.1f} s to generate)")
    out: dict[str, Any] = {"chunks": size, "documents": len(corpus[0]), "real_chunks": min(size, corpus_size(real)),
                           "generate_s": gen_s, "load": {}}
    stores: dict[str, Any] = {}
    database = f"bench_{n}"
    with temp_dir("cet-bench-sqlite-") as tmp:
        try:
            if sqlite:
                stores["sqlite"], out["load"]["sqlite"] = load_sqlite(tmp / "kb.sqlite", corpus, model, vectors[0], cfg)
                stores["sqlite-fts5"] = fts5_twin(tmp / "kb.sqlite", cfg)
                out["load"]["sqlite-fts5"] = out["load"]["sqlite"]
                log(f"[{n}] sqlite loaded: {_load_line(out['load']['sqlite'])}, Tantivy build "
                    f"{out['load']['sqlite']['tantivy_build_s']:.1f} s")
            if pg_url is not None:
                db_url = fresh_database(pg_url, database)
                stores["pgvector"], out["load"]["pgvector"] = load_pgvector(db_url, corpus, model, cfg)
                log(f"[{n}] pgvector loaded: {_load_line(out['load']['pgvector'])}")
            del corpus
            by_store = {name: runners(s, retriever(s, cfg), fusions) for name, s in stores.items()}
            (seconds, results), measure_s = timed(lambda: measure(by_store, texts, vectors))
            log(f"[{n}] measured {len(texts)} queries in {measure_s:.1f} s")
        finally:
            for s in stores.values():
                s.close()
            if pg_url is not None:
                drop_database(pg_url, database)
    out["latency"] = {s: {m: latency_summary(v) for m, v in modes.items()} for s, modes in seconds.items()}
    out["recall@10"] = {
        s: {"hnsw_vs_exact": recall_at_10(r["hnsw"], r["exact"]),
            **{f"hybrid {f}, HNSW vs exact": recall_at_10(r[hybrid_mode(f)], r[hybrid_mode(f, True)])
               for f in fusions}}
        for s, r in results.items()
    }
    if {"sqlite", "sqlite-fts5"} <= results.keys():  # how far the two keyword engines agree
        tv, fts = results["sqlite"], results["sqlite-fts5"]
        out["keyword_agreement"] = {
            "bm25_top10_tantivy_vs_fts5": recall_at_10(tv["bm25"], fts["bm25"]),
            **{f"hybrid {f}, Tantivy vs FTS5 (exact vectors)": recall_at_10(tv[hybrid_mode(f, True)],
                                                                          fts[hybrid_mode(f, True)])
               for f in fusions}}
    return out


def retriever(store: Store, cfg: KnowledgeConfig) -> HybridRetriever:
    """A retriever configured as cet's own (no embedder: the benchmark passes query vectors)."""
    return HybridRetriever(store, None, candidates=cfg.candidates, rrf_k=cfg.rrf_k, fusion=cfg.fusion,
                           alpha=cfg.fusion_alpha)


def _load_line(load: dict[str, float]) -> str:
    return (f"write {load['write_s']:.1f} s ({load['write_chunks_per_s']:.0f} chunks/s), "
            f"HNSW build {load['hnsw_build_s']:.1f} s")


# --- report -----------------------------------------------------------------------------------
def goal_check(result: dict[str, Any]) -> dict[str, Any]:
    """Whether hybrid p50 < 20 ms with hybrid recall@10 >= 0.95 at 100k chunks, per store and fusion
    (retrieval only)."""
    sizes = result["sizes"]
    key = str(GOAL_SIZE) if str(GOAL_SIZE) in sizes else None
    if key is None:
        return {"evaluated": False, "reason": f"{GOAL_SIZE} chunks not measured in this run"}
    out: dict[str, Any] = {"evaluated": True, "size": sizes[key]["chunks"]}
    for store, modes in sizes[key]["latency"].items():
        out[store] = {"bm25_p50_ms": modes["bm25"]["p50_ms"], "hnsw_p50_ms": modes["hnsw"]["p50_ms"]}
        for fusion in result["fusions"]:
            p50 = modes[hybrid_mode(fusion)]["p50_ms"]
            recall = sizes[key]["recall@10"][store][f"hybrid {fusion}, HNSW vs exact"]
            out[store][fusion] = {"hybrid_p50_ms": p50, "hybrid_recall@10": recall,
                                  "met": bool(p50 < GOAL_P50_MS and recall >= GOAL_RECALL)}
    return out


def _cell(summary: dict[str, float] | None) -> str:
    if summary is None:
        return f"{'-':>26}"
    return f"{summary['p50_ms']:>15.2f} / {summary['p99_ms']:>7.2f}"


def print_size(res: dict[str, Any], embed: dict[str, dict[str, float]], fusions: list[str]) -> None:
    stores = list(res["latency"])
    print(f"\n== {res['chunks']:,} chunks in {res['documents']:,} documents "
          f"({res['real_chunks']:,} real, {res['chunks'] - res['real_chunks']:,} synthetic) ==")
    header = f"{'':24}" + "".join(f"{s + ' p50 / p99 ms':>26}" for s in stores)
    both = "pgvector" in stores and "sqlite" in stores
    print(header + (f"{'pgvector/sqlite p50':>22}" if both else ""))
    for mode, label in mode_labels(fusions).items():
        cells = "".join(_cell(res["latency"][s].get(mode)) for s in stores)
        extra = ""
        if both and all(mode in res["latency"][s] for s in stores):
            pg_over_sqlite = ratio(res["latency"]["pgvector"][mode]["p50_ms"], res["latency"]["sqlite"][mode]["p50_ms"])
            extra = f"{pg_over_sqlite:>21.2f}x"
        print(f"{label:24}{cells}{extra}")
    for s in stores:
        lat, rec, load = res["latency"][s], res["recall@10"][s], res["load"][s]
        hybrid = lat[hybrid_mode(fusions[0])]["p50_ms"]
        recalls = ", ".join(f"hybrid {f} HNSW vs exact {rec[f'hybrid {f}, HNSW vs exact']:.3f}" for f in fusions)
        print(f"{s}: HNSW speed-up over exact {ratio(lat['exact']['p50_ms'], lat['hnsw']['p50_ms']):.1f}x (p50); "
              f"recall@10 HNSW vs exact {rec['hnsw_vs_exact']:.3f}, {recalls}")
        print(f"{s}: BM25 (k=50) p50 is {ratio(lat['bm25']['p50_ms'], hybrid):.0%} of hybrid {fusions[0]} p50, "
              f"HNSW (k=10) {ratio(lat['hnsw']['p50_ms'], hybrid):.0%}")
        e2e = "; ".join(f"+ {name} {e['p50_ms']:.1f} ms = {hybrid + e['p50_ms']:.1f} ms" for name, e in embed.items())
        print(f"{s}: hybrid {fusions[0]} end-to-end p50 ~ retrieval {hybrid:.1f} ms {e2e}")
        extra = (f", vector cache load {load['vector_cache_load_s']:.1f} s, saved index reload "
                 f"{load['hnsw_load_from_disk_s']:.2f} s" if s == "sqlite" else "")
        print(f"{s}: load without embedding {load['write_s']:.1f} s = {load['write_chunks_per_s']:.0f} chunks/s; "
              f"HNSW build {load['hnsw_build_s']:.1f} s{extra}; incl. index {load['chunks_per_s_incl_index']:.0f} "
              f"chunks/s; {load['db_bytes'] / 2**20:.0f} MiB")
    if {"sqlite", "sqlite-fts5"} <= set(stores):
        tv, fts = res["latency"]["sqlite"], res["latency"]["sqlite-fts5"]
        hybrid = hybrid_mode(fusions[0])
        agree = res.get("keyword_agreement", {})
        bm25_speedup = ratio(fts["bm25"]["p50_ms"], tv["bm25"]["p50_ms"])
        hybrid_speedup = ratio(fts[hybrid]["p50_ms"], tv[hybrid]["p50_ms"])
        print(f"Tantivy vs FTS5 (same file, same rounds): BM25 p50 {bm25_speedup:.1f}x faster, hybrid {fusions[0]} "
              f"p50 {hybrid_speedup:.1f}x faster; "
              + ", ".join(f"{k} {v:.3f}" for k, v in agree.items())
              + f"; Tantivy build {res['load']['sqlite']['tantivy_build_s']:.1f} s, "
              f"{res['load']['sqlite']['tantivy_bytes'] / 2**20:.0f} MiB")
    if "pgvector" in stores and "sqlite" in stores:
        sq, pg = res["load"]["sqlite"], res["load"]["pgvector"]
        print(f"pgvector/sqlite: write throughput {ratio(pg['write_chunks_per_s'], sq['write_chunks_per_s']):.2f}x, "
              f"HNSW build time {ratio(pg['hnsw_build_s'], sq['hnsw_build_s']):.2f}x")


def print_report(result: dict[str, Any]) -> None:
    embed = result["query_embedding"]
    print(f"{result['queries']} queries, vectors from {result['model']} (stored), HNSW M={result['hnsw']['m']} "
          f"efConstruction={result['hnsw']['ef_construction']} efSearch={result['hnsw']['ef_search']}, "
          f"{result['machine']['cpus']} CPUs")
    st_over_onnx = ratio(embed["sentence-transformers"]["p50_ms"], embed["onnx"]["p50_ms"])
    print("query embedding, one short query: " + "; ".join(
        f"{name} p50 {e['p50_ms']:.1f} ms / p99 {e['p99_ms']:.1f} ms" for name, e in embed.items())
        + f" (sentence-transformers/onnx {st_over_onnx:.1f}x)")
    for res in result["sizes"].values():
        print_size(res, embed, result["fusions"])
    goal = result["goal"]
    print(f"\nGoal: hybrid p50 < {GOAL_P50_MS:.0f} ms at {GOAL_SIZE:,} chunks with recall@10 >= {GOAL_RECALL} "
          "against exact (retrieval only, query vector given):")
    if not goal["evaluated"]:
        print(f"  not evaluated: {goal['reason']}")
    for store in ("sqlite", "sqlite-fts5", "pgvector"):
        if store in goal:
            g = goal[store]
            verdicts = "; ".join(
                f"{f} {'MET' if g[f]['met'] else 'NOT MET'} (p50 {g[f]['hybrid_p50_ms']:.2f} ms, "
                f"recall@10 {g[f]['hybrid_recall@10']:.3f})" for f in result["fusions"])
            print(f"  {store}: {verdicts}; BM25 alone p50 {g['bm25_p50_ms']:.2f} ms, "
                  f"HNSW alone {g['hnsw_p50_ms']:.2f} ms")


# --- main -------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--stores", nargs="+", choices=("sqlite", "pgvector"), default=["sqlite", "pgvector"])
    parser.add_argument("--db", default=DEFAULT_DB, help="the real knowledge base to read chunks and vectors from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fusions", nargs="+", choices=FUSIONS, default=None,
                        help="hybrid fusions to time (default: the configured one; each adds two BM25-bound modes)")
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    return parser.parse_args()


def run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = KnowledgeConfig()
    model = stored_model(args.db)
    fusions: list[Fusion] = list(dict.fromkeys(args.fusions or [cfg.fusion]))
    real, load_s = timed(lambda: load_real_corpus(args.db))
    log(f"real corpus: {corpus_size(real)} chunks in {len(real[0])} documents from {args.db} ({load_s:.1f} s)")
    texts = query_texts(args.queries, args.seed)
    from cet.knowledge.embedding import OnnxEmbedder

    vectors = OnnxEmbedder().embed(texts)
    result: dict[str, Any] = {
        "queries": len(texts), "model": model, "real_chunks_available": corpus_size(real), "seed": args.seed,
        "hnsw": {"m": cfg.hnsw_m, "ef_construction": cfg.hnsw_ef_construction, "ef_search": cfg.hnsw_ef_search},
        "candidates": cfg.candidates, "fusions": fusions, "fusion_alpha": cfg.fusion_alpha,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "query_embedding": embedding_latency(texts), "sizes": {},
    }
    with temp_dir("cet-bench-pg-") as pg_dir:
        server: AbstractContextManager[str | None] = (
            local_postgres(pg_dir / "data") if "pgvector" in args.stores else nullcontext(None)
        )
        with server as pg_url:
            for n in args.sizes:
                result["sizes"][str(n)] = bench_size(
                    n, real, (texts, vectors), model, cfg, args.seed, "sqlite" in args.stores, pg_url, fusions
                )
    result["goal"] = goal_check(result)
    return result


def main() -> int:
    return run_and_report("query_latency", parse_args(), run, print_report)


if __name__ == "__main__":
    raise SystemExit(main())
