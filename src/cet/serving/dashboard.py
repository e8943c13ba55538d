"""The service's dashboard (GET /dashboard): one HTML page, rendered on the server from what the service already
answers as JSON (arms, experiment, guardrails, drift, the registry's champion history), with the cumulative pass
rate of each arm drawn as inline SVG. No script runs in the page and nothing is fetched from outside; every value
shown is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
WIDTH, HEIGHT, PAD = 640, 240, 36


def arm_rows(outcomes: Sequence[tuple[str, bool, str]], requests: dict[str, int]) -> list[dict[str, Any]]:
    """Per arm: requests served, outcomes with a verdict, passes, the pass rate and its Wilson 95% interval."""
    from statsmodels.stats.proportion import proportion_confint

    rows = []
    for arm in sorted(set(requests) | {a for a, _, _ in outcomes}):
        verdicts = [p for a, p, _ in outcomes if a == arm]
        passed = sum(verdicts)
        low, high = proportion_confint(passed, len(verdicts), alpha=0.05, method="wilson") if verdicts else (0, 1)
        rows.append({"arm": arm, "requests": requests.get(arm, 0), "outcomes": len(verdicts), "passed": passed,
                     "rate": passed / len(verdicts) if verdicts else None, "ci95": [float(low), float(high)]})
    return rows


def _curves(outcomes: Sequence[tuple[str, bool, str]]) -> dict[str, list[float]]:
    """Each arm's pass rate after each of its outcomes."""
    counts: dict[str, list[int]] = {}
    paths: dict[str, list[float]] = {}
    for arm, passed, _ in outcomes:
        seen = counts.setdefault(arm, [0, 0])
        seen[0], seen[1] = seen[0] + 1, seen[1] + int(passed)
        paths.setdefault(arm, []).append(seen[1] / seen[0])
    return paths


def curve_svg(outcomes: Sequence[tuple[str, bool, str]]) -> str:
    """Each arm's cumulative pass rate against its number of outcomes (0 to 1 on the vertical axis)."""
    curves = _curves(outcomes)
    longest = max((len(c) for c in curves.values()), default=0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" '
             'aria-label="cumulative pass rate per arm">',
             f'<rect x="{PAD}" y="8" width="{WIDTH - PAD - 8}" height="{HEIGHT - PAD - 8}" fill="#fafafa" '
             'stroke="#999"/>']
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = 8 + (1 - tick) * (HEIGHT - PAD - 8)
        parts.append(f'<text x="4" y="{y + 4:.1f}" font-size="10">{tick:.2f}</text>')
    parts.append(f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="10">outcomes per arm: {longest}</text>')
    if longest < 1:
        parts.append(f'<text x="{WIDTH / 2 - 60}" y="{HEIGHT / 2}" font-size="12">no outcomes yet</text>')
    for i, (arm, path) in enumerate(sorted(curves.items())):
        colour = COLOURS[i % len(COLOURS)]
        points = " ".join(f"{PAD + (j + 1) / longest * (WIDTH - PAD - 8):.1f},"
                          f"{8 + (1 - rate) * (HEIGHT - PAD - 8):.1f}" for j, rate in enumerate(path))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        parts.append(f'<text x="{WIDTH - 150}" y="{24 + 14 * i}" font-size="11" fill="{colour}">'
                     f'{html.escape(arm)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return html.escape(str(value))


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>" if rows else "<p>none</p>"


def render(state: dict[str, Any]) -> str:
    """The page for the service's state: `arms` (arm_rows), `outcomes`, `experiment` (GET /v1/experiment or
    None), `guardrails` (GET /v1/guardrails), `drift` (GET /v1/drift or a reason it is not there yet),
    `registry` (its history and champion, or None)."""
    sections = [f"<h2>Arms</h2>{_table(state['arms'], ['arm', 'requests', 'outcomes', 'passed', 'rate', 'ci95'])}",
                f"<h2>Cumulative pass rate</h2>{curve_svg(state['outcomes'])}"]
    experiment = state.get("experiment")
    if experiment:
        clustered = experiment.get("clustered") or {}
        rows = [{"statistic": "control / treatment", "value": f"{experiment['control']} / {experiment['treatment']}"},
                {"statistic": "outcomes (control, treatment)", "value": f"{experiment['n_a']}, {experiment['n_b']}"},
                {"statistic": "difference (treatment - control)", "value": experiment["difference"]},
                {"statistic": "always-valid 95% interval", "value": [experiment["lower"], experiment["upper"]]},
                {"statistic": "always-valid p-value", "value": experiment["p_value"]},
                {"statistic": "per-user interval (clustered)", "value": clustered.get("ci")},
                {"statistic": "decision", "value": (f"{experiment['winner']} wins" if experiment.get("decided")
                                                     else "not decided")},
                {"statistic": "stopped", "value": experiment.get("stopped")}]
        sections.append(f"<h2>Experiment {html.escape(experiment['experiment'])}</h2>"
                        f"{_table(rows, ['statistic', 'value'])}")
    guard_rows = [{"arm": arm, "guardrail": name, "value": g["value"], "n": g["n"], "limit": g["limit"],
                   "breached": "BREACHED" if g["breached"] else "ok"}
                  for arm, table in state["guardrails"]["arms"].items() for name, g in table.items()]
    sections.append(f"<h2>Guardrails</h2>{_table(guard_rows, ['arm', 'guardrail', 'value', 'n', 'limit', 'breached'])}")
    drift = state.get("drift") or {}
    if "psi" in drift:
        drift_rows = [{"signal": f"PSI of {name}", "value": value, "alert": value > drift["psi_alert"]}
                      for name, value in drift["psi"].items()]
        drift_rows += [{"signal": "CUSUM of the pass rate", "value": drift["cusum"]["statistic"],
                        "alert": drift["cusum"]["alarm"]},
                       {"signal": "retrain", "value": drift["why"] or None, "alert": drift["retrain"]}]
        sections.append(f"<h2>Drift</h2>{_table(drift_rows, ['signal', 'value', 'alert'])}")
    else:
        sections.append(f"<h2>Drift</h2><p>{html.escape(str(drift.get('error', 'not measured')))}</p>")
    registry = state.get("registry")
    if registry is not None:
        history = [{**h, "at": _when(h.get("at"))} for h in registry.get("history", [])]
        sections.append(f"<h2>Champion history (champion: {html.escape(str(registry.get('champion')))})</h2>"
                        f"{_table(history, ['at', 'action', 'from', 'to', 'reason', 'p_value'])}")
    style = ("body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0}"
             "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left}th{background:#eee}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>cet dashboard</title><style>{style}</style>"
            f"</head><body><h1>cet context service</h1>{''.join(sections)}</body></html>")


def _when(at: Any) -> str:
    import datetime

    if not isinstance(at, int | float):
        return "?"
    return datetime.datetime.fromtimestamp(at, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
