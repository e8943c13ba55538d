"""A/B experiments between context strategies: sticky assignment of a user (or session) to an arm by hashing,
and the experiment's standing from the outcomes recorded so far, by the always-valid mSPRT (`sequential.py`), so
it may be read after every outcome. The arms' weights stay frozen while it runs (the strategies are loaded once
when the service starts)."""

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

    def status(self, outcomes: Iterable[tuple[str, bool]]) -> dict[str, Any]:
        """The mSPRT of treatment against control over the outcomes (arm, passed) in the order they came."""
        test = SequentialTest(self.alpha, self.tau, self.min_per_arm)
        result = test.result()
        for arm, passed in outcomes:
            if arm in (self.control, self.treatment):
                result = test.add("a" if arm == self.control else "b", passed)
        winner = {"a": self.control, "b": self.treatment}.get(result.winner or "")
        return {"experiment": self.name, "control": self.control, "treatment": self.treatment,
                **result.to_dict(), "winner": winner}
