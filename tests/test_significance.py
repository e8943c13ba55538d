from __future__ import annotations

import math

import pytest

from cet.evaluation.significance import (
    compare_conditions,
    mcnemar,
    paired_difference_ci,
    pass_rates,
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


def test_pass_rates():
    rates = pass_rates({"a": [True, True, False, False], "empty": []})
    assert rates["a"]["passed"] == 2 and rates["a"]["n"] == 4 and rates["a"]["rate"] == 0.5
    assert rates["a"]["ci95"] == pytest.approx(list(_wilson_closed_form(2, 4)))
    assert rates["empty"] == {"passed": 0, "n": 0, "rate": 0.0, "ci95": [0.0, 1.0]}
