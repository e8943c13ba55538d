"""The experiment's per-user check: the difference in pass rate with a cluster-robust interval."""

from __future__ import annotations

import math
import random

import pytest

from cet.serving.experiment import MIN_USERS, Experiment, clustered_difference


def test_one_outcome_per_user_gives_the_two_sample_interval() -> None:
    rng = random.Random(3)
    rows = [(t, rng.random() < (0.5 if t else 0.3), f"u{i}") for i, t in enumerate([False] * 400 + [True] * 400)]
    got = clustered_difference(rows)
    a = [p for t, p, _ in rows if not t]
    b = [p for t, p, _ in rows if t]
    ra, rb = sum(a) / len(a), sum(b) / len(b)
    se = math.sqrt(ra * (1 - ra) / len(a) + rb * (1 - rb) / len(b))
    assert got["difference"] == pytest.approx(rb - ra)
    assert (got["ci"][1] - got["ci"][0]) / 2 == pytest.approx(1.96 * se, rel=0.03)  # t(799) ~ z
    assert got["p_value"] < 1e-6 and got["users_control"] == got["users_treatment"] == 400


def test_a_difference_carried_by_one_heavy_user_is_not_robust() -> None:
    rng = random.Random(5)
    rows = []
    for arm in (False, True):
        for user in range(20):
            rows += [(arm, rng.random() < 0.3, f"{arm}-{user}") for _ in range(5)]
    rows += [(True, True, "heavy")] * 150  # one treatment user who always passes
    naive_se = 0.5 / math.sqrt(100) + 0.5 / math.sqrt(250)
    got = clustered_difference(rows)
    assert got["difference"] > 3 * naive_se  # iid counting would call this a clear win
    assert got["ci"][0] < 0 < got["ci"][1] and got["p_value"] > 0.05  # per user, it is one lucky user


def test_too_few_users_say_nothing_yet() -> None:
    rows = [(arm, n % 2 == 0, f"{arm}{n}") for arm in (False, True) for n in range(MIN_USERS)]
    assert clustered_difference(rows) is not None and clustered_difference(rows[1:]) is None


def test_the_status_carries_both_analyses() -> None:
    experiment = Experiment("e", control="template", treatment="cet", min_per_arm=10)
    outcomes = [("template" if i % 2 else "cet", i % 3 == 0, f"user{i}") for i in range(60)] + [("none", True, "x")]
    status = experiment.status(outcomes)
    assert status["n_a"] == status["n_b"] == 30 and status["clustered"]["outcomes"] == 60
    assert status["clustered"]["difference"] == pytest.approx(status["difference"])
