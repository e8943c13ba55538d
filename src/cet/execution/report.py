"""The report of an execution batch: summary, exit reasons and pass rate by source, with a plot."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from cet.evaluation.plots import grouped_bars
from cet.runs import RunDir


def write_batch_report(run_dir: RunDir, summary: dict[str, Any], results_path: Path) -> Path:
    """summary.json, metrics and report.md (with plots/exit_reasons.png) from the whole results file."""
    reasons: Counter[str] = Counter()
    by_source: dict[str, list[bool]] = defaultdict(list)
    with results_path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                result = json.loads(line)
            except ValueError:
                continue
            reasons[result["exit_reason"]] += 1
            by_source[result["task_id"].split("/", 1)[0]].append(bool(result["passed"]))
    run_dir.write_json("summary.json", summary)
    rates = {source: sum(v) / len(v) for source, v in sorted(by_source.items())}
    run_dir.log_metrics("exec-batch", {"exit_reasons": dict(reasons), "pass_rate_by_source": rates})
    plot = grouped_bars({reason: {"runs": float(n)} for reason, n in reasons.most_common()},
                        "Exit reasons (whole results file)", run_dir.plots / "exit_reasons.png", ylabel="runs")
    lines = ["# Execution batch", "", f"Results: `{results_path}` ({sum(reasons.values())} runs in the file; "
             f"{summary['ran']} made now, {summary['resumed']} resumed from earlier).", "",
             f"Isolation: **{summary['isolation']}**.", "", "| source | runs | pass rate |", "|---|---|---|"]
    lines += [f"| {source} | {len(by_source[source])} | {rate:.3f} |" for source, rate in rates.items()]
    lines += ["", "| exit reason | runs |", "|---|---|"]
    lines += [f"| {reason} | {n} |" for reason, n in reasons.most_common()]
    lines += ["", f"![exit reasons](plots/{plot.name})", ""]
    return run_dir.write_report("\n".join(lines))
