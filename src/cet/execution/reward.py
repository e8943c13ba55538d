"""The reward of one execution: a weighted mean of five terms, each in [0, 1]. This docstring is the reference.

Terms (weights from ``exec.reward`` in the config, RewardWeights):

* ``compile``: 1.0 when the solution compiled, else 0.0. When it did not compile every present term is 0.0
  and the reward is 0.0: nothing else about code that does not compile earns anything.
* ``tests``: ``tests.passed / tests.total`` (0.0 when the task defines no tests). However the run ended
  (timeout, memory, crash, killed, output-limit), the tests reported as passed before the end still count.
* ``performance``: when ``result.performance`` is set and the run passed (every test ran and passed):
  ``min(1, 1 / ratio)``, where ratio = solution time / reference time (as fast as the reference or faster:
  1.0; twice as slow: 0.5). When the run did not pass and the task has a reference (``performance`` set, or
  ``has_reference=True``): 0.0, present. Otherwise (no reference, or timing not measured) the term is absent.
* ``security``: ``1 / (1 + 1.0*HIGH + 0.5*MEDIUM + 0.1*LOW)`` over bandit's findings (UNDEFINED severity counts
  as LOW). Absent when there is no report or the scanner is unavailable (``available=False``, e.g. JavaScript).
  When the scanner ran but could not scan this source (``error`` set) the term is 0.0: a solution is not
  credited as clean for defeating the checker.
* ``quality``: ``1 / (1 + lint_count / 5)`` over ruff's findings (5 findings: 0.5). Absent, or 0.0, on the
  same rules as security.

``reward = sum(w * term) / sum(w)`` over the present terms only, so an absent term's weight is shared out
among the others (renormalised); 0.0 when the present terms' weights are all 0. ``terms`` holds the present
terms only. Every term is monotone: more passing tests, fewer findings or a lower ratio never lower it.
"""

from __future__ import annotations

import math

from cet.config import RewardWeights
from cet.execution.result import ExecutionResult, LintReport, SecurityReport

SEVERITY_PENALTY: dict[str, float] = {"HIGH": 1.0, "MEDIUM": 0.5, "LOW": 0.1, "UNDEFINED": 0.1}
LINT_HALF_COUNT = 5.0  # this many lint findings halve the quality term


def compute_reward(
    result: ExecutionResult, weights: RewardWeights, has_reference: bool = False
) -> tuple[float, dict[str, float]]:
    """(reward in [0, 1], {term: value in [0, 1]} for the present terms) of one execution result."""
    terms: dict[str, float] = {"compile": 1.0 if result.compile.ok else 0.0, "tests": _tests_term(result)}
    performance = _performance_term(result, has_reference)
    if performance is not None:
        terms["performance"] = performance
    security = _security_term(result.security)
    if security is not None:
        terms["security"] = security
    quality = _quality_term(result.lint)
    if quality is not None:
        terms["quality"] = quality
    if not result.compile.ok:
        terms = dict.fromkeys(terms, 0.0)
    terms = {name: min(1.0, max(0.0, value)) for name, value in terms.items()}
    total_weight = sum(getattr(weights, name) for name in terms)
    if total_weight <= 0:
        return 0.0, terms
    reward = sum(getattr(weights, name) * value for name, value in terms.items()) / total_weight
    return min(1.0, max(0.0, reward)), terms


def apply_reward(result: ExecutionResult, weights: RewardWeights, has_reference: bool = False) -> ExecutionResult:
    """A copy of the result with ``reward`` and ``reward_terms`` set."""
    reward, terms = compute_reward(result, weights, has_reference=has_reference)
    return result.model_copy(update={"reward": reward, "reward_terms": terms})


def _tests_term(result: ExecutionResult) -> float:
    total = result.tests.total
    return min(max(result.tests.passed, 0), total) / total if total > 0 else 0.0


def _all_passed(result: ExecutionResult) -> bool:
    t = result.tests
    return result.passed and t.total > 0 and t.passed >= t.total


def _performance_term(result: ExecutionResult, has_reference: bool) -> float | None:
    perf = result.performance
    if not _all_passed(result):
        return 0.0 if perf is not None or has_reference else None
    if perf is None:
        return None
    if math.isnan(perf.ratio):
        return 0.0
    return 1.0 if perf.ratio <= 0 else min(1.0, 1.0 / perf.ratio)


def _security_term(report: SecurityReport | None) -> float | None:
    if report is None or not report.available:
        return None
    if report.error:
        return 0.0
    return 1.0 / (1.0 + sum(SEVERITY_PENALTY.get(f.severity, 0.1) for f in report.findings))


def _quality_term(report: LintReport | None) -> float | None:
    if report is None or not report.available:
        return None
    if report.error:
        return 0.0
    return 1.0 / (1.0 + report.count / LINT_HALF_COUNT)
