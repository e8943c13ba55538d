"""Paired comparison of pass/fail outcomes: two conditions (e.g. generator with and without the CET's
context) run on the same tasks, compared task by task.

The test is the exact McNemar test: only the discordant tasks (passed under one condition, failed under
the other) carry information, and under the null each is equally likely to go either way, so the number
won by one side is Binomial(discordant, 0.5). The difference in pass rate gets Newcombe's (1998) method 10
interval for paired proportions: the two Wilson intervals combined, corrected for the correlation of the
pairs; it stays inside [-1, 1] and behaves at small n where the Wald interval does not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from scipy.stats import binomtest

ALPHA = 0.05
CI_METHOD = "newcombe-10"  # Newcombe (1998), paired proportions, method 10 (score, no continuity correction)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion; (0.0, 1.0) when there is nothing to estimate from."""
    if n <= 0:
        return 0.0, 1.0
    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def _table(a: Sequence[bool], b: Sequence[bool]) -> dict[str, int]:
    """The paired 2x2 table of two outcome sequences over the same tasks."""
    if len(a) != len(b):
        raise ValueError(f"paired outcomes differ in length: {len(a)} and {len(b)}")
    pairs = [(bool(x), bool(y)) for x, y in zip(a, b, strict=True)]
    return {
        "both": sum(x and y for x, y in pairs),
        "only_a": sum(x and not y for x, y in pairs),
        "only_b": sum(y and not x for x, y in pairs),
        "neither": sum(not x and not y for x, y in pairs),
    }


def _phi(both: int, only_first: int, only_second: int, neither: int) -> float:
    """Newcombe's correlation estimate for the two paired proportions (shrunk towards 0 by n/2 when positive)."""
    n = both + only_first + only_second + neither
    product = (both + only_first) * (only_second + neither) * (both + only_second) * (only_first + neither)
    if product == 0:
        return 0.0
    cross = both * neither - only_first * only_second
    if cross > n / 2:
        return (cross - n / 2) / math.sqrt(product)
    return cross / math.sqrt(product) if cross < 0 else 0.0


def paired_difference_ci(both: int, only_first: int, only_second: int, neither: int,
                         confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's method 10 interval for rate(first) - rate(second) from a paired 2x2 table.

    `only_first` counts pairs where only the first condition passed. (-1.0, 1.0) for an empty table.
    """
    n = both + only_first + only_second + neither
    if n == 0:
        return -1.0, 1.0
    p1, p2 = (both + only_first) / n, (both + only_second) / n
    l1, u1 = wilson_interval(both + only_first, n, confidence)
    l2, u2 = wilson_interval(both + only_second, n, confidence)
    phi = _phi(both, only_first, only_second, neither)
    diff = p1 - p2
    lower = diff - math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    upper = diff + math.sqrt(max((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2, 0.0))
    return max(lower, -1.0), min(upper, 1.0)


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> dict[str, Any]:
    """Exact McNemar test of paired outcomes `a` and `b`, and the difference in pass rate b - a with its 95% CI.

    Returns the table (both, only_a, only_b, neither), n, the two rates, `difference` (rate_b - rate_a),
    `ci95` for it, `ci_method` and the two-sided exact `p_value` (1.0 when no pair is discordant).
    Raises ValueError when the sequences differ in length.
    """
    table = _table(a, b)
    n = len(a)
    discordant = table["only_a"] + table["only_b"]
    p = float(binomtest(table["only_a"], discordant, 0.5).pvalue) if discordant else 1.0
    rate_a = (table["both"] + table["only_a"]) / n if n else 0.0
    rate_b = (table["both"] + table["only_b"]) / n if n else 0.0
    ci = paired_difference_ci(table["both"], table["only_b"], table["only_a"], table["neither"])
    return {**table, "n": n, "rate_a": rate_a, "rate_b": rate_b, "difference": rate_b - rate_a,
            "ci95": [ci[0], ci[1]], "ci_method": CI_METHOD, "p_value": min(p, 1.0)}


def _direction(difference: float) -> str:
    return "better" if difference > 0 else "worse" if difference < 0 else "level"


def compare_conditions(outcomes: Mapping[str, Sequence[bool]], target: str,
                       against: Sequence[str]) -> dict[str, dict[str, Any]]:
    """McNemar of `target` against each condition in `against` (outcomes aligned by task).

    Each entry is mcnemar(outcomes[other], outcomes[target]), so a positive `difference` means the target
    passes more; `direction` is "better" / "worse" / "level" by that sign, `significant` is p < 0.05.
    """
    results: dict[str, dict[str, Any]] = {}
    for other in against:
        if other == target:
            continue
        result = mcnemar(outcomes[other], outcomes[target])
        result["significant"] = result["p_value"] < ALPHA
        result["direction"] = _direction(result["difference"])
        results[other] = result
    return results


def pass_rates(outcomes: Mapping[str, Sequence[bool]]) -> dict[str, dict[str, Any]]:
    """Per condition: passed, n, rate (0.0 when n == 0) and the Wilson 95% interval."""
    rates: dict[str, dict[str, Any]] = {}
    for name, values in outcomes.items():
        passed, n = sum(bool(v) for v in values), len(values)
        low, high = wilson_interval(passed, n)
        rates[name] = {"passed": passed, "n": n, "rate": passed / n if n else 0.0, "ci95": [low, high]}
    return rates
