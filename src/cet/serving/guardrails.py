"""Guardrails for an arm in production: limits that, once breached, take the arm out of service (the experiment
routes every user to the control) whatever its pass rate says.

    compile_failure_rate   share of reported outcomes whose code did not compile
    security_rate          share of reported outcomes with at least one security finding
    p95_latency_ms         95th percentile of the time to serve a context

Each is judged on the arm's last `window` requests and only once `min_samples` values are there (a few early
failures do not stop an arm: `breached` needs the evidence).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Limits:
    compile_failure_rate: float = 0.2
    security_rate: float = 0.05
    p95_latency_ms: float = 30_000.0
    min_samples: int = 20
    window: int = 500


def evaluate(signals: dict[str, list[Any]], limits: Limits = Limits()) -> dict[str, dict[str, Any]]:
    """Each guardrail's value, limit, sample count and whether it is breached (signals: `arm_signals`)."""
    compiled, findings, latency = signals["compiled"], signals["security_findings"], signals["latency_ms"]
    values = {
        "compile_failure_rate": (1 - float(np.mean(compiled)) if compiled else None, len(compiled),
                                 limits.compile_failure_rate),
        "security_rate": (float(np.mean([f > 0 for f in findings])) if findings else None, len(findings),
                          limits.security_rate),
        "p95_latency_ms": (float(np.percentile(latency, 95)) if latency else None, len(latency),
                           limits.p95_latency_ms),
    }
    return {name: {"value": value, "n": n, "limit": limit,
                   "breached": bool(value is not None and n >= limits.min_samples and value > limit)}
            for name, (value, n, limit) in values.items()}
