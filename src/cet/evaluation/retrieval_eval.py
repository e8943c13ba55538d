"""Retrieval quality on a labelled query set built from the data: recall@5, MRR and nDCG@10 per mode.

The query set: Exercism keeps a one-line blurb for every exercise (metadata.toml, .meta/config.json) and
for every community approach (.approaches/config.json). The Exercism reader keeps blurbs out of the
indexed text, so a blurb is a held-out paraphrase of what its exercise or approach says, and the chunks
of that exercise's statements (or of that approach's write-up) are the known relevant answers.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cet.knowledge.chunking import chunk_document
from cet.knowledge.records import Document, Filters, SkippedRecord
from cet.knowledge.retrieval import Fusion, HybridRetriever, Mode
from cet.knowledge.stores.base import Store

# What is compared: label -> (mode, fusion). "hybrid" is the retriever's configured fusion.
VARIANTS: dict[str, tuple[Mode, Fusion | None]] = {
    "hybrid": ("hybrid", None),
    "hybrid-convex": ("hybrid", "convex"),
    "hybrid-rrf": ("hybrid", "rrf"),
    "bm25": ("bm25", None),
    "vector": ("vector", None),
}


@dataclass
class LabelledQuery:
    qid: str
    family: str  # "exercise" (blurb -> statement chunks) or "approach" (blurb -> approach chunks)
    query: str
    relevant: set[str] = field(default_factory=set)
    verbatim: bool = False  # the query text appears word for word in its exercise's indexed text

    @property
    def split(self) -> str:
        """A stable half of the set by query id: "dev" for choosing settings, "test" for reporting them."""
        return "dev" if int(hashlib.sha1(self.qid.encode()).hexdigest(), 16) % 2 == 0 else "test"


def _normalised(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def exercism_query_set(records: Iterable[Document | SkippedRecord], max_chars: int,
                       include_verbatim: bool = False) -> list[LabelledQuery]:
    """Blurb queries with the chunk ids they should retrieve (same chunking as the ingest).

    Many exercises repeat their blurb word for word in their description; such a query is not a
    paraphrase but a copy, so it is marked ``verbatim`` and left out unless ``include_verbatim``.
    """
    statements: dict[str, set[str]] = defaultdict(set)
    exercise_texts: dict[str, list[str]] = defaultdict(list)
    exercise_blurbs: dict[str, str] = {}
    queries: dict[str, LabelledQuery] = {}
    for doc in records:
        if not isinstance(doc, Document):
            continue
        slug, blurb = doc.metadata.get("exercise"), doc.metadata.get("blurb")
        chunks = chunk_document(doc, max_chars)
        ids = {c.chunk_id for c in chunks}
        exercise_texts[slug or ""].extend(_normalised(c.embedding_text) for c in chunks)
        if doc.kind == "statement" and slug:
            statements[slug] |= ids
            if blurb:
                exercise_blurbs.setdefault(slug, blurb)
        elif doc.kind == "approach" and blurb and doc.metadata.get("approach"):
            key = f"approach:{slug}:{doc.metadata['approach']}"
            queries[key] = LabelledQuery(key, "approach", blurb, ids)
    for slug, blurb in exercise_blurbs.items():
        queries[f"exercise:{slug}"] = LabelledQuery(f"exercise:{slug}", "exercise", blurb, statements[slug])
    for q in queries.values():
        needle = _normalised(q.query)
        q.verbatim = any(needle in text for text in exercise_texts[q.qid.split(":")[1]])
    return sorted((q for q in queries.values() if include_verbatim or not q.verbatim), key=lambda q: q.qid)


def restrict_to_store(queries: list[LabelledQuery], store: Store) -> list[LabelledQuery]:
    """Keep only relevant chunks the store holds, and only queries that still have one."""
    present = set(store.get_chunks(sorted({c for q in queries for c in q.relevant})))
    for q in queries:
        q.relevant &= present
    return [q for q in queries if q.relevant]


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
    retriever: HybridRetriever, queries: list[LabelledQuery], variants: Iterable[str] = tuple(VARIANTS),
    filters: Filters | None = None,
) -> dict[str, Any]:
    """Per-variant means with 95% bootstrap intervals, per family and per split (dev/test), and paired
    tests of the configured hybrid against BM25 and vectors alone. Each query is embedded once."""
    vectors = retriever.embedder.embed([q.query for q in queries]) if queries else None
    per_query: dict[str, list[dict[str, float]]] = {}
    for label in variants:
        mode, fusion = VARIANTS[label]
        per_query[label] = [
            query_metrics([cid for cid, _ in retriever.ranked(q.query, 10, filters or Filters(), mode, fusion=fusion,
                                                              query_vector=vectors[i])], q.relevant)
            for i, q in enumerate(queries)
        ]
    groups = {"family": sorted({q.family for q in queries}), "split": ["dev", "test"]}
    summary: dict[str, Any] = {
        "queries": len(queries), "fusion": retriever.fusion, "alpha": retriever.alpha,
        "families": {f: sum(q.family == f for q in queries) for f in groups["family"]},
        "splits": {s: sum(q.split == s for q in queries) for s in groups["split"]}, "modes": {},
    }
    for label, rows in per_query.items():
        summary["modes"][label] = {
            metric: {"mean": float(np.mean(v)), "ci95": _bootstrap_ci(v)} for metric in METRICS
            for v in [np.array([r[metric] for r in rows])]
        }
        for group, names in groups.items():
            summary["modes"][label][f"by_{group}"] = {
                name: {m: _mean([r[m] for r, q in zip(rows, queries, strict=True) if getattr(q, group) == name])
                       for m in METRICS}
                for name in names
            }
    if "hybrid" in per_query:
        summary["hybrid_vs"] = {
            label: _paired_test(per_query["hybrid"], per_query[label], "ndcg@10")
            for label in ("bm25", "vector") if label in per_query
        }
    return summary


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


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
