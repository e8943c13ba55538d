"""Always-valid inference for A/B tests of context strategies (Phase 4): the mixture sequential probability ratio
test (mSPRT) on the difference of two pass rates, so an experiment may be looked at after every outcome without
inflating its false-positive rate.

Johari, Koomen, Pekelis and Walsh, "Always Valid Inference: Continuous Monitoring of A/B Tests" (Operations
Research, 2022), section 4: with a normal mixture N(0, tau^2) over the difference theta = p_B - p_A and the
estimate's variance V_n, the likelihood ratio of the mixture against theta = 0 is

    Lambda_n = sqrt(V_n / (V_n + tau^2)) * exp(tau^2 * theta_hat^2 / (2 * V_n * (V_n + tau^2)))

a nonnegative martingale under the null (in the normal approximation), so by Ville's inequality
P(exists n: Lambda_n >= 1 / alpha) <= alpha. The always-valid p-value is p_n = min(p_{n-1}, 1 / Lambda_n) and the
confidence sequence is the set of theta the same test would not reject: theta_hat +- half_width_n with
half_width^2 = 2 V (V + tau^2) / tau^2 * (log(1 / alpha) + log((V + tau^2) / V) / 2).

V_n is plugged in from the pass rates seen so far, with half a pass and half a failure added per arm (so a run of
early passes cannot make it zero), and nothing is decided before `min_per_arm` outcomes in each arm: the normal
approximation is poor before. `simulate` measures what that costs: the false-positive rate of A/A experiments
under continuous peeking (tests/test_sequential.py runs it; docs/benchmarks.md has the 1,000-experiment figures)
and the power on a given effect. No packaged library offers the two-sample mSPRT (confseq ships no wheel here),
so these few lines follow the paper's formulas.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

ALPHA = 0.05
TAU = 0.05  # the mixture's scale: effects of a few points of pass rate are the ones that matter here
MIN_PER_ARM = 100


@dataclass(frozen=True)
class SequentialResult:
    """Where an experiment stands after the outcomes seen so far."""

    n_a: int
    n_b: int
    rate_a: float
    rate_b: float
    difference: float  # rate_b - rate_a
    lower: float  # the always-valid confidence sequence for the difference, at this step
    upper: float
    p_value: float  # always valid: it may be read after every outcome
    decided: bool  # p_value <= alpha after min_per_arm outcomes in each arm
    winner: str | None  # "a" or "b" once decided

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _variance(passed_a: np.ndarray, n_a: np.ndarray, passed_b: np.ndarray, n_b: np.ndarray) -> np.ndarray:
    rate_a, rate_b = (passed_a + 0.5) / (n_a + 1.0), (passed_b + 0.5) / (n_b + 1.0)
    return rate_a * (1 - rate_a) / np.maximum(n_a, 1) + rate_b * (1 - rate_b) / np.maximum(n_b, 1)


def log_likelihood_ratio(difference: np.ndarray, variance: np.ndarray, tau: float = TAU) -> np.ndarray:
    """log Lambda_n of the normal-mixture SPRT (vectorised)."""
    total = variance + tau**2
    return 0.5 * np.log(variance / total) + tau**2 * difference**2 / (2 * variance * total)


def half_width(variance: float, alpha: float = ALPHA, tau: float = TAU) -> float:
    """The confidence sequence's half-width for the difference at this variance."""
    total = variance + tau**2
    return math.sqrt(2 * variance * total / tau**2 * (math.log(1 / alpha) + 0.5 * math.log(total / variance)))


