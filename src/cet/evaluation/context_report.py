"""The context evaluation as markdown: pass rates with intervals, paired tests, intrinsic metrics, failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

INTRINSIC_ROWS = (("recall", "information preservation (recall of the task's facts)"),
                  ("preservation.signature", "  signature"), ("preservation.examples", "  examples"),
                  ("preservation.constraints", "  constraints"), ("preservation.knowledge", "  relevant chunks"),
                  ("noise_reduction", "noise reduction (injected chatter kept out)"),
                  ("recall_on_noisy", "recall on the noisy copy"),
                  ("structure_valid", "structure valid"), ("compression", "compression (tokens out / in)"),
                  ("grounding_citations", "grounding: cited chunks that were retrieved"),
                  ("grounding_apis", "grounding: APIs that exist"))


def _fmt(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render_context_eval(result: dict[str, Any]) -> list[str]:
    n = len(result["tasks"])
    lines = ["", "## Context quality on held-out tasks", "",
             f"{n} tasks never trained on (HumanEval is evaluation-only; the others are their sets' test split), "
             f"generator {', '.join(result['generator'])}, greedy, seed {result['seed']}; every condition gets the "
             "same tasks in one run.", "",
             "| condition | passed | pass rate | 95% CI (Wilson) |", "|---|---|---|---|"]
    for condition, rate in result["pass_rates"].items():
        lines.append(f"| {condition} | {rate['passed']}/{rate['n']} | {rate['rate']:.3f} | "
                     f"[{rate['ci95'][0]:.2f}, {rate['ci95'][1]:.2f}] |")
    for condition, why in result["skipped_conditions"].items():
        lines.append(f"| {condition} | not run: {why} | | |")
    if result["comparisons"]:
        lines += ["", "Paired comparison, cet_phase2 against each condition (exact McNemar; difference in pass "
                  "rate with Newcombe's 95% interval):", "",
                  "| against | cet_phase2 only | other only | difference | 95% CI | p | verdict |",
                  "|---|---|---|---|---|---|---|"]
        for other, c in result["comparisons"].items():
            verdict = f"{c['direction']}{' (significant)' if c['significant'] else ' (not significant)'}"
            lines.append(f"| {other} | {c['only_b']} | {c['only_a']} | {c['difference']:+.3f} | "
                         f"[{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}] | {c['p_value']:.3g} | {verdict} |")
    lines += ["", "By task source (passed / tasks):", "",
              "| source | " + " | ".join(result["pass_rates"]) + " |", "|---|" + "---|" * len(result["pass_rates"])]
    for source, per in result["by_source"].items():
        lines.append(f"| {source} | " + " | ".join(f"{v['passed']}/{v['n']}" for v in per.values()) + " |")
    if result["intrinsic"]:
        conditions = list(result["intrinsic"])
        lines += ["", "Intrinsic quality of the engineered contexts (means over tasks):", "",
                  "| metric | " + " | ".join(conditions) + " |", "|---|" + "---|" * len(conditions)]
        for key, label in INTRINSIC_ROWS:
            lines.append(f"| {label} | " + " | ".join(_fmt(result["intrinsic"][c].get(key, {}).get("mean"))
                                                    for c in conditions) + " |")
    lines += verdict_lines(result)
    for plot in result.get("plots", []):
        lines += ["", f"![{Path(plot).stem}](plots/{Path(plot).name})"]
    return lines


def verdict_lines(result: dict[str, Any]) -> list[str]:
    """The goal (cet_phase2 beats raw and naive RAG significantly, level with the template), said plainly."""
    comparisons = result["comparisons"]
    if not comparisons:
        return ["", "**The CET after Phase 2 was not evaluated** (no checkpoint)."]
    beats = [o for o in ("raw", "naive_rag") if o in comparisons and comparisons[o]["significant"]
             and comparisons[o]["direction"] == "better"]
    level = "rule_based" in comparisons and comparisons["rule_based"]["difference"] >= 0
    met = len(beats) == 2 and level
    lines = ["", f"**Goal {'met' if met else 'not met'}:** the CET after Phase 2 "
             f"{'beats' if len(beats) == 2 else 'does not significantly beat'} both the raw task and naive RAG"
             f"{'' if len(beats) == 2 else (' (beats: ' + ', '.join(beats) + ')' if beats else '')}, and is "
             f"{'at least level with' if level else 'behind'} the rule-based template."]
    analysis = result["failure_analysis"]
    if analysis["lost"] or analysis["won"]:
        lines += ["", f"Tasks the raw prompt passed and the CET's context failed: {len(analysis['lost'])}; "
                  f"the reverse: {len(analysis['won'])}."]
        for entry in analysis["lost"][:8]:
            issues = "; ".join(entry["parse_issues"]) or "none"
            lines.append(f"- {entry['task_id']}: {entry['cet_exit']} with the context (raw: {entry['raw_exit']}); "
                         f"context valid {entry['context_valid']}, {entry['context_chars']} chars, parse issues: "
                         f"{issues}")
    return lines
