"""PgVectorStore against a real PostgreSQL + pgvector, started once per session through pgserver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from tests.pg_helpers import with_database

from cet.errors import CetError, StoreUnavailable
from cet.knowledge.records import Chunk, Document, Filters
from cet.knowledge.stores.base import DocumentBatch
from cet.knowledge.stores.pgvector import PgVectorStore, mask_url, query_words, tsquery_literal
from cet.knowledge.stores.postgres_local import (
    local_postgres_status,
    start_local_postgres,
    stop_local_postgres,
)

pytestmark = pytest.mark.postgres

MODEL = "test-model"
DIM = 8


# --- fixtures (the server and a fresh database per test: conftest.py) -------------------------
@pytest.fixture
def store(db_url: str) -> Iterator[PgVectorStore]:
    with PgVectorStore(db_url) as s:
        s.bind_embedding_model(MODEL, DIM)
        yield s


# --- builders ---------------------------------------------------------------------------------
def unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def make_doc(
    doc_id: str,
    texts: list[str],
    source: str = "src",
    kind: str = "doc",
    language: str | None = "python",
    metadata: dict | None = None,
) -> tuple[Document, list[Chunk]]:
    doc = Document(
        source=source,
        doc_id=doc_id,
        title=f"Title {doc_id}",
        text="\n".join(texts),
        kind=kind,
        path=f"{doc_id}.md",
        language=language,
        metadata=metadata or {},
    )
    chunks = [
        Chunk(
            chunk_id=f"{doc_id}#{i}",
            doc_id=doc_id,
            ordinal=i,
            source=source,
            kind=kind,
            title=doc.title,
            path=doc.path,
            text=text,
            language=language,
            metadata={**(metadata or {}), "ordinal": i},
        )
        for i, text in enumerate(texts)
    ]
    return doc, chunks


def batch_of(
    docs: list[tuple[Document, list[Chunk]]], vectors: np.ndarray | None = None, seed: int = 0
) -> DocumentBatch:
    n = sum(len(chunks) for _, chunks in docs)
    if vectors is None:
        vectors = unit(np.random.default_rng(seed).normal(size=(n, DIM)))
    return DocumentBatch(documents=[d for d, _ in docs], chunks=[c for _, c in docs], vectors=vectors)


def snapshot(store: PgVectorStore, ids: list[str]) -> tuple:
    stats = store.stats()
    return (
        stats["documents"],
        stats["chunks"],
        stats["embeddings"],
        store.document_hashes("src"),
        {k: v.text for k, v in store.get_chunks(ids).items()},
    )


# --- ingest -----------------------------------------------------------------------------------
def test_round_trip_keeps_chunks_and_metadata(store: PgVectorStore) -> None:
    meta = {"tags": ["dp", "graphs"], "nested": {"score": 3, "ok": True}, "when": None}
    doc, chunks = make_doc("d1", ["first chunk", "second chunk"], metadata=meta)
    doc2, chunks2 = make_doc("d2", ["no language here"], language=None)
    store.write_batch(batch_of([(doc, chunks), (doc2, chunks2)]), MODEL)

    got = store.get_chunks([c.chunk_id for c in chunks + chunks2] + ["missing"])
    assert set(got) == {"d1#0", "d1#1", "d2#0"}
    for chunk in chunks + chunks2:
        assert got[chunk.chunk_id] == chunk
    assert got["d1#1"].metadata["nested"] == {"score": 3, "ok": True}
    assert got["d2#0"].language is None
    assert store.get_chunks([]) == {}


def test_nul_characters_are_stripped_not_fatal(store: PgVectorStore) -> None:
    doc, chunks = make_doc("d1", ["binary\x00junk"], metadata={"k": "v\x00w"})
    store.write_batch(batch_of([(doc, chunks)]), MODEL)
    got = store.get_chunks(["d1#0"])["d1#0"]
    assert got.text == "binaryjunk"
    assert got.metadata["k"] == "vw"


def test_rewriting_a_document_replaces_its_chunks(store: PgVectorStore) -> None:
    doc, chunks = make_doc("d1", ["alpha quokka", "beta", "gamma"])
    store.write_batch(batch_of([(doc, chunks)]), MODEL)
    doc, chunks = make_doc("d1", ["alpha new", "delta"])
    store.write_batch(batch_of([(doc, chunks)], seed=1), MODEL)
    store.write_batch(batch_of([(doc, chunks)], seed=1), MODEL)  # idempotent

    stats = store.stats()
    assert stats["documents"] == 1
    assert stats["chunks"] == 2
    got = store.get_chunks(["d1#0", "d1#1", "d1#2"])
    assert set(got) == {"d1#0", "d1#1"}
    assert got["d1#0"].text == "alpha new"
    assert store.keyword_search("quokka", 5, Filters()) == []


def test_document_hashes_per_source(store: PgVectorStore) -> None:
    a, ca = make_doc("a", ["x"], source="src")
    b, cb = make_doc("b", ["y"], source="other")
    store.write_batch(batch_of([(a, ca), (b, cb)]), MODEL)
    assert store.document_hashes("src") == {"a": a.hash}
    assert store.document_hashes("other") == {"b": b.hash}
    assert store.document_hashes("nothing") == {}


def test_cached_embeddings_by_model_and_hash(store: PgVectorStore) -> None:
    doc, chunks = make_doc("d1", ["one", "two", "one"])  # a repeated text shares one cache entry
    batch = batch_of([(doc, chunks)])
    batch.vectors[2] = batch.vectors[0]
    store.write_batch(batch, MODEL)

    hashes = [c.hash for c in chunks]
    cached = store.cached_embeddings(MODEL, hashes + ["unknown"])
    assert set(cached) == {hashes[0], hashes[1]}
    np.testing.assert_allclose(cached[hashes[0]], batch.vectors[0], rtol=1e-6)
    np.testing.assert_allclose(cached[hashes[1]], batch.vectors[1], rtol=1e-6)
    assert cached[hashes[0]].dtype == np.float32
    assert store.cached_embeddings("another-model", hashes) == {}
    assert store.cached_embeddings(MODEL, []) == {}
    assert store.stats()["embeddings"] == 2


def test_failed_batch_leaves_store_unchanged(store: PgVectorStore) -> None:
    doc, chunks = make_doc("d1", ["original text", "second"])
    store.write_batch(batch_of([(doc, chunks)]), MODEL)
    ids = ["d1#0", "d1#1", "d1#2", "d2#0"]
    before = snapshot(store, ids)

    # rewrite d1 and add d2, with a vector pgvector rejects (NaN) at the end of the batch
    new1, newc1 = make_doc("d1", ["replacement", "texts", "three"])
    new2, newc2 = make_doc("d2", ["brand new"])
    bad = batch_of([(new1, newc1), (new2, newc2)], seed=5)
    bad.vectors[-1, 0] = np.nan
    with pytest.raises(psycopg.Error):
        store.write_batch(bad, MODEL)
    assert snapshot(store, ids) == before

    # a chunk pointing at a document outside the batch violates the foreign key mid-transaction
    orphan = Chunk("x#0", "nowhere", 0, "src", "doc", "t", "p", "orphan")
    broken = DocumentBatch([new1, new2], [newc1, [*newc2, orphan]], unit(np.ones((5, DIM))))
    with pytest.raises(psycopg.IntegrityError):
        store.write_batch(broken, MODEL)
    assert snapshot(store, ids) == before

    # vectors of the wrong dimension or count are refused before anything is written
    with pytest.raises(CetError, match="dims"):
        store.write_batch(batch_of([(new1, newc1)], vectors=unit(np.ones((3, DIM + 1)))), MODEL)
    with pytest.raises(CetError, match="shape"):
        store.write_batch(batch_of([(new1, newc1)], vectors=unit(np.ones((2, DIM)))), MODEL)
    assert snapshot(store, ids) == before

    # and the store still accepts a good batch afterwards
    store.write_batch(batch_of([(new1, newc1), (new2, newc2)]), MODEL)
    assert store.stats()["chunks"] == 4


# --- embedding model --------------------------------------------------------------------------
def test_model_mismatch_raises_and_binding_persists(db_url: str) -> None:
    with PgVectorStore(db_url) as store:
        assert store.embedding_model() is None
        assert store.vector_search(unit(np.ones(DIM)), 5, Filters()) == []
        store.bind_embedding_model(MODEL, DIM)
        store.bind_embedding_model(MODEL, DIM)  # same model again is fine
        with pytest.raises(CetError, match="other-model"):
            store.bind_embedding_model("other-model", DIM)
        with pytest.raises(CetError, match=str(DIM + 1)):
            store.bind_embedding_model(MODEL, DIM + 1)
    with PgVectorStore(db_url) as reopened:
        assert reopened.embedding_model() == (MODEL, DIM)
        with pytest.raises(CetError, match="embedding model"):
            reopened.bind_embedding_model("other-model", 3)
        doc, chunks = make_doc("d1", ["x"])
        with pytest.raises(CetError):
            reopened.write_batch(batch_of([(doc, chunks)]), "other-model")
        assert reopened.stats()["chunks"] == 0


def test_write_batch_binds_model_on_first_use(db_url: str) -> None:
    with PgVectorStore(db_url) as store:
        doc, chunks = make_doc("d1", ["x", "y"])
        store.write_batch(batch_of([(doc, chunks)]), MODEL)
        assert store.embedding_model() == (MODEL, DIM)
        assert store.stats()["vector_index"] is not None


# --- keyword search ---------------------------------------------------------------------------
@pytest.fixture
def corpus_store(store: PgVectorStore) -> PgVectorStore:
    docs = [
        make_doc(
            "py",
            ["Use a dictionary to memoize the recursion.", "The zyzzyva beetle sorts lists."],
            source="docs",
            kind="doc",
            language="python",
        ),
        make_doc(
            "rs",
            ["Borrow checker rules for mutable references.", "Sorting vectors with sort_unstable."],
            source="exercism",
            kind="approach",
            language="rust",
        ),
        make_doc(
            "none", ["Generic advice about sorting and searching."], source="so", kind="qa", language=None
        ),
    ]
    store.write_batch(batch_of(docs), MODEL)
    return store


def test_keyword_search_finds_rare_word_with_or_semantics(corpus_store: PgVectorStore) -> None:
    hits = corpus_store.keyword_search("what does a zyzzyva eat?", 5, Filters())
    assert hits[0][0] == "py#1"
    assert hits[0][1] > 0
    # a word absent from the corpus does not hide the others (OR, not AND)
    assert [cid for cid, _ in corpus_store.keyword_search("zyzzyva nonexistentword", 5, Filters())] == [
        "py#1"
    ]
    # stemming: "sorts", "sorting" and "sort" meet
    assert {cid for cid, _ in corpus_store.keyword_search("sort", 10, Filters())} == {
        "py#1",
        "rs#1",
        "none#0",
    }


def test_keyword_search_filters_and_odd_queries(corpus_store: PgVectorStore) -> None:
    def ids(query: str, filters: Filters, k: int = 10) -> set[str]:
        return {cid for cid, _ in corpus_store.keyword_search(query, k, filters)}

    assert ids("sorting", Filters(source=["exercism"])) == {"rs#1"}
    assert ids("sorting", Filters(kind=["qa", "doc"])) == {"py#1", "none#0"}
    assert ids("sorting", Filters(language=["rust", "python"])) == {"py#1", "rs#1"}
    assert ids("sorting", Filters(language=[""])) == {"none#0"}
    assert ids("zyzzyva", Filters(source=["exercism"])) == set()
    assert len(corpus_store.keyword_search("sorting", 1, Filters())) == 1
    assert corpus_store.keyword_search("!!! ??? & | :*", 5, Filters()) == []
    assert corpus_store.keyword_search("the and of", 5, Filters()) == []  # only stop words
    assert corpus_store.keyword_search("'); DROP TABLE chunks; --", 5, Filters()) == []
    assert corpus_store.stats()["chunks"] == 5


def test_keyword_search_weighs_rare_words_above_repeated_common_ones(store: PgVectorStore) -> None:
    filler = [
        make_doc(f"f{i}", [f"work work work work on the {i} worker task, work again"]) for i in range(60)
    ]
    target = make_doc("target", ["a zyzzyva at work"])
    store.write_batch(batch_of([*filler, target]), MODEL)
    store.analyze()
    hits = store.keyword_search("how does the zyzzyva work on a task", 5, Filters())
    assert hits[0][0] == "target#0"
    # words in nearly every chunk select no candidates beside a rarer word, but alone they still do
    assert [cid for cid, _ in hits] == ["target#0"]
    assert len(store.keyword_search("work task", 5, Filters())) == 5


def test_query_words_are_sanitised() -> None:
    assert query_words("Two_Sum: O(n) & hash|map, two!") == ["two", "sum", "o", "n", "hash", "map"]
    assert query_words("':* <-> !") == []
    assert tsquery_literal("it's") == "'it''s'"
    assert tsquery_literal("a\\b") == "'a\\\\b'"


# --- vector search ----------------------------------------------------------------------------
def test_vector_search_known_nearest_and_filters(store: PgVectorStore) -> None:
    basis = np.eye(DIM, dtype=np.float32)
    docs = [
        make_doc("a", ["a0", "a1", "a2"], source="docs", language="python"),
        make_doc("b", ["b0", "b1", "b2"], source="other", language="rust"),
    ]
    store.write_batch(batch_of(docs, vectors=basis[:6].copy()), MODEL)

    query = unit(basis[1] + 0.3 * basis[4])
    hits = store.vector_search(query, 3, Filters())
    assert [cid for cid, _ in hits][:2] == ["a#1", "b#1"]
    assert hits[0][1] == pytest.approx(float(query[1]), abs=1e-5)
    assert hits[0][1] > hits[1][1] > hits[2][1]
    assert [cid for cid, _ in store.vector_search(query, 1, Filters(source=["other"]))] == ["b#1"]
    assert [cid for cid, _ in store.vector_search(query, 1, Filters(language=["python"]), exact=True)] == [
        "a#1"
    ]
    assert store.vector_search(query, 5, Filters(source=["nowhere"])) == []
    with pytest.raises(CetError, match="dims"):
        store.vector_search(np.ones(DIM + 2), 3, Filters())


def _plan(store: PgVectorStore, query: np.ndarray, filters: Filters, exact: bool) -> str:
    statement, params = store.nearest_sql(query, 10, filters, exact=exact)
    rows = store._conn.execute(psycopg.sql.SQL("EXPLAIN ") + statement, params).fetchall()
    return "\n".join(r[0] for r in rows)


def _index_scans(store: PgVectorStore) -> int:
    store._conn.execute("SELECT pg_stat_force_next_flush()")
    store._conn.execute("SELECT 1")  # stats are flushed when a statement ends
    row = store._conn.execute(
        "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'chunks_embedding_hnsw'"
    ).fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def big_store(db_url: str) -> Iterator[PgVectorStore]:
    """2,000 random unit vectors (dim 32), loaded in bulk; 20 of them from a rare source."""
    dim, n = 32, 2000
    rng = np.random.default_rng(42)
    vectors = unit(rng.normal(size=(n, dim)))
    with PgVectorStore(db_url) as store:
        store.bind_embedding_model(MODEL, dim)
        with store.bulk_load():
            assert store.stats()["vector_index"] is None
            for start in range(0, n, 500):
                docs = [
                    make_doc(f"d{i}", [f"chunk {i}"], source="rare" if i % 100 == 0 else "common")
                    for i in range(start, start + 500)
                ]
                store.write_batch(batch_of(docs, vectors=vectors[start : start + 500]), MODEL)
        assert store.stats()["vector_index"] is not None
        store.test_vectors = vectors  # type: ignore[attr-defined]
        yield store


def test_hnsw_agrees_with_exact_scan(big_store: PgVectorStore) -> None:
    rng = np.random.default_rng(7)
    vectors = big_store.test_vectors  # type: ignore[attr-defined]
    queries = unit(
        vectors[rng.choice(len(vectors), 20, replace=False)] + 0.3 * unit(rng.normal(size=(20, 32)))
    )
    assert "chunks_embedding_hnsw" in _plan(big_store, queries[0], Filters(), exact=False)
    assert "chunks_embedding_hnsw" not in _plan(big_store, queries[0], Filters(), exact=True)

    scans_before = _index_scans(big_store)
    recalls = []
    for query in queries:
        approx = big_store.vector_search(query, 10, Filters())
        exact = big_store.vector_search(query, 10, Filters(), exact=True)
        assert len(approx) == len(exact) == 10
        truth = np.argsort(-(vectors @ query))[:10]
        assert [cid for cid, _ in exact] == [f"d{i}#0" for i in truth]
        np.testing.assert_allclose([s for _, s in exact], (vectors @ query)[truth], atol=1e-5)
        recalls.append(len({c for c, _ in approx} & {c for c, _ in exact}) / 10)
    assert np.mean(recalls) >= 0.9
    # every approximate search went through the index, also once psycopg prepared the statement
    assert _index_scans(big_store) - scans_before == len(queries)


def test_filtered_hnsw_search_falls_back_to_exact(big_store: PgVectorStore) -> None:
    query = unit(np.random.default_rng(3).normal(size=32))
    rare = Filters(source=["rare"])
    exact = big_store.vector_search(query, 30, rare, exact=True)
    assert len(exact) == 20  # only 20 chunks match the filter
    assert big_store.vector_search(query, 30, rare) == exact
    assert {cid for cid, _ in big_store.vector_search(query, 5, rare)} == {cid for cid, _ in exact[:5]}
    assert len(big_store.vector_search(query, 1500, Filters())) == 1500  # k beyond ef_search


def test_rebuild_vector_index(big_store: PgVectorStore) -> None:
    big_store.rebuild_vector_index()
    assert big_store.stats()["vector_index"] == "chunks_embedding_hnsw"
    query = big_store.test_vectors[5]  # type: ignore[attr-defined]
    assert big_store.vector_search(query, 1, Filters())[0][0] == "d5#0"


def test_bulk_load_restores_index_after_an_error(store: PgVectorStore) -> None:
    with pytest.raises(RuntimeError), store.bulk_load():
        assert store.stats()["vector_index"] is None
        raise RuntimeError("reader failed")
    assert store.stats()["vector_index"] is not None


# --- stats and log ----------------------------------------------------------------------------
def test_stats_counts_and_ingest_log(corpus_store: PgVectorStore) -> None:
    corpus_store.record_ingest("docs", "/data/docs", {"read": 3, "skipped": {"empty": 1}})
    corpus_store.record_ingest("so", "/data/so", {"read": 1})
    stats = corpus_store.stats()
    assert stats["backend"] == "postgres"
    assert stats["documents"] == 3
    assert stats["chunks"] == 5
    assert stats["by_source"] == {"docs": 2, "exercism": 2, "so": 1}
    assert stats["by_kind"] == {"doc": 2, "approach": 2, "qa": 1}
    assert stats["by_language"] == {"python": 2, "rust": 2, "": 1}
    assert (stats["embedding_model"], stats["embedding_dim"]) == (MODEL, DIM)
    assert [e["source"] for e in stats["recent_ingests"]] == ["so", "docs"]
    assert stats["recent_ingests"][1]["counts"] == {"read": 3, "skipped": {"empty": 1}}
    assert stats["recent_ingests"][0]["at"] >= stats["recent_ingests"][1]["at"]


# --- connection errors ------------------------------------------------------------------------
def test_unreachable_server_raises_store_unavailable_without_password() -> None:
    with pytest.raises(StoreUnavailable) as info:
        PgVectorStore("postgresql://u:secret@127.0.0.1:1/db")
    message = str(info.value)
    assert "secret" not in message
    assert "\n" not in message
    assert "127.0.0.1" in message


def test_bad_url_and_unknown_database_raise_store_unavailable(pg_url: str) -> None:
    with pytest.raises(StoreUnavailable) as info:
        PgVectorStore("postgresql://u:secret@host:notaport/db")
    assert "secret" not in str(info.value)
    with pytest.raises(StoreUnavailable, match="does_not_exist"):
        PgVectorStore(with_database(pg_url, "does_not_exist"))


def test_closed_store_raises_store_unavailable(db_url: str) -> None:
    store = PgVectorStore(db_url)
    store.close()
    with pytest.raises(StoreUnavailable):
        store.stats()


def test_mask_url() -> None:
    assert mask_url("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_url("postgresql://u:p@ss@h/db") == "postgresql://u:***@h/db"
    assert mask_url("postgresql://h/db?password=secret&x=1") == "postgresql://h/db?password=***&x=1"
    assert (
        mask_url("postgresql://postgres@/postgres?host=/tmp/x")
        == "postgresql://postgres@/postgres?host=/tmp/x"
    )


# --- local server -----------------------------------------------------------------------------
def test_local_postgres_lifecycle(tmp_path: Path) -> None:
    data_dir = tmp_path / "kb-pg"
    assert local_postgres_status(data_dir)["running"] is False
    assert stop_local_postgres(data_dir) is False
    url = start_local_postgres(data_dir)
    try:
        assert url.startswith("postgresql://")
        assert start_local_postgres(data_dir) == url
        status = local_postgres_status(data_dir)
        assert status["running"] and status["initialized"] and status["url"] == url
        with PgVectorStore(url) as store:
            assert store.stats()["chunks"] == 0
    finally:
        assert stop_local_postgres(data_dir) is True
    assert local_postgres_status(data_dir)["running"] is False
    assert stop_local_postgres(data_dir) is False
    assert start_local_postgres(data_dir) == url  # restarts on the same data
    assert stop_local_postgres(data_dir) is True
