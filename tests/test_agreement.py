"""Agreement statistics against published worked examples, plus abstentions and the degenerate cases."""

from __future__ import annotations

import math

import pytest

from cet.llm.agreement import (
    agreement_report,
    fleiss_kappa,
    fleiss_kappa_counts,
    item_agreement,
    krippendorff_alpha,
    pairwise_agreement,
    percent_agreement,
)

# Fleiss (1971) as worked on Wikipedia ("Fleiss' kappa", worked example): 10 subjects, 14 raters, 5 categories
FLEISS_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers, 12 units, missing values
N = None
KRIPPENDORFF_OBSERVERS = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
    [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
]
KRIPPENDORFF_UNITS = [[obs[u] for obs in KRIPPENDORFF_OBSERVERS] for u in range(12)]


def _votes_from_counts(table: list[list[int]]) -> list[list[int]]:
    return [[category for category, count in enumerate(row) for _ in range(count)] for row in table]


def test_fleiss_wikipedia_example_is_0_210() -> None:
    assert fleiss_kappa_counts(FLEISS_TABLE) == pytest.approx(0.2099, abs=5e-5)
    votes = _votes_from_counts(FLEISS_TABLE)
    assert fleiss_kappa(votes) == pytest.approx(0.2099, abs=5e-5)
    # the worked example's intermediate values: P-bar = 0.378, P_e = 0.213
    assert percent_agreement(votes) == pytest.approx(0.378, abs=5e-4)
    assert round(fleiss_kappa(votes), 3) == 0.210


def test_krippendorff_2011_example_with_missing_values() -> None:
    assert round(krippendorff_alpha(KRIPPENDORFF_UNITS, "nominal"), 3) == 0.743
    assert round(krippendorff_alpha(KRIPPENDORFF_UNITS, "interval"), 3) == 0.849


def test_krippendorff_2011_binary_two_observer_example() -> None:
    # section A of the same paper: two observers, ten units, binary data: alpha = 0.095
    a = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    b = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    assert round(krippendorff_alpha(list(zip(a, b, strict=True))), 3) == 0.095


def test_report_on_the_krippendorff_data() -> None:
    report = agreement_report(KRIPPENDORFF_UNITS)
    assert report["items"] == 12
    assert report["items_rated"] == 11  # unit 12 has a single value: not pairable
    assert report["ratings"] == 41 and report["missing"] == 7
    assert report["krippendorff_alpha"]["nominal"] == pytest.approx(0.7434, abs=1e-4)
    assert report["krippendorff_alpha"]["interval"] == pytest.approx(0.8491, abs=1e-4)
    assert report["pairwise"]["1|3"] == {"items": 10, "agreement": 0.9}
    assert -1 <= report["fleiss_kappa"] <= 1
    assert report["notes"] == []


def test_labels_can_be_strings_and_items_mappings() -> None:
    votes = {
        "q1": {"judge-a": "pass", "judge-b": "pass", "judge-c": "fail"},
        "q2": {"judge-a": "fail", "judge-b": "fail", "judge-c": None},  # an abstention
        "q3": {"judge-a": "pass", "judge-b": "pass"},  # judge-c absent: also missing
    }
    report = agreement_report(votes)
    assert report["raters"] == ["judge-a", "judge-b", "judge-c"]
    assert report["missing"] == 2 and report["ratings"] == 7
    assert report["percent_agreement"] == pytest.approx((1 / 3 + 1 + 1) / 3)
    assert "interval" not in report["krippendorff_alpha"]
    assert report["pairwise"]["judge-a|judge-b"] == {"items": 3, "agreement": 1.0}
    assert report["pairwise"]["judge-a|judge-c"] == {"items": 1, "agreement": 0.0}
    # generalised Fleiss by hand: P_i = 1/3, 1, 1; p(pass) = 4/7, p(fail) = 3/7 over the 7 ratings
    p_bar = (1 / 3 + 1 + 1) / 3
    p_e = (4 / 7) ** 2 + (3 / 7) ** 2
    assert report["fleiss_kappa"] == pytest.approx((p_bar - p_e) / (1 - p_e))


def test_items_with_fewer_than_two_ratings_are_excluded() -> None:
    base = [["pass", "pass", "fail"], ["fail", "fail", "fail"], ["pass", "pass", "pass"]]
    extra = base + [["fail", None, None], [None, None, None]]
    assert fleiss_kappa(extra) == pytest.approx(fleiss_kappa(base))
    assert percent_agreement(extra) == pytest.approx(percent_agreement(base))
    assert krippendorff_alpha(extra) == pytest.approx(krippendorff_alpha(base))
    assert agreement_report(extra)["items_rated"] == 3


def test_perfect_agreement_is_one() -> None:
    votes = [["pass"] * 4, ["fail"] * 4, ["pass"] * 4, ["fail", "fail", None, "fail"]]
    assert fleiss_kappa(votes) == pytest.approx(1.0)
    assert krippendorff_alpha(votes) == pytest.approx(1.0)
    assert percent_agreement(votes) == 1.0
    scores = [[5, 5, 5], [2, 2, 2], [4, 4, None]]
    assert krippendorff_alpha(scores, "interval") == pytest.approx(1.0)


def test_systematic_disagreement_is_below_zero() -> None:
    votes = [["pass", "fail"], ["fail", "pass"], ["pass", "fail"], ["fail", "pass"]]
    assert percent_agreement(votes) == 0.0
    assert fleiss_kappa(votes) < 0
    assert krippendorff_alpha(votes) < 0


def test_degenerate_cases_are_defined() -> None:
    empty = agreement_report([])
    assert empty["items"] == 0 and empty["percent_agreement"] is None and empty["fleiss_kappa"] is None
    assert empty["krippendorff_alpha"]["nominal"] is None and empty["notes"]
    single = agreement_report([["pass", None], [None, "fail"]])
    assert single["items_rated"] == 0 and single["fleiss_kappa"] is None
    assert single["krippendorff_alpha"]["nominal"] is None
    # one value throughout: observed agreement is perfect, chance agreement is 1 too: kappa and alpha undefined
    same = agreement_report([["pass", "pass"], ["pass", "pass", "pass"]])
    assert same["percent_agreement"] == 1.0
    assert same["fleiss_kappa"] is None and same["krippendorff_alpha"]["nominal"] is None
    assert "same value" in same["notes"][0]
    assert item_agreement(["pass"]) is None and item_agreement(["pass", None, "fail"]) == 0.0
    assert pairwise_agreement([["a", None], [None, "b"]]) == {"0|1": {"items": 0, "agreement": None}}
    assert not math.isnan(agreement_report([[1, 2], [2, 1]])["krippendorff_alpha"]["interval"])


def test_interval_needs_numbers() -> None:
    with pytest.raises(ValueError, match="numeric"):
        krippendorff_alpha([["pass", "fail"], ["fail", "fail"]], "interval")
    with pytest.raises(ValueError, match="level"):
        krippendorff_alpha([[1, 2], [2, 2]], "ordinal")  # type: ignore[arg-type]
