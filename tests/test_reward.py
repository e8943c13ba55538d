"""The reward: its terms, their renormalisation, monotonicity and bounds, on ExecutionResults built directly."""

from __future__ import annotations

import itertools

import pytest

from cet.config import RewardWeights, load_config
from cet.execution.result import (
    CompileCheck,
    ExecutionResult,
    LintFinding,
    LintReport,
    Performance,
    SecurityFinding,
    SecurityReport,
    TestSummary,
)
from cet.execution.reward import apply_reward, compute_reward

W = RewardWeights()


def lint(n: int = 0, available: bool = True, error: str | None = None) -> LintReport:
    findings = [LintFinding(code="F401", message="unused", line=i + 1) for i in range(n)]
    return LintReport(available=available, findings=findings, error=error)


def sec(*severities: str, available: bool = True, error: str | None = None) -> SecurityReport:
    findings = [
        SecurityFinding(test_id="B000", name="t", severity=s, confidence="HIGH", message="m", line=1)
        for s in severities
    ]
    return SecurityReport(available=available, findings=findings, error=error)


def perf(ratio: float) -> Performance:
    return Performance(solution_s=ratio, reference_s=1.0, ratio=ratio)


def make(
    passed: int = 10,
    total: int = 10,
    compiled: bool = True,
    exit_reason: str | None = None,
    lint_report: LintReport | None = None,
    security: SecurityReport | None = None,
    performance: Performance | None = None,
) -> ExecutionResult:
    if exit_reason is None:
        exit_reason = "compile-error" if not compiled else ("ok" if passed == total and total else "failed")
    return ExecutionResult(
        task_id="t1",
        language="python",
        passed=compiled and exit_reason == "ok" and passed == total and total > 0,
        exit_reason=exit_reason,
        isolation="bubblewrap",
        compile=CompileCheck(ok=True) if compiled else CompileCheck(ok=False, error="SyntaxError: x (line 1)", line=1),
        tests=TestSummary(total=total, passed=passed, failed=total - passed) if compiled else TestSummary(total=total),
        lint=lint_report,
        security=security,
        performance=performance,
    )


def reward(result: ExecutionResult, weights: RewardWeights = W, **kw) -> float:
    return compute_reward(result, weights, **kw)[0]


# --- terms ---------------------------------------------------------------------------------------------------


def test_all_terms_perfect():
    r, terms = compute_reward(make(lint_report=lint(), security=sec(), performance=perf(1.0)), W)
    assert terms == {"compile": 1.0, "tests": 1.0, "performance": 1.0, "security": 1.0, "quality": 1.0}
    assert r == pytest.approx(1.0)


def test_term_formulas():
    result = make(passed=10, lint_report=lint(5), security=sec("HIGH", "MEDIUM", "LOW"), performance=perf(4.0))
    _, terms = compute_reward(result, W)
    assert terms["performance"] == pytest.approx(0.25)
    assert terms["security"] == pytest.approx(1 / (1 + 1.0 + 0.5 + 0.1))
    assert terms["quality"] == pytest.approx(0.5)


def test_faster_than_reference_is_capped_at_one():
    _, terms = compute_reward(make(performance=perf(0.25)), W)
    assert terms["performance"] == 1.0


def test_weighted_mean():
    result = make(passed=5, total=10, lint_report=lint(5), security=sec("HIGH"), performance=perf(2.0))
    expected = (0.1 * 1.0 + 0.6 * 0.5 + 0.1 * 0.0 + 0.1 * 0.5 + 0.1 * 0.5) / 1.0  # perf 0: not every test passed
    assert reward(result) == pytest.approx(expected)


def test_compile_failure_is_zero_everywhere():
    result = make(compiled=False, lint_report=lint(), security=sec())
    r, terms = compute_reward(result, W, has_reference=True)
    assert r == 0.0
    assert set(terms) == {"compile", "tests", "performance", "security", "quality"}
    assert all(v == 0.0 for v in terms.values())


def test_no_tests_defined_gives_zero_tests_term():
    _, terms = compute_reward(make(passed=0, total=0, exit_reason="failed"), W)
    assert terms["tests"] == 0.0


@pytest.mark.parametrize("exit_reason", ["timeout", "memory", "crash", "killed", "output-limit"])
def test_tests_passed_before_an_abnormal_end_still_count(exit_reason):
    _, terms = compute_reward(make(passed=3, total=10, exit_reason=exit_reason), W)
    assert terms["tests"] == pytest.approx(0.3)


def test_timeout_after_all_tests_gets_no_performance_credit():
    _, terms = compute_reward(make(passed=10, total=10, exit_reason="timeout", performance=perf(1.0)), W)
    assert terms["performance"] == 0.0


# --- presence and renormalisation ----------------------------------------------------------------------------


def test_absent_terms_drop_their_weight():
    r, terms = compute_reward(make(passed=5, total=10), W)
    assert set(terms) == {"compile", "tests"}
    assert r == pytest.approx((0.1 * 1.0 + 0.6 * 0.5) / 0.7)


