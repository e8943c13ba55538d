"""Batch execution: many (task, solution) pairs through an Executor, appended to a results file as they
finish, so an interrupted batch resumes where it stopped (tasks already in the results file are skipped).

Solutions come from a JSONL file of {"task_id", "solution"} objects, from a folder of files named by task
id ("/" becomes "__", plus .py or .js), or are each task's own reference solution (`reference=True`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cet.errors import CetError
from cet.execution.executor import Executor
from cet.execution.result import ExecutionResult
from cet.execution.tasks import CodingTask, iter_tasks

SUFFIXES = {"python": ".py", "javascript": ".js"}


def solution_filename(task: CodingTask) -> str:
    return task.id.replace("/", "__") + SUFFIXES[task.language]


@dataclass
class BatchSummary:
    tasks: int = 0  # valid tasks in the tasks file
    ran: int = 0  # runs made now
    resumed: int = 0  # tasks already in the results file, not run again
    passed: int = 0  # of the runs made now
    bad_task_lines: int = 0
    missing_solutions: int = 0
    exit_reasons: dict[str, int] = field(default_factory=dict)
    mean_reward: float | None = None
    isolation: str = ""
    bad_task_examples: list[str] = field(default_factory=list)

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.ran if self.ran else None

    def to_dict(self) -> dict:
        return {**asdict(self), "pass_rate": self.pass_rate}


class SolutionSource:
    """Where each task's solution comes from."""

    def __init__(self, path: str | Path | None = None, reference: bool = False) -> None:
        if (path is None) == (not reference):
            raise CetError("give exactly one of --solutions PATH or --reference")
        self.reference = reference
        self.by_id: dict[str, str] = {}
        self.folder: Path | None = None
        if path is not None:
            path = Path(path)
            if path.is_dir():
                self.folder = path
            elif path.is_file():
                self.by_id = _read_solutions_jsonl(path)
            else:
                raise CetError(f"solutions not found: {path}")

    def get(self, task: CodingTask) -> str | None:
        if self.reference:
            return task.reference_solution
        if self.folder is not None:
            file = self.folder / solution_filename(task)
            return file.read_text(encoding="utf-8", errors="replace") if file.is_file() else None
        return self.by_id.get(task.id)


def _read_solutions_jsonl(path: Path) -> dict[str, str]:
    solutions: dict[str, str] = {}
    with path.open(encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                solutions[str(record["task_id"])] = str(record["solution"])
            except (ValueError, KeyError, TypeError):
                raise CetError(f"{path}:{number}: not a solution record (want {{\"task_id\": ..., "
                               f"\"solution\": ...}})") from None
    return solutions


def done_task_ids(results_path: Path) -> set[str]:
    """Task ids with a complete result line (a line cut off by an interruption does not count)."""
    done: set[str] = set()
    if not results_path.is_file():
        return done
    with results_path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                done.add(json.loads(line)["task_id"])
            except (ValueError, KeyError, TypeError):
                continue
    return done


def run_batch(tasks_path: str | Path, solutions: SolutionSource, results_path: str | Path, executor: Executor,
              on_result: Callable[[ExecutionResult], None] | None = None) -> BatchSummary:
    results_path = Path(results_path)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    done = done_task_ids(results_path)
    summary = BatchSummary(isolation=executor.backend.isolation)
    bad: list[str] = []
    _drop_partial_last_line(results_path)

    def pairs() -> Iterator[tuple[CodingTask, str]]:
        for task in iter_tasks(tasks_path, skipped=bad):
            summary.tasks += 1
            if task.id in done:
                summary.resumed += 1
                continue
            solution = solutions.get(task)
            if solution is None:
                summary.missing_solutions += 1
                continue
            yield task, solution

    reasons: Counter[str] = Counter()
    rewards: list[float] = []
    with results_path.open("a", encoding="utf-8") as out:
        for result in executor.run_many(pairs()):
            out.write(result.model_dump_json() + "\n")
            out.flush()
            summary.ran += 1
            summary.passed += int(result.passed)
            reasons[result.exit_reason] += 1
            if result.reward is not None:
                rewards.append(result.reward)
            if on_result:
                on_result(result)
    summary.bad_task_lines = len(bad)
    summary.bad_task_examples = bad[:5]
    summary.exit_reasons = dict(reasons.most_common())
    summary.mean_reward = round(sum(rewards) / len(rewards), 4) if rewards else None
    return summary


def _drop_partial_last_line(path: Path) -> None:
    """A batch killed mid-write leaves a last line without its newline: cut it so appends stay valid JSONL."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])
