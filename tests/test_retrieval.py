"""Retrieval: reciprocal rank fusion by hand, and BM25 / vector / hybrid search over a small real store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cet.knowledge.ingest import Ingestor
from cet.knowledge.records import Document, Filters, Hit
from cet.knowledge.retrieval import HybridRetriever, convex_fusion, reciprocal_rank_fusion
from cet.knowledge.sources.exercism import read_exercism
from cet.knowledge.stores.sqlite import SQLiteStore

# ------------------------------------------------------------------------------------------ RRF


def test_convex_fusion_by_hand() -> None:
    keyword = [("a", 10.0), ("b", 6.0), ("c", 2.0)]  # normalised: a 1, b 0.5, c 0
    semantic = [("c", 0.9), ("d", 0.5), ("a", 0.1)]  # normalised: c 1, d 0.5, a 0
    fused = dict(convex_fusion(keyword, semantic, alpha=0.6))
    assert fused == pytest.approx({"a": 0.6, "b": 0.3, "c": 0.4, "d": 0.2})
    assert [cid for cid, _ in convex_fusion(keyword, semantic, alpha=0.6)] == ["a", "c", "b", "d"]
    assert [cid for cid, _ in convex_fusion(keyword, semantic, alpha=0.0)][:1] == ["c"]
    assert convex_fusion([], [], 0.5) == []
    assert convex_fusion([("x", 3.0)], [], 0.6) == [("x", pytest.approx(0.6))]


def test_rrf_scores_by_hand() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "d"]], k=60)
    expected = [("b", 1 / 62 + 1 / 61), ("c", 1 / 63 + 1 / 62), ("a", 1 / 61), ("d", 1 / 63)]
    assert [cid for cid, _ in fused] == [cid for cid, _ in expected]
    for (_, got), (_, want) in zip(fused, expected, strict=True):
        assert got == pytest.approx(want, rel=1e-12)


def test_rrf_with_small_k_and_a_single_ranking() -> None:
    assert reciprocal_rank_fusion([["x", "y", "z"]], k=1) == [("x", 1 / 2), ("y", 1 / 3), ("z", 1 / 4)]
    fused = dict(reciprocal_rank_fusion([["p"], ["q", "p"], ["p", "q"]], k=0))
    assert fused["p"] == pytest.approx(1 + 1 / 2 + 1)
    assert fused["q"] == pytest.approx(1 + 1 / 2)


def test_rrf_ties_are_ordered_by_id() -> None:
    assert [c for c, _ in reciprocal_rank_fusion([["y", "x"], ["x", "y"]])] == ["x", "y"]
    assert [c for c, _ in reciprocal_rank_fusion([["x", "y"], ["y", "x"]])] == ["x", "y"]
    tied = reciprocal_rank_fusion([["m", "k"], ["n", "j"]])  # m and n tie at rank 1, k and j at rank 2
    assert [c for c, _ in tied] == ["m", "n", "j", "k"]


def test_rrf_of_nothing() -> None:
    assert reciprocal_rank_fusion([]) == []
    assert reciprocal_rank_fusion([[], []]) == []


# ------------------------------------------------------------------------------------------ store

NOTES = [
    Document("notes", "notes:sort-tuples", "Sorting tuples in Python",
             "Use sorted(pairs, key=lambda t: t[1]) to order a list of tuples by their second element.", "qa",
             "notes/sort-tuples.md", "markdown", "python", {"licence": "CC0"}),
    Document("notes", "notes:sort-js", "Sorting arrays in JavaScript",
             "Array.prototype.sort takes a compare function: arr.sort((a, b) => a - b) sorts numbers.", "qa",
             "notes/sort-js.md", "markdown", "javascript", {"licence": "CC0"}),
]


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory, embedder, core_exercism: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path_factory.mktemp("retrieval") / "kb.sqlite")
    ingestor = Ingestor(store, embedder)
    ingestor.ingest(read_exercism(core_exercism), "exercism", str(core_exercism))
    ingestor.ingest(NOTES, "notes", "memory")
    yield store
    store.close()


@pytest.fixture(scope="module")
def retriever(kb: SQLiteStore, embedder) -> HybridRetriever:
    return HybridRetriever(kb, embedder, candidates=20)


@pytest.mark.parametrize(
    ("mode", "query", "doc_id"),
    [
        ("bm25", "watchman raiders lantern", "exercism:spec:lantern-relay#statement"),
        ("bm25", "wax sealed hexagon", "exercism:spec:honeycomb-path#statement"),
        ("vector", "organise stones by their hue and how heavy they are", "exercism:spec:pebble-sorter#statement"),
        ("vector", "when is the next high tide in the harbour", "exercism:spec:tidal-clock#statement"),
        ("hybrid", "ring church bells in rounds", "exercism:spec:broken-canon#statement"),
        ("hybrid", "cheapest postage stamps for a parcel", "exercism:spec:broken-meta#statement"),
        ("hybrid", "python sort list of tuples by second item", "notes:sort-tuples"),
    ],
)
def test_each_mode_finds_the_obviously_relevant_chunk(retriever: HybridRetriever, mode: str, query: str,
                                                      doc_id: str) -> None:
    hits = retriever.search(query, k=3, mode=mode)  # type: ignore[arg-type]
    assert hits, f"{mode} found nothing for {query!r}"
    assert hits[0].doc_id == doc_id, [h.doc_id for h in hits]


def test_bm25_finds_nothing_for_words_not_in_the_store(retriever: HybridRetriever) -> None:
    assert retriever.search("xylophone zeppelin", k=5, mode="bm25") == []
    assert len(retriever.search("xylophone zeppelin", k=5, mode="vector")) == 5


def test_filters_are_respected_in_every_mode(retriever: HybridRetriever) -> None:
    for mode in ("bm25", "vector", "hybrid"):
        notes = retriever.search("sort", k=10, filters=Filters(source=["notes"]), mode=mode)  # type: ignore[arg-type]
        assert notes and all(h.source == "notes" for h in notes)
        tests = retriever.search("lantern delays", k=10, filters=Filters(kind=["tests"]), mode=mode)  # type: ignore[arg-type]
        assert tests and all(h.kind == "tests" for h in tests)
        js = retriever.search("sort", k=10, filters=Filters(language=["javascript"]), mode=mode)  # type: ignore[arg-type]
        assert [h.doc_id for h in js] == ["notes:sort-js"]
        none = retriever.search("sort", k=10, filters=Filters(source=["nowhere"]), mode=mode)  # type: ignore[arg-type]
        assert none == []


def test_k_is_respected(retriever: HybridRetriever, kb: SQLiteStore) -> None:
    total = kb.stats()["chunks"]
    assert total > 5
    for mode in ("vector", "hybrid"):
        for k in (1, 3, 5):
            assert len(retriever.search("exercise", k=k, mode=mode)) == k  # type: ignore[arg-type]
        assert len(retriever.search("exercise", k=total + 10, mode=mode)) == total  # type: ignore[arg-type]
    assert len(retriever.search("canonical test cases", k=2, mode="bm25")) == 2


def test_hits_carry_their_chunk(retriever: HybridRetriever, kb: SQLiteStore) -> None:
    hits = retriever.search("hilltop lanterns warning", k=4)
    assert len(hits) == 4
    stored = kb.get_chunks([h.id for h in hits])
    for hit in hits:
        assert isinstance(hit, Hit)
        chunk = stored[hit.id]
        assert (hit.source, hit.title, hit.path, hit.text, hit.metadata, hit.kind, hit.language, hit.doc_id) == (
            chunk.source, chunk.title, chunk.path, chunk.text, chunk.metadata, chunk.kind, chunk.language,
            chunk.doc_id)
        assert isinstance(hit.score, float) and hit.score > 0
        assert set(hit.to_dict()) >= {"id", "source", "title", "path", "score", "text", "metadata"}
    top = hits[0]
    assert top.doc_id.startswith("exercism:spec:lantern-relay")
    assert top.metadata["licence"] == "MIT (exercism)" and top.metadata["exercise"] == "lantern-relay"
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_vector_scores_are_cosine_similarities(retriever: HybridRetriever, embedder, kb: SQLiteStore) -> None:
    hits = retriever.search("bees in a honeycomb", k=3, mode="vector")
    query = embedder.embed(["bees in a honeycomb"])[0]
    for hit in hits:
        chunk = kb.get_chunks([hit.id])[hit.id]
        vector = kb.cached_embeddings(embedder.name, [chunk.hash])[chunk.hash]
        assert hit.score == pytest.approx(float(vector @ query), abs=1e-5)
    exact = retriever.search("bees in a honeycomb", k=3, mode="vector", exact=True)
    assert [h.id for h in exact] == [h.id for h in hits]


def test_the_embedder_loads_lazily_and_once(kb: SQLiteStore, embedder) -> None:
    calls = []

    def load():
        calls.append(1)
        return embedder

    lazy = HybridRetriever(kb, load)
    assert lazy.search("lantern", k=2, mode="bm25")
    assert calls == []
    assert lazy.search("lantern", k=2, mode="vector")
    assert lazy.search("lantern", k=2, mode="hybrid")
    assert calls == [1]
    keyword_only = HybridRetriever(kb, None)
    assert keyword_only.search("lantern", k=2, mode="bm25")
    with pytest.raises(ValueError, match="embedder"):
        keyword_only.search("lantern", k=2, mode="vector")
