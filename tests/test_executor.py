"""The executor's verdicts on ordinary solutions, the performance ratio, weak mode, and concurrency."""

from __future__ import annotations

import textwrap

import pytest
from tests.sandbox_helpers import bwrap_or_skip, exec_config, make_task, sandbox_processes

from cet.execution.executor import Executor
from cet.execution.result import EXIT_REASONS, ExecutionResult

ADD_TESTS = """
from solution import add

def test_small():
    assert add(1, 2) == 3

def test_negative():
    assert add(-1, -2) == -3

def test_zero():
    assert add(0, 0) == 0
"""
ADD_NAMES = ["test_small", "test_negative", "test_zero"]


@pytest.fixture(scope="module")
def executor() -> Executor:
    bwrap_or_skip()
    return Executor(exec_config("bubblewrap", workers=2))


def test_partly_wrong_solution_counts_each_test(executor: Executor) -> None:
    result = executor.run(make_task(ADD_TESTS, ADD_NAMES), "def add(a, b):\n    return abs(a + b)\n")
    assert not result.passed and result.exit_reason == "failed"
    assert (result.tests.total, result.tests.passed, result.tests.failed) == (3, 2, 1)
    failed = next(c for c in result.tests.cases if c.outcome != "passed")
    assert failed.name == "test_negative" and failed.error_type == "AssertionError"
    assert "3 == -3" in failed.message and "test_negative" in failed.traceback_tail
    assert all(c.duration_s is not None for c in result.tests.cases)
    assert 0 < result.reward < 1 and result.reward_terms["tests"] == pytest.approx(2 / 3)


def test_syntax_error_is_a_compile_error_and_nothing_runs(executor: Executor) -> None:
    result = executor.run(make_task(ADD_TESTS, ADD_NAMES), "def add(a, b)\n    return a + b\n")
    assert result.exit_reason == "compile-error" and not result.passed
    assert not result.compile.ok and result.compile.line == 1 and "SyntaxError" in result.compile.error
    assert result.tests.total == 0 and result.reward == 0


def test_exception_at_import_fails_every_test_with_the_reason(executor: Executor) -> None:
    result = executor.run(make_task(ADD_TESTS, ADD_NAMES), "raise RuntimeError('broken module')\n")
    assert result.exit_reason == "failed"
    assert result.tests.total == 3 and result.tests.passed == 0
    assert all(c.outcome == "error" for c in result.tests.cases)
    assert "broken module" in result.detail


def test_missing_function_is_reported_not_crashed(executor: Executor) -> None:
    result = executor.run(make_task(ADD_TESTS, ADD_NAMES), "def subtract(a, b):\n    return a - b\n")
    assert result.exit_reason == "failed" and result.tests.passed == 0
    assert "add" in result.detail


def test_task_defining_more_tests_than_run_cannot_pass(executor: Executor) -> None:
    task = make_task(ADD_TESTS, [*ADD_NAMES, "test_never_written"])
    result = executor.run(task, "def add(a, b):\n    return a + b\n")
    assert not result.passed and result.tests.total == 4 and result.tests.passed == 3
    assert next(c for c in result.tests.cases if c.name == "test_never_written").error_type == "NotRun"


def test_lint_and_security_signals_are_in_the_result(executor: Executor) -> None:
    solution = ("import os\nimport subprocess\n\n\ndef add(a, b):\n"
                "    subprocess.call('true', shell=True)\n    return a + b\n")
    result = executor.run(make_task(ADD_TESTS, ADD_NAMES), solution)
    assert result.passed
    assert any(f.code == "F401" for f in result.lint.findings)  # os unused
    assert any(f.test_id.startswith("B60") for f in result.security.findings)
    assert result.reward < 1 and result.reward_terms["security"] < 1 and result.reward_terms["quality"] < 1


def test_performance_ratio_against_the_reference() -> None:
    bwrap_or_skip()
    cfg = exec_config("bubblewrap").model_copy(update={"performance": True})
    executor = Executor(cfg)
    tests = "from solution import total\n\ndef test_total():\n    assert total(300_000) == 44_999_850_000\n"
    task = make_task(tests, ["test_total"], reference="def total(n):\n    return n * (n - 1) // 2\n")
    slow = "def total(n):\n    s = 0\n    for i in range(n):\n        s += i\n    return s\n"
    result = executor.run(task, slow)
    assert result.passed and result.performance is not None
    assert result.performance.ratio > 5  # a Python loop against the closed form
    fast = executor.run(task, task.reference_solution)
    assert fast.performance.ratio < result.performance.ratio
    assert result.reward_terms["performance"] < fast.reward_terms["performance"]


def test_result_schema_is_stable_json(executor: Executor) -> None:
    result = executor.run(make_task(ADD_TESTS, ADD_NAMES), "def add(a, b):\n    return a + b\n")
    data = result.model_dump(mode="json")
    assert {"schema_version", "passed", "exit_reason", "tests", "compile", "lint", "security", "resources",
            "isolation", "reward"} <= set(data)
    assert set(data["tests"]) >= {"total", "passed", "failed", "cases"}
    assert data["exit_reason"] in EXIT_REASONS
    assert ExecutionResult.model_validate_json(result.model_dump_json()) == result


def test_run_many_keeps_order_and_verdicts(executor: Executor) -> None:
    good, bad = "def add(a, b):\n    return a + b\n", "def add(a, b):\n    return a - b\n"
    pairs = [(make_task(ADD_TESTS, ADD_NAMES, task_id=f"t/{i}"), good if i % 2 == 0 else bad) for i in range(6)]
    results = list(executor.run_many(pairs))
    assert [r.task_id for r in results] == [f"t/{i}" for i in range(6)]
    assert [r.passed for r in results] == [True, False] * 3
    assert sandbox_processes() == []


@pytest.fixture(scope="module")
def weak() -> Executor:
    """Without bubblewrap: contained by rlimits and the process group only, and flagged in every result."""
    return Executor(exec_config("weak"))


class TestWeakMode:
    def test_every_result_says_it_is_not_isolated(self, weak: Executor) -> None:
        for solution in ("def add(a, b):\n    return a + b\n", "def add(a, b)\n", "def add(a, b):\n    return 0\n"):
            result = weak.run(make_task(ADD_TESTS, ADD_NAMES), solution)
            assert result.isolation == "weak"
            assert "NOT ISOLATED" in result.isolation_warning
        assert result.exit_reason == "failed"

    def test_limits_still_hold(self, weak: Executor) -> None:
        call = "from solution import attack\n\ndef test_attack():\n    attack()\n"
        loop = weak.run(make_task(call, ["test_attack"]), "def attack():\n    while True:\n        pass\n")
        assert loop.exit_reason == "timeout"
        flood = weak.run(make_task(call, ["test_attack"]),
                         "import sys\n\ndef attack():\n    while True:\n        sys.stdout.write('x' * 4096)\n")
        assert flood.exit_reason == "output-limit"
        memory = weak.run(make_task(call, ["test_attack"]), textwrap.dedent("""
            def attack():
                hoard = []
                while True:
                    hoard.append(bytearray(16 * 1024 * 1024))
        """))
        assert memory.exit_reason == "memory"
        assert sandbox_processes() == []
