"""How each language's tests run in the sandbox: the files, the command, and reading the runner's report.

Python runs the task's pytest file through runtime/pytest_runner.py; JavaScript runs `node --test` with
runtime/node_reporter.mjs. Both runners write one JSON object {"cases": [...], "collect_errors": [...],
"rusage": {...}} to the result descriptor, so everything after the run is shared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Protocol

from cet.config import ExecConfig
from cet.execution.result import TestCaseResult
from cet.execution.sandbox import SandboxPaths
from cet.execution.tasks import CodingTask


@dataclass
class RunnerReport:
    """What a runner reported, parsed; `ok` is false when it reported nothing usable."""

    ok: bool
    cases: list[TestCaseResult] = field(default_factory=list)
    collect_errors: list[str] = field(default_factory=list)
    cpu_s: float | None = None
    peak_memory_mb: float | None = None
    problem: str | None = None


class LanguageRunner(Protocol):
    language: str

    def files(self, task: CodingTask, solution: str) -> dict[str, str]: ...

    def command(self, task: CodingTask, paths: SandboxPaths, cfg: ExecConfig) -> list[str]: ...

    def memory_mb(self, cfg: ExecConfig) -> int: ...


class PythonRunner:
    language = "python"

    def files(self, task: CodingTask, solution: str) -> dict[str, str]:
        return {task.solution_filename: solution, task.test_filename: task.tests}

    def command(self, task: CodingTask, paths: SandboxPaths, cfg: ExecConfig) -> list[str]:
        # -I -S: no environment variables, no user or site packages: the stdlib and the runner's pytest only
        return [paths.python, "-I", "-S", "-B", f"{paths.runtime}/pytest_runner.py", paths.work, task.test_filename,
                *paths.site.split(":")]

    def memory_mb(self, cfg: ExecConfig) -> int:
        return cfg.limits.memory_mb


RUNNERS: dict[str, LanguageRunner] = {"python": PythonRunner()}


def runner_for(language: str) -> LanguageRunner:
    return RUNNERS[language]


def parse_report(raw: bytes) -> RunnerReport:
    """The runner's JSON report; a report that is missing or malformed is `ok=False`, never an exception."""
    if not raw:
        return RunnerReport(ok=False, problem="the test runner reported nothing")
    try:
        data = json.loads(raw.decode("utf-8", errors="replace"))
        cases = [TestCaseResult.model_validate(c) for c in data.get("cases", [])]
        usage = data.get("rusage") or {}
        return RunnerReport(ok=True, cases=cases, collect_errors=[str(e) for e in data.get("collect_errors", [])],
                            cpu_s=usage.get("cpu_s"), peak_memory_mb=usage.get("peak_memory_mb"))
    except (ValueError, TypeError, AttributeError) as e:
        return RunnerReport(ok=False, problem=f"the test runner's report is malformed: {str(e).splitlines()[0]}")
