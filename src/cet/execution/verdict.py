"""From what a sandboxed run did to the result's verdict: per-test summary, exit reason, detail line."""

from __future__ import annotations

import signal

from cet.execution.languages import RunnerReport
from cet.execution.result import TestCaseResult, TestSummary
from cet.execution.sandbox import SandboxRun
from cet.execution.tasks import CodingTask

MEMORY_MARKERS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "heap out of memory",
                  "Allocation failed", "out of memory")


def summarise_tests(task: CodingTask, report: RunnerReport) -> TestSummary:
    """One case per test the task defines; a test the runner never reported counts as an error."""
    reported = {case.name: case for case in report.cases}
    expected = task.test_names or list(reported)
    why_missing = (report.collect_errors[0].strip().splitlines() or ["not reported"])[-1] if report.collect_errors \
        else (report.problem or "the test runner did not report this test")
    cases = [reported.get(name) or TestCaseResult(name=name, outcome="error", error_type="NotRun",
                                                  message=why_missing[:500])
             for name in expected]
    passed = sum(1 for case in cases if case.outcome == "passed")
    return TestSummary(total=len(cases), passed=passed, failed=len(cases) - passed, cases=cases)


def _memory_exhausted(run: SandboxRun, report: RunnerReport) -> bool:
    if any(case.error_type == "MemoryError" for case in report.cases):
        return True
    text = "\n".join([run.stderr[-4000:], *report.collect_errors])
    return any(marker in text for marker in MEMORY_MARKERS)


def classify(task: CodingTask, run: SandboxRun, report: RunnerReport, summary: TestSummary) -> tuple[str, str]:
    """The exit reason and a one-line detail. Limits first (they explain everything after them)."""
    if run.output_truncated:
        return "output-limit", "stdout/stderr passed the output cap; the run was killed"
    if run.timed_out:
        return "timeout", "wall-clock timeout; the whole process tree was killed"
    if run.signal == signal.SIGXCPU:
        return "timeout", "CPU-time limit reached (SIGXCPU)"
    if run.signal == signal.SIGXFSZ:
        return "output-limit", "file-size limit reached (SIGXFSZ)"
    if any("[Errno 27]" in (case.message or "") for case in report.cases):  # EFBIG: past RLIMIT_FSIZE
        return "output-limit", "file-size limit reached (a written file passed the cap)"
    if _memory_exhausted(run, report):
        return "memory", "the address-space limit was reached"
    if run.signal == signal.SIGKILL:
        return "killed", "killed by SIGKILL from outside the run's limits"
    if run.signal is not None:
        return "crash", f"the test runner died of signal {signal.Signals(run.signal).name}"
    if not report.ok:
        tail = (run.stderr.strip().splitlines() or [""])[-1][:300]
        return "crash", f"{report.problem}; exit status {run.returncode}" + (f"; stderr: {tail}" if tail else "")
    unexpected = {case.name for case in report.cases} - set(task.test_names) if task.test_names else set()
    if unexpected:
        return "crash", f"the runner reported tests the task does not define: {sorted(unexpected)[:5]}"
    if summary.total == 0:
        return "failed", "no tests ran" + (f": {report.collect_errors[0][-300:]}" if report.collect_errors else "")
    if summary.failed == 0:
        return "ok", f"all {summary.total} tests passed"
    if report.collect_errors:
        return "failed", f"the tests could not be collected: {report.collect_errors[0].strip().splitlines()[-1][:300]}"
    return "failed", f"{summary.failed} of {summary.total} tests failed"
