"""The embedded default store: one SQLite file with FTS5 (BM25) and float32 vectors, plus an HNSW sidecar.

Layout: ``documents`` and ``chunks`` tables, an external-content FTS5 table over chunk titles and
texts kept in step by triggers, and ``embeddings`` keyed by (model, text hash): the embedding
cache and the vector store at once, so identical texts share one vector and re-ingesting
unchanged data embeds nothing. WAL journaling lets readers search while an ingest writes.

Vector search is exact (one matrix product) below ``ann_threshold`` vectors and goes through a
faiss HNSW index above it. The index is a derived cache kept in ``<db>.hnsw``: rows added since
it was saved are appended on load; rows deleted since are filtered out of its results, and it is
rebuilt when too many are stale. The SQLite file stays the single source of truth.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np

from cet.errors import CetError, StoreUnavailable
from cet.knowledge.records import Chunk, Filters
from cet.knowledge.stores.base import DocumentBatch
from cet.knowledge.stores.keyword_index import KeywordIndex
from cet.sqlite_wal import connect_wal

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, hash TEXT NOT NULL, title TEXT, path TEXT,
    kind TEXT, language TEXT, metadata TEXT, updated_at REAL);
CREATE INDEX IF NOT EXISTS documents_source ON documents(source);
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT, chunk_id TEXT NOT NULL UNIQUE,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL, source TEXT NOT NULL, kind TEXT NOT NULL, language TEXT,
    title TEXT, path TEXT, text TEXT NOT NULL, metadata TEXT, hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE INDEX IF NOT EXISTS chunks_hash ON chunks(hash);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    title, text, content='chunks', content_rowid='rowid', tokenize='porter unicode61');
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, title, text) VALUES (new.rowid, new.title, new.text); END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, title, text) VALUES ('delete', old.rowid, old.title, old.text);
    END;
CREATE TABLE IF NOT EXISTS embeddings (
    model TEXT NOT NULL, hash TEXT NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (model, hash));
CREATE TABLE IF NOT EXISTS ingest_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT, path TEXT, at REAL, counts TEXT);
"""

# Words too common to help BM25 on an OR query; dropping them keeps queries fast on large stores.
STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how i if in into is it its of on or so that the their "
    "then there these this to was what when where which who why will with you your".split()
)


MIN_COMMON_DOCUMENTS = 500


def query_words(text: str) -> list[str]:
    """The distinct words of a query, stopwords dropped (unless nothing else is left), at most 32."""
    words = [w for w in re.findall(r"\w+", text.lower()) if w not in STOPWORDS]
    if not words:
        words = re.findall(r"\w+", text.lower())
    return list(dict.fromkeys(words))[:32]


def fts_query(text: str | list[str]) -> str | None:
    """An FTS5 OR-query of the words (quoted, so no user text is read as FTS syntax)."""
    words = query_words(text) if isinstance(text, str) else text
    return " OR ".join(f'"{w}"' for w in words) if words else None


def _open_read_only(path: Path) -> sqlite3.Connection:
    """A connection that never writes to the database: ``mode=ro`` (SQLite may still create the ``-wal``/``-shm``
    files of a WAL database beside it, as any reader does); where even that cannot read (read-only media),
    ``immutable=1``. Refuses a file that is no knowledge base."""
    uri = path.resolve().as_uri()
    last: sqlite3.Error | None = None
    # mode=ro sees what a writer commits later; immutable=1 (nothing can change the file: read-only media, where
    # a WAL database cannot get the -shm file mode=ro needs) only when mode=ro cannot read it
    for mode in ("mode=ro", "mode=ro&immutable=1"):
        try:
            # a service's worker threads use it one at a time (serving's lock): not tied to the opening thread
            conn = sqlite3.connect(f"{uri}?{mode}", uri=True, timeout=30.0, isolation_level=None,
                                   check_same_thread=False)
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.Error as e:
            last = e
            continue
        if not {"meta", "documents", "chunks", "embeddings"} <= tables:
            conn.close()
            raise StoreUnavailable(f"{path} is not a knowledge base (no cet tables in it)")
        return conn
    raise StoreUnavailable(f"cannot open knowledge base {path} read-only: {last}")


