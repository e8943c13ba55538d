"""The real task sets (Exercism from ../shared/data, HumanEval and LeetCode from their packages) as tasks files:
data/tasks/ when `cet run` wrote them, else imported once per test process into a temporary directory."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pytest

from cet.config import load_config
from cet.execution.task_check import import_default_tasks

REPO_TASKS = Path(__file__).resolve().parents[1] / "data" / "tasks"
SETS = ("exercism", "humaneval", "leetcode")


@functools.lru_cache(maxsize=1)
def real_tasks_dir() -> Path:
    if all((REPO_TASKS / f"{name}.jsonl").is_file() for name in SETS):
        return REPO_TASKS
    where = Path(tempfile.mkdtemp(prefix="cet-real-tasks-"))
    import_default_tasks(load_config(exec={"tasks_dir": str(where)}))
    return where


def real_tasks_file(name: str) -> Path:
    """The tasks file of one set; skipped only when its source data is not on this machine."""
    path = real_tasks_dir() / f"{name}.jsonl"
    if not path.is_file():
        pytest.skip(f"the {name} task set could not be imported here (its data is missing)")
    return path