class SequentialTest:
    """An mSPRT of arm B's pass rate against arm A's, fed one outcome at a time (or in counts)."""

    def __init__(self, alpha: float = ALPHA, tau: float = TAU, min_per_arm: int = MIN_PER_ARM) -> None:
        if not 0 < alpha < 1 or tau <= 0 or min_per_arm < 1:
            raise ValueError("alpha must lie in (0, 1), tau be positive and min_per_arm at least 1")
        self.alpha, self.tau, self.min_per_arm = alpha, tau, min_per_arm
        self.n = {"a": 0, "b": 0}
        self.passed = {"a": 0, "b": 0}
        self.p_value = 1.0
        self.lower, self.upper = -1.0, 1.0  # the confidence sequence, intersected over time (it only narrows)
        self.winner: str | None = None  # fixed at the first crossing

    def add(self, arm: str, passed: bool) -> SequentialResult:
        if arm not in self.n:
            raise ValueError(f"unknown arm {arm!r}: 'a' or 'b'")
        self.n[arm] += 1
        self.passed[arm] += int(bool(passed))
        return self.result()

    def result(self) -> SequentialResult:
        n_a, n_b, s_a, s_b = self.n["a"], self.n["b"], self.passed["a"], self.passed["b"]
        rate_a, rate_b = (s_a / n_a if n_a else 0.0), (s_b / n_b if n_b else 0.0)
        difference = rate_b - rate_a
        ready = min(n_a, n_b) >= self.min_per_arm
        variance = float(_variance(np.array(s_a), np.array(n_a), np.array(s_b), np.array(n_b)))
        if ready:
            llr = float(log_likelihood_ratio(np.array(difference), np.array(variance), self.tau))
            self.p_value = min(self.p_value, math.exp(-llr) if llr > 0 else 1.0)
            width = half_width(variance, self.alpha, self.tau)
            self.lower, self.upper = max(self.lower, difference - width), min(self.upper, difference + width)
        decided = ready and self.p_value <= self.alpha
        if decided and self.winner is None:
            self.winner = "b" if difference > 0 else "a"
        return SequentialResult(n_a, n_b, rate_a, rate_b, difference, self.lower, self.upper, self.p_value,
                                decided, self.winner)


def simulate(rate_a: float, rate_b: float, per_arm: int, experiments: int, seed: int = 0, alpha: float = ALPHA,
             tau: float = TAU, min_per_arm: int = MIN_PER_ARM) -> dict[str, Any]:
    """`experiments` experiments of `per_arm` outcomes an arm (the arms alternate, as sticky hashing of many users
    gives), each looked at after every pair of outcomes: the share the mSPRT stopped with a decision (under
    rate_a == rate_b: its false-positive rate; otherwise its power), when, and, for comparison, the share a
    fixed-horizon two-sided z-test rejects when it too is read after every pair (the peeking it is not made for)
    and when read once at the end."""
    rng = np.random.default_rng(seed)
    a = rng.random((experiments, per_arm)) < rate_a
    b = rng.random((experiments, per_arm)) < rate_b
    n = np.arange(1, per_arm + 1, dtype=float)
    s_a, s_b = np.cumsum(a, axis=1), np.cumsum(b, axis=1)
    difference = s_b / n - s_a / n
    variance = _variance(s_a, n, s_b, n)
    ready = n >= min_per_arm
    crossed = (log_likelihood_ratio(difference, variance, tau) >= math.log(1 / alpha)) & ready
    stopped = crossed.any(axis=1)
    first = np.where(stopped, crossed.argmax(axis=1) + 1, 0)
    z_crit = float(norm.ppf(1 - alpha / 2))
    pooled = (s_a + s_b) / (2 * n)
    se = np.sqrt(np.maximum(pooled * (1 - pooled) * 2 / n, 1e-12))
    z = np.abs(difference) / se
    peeking_z = ((z >= z_crit) & ready).any(axis=1)
    final_z = z[:, -1] >= z_crit
    wrong_sign = stopped & (np.sign(difference[np.arange(experiments), np.maximum(first - 1, 0)])
                            != np.sign(rate_b - rate_a)) if rate_a != rate_b else np.zeros(experiments, bool)
    return {"rate_a": rate_a, "rate_b": rate_b, "per_arm": per_arm, "experiments": experiments, "seed": seed,
            "alpha": alpha, "tau": tau, "min_per_arm": min_per_arm,
            "msprt_rejected": float(stopped.mean()), "msprt_wrong_sign": float(wrong_sign.mean()),
            "median_stop_per_arm": float(np.median(first[stopped])) if stopped.any() else None,
            "peeking_z_rejected": float(peeking_z.mean()), "fixed_horizon_z_rejected": float(final_z.mean())}
