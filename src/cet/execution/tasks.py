"""CodingTask: one executable coding problem (statement, tests, optional reference), and the tasks-file format.

A tasks file is JSON Lines, one `CodingTask` per line. Splits are assigned from the task id alone
(`assign_split`), so they are stable across imports and machines, and recorded in each task's metadata.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cet.errors import CetError

LANGUAGES = ("python", "javascript")
SPLITS = ("train", "dev", "test", "eval")  # "eval": an evaluation-only set (HumanEval), never trained on

# fraction of train / dev / test by task-id hash; evaluation-only sets are all "eval"
SPLIT_FRACTIONS = {"train": 0.8, "dev": 0.1, "test": 0.1}


class TaskMetadata(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str  # exercism | humaneval | leetcode | <user>
    split: Literal["train", "dev", "test", "eval"]
    evaluation_only: bool = False  # true for evaluation sets: training code must refuse these
    difficulty: str | None = None
    licence: str | None = None
    url: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


REPOSITORY_TESTS = "cet_tests.txt"  # a repository task's verdict: the pytest node ids to run, one per line
REPOSITORY_ARCHIVE = "cet_repository.zip"  # the repository with the candidate spliced in, unpacked by the runner


class RepositoryRef(BaseModel):
    """Where a repository task's function lives: an unpacked source distribution under `exec.repos_dir`, the
    function's definition (decorators included) in it, and the tests that exercise it (the function map's)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: str
    archive_sha256: str  # the source distribution the snapshot was unpacked from
    snapshot: str = Field(pattern=r"^[A-Za-z0-9_.+-]+$")  # its folder under exec.repos_dir
    path: str  # the file holding the function, relative to the snapshot
    qualname: str  # "pkg.module:Class.method"
    start_line: int = Field(ge=1)  # the definition's first line (its first decorator), 1-based
    end_line: int = Field(ge=1)  # its last line
    test_ids: list[str] = Field(min_length=1)  # pytest node ids of the tests that exercise it


class CodingTask(BaseModel):
    """A problem with executable tests.

    `tests` is the source of one test file: pytest for Python (it imports the solution from `module`),
    `node:test` for JavaScript (it requires `./<module>.js`). `test_names` lists the tests it defines,
    so a run that reports a different number of tests (a solution that tampered with the runner, a
    collection error) cannot pass.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    language: Literal["python", "javascript"]
    statement: str
    entry_point: str | None = None  # the function (or Class.method) the tests call
    signature: str | None = None  # e.g. "def leap_year(year: int) -> bool"
    module: str = Field("solution", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")  # the solution file's name, no suffix
    tests: str
    test_names: list[str] = Field(default_factory=list)
    reference_solution: str | None = None
    metadata: TaskMetadata
    # a repository task: the solution is the function's definition, spliced into the repository, and the verdict
    # is the repository's own tests that exercise it (`tests` then holds their source, for reading only)
    repository: RepositoryRef | None = None

    @property
    def solution_filename(self) -> str:
        return f"{self.module}.py" if self.language == "python" else f"{self.module}.js"

    @property
    def test_filename(self) -> str:
        if self.repository is not None:
            return REPOSITORY_TESTS
        return f"test_{self.module}.py" if self.language == "python" else f"{self.module}.test.js"


def assign_split(task_id: str, evaluation_only: bool = False) -> str:
    """The split of a task, from a hash of its id: stable whatever else is imported beside it."""
    if evaluation_only:
        return "eval"
    position = int(hashlib.sha256(task_id.encode("utf-8")).hexdigest()[:8], 16) / 0x1_0000_0000
    cumulative = 0.0
    for split, fraction in SPLIT_FRACTIONS.items():
        cumulative += fraction
        if position < cumulative:
            return split
    return "test"


def parse_task(data: str | dict[str, Any], where: str = "task") -> CodingTask:
    """One task from a JSON line or dict; a clear `CetError` when it is not a valid task."""
    try:
        if isinstance(data, str):
            return CodingTask.model_validate_json(data)
        return CodingTask.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise CetError(f"{where}: not a valid coding task: {loc}: {first['msg']}") from None


def load_task(path: str | Path) -> CodingTask:
    """A task from a file holding one task (a line of a tasks file, or pretty-printed JSON)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CetError(f"task file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CetError(f"cannot read task file {path}: {e}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        try:
            json.loads(lines[0])
        except json.JSONDecodeError:
            lines = [text]  # pretty-printed JSON over several lines
        else:
            raise CetError(f"{path} holds {len(lines)} tasks; pass one (a single line), or use `cet exec batch`")
    if not lines:
        raise CetError(f"task file is empty: {path}")
    return parse_task(lines[0], where=str(path))


def iter_tasks(path: str | Path, skipped: list[str] | None = None) -> Iterator[CodingTask]:
    """Tasks from a JSONL file. Bad lines are skipped and, when `skipped` is given, recorded there."""
    path = Path(path)
    if not path.is_file():
        raise CetError(f"tasks file not found: {path}")
    with path.open(encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield parse_task(line, where=f"{path}:{number}")
            except CetError as e:
                if skipped is None:
                    raise
                skipped.append(str(e))


def write_tasks(tasks: Iterable[CodingTask], path: str | Path) -> int:
    """Write tasks as JSONL (atomically: a temporary file renamed into place). Returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as f:
        for task in tasks:
            f.write(task.model_dump_json(exclude_none=False) + "\n")
            count += 1
    tmp.replace(path)
    return count
