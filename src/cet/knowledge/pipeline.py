"""The knowledge base's entry points used by the CLI and the main job: ingest one source, open a retriever."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cet.config import CetConfig
from cet.errors import CetError
from cet.knowledge.embedding import Embedder, embedder_for_name, make_embedder
from cet.knowledge.ingest import Ingestor, IngestReport
from cet.knowledge.retrieval import HybridRetriever
from cet.knowledge.sources import SOURCE_NAMES, read_source
from cet.knowledge.stores import Store, open_store


def resolve_source_path(source: str, path: str) -> Path | str:
    if source not in SOURCE_NAMES:
        raise CetError(f"unknown source {source!r}: choose one of {', '.join(SOURCE_NAMES)}")
    if source == "leetcode" and path == "packaged":
        return path
    p = Path(path).expanduser()
    if not p.exists():
        raise CetError(f"{source} path not found: {p}")
    return p


def ingest_source(
    cfg: CetConfig, source: str, path: str, options: dict[str, Any] | None = None,
    on_progress: Callable[[IngestReport], None] | None = None, store: Store | None = None,
    embedder: Embedder | None = None,
) -> IngestReport:
    """Ingest one source into the configured store (or the given one)."""
    where = resolve_source_path(source, path)
    # the reader first: a path it refuses at the call (no such dump, not a Posts.xml) leaves no store behind
    records = read_source(source, where, **(options or {}))  # type: ignore[arg-type]
    own_store = store is None
    store = store or open_store(cfg.kb.db, cfg.kb)
    try:
        embedder = embedder or embedder_for_store(store, cfg)
        ingestor = Ingestor(store, embedder, max_chars=cfg.kb.chunk_max_chars)
        report = ingestor.ingest(records, source, str(where), on_progress=on_progress)
        store.refresh_indexes()  # derived indexes built now, so read-only searches find them on disk
        return report
    finally:
        if own_store:
            store.close()


def embedder_for_store(store: Store, cfg: CetConfig) -> Embedder:
    """The store's own embedder when it has one (so one store never mixes models), else the configured one."""
    bound = store.embedding_model()
    return embedder_for_name(bound[0], cfg.kb.embedding) if bound else make_embedder(cfg.kb.embedding)


def open_retriever(cfg: CetConfig, store: Store | None = None) -> HybridRetriever:
    """A retriever over the configured store; the query embedder loads only when vectors are searched."""
    store = store or open_store(cfg.kb.db, cfg.kb, must_exist=True, read_only=True)
    bound = store.embedding_model()

    def load_embedder() -> Embedder:
        if bound is None:
            raise CetError(f"knowledge base {store.url} is empty: ingest a source first")
        return embedder_for_name(bound[0], cfg.kb.embedding)

    return HybridRetriever(store, load_embedder, candidates=cfg.kb.candidates, rrf_k=cfg.kb.rrf_k,
                           fusion=cfg.kb.fusion, alpha=cfg.kb.fusion_alpha)
