"""The context evaluation as markdown: pass rates on hidden tests with intervals, Holm-corrected paired tests with
the minimum detectable difference, harm against raw, context tokens, failure classes, intrinsic metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cet.evaluation.context_eval import goal_status

INTRINSIC_ROWS = (("hidden_fact_recall.overall", "recall of the hidden tests' facts in the prompt"),
                  ("hidden_fact_recall.arguments", "  ... of their arguments"),
                  ("hidden_fact_recall.edge_values", "  ... of their edge values"),
                  ("context_recall.overall", "  ... in the context alone"),
                  ("structure_valid", "structure valid (a failed reply counts 0)"),
                  ("traceable", "every fact traceable to the input"),
                  ("grounding_citations", "cited chunks that were retrieved"),
                  ("compression", "compression (context tokens / input tokens)"),
                  ("noise_reduction", "noise kept out of a noisy copy (evaluation-only noise)"))


def _fmt(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render_context_eval(result: dict[str, Any]) -> list[str]:
    n = len(result["tasks"])
    source = f"tasks file `{result['tasks_file']}`" if result.get("tasks_file") else (
        "held-out tasks never trained on (HumanEval is evaluation-only; the others are their sets' test split)")
    lines = ["", "## Context quality on held-out tasks", "",
             f"{n} {source}; the first {result['visible_tests']} test cases of each are visible to every condition "
             f"and the verdict runs on the hidden rest; generator {', '.join(result['generator'])}, greedy, seed "
             f"{result['seed']}; the CET and the template read the same input cut to {result['input_tokens']} "
             f"tokens; {result['leak_checks']} prompts checked for leaks, none found.", ""]
    if result.get("skipped_tasks"):
        lines += [f"Tasks skipped (tests that cannot be split): {len(result['skipped_tasks'])}.", ""]
    lines += ["| condition | passed | pass rate | 95% CI (Wilson) | context tokens | harm vs raw | help vs raw |",
              "|---|---|---|---|---|---|---|"]
    for condition, rate in result["pass_rates"].items():
        harm = result["harm_vs_raw"].get(condition)
        tokens = _fmt(result["context_tokens"].get(condition), 0)
        lines.append(f"| {condition} | {rate['passed']}/{rate['n']} | {rate['rate']:.3f} | "
                     f"[{rate['ci95'][0]:.2f}, {rate['ci95'][1]:.2f}] | {tokens} | "
                     f"{_rate(harm, 'harm')} | {_rate(harm, 'help')} |")
    for condition, why in result["skipped_conditions"].items():
        lines.append(f"| {condition} | not run: {why} | | | | | |")
    if result["comparisons"]:
        target = result.get("target", "cet_phase2")
        lines += ["", f"Paired comparison, {target} against each condition (exact McNemar, Holm-corrected over the "
                  "family of these comparisons; difference in pass rate with Newcombe's 95% interval; MDD: the "
                  "smallest difference this run could detect with 80% power at its discordance rate):", "",
                  f"| against | {target} only | other only | difference | 95% CI | p | p (Holm) | MDD | verdict |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for other, c in result["comparisons"].items():
            verdict = f"{c['direction']}{' (significant)' if c['significant'] else ' (not significant)'}"
            lines.append(f"| {other} | {c['only_b']} | {c['only_a']} | {c['difference']:+.3f} | "
                         f"[{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}] | {c['p_value']:.3g} | "
                         f"{c.get('p_holm', c['p_value']):.3g} | {_fmt(c.get('mdd'))} | {verdict} |")
    lines += ["", "By task source (passed / tasks):", "",
              "| source | " + " | ".join(result["pass_rates"]) + " |", "|---|" + "---|" * len(result["pass_rates"])]
    for src, per in result["by_source"].items():
        lines.append(f"| {src} | " + " | ".join(f"{v['passed']}/{v['n']}" for v in per.values()) + " |")
    classes = sorted({k for counts in result["failure_classes"].values() for k in counts})
    lines += ["", "Outcome classes (tasks):", "", "| condition | " + " | ".join(classes) + " |",
              "|---|" + "---|" * len(classes)]
    for condition, counts in result["failure_classes"].items():
        lines.append(f"| {condition} | " + " | ".join(str(counts.get(k, 0)) for k in classes) + " |")
    if result["intrinsic"]:
        conditions = list(result["intrinsic"])
        lines += ["", "Intrinsic quality (means over tasks; facts are read from the hidden tests by their own "
                  "extractor, apart from the template's):", "",
                  "| metric | " + " | ".join(conditions) + " |", "|---|" + "---|" * len(conditions)]
        for key, label in INTRINSIC_ROWS:
            lines.append(f"| {label} | " + " | ".join(_fmt(result["intrinsic"][c].get(key, {}).get("mean"))
                                                    for c in conditions) + " |")
    gen = result.get("generation") or {}
    if gen:
        lines += ["", f"Generation: {gen['requests']} requests in {gen['seconds']} s ({gen['cached']} from the cache), "
                  f"{gen.get('generations_per_hour') or '–'} generations/hour over the {gen.get('generated', '?')} "
                  f"it made, {gen['n_parallel']} llama.cpp slots."]
    for condition, count in result.get("nothing_to_add", {}).items():
        lines += ["", f"{condition} said \"nothing to add\" on {count} of {n} tasks (its prompt there is the raw "
                  "task, byte for byte); its other tasks carry the difference from raw."]
    for condition, failures in result.get("cet_failures", {}).items():
        if failures:
            lines += ["", f"{condition}: {len(failures)} contexts failed (counted as the condition's failures):"]
            lines += [f"- {f['task_id']}: {f['error']}" for f in failures[:5]]
    lines += verdict_lines(result)
    for plot in result.get("plots", []):
        lines += ["", f"![{Path(plot).stem}](plots/{Path(plot).name})"]
    return lines


def _rate(harm: dict[str, Any] | None, key: str) -> str:
    if not harm or harm.get(key) is None:
        return "–"
    value = harm[key]
    if isinstance(value, dict):
        ci = value.get("ci95") or [None, None]
        return f"{value['rate']:.3f} [{_fmt(ci[0], 2)}, {_fmt(ci[1], 2)}]"
    return _fmt(value)


def verdict_lines(result: dict[str, Any]) -> list[str]:
    """The goal for the CET under test (see `goal_status`), each part shown, failed or not shown by this run's
    evidence."""
    if not result["comparisons"]:
        return ["", f"**The CET ({result.get('target', 'cet_phase2')}) was not evaluated** (no checkpoint)."]
    goal = result.get("goal") or goal_status(result)
    lines = ["", f"**Goal {goal['status']}:** " + "; ".join(f"{part}: {state}" for part, state in goal["parts"].items())
             + f" (CET under test: {goal.get('target', 'cet_phase2')})"
             + f". \"Level\" is non-inferiority (the difference's 95% interval above -{goal['margin']:.2f}); "
             "\"above\" and \"+ margin\" need a Holm-significant difference (reaching the margin); the harm goal "
             "needs the harm rate's interval under it; "
             "\"failed\": the interval lies on the wrong side. \"Not shown\": this run cannot tell (see the MDD "
             "column)."]
    if goal.get("note"):
        lines += ["", f"**Note:** {goal['note']}."]
    if goal.get("caveat"):
        lines += ["", f"**Caveat:** {goal['caveat']}."]
    ceiling = result.get("selection_ceiling")
    if ceiling:
        among = ", ".join(ceiling["among"])
        lines += ["", f"Selection ceiling: choosing per task, with hindsight, the best of {among} "
                  f"passes {ceiling['passed']}/{ceiling['n']} ({ceiling['rate']:.3f}; "
                  f"{ceiling['gain_over_raw']:+.3f} over raw). No context that only chooses among these can beat it."]
    analysis = result["failure_analysis"]
    if analysis["lost"] or analysis["won"]:
        lines += ["", f"Tasks the raw prompt passed and the CET's context failed: {len(analysis['lost'])} "
                  f"(by the CET's failure class: {analysis['lost_by_class']}); the reverse: {len(analysis['won'])}."]
        for entry in analysis["lost"][:8]:
            lines.append(f"- {entry['task_id']}: {entry['cet']} with the context (raw: {entry['raw']}); "
                         f"{entry['context_tokens']} context tokens"
                         + (f"; context error: {entry['context_error']}" if entry["context_error"] else ""))
    return lines