class SQLiteStore:
    """Knowledge base in one SQLite file (the embedded default); ``read_only`` opens it for search only, writing
    nothing to the file, beside it or to a derived index (read-only media, a shared copy)."""

    def __init__(
        self,
        path: str | Path,
        ann_threshold: int = 20000,
        hnsw_m: int = 32,
        hnsw_ef_construction: int = 80,
        hnsw_ef_search: int = 96,
        bm25_common_fraction: float = 0.0,
        read_only: bool = False,
        keyword_index_threshold: int = 20000,
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.keyword_index_threshold = keyword_index_threshold
        self._keywords: KeywordIndex | None = None
        self._chunk_count: tuple[int, int] | None = None  # (generation, chunks)
        self.bm25_common_fraction = bm25_common_fraction
        self._vocab_ready = False
        self.url = str(self.path)
        self.ann_threshold = ann_threshold
        self.hnsw_m = hnsw_m
        self.hnsw_ef_construction = hnsw_ef_construction
        self.hnsw_ef_search = hnsw_ef_search
        if self.path.is_dir():
            raise StoreUnavailable(f"knowledge base path is a directory, not a SQLite file: {self.path}")
        if read_only:
            self.conn = _open_read_only(self.path)
            self._matrix_cache: _VectorCache | None = None
            self._ann: _HnswIndex | None = None
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = connect_wal(self.path, foreign_keys=True, schema=SCHEMA)
            # a random id for this database file: a derived index left by an earlier file at the same
            # path is recognised as foreign and rebuilt, never trusted
            if self.conn.execute("SELECT 1 FROM meta WHERE key='store_id'").fetchone() is None:
                self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('store_id', lower(hex(randomblob(16))))")
        except sqlite3.DatabaseError as e:
            raise StoreUnavailable(f"cannot open knowledge base {self.path}: {e}") from None
        except OSError as e:
            raise StoreUnavailable(f"cannot create knowledge base {self.path}: {e.strerror}") from None
        self._matrix_cache: _VectorCache | None = None
        self._ann: _HnswIndex | None = None

    def close(self) -> None:
        self.conn.close()

    def _writable(self) -> None:
        if self.read_only:
            raise StoreUnavailable(f"knowledge base {self.path} was opened read-only (for search): it cannot be "
                                   "written")

    # --- meta -----------------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def embedding_model(self) -> tuple[str, int] | None:
        name, dim = self._meta("embedding_model"), self._meta("embedding_dim")
        return (name, int(dim)) if name and dim else None

    def bind_embedding_model(self, name: str, dim: int) -> None:
        self._writable()
        bound = self.embedding_model()
        if bound is None:
            with self._transaction():
                self._set_meta("embedding_model", name)
                self._set_meta("embedding_dim", str(dim))
        elif bound != (name, dim):
            raise CetError(
                f"knowledge base {self.url} was built with embedding model {bound[0]} ({bound[1]} dims), "
                f"not {name} ({dim} dims): use the same embedder or a new --db"
            )

    def _generation(self) -> int:
        return int(self._meta("generation") or 0)

    # --- ingest ---------------------------------------------------------------------------------
    def _transaction(self) -> _Transaction:
        return _Transaction(self.conn)

    def document_hashes(self, source: str) -> dict[str, str]:
        rows = self.conn.execute("SELECT doc_id, hash FROM documents WHERE source=?", (source,))
        return dict(rows.fetchall())

    def cached_embeddings(self, model: str, hashes: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(hashes), 500):
            part = hashes[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = self.conn.execute(
                f"SELECT hash, vector FROM embeddings WHERE model=? AND hash IN ({marks})", (model, *part)
            )
            for h, blob in rows:
                out[h] = np.frombuffer(blob, dtype=np.float32)
        return out

    def write_batch(self, batch: DocumentBatch, model: str) -> None:
        self._writable()
        now = time.time()
        row = 0
        with self._transaction():
            for doc, chunks in zip(batch.documents, batch.chunks, strict=True):
                self.conn.execute("DELETE FROM chunks WHERE doc_id=?", (doc.doc_id,))
                self.conn.execute(
                    "INSERT OR REPLACE INTO documents VALUES (?,?,?,?,?,?,?,?,?)",
                    (doc.doc_id, doc.source, doc.hash, doc.title, doc.path, doc.kind, doc.language,
                     json.dumps(doc.metadata, default=str), now),
                )
                for chunk in chunks:
                    vector = np.ascontiguousarray(batch.vectors[row], dtype=np.float32)
                    row += 1
                    self.conn.execute(
                        "INSERT OR IGNORE INTO embeddings(model, hash, vector) VALUES (?,?,?)",
                        (model, chunk.hash, vector.tobytes()),
                    )
                    self.conn.execute(
                        "INSERT INTO chunks(chunk_id, doc_id, ordinal, source, kind, language, title, path, "
                        "text, metadata, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        (chunk.chunk_id, chunk.doc_id, chunk.ordinal, chunk.source, chunk.kind, chunk.language,
                         chunk.title, chunk.path, chunk.text, json.dumps(chunk.metadata, default=str), chunk.hash),
                    )
            if row != len(batch.vectors):
                raise ValueError(f"batch has {len(batch.vectors)} vectors for {row} chunks")
            self._set_meta("generation", str(self._generation() + 1))

    def record_ingest(self, source: str, path: str, counts: dict[str, Any]) -> None:
        self._writable()
        with self._transaction():
            self.conn.execute(
                "INSERT INTO ingest_log(source, path, at, counts) VALUES (?,?,?,?)",
                (source, path, time.time(), json.dumps(counts, default=str)),
            )

    # --- search ---------------------------------------------------------------------------------
    def _filter_sql(self, filters: Filters, alias: str = "c") -> tuple[str, list[Any]]:
        clauses, params = [], []
        for column, values in (("source", filters.source), ("language", filters.language), ("kind", filters.kind)):
            if values:
                clauses.append(f"{alias}.{column} IN ({','.join('?' * len(values))})")
                params.extend(values)
        return (" AND " + " AND ".join(clauses) if clauses else ""), params

    def _selective_words(self, words: list[str]) -> list[str]:
        """The query words that are not common: a word is common when its (stemmed) term occurs in more
        than ``bm25_common_fraction`` of the chunks and in more than MIN_COMMON_DOCUMENTS of them (so a
        small store is always searched for every word).

        An OR query ranks every chunk any of its words matches, so one common word makes BM25 score most
        of the store; common words carry little IDF weight anyway. When every word is common, the two
        rarest are kept. Document frequencies come from an fts5vocab table; the query words are stemmed
        by a scratch FTS5 table with the same tokenizer.
        """
        if not self.bm25_common_fraction or len(words) < 2:
            return words
        if not self._vocab_ready:
            for ddl in (
                "chunks_vocab USING fts5vocab(main, chunks_fts, row)",
                "query_terms USING fts5(x, tokenize='porter unicode61')",
                "query_vocab USING fts5vocab(temp, query_terms, instance)",
            ):
                self.conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{ddl}")
            self._vocab_ready = True
        self.conn.execute("DELETE FROM temp.query_terms")
        self.conn.executemany("INSERT INTO temp.query_terms(rowid, x) VALUES (?, ?)", list(enumerate(words)))
        stem = {row: term for term, row in self.conn.execute("SELECT term, doc FROM temp.query_vocab")}
        terms = sorted(set(stem.values()))
        frequency = dict(self.conn.execute(
            f"SELECT term, doc FROM temp.chunks_vocab WHERE term IN ({','.join('?' * len(terms))})", terms
        ).fetchall()) if terms else {}
        total = self.conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        df = [frequency.get(stem.get(i, ""), 0) for i in range(len(words))]
        limit = max(self.bm25_common_fraction * total, MIN_COMMON_DOCUMENTS)
        keep = [w for w, n in zip(words, df, strict=True) if n <= limit]
        return keep or [w for _, w in sorted(zip(df, words, strict=True))[:2]]

    def keyword_search(self, query: str, k: int, filters: Filters) -> list[tuple[str, float]]:
        """BM25 top k: through the Tantivy index at or above ``keyword_index_threshold`` chunks (every query word;
        see stores/keyword_index.py), else through FTS5 (the common words dropped past
        ``bm25_common_fraction``)."""
        words = query_words(query)
        if not words:
            return []
        found = self._indexed_keyword_search(words, k, filters)
        if found is not None:
            return found
        match = fts_query(self._selective_words(words))
        if filters.is_empty():
            # rank inside FTS5 alone and join only the k winners (joining every match first costs ~40%)
            ranked = self.conn.execute(
                "SELECT rowid, -bm25(chunks_fts, 2.0, 1.0) FROM chunks_fts WHERE chunks_fts MATCH ? "
                "ORDER BY bm25(chunks_fts, 2.0, 1.0) LIMIT ?", (match, k)
            ).fetchall()
            if not ranked:
                return []
            marks = ",".join("?" * len(ranked))
            ids = dict(self.conn.execute(f"SELECT rowid, chunk_id FROM chunks WHERE rowid IN ({marks})",
                                         [r for r, _ in ranked]).fetchall())
            return [(ids[r], float(score)) for r, score in ranked if r in ids]
        where, params = self._filter_sql(filters)
        sql = (
            "SELECT c.chunk_id, -bm25(chunks_fts, 2.0, 1.0) AS score FROM chunks_fts "
            "JOIN chunks c ON c.rowid = chunks_fts.rowid "
            f"WHERE chunks_fts MATCH ? {where} ORDER BY bm25(chunks_fts, 2.0, 1.0) LIMIT ?"
        )
        return [(cid, float(s)) for cid, s in self.conn.execute(sql, (match, *params, k))]

    def _keyword_index(self) -> KeywordIndex | None:
        """The Tantivy index, brought up to date, for a store at or above ``keyword_index_threshold`` chunks; None
        below it, or when the index cannot be used (its writer held by another process, or damaged)."""
        generation = self._generation()
        if self._chunk_count is None or self._chunk_count[0] != generation:
            self._chunk_count = (generation, self.conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])
        if self._chunk_count[1] < max(self.keyword_index_threshold, 1):
            return None
        try:
            if self._keywords is None:
                self._keywords = KeywordIndex(Path(str(self.path) + ".tantivy"), self._meta("store_id") or "",
                                              persist=not self.read_only)
            self._keywords.sync(self.conn, generation)
        except (ValueError, OSError, RuntimeError):
            self._keywords = None  # FTS5 answers meanwhile
        return self._keywords

    def _indexed_keyword_search(self, words: list[str], k: int,
                                filters: Filters) -> list[tuple[str, float]] | None:
        index = self._keyword_index()
        if index is None:
            return None
        try:
            ranked = index.search(words, k, filters)
        except ValueError:
            return None  # a query Tantivy cannot parse: FTS5 answers it; the index stays
        if not ranked:
            return []
        marks = ",".join("?" * len(ranked))
        ids = dict(self.conn.execute(f"SELECT rowid, chunk_id FROM chunks WHERE rowid IN ({marks})",
                                     [r for r, _ in ranked]).fetchall())
        return [(ids[r], score) for r, score in ranked if r in ids]

    def vector_search(
        self, vector: np.ndarray, k: int, filters: Filters, exact: bool = False
    ) -> list[tuple[str, float]]:
        cache = self._vectors()
        if cache.size == 0:
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if not exact and cache.size >= self.ann_threshold:
            found = self._hnsw(cache).search(query, k, filters, cache)
            if found is not None:
                return found
        return cache.exact_search(query, k, filters)

    def refresh_indexes(self) -> None:
        """Bring the derived indexes (HNSW, Tantivy) up to date now, for a store past their thresholds: an ingest
        calls this last, so searches (read-only) find them on disk instead of building them in memory."""
        self._writable()
        cache = self._vectors()
        if cache.size >= self.ann_threshold:
            self._hnsw(cache)
        self._keyword_index()

    def _vectors(self) -> _VectorCache:
        generation = self._generation()
        if self._matrix_cache is None or self._matrix_cache.generation != generation:
            bound = self.embedding_model()
            self._matrix_cache = _VectorCache.load(self.conn, bound[0] if bound else "", generation)
        return self._matrix_cache

    def _hnsw(self, cache: _VectorCache) -> _HnswIndex:
        if self._ann is None:
            self._ann = _HnswIndex(
                Path(str(self.path) + ".hnsw"), self._meta("store_id") or "", self.hnsw_m,
                self.hnsw_ef_construction, self.hnsw_ef_search, persist=not self.read_only,
            )
        self._ann.sync(cache)
        return self._ann

    def get_chunks(self, chunk_ids: list[str]) -> dict[str, Chunk]:
        out: dict[str, Chunk] = {}
        for start in range(0, len(chunk_ids), 500):
            part = chunk_ids[start : start + 500]
            rows = self.conn.execute(
                "SELECT chunk_id, doc_id, ordinal, source, kind, title, path, text, language, metadata "
                f"FROM chunks WHERE chunk_id IN ({','.join('?' * len(part))})",
                part,
            )
            for r in rows:
                out[r[0]] = Chunk(*r[:9], metadata=json.loads(r[9] or "{}"))
        return out

    def stats(self) -> dict[str, Any]:
        def grouped(column: str) -> dict[str, int]:
            rows = self.conn.execute(f"SELECT COALESCE({column}, ''), COUNT(*) FROM chunks GROUP BY 1 ORDER BY 2 DESC")
            return dict(rows.fetchall())

        bound = self.embedding_model()
        log = self.conn.execute("SELECT source, path, at, counts FROM ingest_log ORDER BY id DESC LIMIT 10")
        return {
            "backend": "sqlite",
            "db": self.url,
            "documents": self.conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0],
            "chunks": self.conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0],
            "embeddings": self.conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0],
            "embedding_model": bound[0] if bound else None,
            "embedding_dim": bound[1] if bound else None,
            "by_source": grouped("source"),
            "by_kind": grouped("kind"),
            "by_language": grouped("language"),
            "recent_ingests": [
                {"source": s, "path": p, "at": at, "counts": json.loads(c)} for s, p, at, c in log.fetchall()
            ],
            "file_bytes": self.path.stat().st_size if self.path.exists() else 0,
        }


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (the store is never left half-written)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


