"""A/B experiments between context strategies: sticky assignment of a user (or session) to an arm by hashing,
and the experiment's standing from the outcomes recorded so far, by the always-valid mSPRT (`sequential.py`), so
it may be read after every outcome. The arms' weights stay frozen while it runs (the strategies are loaded once
when the service starts).

The mSPRT counts outcomes as independent; a user who sends many requests is one unit of assignment, and their
outcomes are correlated. `clustered_difference` is the check against that: the difference in pass rate with a
cluster-robust (per-user) interval, so a decision carried by a few heavy users shows as an interval that still
holds zero.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cet.serving.sequential import ALPHA, MIN_PER_ARM, TAU, SequentialTest


@dataclass(frozen=True)
class Experiment:
    name: str
    control: str  # arm names: the strategies the service holds
    treatment: str
    alpha: float = ALPHA
    tau: float = TAU
    min_per_arm: int = MIN_PER_ARM

    def __post_init__(self) -> None:
        if self.control == self.treatment:
            raise ValueError("an experiment needs two different arms")

    def assign(self, unit: str) -> str:
        """The arm of a user or session: the same every time (a hash of the experiment's name and the unit), half
        the units each way."""
        digest = hashlib.sha256(f"{self.name}\0{unit}".encode()).digest()
        return self.treatment if digest[0] & 1 else self.control

    def status(self, outcomes: Iterable[tuple[str, bool, str]]) -> dict[str, Any]:
        """The mSPRT of treatment against control over the outcomes (arm, passed, unit) in the order they came,
        with the per-user check (`clustered`)."""
        test = SequentialTest(self.alpha, self.tau, self.min_per_arm)
        result = test.result()
        kept = [(arm, passed, unit) for arm, passed, unit in outcomes if arm in (self.control, self.treatment)]
        for arm, passed, _ in kept:
            result = test.add("a" if arm == self.control else "b", passed)
        winner = {"a": self.control, "b": self.treatment}.get(result.winner or "")
        clustered = clustered_difference([(arm == self.treatment, passed, unit) for arm, passed, unit in kept],
                                         self.alpha)
        return {"experiment": self.name, "control": self.control, "treatment": self.treatment,
                **result.to_dict(), "winner": winner, "clustered": clustered}


MIN_USERS = 10  # per arm, before the per-user interval is given: a cluster-robust variance from fewer is unsafe


def clustered_difference(rows: list[tuple[bool, bool, str]], alpha: float = ALPHA) -> dict[str, Any] | None:
    """The treatment's pass rate minus the control's over rows (is_treatment, passed, unit), with a
    cluster-robust interval and p-value (least squares of passed on the arm, CR1 sandwich by unit, t with G - 1
    degrees of freedom: statsmodels); None until each arm has outcomes from MIN_USERS users. A fixed-horizon
    check, read when promotion is decided: it can only make a decision stricter, never start one."""
    import numpy as np
    import statsmodels.api as sm

    units_by_arm = ({u for t, _, u in rows if not t}, {u for t, _, u in rows if t})
    if min(len(units) for units in units_by_arm) < MIN_USERS:
        return None
    y = np.array([float(p) for _, p, _ in rows])
    x = sm.add_constant(np.array([float(t) for t, _, _ in rows]), has_constant="add")
    groups = np.unique([u for _, _, u in rows], return_inverse=True)[1]
    fit = sm.OLS(y, x).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    low, high = (float(v) for v in fit.conf_int(alpha)[1])
    p_value = float(fit.pvalues[1])
    return {"difference": float(fit.params[1]), "ci": [low, high], "level": 1 - alpha,
            "p_value": p_value if np.isfinite(p_value) else 1.0, "users_control": len(units_by_arm[0]),
            "users_treatment": len(units_by_arm[1]), "outcomes": len(rows)}
