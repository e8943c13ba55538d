"""The embedded SQLite store: transactional batches, FTS5 keyword search, exact and HNSW vector search, WAL."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cet.errors import CetError, StoreUnavailable
from cet.knowledge.chunking import chunk_document
from cet.knowledge.records import Chunk, Document, Filters
from cet.knowledge.stores import open_store
from cet.knowledge.stores.base import DocumentBatch
from cet.knowledge.stores.sqlite import SQLiteStore

MODEL = "test:random"
DIM = 16


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_doc(doc_id: str, text: str, source: str = "alpha", kind: str = "statement", language: str | None = None,
             title: str | None = None, **meta: object) -> Document:
    return Document(source=source, doc_id=doc_id, title=title if title is not None else f"Title {doc_id}",
                    text=text, kind=kind, path=f"path/{doc_id}", format="text", language=language,
                    metadata=dict(meta))


def batch_of(docs: list[Document], vectors: np.ndarray | None = None, seed: int = 0,
             max_chars: int = 1800) -> DocumentBatch:
    chunks = [chunk_document(d, max_chars) for d in docs]
    n = sum(len(c) for c in chunks)
    if vectors is None:
        vectors = unit(np.random.default_rng(seed), n)
    return DocumentBatch(docs, chunks, vectors)


def open_kb(path: Path, **kwargs: int) -> SQLiteStore:
    store = SQLiteStore(path, **kwargs)
    store.bind_embedding_model(MODEL, DIM)
    return store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = open_kb(tmp_path / "kb.sqlite")
    yield s
    s.close()


def ids(results: list[tuple[str, float]]) -> list[str]:
    return [cid for cid, _ in results]


def snapshot(store: SQLiteStore) -> dict[str, object]:
    q = store.conn.execute
    return {
        "documents": q("SELECT doc_id, source, hash, title, path, kind, language, metadata FROM documents "
                       "ORDER BY doc_id").fetchall(),
        "chunks": q("SELECT rowid, chunk_id, doc_id, text, hash FROM chunks ORDER BY rowid").fetchall(),
        "embeddings": q("SELECT model, hash FROM embeddings ORDER BY 1, 2").fetchall(),
        "fts_rows": q("SELECT COUNT(*) FROM chunks_fts_docsize").fetchone()[0],
        "meta": q("SELECT key, value FROM meta ORDER BY key").fetchall(),
    }


def assert_fts_consistent(store: SQLiteStore) -> None:
    store.conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")
    n_chunks = store.conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    assert store.conn.execute("SELECT COUNT(*) FROM chunks_fts_docsize").fetchone()[0] == n_chunks
    orphans = store.conn.execute("SELECT COUNT(*) FROM chunks WHERE doc_id NOT IN (SELECT doc_id FROM documents)")
    assert orphans.fetchone()[0] == 0


# ------------------------------------------------------------------------------------------ write / read


def test_write_batch_round_trip(store: SQLiteStore) -> None:
    docs = [
        make_doc("d1", "The heron waits in the shallows.", language="python", licence="MIT", tags=["a", "b"]),
        make_doc("d2", "Second document about otters.", source="beta", kind="qa"),
    ]
    batch = batch_of(docs)
    store.write_batch(batch, MODEL)
    written = [c for doc_chunks in batch.chunks for c in doc_chunks]
    got = store.get_chunks([c.chunk_id for c in written] + ["no-such-id"])
    assert set(got) == {c.chunk_id for c in written}
    for c in written:
        assert got[c.chunk_id] == c
    assert got[written[0].chunk_id].metadata == {"licence": "MIT", "tags": ["a", "b"], "format": "text"}
    assert got[written[1].chunk_id].language is None
    cached = store.cached_embeddings(MODEL, [c.hash for c in written])
    for i, c in enumerate(written):
        np.testing.assert_array_equal(cached[c.hash], batch.vectors[i])
    stats = store.stats()
    assert (stats["documents"], stats["chunks"], stats["embeddings"]) == (2, 2, 2)
    assert stats["by_source"] == {"alpha": 1, "beta": 1}
    assert stats["by_kind"] == {"statement": 1, "qa": 1}
    assert stats["embedding_model"] == MODEL and stats["embedding_dim"] == DIM
    assert_fts_consistent(store)


def test_rewriting_a_document_replaces_its_chunks(store: SQLiteStore) -> None:
    old_text = "\n\n".join(f"Zebra paragraph {i}: " + "stripes " * 20 for i in range(6))
    old = make_doc("d1", old_text)
    other = make_doc("d2", "An unrelated note about zebras kept by another document.")
    first = batch_of([old, other], max_chars=200)
    assert len(first.chunks[0]) >= 3
    store.write_batch(first, MODEL)
    old_ids = [c.chunk_id for c in first.chunks[0]]
    assert ids(store.keyword_search("stripes", 10, Filters()))

    new = make_doc("d1", "Now this document is only about a giraffe.")
    second = batch_of([new], seed=1)
    store.write_batch(second, MODEL)

    rows = store.conn.execute("SELECT chunk_id, text FROM chunks WHERE doc_id='d1'").fetchall()
    assert rows == [(second.chunks[0][0].chunk_id, "Now this document is only about a giraffe.")]
    assert store.conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] == 2
    assert store.keyword_search("stripes", 10, Filters()) == [], "a word only in the old version no longer matches"
    assert ids(store.keyword_search("giraffe", 10, Filters())) == [second.chunks[0][0].chunk_id]
    assert ids(store.keyword_search("zebras", 10, Filters())) == [first.chunks[1][0].chunk_id]
    assert set(store.get_chunks(old_ids)) == {old_ids[0]}, "only ordinal 0 exists again, with the new text"
    assert store.document_hashes("alpha")["d1"] == new.hash
    # the removed chunks' vectors are no longer searchable
    for i in range(1, len(old_ids)):
        assert old_ids[i] not in ids(store.vector_search(first.vectors[i], 5, Filters()))
    assert_fts_consistent(store)


def test_document_hashes_per_source(store: SQLiteStore) -> None:
    a, b, c = make_doc("a", "one"), make_doc("b", "two"), make_doc("c", "three", source="beta")
    store.write_batch(batch_of([a, b, c]), MODEL)
    assert store.document_hashes("alpha") == {"a": a.hash, "b": b.hash}
    assert store.document_hashes("beta") == {"c": c.hash}
    assert store.document_hashes("gamma") == {}


def test_cached_embeddings_by_model_and_hash(store: SQLiteStore) -> None:
    docs = [make_doc(f"d{i}", f"distinct text number {i}") for i in range(620)]
    batch = batch_of(docs)
    store.write_batch(batch, MODEL)
    hashes = [c.hash for chunks in batch.chunks for c in chunks]
    got = store.cached_embeddings(MODEL, hashes + ["0" * 64])
    assert len(got) == 620, "lookups over 500 hashes are batched, none lost"
    np.testing.assert_array_equal(got[hashes[600]], batch.vectors[600])
    assert got[hashes[0]].dtype == np.float32 and got[hashes[0]].shape == (DIM,)
    assert store.cached_embeddings("other:model", hashes[:5]) == {}
    assert store.cached_embeddings(MODEL, []) == {}


def test_identical_texts_share_one_cached_vector(store: SQLiteStore) -> None:
    docs = [make_doc("a", "same words", title="T"), make_doc("b", "same words", title="T")]
    store.write_batch(batch_of(docs), MODEL)
    assert store.stats()["embeddings"] == 1
    assert store.stats()["chunks"] == 2


def test_record_ingest_appears_in_stats(store: SQLiteStore) -> None:
    store.record_ingest("alpha", "/data/alpha", {"documents_read": 3, "skipped": 1})
    recent = store.stats()["recent_ingests"]
    assert recent[0]["source"] == "alpha" and recent[0]["path"] == "/data/alpha"
    assert recent[0]["counts"] == {"documents_read": 3, "skipped": 1}


# ------------------------------------------------------------------------------------------ keyword search


@pytest.fixture
def corpus(store: SQLiteStore) -> dict[str, str]:
    """Chunk id by doc id for a corpus mixing sources, kinds and languages, every text naming a quokka."""
    docs = [
        make_doc("py-stmt", "A quokka sorting exercise in Python.", source="alpha", kind="statement",
                 language="python"),
        make_doc("py-qa", "Why does my quokka list not sort?", source="alpha", kind="qa", language="python"),
        make_doc("js-stmt", "A quokka exercise for JavaScript.", source="alpha", kind="statement",
                 language="javascript"),
        make_doc("beta-doc", "Quokka documentation page.", source="beta", kind="doc", language=None),
        make_doc("unrelated", "Nothing about marsupials here, only kangaroo words.", source="beta", kind="doc"),
    ]
    batch = batch_of(docs)
    store.write_batch(batch, MODEL)
    return {d.doc_id: chunks[0].chunk_id for d, chunks in zip(docs, batch.chunks, strict=True)}


def test_keyword_search_with_filters(store: SQLiteStore, corpus: dict[str, str]) -> None:
    def found(filters: Filters) -> set[str]:
        return set(ids(store.keyword_search("quokka", 10, filters)))

    everything = {corpus[d] for d in ("py-stmt", "py-qa", "js-stmt", "beta-doc")}
    assert found(Filters()) == everything
    assert found(Filters(source=["beta"])) == {corpus["beta-doc"]}
    assert found(Filters(kind=["statement"])) == {corpus["py-stmt"], corpus["js-stmt"]}
    assert found(Filters(language=["python"])) == {corpus["py-stmt"], corpus["py-qa"]}
    assert found(Filters(language=["python", "javascript"])) == everything - {corpus["beta-doc"]}
    assert found(Filters(source=["alpha"], kind=["qa"], language=["python"])) == {corpus["py-qa"]}
    assert found(Filters(source=["gamma"])) == set()
    assert len(store.keyword_search("quokka", 2, Filters())) == 2


def test_keyword_search_scores_best_first(store: SQLiteStore, corpus: dict[str, str]) -> None:
    results = store.keyword_search("kangaroo marsupials", 10, Filters())
    assert ids(results) == [corpus["unrelated"]]
    scored = store.keyword_search("quokka exercise", 10, Filters())
    scores = [s for _, s in scored]
    assert scores == sorted(scores, reverse=True)
    assert scored[0][0] in {corpus["py-stmt"], corpus["js-stmt"]}, "chunks with both words rank first"


@pytest.mark.parametrize(
    "query",
    ['"quokka', 'quokka"', "quokka AND", "AND quokka", "quokka OR", "NOT quokka", "quok*", "*", "quokka*",
     "text:quokka", ":quokka", "title:(quokka", "(quokka", "quokka)", "((", "NEAR(quokka, 2)", "-quokka",
     "^quokka", "quokka's", "'", '"', "{quokka}", "[quokka]", "quokka + sort", "a AND b OR c", "\\quokka",
     "quokka\x00"],
)
def test_keyword_search_never_errors_on_fts_syntax(store: SQLiteStore, corpus: dict[str, str], query: str) -> None:
    results = store.keyword_search(query, 10, Filters())
    assert isinstance(results, list)
    if "quokka" in query:
        assert corpus["beta-doc"] in ids(results), f"the word quokka in {query!r} is still searched for"


@pytest.mark.parametrize("query", ["", "   ", "!!!", "?!.,;", "the and of"])
def test_keyword_search_on_queries_without_useful_words(store: SQLiteStore, corpus: dict[str, str],
                                                        query: str) -> None:
    assert isinstance(store.keyword_search(query, 10, Filters()), list)


def test_keyword_search_on_a_very_long_query(store: SQLiteStore, corpus: dict[str, str]) -> None:
    query = " ".join(f"word{i}" for i in range(2000)) + " quokka"
    assert isinstance(store.keyword_search(query, 10, Filters()), list)


# ------------------------------------------------------------------------------------------ vector search


def test_vector_search_exact_top1_is_the_known_nearest(store: SQLiteStore) -> None:
    rng = np.random.default_rng(7)
    vectors = unit(rng, 200)
    docs = [make_doc(f"v{i}", f"vector item {i}", source="alpha" if i % 2 else "beta") for i in range(200)]
    batch = batch_of(docs, vectors)
    store.write_batch(batch, MODEL)
    chunk_ids = [c[0].chunk_id for c in batch.chunks]
    for i in (0, 17, 99, 150, 199):
        query = vectors[i] + 0.01 * rng.standard_normal(DIM).astype(np.float32)
        results = store.vector_search(query, 5, Filters())
        assert results[0][0] == chunk_ids[i]
        scores = [s for _, s in results]
        assert scores == sorted(scores, reverse=True)
        expected = vectors @ query
        assert results[0][1] == pytest.approx(float(expected.max()), abs=1e-5)
        assert len(results) == 5
    # a filter excludes the true nearest: the answer is the nearest of the rest
    query = vectors[3]  # v3 is in source alpha
    beta = store.vector_search(query, 3, Filters(source=["beta"]))
    beta_rows = [i for i in range(200) if i % 2 == 0]
    best_beta = max(beta_rows, key=lambda i: float(vectors[i] @ query))
    assert beta[0][0] == chunk_ids[best_beta]
    assert set(ids(beta)) <= {chunk_ids[i] for i in beta_rows}


def test_vector_search_k_larger_than_store_and_empty_store(store: SQLiteStore) -> None:
    assert store.vector_search(unit(np.random.default_rng(0), 1)[0], 5, Filters()) == []
    store.write_batch(batch_of([make_doc("a", "one"), make_doc("b", "two")]), MODEL)
    assert len(store.vector_search(unit(np.random.default_rng(1), 1)[0], 10, Filters())) == 2
    assert store.vector_search(unit(np.random.default_rng(1), 1)[0], 10, Filters(kind=["qa"])) == []


def test_reader_sees_vectors_written_by_another_connection(tmp_path: Path) -> None:
    writer = open_kb(tmp_path / "kb.sqlite")
    reader = open_kb(tmp_path / "kb.sqlite")
    try:
        writer.write_batch(batch_of([make_doc("a", "one")]), MODEL)
        assert len(reader.vector_search(np.ones(DIM, np.float32) / 4, 10, Filters())) == 1
        later = batch_of([make_doc("b", "two")], seed=5)
        writer.write_batch(later, MODEL)
        assert reader.vector_search(later.vectors[0], 1, Filters())[0][0] == later.chunks[0][0].chunk_id
    finally:
        writer.close()
        reader.close()


# ------------------------------------------------------------------------------------------ HNSW

N_ANN = 3000
ANN_DIM = 32


def fill(store: SQLiteStore, vectors: np.ndarray, tag: str) -> list[str]:
    sources = ("alpha", "beta", "gamma")
    docs = [make_doc(f"{tag}{i}", f"{tag} item {i}", source=sources[i % 3], kind="qa" if i % 2 else "doc")
            for i in range(len(vectors))]
    batch = batch_of(docs, vectors)
    store.write_batch(batch, MODEL)
    return [c[0].chunk_id for c in batch.chunks]


def open_ann(path: Path) -> SQLiteStore:
    store = SQLiteStore(path, ann_threshold=100)
    store.bind_embedding_model(MODEL, ANN_DIM)
    return store


@pytest.fixture(scope="module")
def ann_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SQLiteStore, np.ndarray, list[str]]]:
    path = tmp_path_factory.mktemp("ann") / "kb.sqlite"
    store = open_ann(path)
    vectors = unit(np.random.default_rng(42), N_ANN, ANN_DIM)
    chunk_ids = fill(store, vectors, "v")
    yield store, vectors, chunk_ids
    store.close()


def test_hnsw_agrees_with_exact_search(ann_store: tuple[SQLiteStore, np.ndarray, list[str]]) -> None:
    store, _, _ = ann_store
    queries = unit(np.random.default_rng(1), 50, ANN_DIM)
    recalls = []
    for q in queries:
        approx = ids(store.vector_search(q, 10, Filters()))
        exact = ids(store.vector_search(q, 10, Filters(), exact=True))
        assert len(approx) == 10 and len(exact) == 10
        recalls.append(len(set(approx) & set(exact)) / 10)
    assert np.mean(recalls) >= 0.95
    assert Path(str(store.path) + ".hnsw").is_file(), "searches above ann_threshold went through the HNSW index"


def test_hnsw_with_filters_returns_only_matching_chunks(ann_store: tuple[SQLiteStore, np.ndarray, list[str]]) -> None:
    store, vectors, chunk_ids = ann_store
    meta = {cid: ("alpha", "beta", "gamma")[i % 3] for i, cid in enumerate(chunk_ids)}
    kinds = {cid: "qa" if i % 2 else "doc" for i, cid in enumerate(chunk_ids)}
    for q_index in (0, 1, 2, 500, 2999):
        query = vectors[q_index]
        results = ids(store.vector_search(query, 10, Filters(source=["beta"])))
        assert len(results) == 10
        assert all(meta[c] == "beta" for c in results)
        if meta[chunk_ids[q_index]] == "beta":
            assert results[0] == chunk_ids[q_index]
        both = ids(store.vector_search(query, 10, Filters(source=["alpha", "gamma"], kind=["qa"])))
        assert len(both) == 10
        assert all(meta[c] in ("alpha", "gamma") and kinds[c] == "qa" for c in both)
    assert store.vector_search(vectors[0], 10, Filters(source=["nowhere"])) == []


def test_hnsw_sidecar_survives_reopen_and_tracks_changes(tmp_path: Path) -> None:
    path = tmp_path / "kb.sqlite"
    sidecar = Path(str(path) + ".hnsw")
    rng = np.random.default_rng(3)
    base = unit(rng, N_ANN, ANN_DIM)
    store = open_ann(path)
    base_ids = fill(store, base, "v")
    assert ids(store.vector_search(base[10], 1, Filters())) == [base_ids[10]]
    store.close()
    assert sidecar.is_file()

    # later: new vectors, and one document rewritten with no chunks (its vector is deleted)
    store = open_ann(path)
    added = unit(rng, 40, ANN_DIM)
    added_ids = fill(store, added, "new")
    store.write_batch(DocumentBatch([make_doc("v7", "")], [[]], np.zeros((0, ANN_DIM), np.float32)), MODEL)
    for i in range(0, 40, 7):
        assert ids(store.vector_search(added[i], 1, Filters()))[0] == added_ids[i], "vectors added later are found"
    hits = ids(store.vector_search(base[7], 10, Filters()))
    assert base_ids[7] not in hits, "a deleted vector is never returned"
    assert len(hits) == 10
    # the index was loaded from the sidecar and appended to, not rebuilt (a rebuild would not hold the stale row)
    assert store._ann is not None and store._ann.index.ntotal == N_ANN + 40
    store.close()

    store = open_ann(path)
    try:
        assert ids(store.vector_search(added[39], 1, Filters())) == [added_ids[39]]
        assert base_ids[7] not in ids(store.vector_search(base[7], 10, Filters()))
    finally:
        store.close()


def test_hnsw_sidecar_of_a_deleted_database_is_not_trusted(tmp_path: Path) -> None:
    """Delete the database but not its .hnsw file, build a new one there: results must come from the new data."""
    path = tmp_path / "kb.sqlite"
    rng = np.random.default_rng(11)
    store = open_ann(path)
    fill(store, unit(rng, N_ANN, ANN_DIM), "old")
    store.vector_search(unit(rng, 1, ANN_DIM)[0], 5, Filters())
    store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    assert Path(str(path) + ".hnsw").is_file()

    store = open_ann(path)
    try:
        fresh = unit(rng, N_ANN, ANN_DIM)
        fresh_ids = fill(store, fresh, "fresh")
        top1 = [ids(store.vector_search(fresh[i], 1, Filters()))[:1] for i in range(0, N_ANN, 150)]
        assert top1 == [[fresh_ids[i]] for i in range(0, N_ANN, 150)]
    finally:
        store.close()


# ------------------------------------------------------------------------------------------ failures


def test_failing_batch_leaves_store_unchanged(store: SQLiteStore) -> None:
    keep = make_doc("keep", "original text with the word pelican")
    store.write_batch(batch_of([keep]), MODEL)
    before = snapshot(store)

    rewrite = make_doc("keep", "replacement text with the word cormorant")
    new = make_doc("new", "a brand new document about an albatross")
    short = batch_of([rewrite, new], vectors=unit(np.random.default_rng(2), 1))  # 2 chunks, 1 vector
    with pytest.raises(IndexError):
        store.write_batch(short, MODEL)
    assert snapshot(store) == before
    long = batch_of([rewrite, new], vectors=unit(np.random.default_rng(2), 3))  # 2 chunks, 3 vectors
    with pytest.raises(ValueError, match="3 vectors for 2 chunks"):
        store.write_batch(long, MODEL)
    assert snapshot(store) == before
    assert ids(store.keyword_search("pelican", 5, Filters())) == [batch_of([keep]).chunks[0][0].chunk_id]
    assert store.keyword_search("cormorant albatross", 5, Filters()) == []
    assert_fts_consistent(store)
    # no transaction was left open: the next good batch commits and is visible to another connection
    store.write_batch(batch_of([new]), MODEL)
    other = sqlite3.connect(store.path)
    try:
        assert other.execute("SELECT COUNT(*) FROM documents").fetchone()[0] == 2
    finally:
        other.close()


def test_bind_embedding_model_mismatch_raises(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "kb.sqlite")
    assert store.embedding_model() is None
    store.bind_embedding_model("model-a", 8)
    store.bind_embedding_model("model-a", 8)  # the same model again is fine
    with pytest.raises(CetError, match="model-a"):
        store.bind_embedding_model("model-b", 8)
    with pytest.raises(CetError):
        store.bind_embedding_model("model-a", 16)
    store.close()
    reopened = SQLiteStore(tmp_path / "kb.sqlite")
    try:
        assert reopened.embedding_model() == ("model-a", 8)
        with pytest.raises(CetError):
            reopened.bind_embedding_model("model-b", 8)
    finally:
        reopened.close()


def test_directory_as_db_path_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="directory"):
        SQLiteStore(tmp_path)


def test_non_sqlite_file_is_unavailable(tmp_path: Path) -> None:
    garbage = tmp_path / "kb.sqlite"
    garbage.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(StoreUnavailable):
        SQLiteStore(garbage)
    assert garbage.read_bytes() == bytes(range(256)) * 64, "the file is not modified"


def test_open_store_must_exist_for_reading(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="not found"):
        open_store(str(tmp_path / "missing.sqlite"), must_exist=True)
    assert not (tmp_path / "missing.sqlite").exists()
    store = open_store(str(tmp_path / "created.sqlite"))
    try:
        assert isinstance(store, SQLiteStore) and (tmp_path / "created.sqlite").is_file()
    finally:
        store.close()


def test_readers_keep_working_during_an_open_write_transaction(tmp_path: Path) -> None:
    path = tmp_path / "kb.sqlite"
    writer_store = open_kb(path)
    committed = batch_of([make_doc("a", "committed text about a walrus")])
    writer_store.write_batch(committed, MODEL)
    writer_store.close()

    writer = sqlite3.connect(path, isolation_level=None, timeout=1)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO documents(doc_id, source, hash) VALUES ('b', 'alpha', 'h')")
    writer.execute(
        "INSERT INTO chunks(chunk_id, doc_id, ordinal, source, kind, title, path, text, hash) "
        "VALUES ('b-0', 'b', 0, 'alpha', 'doc', 'B', 'p', 'uncommitted text about a walrus', 'hb')"
    )
    try:
        reader = SQLiteStore(path)  # opening a store during an ingest must not block or fail
        try:
            assert ids(reader.keyword_search("walrus", 10, Filters())) == [committed.chunks[0][0].chunk_id]
            assert reader.stats()["documents"] == 1
            assert set(reader.get_chunks(["b-0", committed.chunks[0][0].chunk_id])) == {committed.chunks[0][0].chunk_id}
            assert ids(reader.vector_search(committed.vectors[0], 3, Filters())) == [committed.chunks[0][0].chunk_id]
            writer.execute("COMMIT")
            assert reader.stats()["documents"] == 2
            assert "b-0" in ids(reader.keyword_search("walrus", 10, Filters()))
        finally:
            reader.close()
    finally:
        if writer.in_transaction:
            writer.execute("ROLLBACK")
        writer.close()


def test_chunk_equality_helper_sanity() -> None:
    """get_chunks rebuilds Chunk positionally; guard that the dataclass still has the expected field order."""
    assert [f for f in Chunk.__dataclass_fields__][:9] == [
        "chunk_id", "doc_id", "ordinal", "source", "kind", "title", "path", "text", "language"]


def test_common_words_stop_selecting_candidates_when_asked(tmp_path: Path) -> None:
    """With bm25_common_fraction set, a word in most chunks no longer pulls them all in; rare words still do."""
    docs = [make_doc(f"common-{i}", f"the widget number {i} is ordinary") for i in range(700)]
    docs.append(make_doc("rare", "a widget made of obsidian"))
    docs.append(make_doc("rare-alone", "obsidian is volcanic glass"))
    full = open_kb(tmp_path / "full.sqlite")
    full.write_batch(batch_of(docs), MODEL)
    pruned = open_kb(tmp_path / "pruned.sqlite", bm25_common_fraction=0.05)
    pruned.write_batch(batch_of(docs), MODEL)
    everything = ids(full.keyword_search("widget obsidian", 50, Filters()))
    selective = ids(pruned.keyword_search("widget obsidian", 50, Filters()))
    rare = {c for c, in full.conn.execute("SELECT chunk_id FROM chunks WHERE doc_id IN ('rare', 'rare-alone')")}
    assert len(everything) == 50 and rare <= set(everything[:2])
    assert set(selective) == rare, "only chunks with the rare word are candidates"
    only_common = ids(pruned.keyword_search("widget ordinary", 10, Filters()))
    assert len(only_common) == 10, "when every word is common, the rarest ones are still searched"
    full.close()
    pruned.close()


def test_a_store_opened_read_only_searches_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "kb.sqlite"
    writer = SQLiteStore(path, ann_threshold=100, bm25_common_fraction=0.5)
    writer.bind_embedding_model(MODEL, ANN_DIM)
    vectors = unit(np.random.default_rng(7), 150, ANN_DIM)
    chunk_ids = fill(writer, vectors, "v")
    writer.close()
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    assert set(before) == {"kb.sqlite"}  # the writer's WAL was checkpointed away on close
    probe = open_store(str(path), must_exist=True, read_only=True)
    assert probe.read_only  # type: ignore[attr-defined]
    probe.close()
    store = SQLiteStore(path, ann_threshold=100, keyword_index_threshold=1, read_only=True)
    try:
        # above ann_threshold: the HNSW index is built, in memory only; a keyword query with common words
        assert ids(store.vector_search(vectors[3], 5, Filters()))[0] == chunk_ids[3]
        assert store.keyword_search("v item 42", 5, Filters()) and store._keywords is not None  # Tantivy, in memory
        assert store.stats()["chunks"] == 150
        with pytest.raises(StoreUnavailable, match="read-only"):
            store.write_batch(batch_of([make_doc("new", "new text")], unit(np.random.default_rng(0), 1, ANN_DIM)),
                              MODEL)
    finally:
        store.close()
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before["kb.sqlite"]  # not a byte changed
    assert {p.name for p in tmp_path.iterdir()} <= {"kb.sqlite", "kb.sqlite-wal", "kb.sqlite-shm"}  # no index


def test_read_only_refuses_a_file_that_is_no_knowledge_base(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(StoreUnavailable, match="not a knowledge base"):
        SQLiteStore(other, read_only=True)


def _words_store(path: Path, **kwargs: Any) -> tuple[SQLiteStore, list[str]]:
    store = SQLiteStore(path, **kwargs)
    store.bind_embedding_model(MODEL, DIM)
    topics = ["sorting lists of dictionaries by key", "binary search in a sorted array", "parsing json files",
              "recursion and the call stack", "regular expressions for email addresses", "reading csv rows"]
    docs = [make_doc(f"d{i}", f"How to do {topics[i % 6]} in case {i}; notes on {topics[(i * 5) % 6]}.",
                     source=("alpha", "beta")[i % 2], kind=("qa", "doc")[i % 3 == 0], title=topics[i % 6])
            for i in range(60)]
    store.write_batch(batch_of(docs), MODEL)
    return store, [d.doc_id for d in docs]


def test_the_tantivy_keyword_index_ranks_like_fts5_and_follows_changes(tmp_path: Path) -> None:
    fts, _ = _words_store(tmp_path / "fts.sqlite", keyword_index_threshold=10**9)
    indexed, _ = _words_store(tmp_path / "kw.sqlite", keyword_index_threshold=1)
    try:
        for query in ("sorted array binary search", "json parsing", "email regular expressions csv"):
            for filters in (Filters(), Filters(source=["beta"]), Filters(kind=["doc"], source=["alpha"])):
                a, b = fts.keyword_search(query, 10, filters), indexed.keyword_search(query, 10, filters)
                assert bool(a) == bool(b)  # "json parsing" matches no beta chunk in either
                assert all(fts.get_chunks([cid])[cid].source in (filters.source or ["alpha", "beta"]) for cid, _ in b)
                if a:  # the same BM25 over the same fields: mostly the same top 10
                    assert len(set(ids(a)) & set(ids(b))) / len(a) >= 0.7, (query, filters, ids(a), ids(b))
        assert indexed._keywords is not None and Path(str(indexed.path) + ".tantivy", "state.json").is_file()
        # a new document is found at once; a replaced one is no longer found by its old words
        first = batch_of([make_doc("new", "quaternion rotation matrices", title="3d maths")])
        indexed.write_batch(first, MODEL)
        assert ids(indexed.keyword_search("quaternion", 5, Filters())) == [first.chunks[0][0].chunk_id]
        second = batch_of([make_doc("new", "octonion algebra", title="3d maths")])
        indexed.write_batch(second, MODEL)
        assert indexed.keyword_search("quaternion", 5, Filters()) == []
        assert ids(indexed.keyword_search("octonion", 5, Filters())) == [second.chunks[0][0].chunk_id]
    finally:
        fts.close()
        indexed.close()
    state = Path(str(tmp_path / "kw.sqlite") + ".tantivy", "state.json")
    written = state.stat().st_mtime_ns
    reopened = SQLiteStore(tmp_path / "kw.sqlite", keyword_index_threshold=1)  # the sidecar is reused
    try:
        assert ids(reopened.keyword_search("octonion", 5, Filters())) == [second.chunks[0][0].chunk_id]
        assert state.stat().st_mtime_ns == written  # reused as it was, not rebuilt
        # identifiers: Tantivy splits "snake_case" as FTS5 does, the query is not a phrase it cannot run
        assert reopened.keyword_search("sorting_lists x86_64", 5, Filters()) and reopened._keywords is not None
    finally:
        reopened.close()


def test_the_keyword_index_never_holds_a_row_twice(tmp_path: Path) -> None:
    path = tmp_path / "kb.sqlite"
    one, _ = _words_store(path, keyword_index_threshold=1)
    two = SQLiteStore(path, keyword_index_threshold=1)  # a second handle on the same store and sidecar
    try:
        assert one.keyword_search("binary search", 5, Filters())
        extra = batch_of([make_doc("extra", "binary search trees and heaps", title="trees")])
        one.write_batch(extra, MODEL)
        assert two.keyword_search("binary search", 5, Filters())  # two syncs first, from the state on disk
        assert one.keyword_search("binary search", 5, Filters())  # then one: nothing left to add
        for store in (one, two):
            assert store._keywords is not None and store._keywords.index.searcher().num_docs == 61
        # a commit whose state write was lost: the state on disk is behind the index
        state = Path(f"{path}.tantivy", "state.json")
        lost = json.loads(state.read_text())
        lost.update(count=60, generation=0)
        state.write_text(json.dumps(lost))
        three = SQLiteStore(path, keyword_index_threshold=1)
        try:
            found = ids(three.keyword_search("binary search", 100, Filters()))
            assert len(found) == len(set(found)) and three._keywords is not None
            assert three._keywords.index.searcher().num_docs == 61  # rebuilt, not appended to
        finally:
            three.close()
    finally:
        one.close()
        two.close()


def test_a_read_only_store_sees_later_writes_and_reads_the_sidecar_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "kb.sqlite"
    writer, _ = _words_store(path, keyword_index_threshold=1)
    writer.refresh_indexes()  # what an ingest does last: the sidecar is on disk
    sidecar = {f: f.stat().st_mtime_ns for f in Path(f"{path}.tantivy").rglob("*")}
    reader = SQLiteStore(path, keyword_index_threshold=1, read_only=True)
    fts_reader = SQLiteStore(path, keyword_index_threshold=10**9, read_only=True, bm25_common_fraction=0.01)
    try:
        assert reader.keyword_search("binary search", 5, Filters())
        assert {f: f.stat().st_mtime_ns for f in Path(f"{path}.tantivy").rglob("*")} == sidecar  # read, not written
        assert fts_reader.keyword_search("how to binary search", 5, Filters())  # FTS5's temp tables, read-only
        later = batch_of([make_doc("later", "quaternion rotation matrices", title="3d maths")])
        writer.write_batch(later, MODEL)  # a writer commits after the readers opened the store
        assert ids(reader.keyword_search("quaternion", 5, Filters())) == [later.chunks[0][0].chunk_id]
        assert ids(fts_reader.keyword_search("quaternion", 5, Filters())) == [later.chunks[0][0].chunk_id]
    finally:
        reader.close()
        fts_reader.close()
        writer.close()
