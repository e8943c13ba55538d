"""Judge quality against ground truth: each judge alone and the panel, side by side, with agreement.

The labelled set is built here: for --n Exercism tasks (stable order by id), each --generators model writes
a solution from the task's statement; the sandbox runs the task's tests on it (the execution verifier,
whose verdict is ground truth). Each --judges model then scores every (task, candidate) on the jury's
rubric and votes pass/fail. Reported, all from this one run:

  - per judge: accuracy and balanced accuracy against the sandbox (an abstention counts as a wrong vote),
    abstention rate; the constant "always fail" / "always pass" baselines
  - the panel under three aggregations: majority (ties fail: the jury's default), mean correctness score
    >= 3, and a reliability-weighted vote whose weights (log-odds of each judge's accuracy) are fitted on
    the dev half of the items and scored on the other half
  - agreement: pairwise, Fleiss' kappa, Krippendorff's alpha (verdicts; scores)

Model calls go through the team's persistent response cache, so a re-run only re-runs the sandbox.

    .venv/bin/python bench/jury_quality.py [--n 20] [--generators qwen2.5-coder-0.5b-instruct smollm2-135m-instruct]
        [--judges qwen2.5-coder-0.5b-instruct smollm2-135m-instruct] [--json]

Always writes bench/results/jury_quality.json; ``--json`` also prints it instead of the table.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from typing import Any

from cet.config import load_config
from cet.execution.executor import Executor
from cet.execution.importers import import_tasks
from cet.execution.pool import WarmPool
from cet.llm.base import Message
from cet.llm.jury import ExecutionVerifier, Jury, JuryVerdict, panel_agreement
from cet.llm.team import Request, Team
from common import log, run_and_report

GENERATOR_SYSTEM = ("You are an expert Python programmer. Reply with the complete solution module in one "
                    "```python code block and nothing else.")


def solution_prompt(task) -> list[Message]:  # noqa: ANN001
    return [Message("system", GENERATOR_SYSTEM),
            Message("user", f"{task.statement}\n\nWrite the file `{task.solution_filename}`.")]


def is_dev(key: str) -> bool:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 2 == 0


def accuracy(votes: list[str | None], truth: list[str]) -> dict[str, Any]:
    right = [v == t for v, t in zip(votes, truth, strict=True)]
    by_class = {}
    for label in ("pass", "fail"):
        idx = [i for i, t in enumerate(truth) if t == label]
        by_class[label] = sum(right[i] for i in idx) / len(idx) if idx else None
    present = [b for b in by_class.values() if b is not None]
    return {"n": len(truth), "accuracy": sum(right) / len(truth) if truth else None,
            "balanced_accuracy": sum(present) / len(present) if present else None,
            "abstentions": sum(v is None for v in votes)}


def weighted_votes(items: list[JuryVerdict], weights: dict[str, float]) -> list[str | None]:
    out = []
    for item in items:
        total = sum(weights.get(v.judge, 0.0) * (1 if v.verdict == "pass" else -1)
                    for v in item.votes if not v.abstained)
        out.append("pass" if total > 0 else "fail")
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = load_config()
    tasks, _ = import_tasks("exercism", cfg.sources.exercism)
    tasks = sorted((t for t in tasks if t.test_names), key=lambda t: t.id)[: args.n]
    team = Team(cfg)
    log(f"{len(tasks)} tasks x {len(args.generators)} generators; judges {args.judges}")
    params = team.params(max_tokens=args.max_tokens, temperature=0.0)
    requests = [Request(solution_prompt(t), params, model=g) for t in tasks for g in args.generators]
    generated = team.map(None, requests, on_result=lambda r: log(f"  generated {r.request.model}: "
                                                                  f"{'ok' if r.ok else r.error_type}"))
    pairs = [(t, g, r) for (t, g), r in zip(((t, g) for t in tasks for g in args.generators), generated,
                                             strict=True)]
    items: list[tuple[str, JuryVerdict]] = []
    with WarmPool(cfg.exec) as pool:
        jury = Jury(team, judges=args.judges, verifier=ExecutionVerifier(Executor(cfg.exec, backend=pool)))
        for task, generator, result in pairs:
            if not result.ok:
                continue
            verdict = jury.evaluate(task.statement, result.text or "", task=task)
            sandbox = "abstained" if verdict.source != "verifier" else verdict.verdict
            log(f"  {task.id} by {generator}: sandbox {sandbox}; panel {verdict.panel_verdict}; votes "
                + ", ".join(f"{v.judge.split('-')[0]}={'-' if v.abstained else v.verdict}" for v in verdict.votes))
            items.append((f"{task.id}|{generator}", verdict))
    labelled = [(key, v) for key, v in items if v.source == "verifier"]
    truth = [v.verdict for _, v in labelled]
    judges: dict[str, Any] = {}
    for judge in args.judges:
        votes = [next((x.verdict for x in v.votes if x.judge == judge and not x.abstained), None) for _, v in labelled]
        judges[judge] = accuracy(votes, truth)
    dev = [(k, v) for k, v in labelled if is_dev(k)]
    test = [(k, v) for k, v in labelled if not is_dev(k)]
    weights = {}
    for judge in args.judges:
        votes = [next((x.verdict for x in v.votes if x.judge == judge and not x.abstained), None) for _, v in dev]
        acc = accuracy(votes, [v.verdict for _, v in dev])["accuracy"] if dev else 0.5
        acc = min(max(acc or 0.5, 0.05), 0.95)
        weights[judge] = round(math.log(acc / (1 - acc)), 4)
    panel = {
        "majority (ties fail)": accuracy([v.panel_verdict for _, v in labelled], truth),
        "mean correctness >= 3": accuracy([("pass" if (v.mean_scores.get("correctness") or 0) >= 3 else "fail")
                                           if v.mean_scores.get("correctness") is not None else None
                                           for _, v in labelled], truth),
        "weighted (fit on dev), on test half": accuracy(weighted_votes([v for _, v in test], weights),
                                                        [v.verdict for _, v in test]),
        "majority, on test half": accuracy([v.panel_verdict for _, v in test], [v.verdict for _, v in test]),
    }
    for judge in args.judges:
        votes = [next((x.verdict for x in v.votes if x.judge == judge and not x.abstained), None) for _, v in test]
        panel[f"{judge} alone, on test half"] = accuracy(votes, [v.verdict for _, v in test])
    baselines = {"always fail": accuracy(["fail"] * len(truth), truth),
                 "always pass": accuracy(["pass"] * len(truth), truth)}
    team.close()
    return {"tasks": len(tasks), "generators": args.generators, "judges": judges, "panel": panel,
            "baselines": baselines, "weights_fit_on_dev": weights, "items": len(labelled),
            "dev_items": len(dev), "test_items": len(test), "pass_rate": truth.count("pass") / len(truth)
            if truth else None, "agreement": panel_agreement([v for _, v in labelled]), "usage": team.usage(),
            "generated_ok": sum(r.ok for r in generated)}


def print_report(result: dict[str, Any]) -> None:
    print(f"Judge quality on {result['items']} (task, candidate) pairs from {result['tasks']} Exercism tasks; "
          f"sandbox pass rate {result['pass_rate']:.2f}\n")
    print(f"{'who':<48} {'n':>4} {'accuracy':>9} {'balanced':>9} {'abstain':>8}")
    rows = {**{f"judge {k}": v for k, v in result["judges"].items()}, **{f"panel {k}": v for k, v in
            result["panel"].items()}, **{f"baseline {k}": v for k, v in result["baselines"].items()}}
    for name, r in rows.items():
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        bal = "-" if r["balanced_accuracy"] is None else f"{r['balanced_accuracy']:.3f}"
        print(f"{name:<48} {r['n']:>4} {acc:>9} {bal:>9} {r['abstentions']:>8}")
    verdict = result["agreement"]["verdict"]
    print(f"\nagreement on verdicts: {verdict}")
    print(f"weights fit on dev: {result['weights_fit_on_dev']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--generators", nargs="+", default=["qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct"])
    parser.add_argument("--judges", nargs="+", default=["qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct"])
    parser.add_argument("--max-tokens", type=int, default=400)
    parser.add_argument("--json", action="store_true")
    return run_and_report("jury_quality", parser.parse_args(), run, print_report)


if __name__ == "__main__":
    sys.exit(main())
