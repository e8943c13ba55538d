"""Paired comparison of pass/fail outcomes: two conditions (e.g. generator with and without the CET's
context) run on the same tasks, compared task by task.

The test is the exact McNemar test: only the discordant tasks (passed under one condition, failed under
the other) carry information, and under the null each is equally likely to go either way, so the number
won by one side is Binomial(discordant, 0.5). The difference in pass rate gets Newcombe's (1998) method 10
interval for paired proportions: the two Wilson intervals combined, corrected for the correlation of the
pairs; it stays inside [-1, 1] and behaves at small n where the Wald interval does not.

A run compares the target against several conditions, so its p-values are a family: `compare_conditions`
adjusts them with Holm's (1979) step-down procedure, which keeps the family-wise error rate at `ALPHA`
under any dependence between the comparisons (they share the target's outcomes) and never rejects less
than Bonferroni does.

What a run could have seen: `mcnemar_power` is the power of that exact test for a true paired difference
`delta` at a discordance rate `p_discordant` (the share of tasks on which the two conditions disagree),
computed exactly (Miettinen 1968's unconditional power: the discordant count is Binomial(n, p_discordant)
and, given it, the target's wins are Binomial(d, (p_discordant + delta) / (2 p_discordant)); the power is
the rejection probability of the exact test summed over both). Connor's (1987) normal approximation is
there too. `minimum_detectable_difference` inverts it in delta, `required_sample_size` in n.

References: Wilson (1927) JASA 22:209; McNemar (1947) Psychometrika 12:153; Miettinen (1968) Biometrics
24:339; Holm (1979) Scand. J. Statist. 6:65; Connor (1987) Biometrics 43:207; Newcombe (1998) Stat. Med.
17:2635.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import binom, binomtest, norm

ALPHA = 0.05
POWER = 0.8
CI_METHOD = "newcombe-10"  # Newcombe (1998), paired proportions, method 10 (score, no continuity correction)
MULTIPLE_TESTING = "holm"  # Holm (1979) step-down over the comparisons of one run
DISCORDANCE_FLOOR = 0.05  # the discordance rate the MDD assumes at least: an observed 0 would promise too much
POWER_METHODS = ("exact", "connor")
_TAIL = 1e-12  # discordant counts less likely than this (each tail) are left out of the exact power sum


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


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given.

    With the m p-values sorted ascending, p(1) <= ... <= p(m), the adjusted value of the i-th is
    max over j <= i of min(1, (m - j + 1) * p(j)); rejecting where the adjusted value is <= alpha is Holm's
    procedure at family-wise level alpha. The same numbers as statsmodels' `multipletests(p, method="holm")`
    (a test checks they agree), which took 48 ms a call against 2 us here for four p-values: the A/A simulations
    call it hundreds of thousands of times. Never smaller than the unadjusted p-value.
    """
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda k: p_values[k])):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        adjusted[i] = running
    return adjusted


def _rate(count: int, base: int) -> dict[str, Any]:
    low, high = wilson_interval(count, base)
    return {"rate": count / base if base else 0.0, "ci95": [low, high]}


def harm_rate(target: Sequence[bool], raw: Sequence[bool]) -> dict[str, Any]:
    """How often the target fails a task that `raw` passes (outcomes aligned by task).

    Returns `count` (such tasks), `n` (all tasks), `rate` = count / n with its Wilson `ci95`, `base` (tasks raw
    passes), `conditional_rate` = count / base (0.0 when base is 0) with its Wilson `conditional_ci95`
    ([0, 1] when base is 0), and `ci_method`. Raises ValueError when the sequences differ in length.
    """
    table = _table(raw, target)
    count, base = table["only_a"], table["both"] + table["only_a"]
    return _switch(count, len(target), base)


def help_rate(target: Sequence[bool], raw: Sequence[bool]) -> dict[str, Any]:
    """How often the target passes a task that `raw` fails: `harm_rate` mirrored (`base` is the tasks raw fails)."""
    table = _table(raw, target)
    count, base = table["only_b"], table["only_b"] + table["neither"]
    return _switch(count, len(target), base)


def _switch(count: int, n: int, base: int) -> dict[str, Any]:
    overall, conditional = _rate(count, n), _rate(count, base)
    return {"count": count, "n": n, "rate": overall["rate"], "ci95": overall["ci95"], "base": base,
            "conditional_rate": conditional["rate"], "conditional_ci95": conditional["ci95"], "ci_method": "wilson"}


