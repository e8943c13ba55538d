"""Drift in production (Phase 4): has the traffic moved away from what the CET was trained and evaluated on, and
has the pass rate dropped? Either is a reason to retrain.

    population stability index (PSI) of an input feature between a reference window and a recent one: the sum over
    bins of (recent - reference) * ln(recent / reference), bins from the reference's quantiles; by the usual rule
    of thumb < 0.1 no shift, 0.1-0.25 a moderate one, > 0.25 a major one (`PSI_ALERT`)
    one-sided CUSUM on the pass rate (Page 1954): S_t = max(0, S_{t-1} + (target - x_t) - k), an alarm when S_t > h;
    it accumulates small, persistent drops that a window's mean would hide

The features are what a request's task shows without a model (its length in characters, whether it carries code,
the language that code is in: `task_features`, `task_language`) and, when the service has an embedder, its topic:
the cluster of its embedding among k-means clusters of the reference window (`cluster_shift`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
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


LANGUAGE_MARKS = (  # (language, what a task in it shows), first match wins; "none" when it shows no code
    ("python", re.compile(r"```py|\bdef \w+\(|^\s*import \w+|\bself\b", re.M)),
    ("javascript", re.compile(r"```(js|javascript|ts|typescript)|\bfunction \w*\(|\bconst \w+ =|=> ", re.M)),
    ("go", re.compile(r"```go|\bfunc \w+\(|\bpackage main\b")),
    ("rust", re.compile(r"```rust|\bfn \w+\(|\blet mut\b")),
    ("java", re.compile(r"```java|\bpublic (static |final )*(class|void|int)\b")),
    ("c/c++", re.compile(r"```(c|cpp|c\+\+)\b|#include\b|\bstd::")),
)


def task_language(task: str) -> str:
    return next((name for name, mark in LANGUAGE_MARKS if mark.search(task)), "none")


def task_features(tasks: Sequence[str]) -> dict[str, list[float]]:
    """Per task: its length in characters and whether it carries code (a fence or an indented block)."""
    return {"length": [float(len(t)) for t in tasks],
            "has_code": [float("```" in t or "\n    " in t) for t in tasks]}


def psi_categorical(reference: Sequence[str], recent: Sequence[str]) -> float:
    """PSI over categories (a language, a cluster): the share of each in the two windows, an empty one counted as
    half an observation."""
    if not reference or not recent:
        raise ValueError("both windows need observations")
    categories = sorted(set(reference) | set(recent))
    p = np.array([max(list(reference).count(c), 0.5) for c in categories]) / len(reference)
    q = np.array([max(list(recent).count(c), 0.5) for c in categories]) / len(recent)
    return float(np.sum((q - p) * np.log(q / p)))


def cluster_shift(reference: np.ndarray, recent: np.ndarray, k: int = 8, seed: int = 0) -> float:
    """PSI of the topics: k-means (k-means++, scipy) on the reference window's task embeddings, each recent task
    given its nearest reference centroid; the PSI of the two windows' cluster shares."""
    from scipy.cluster.vq import kmeans2, vq

    ref = np.asarray(reference, dtype=np.float64)
    k = max(2, min(k, len(ref) // 25))  # about 25 tasks a cluster: the noise PSI of k shares is ~(k-1)(1/n+1/m)
    centroids, labels = kmeans2(ref, k, minit="++", seed=seed)
    recent_labels, _ = vq(np.asarray(recent, dtype=np.float64), centroids)
    return psi_categorical([str(x) for x in labels], [str(x) for x in recent_labels])


def drift_report(reference_tasks: Sequence[str], recent_tasks: Sequence[str], outcomes: Sequence[bool],
                 target_pass_rate: float, psi_alert: float = PSI_ALERT,
                 embed: Callable[[list[str]], np.ndarray] | None = None) -> dict[str, Any]:
    """PSI of each feature between the two windows (length, code or not, the language the task shows, and with
    `embed` the topic clusters of the task embeddings), CUSUM of the outcomes against the target, and whether
    either calls for retraining."""
    ref, now = task_features(reference_tasks), task_features(recent_tasks)
    shifts = {name: psi(ref[name], now[name]) for name in ref} if reference_tasks and recent_tasks else {}
    if reference_tasks and recent_tasks:
        shifts["language"] = psi_categorical([task_language(t) for t in reference_tasks],
                                             [task_language(t) for t in recent_tasks])
        if embed is not None:
            shifts["topic_clusters"] = cluster_shift(embed(list(reference_tasks)), embed(list(recent_tasks)))
    drop = cusum(outcomes, target_pass_rate)
    shifted = sorted(name for name, value in shifts.items() if value > psi_alert)
    return {"psi": shifts, "psi_alert": psi_alert, "shifted": shifted, "cusum": drop,
            "retrain": bool(shifted) or drop["alarm"],
            "why": "; ".join(([f"input drift in {', '.join(shifted)}"] if shifted else [])
                             + ([f"pass rate below {target_pass_rate}"] if drop["alarm"] else []))}


def embed_with(retriever: Any | None) -> Callable[[list[str]], np.ndarray] | None:
    """The topic signal's embedder: the knowledge base's (loaded on first use), or None without a retriever."""
    return (lambda texts: retriever.embedder.embed(texts)) if retriever is not None else None


def traffic_drift(store: Any, window: int, embed: Callable[[list[str]], np.ndarray] | None = None
                  ) -> dict[str, Any] | None:
    """`drift_report` of a feedback store's traffic: its first `window` requests against its last, the CUSUM of
    the recent verdicts against the first window's pass rate; None until there are two windows of requests."""
    if store.counts()["requests"] < 2 * window:
        return None
    first, last = store.window(window, newest=False), store.window(window, newest=True)
    verdicts = [p for _, p in first if p is not None]
    target = sum(verdicts) / len(verdicts) if verdicts else 0.0
    return {"window": window, "reference_pass_rate": target, **drift_report(
        [t for t, _ in first], [t for t, _ in last], [p for _, p in last if p is not None], target, embed=embed)}