class _VectorCache:
    """Every chunk vector of the bound model in one matrix, with its rowids and filter columns."""

    def __init__(self, generation: int, rowids: np.ndarray, chunk_ids: list[str], matrix: np.ndarray,
                 columns: dict[str, np.ndarray]) -> None:
        self.generation = generation
        self.rowids = rowids
        self.chunk_ids = chunk_ids
        self.matrix = matrix
        self.columns = columns
        self.position = {int(r): i for i, r in enumerate(rowids)}

    @property
    def size(self) -> int:
        return len(self.chunk_ids)

    @classmethod
    def load(cls, conn: sqlite3.Connection, model: str, generation: int) -> _VectorCache:
        rows = conn.execute(
            "SELECT c.rowid, c.chunk_id, c.source, COALESCE(c.language, ''), c.kind, e.vector FROM chunks c "
            "JOIN embeddings e ON e.model = ? AND e.hash = c.hash ORDER BY c.rowid",
            (model,),
        ).fetchall()
        if not rows:
            return cls(generation, np.zeros(0, dtype=np.int64), [], np.zeros((0, 1), np.float32), {})
        matrix = np.frombuffer(b"".join(r[5] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        columns = {name: np.array([r[i] for r in rows], dtype=object)
                   for i, name in ((2, "source"), (3, "language"), (4, "kind"))}
        return cls(generation, np.array([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows],
                   matrix, columns)

    def mask(self, filters: Filters) -> np.ndarray | None:
        if filters.is_empty():
            return None
        keep = np.ones(self.size, dtype=bool)
        for name, values in (("source", filters.source), ("language", filters.language), ("kind", filters.kind)):
            if values:
                keep &= np.isin(self.columns[name], values)
        return keep

    def exact_search(self, query: np.ndarray, k: int, filters: Filters) -> list[tuple[str, float]]:
        scores = self.matrix @ query
        keep = self.mask(filters)
        if keep is not None:
            scores = np.where(keep, scores, -np.inf)
        k = min(k, self.size)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.chunk_ids[i], float(scores[i])) for i in top if np.isfinite(scores[i])]


class _HnswIndex:
    """faiss HNSW over chunk rowids, persisted beside the database; rebuilt when too stale."""

    STALE_FRACTION = 0.2

    def __init__(self, path: Path, store_id: str, m: int, ef_construction: int, ef_search: int,
                 persist: bool = True) -> None:
        self.path = path
        self.persist = persist  # False for a read-only store: the index lives in memory only
        self.owner = path.with_suffix(path.suffix + ".owner")  # the store_id the index file was built for
        self.store_id = store_id
        self.m, self.ef_construction, self.ef_search = m, ef_construction, ef_search
        self.index: Any = None
        self.max_rowid = -1
        self.generation = -1

    def _new_index(self, dim: int) -> Any:
        import faiss

        hnsw = faiss.IndexHNSWFlat(dim, self.m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = self.ef_construction
        return faiss.IndexIDMap2(hnsw)

    def sync(self, cache: _VectorCache) -> None:
        """Bring the index up to date with the store's vectors (load, append, or rebuild)."""
        import faiss

        if self.generation == cache.generation and self.index is not None:
            return
        owned = self.owner.exists() and self.owner.read_text(encoding="utf-8").strip() == self.store_id
        if self.index is None and self.path.exists() and owned:
            try:
                self.index = faiss.read_index(str(self.path))
                self.max_rowid = int(faiss.vector_to_array(self.index.id_map).max(initial=-1))
            except RuntimeError:
                self.index = None  # a damaged cache file is rebuilt, never trusted
        if self.index is not None and (
            self.index.d != cache.matrix.shape[1]
            or self.index.ntotal - _count_at_most(cache.rowids, self.max_rowid)
            > self.STALE_FRACTION * max(self.index.ntotal, 1)
        ):
            self.index = None
        if self.index is None:
            self.index, self.max_rowid = self._new_index(cache.matrix.shape[1]), -1
        new = cache.rowids > self.max_rowid
        if new.any():
            faiss.omp_set_num_threads(os.cpu_count() or 1)  # building: all cores help
            self.index.add_with_ids(np.ascontiguousarray(cache.matrix[new]), cache.rowids[new])
            self.max_rowid = int(cache.rowids[new].max())
            if self.persist:
                tmp = self.path.with_suffix(self.path.suffix + ".tmp")
                faiss.write_index(self.index, str(tmp))
                tmp.replace(self.path)
                self.owner.write_text(self.store_id, encoding="utf-8")
        self.generation = cache.generation

    def search(
        self, query: np.ndarray, k: int, filters: Filters, cache: _VectorCache
    ) -> list[tuple[str, float]] | None:
        """Top-k by HNSW, or None when filters leave too few candidates (the caller then scans exactly)."""
        import faiss

        fetch = k if filters.is_empty() else max(k * 10, 100)
        fetch = min(fetch + (self.index.ntotal - cache.size), self.index.ntotal)
        faiss.omp_set_num_threads(1)  # one query: OpenMP's thread start-up costs more than it saves
        faiss.downcast_index(self.index.index).hnsw.efSearch = max(self.ef_search, fetch)
        scores, ids = self.index.search(query.reshape(1, -1), fetch)
        keep = cache.mask(filters)
        out = []
        for score, rowid in zip(scores[0], ids[0], strict=True):
            pos = cache.position.get(int(rowid))
            if pos is None or (keep is not None and not keep[pos]):
                continue
            out.append((cache.chunk_ids[pos], float(score)))
            if len(out) == k:
                return out
        return None


def _count_at_most(rowids: np.ndarray, limit: int) -> int:
    return int(np.count_nonzero(rowids <= limit))
