"""Drift in production (Phase 4): has the traffic moved away from what the CET was trained and evaluated on, and
has the pass rate dropped? Either is a reason to retrain.

    population stability index (PSI) of an input feature between a reference window and a recent one: the sum over
    bins of (recent - reference) * ln(recent / reference), bins from the reference's quantiles; by the usual rule
    of thumb < 0.1 no shift, 0.1-0.25 a moderate one, > 0.25 a major one (`PSI_ALERT`)
    one-sided CUSUM on the pass rate (Page 1954): S_t = max(0, S_{t-1} + (target - x_t) - k), an alarm when S_t > h;
    it accumulates small, persistent drops that a window's mean would hide

The features are what a request's task shows without a model: its length in characters and whether it carries
code or an error (`task_features`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

PSI_ALERT = 0.25
BINS = 10


def psi(reference: Sequence[float], recent: Sequence[float], bins: int = BINS) -> float:
    """The population stability index of `recent` against `reference` (bins at the reference's quantiles, plus one
    above its maximum; an empty bin counts as half an observation so the logarithm stays finite)."""
    ref, now = np.asarray(reference, dtype=float), np.asarray(recent, dtype=float)
    if ref.size == 0 or now.size == 0:
        raise ValueError("both windows need observations")
    # the reference's interior quantiles and its maximum: a value above anything seen before has a bin of its own
    edges = np.unique(np.append(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]), ref.max()))
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=edges.size + 1)
    now_counts = np.bincount(np.searchsorted(edges, now, side="left"), minlength=edges.size + 1)
    p = np.maximum(ref_counts, 0.5) / ref.size
    q = np.maximum(now_counts, 0.5) / now.size
    return float(np.sum((q - p) * np.log(q / p)))


def cusum(outcomes: Sequence[bool], target: float, k: float = 0.05, h: float = 5.0) -> dict[str, Any]:
    """One-sided CUSUM for a drop of the pass rate below `target` (k: the slack, about half the drop worth
    catching; h: the alarm threshold). Returns the statistic's path end, its maximum and the first alarm's index."""
    s, top, alarm = 0.0, 0.0, None
    for i, passed in enumerate(outcomes):
        s = max(0.0, s + (target - float(passed)) - k)
        top = max(top, s)
        if alarm is None and s > h:
            alarm = i
    return {"statistic": s, "max": top, "alarm_at": alarm, "alarm": alarm is not None, "target": target, "k": k,
            "h": h, "n": len(outcomes)}


def task_features(tasks: Sequence[str]) -> dict[str, list[float]]:
    """Per task: its length in characters and whether it carries code (a fence or an indented block)."""
    return {"length": [float(len(t)) for t in tasks],
            "has_code": [float("```" in t or "\n    " in t) for t in tasks]}


def drift_report(reference_tasks: Sequence[str], recent_tasks: Sequence[str], outcomes: Sequence[bool],
                 target_pass_rate: float, psi_alert: float = PSI_ALERT) -> dict[str, Any]:
    """PSI of each feature between the two windows, CUSUM of the outcomes against the target, and whether either
    calls for retraining."""
    ref, now = task_features(reference_tasks), task_features(recent_tasks)
    shifts = {name: psi(ref[name], now[name]) for name in ref} if reference_tasks and recent_tasks else {}
    drop = cusum(outcomes, target_pass_rate)
    shifted = sorted(name for name, value in shifts.items() if value > psi_alert)
    return {"psi": shifts, "psi_alert": psi_alert, "shifted": shifted, "cusum": drop,
            "retrain": bool(shifted) or drop["alarm"],
            "why": "; ".join(([f"input drift in {', '.join(shifted)}"] if shifted else [])
                             + ([f"pass rate below {target_pass_rate}"] if drop["alarm"] else []))}
