"""A repository as knowledge for its own tasks: the definitions of its library code, searchable by BM25.

A repository task asks for one function of a real repository; what the generator cannot know without help is the
rest of that repository (its helpers, its classes, its conventions). `RepositoryIndex` splits the library files into
definitions (`code_chunking`) and indexes them in memory with Tantivy, with the knowledge base's own analyzer and
BM25 weights (stores/keyword_index.py). `without` gives the view a task may search: every definition that overlaps
the task's own function is left out (a small class is one chunk, so the class holding a method goes too), and the
test files are never indexed (the repository's tests decide the task; showing their neighbours would show the
verdict).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cet.knowledge.code_chunking import split_definitions
from cet.knowledge.function_map import read_python_files
from cet.knowledge.records import Hit
from cet.knowledge.stores.keyword_index import ANALYZER, add_text_fields, analyzer, text_query
from cet.knowledge.test_mapping import is_test_file

SOURCE = "repository"


@dataclass(frozen=True)
class _Definition:
    path: str
    qualname: str
    kind: str
    start_line: int
    end_line: int
    text: str


class RepositoryIndex:
    def __init__(self, root: Path, name: str) -> None:
        import tantivy

        self.root, self.name = root, name
        files, _ = read_python_files(root)
        self.definitions = [_Definition(path, d.qualname, d.kind, d.start_line, d.end_line, d.text)
                            for path, text in files.items() if not is_test_file(path)
                            for d in split_definitions(text, "python") if d.text.strip()]
        builder = tantivy.SchemaBuilder()
        builder.add_unsigned_field("number", stored=True, indexed=True)
        add_text_fields(builder)
        self.index = tantivy.Index(builder.build())  # in memory
        self.index.register_tokenizer(ANALYZER, analyzer())
        writer = self.index.writer(heap_size=15_000_000, num_threads=1)
        for number, definition in enumerate(self.definitions):
            document = tantivy.Document(title=f"{definition.path} {definition.qualname}", text=definition.text)
            document.add_unsigned("number", number)
            writer.add_document(document)
        writer.commit()
        writer.wait_merging_threads()
        self.index.reload()

    def search(self, text: str, k: int = 5, leave_out: tuple[str, int, int] | None = None) -> list[Hit]:
        """The k best definitions for `text`; `leave_out` (path, first line, last line): none that overlaps it."""
        query = text_query(self.index, text.split())
        if query is None or k <= 0:
            return []
        searcher = self.index.searcher()
        out: list[Hit] = []
        for score, address in searcher.search(query, limit=k + 8).hits:
            definition = self.definitions[int(searcher.doc(address)["number"][0])]
            if leave_out and definition.path == leave_out[0] and definition.start_line <= leave_out[2] \
                    and definition.end_line >= leave_out[1]:
                continue
            out.append(Hit(id=f"{self.name}:{definition.path}:{definition.start_line}", source=SOURCE,
                           title=f"{definition.qualname} ({definition.path})", path=definition.path,
                           score=float(score), text=definition.text,
                           metadata={"repository": self.name, "start_line": definition.start_line,
                                     "end_line": definition.end_line},
                           kind="code", language="python", doc_id=f"{self.name}:{definition.path}"))
            if len(out) == k:
                break
        return out

    def without(self, path: str, start_line: int, end_line: int) -> _LeftOut:
        return _LeftOut(self, (path, start_line, end_line))


@dataclass
class _LeftOut:
    """A retriever (`search(text, k)`) over a repository that never returns the definitions overlapping one span."""

    index: RepositoryIndex
    span: tuple[str, int, int]

    def search(self, text: str, k: int = 5, **_: Any) -> list[Hit]:
        return self.index.search(text, k, leave_out=self.span)


@lru_cache(maxsize=16)
def repository_index(root: str, name: str) -> RepositoryIndex:
    """One index per snapshot per process."""
    return RepositoryIndex(Path(root), name)
