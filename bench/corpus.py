"""Corpora and queries shared by the benchmarks: real chunks with their real vectors, grown synthetically.

Embedding is slow on a CPU-only machine, so benchmarks never re-embed a corpus. They read the chunks
and the all-MiniLM-L6-v2 vectors the main job (`make run`) stored in data/kb.sqlite, straight from the
file through a read-only connection (safe while an ingest is still writing: SQLite WAL), and grow that
to larger sizes with ``synthetic_corpus``. Only the short query texts are embedded, once per run.

Not a command; imported by the scripts next to it, e.g.

    .venv/bin/python bench/query_latency.py
    .venv/bin/python bench/ingest_throughput.py
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from cet.knowledge.records import Chunk, Document, content_hash

Corpus = tuple[list[Document], list[list[Chunk]], np.ndarray]

DEFAULT_DB = "data/kb.sqlite"
MIN_REAL_CHUNKS = 2000
EXERCISM = Path("../shared/data/exercism")
NOISE_SCALE = 0.3  # per-component sigma is NOISE_SCALE / sqrt(dim): a noise vector of norm ~0.3

# Generic coding questions, added to the Exercism blurbs so queries are not all in one style.
GENERIC_QUERIES = (
    "how do I reverse a linked list in python",
    "binary search on a sorted array",
    "merge two dictionaries",
    "read a file line by line",
    "sort a list of tuples by the second element",
    "find the longest palindromic substring",
    "two sum problem with a hash map",
    "dynamic programming coin change",
    "depth first search on a graph",
    "breadth first search shortest path in a grid",
    "how to undo the last git commit",
    "git rebase interactive squash commits",
    "python list comprehension with condition",
    "difference between a list and a tuple",
    "how does the with statement work",
    "write a decorator that caches results",
    "parse command line arguments",
    "regular expression to match an email address",
    "convert a string to an integer without int()",
    "count the frequency of words in a text",
    "detect a cycle in a linked list",
    "validate balanced parentheses with a stack",
    "generate all permutations of a list",
    "check whether a number is prime",
    "format a date as ISO 8601",
    "asyncio run several coroutines concurrently",
    "iterate over two lists at the same time",
    "remove duplicates from a list while keeping order",
    "what is a generator and how does yield work",
    "sliding window maximum",
    "implement a least recently used cache",
    "matrix rotation by 90 degrees",
    "raise a custom exception with a message",
    "unit test that an exception is raised",
    "serialize a dataclass to json",
    "bit manipulation count set bits",
    "merge overlapping intervals",
    "topological sort of a dependency graph",
    "kth largest element using a heap",
    "string formatting with f-strings",
    "how to profile slow python code",
    "pathlib glob all files recursively",
    "json decode error expecting value",
    "threading lock to protect a shared counter",
    "subprocess run a command and capture output",
    "binary tree level order traversal",
    "longest common subsequence of two strings",
    "union find with path compression",
    "git cherry-pick a commit onto another branch",
    "resolve a merge conflict",
    "typing protocol versus abstract base class",
    "collections counter most common elements",
    "itertools groupby consecutive items",
    "read a csv file into a list of dicts",
    "how to write a context manager with contextlib",
    "minimum window substring",
    "trapping rain water",
    "word break problem",
    "validate a binary search tree",
    "convert roman numerals to integers",
)


# --- the real corpus ----------------------------------------------------------------------------
def _fail(message: str) -> NoReturn:
    print(f"{message}\nBuild the knowledge base first: `make run` (it writes {DEFAULT_DB}).", file=sys.stderr)
    raise SystemExit(2)


def _connect_read_only(db: str | Path) -> sqlite3.Connection:
    path = Path(db)
    if not path.is_file():
        _fail(f"knowledge base {path} not found.")
    return sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, timeout=30.0, isolation_level=None)


def _bound_model(conn: sqlite3.Connection) -> str:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='embedding_model'").fetchone()
    except sqlite3.DatabaseError as e:
        _fail(f"cannot read the knowledge base: {e}.")
    if not row:
        _fail("the knowledge base has no embedding model bound yet (nothing ingested).")
    return str(row[0])


def stored_model(db: str | Path = DEFAULT_DB) -> str:
    """The embedder name the real vectors were made with (e.g. ``st:all-MiniLM-L6-v2``)."""
    conn = _connect_read_only(db)
    try:
        return _bound_model(conn)
    finally:
        conn.close()


def _read_rows(conn: sqlite3.Connection, model: str) -> tuple[dict[str, tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Documents and (chunk, vector) rows, read in one transaction so they are consistent with each other."""
    conn.execute("BEGIN")
    try:
        docs = {r[0]: r for r in conn.execute(
            "SELECT doc_id, source, title, path, kind, language, metadata FROM documents")}
        chunks = conn.execute(
            "SELECT c.chunk_id, c.doc_id, c.ordinal, c.source, c.kind, c.title, c.path, c.text, c.language, "
            "c.metadata, e.vector FROM chunks c JOIN embeddings e ON e.model = ? AND e.hash = c.hash "
            "ORDER BY c.doc_id, c.ordinal",
            (model,),
        ).fetchall()
    finally:
        conn.execute("COMMIT")
    return docs, chunks


