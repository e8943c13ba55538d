"""The mSPRT of Phase 4's A/B tests: always-valid under continuous peeking (A/A), powerful on a real effect, and
the incremental test deciding where the vectorised simulation does."""

from __future__ import annotations

import numpy as np
import pytest

from cet.serving.sequential import SequentialTest, simulate


def test_peeking_after_every_outcome_keeps_the_false_positive_rate() -> None:
    aa = simulate(0.35, 0.35, per_arm=2000, experiments=400, seed=3)
    assert aa["msprt_rejected"] <= 0.06  # alpha 0.05; 400 experiments: a standard error of ~0.01
    assert aa["peeking_z_rejected"] >= 0.2  # what peeking does to a fixed-horizon test: the problem is real
    assert aa["fixed_horizon_z_rejected"] <= 0.08  # read once, the z-test is fine


def test_a_five_point_gain_is_found_and_never_the_wrong_way() -> None:
    ab = simulate(0.35, 0.40, per_arm=4000, experiments=200, seed=4)
    assert ab["msprt_rejected"] >= 0.8 and ab["msprt_wrong_sign"] == 0.0
    assert ab["median_stop_per_arm"] < 4000  # it stops early when the evidence is there


def test_the_incremental_test_decides_where_the_simulation_does() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.random(3000) < 0.30, rng.random(3000) < 0.40
    test = SequentialTest()
    decided_at = None
    p_values = []
    bounds = []
    for i in range(3000):
        test.add("a", bool(a[i]))
        result = test.add("b", bool(b[i]))
        p_values.append(result.p_value)
        bounds.append((result.lower, result.upper))
        if result.decided and decided_at is None:
            decided_at = i + 1
            assert result.winner == "b" and result.lower > 0  # decided: the interval has left zero behind
    assert all(lo2 >= lo1 and up2 <= up1 for (lo1, up1), (lo2, up2) in zip(bounds, bounds[1:], strict=False))
    assert result.winner == "b"  # fixed at the crossing, whatever the difference does later
    assert decided_at is not None and all(x >= y for x, y in zip(p_values, p_values[1:], strict=False))
    # the same outcomes through the vectorised path stop at the same step
    from cet.serving.sequential import ALPHA, TAU, _variance, log_likelihood_ratio

    n = np.arange(1, 3001, dtype=float)
    s_a, s_b = np.cumsum(a), np.cumsum(b)
    llr = log_likelihood_ratio(s_b / n - s_a / n, _variance(s_a, n, s_b, n), TAU)
    crossed = (llr >= np.log(1 / ALPHA)) & (n >= test.min_per_arm)
    assert int(crossed.argmax()) + 1 == decided_at


def test_nothing_is_decided_before_the_burn_in_and_bad_settings_are_refused() -> None:
    test = SequentialTest(min_per_arm=50)
    for _ in range(49):
        test.add("a", False)
        result = test.add("b", True)
    assert not result.decided and result.p_value == 1.0 and result.upper == 1.0
    with pytest.raises(ValueError, match="unknown arm"):
        test.add("c", True)
    with pytest.raises(ValueError):
        SequentialTest(alpha=1.5)


def test_the_simulate_command_writes_a_run_and_refuses_bad_rates(run_cet) -> None:  # type: ignore[no-untyped-def]
    import json

    done = run_cet("experiment", "simulate", "--experiments", "50", "--per-arm", "300", "--seed", "5", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["experiments"] == 50 and 0 <= result["msprt_rejected"] <= 1
    assert result["rate_a"] == result["rate_b"] == 0.35  # no --rate-b: an A/A test
    from pathlib import Path

    assert Path(result["run_dir"], "summary.json").is_file() and Path(result["report"]).is_file()
    bad = run_cet("experiment", "simulate", "--rate-b", "1.5")
    assert bad.returncode != 0 and "between 0 and 1" in bad.stderr and "Traceback" not in bad.stderr


def test_the_interval_is_the_set_the_test_would_not_reject() -> None:
    from cet.serving.sequential import ALPHA, TAU, half_width, log_likelihood_ratio

    for variance in (1e-4, 5e-4, 2e-3, 1e-2):
        edge = half_width(variance)  # a difference exactly this far from zero sits on the test's boundary
        llr = float(log_likelihood_ratio(np.array(edge), np.array(variance), TAU))
        assert abs(llr - np.log(1 / ALPHA)) < 1e-9
