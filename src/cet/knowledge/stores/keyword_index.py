"""The keyword half of a large SQLite store's search: a Tantivy index of its chunks, a derived cache beside the
database (``<db>.tantivy/``), kept in step with it like the HNSW index.

Why: SQLite FTS5 ranks every chunk a query's words match before it can return the top k (an OR query over common
words scores most of the store: ~100 ms at 100k chunks); Tantivy's top-k collector skips blocks of postings that
cannot enter the top k (block-max WAND), so a query costs what its best matches cost. Scoring is BM25 on the same
two fields with the same weights (title 2, text 1) and a stemming tokenizer like FTS5's porter one; ranks can still
differ where the two engines' BM25 parameters and stemmers differ (measured in bench/query_latency.py).

The index records the store id, the store's generation and the last chunk rowid it holds (``state.json``). On
each search it is brought up to date: new rows are added; a store that lost rows it holds (a re-ingested
document), or another store at the same path, rebuilds it. A read-only store builds it in memory and writes
nothing. If the index cannot be used (another process holds its writer, a damaged cache), the caller falls back
to FTS5 for that query.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cet.knowledge.records import Filters

TOKENIZER = "en_stem"  # lower case + English (Porter/Snowball) stemming, as FTS5's porter unicode61
TITLE_BOOST = 2.0  # as FTS5's bm25(chunks_fts, 2.0, 1.0)
BATCH = 5000


def _schema() -> Any:
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field("rowid", stored=True, indexed=True)
    builder.add_text_field("title", tokenizer_name=TOKENIZER, index_option="freq")
    builder.add_text_field("text", tokenizer_name=TOKENIZER, index_option="freq")
    for name in ("source", "language", "kind"):
        builder.add_text_field(name, tokenizer_name="raw", index_option="basic")
    return builder.build()


class KeywordIndex:
    """Tantivy over a store's chunks; `search` answers (rowid, score) best first, or None when it cannot."""

    def __init__(self, path: Path, store_id: str, persist: bool = True) -> None:
        self.path = path
        self.store_id = store_id
        self.persist = persist  # False: in memory only (a read-only store)
        self.index: Any = None
        self.schema: Any = None
        self.state: dict[str, Any] = {}

    # --- keeping in step ------------------------------------------------------------------------
    def _state_file(self) -> Path:
        return self.path / "state.json"

    def _load(self) -> None:
        import tantivy

        self.schema = _schema()
        state = {}
        if self.persist and self._state_file().is_file():
            try:
                state = json.loads(self._state_file().read_text(encoding="utf-8"))
                self.index = tantivy.Index(self.schema, path=str(self.path), reuse=True)
            except (ValueError, OSError):
                self.index, state = None, {}
        if self.index is None or state.get("store_id") != self.store_id:
            self._fresh()
        else:
            self.state = state

    def _fresh(self) -> None:
        import tantivy

        self.schema = _schema()
        if self.persist:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path.mkdir(parents=True)
            self.index = tantivy.Index(self.schema, path=str(self.path), reuse=False)
        else:
            self.index = tantivy.Index(self.schema)
        self.state = {"store_id": self.store_id, "generation": -1, "max_rowid": -1, "count": 0}

    def sync(self, conn: sqlite3.Connection, generation: int) -> None:
        """Bring the index up to date with the chunks table (append new rows; rebuild after a deletion)."""
        if self.index is None:
            self._load()
        if self.state.get("generation") == generation:
            return
        held = conn.execute("SELECT COUNT(*) FROM chunks WHERE rowid <= ?", (self.state["max_rowid"],)).fetchone()[0]
        if held != self.state["count"]:
            self._fresh()  # rows it holds were deleted (or replaced): start again
        self._add(conn, self.state["max_rowid"])
        self.state["generation"] = generation
        if self.persist:
            tmp = self._state_file().with_suffix(".tmp")
            tmp.write_text(json.dumps(self.state), encoding="utf-8")
            tmp.replace(self._state_file())

    def _add(self, conn: sqlite3.Connection, after: int) -> None:
        import tantivy

        writer = self.index.writer(heap_size=64_000_000, num_threads=1)
        try:
            rows = conn.execute("SELECT rowid, title, text, source, COALESCE(language, ''), kind FROM chunks "
                                "WHERE rowid > ? ORDER BY rowid", (after,))
            while batch := rows.fetchmany(BATCH):
                for rowid, title, text, source, language, kind in batch:
                    doc = tantivy.Document(title=title or "", text=text or "", source=source, language=language,
                                           kind=kind)
                    doc.add_unsigned("rowid", rowid)
                    writer.add_document(doc)
                self.state["max_rowid"] = batch[-1][0]
                self.state["count"] += len(batch)
            writer.commit()
            writer.wait_merging_threads()
        except BaseException:
            writer.rollback()
            raise
        self.index.reload()

    # --- searching ------------------------------------------------------------------------------
    def search(self, words: Sequence[str], k: int, filters: Filters) -> list[tuple[int, float]]:
        """The top k chunk rowids for an OR query of `words` (each a plain \\w+ word), within `filters`."""
        import tantivy

        if not words or k <= 0:
            return []
        query = self.index.parse_query(" ".join(f'"{w}"' for w in words), ["title", "text"],
                                       field_boosts={"title": TITLE_BOOST})
        musts = [(tantivy.Occur.Must, tantivy.Query.const_score_query(  # a filter: adds nothing to the score
                      tantivy.Query.term_set_query(self.schema, field, list(values)), 0.0))
                 for field, values in (("source", filters.source), ("language", filters.language),
                                       ("kind", filters.kind)) if values]
        if musts:
            query = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), *musts])
        searcher = self.index.searcher()
        hits = searcher.search(query, limit=k, count=False).hits
        return [(int(searcher.doc(address)["rowid"][0]), float(score)) for score, address in hits]
