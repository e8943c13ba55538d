"""Retrieval evaluation: per-query metrics by hand, the held-out Exercism query set, and the summary."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from cet.evaluation.retrieval_eval import LabelledQuery, evaluate_retrieval, exercism_query_set, query_metrics
from cet.knowledge.chunking import chunk_document
from cet.knowledge.records import Document, Filters
from cet.knowledge.sources.exercism import read_exercism

# ------------------------------------------------------------------------------------------ metrics


def test_query_metrics_by_hand() -> None:
    ranked = ["a", "x", "b", "y", "z", "c", "w", "v", "u", "t", "d"]
    m = query_metrics(ranked, {"a", "b", "c", "d"})
    assert m["recall@5"] == pytest.approx(2 / 4)
    assert m["hit@5"] == 1.0
    assert m["mrr"] == 1.0
    dcg = 1 / math.log2(2) + 1 / math.log2(4) + 1 / math.log2(7)  # a, b, c at ranks 1, 3, 6; d is past 10
    ideal = sum(1 / math.log2(i + 1) for i in range(1, 5))
    assert m["ndcg@10"] == pytest.approx(dcg / ideal)
    assert m["ndcg@10"] == pytest.approx(0.724626, abs=1e-6)


def test_query_metrics_first_hit_at_rank_three() -> None:
    m = query_metrics(["x", "y", "r"], {"r"})
    assert m == pytest.approx({"recall@5": 1.0, "hit@5": 1.0, "mrr": 1 / 3, "ndcg@10": 0.5})


def test_query_metrics_first_hit_past_five() -> None:
    m = query_metrics(["x1", "x2", "x3", "x4", "x5", "r"], {"r"})
    assert m == pytest.approx({"recall@5": 0.0, "hit@5": 0.0, "mrr": 1 / 6, "ndcg@10": 1 / math.log2(7)})


def test_query_metrics_many_relevant() -> None:
    relevant = {f"r{i}" for i in range(12)}
    m = query_metrics([f"r{i}" for i in range(10)], relevant)
    assert m["recall@5"] == pytest.approx(5 / 12)
    assert m["ndcg@10"] == pytest.approx(1.0), "the ideal ranking caps at 10 relevant"


def test_query_metrics_misses() -> None:
    zero = {"recall@5": 0.0, "hit@5": 0.0, "mrr": 0.0, "ndcg@10": 0.0}
    assert query_metrics(["x", "y"], {"r"}) == zero
    assert query_metrics([], {"r"}) == zero
    assert query_metrics(["x"], set()) == zero


class StubEmbedder:
    name, dim = "stub", 3

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.zeros((len(texts), self.dim), dtype=np.float32)


class StubRetriever:
    """Fixed rankings per (mode, query): evaluate_retrieval only asks for ranked ids."""

    fusion, alpha = "rrf", 0.5

    def __init__(self, rankings: dict[tuple[str, str], list[str]]) -> None:
        self.rankings = rankings
        self.embedder = StubEmbedder()

    def ranked(self, query: str, k: int, filters: Filters, mode: str, **_: object) -> list[tuple[str, float]]:
        return [(cid, 1.0) for cid in self.rankings.get((mode, query), [])[:k]]


def test_evaluate_retrieval_summary() -> None:
    queries = [LabelledQuery("exercise:a", "exercise", "qa", {"a"}),
               LabelledQuery("approach:b", "approach", "qb", {"b"})]
    stub = StubRetriever({("hybrid", "qa"): ["a"], ("hybrid", "qb"): ["b"],
                          ("bm25", "qa"): ["x", "a"], ("bm25", "qb"): []})
    summary = evaluate_retrieval(stub, queries)  # type: ignore[arg-type]
    assert summary["queries"] == 2
    assert summary["families"] == {"approach": 1, "exercise": 1}
    assert summary["modes"]["hybrid"]["mrr"]["mean"] == 1.0
    assert summary["modes"]["bm25"]["mrr"]["mean"] == pytest.approx(0.25)
    assert summary["modes"]["bm25"]["by_family"]["exercise"]["mrr"] == pytest.approx(0.5)
    assert summary["modes"]["bm25"]["by_family"]["approach"]["hit@5"] == 0.0
    low, high = summary["modes"]["bm25"]["mrr"]["ci95"]
    assert 0.0 <= low <= 0.25 <= high <= 0.5
    test = summary["hybrid_vs"]["bm25"]
    assert test["mean_difference"] == pytest.approx(((1 - 1 / math.log2(3)) + 1) / 2)
    assert (test["wins"], test["losses"], test["ties"]) == (2, 0, 0)
    assert test["wilcoxon_p"] == 1.0, "too few pairs for a test"


# ------------------------------------------------------------------------------------------ query set


def test_query_set_on_the_fixture_tree(core_exercism: Path) -> None:
    records = list(read_exercism(core_exercism))
    queries = {q.qid: q for q in exercism_query_set(records, 200)}
    assert set(queries) == {f"exercise:{s}" for s in
                            ("broken-canon", "honeycomb-path", "lantern-relay", "pebble-sorter", "tidal-clock")}
    lantern = queries["exercise:lantern-relay"]
    assert lantern.family == "exercise"
    assert lantern.query == "Work out how long a warning takes to cross a chain of hilltop beacons."
    statement = next(r for r in records if isinstance(r, Document) and r.doc_id.endswith("lantern-relay#statement"))
    assert lantern.relevant == {c.chunk_id for c in chunk_document(statement, 200)}
    assert len(lantern.relevant) > 1, "a small max_chars gives several relevant chunks"


@pytest.fixture(scope="module")
def real_records(real_exercism: Path) -> list:
    return list(read_exercism(real_exercism))


@pytest.fixture(scope="module")
def real_queries(real_records: list) -> list[LabelledQuery]:
    return exercism_query_set(real_records, 1800)


def test_real_query_set_size(real_queries: list[LabelledQuery]) -> None:
    families = defaultdict(int)
    for q in real_queries:
        families[q.family] += 1
        assert q.query.strip() and q.relevant
    assert families["exercise"] > 50
    assert families["approach"] > 50
    assert len({q.qid for q in real_queries}) == len(real_queries)
    assert not any(q.verbatim for q in real_queries)


def test_verbatim_blurbs_are_marked_and_left_out_by_default(real_records: list,
                                                            real_queries: list[LabelledQuery]) -> None:
    everything = exercism_query_set(real_records, 1800, include_verbatim=True)
    verbatim = [q for q in everything if q.verbatim]
    assert len([q for q in everything if q.family == "exercise"]) > 100  # one blurb per exercise
    assert verbatim, "the real data repeats some blurbs word for word in the descriptions"
    assert {q.qid for q in everything} - {q.qid for q in verbatim} == {q.qid for q in real_queries}


def test_relevant_ids_are_the_chunk_ids_the_ingest_produces(real_records: list,
                                                            real_queries: list[LabelledQuery]) -> None:
    docs = [r for r in real_records if isinstance(r, Document)]
    statements: dict[str, set[str]] = defaultdict(set)
    approaches: dict[str, set[str]] = {}
    for d in docs:
        ids = {c.chunk_id for c in chunk_document(d, 1800)}
        if d.kind == "statement":
            statements[d.metadata["exercise"]] |= ids
        elif d.kind == "approach" and d.metadata.get("approach"):
            approaches[f"approach:{d.metadata['exercise']}:{d.metadata['approach']}"] = ids
    for q in real_queries:
        if q.family == "exercise":
            assert q.relevant == statements[q.qid.split(":", 1)[1]], q.qid
        else:
            assert q.relevant == approaches[q.qid], q.qid


def _normalised(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def test_blurbs_are_never_indexed_from_metadata(real_records: list, real_queries: list[LabelledQuery],
                                                real_exercism: Path) -> None:
    """The reader keeps blurbs out of indexed text: a blurb appears in a chunk only where the exercise's own
    prose (not its metadata.toml or config.json) contains it."""
    docs = [r for r in real_records if isinstance(r, Document)]
    prose_by_exercise: dict[str, str] = defaultdict(str)
    for d in docs:
        prose_by_exercise[d.metadata["exercise"]] += " " + _normalised(d.text)
    for d in docs:
        assert d.metadata.get("blurb") is None or _normalised(d.metadata["blurb"]) not in _normalised(d.title)
    checked = 0
    for q in real_queries:
        slug = q.qid.split(":")[1]
        if _normalised(q.query) in prose_by_exercise[slug]:
            continue
        checked += 1
        for d in docs:
            if d.metadata.get("exercise") == slug:
                for c in chunk_document(d, 1800):
                    assert _normalised(q.query) not in _normalised(c.embedding_text), (q.qid, c.chunk_id)
    assert checked > 50


def test_no_blurb_appears_in_the_indexed_text_of_its_exercise(real_records: list,
                                                              real_queries: list[LabelledQuery]) -> None:
    """The point of the held-out set: a query must not be a verbatim copy of text the index holds for its own
    exercise, or the evaluation measures string matching rather than retrieval."""
    chunks_by_exercise: dict[str, list[str]] = defaultdict(list)
    for d in real_records:
        if isinstance(d, Document):
            for c in chunk_document(d, 1800):
                chunks_by_exercise[d.metadata["exercise"]].append(_normalised(c.embedding_text))
    leaked = sorted({q.qid for q in real_queries
                     for text in chunks_by_exercise[q.qid.split(":")[1]] if _normalised(q.query) in text})
    assert leaked == [], f"{len(leaked)} of {len(real_queries)} queries appear verbatim in their exercise's chunks"
