"""Task importers: turn published problem sets into `CodingTask`s with executable pytest files.

Each importer is a function `(path) -> Iterator[CodingTask | SkippedTask]`. It checks `path` at once
(a `CetError` before iteration starts) and then streams: one task per usable problem, one `SkippedTask`
with a fixed `reason` (and a free-text `detail`) per problem the mapping cannot express.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cet.errors import CetError
from cet.execution.tasks import CodingTask


@dataclass
class SkippedTask:
    """A problem an importer could not turn into a task: counted by `reason`, never silently dropped."""

    source: str
    id: str  # the task id it would have had, or the file name
    reason: str  # one of a small fixed set per importer, so reasons can be counted
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Importer = Callable[[str | Path], Iterator[CodingTask | SkippedTask]]

# the importers import SkippedTask from this package, so they are imported after it is defined
from cet.execution.importers.exercism import import_exercism  # noqa: E402
from cet.execution.importers.humaneval import import_humaneval  # noqa: E402
from cet.execution.importers.leetcode import import_leetcode  # noqa: E402

IMPORTERS: dict[str, Importer] = {
    "exercism": import_exercism,
    "humaneval": import_humaneval,
    "leetcode": import_leetcode,
}


def import_tasks(format: str, path: str | Path) -> tuple[Iterator[CodingTask], list[SkippedTask]]:
    """Stream the tasks of `path` in `format`; the returned list fills with skips as the iterator runs.

    Raises `CetError` at once for an unknown format or a path the importer cannot use."""
    if format not in IMPORTERS:
        raise CetError(f"unknown task format {format!r}: choose {', '.join(IMPORTERS)}")
    records = IMPORTERS[format](path)
    skipped: list[SkippedTask] = []

    def tasks() -> Iterator[CodingTask]:
        for record in records:
            if isinstance(record, SkippedTask):
                skipped.append(record)
            else:
                yield record

    return tasks(), skipped


__all__ = ["IMPORTERS", "Importer", "SkippedTask", "import_tasks", "import_exercism", "import_humaneval",
           "import_leetcode"]
