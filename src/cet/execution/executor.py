"""Executor: one solution of one task through the static checks, the sandbox, the verdict and the reward.

`Executor.run(task, solution)` is the whole pipeline; `Executor.run_many` runs pairs concurrently on
`exec.workers` slots (each run leases its own unprivileged uid). The test runs go through a backend: the
one-shot sandbox (a fresh bubblewrap per run, the default) or the warm pool (`pool.WarmPool`).
"""

from __future__ import annotations

import hashlib
import queue
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from cet.config import ExecConfig
from cet.execution.languages import RunnerReport, parse_report, runner_for
from cet.execution.result import CompileCheck, ExecutionResult, Performance, Resources
from cet.execution.reward import apply_reward
from cet.execution.sandbox import Sandbox, SandboxRun
from cet.execution.static_checks import static_signals
from cet.execution.tasks import CodingTask
from cet.execution.verdict import classify, summarise_tests

TAIL_CHARS = 4000
MIN_TIMED_S = 1e-4  # test durations below 0.1 ms are noise; both sides of the ratio are floored here


class TestBackend(Protocol):
    isolation: str
    warning: str | None

    def run_tests(self, task: CodingTask, solution: str, slot: int) -> SandboxRun: ...


class OneShotBackend:
    """A fresh sandbox per run: the strongest isolation, the interpreter's start-up paid every time."""

    def __init__(self, cfg: ExecConfig, sandbox: Sandbox | None = None) -> None:
        self.cfg = cfg
        self.sandbox = sandbox or Sandbox(cfg.limits, cfg.isolation, cfg.sandbox_uid)
        self.isolation, self.warning = self.sandbox.isolation, self.sandbox.warning

    def run_tests(self, task: CodingTask, solution: str, slot: int = 0) -> SandboxRun:
        runner = runner_for(task.language)
        argv = runner.command(task, self.sandbox.paths(), self.cfg)
        return self.sandbox.run(argv, runner.files(task, solution, self.cfg), memory_mb=runner.memory_mb(self.cfg))


class Executor:
    def __init__(self, cfg: ExecConfig, backend: TestBackend | None = None) -> None:
        self.cfg = cfg
        self.backend = backend or OneShotBackend(cfg)
        self._reference_s: dict[str, float | None] = {}
        self._slots: queue.Queue[int] = queue.Queue()
        for slot in range(cfg.workers):
            self._slots.put(slot)

    def run(self, task: CodingTask, solution: str) -> ExecutionResult:
        slot = self._slots.get()
        try:
            return self._run(task, solution, slot)
        finally:
            self._slots.put(slot)

    def run_many(self, pairs: Iterable[tuple[CodingTask, str]],
                 on_result: Callable[[ExecutionResult], None] | None = None) -> Iterator[ExecutionResult]:
        """Results in input order, `exec.workers` runs at a time."""
        with ThreadPoolExecutor(max_workers=self.cfg.workers) as pool:
            futures = [pool.submit(self.run, task, solution) for task, solution in pairs]
            for future in futures:
                result = future.result()
                if on_result:
                    on_result(result)
                yield result

    def _run(self, task: CodingTask, solution: str, slot: int) -> ExecutionResult:
        cfg = self.cfg
        compiled, lint, security = static_signals(task.language, solution, task.solution_filename,
                                                  lint=cfg.lint, security=cfg.security)
        base = {"task_id": task.id, "language": task.language, "isolation": self.backend.isolation,
                "isolation_warning": self.backend.warning, "lint": lint, "security": security}
        if compiled is not None and not compiled.ok:
            result = ExecutionResult(passed=False, exit_reason="compile-error", compile=compiled,
                                     detail=compiled.error, **base)
            return apply_reward(result, cfg.reward, has_reference=self._has_reference(task))
        run = self.backend.run_tests(task, solution, slot)
        report = parse_report(run.result)
        if compiled is None:  # languages checked inside the sandbox report syntax errors as collect errors
            compiled = _compile_from_report(report)
        summary = summarise_tests(task, report)
        reason, detail = classify(task, run, report, summary)
        passed = reason == "ok" and compiled.ok
        result = ExecutionResult(
            passed=passed, exit_reason=reason if compiled.ok else "compile-error", compile=compiled, tests=summary,
            performance=self._performance(task, report, slot) if passed else None,
            resources=Resources(wall_s=round(run.wall_s, 4), cpu_s=_round(report.cpu_s or run.cpu_s),
                                peak_memory_mb=_round(report.peak_memory_mb or run.peak_memory_mb)),
            stdout_tail=run.stdout[-TAIL_CHARS:], stderr_tail=run.stderr[-TAIL_CHARS:],
            output_truncated=run.output_truncated, detail=detail, **base)
        return apply_reward(result, cfg.reward, has_reference=self._has_reference(task))

    def _has_reference(self, task: CodingTask) -> bool:
        return bool(self.cfg.performance and task.reference_solution)

    def _performance(self, task: CodingTask, report: RunnerReport, slot: int) -> Performance | None:
        if not (self.cfg.performance and task.reference_solution):
            return None
        reference_s = self._reference_time(task, slot)
        if reference_s is None:
            return None
        solution_s = max(sum(c.duration_s or 0.0 for c in report.cases), MIN_TIMED_S)
        return Performance(solution_s=round(solution_s, 6), reference_s=round(reference_s, 6),
                           ratio=round(solution_s / reference_s, 4))

    def _reference_time(self, task: CodingTask, slot: int) -> float | None:
        """The reference solution's test time in the same sandbox (once per task and content); None when the
        reference itself does not pass, so no ratio is reported against a broken baseline."""
        key = hashlib.sha256("\x1f".join([task.id, task.tests, task.reference_solution or ""]).encode()).hexdigest()
        if key not in self._reference_s:
            run = self.backend.run_tests(task, task.reference_solution or "", slot)
            report = parse_report(run.result)
            summary = summarise_tests(task, report)
            ok = classify(task, run, report, summary)[0] == "ok"
            self._reference_s[key] = max(sum(c.duration_s or 0.0 for c in report.cases), MIN_TIMED_S) if ok else None
        return self._reference_s[key]


def _compile_from_report(report: RunnerReport) -> CompileCheck:
    for error in report.collect_errors:
        if "SyntaxError" in error:
            return CompileCheck(ok=False, error=error.strip().splitlines()[-1][:500])
    return CompileCheck(ok=True)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
