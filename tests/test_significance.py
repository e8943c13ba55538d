from __future__ import annotations

import functools
import math
import random

import numpy as np
import pytest

from cet.evaluation.significance import (
    ALPHA,
    DISCORDANCE_FLOOR,
    compare_conditions,
    harm_rate,
    help_rate,
    holm,
    mcnemar,
    mcnemar_power,
    minimum_detectable_difference,
    paired_difference_ci,
    pass_rates,
    required_sample_size,
    wilson_interval,
)


def _wilson_closed_form(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_wilson_interval_matches_closed_form():
    low, high = wilson_interval(8, 10)
    assert (low, high) == pytest.approx(_wilson_closed_form(8, 10), abs=1e-9)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 5)[0] == pytest.approx(0.0, abs=1e-12)


def test_mcnemar_known_table():
    # only_a = 1, only_b = 9: p = 2 * P(X <= 1 | n = 10, 0.5) = 2 * 11 / 1024
    a = [True] + [False] * 9 + [True, True, False]
    b = [False] + [True] * 9 + [True, True, False]
    result = mcnemar(a, b)
    assert (result["both"], result["only_a"], result["only_b"], result["neither"]) == (2, 1, 9, 1)
    assert result["n"] == 13
    assert result["p_value"] == pytest.approx(0.021484375)
    assert result["difference"] == pytest.approx(8 / 13)
    low, high = result["ci95"]
    assert -1.0 <= low < result["difference"] < high <= 1.0
    assert low > 0  # significant in the same direction as the exact test
    assert result["ci_method"] == "newcombe-10"


def test_mcnemar_symmetry_and_no_discordant_pairs():
    a, b = [True, False, True], [True, False, True]
    result = mcnemar(a, b)
    assert result["p_value"] == 1.0
    assert result["difference"] == 0.0
    low, high = result["ci95"]
    assert low < 0 < high
    forward, backward = mcnemar([True, False, False], [True, True, True]), mcnemar([True, True, True],
                                                                                    [True, False, False])
    assert forward["difference"] == pytest.approx(-backward["difference"])
    assert forward["ci95"] == pytest.approx([-backward["ci95"][1], -backward["ci95"][0]])
    assert forward["p_value"] == pytest.approx(backward["p_value"]) == pytest.approx(0.5)


def test_mcnemar_length_mismatch_raises():
    with pytest.raises(ValueError):
        mcnemar([True, False], [True])


def test_paired_difference_ci_regression_values():
    # Fagerland et al.'s example tables (Bentur 2009, Cavo 2012) through the same formula as the
    # `contingencytables` R package's Newcombe square-and-add interval.
    assert paired_difference_ci(1, 1, 7, 12) == pytest.approx((-0.5069, -0.0256), abs=1e-4)
    assert paired_difference_ci(59, 6, 16, 80) == pytest.approx((-0.1186, -0.0046), abs=1e-4)
    assert paired_difference_ci(0, 0, 0, 0) == (-1.0, 1.0)


def test_compare_conditions_direction_and_significance():
    outcomes = {
        "cet": [True] * 12 + [False] * 3,
        "raw": [False] * 12 + [False] * 3,
        "same": [True] * 12 + [False] * 3,
        "better": [True] * 15,
    }
    result = compare_conditions(outcomes, "cet", ["raw", "same", "better", "cet"])
    assert set(result) == {"raw", "same", "better"}
    assert result["raw"]["direction"] == "better" and result["raw"]["significant"]
    assert result["raw"]["difference"] == pytest.approx(12 / 15)
    assert result["same"]["direction"] == "level" and not result["same"]["significant"]
    assert result["better"]["direction"] == "worse" and not result["better"]["significant"]  # 3 discordant
    raw = result["raw"]
    assert raw["family_size"] == 3 and raw["multiple_testing"] == "holm" and raw["n"] == 15
    assert raw["p_value"] == pytest.approx(2 * 0.5**12)
    assert raw["p_holm"] == pytest.approx(3 * 2 * 0.5**12)  # the smallest of three: times 3
    assert raw["discordance"] == pytest.approx(12 / 15) and raw["mdd_discordance"] == pytest.approx(12 / 15)
    assert raw["mdd_alpha"] == pytest.approx(ALPHA / 3) and raw["mdd_power"] == 0.8
    assert 0 < raw["mdd"] <= 12 / 15
    assert raw["harm"]["count"] == 0 and raw["help"]["count"] == 12 and raw["help"]["base"] == 15
    same = result["same"]
    assert same["discordance"] == 0.0 and same["mdd_discordance"] == DISCORDANCE_FLOOR
    assert same["mdd"] is None  # 15 tasks at 5% discordance: under one discordant task expected


