"""Records that cross module boundaries in the knowledge base."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

# Kinds of content a chunk can hold; filters use these names.
KINDS = (
    "statement",  # a problem statement (exercise instructions, challenge description, LeetCode problem)
    "approach",  # a worked approach or solution write-up
    "mentoring",  # mentor notes on an exercise
    "tests",  # test cases or a test file
    "solution",  # a reference solution
    "qa",  # a question paired with its answer
    "code",  # a source code definition
    "commit",  # a commit message
    "doc",  # documentation section
)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Document:
    """One unit a source reader yields: a file, a post pair, a problem. Chunking splits it further."""

    source: str
    doc_id: str
    title: str
    text: str
    kind: str
    path: str
    format: str = "text"  # markdown | rst | html | python | <tree-sitter language> | text
    language: str | None = None  # programming language the content is about
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        meta = json.dumps(self.metadata, sort_keys=True, default=str)
        return content_hash("\x1f".join([self.title, self.kind, self.format, self.language or "", meta, self.text]))


@dataclass
class Chunk:
    """A retrievable piece of a Document, with the document's metadata plus its own."""

    chunk_id: str
    doc_id: str
    ordinal: int
    source: str
    kind: str
    title: str
    path: str
    text: str
    language: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def embedding_text(self) -> str:
        """What gets embedded (and keyword-indexed): the title gives a short chunk its context."""
        return f"{self.title}\n{self.text}" if self.title else self.text

    @property
    def hash(self) -> str:
        """Hash of the embedded text: the embedding cache key."""
        return content_hash(self.embedding_text)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SkippedRecord:
    """A record a reader could not use: counted with its reason, never silently dropped."""

    source: str
    path: str
    reason: str


@dataclass
class Hit:
    """One search result."""

    id: str
    source: str
    title: str
    path: str
    score: float
    text: str
    metadata: dict[str, Any]
    kind: str = ""
    language: str | None = None
    doc_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Filters:
    """Restrict a search to some sources, languages or kinds (None: no restriction)."""

    source: list[str] | None = None
    language: list[str] | None = None
    kind: list[str] | None = None

    def is_empty(self) -> bool:
        return not (self.source or self.language or self.kind)

    def matches(self, chunk_source: str, chunk_language: str | None, chunk_kind: str) -> bool:
        if self.source and chunk_source not in self.source:
            return False
        if self.language and (chunk_language or "") not in self.language:
            return False
        return not (self.kind and chunk_kind not in self.kind)