def _document(row: tuple[Any, ...], chunks: list[Chunk]) -> Document:
    doc_id, source, title, path, kind, language, metadata = row
    return Document(
        source=source, doc_id=doc_id, title=title or "", text="\n\n".join(c.text for c in chunks), kind=kind,
        path=path or "", format=chunks[0].metadata.get("format", "text"), language=language,
        metadata=json.loads(metadata or "{}"),
    )


def load_real_corpus(db: str | Path = DEFAULT_DB, limit: int | None = None) -> Corpus:
    """Real documents, their chunks grouped per document, and the chunks' stored vectors (one row each).

    A document's text is rebuilt from its chunks (the store keeps no document text). ``limit`` caps the
    number of chunks (whole documents are kept). Exits with status 2 when the store is missing or holds
    fewer than MIN_REAL_CHUNKS embedded chunks.
    """
    conn = _connect_read_only(db)
    try:
        doc_rows, rows = _read_rows(conn, _bound_model(conn))
    finally:
        conn.close()
    if len(rows) < MIN_REAL_CHUNKS:
        _fail(f"knowledge base {db} holds {len(rows)} embedded chunks; the benchmarks need at least "
              f"{MIN_REAL_CHUNKS}.")
    grouped: dict[str, list[tuple[Chunk, bytes]]] = defaultdict(list)
    for r in rows:
        grouped[r[1]].append((Chunk(*r[:9], metadata=json.loads(r[9] or "{}")), r[10]))
    documents, chunks, blobs = [], [], []
    for doc_id, items in grouped.items():
        if limit is not None and blobs and len(blobs) + len(items) > limit:
            break
        if doc_id not in doc_rows:
            continue
        doc_chunks = [c for c, _ in items]
        documents.append(_document(doc_rows[doc_id], doc_chunks))
        chunks.append(doc_chunks)
        blobs.extend(b for _, b in items)
    vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1).copy()
    return documents, chunks, vectors


def chunk_texts(db: str | Path = DEFAULT_DB) -> list[str]:
    """Every chunk text of a store, in rowid order (no vectors needed; exits with status 2 without a store)."""
    conn = _connect_read_only(db)
    try:
        return [row[0] for row in conn.execute("SELECT text FROM chunks ORDER BY rowid")]
    finally:
        conn.close()


def corpus_size(corpus: Corpus) -> int:
    return len(corpus[2])


def take(corpus: Corpus, n_chunks: int) -> Corpus:
    """The first documents of a corpus holding about ``n_chunks`` chunks (whole documents)."""
    documents, chunks, vectors = corpus
    total, n_docs = 0, 0
    for doc_chunks in chunks:
        if total + len(doc_chunks) > n_chunks and total:
            break
        total += len(doc_chunks)
        n_docs += 1
    return documents[:n_docs], chunks[:n_docs], vectors[:total]


# --- synthetic growth ---------------------------------------------------------------------------
_SENTENCE_END = re.compile(r"[.!?]\s+|\n+")


def sentences(text: str) -> list[str]:
    """The text cut after sentence ends and at line breaks (the cut whitespace is dropped)."""
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        end = m.start() + (0 if text[m.start()] == "\n" else 1)
        if text[start:end].strip():
            out.append(text[start:end])
        start = m.end()
    if text[start:].strip():
        out.append(text[start:])
    return out


class TextMixer:
    """Makes new chunk texts out of real ones, sentence by sentence (each real text is split once)."""

    def __init__(self, texts: list[str], rng: np.random.Generator) -> None:
        self.sentences = [sentences(t) or [t] for t in texts]
        self.rng = rng

    def mix(self, base: int) -> str:
        """Text ``base``'s sentences shuffled, about a third of them swapped for another random text's.

        The result has about the base text's length and vocabulary, so keyword statistics stay realistic.
        """
        own = self.sentences[base]
        foreign = self.sentences[int(self.rng.integers(len(self.sentences)))]
        keep = max(1, round(len(own) * 2 / 3))
        swap = min(len(foreign), max(1, len(own) - keep))
        picked = [own[i] for i in self.rng.permutation(len(own))[:keep]]
        picked += [foreign[i] for i in self.rng.permutation(len(foreign))[:swap]]
        return " ".join(picked[i] for i in self.rng.permutation(len(picked)))


def noisy_vectors(vectors: np.ndarray, rng: np.random.Generator, scale: float = NOISE_SCALE) -> np.ndarray:
    """normalize(v + sigma * gaussian) with sigma = scale / sqrt(dim): cosine to v is about 0.96 at 0.3."""
    dim = vectors.shape[1]
    noisy = vectors + rng.standard_normal(vectors.shape, dtype=np.float32) * np.float32(scale / np.sqrt(dim))
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


