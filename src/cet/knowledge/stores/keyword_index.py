"""The keyword half of a large SQLite store's search: a Tantivy index of its chunks, a derived cache beside the
database (``<db>.tantivy/``), kept in step with it like the HNSW index.

Why: SQLite FTS5 ranks every chunk a query's words match before it can return the top k (an OR query over common
words scores most of the store: ~100 ms at 100k chunks); Tantivy's top-k collector skips blocks of postings that
cannot enter the top k (block-max WAND), so a query costs what its best matches cost. Scoring is BM25 on the same
two fields with the same weights (title 2, text 1); the analyzer splits on what is not a letter or digit, lower-
cases, folds accents and stems English, close to FTS5's ``porter unicode61`` though not identical (the agreement
of the two rankings is measured in bench/query_latency.py).

The index records the store id, the store's generation, the last chunk rowid it holds and how many rows
(``state.json``, written after each commit). Bringing it up to date happens under Tantivy's writer lock, with the
state read again from disk there: new rows are appended; when the index does not hold exactly what the state says
(a commit whose state write was lost), or the store lost rows the index holds (a re-ingested document), or the
state names another store, every document is deleted and the index refilled, still under the lock. A read-only
store reads an up-to-date index from disk, else builds one in memory, and writes nothing. When the index cannot be
brought up to date (another process holds its writer, a damaged folder), the caller answers from FTS5.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cet.knowledge.records import Filters

ANALYZER = "cet_en"
TITLE_BOOST = 2.0  # as FTS5's bm25(chunks_fts, 2.0, 1.0)
BATCH = 5000
_TERM = re.compile(r"[^\W_]+")  # what the analyzer keeps of a word: "snake_case" -> "snake", "case"


def _schema() -> Any:
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field("rowid", stored=True, indexed=True)
    add_text_fields(builder)
    for name in ("source", "language", "kind"):
        builder.add_text_field(name, tokenizer_name="raw", index_option="basic")
    return builder.build()


def add_text_fields(builder: Any) -> None:
    """The two searched fields, analysed alike: title (boosted) and text."""
    builder.add_text_field("title", tokenizer_name=ANALYZER, index_option="freq")
    builder.add_text_field("text", tokenizer_name=ANALYZER, index_option="freq")


def text_query(index: Any, words: Sequence[str]) -> Any | None:
    """BM25 over title and text for the words (each a phrase of one term), title boosted; None for no term."""
    terms = query_terms(words)
    if not terms:
        return None
    return index.parse_query(" ".join(f'"{t}"' for t in terms), ["title", "text"], field_boosts={"title": TITLE_BOOST})


def analyzer() -> Any:
    import tantivy

    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple()).filter(tantivy.Filter.remove_long(40))
            .filter(tantivy.Filter.lowercase()).filter(tantivy.Filter.ascii_fold())
            .filter(tantivy.Filter.stemmer("english")).build())


def query_terms(words: Sequence[str]) -> list[str]:
    """The words as the analyzer would split them (each a run of letters and digits), first occurrence kept."""
    return list(dict.fromkeys(term for word in words for term in _TERM.findall(word)))


class KeywordIndex:
    """Tantivy over a store's chunks; `search` answers (rowid, score) best first."""

    def __init__(self, path: Path, store_id: str, persist: bool = True) -> None:
        self.path = path
        self.store_id = store_id
        self.persist = persist  # False: never written (a read-only store): read from disk or built in memory
        self.index: Any = None
        self.schema = _schema()
        self.state: dict[str, Any] = {}
        self.generation = -2  # the store generation this object last synced to

    # --- keeping in step ------------------------------------------------------------------------
    def _state_file(self) -> Path:
        return self.path / "state.json"

    def _disk_state(self) -> dict[str, Any]:
        try:
            state = json.loads(self._state_file().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def _open(self, path: Path | None) -> Any:
        import tantivy

        index = tantivy.Index(self.schema, path=str(path), reuse=True) if path is not None else \
            tantivy.Index(self.schema)
        index.register_tokenizer(ANALYZER, analyzer())
        return index

    def sync(self, conn: sqlite3.Connection, generation: int) -> None:
        """Bring the index up to date with the chunks table (see the module docstring)."""
        if self.index is not None and self.generation == generation:
            return
        if not self.persist:
            self._sync_read_only(conn, generation)
            return
        if self.index is None:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
                self.index = self._open(self.path)
            except ValueError:  # a damaged folder: start again (no writer can hold a lock in it)
                shutil.rmtree(self.path, ignore_errors=True)
                self.path.mkdir(parents=True)
                self.index = self._open(self.path)
        writer = self.index.writer(heap_size=64_000_000, num_threads=1)  # the lock; ValueError when held
        try:
            self.state = self._disk_state()  # another process may have moved it on
            self.index.reload()
            if not self._current(generation):
                if not self._consistent(conn):
                    writer.delete_all_documents()
                    self.state = {"store_id": self.store_id, "generation": -1, "max_rowid": -1, "count": 0}
                self._add(writer, conn)
                writer.commit()
                writer.wait_merging_threads()
                self.state["generation"] = generation
                tmp = self.path / f"state.{id(self)}.tmp"
                tmp.write_text(json.dumps(self.state), encoding="utf-8")
                tmp.replace(self._state_file())
        except BaseException:
            writer.rollback()
            raise
        finally:
            del writer  # releases the lock
        self.index.reload()
        self.generation = generation

    def _current(self, generation: int) -> bool:
        return self.state.get("store_id") == self.store_id and self.state.get("generation") == generation and \
            self.index.searcher().num_docs == self.state.get("count")

    def _consistent(self, conn: sqlite3.Connection) -> bool:
        """Whether the index holds exactly the rows its state says, all still in the store: then appending the
        newer rows brings it up to date."""
        state = self.state
        if state.get("store_id") != self.store_id or not isinstance(state.get("count"), int):
            return False
        if self.index.searcher().num_docs != state["count"]:
            return False
        held = conn.execute("SELECT COUNT(*) FROM chunks WHERE rowid <= ?", (state["max_rowid"],)).fetchone()[0]
        return held == state["count"]

    def _sync_read_only(self, conn: sqlite3.Connection, generation: int) -> None:
        state = self._disk_state()
        if state.get("store_id") == self.store_id and state.get("generation") == generation:
            try:
                index = self._open(self.path)
                if index.searcher().num_docs == state.get("count"):
                    self.index, self.state, self.generation = index, state, generation
                    return
            except ValueError:
                pass
        self.index = self._open(None)  # in memory
        self.state = {"store_id": self.store_id, "generation": -1, "max_rowid": -1, "count": 0}
        writer = self.index.writer(heap_size=64_000_000, num_threads=1)
        self._add(writer, conn)
        writer.commit()
        del writer
        self.index.reload()
        self.state["generation"] = self.generation = generation

    def _add(self, writer: Any, conn: sqlite3.Connection) -> None:
        import tantivy

        rows = conn.execute("SELECT rowid, title, text, source, COALESCE(language, ''), kind FROM chunks "
                            "WHERE rowid > ? ORDER BY rowid", (self.state["max_rowid"],))
        while batch := rows.fetchmany(BATCH):
            for rowid, title, text, source, language, kind in batch:
                doc = tantivy.Document(title=title or "", text=text or "", source=source, language=language,
                                       kind=kind)
                doc.add_unsigned("rowid", rowid)
                writer.add_document(doc)
            self.state["max_rowid"] = batch[-1][0]
            self.state["count"] += len(batch)

    # --- searching ------------------------------------------------------------------------------
    def search(self, words: Sequence[str], k: int, filters: Filters) -> list[tuple[int, float]]:
        """The top k chunk rowids for an OR query of `words`, within `filters`."""
        import tantivy

        query = text_query(self.index, words)
        if query is None or k <= 0:
            return []
        musts = [(tantivy.Occur.Must, tantivy.Query.const_score_query(  # a filter: adds nothing to the score
                      tantivy.Query.term_set_query(self.schema, field, list(values)), 0.0))
                 for field, values in (("source", filters.source), ("language", filters.language),
                                       ("kind", filters.kind)) if values]
        if musts:
            query = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), *musts])
        searcher = self.index.searcher()
        hits = searcher.search(query, limit=k, count=False).hits
        return [(int(searcher.doc(address)["rowid"][0]), float(score)) for score, address in hits]