def test_unavailable_tools_are_absent():
    result = make(lint_report=lint(available=False, error="ruff not found"), security=sec(available=False))
    _, terms = compute_reward(result, W)
    assert "quality" not in terms and "security" not in terms


def test_tool_error_on_the_source_is_zero_not_absent():
    result = make(lint_report=lint(error="ruff failed"), security=sec(error="bandit could not scan the file"))
    _, terms = compute_reward(result, W)
    assert terms["quality"] == 0.0 and terms["security"] == 0.0


def test_performance_absent_without_reference_and_zero_with_one_when_failing():
    failing = make(passed=9, total=10)
    assert "performance" not in compute_reward(failing, W)[1]
    assert compute_reward(failing, W, has_reference=True)[1]["performance"] == 0.0
    # a measurement on a failing run also says a reference exists
    assert compute_reward(make(passed=9, total=10, performance=perf(1.0)), W)[1]["performance"] == 0.0
    # all passed but not timed: absent even with a reference
    assert "performance" not in compute_reward(make(), W, has_reference=True)[1]


def test_all_zero_weights_give_zero():
    zero = RewardWeights(compile=0, tests=0, performance=0, security=0, quality=0)
    assert compute_reward(make(lint_report=lint()), zero) == (0.0, {"compile": 1.0, "tests": 1.0, "quality": 1.0})


def test_zero_weights_over_present_terms_only():
    weights = RewardWeights(compile=0, tests=0, performance=1, security=0, quality=0)
    assert reward(make(passed=3)) < 1
    assert reward(make(passed=3), weights) == 0.0  # performance absent: the present terms weigh nothing


def test_weights_from_config_are_respected(monkeypatch):
    monkeypatch.delenv("CET_CONFIG", raising=False)
    monkeypatch.setenv("CET_EXEC__REWARD__TESTS", "0")
    monkeypatch.setenv("CET_EXEC__REWARD__QUALITY", "3")
    weights = load_config().exec.reward
    assert weights.tests == 0 and weights.quality == 3
    result = make(passed=0, total=10, lint_report=lint(0))
    assert reward(result, weights) == pytest.approx((0.1 * 1.0 + 3 * 1.0) / 3.1)
    assert reward(result) == pytest.approx((0.1 * 1.0 + 0.6 * 0.0 + 0.1 * 1.0) / 0.8)


# --- monotonicity and bounds ---------------------------------------------------------------------------------


def test_more_passing_tests_raise_the_reward():
    rewards = [reward(make(passed=p, total=10, lint_report=lint(1), security=sec())) for p in range(11)]
    assert all(a < b for a, b in itertools.pairwise(rewards))
    with_reference = [reward(make(passed=p, total=10, performance=perf(1.5) if p == 10 else None), has_reference=True)
                      for p in range(11)]  # fmt: skip
    assert all(a < b for a, b in itertools.pairwise(with_reference))


def test_a_high_finding_lowers_the_reward():
    clean = reward(make(security=sec()))
    low = reward(make(security=sec("LOW")))
    medium = reward(make(security=sec("MEDIUM")))
    high = reward(make(security=sec("HIGH")))
    two_high = reward(make(security=sec("HIGH", "HIGH")))
    assert clean > low > medium > high > two_high


def test_a_slower_ratio_lowers_the_reward():
    rewards = [reward(make(performance=perf(r))) for r in (1.0, 1.5, 2.0, 4.0, 100.0)]
    assert all(a > b for a, b in itertools.pairwise(rewards))


def test_more_lint_findings_lower_the_reward():
    rewards = [reward(make(lint_report=lint(n))) for n in range(0, 30, 3)]
    assert all(a > b for a, b in itertools.pairwise(rewards))


def test_bounds_over_a_grid():
    weight_sets = [W, RewardWeights(compile=5, tests=0, performance=2, security=0.5, quality=9), RewardWeights(
        compile=0, tests=1, performance=0, security=0, quality=0)]  # fmt: skip
    for passed, compiled, n_lint, sev, ratio, weights, ref in itertools.product(
        (0, 4, 10), (True, False), (None, 0, 7), (None, (), ("HIGH",) * 4, ("LOW", "MEDIUM")),
        (None, 0.0, 0.3, 1.0, 7.5, float("inf"), float("nan")), weight_sets, (False, True),
    ):  # fmt: skip
        result = make(
            passed=passed,
            total=10,
            compiled=compiled,
            lint_report=None if n_lint is None else lint(n_lint),
            security=None if sev is None else sec(*sev),
            performance=None if ratio is None else perf(ratio),
        )
        r, terms = compute_reward(result, weights, has_reference=ref)
        assert 0.0 <= r <= 1.0
        assert all(0.0 <= v <= 1.0 for v in terms.values())
        if not compiled:
            assert r == 0.0


def test_apply_reward_returns_a_copy():
    result = make(passed=7, lint_report=lint(2))
    scored = apply_reward(result, W)
    assert result.reward is None and result.reward_terms == {}
    r, terms = compute_reward(result, W)
    assert scored.reward == r and scored.reward_terms == terms
    assert ExecutionResult.model_validate_json(scored.model_dump_json()) == scored
