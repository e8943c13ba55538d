"""Retrieval quality: BM25-only vs vector-only vs hybrid (convex and RRF fusion) on the labelled Exercism set.

Uses the knowledge base the main job builds (`make run`, data/kb.sqlite); with no such store it builds
one from the Exercism data alone. Prints each mode's recall@5 / MRR / nDCG@10 and the ratio of hybrid to
each single retriever, all measured in this run, once per keyword engine: SQLite FTS5 (the baseline) and the
Tantivy index (issue 14; used at or above kb.keyword_index_threshold chunks, forced here), with the ratio of
their nDCG@10. The store is opened read-only (the Tantivy index is built in memory).

    .venv/bin/python bench/retrieval_quality.py [--db data/kb.sqlite] [--engines fts5 tantivy] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cet.config import load_config
from cet.evaluation.retrieval_eval import METRICS, evaluate_retrieval, exercism_query_set, restrict_to_store
from cet.knowledge.pipeline import ingest_source, open_retriever
from cet.knowledge.sources import read_source
from cet.knowledge.stores import open_store


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="data/kb.sqlite")
    parser.add_argument("--engines", nargs="+", choices=("fts5", "tantivy"), default=["fts5", "tantivy"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cfg = load_config(kb={"db": args.db})
    exercism = cfg.sources.exercism or "../shared/data/exercism"
    if not Path(args.db).exists():
        print(f"{args.db} missing: building it from Exercism only", file=sys.stderr)
        ingest_source(cfg, "exercism", exercism)
    engines = {}
    for engine in args.engines:
        kb = cfg.kb.model_copy(update={"keyword_index_threshold": 1 if engine == "tantivy" else 10**12})
        store = open_store(args.db, kb, must_exist=True, read_only=True)
        try:
            queries = exercism_query_set(read_source("exercism", Path(exercism)), cfg.kb.chunk_max_chars)
            queries = restrict_to_store(queries, store)
            result = evaluate_retrieval(open_retriever(cfg, store), queries)
            result["store_chunks"], result["queries"] = store.stats()["chunks"], len(queries)
        finally:
            store.close()
        engines[engine] = result
    summary = {"engines": engines}
    if {"fts5", "tantivy"} <= engines.keys():
        summary["tantivy_over_fts5_ndcg@10"] = {
            mode: engines["tantivy"]["modes"][mode]["ndcg@10"]["mean"]
            / max(engines["fts5"]["modes"][mode]["ndcg@10"]["mean"], 1e-9) for mode in ("bm25", "hybrid")}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    for engine, result in engines.items():
        print_engine(engine, result, args.db)
    if "tantivy_over_fts5_ndcg@10" in summary:
        print("Tantivy / FTS5 nDCG@10: " + ", ".join(f"{mode} {r:.3f}x"
                                                     for mode, r in summary["tantivy_over_fts5_ndcg@10"].items()))
    return 0


def print_engine(engine: str, result: dict, db: str) -> None:
    print(f"\n[{engine}] {result['queries']} labelled queries {result['families']} over {result['store_chunks']} "
          f"chunks in {db}")
    print(f"{'mode':14}" + "".join(f"{m:>12}" for m in METRICS) + "   | held-out test half: " + " ".join(METRICS))
    for mode, values in result["modes"].items():
        test = " ".join(f"{values['by_split']['test'][m]:.3f}" for m in METRICS)
        print(f"{mode:14}" + "".join(f"{values[m]['mean']:12.3f}" for m in METRICS) + f"   | {test}")
    for base in ("bm25", "vector"):
        ratios = "  ".join(
            f"{m} {result['modes']['hybrid'][m]['mean'] / max(result['modes'][base][m]['mean'], 1e-9):.3f}x"
            for m in METRICS
        )
        held_out = result["modes"]["hybrid"]["by_split"]["test"]["ndcg@10"] / max(
            result["modes"][base]["by_split"]["test"]["ndcg@10"], 1e-9)
        ratios += f"  (test-half nDCG@10 {held_out:.3f}x)"
        test = result["hybrid_vs"][base]
        print(f"hybrid / {base}: {ratios}   (nDCG@10 wins/losses {test['wins']}/{test['losses']}, "
              f"Wilcoxon p={test['wilcoxon_p']:.3g})")


if __name__ == "__main__":
    raise SystemExit(main())