def _check_design(n: int, p_discordant: float, delta: float, alpha: float) -> None:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0 < p_discordant <= 1:
        raise ValueError(f"p_discordant must be in (0, 1], got {p_discordant}")
    if abs(delta) > p_discordant + 1e-12:
        raise ValueError(f"a paired difference ({delta}) cannot exceed the discordance rate ({p_discordant})")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _lower_critical(d: np.ndarray, alpha: float) -> np.ndarray:
    """Per discordant count d, the largest k whose exact two-sided p-value 2 P(X <= k), X ~ Bin(d, 1/2), is
    <= alpha (-1 where none is): the exact McNemar test rejects at x <= k or x >= d - k."""
    k = binom.ppf(alpha / 2, d, 0.5)  # the smallest k with P(X <= k) >= alpha / 2
    return np.where(binom.cdf(k, d, 0.5) <= alpha / 2 * (1 + 1e-9), k, k - 1)


def _exact_power(n: int, p_discordant: float, delta: float, alpha: float) -> float:
    low = max(int(binom.ppf(_TAIL, n, p_discordant)), 1)
    high = min(int(binom.isf(_TAIL, n, p_discordant)) + 1, n)
    d = np.arange(low, high + 1)
    if d.size == 0:
        return 0.0
    k = _lower_critical(d, alpha)
    win = (p_discordant + delta) / (2 * p_discordant)  # P(the discordant task goes the target's way)
    reject = binom.cdf(k, d, win) + binom.sf(d - k - 1, d, win)
    return float(min(np.sum(binom.pmf(d, n, p_discordant) * reject), 1.0))


def _connor_power(n: int, p_discordant: float, delta: float, alpha: float) -> float:
    z = norm.ppf(1 - alpha / 2)
    spread = p_discordant - delta**2
    if spread <= 0:  # p_discordant = |delta| = 1: every task goes the same way
        return 1.0 if n > 0 else 0.0
    return float(norm.cdf((abs(delta) * math.sqrt(n) - z * math.sqrt(p_discordant)) / math.sqrt(spread)))


def mcnemar_power(n: int, p_discordant: float, delta: float, alpha: float = ALPHA, method: str = "exact") -> float:
    """The probability that the two-sided exact McNemar test at level `alpha` rejects, on n paired tasks, when
    the conditions truly disagree on a share `p_discordant` of tasks and differ in pass rate by `delta`
    (= P(only the target passes) - P(only the other passes); |delta| <= p_discordant).

    method "exact": sum over the discordant count d ~ Bin(n, p_discordant) of the exact test's rejection
    probability given d, the target's wins being Bin(d, (p_discordant + delta) / (2 p_discordant)) (Miettinen
    1968; counts with probability below 1e-12 in either tail are left out). Rejection in either direction
    counts, as the test is two-sided. method "connor": Connor's (1987) normal approximation
    Phi((|delta| sqrt(n) - z_{1-alpha/2} sqrt(p_discordant)) / sqrt(p_discordant - delta^2)).
    Raises ValueError for an impossible design or an unknown method.
    """
    _check_design(n, p_discordant, delta, alpha)
    if method == "exact":
        return _exact_power(n, p_discordant, delta, alpha)
    if method == "connor":
        return _connor_power(n, p_discordant, delta, alpha)
    raise ValueError(f"unknown power method {method!r}; known: {', '.join(POWER_METHODS)}")


def minimum_detectable_difference(n: int, p_discordant: float, alpha: float = ALPHA, power: float = POWER, *,
                                  family_size: int = 1, method: str = "exact") -> float | None:
    """The smallest paired difference in pass rate (absolute, in (0, p_discordant]) that a run of n tasks detects
    with probability `power`, at discordance rate `p_discordant` and level alpha / family_size (Bonferroni's
    level, the one the smallest p-value of a Holm family must meet, so it holds whatever the other comparisons
    show). None when not even delta = p_discordant (every discordant task going one way) reaches `power`.
    Found by bisection (power rises with |delta|) to within 1e-5.
    """
    level = alpha / family_size
    _check_design(n, p_discordant, 0.0, level)
    if n == 0 or mcnemar_power(n, p_discordant, p_discordant, level, method) < power:
        return None
    low, high = 0.0, p_discordant
    while high - low > 1e-5:
        mid = (low + high) / 2
        if mcnemar_power(n, p_discordant, mid, level, method) >= power:
            high = mid
        else:
            low = mid
    return high


