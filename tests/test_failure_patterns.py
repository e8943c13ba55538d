"""Failure patterns read from real sandbox runs: what Phase 3's miner keys its playbook on."""

from __future__ import annotations

import pytest
from tests.sandbox_helpers import bwrap_or_skip, exec_config, make_task

from cet.execution.executor import Executor
from cet.execution.failures import failure_pattern
from cet.execution.result import ExecutionResult

# a LeetCode-style task: a class with a snake_case method, tests that call it through helpers of their own
CLASS_TESTS = """
from solution import Solution


def run_count_pairs(cls, nums):
    return cls().count_pairs(nums)


def test_small():
    assert run_count_pairs(Solution, [1, 2, 1]) == [1]


def test_single():
    assert run_count_pairs(Solution, [5]) == []


def test_more():
    assert run_count_pairs(Solution, [3, 3, 4, 4]) == [3, 4]
"""
INTERFACE = "class Solution:\n    def count_pairs(self, nums: list[int]) -> list[int]:"
GOOD = ("class Solution:\n    def count_pairs(self, nums):\n        from collections import Counter\n"
        "        return sorted(k for k, v in Counter(nums).items() if v > 1)\n")
SOLUTIONS = {
    "passed": GOOD,
    "missing-import": "class Solution:\n    def count_pairs(self, nums):\n"
                      "        return sorted(k for k, v in Counter(nums).items() if v > 1)\n",
    "renamed": GOOD.replace("count_pairs", "countPairs"),
    "helpers-instead": "def run_count_pairs(cls, nums):\n    return []\n",
    "truncated": "class Solution:\n    def count_pairs(self, nums):\n        return sorted(set(nums\n",
    "wrong-type": "class Solution:\n    def count_pairs(self, nums):\n        return 'none'\n",
    "edge-value": "class Solution:\n    def count_pairs(self, nums):\n"
                  "        return [nums[0]] if nums[0] != 5 else [5]\n",
    "wrong-logic": "class Solution:\n    def count_pairs(self, nums):\n        return [-1]\n",
    "printed": "class Solution:\n    def count_pairs(self, nums):\n        print(sorted(set(nums)))\n",
    "exception": "class Solution:\n    def count_pairs(self, nums):\n        return [nums[10]]\n",
}


@pytest.fixture(scope="module")
def runs() -> dict[str, ExecutionResult]:
    bwrap_or_skip()
    executor = Executor(exec_config("bubblewrap", workers=2, wall_timeout_s=30, cpu_time_s=2))
    task = make_task(CLASS_TESTS, ["test_small", "test_single", "test_more"])
    return dict(zip(SOLUTIONS, executor.run_many((task, code) for code in SOLUTIONS.values()), strict=True))


@pytest.mark.parametrize("expected", list(SOLUTIONS))
def test_the_pattern_of_each_failure(runs: dict[str, ExecutionResult], expected: str) -> None:
    result = runs[expected]
    got = failure_pattern(result, SOLUTIONS[expected], "Solution.count_pairs", INTERFACE)
    assert got == expected, (result.exit_reason, result.detail, [(c.error_type, c.message) for c in
                                                                  result.tests.cases if c.outcome != "passed"])


def test_no_code_and_no_run() -> None:
    assert failure_pattern(None, None, "f") == "no-code"
    assert failure_pattern(None, "def f():\n    pass\n", "f") == "no-code"
