"""Ingest: a source reader's stream -> chunks -> embeddings (cached by content hash) -> the store, in batches.

Each batch is one transaction, so a killed ingest keeps every batch committed before it and a re-run
skips the documents whose content hash is unchanged: it resumes where it stopped and embeds nothing
twice. Bad records are counted with their reasons; nothing already stored is deleted.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from cet.knowledge.chunking import chunk_document
from cet.knowledge.embedding import Embedder
from cet.knowledge.records import Chunk, Document, SkippedRecord
from cet.knowledge.stores.base import DocumentBatch, Store


@dataclass
class IngestReport:
    source: str
    path: str
    documents_read: int = 0
    documents_unchanged: int = 0
    documents_written: int = 0
    chunks_written: int = 0
    texts_embedded: int = 0  # vectors computed in this run
    embeddings_reused: int = 0  # vectors found in the cache
    skipped: int = 0
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    skipped_examples: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    embed_seconds: float = 0.0
    error: str | None = None  # a reader failure that ended this source early (committed batches are kept)

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_written / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "chunks_per_second": round(self.chunks_per_second, 1)}


def _reason_key(reason: str) -> str:
    """Group reasons like 'malformed JSON: Expecting value: line 3' under their leading words."""
    return reason.split(":")[0][:80]


class Ingestor:
    """Writes documents into a store in transactional batches, embedding only what is not cached."""

    def __init__(self, store: Store, embedder: Embedder, max_chars: int = 1800, batch_documents: int = 64) -> None:
        self.store = store
        self.embedder = embedder
        self.max_chars = max_chars
        self.batch_documents = batch_documents
        store.bind_embedding_model(embedder.name, embedder.dim)

    def ingest(
        self, records: Iterable[Document | SkippedRecord], source: str, path: str,
        on_progress: Callable[[IngestReport], None] | None = None,
    ) -> IngestReport:
        report = IngestReport(source=source, path=path)
        started = time.perf_counter()
        known = self.store.document_hashes(source)
        seen: set[str] = set()
        pending: list[Document] = []
        skipped: Counter[str] = Counter()
        try:
            for record in records:
                if isinstance(record, SkippedRecord):
                    self._skip(report, skipped, record)
                elif record.doc_id in seen:
                    duplicate = SkippedRecord(source, record.path, f"duplicate doc_id: {record.doc_id}")
                    self._skip(report, skipped, duplicate)
                else:
                    seen.add(record.doc_id)
                    report.documents_read += 1
                    # the chunking settings are part of a document's version: changing them re-chunks it
                    record.metadata["chunk_max_chars"] = self.max_chars
                    if known.get(record.doc_id) == record.hash:
                        report.documents_unchanged += 1
                    else:
                        pending.append(record)
                        if len(pending) >= self.batch_documents:
                            self._flush(pending, report)
                            pending = []
                if on_progress:
                    on_progress(report)
        except (OSError, ValueError, RuntimeError) as e:  # a reader that breaks mid-stream ends only this source
            report.error = f"{type(e).__name__}: {e}"
        if pending:
            self._flush(pending, report)
        report.skipped_reasons = dict(skipped.most_common())
        report.seconds = time.perf_counter() - started
        self.store.record_ingest(source, path, report.to_dict())
        if on_progress:
            on_progress(report)
        return report

    @staticmethod
    def _skip(report: IngestReport, skipped: Counter[str], record: SkippedRecord) -> None:
        report.skipped += 1
        skipped[_reason_key(record.reason)] += 1
        if len(report.skipped_examples) < 20:
            report.skipped_examples.append({"path": record.path, "reason": record.reason})

    def _flush(self, documents: list[Document], report: IngestReport) -> None:
        chunks = [chunk_document(doc, self.max_chars) for doc in documents]
        flat = [c for doc_chunks in chunks for c in doc_chunks]
        vectors = self.vectors_for(flat, report)
        self.store.write_batch(DocumentBatch(documents, chunks, vectors), self.embedder.name)
        report.documents_written += len(documents)
        report.chunks_written += len(flat)

    def vectors_for(self, chunks: list[Chunk], report: IngestReport) -> np.ndarray:
        """One vector per chunk: from the cache where the text was embedded before, else computed now."""
        if not chunks:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        hashes = [c.hash for c in chunks]
        cached = self.store.cached_embeddings(self.embedder.name, list(set(hashes)))
        missing = {h: c.embedding_text for h, c in zip(hashes, chunks, strict=True) if h not in cached}
        if missing:
            t = time.perf_counter()
            computed = self.embedder.embed(list(missing.values()))
            report.embed_seconds += time.perf_counter() - t
            cached.update(zip(missing.keys(), computed, strict=True))
            report.texts_embedded += len(missing)
        report.embeddings_reused += len(hashes) - len(missing)
        return np.stack([cached[h] for h in hashes]).astype(np.float32)
