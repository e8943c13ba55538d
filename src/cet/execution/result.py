"""ExecutionResult: every signal of one run of a solution, in one stable, versioned JSON schema.

`passed` is true only when the solution compiled, the run ended normally and every test the task
defines ran and passed. `exit_reason` says how the run ended (see EXIT_REASONS).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

ExitReason = Literal["ok", "failed", "timeout", "memory", "crash", "killed", "output-limit", "compile-error"]
EXIT_REASONS: dict[str, str] = {
    "ok": "the test run ended normally and every test passed",
    "failed": "the test run ended normally and some test failed or errored",
    "compile-error": "the solution does not compile (syntax error); nothing was run",
    "timeout": "wall-clock or CPU-time limit reached; the whole process tree was killed",
    "memory": "the address-space limit was reached (MemoryError or allocation failure)",
    "crash": "the runner died or reported nothing usable (signal, interpreter exit, tampered results)",
    "killed": "killed by a signal from outside the run's own limits (e.g. SIGKILL)",
    "output-limit": "stdout/stderr or a written file went past the cap",
}
Isolation = Literal["bubblewrap", "weak"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CompileCheck(_Record):
    ok: bool
    error: str | None = None  # e.g. "SyntaxError: invalid syntax (line 3)"
    line: int | None = None


class LintFinding(_Record):
    code: str
    message: str
    line: int | None = None
    column: int | None = None


class LintReport(_Record):
    tool: str = "ruff"
    available: bool = True
    findings: list[LintFinding] = Field(default_factory=list)
    error: str | None = None

    @property
    def count(self) -> int:
        return len(self.findings)


class SecurityFinding(_Record):
    test_id: str  # bandit test id, e.g. B602
    name: str
    severity: Literal["LOW", "MEDIUM", "HIGH", "UNDEFINED"]
    confidence: Literal["LOW", "MEDIUM", "HIGH", "UNDEFINED"]
    message: str
    line: int | None = None


class SecurityReport(_Record):
    tool: str = "bandit"
    available: bool = True
    findings: list[SecurityFinding] = Field(default_factory=list)
    error: str | None = None

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)


class TestCaseResult(_Record):
    __test__ = False  # not a pytest class

    name: str
    outcome: Literal["passed", "failed", "error", "skipped"]
    duration_s: float | None = None
    error_type: str | None = None  # e.g. AssertionError
    message: str | None = None
    traceback_tail: str | None = None


class TestSummary(_Record):
    __test__ = False

    total: int = 0  # tests the task defines
    passed: int = 0
    failed: int = 0  # failed, errored or never reported
    cases: list[TestCaseResult] = Field(default_factory=list)


class Performance(_Record):
    """Time of the task's tests with this solution against the task's reference solution, same sandbox."""

    solution_s: float
    reference_s: float
    ratio: float  # solution_s / reference_s: 1.0 is as fast as the reference, 2.0 twice as slow


class Resources(_Record):
    wall_s: float
    cpu_s: float | None = None  # user + system time of the run's process tree
    peak_memory_mb: float | None = None  # the largest resident set of any process in the run


class ExecutionResult(_Record):
    schema_version: int = SCHEMA_VERSION
    task_id: str
    language: str
    passed: bool
    exit_reason: ExitReason
    isolation: Isolation
    isolation_warning: str | None = None  # set, in every result, when not fully isolated
    compile: CompileCheck
    tests: TestSummary = Field(default_factory=TestSummary)
    lint: LintReport | None = None
    security: SecurityReport | None = None
    performance: Performance | None = None
    resources: Resources | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    output_truncated: bool = False
    detail: str | None = None  # a human-readable line on why the run ended as it did
    reward: float | None = None
    reward_terms: dict[str, float] = Field(default_factory=dict)
