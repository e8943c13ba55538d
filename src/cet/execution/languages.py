"""How each language's tests run in the sandbox: the files, the command, and reading the runner's report.

Python runs the task's pytest file through runtime/pytest_runner.py; JavaScript runs `node --test` with
runtime/node_reporter.mjs. Both runners write one JSON object {"cases": [...], "collect_errors": [...],
"rusage": {...}} to the result descriptor, so everything after the run is shared.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from typing import Protocol

from cet.config import ExecConfig
from cet.execution.repository import repository_files
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

    def files(self, task: CodingTask, solution: str, cfg: ExecConfig) -> dict[str, bytes | str]: ...

    def command(self, task: CodingTask, paths: SandboxPaths, cfg: ExecConfig) -> list[str]: ...

    def memory_mb(self, cfg: ExecConfig) -> int: ...


class PythonRunner:
    language = "python"

    def files(self, task: CodingTask, solution: str, cfg: ExecConfig) -> dict[str, bytes | str]:
        if task.repository is not None:
            return repository_files(task, solution, cfg.repos_dir)
        return {task.solution_filename: solution, task.test_filename: task.tests}

    def command(self, task: CodingTask, paths: SandboxPaths, cfg: ExecConfig) -> list[str]:
        # -I -S: no environment variables, no user or site packages: the stdlib and the runner's pytest only
        return [paths.python, "-I", "-S", "-B", f"{paths.runtime}/pytest_runner.py", paths.work, task.test_filename,
                *paths.site.split(":")]

    def memory_mb(self, cfg: ExecConfig) -> int:
        return cfg.limits.memory_mb


# V8 reserves ~750 MB of address space before running anything (`node --test` needs ~750 MB of RLIMIT_AS to
# start at all); the heap cap leaves this much room under js_memory_mb for that and off-heap allocations
JS_RESERVED_MB = 1024
JS_MIN_HEAP_MB = 32


class JavaScriptRunner:
    """`node --test` on the task's test file, with runtime/node_reporter.mjs writing the report. node runs the
    file in a child process of its own; both processes get the same flags (node passes them on)."""

    language = "javascript"

    def files(self, task: CodingTask, solution: str, cfg: ExecConfig) -> dict[str, bytes | str]:
        return {task.solution_filename: solution, task.test_filename: task.tests}

    def command(self, task: CodingTask, paths: SandboxPaths, cfg: ExecConfig) -> list[str]:
        return [shutil.which(cfg.node) or cfg.node,
                f"--max-old-space-size={self.heap_mb(cfg)}",  # a memory bomb ends as V8's "heap out of memory"
                "--disable-wasm-trap-handler",  # wasm memories without their 10 GB guard reservation
                "--v8-pool-size=2",  # V8 worker threads: each counts against the process limit (RLIMIT_NPROC)
                "--no-addons", "--no-global-search-paths",  # no native code, no modules from $HOME or prefixes
                "--test", "--test-force-exit",  # ends when the tests have, whatever handles the solution left open
                "--test-reporter", f"{paths.runtime}/node_reporter.mjs", "--test-reporter-destination", "stdout",
                task.test_filename]

    def memory_mb(self, cfg: ExecConfig) -> int:
        return cfg.limits.js_memory_mb

    @staticmethod
    def heap_mb(cfg: ExecConfig) -> int:
        """V8's old-space cap: the memory budget a Python run gets, within what the address space leaves."""
        return max(JS_MIN_HEAP_MB, min(cfg.limits.memory_mb, cfg.limits.js_memory_mb - JS_RESERVED_MB))


RUNNERS: dict[str, LanguageRunner] = {"python": PythonRunner(), "javascript": JavaScriptRunner()}


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