def test_compare_conditions_holm_changes_the_verdict():
    # 7 of 7 discordant tasks one way: p = 2 / 128 = 0.0156 alone, 0.047 after Holm over 3, but with two
    # p = 1 comparisons beside it the adjusted value stays 3 * 0.0156; over 4 it is 0.0625: not significant.
    target = [True] * 7 + [False] * 13
    outcomes = {"cet": target, "raw": [False] * 20, "a": target, "b": target, "c": target}
    three = compare_conditions(outcomes, "cet", ["raw", "a", "b"])
    assert three["raw"]["p_holm"] == pytest.approx(3 / 64) and three["raw"]["significant"]
    four = compare_conditions(outcomes, "cet", ["raw", "a", "b", "c", "raw"])  # a repeat is not a comparison
    assert four["raw"]["family_size"] == 4
    assert four["raw"]["p_holm"] == pytest.approx(4 / 64)
    assert four["raw"]["significant_uncorrected"] and not four["raw"]["significant"]


def test_holm_textbook_values_and_edges():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4 * 0.005, 3 * 0.01, 2 * 0.03, max(0.06, 0.04)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([]) == []
    assert holm([0.2]) == [0.2]
    assert holm([0.6, 0.9]) == [1.0, 1.0]


def test_holm_never_makes_a_p_value_smaller_and_keeps_the_order():
    rng = random.Random(0)
    for _ in range(500):
        p = [rng.random() ** 3 for _ in range(rng.randint(1, 8))]
        adjusted = holm(p)
        assert all(a >= raw and a <= 1.0 for a, raw in zip(adjusted, p, strict=True))
        order = sorted(range(len(p)), key=lambda i: p[i])
        assert [adjusted[i] for i in order] == sorted(adjusted)
        assert min(adjusted) == pytest.approx(min(1.0, len(p) * min(p)))


def test_holm_gives_the_step_down_values_worked_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0]) and holm([]) == []


def test_holm_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = random.Random(1)
    for _ in range(200):
        p = [rng.random() ** 2 for _ in range(rng.randint(1, 6))]
        assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]), abs=1e-12)


@functools.cache
def _exact_p(only_a: int, only_b: int) -> float:
    """The real `mcnemar` p-value of a table (it depends on the discordant cells only), cached for simulations."""
    return mcnemar([True] * only_a + [False] * only_b, [False] * only_a + [True] * only_b)["p_value"]


def _discordant_cells(first: np.ndarray, second: np.ndarray) -> tuple[int, int]:
    return int(np.sum(first & ~second)), int(np.sum(second & ~first))


def test_holm_keeps_the_family_wise_error_under_alpha_in_simulated_a_a_runs():
    # A/A: six conditions (the target and five others) pass task i with the same task-specific probability,
    # so every comparison's null is true and the outcomes are correlated through the tasks.
    rng = np.random.default_rng(2024)
    runs, any_holm, any_raw = 2000, 0, 0
    for _ in range(runs):
        difficulty = rng.beta(0.7, 0.7, size=80)
        target, *others = rng.random((6, 80)) < difficulty
        p = [_exact_p(*_discordant_cells(other, target)) for other in others]
        any_holm += min(holm(p)) <= ALPHA
        any_raw += min(p) < ALPHA
    assert any_holm / runs <= ALPHA
    assert any_raw / runs > any_holm / runs  # five uncorrected tests do make more false claims


def _simulated_rejection_rate(n: int, p_discordant: float, delta: float, alpha: float, samples: int,
                              seed: int) -> float:
    """Paired tables drawn cell by cell (only the other passes, only the target passes, both, neither) and
    run through the real exact McNemar test."""
    cells = [(p_discordant - delta) / 2, (p_discordant + delta) / 2, (1 - p_discordant) / 2, (1 - p_discordant) / 2]
    tables = np.random.default_rng(seed).multinomial(n, cells, size=samples)
    return sum(_exact_p(int(t[0]), int(t[1])) <= alpha for t in tables) / samples


@pytest.mark.parametrize(("n", "p_discordant", "delta", "alpha"), [
    (100, 0.25, 0.10, 0.05),
    (150, 0.20, 0.08, 0.01),
    (40, 0.30, 0.20, 0.05),
])
def test_exact_power_matches_simulated_rejection_rate(n: int, p_discordant: float, delta: float, alpha: float):
    power = mcnemar_power(n, p_discordant, delta, alpha)
    simulated = _simulated_rejection_rate(n, p_discordant, delta, alpha, 2000, seed=n)
    assert abs(power - simulated) < 0.03  # 2,000 samples: standard error <= 0.011
    assert 0.2 < power < 0.95  # a scenario where the check has teeth


