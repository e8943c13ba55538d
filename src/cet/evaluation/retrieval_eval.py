"""Retrieval quality on a labelled query set built from the data: recall@5, MRR and nDCG@10 per mode.

The query set: Exercism keeps a one-line blurb for every exercise (metadata.toml, .meta/config.json) and
for every community approach (.approaches/config.json). The Exercism reader keeps blurbs out of the
indexed text, so a blurb is a held-out paraphrase of what its exercise or approach says, and the chunks
of that exercise's statements (or of that approach's write-up) are the known relevant answers.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cet.knowledge.chunking import chunk_document
from cet.knowledge.records import Document, Filters, SkippedRecord
from cet.knowledge.retrieval import MODES, HybridRetriever, Mode


@dataclass
class LabelledQuery:
    qid: str
    family: str  # "exercise" (blurb -> statement chunks) or "approach" (blurb -> approach chunks)
    query: str
    relevant: set[str] = field(default_factory=set)


def exercism_query_set(records: Iterable[Document | SkippedRecord], max_chars: int) -> list[LabelledQuery]:
    """Blurb queries with the chunk ids they should retrieve (same chunking as the ingest)."""
    statements: dict[str, set[str]] = defaultdict(set)
    exercise_blurbs: dict[str, str] = {}
    queries: dict[str, LabelledQuery] = {}
    for doc in records:
        if not isinstance(doc, Document):
            continue
        slug, blurb = doc.metadata.get("exercise"), doc.metadata.get("blurb")
        ids = {c.chunk_id for c in chunk_document(doc, max_chars)}
        if doc.kind == "statement" and slug:
            statements[slug] |= ids
            if blurb:
                exercise_blurbs.setdefault(slug, blurb)
        elif doc.kind == "approach" and blurb and doc.metadata.get("approach"):
            key = f"approach:{slug}:{doc.metadata['approach']}"
            queries[key] = LabelledQuery(key, "approach", blurb, ids)
    for slug, blurb in exercise_blurbs.items():
        queries[f"exercise:{slug}"] = LabelledQuery(f"exercise:{slug}", "exercise", blurb, statements[slug])
    return sorted(queries.values(), key=lambda q: q.qid)


def query_metrics(ranked: list[str], relevant: set[str]) -> dict[str, float]:
    """recall@5, hit@5, reciprocal rank and binary nDCG@10 of one ranking."""
    first = next((i for i, cid in enumerate(ranked, start=1) if cid in relevant), None)
    dcg = sum(1.0 / math.log2(i + 1) for i, cid in enumerate(ranked[:10], start=1) if cid in relevant)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(relevant), 10) + 1))
    return {
        "recall@5": len(relevant & set(ranked[:5])) / len(relevant) if relevant else 0.0,
        "hit@5": 1.0 if first is not None and first <= 5 else 0.0,
        "mrr": 1.0 / first if first else 0.0,
        "ndcg@10": dcg / ideal if ideal else 0.0,
    }


METRICS = ("recall@5", "hit@5", "mrr", "ndcg@10")


def evaluate_retrieval(
    retriever: HybridRetriever, queries: list[LabelledQuery], modes: Iterable[Mode] = MODES,
    filters: Filters | None = None,
) -> dict[str, Any]:
    """Per-mode means with 95% bootstrap intervals, per-family means, and paired tests of hybrid vs each."""
    per_query: dict[str, list[dict[str, float]]] = {}
    for mode in modes:
        per_query[mode] = [
            query_metrics([cid for cid, _ in retriever.ranked(q.query, 10, filters or Filters(), mode)], q.relevant)
            for q in queries
        ]
    summary: dict[str, Any] = {"queries": len(queries), "families": {}, "modes": {}}
    for family in sorted({q.family for q in queries}):
        summary["families"][family] = sum(q.family == family for q in queries)
    for mode, rows in per_query.items():
        summary["modes"][mode] = {
            metric: {"mean": float(np.mean(v)), "ci95": _bootstrap_ci(v)} for metric in METRICS
            for v in [np.array([r[metric] for r in rows])]
        }
        summary["modes"][mode]["by_family"] = {
            family: {m: float(np.mean([r[m] for r, q in zip(rows, queries, strict=True) if q.family == family]))
                     for m in METRICS}
            for family in summary["families"]
        }
    if "hybrid" in per_query:
        summary["hybrid_vs"] = {
            mode: _paired_test(per_query["hybrid"], per_query[mode], "ndcg@10")
            for mode in per_query
            if mode != "hybrid"
        }
    return summary


def _bootstrap_ci(values: np.ndarray, rounds: int = 2000, seed: int = 0) -> list[float]:
    if len(values) == 0:
        return [0.0, 0.0]
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(rounds, len(values)), replace=True).mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def _paired_test(a: list[dict[str, float]], b: list[dict[str, float]], metric: str) -> dict[str, float]:
    """Wilcoxon signed-rank test on per-query differences (a - b) of one metric."""
    from scipy.stats import wilcoxon

    diff = np.array([x[metric] - y[metric] for x, y in zip(a, b, strict=True)])
    nonzero = diff[diff != 0]
    p = float(wilcoxon(nonzero).pvalue) if len(nonzero) >= 10 else 1.0
    return {"metric": metric, "mean_difference": float(diff.mean()), "wins": int((diff > 0).sum()),
            "losses": int((diff < 0).sum()), "ties": int((diff == 0).sum()), "wilcoxon_p": p}
