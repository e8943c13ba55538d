"""The Store interface every knowledge-base backend implements (SQLite embedded, PostgreSQL + pgvector)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from cet.knowledge.records import Chunk, Document, Filters


@dataclass
class DocumentBatch:
    """Documents to write in one transaction: each document's chunks replace whatever it had before.

    ``vectors[i]`` is the embedding of ``chunks[i]`` (L2-normalised float32), one row per chunk,
    over all documents of the batch in order.
    """

    documents: list[Document]
    chunks: list[list[Chunk]]
    vectors: np.ndarray


class Store(Protocol):
    """A knowledge base: documents, chunks, their embeddings, keyword and vector search.

    Writes are transactional (a batch lands whole or not at all), so a killed ingest leaves the
    store as it was after the last committed batch and a re-run resumes from there. Readers keep
    working while a writer ingests.
    """

    url: str

    def close(self) -> None: ...

    # --- embedding model bound to this store -------------------------------------------------
    def embedding_model(self) -> tuple[str, int] | None:
        """(model name, dimension) the store's vectors were made with, or None when empty."""

    def bind_embedding_model(self, name: str, dim: int) -> None:
        """Record the model on first use; raise CetError if the store already uses another one."""

    # --- ingest -------------------------------------------------------------------------------
    def document_hashes(self, source: str) -> dict[str, str]:
        """doc_id -> content hash of every stored document of a source (to skip unchanged ones)."""

    def cached_embeddings(self, model: str, hashes: list[str]) -> dict[str, np.ndarray]:
        """Vectors already computed for these text hashes with this model."""

    def write_batch(self, batch: DocumentBatch, model: str) -> None:
        """Store documents, chunks and vectors in one transaction (idempotent by doc_id)."""

    def record_ingest(self, source: str, path: str, counts: dict[str, Any]) -> None:
        """Append an ingest log entry (what was read, stored, skipped and why)."""

    def refresh_indexes(self) -> None:
        """Bring derived search indexes up to date after an ingest, so readers find them built (a no-op where the
        database maintains its indexes itself)."""

    # --- search -------------------------------------------------------------------------------
    def keyword_search(self, query: str, k: int, filters: Filters) -> list[tuple[str, float]]:
        """BM25-style full-text search: (chunk_id, score), best first."""

    def vector_search(
        self, vector: np.ndarray, k: int, filters: Filters, exact: bool = False
    ) -> list[tuple[str, float]]:
        """Nearest chunks by cosine similarity: (chunk_id, similarity), best first.

        ``exact=True`` forces a brute-force scan (the ground truth ANN recall is measured against).
        """

    def get_chunks(self, chunk_ids: list[str]) -> dict[str, Chunk]:
        """The chunks with these ids (missing ids are absent from the result)."""

    def stats(self) -> dict[str, Any]:
        """Counts by source, kind and language, the embedding model, ingest history."""