def test_power_under_the_null_is_at_most_alpha_and_rises_with_n_and_delta():
    assert mcnemar_power(200, 0.2, 0.0, 0.05) <= 0.05
    by_n = [mcnemar_power(n, 0.2, 0.08, 0.05) for n in (50, 100, 200, 400)]
    assert by_n == sorted(by_n) and by_n[-1] > 0.8
    by_delta = [mcnemar_power(100, 0.2, d, 0.05) for d in (0.0, 0.05, 0.1, 0.15, 0.2)]
    assert by_delta == sorted(by_delta)
    assert mcnemar_power(100, 0.2, -0.1, 0.05) == pytest.approx(mcnemar_power(100, 0.2, 0.1, 0.05))
    assert mcnemar_power(0, 0.2, 0.1) == 0.0


def test_connor_approximation_is_the_closed_form_and_near_the_exact_power():
    n, pd, delta, z = 200, 0.2, 0.08, 1.959963984540054
    zeta = (delta * math.sqrt(n) - z * math.sqrt(pd)) / math.sqrt(pd - delta**2)
    expected = 0.5 * (1 + math.erf(zeta / math.sqrt(2)))
    assert mcnemar_power(n, pd, delta, 0.05, method="connor") == pytest.approx(expected)
    assert mcnemar_power(n, pd, delta, 0.05, method="connor") == pytest.approx(mcnemar_power(n, pd, delta), abs=0.06)


@pytest.mark.parametrize("bad", [
    dict(n=10, p_discordant=0.1, delta=0.2), dict(n=10, p_discordant=0.0, delta=0.0),
    dict(n=-1, p_discordant=0.1, delta=0.0), dict(n=10, p_discordant=0.1, delta=0.0, alpha=0.0),
    dict(n=10, p_discordant=0.1, delta=0.0, method="wald"),
])
def test_power_rejects_impossible_designs(bad: dict):
    with pytest.raises(ValueError):
        mcnemar_power(**bad)


def test_minimum_detectable_difference_is_where_power_reaches_the_target():
    mdd = minimum_detectable_difference(200, 0.2)
    assert mdd is not None and 0 < mdd < 0.2
    assert mcnemar_power(200, 0.2, mdd) >= 0.8 > mcnemar_power(200, 0.2, mdd - 1e-3)
    corrected = minimum_detectable_difference(200, 0.2, family_size=5)
    assert corrected is not None and corrected > mdd  # a stricter level needs a bigger difference
    assert minimum_detectable_difference(400, 0.2) < mdd  # more tasks, finer
    assert minimum_detectable_difference(10, 0.1) is None  # one discordant task expected: nothing detectable
    assert minimum_detectable_difference(0, 0.2) is None


def test_required_sample_size_reaches_the_power_and_one_less_does_not():
    for delta, pd in ((0.05, 0.15), (0.10, 0.25)):
        n = required_sample_size(delta, pd, family_size=5)
        assert mcnemar_power(n, pd, delta, ALPHA / 5) >= 0.8 > mcnemar_power(n - 1, pd, delta, ALPHA / 5)
        connor = required_sample_size(delta, pd, family_size=5, method="connor")
        assert 0.85 * n < connor <= n  # the exact test is a little conservative
    z_a, z_b = 1.959963984540054, 0.8416212335729143
    assert required_sample_size(0.1, 0.2, method="connor") == math.ceil(
        ((z_a * math.sqrt(0.2) + z_b * math.sqrt(0.2 - 0.01)) / 0.1) ** 2)
    with pytest.raises(ValueError):
        required_sample_size(0.0, 0.2)


def test_harm_and_help_rates():
    target = [True, False, False, True, True, False, True, False]
    raw = [True, True, True, False, True, False, False, False]
    harm = harm_rate(target, raw)  # raw passes 4 (tasks 0, 1, 2, 4); the target fails 2 of them
    assert (harm["count"], harm["n"], harm["base"]) == (2, 8, 4)
    assert harm["rate"] == pytest.approx(2 / 8) and harm["conditional_rate"] == pytest.approx(2 / 4)
    assert harm["ci95"] == pytest.approx(list(_wilson_closed_form(2, 8)))
    assert harm["conditional_ci95"] == pytest.approx(list(_wilson_closed_form(2, 4)))
    helped = help_rate(target, raw)  # raw fails 4 (tasks 3, 5, 6, 7); the target passes 2 of them
    assert (helped["count"], helped["n"], helped["base"]) == (2, 8, 4)
    assert help_rate(raw, target)["count"] == harm["count"]  # mirrored
    never = harm_rate([True, True], [False, False])
    assert never["base"] == 0 and never["conditional_rate"] == 0.0 and never["conditional_ci95"] == [0.0, 1.0]
    with pytest.raises(ValueError):
        harm_rate([True], [True, False])


def test_pass_rates():
    rates = pass_rates({"a": [True, True, False, False], "empty": []})
    assert rates["a"]["passed"] == 2 and rates["a"]["n"] == 4 and rates["a"]["rate"] == 0.5
    assert rates["a"]["ci95"] == pytest.approx(list(_wilson_closed_form(2, 4)))
    assert rates["empty"] == {"passed": 0, "n": 0, "rate": 0.0, "ci95": [0.0, 1.0]}