def _synthetic_chunk(chunk: Chunk, doc_id: str, text: str) -> Chunk:
    return Chunk(
        chunk_id=f"{doc_id}#{chunk.ordinal}", doc_id=doc_id, ordinal=chunk.ordinal, source=chunk.source,
        kind=chunk.kind, title=chunk.title, path=chunk.path, text=text, language=chunk.language,
        metadata={**chunk.metadata, "synthetic_from": chunk.chunk_id},
    )


def _synthetic_document(
    number: int, doc: Document, doc_chunks: list[Chunk], first: int, mixer: TextMixer, seen: set[str]
) -> tuple[Document, list[Chunk]]:
    """A copy of ``doc`` whose chunks (pool rows ``first``...) get mixed texts and new ids."""
    doc_id = f"synthetic:{number}:{doc.doc_id}"
    new_chunks = []
    for offset, chunk in enumerate(doc_chunks):
        for _ in range(4):  # a new text hash, so no two chunks share one vector in the embedding cache
            text = mixer.mix(first + offset)
            h = content_hash(f"{chunk.title}\n{text}" if chunk.title else text)
            if h not in seen:
                break
        seen.add(h)
        new_chunks.append(_synthetic_chunk(chunk, doc_id, text))
    text = "\n\n".join(c.text for c in new_chunks)
    return replace(doc, doc_id=doc_id, text=text, metadata={**doc.metadata, "synthetic": True}), new_chunks


def synthetic_corpus(real: Corpus, n_chunks: int, seed: int = 0) -> Corpus:
    """The real corpus grown to about ``n_chunks`` chunks with synthetic copies of real documents.

    Each synthetic document copies a random real document (same source, kind, language, title, number
    of chunks); each of its chunks takes a real chunk's sentences, shuffled, with a third of them swapped
    for sentences of another random real chunk; its vector is the real chunk's vector plus gaussian noise
    (sigma = 0.3 / sqrt(dim) per component, so cosine ~0.96 to the original), re-normalised. Ids are new
    and unique. When ``n_chunks`` is at most the real size, the first real documents are returned instead.
    """
    if n_chunks <= corpus_size(real):
        return take(real, n_chunks)
    documents, chunks, vectors = real
    offsets = np.cumsum([0] + [len(c) for c in chunks])
    pool = [c for doc_chunks in chunks for c in doc_chunks]
    rng = np.random.default_rng(seed)
    mixer = TextMixer([c.text for c in pool], rng)
    seen = {c.hash for c in pool}
    new_docs, new_chunks, sources = list(documents), list(chunks), []
    total, number = corpus_size(real), 0
    while total < n_chunks:
        i = int(rng.integers(len(documents)))
        doc, doc_chunks = _synthetic_document(number, documents[i], chunks[i], int(offsets[i]), mixer, seen)
        new_docs.append(doc)
        new_chunks.append(doc_chunks)
        sources.append(np.arange(offsets[i], offsets[i + 1]))
        total += len(doc_chunks)
        number += 1
    grown = noisy_vectors(vectors[np.concatenate(sources)], rng)
    return new_docs, new_chunks, np.concatenate([vectors, grown])


def batches(corpus: Corpus, docs_per_batch: int = 1000) -> list[Corpus]:
    """The corpus in consecutive slices of ``docs_per_batch`` documents, vectors sliced alongside."""
    documents, chunks, vectors = corpus
    out, row = [], 0
    for start in range(0, len(documents), docs_per_batch):
        part = chunks[start : start + docs_per_batch]
        n = sum(len(c) for c in part)
        out.append((documents[start : start + docs_per_batch], part, vectors[row : row + n]))
        row += n
    return out


# --- queries ------------------------------------------------------------------------------------
def query_texts(n: int, seed: int = 0, exercism: Path = EXERCISM) -> list[str]:
    """``n`` distinct query texts: Exercism exercise and approach blurbs plus generic coding questions."""
    from cet.evaluation.retrieval_eval import exercism_query_set
    from cet.knowledge.sources import read_source

    # every blurb, verbatim ones too: for timing, any real query text will do
    records = read_source("exercism", exercism) if exercism.is_dir() else iter(())
    blurbs = [q.query for q in exercism_query_set(records, 1800, include_verbatim=True)]
    texts = list(dict.fromkeys([*blurbs, *GENERIC_QUERIES]))
    random.Random(seed).shuffle(texts)
    return texts[:n]


def real_queries(n: int, seed: int = 0, exercism: Path = EXERCISM) -> tuple[list[str], np.ndarray]:
    """``n`` query texts and their vectors, embedded once with the int8 ONNX all-MiniLM-L6-v2.

    The ONNX twin matches the sentence-transformers vectors stored by `make run` to a cosine of ~0.999,
    and embeds short texts several times faster.
    """
    from cet.knowledge.embedding import OnnxEmbedder

    texts = query_texts(n, seed, exercism)
    return texts, OnnxEmbedder().embed(texts)
