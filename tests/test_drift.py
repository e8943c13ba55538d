"""Drift signals: PSI near zero for the same population and large for a shifted one; CUSUM quiet on a steady pass
rate and alarming on a persistent drop; the report asks for retraining on either."""

from __future__ import annotations

import numpy as np
import pytest

from cet.serving.drift import cusum, drift_report, psi


def test_psi_separates_a_shift_from_sampling_noise() -> None:
    rng = np.random.default_rng(0)
    same = psi(rng.lognormal(6, 0.5, 2000), rng.lognormal(6, 0.5, 2000))
    moved = psi(rng.lognormal(6, 0.5, 2000), rng.lognormal(6.6, 0.5, 2000))  # tasks ~1.8x longer
    assert same < 0.05 and moved > 0.25
    with pytest.raises(ValueError):
        psi([], [1.0])


def test_cusum_stays_quiet_on_a_steady_rate_and_finds_a_drop() -> None:
    rng = np.random.default_rng(1)
    steady = rng.random(2000) < 0.35
    dropped = np.concatenate([rng.random(500) < 0.35, rng.random(1500) < 0.20])
    quiet, alarm = cusum(steady, target=0.35, k=0.05, h=8.0), cusum(dropped, target=0.35, k=0.05, h=8.0)
    assert not quiet["alarm"] and alarm["alarm"] and alarm["alarm_at"] > 500  # after the drop, not before


def test_the_report_asks_for_retraining_on_either_signal() -> None:
    rng = np.random.default_rng(2)
    short = ["Write f(x)." + " word" * int(n) for n in rng.integers(5, 30, 300)]
    long = ["Write f(x)." + " word" * int(n) for n in rng.integers(60, 120, 300)]
    steady = list(rng.random(300) < 0.35)
    calm = drift_report(short, short[::-1], steady, 0.35)
    assert not calm["retrain"] and calm["psi"]["length"] < 0.1
    moved = drift_report(short, long, steady, 0.35)
    assert moved["retrain"] and moved["shifted"] == ["length"] and "input drift" in moved["why"]