def required_sample_size(delta: float, p_discordant: float, alpha: float = ALPHA, power: float = POWER, *,
                         family_size: int = 1, method: str = "exact") -> int:
    """The number of paired tasks needed to detect a difference `delta` in pass rate with probability `power`
    at discordance rate `p_discordant` and level alpha / family_size (see `minimum_detectable_difference`).

    "connor": Connor's (1987) closed form n = ((z_{1-a/2} sqrt(p_d) + z_{power} sqrt(p_d - delta^2)) / delta)^2,
    rounded up. "exact": the smallest n whose exact power reaches `power`, found by doubling from the
    approximation and bisecting (the exact power mixes the test's saw-tooth over the binomial discordant count,
    so it rises with n in practice; the answer is an n that reaches `power` where n - 1 does not).
    """
    level = alpha / family_size
    if delta == 0:
        raise ValueError("delta must be non-zero")
    _check_design(1, p_discordant, delta, level)
    z_alpha, z_power = norm.ppf(1 - level / 2), norm.ppf(power)
    approx = math.ceil(((z_alpha * math.sqrt(p_discordant) + z_power * math.sqrt(max(p_discordant - delta**2, 0.0)))
                        / abs(delta)) ** 2)
    if method == "connor":
        return max(approx, 1)
    if method != "exact":
        raise ValueError(f"unknown power method {method!r}; known: {', '.join(POWER_METHODS)}")
    low, high = 0, max(approx, 2)
    while mcnemar_power(high, p_discordant, delta, level) < power:
        low, high = high, high * 2
        if high > 10**8:
            raise ValueError("no sample size up to 1e8 reaches the requested power")
    while high - low > 1:
        mid = (low + high) // 2
        if mcnemar_power(mid, p_discordant, delta, level) >= power:
            high = mid
        else:
            low = mid
    return high


def _direction(difference: float) -> str:
    return "better" if difference > 0 else "worse" if difference < 0 else "level"


def compare_conditions(outcomes: Mapping[str, Sequence[bool]], target: str,
                       against: Sequence[str]) -> dict[str, dict[str, Any]]:
    """McNemar of `target` against each condition in `against` (outcomes aligned by task), Holm-corrected.

    The family is the comparisons of the target against every other condition named in `against` in this one
    run (the target itself and repeats left out); its size is `family_size`. Each entry is
    mcnemar(outcomes[other], outcomes[target]) (so a positive `difference` means the target passes more; `n` is
    the run's number of tasks, `p_value` the unadjusted exact p) plus:

    - `p_holm`: Holm's adjusted p-value over the family; `significant`: p_holm <= ALPHA (family-wise error
      <= ALPHA); `significant_uncorrected`: p_value < ALPHA; `family_size`, `multiple_testing` ("holm");
    - `direction`: "better" / "worse" / "level" by the sign of `difference`;
    - `discordance`: the share of tasks the two conditions disagree on;
    - `mdd`: the minimum detectable difference (80% power, level ALPHA / family_size, exact power) at
      `mdd_discordance` = max(discordance, DISCORDANCE_FLOOR); None when no difference is detectable; with
      `mdd_alpha` and `mdd_power`;
    - `harm`: `harm_rate(target, other)`, `help`: `help_rate(target, other)`.
    """
    family = [other for other in dict.fromkeys(against) if other != target]
    results = {other: mcnemar(outcomes[other], outcomes[target]) for other in family}
    adjusted = holm([result["p_value"] for result in results.values()])
    size = len(family)
    for (other, result), p_holm in zip(results.items(), adjusted, strict=True):
        n = result["n"]
        discordance = (result["only_a"] + result["only_b"]) / n if n else 0.0
        assumed = max(discordance, DISCORDANCE_FLOOR)
        result.update(
            p_holm=p_holm, significant=p_holm <= ALPHA, significant_uncorrected=result["p_value"] < ALPHA,
            family_size=size, multiple_testing=MULTIPLE_TESTING, direction=_direction(result["difference"]),
            discordance=discordance, mdd=minimum_detectable_difference(n, assumed, ALPHA, POWER, family_size=size),
            mdd_discordance=assumed, mdd_alpha=ALPHA / size, mdd_power=POWER,
            harm=harm_rate(outcomes[target], outcomes[other]), help=help_rate(outcomes[target], outcomes[other]),
        )
    return results


def pass_rates(outcomes: Mapping[str, Sequence[bool]]) -> dict[str, dict[str, Any]]:
    """Per condition: passed, n, rate (0.0 when n == 0) and the Wilson 95% interval."""
    rates: dict[str, dict[str, Any]] = {}
    for name, values in outcomes.items():
        passed, n = sum(bool(v) for v in values), len(values)
        low, high = wilson_interval(passed, n)
        rates[name] = {"passed": passed, "n": n, "rate": passed / n if n else 0.0, "ci95": [low, high]}
    return rates
