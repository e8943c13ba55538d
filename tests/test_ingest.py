"""Ingest: counts, idempotent re-runs that embed nothing, changed documents, duplicates, reader failures, and a
killed `cet kb ingest` that resumes where it stopped."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from cet.knowledge.chunking import chunk_document
from cet.knowledge.ingest import Ingestor
from cet.knowledge.records import Document, Filters, SkippedRecord
from cet.knowledge.sources.exercism import read_exercism
from cet.knowledge.stores.sqlite import SQLiteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "kb.sqlite")
    yield s
    s.close()


def make_doc(doc_id: str, text: str, title: str = "Note", fmt: str = "text") -> Document:
    return Document(source="fixture", doc_id=doc_id, title=title, text=text, kind="doc", path=f"notes/{doc_id}",
                    format=fmt)


def chunk_rows(store: SQLiteStore) -> list[tuple]:
    return store.conn.execute("SELECT rowid, chunk_id, doc_id, text, hash FROM chunks ORDER BY rowid").fetchall()


# ------------------------------------------------------------------------------------------ fixture tree


def test_ingest_counts_on_the_fixture_tree(store: SQLiteStore, embedder, core_exercism: Path) -> None:
    records = list(read_exercism(core_exercism))
    docs = [r for r in records if isinstance(r, Document)]
    chunks = [c for d in docs for c in chunk_document(d)]
    report = Ingestor(store, embedder).ingest(records, "exercism", str(core_exercism))

    assert report.documents_read == len(docs) == 10
    assert report.documents_written == 10 and report.documents_unchanged == 0
    assert report.chunks_written == len(chunks)
    assert report.texts_embedded == len({c.hash for c in chunks})
    assert report.texts_embedded + report.embeddings_reused == len(chunks)
    assert report.skipped == 2
    assert report.skipped_reasons == {"malformed JSON": 1, "malformed TOML": 1}
    assert {e["path"] for e in report.skipped_examples} == {
        "exercises/broken-canon/canonical-data.json", "exercises/broken-meta/metadata.toml"}
    assert report.error is None
    stats = store.stats()
    assert stats["documents"] == 10 and stats["chunks"] == len(chunks)
    assert stats["by_kind"] == {"statement": 6, "tests": 4}
    assert stats["embedding_model"] == embedder.name and stats["embedding_dim"] == embedder.dim == 384
    assert stats["recent_ingests"][0]["counts"]["documents_read"] == 10
    assert stats["recent_ingests"][0]["counts"]["skipped_reasons"] == {"malformed JSON": 1, "malformed TOML": 1}
    # the stored vectors are the embedder's, unit length
    vectors = store.cached_embeddings(embedder.name, [c.hash for c in chunks])
    assert len(vectors) == len(chunks)
    assert all(abs(float(np.linalg.norm(v)) - 1.0) < 1e-4 for v in vectors.values())

    # a second ingest of the same data embeds nothing and rewrites nothing
    before = chunk_rows(store)
    again = Ingestor(store, embedder).ingest(read_exercism(core_exercism), "exercism", str(core_exercism))
    assert again.texts_embedded == 0
    assert again.documents_unchanged == again.documents_read == 10
    assert again.documents_written == 0 and again.chunks_written == 0
    assert again.skipped == 2
    assert chunk_rows(store) == before
    assert len(store.stats()["recent_ingests"]) == 2


def test_changed_document_is_rewritten_and_only_new_texts_embedded(store: SQLiteStore, embedder) -> None:
    def sections(changed: str) -> str:
        parts = [f"## Part {i}\n\n" + f"Sentence {i} about canal locks and barges. " * 4 for i in range(4)]
        parts[2] = f"## Part 2\n\n{changed}"
        return "\n\n".join(parts)

    v1 = make_doc("guide", sections("The lock keeper opens the upper gate first."), title="Canal guide",
                  fmt="markdown")
    sibling = make_doc("sibling", "A short unrelated note about lighthouses.")
    ingestor = Ingestor(store, embedder, max_chars=200)
    first = ingestor.ingest([v1, sibling], "fixture", "mem")
    old_chunks = chunk_document(v1, 200)
    assert len(old_chunks) == 4 and first.chunks_written == 5

    v2 = make_doc("guide", sections("Boats wait for the water level to fall before leaving."), title="Canal guide",
                  fmt="markdown")
    new_chunks = chunk_document(v2, 200)
    changed = {c.hash for c in new_chunks} - {c.hash for c in old_chunks}
    assert len(changed) == 1
    second = ingestor.ingest([v2, sibling], "fixture", "mem")
    assert second.documents_unchanged == 1
    assert second.documents_written == 1
    assert second.chunks_written == 4
    assert second.texts_embedded == 1
    assert second.embeddings_reused == 3
    stored = store.conn.execute("SELECT text FROM chunks WHERE doc_id='guide' ORDER BY ordinal").fetchall()
    assert [t for (t,) in stored] == [c.text for c in new_chunks]
    assert store.keyword_search("keeper", 5, Filters()) == []
    assert ids_of(store.keyword_search("water level", 5, Filters())) == [new_chunks[2].chunk_id]
    assert store.document_hashes("fixture") == {"guide": v2.hash, "sibling": sibling.hash}
    # the one new vector is this text's embedding
    new_vector = store.cached_embeddings(embedder.name, [new_chunks[2].hash])[new_chunks[2].hash]
    expected = embedder.embed([new_chunks[2].embedding_text])[0]
    assert float(new_vector @ expected) > 0.999


def ids_of(results: list[tuple[str, float]]) -> list[str]:
    return [cid for cid, _ in results]


def test_identical_chunk_texts_are_embedded_once(store: SQLiteStore, embedder) -> None:
    report = Ingestor(store, embedder).ingest(
        [make_doc("a", "the same sentence twice"), make_doc("b", "the same sentence twice")], "fixture", "mem")
    assert report.chunks_written == 2
    assert report.texts_embedded == 1 and report.embeddings_reused == 1


def test_duplicate_doc_ids_are_skipped_and_counted(store: SQLiteStore, embedder) -> None:
    records = [make_doc("one", "first version about owls"), make_doc("two", "a note about bats"),
               make_doc("one", "second version about moths"), SkippedRecord("fixture", "x.bin", "not UTF-8 text")]
    report = Ingestor(store, embedder).ingest(records, "fixture", "mem")
    assert report.documents_read == 2 and report.documents_written == 2
    assert report.skipped == 2
    assert sum(report.skipped_reasons.values()) == 2
    assert report.skipped_reasons["not UTF-8 text"] == 1
    assert any(key.startswith("duplicate doc_id") for key in report.skipped_reasons)
    assert {"path": "notes/one", "reason": "duplicate doc_id: one"} in report.skipped_examples
    texts = store.conn.execute("SELECT text FROM chunks WHERE doc_id='one'").fetchall()
    assert texts == [("first version about owls",)], "the first occurrence wins"


def test_reader_failing_mid_stream_keeps_committed_batches(store: SQLiteStore, embedder) -> None:
    committed_when_failing: list[int] = []

    def reader() -> Iterator[Document]:
        for i in range(5):
            yield make_doc(f"d{i}", f"document number {i} about ferries")
        other = sqlite3.connect(store.path)
        committed_when_failing.append(other.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
        other.close()
        raise OSError("device went away")

    report = Ingestor(store, embedder, batch_documents=2).ingest(reader(), "fixture", "mem")
    assert committed_when_failing == [4], "two full batches were committed before the reader failed"
    assert report.error == "OSError: device went away"
    assert report.documents_read == 5
    assert report.documents_written == 5, "the documents read before the failure are still written"
    assert set(store.document_hashes("fixture")) == {f"d{i}" for i in range(5)}
    assert store.stats()["recent_ingests"][0]["counts"]["error"] == "OSError: device went away"


def test_unexpected_reader_error_propagates_but_committed_batches_stay(store: SQLiteStore, embedder) -> None:
    def reader() -> Iterator[Document]:
        for i in range(5):
            yield make_doc(f"d{i}", f"document number {i} about trams")
        raise KeyError("bug in a reader")

    with pytest.raises(KeyError):
        Ingestor(store, embedder, batch_documents=2).ingest(reader(), "fixture", "mem")
    assert set(store.document_hashes("fixture")) == {"d0", "d1", "d2", "d3"}
    assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_ingestor_refuses_a_store_built_with_another_model(store: SQLiteStore, embedder) -> None:
    from cet.errors import CetError

    store.bind_embedding_model("st:some-other-model", 384)
    with pytest.raises(CetError, match="some-other-model"):
        Ingestor(store, embedder)


# ------------------------------------------------------------------------------------------ killed ingest


def _count_documents(db: Path) -> int | None:
    if not db.exists():
        return None
    try:
        conn = sqlite3.connect(db, timeout=1)
        try:
            return conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:  # schema not created yet, or busy
        return None


@pytest.mark.slow
def test_killed_ingest_resumes_without_redoing_committed_work(
    tmp_path: Path, real_exercism: Path, cet_bin: Path, cet_env: Callable[..., dict[str, str]],
) -> None:
    expected = len({r.doc_id for r in read_exercism(real_exercism) if isinstance(r, Document)})
    assert expected > 400
    db = tmp_path / "kb.sqlite"
    command = [str(cet_bin), "kb", "ingest", "--source", "exercism", str(real_exercism), "--db", str(db), "--json"]
    log = tmp_path / "first.log"
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=cet_env())
    try:
        deadline = time.monotonic() + 600
        while True:
            count = _count_documents(db)
            if count:
                break
            assert proc.poll() is None, f"ingest ended before any batch was seen: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "no batch committed within 10 minutes"
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")
        stored = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        assert 0 < stored < expected, "the kill landed mid-ingest"
        docs_without_chunks = conn.execute(
            "SELECT COUNT(*) FROM documents d WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.doc_id = d.doc_id)")
        assert docs_without_chunks.fetchone()[0] == 0, "every committed document came with its chunks"
        chunks_without_vectors = conn.execute(
            "SELECT COUNT(*) FROM chunks c WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.hash = c.hash)")
        assert chunks_without_vectors.fetchone()[0] == 0
        chunks_before = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    finally:
        conn.close()

    rerun = subprocess.run(command, capture_output=True, text=True, env=cet_env(), timeout=1800)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    report = json.loads(rerun.stdout)
    assert report["error"] is None
    assert report["documents_read"] == expected
    assert report["documents_unchanged"] == stored
    assert report["documents_written"] == expected - stored
    total_chunks = sum(len(chunk_document(r)) for r in read_exercism(real_exercism) if isinstance(r, Document))
    assert report["chunks_written"] == total_chunks - chunks_before
    assert report["texts_embedded"] <= total_chunks - chunks_before
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0] == expected
        assert conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] == total_chunks
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
