"""Knowledge-base stores behind one interface, chosen by the --db value (a path or a postgresql:// URL)."""

from __future__ import annotations

from pathlib import Path

from cet.config import KnowledgeConfig
from cet.errors import StoreUnavailable
from cet.knowledge.stores.base import DocumentBatch, Store

__all__ = ["DocumentBatch", "Store", "open_store", "is_postgres_url"]


def is_postgres_url(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


def open_store(db: str, cfg: KnowledgeConfig | None = None, must_exist: bool = False, read_only: bool = False) -> Store:
    """Open the store a --db value names; create it unless ``must_exist`` (for reading commands); ``read_only``
    (search, stats) writes nothing to a SQLite store, so a read-only copy or read-only media serve."""
    cfg = cfg or KnowledgeConfig()
    if is_postgres_url(db):
        from cet.knowledge.stores.pgvector import PgVectorStore

        return PgVectorStore(
            db, hnsw_m=cfg.hnsw_m, hnsw_ef_construction=cfg.hnsw_ef_construction, hnsw_ef_search=cfg.hnsw_ef_search
        )
    from cet.knowledge.stores.sqlite import SQLiteStore

    if must_exist and not Path(db).is_file():
        raise StoreUnavailable(f"knowledge base not found: {db} (build it with `cet kb ingest`)")

    return SQLiteStore(
        db,
        ann_threshold=cfg.ann_threshold,
        keyword_index_threshold=cfg.keyword_index_threshold,
        hnsw_m=cfg.hnsw_m,
        hnsw_ef_construction=cfg.hnsw_ef_construction,
        hnsw_ef_search=cfg.hnsw_ef_search,
        bm25_common_fraction=cfg.bm25_common_fraction,
        read_only=read_only,
    )
