"""Source readers: one module per real published format. Each reader streams Documents and SkippedRecords."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cet.knowledge.records import Document, SkippedRecord

Reader = Callable[..., Iterator[Document | SkippedRecord]]

SOURCE_NAMES = ("exercism", "freecodecamp", "stackexchange", "git", "docs", "leetcode")


def get_reader(name: str) -> Reader:
    """The reader function for a source name (imported lazily so one source's deps never slow another)."""
    if name == "exercism":
        from cet.knowledge.sources.exercism import read_exercism

        return read_exercism
    if name == "freecodecamp":
        from cet.knowledge.sources.freecodecamp import read_freecodecamp

        return read_freecodecamp
    if name == "stackexchange":
        from cet.knowledge.sources.stackexchange import read_stackexchange

        return read_stackexchange
    if name == "git":
        from cet.knowledge.sources.git import read_git

        return read_git
    if name == "docs":
        from cet.knowledge.sources.docs import read_docs

        return read_docs
    if name == "leetcode":
        from cet.knowledge.sources.leetcode import read_leetcode

        return read_leetcode
    raise ValueError(f"unknown source {name!r}; choose one of: {', '.join(SOURCE_NAMES)}")


def read_source(name: str, path: Path, **options: Any) -> Iterator[Document | SkippedRecord]:
    return get_reader(name)(path, **options)
