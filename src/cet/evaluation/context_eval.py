"""Context quality on held-out tasks: intrinsic metrics, and the generator's pass rate under five conditions.

    tasks  = held-out tasks (HumanEval, evaluation-only, and the test split of the other sets), sampled by seed
    for each task: retrieve the top-k chunks for its statement
    contexts:  raw         the task as given
               naive_rag   the top-k chunks concatenated above the task
               rule_based  a hand-written template over the task and the chunks (evaluation/baselines.py)
               cet_phase1  the CET after Phase 1       cet_phase2  the CET after Phase 2
    the generator (the team's, Qwen2.5-Coder-0.5B by default) writes code from each, same seed, greedy
    the sandbox runs the task's tests on it: pass / fail
    paired McNemar tests (cet_phase2 against each other condition), Wilson intervals, a split by task source;
    intrinsic metrics of each engineered context (recall of the task's facts, structure, compression,
    grounding) and, on a noisy copy of each statement, how much of the noise the context keeps out
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cet.config import CetConfig
from cet.data.degradations import CHATTER, degrade
from cet.data.task_facts import extract_facts
from cet.evaluation.baselines import naive_rag_text, rule_based_context
from cet.evaluation.context_quality import aggregate, context_quality
from cet.evaluation.plots import grouped_bars
from cet.evaluation.significance import compare_conditions, pass_rates
from cet.execution.tasks import CodingTask
from cet.llm.base import Message
from cet.llm.jury import extract_code
from cet.llm.team import Request, Team
from cet.model.cet import MANIFEST, CETModel
from cet.model.context import EngineeredContext, ParsedContext, parse_context, render_prompt
from cet.phases.common import (
    EVAL_SPLITS,
    append_jsonl,
    held_out_slugs,
    load_tasks,
    retrieve,
    sample_balanced,
    sandbox_executor,
)
from cet.runs import RunDir

CONDITIONS = ("raw", "naive_rag", "rule_based", "cet_phase1", "cet_phase2")
TARGET = "cet_phase2"
GENERATOR_SYSTEM = "You are an expert programmer. Write correct, complete code."


@dataclass
class ContextEvalOptions:
    tasks: int = 10
    sets: tuple[str, ...] = ("humaneval", "exercism", "leetcode")
    phase1: str | None = None  # checkpoints (default: data/cet/phase1, data/cet/phase2)
    phase2: str | None = None
    noise: bool = True  # also engineer a noisy copy of each statement (noise reduction)
    max_tokens: int = 320  # the generator's (solutions to these tasks fit; a cut-off block is still extracted)


def run_context_eval(cfg: CetConfig, opts: ContextEvalOptions, run: RunDir, retriever: Any,
                     on_step: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    rng = random.Random(cfg.run.seed + 3)
    tasks = sample_balanced(load_tasks(cfg, EVAL_SPLITS, opts.sets), opts.tasks, rng)
    held_out = held_out_slugs(cfg)  # no condition may retrieve a held-out exercise's own documents (solutions, tests)
    hits = [retrieve(retriever, t.statement, cfg.cet.top_k, held_out) for t in tasks]
    noisy = [degrade(t.statement, "noise", random.Random(f"{cfg.run.seed}:{t.id}")) for t in tasks]
    on_step(f"context eval: engineering contexts for {len(tasks)} tasks")
    contexts, skipped = engineered_contexts(cfg, opts, tasks, hits, noisy)
    conditions = [c for c in CONDITIONS if c not in skipped]
    prompts = {c: [condition_prompt(c, t, h, contexts.get(c, [None] * len(tasks))[i])
                   for i, (t, h) in enumerate(zip(tasks, hits, strict=True))] for c in conditions}
    on_step(f"context eval: the generator writes {len(tasks) * len(conditions)} solutions")
    outcomes, rows = generate_and_run(cfg, opts, tasks, prompts, on_step)
    for row in rows:
        append_jsonl(run.path / "records.jsonl", row)
    quality = intrinsic(tasks, hits, noisy, contexts)
    result = {
        "tasks": [t.id for t in tasks], "by_source": _by_source(tasks, outcomes), "conditions": conditions,
        "skipped_conditions": skipped, "pass_rates": pass_rates(outcomes),
        "comparisons": compare_conditions(outcomes, TARGET, [c for c in conditions if c != TARGET])
        if TARGET in outcomes else {},
        "intrinsic": {c: aggregate(rows_) for c, rows_ in quality.items()},
        "failure_analysis": failure_analysis(rows, contexts, tasks),
        "generator_errors": sum(1 for r in rows if r["generator_error"]),
        "generator": cfg.llm.roles.generator, "seed": cfg.run.seed,
    }
    run.log_metrics("context_eval", {k: result[k] for k in ("pass_rates", "comparisons", "intrinsic")})
    result["plots"] = plots(result, run.plots)
    return result


def engineered_contexts(cfg: CetConfig, opts: ContextEvalOptions, tasks: Sequence[CodingTask],
                        hits: Sequence[Sequence[Any]], noisy: Sequence[str]
                        ) -> tuple[dict[str, list[ParsedContext]], dict[str, str]]:
    """Per engineered condition, the parsed context of each task; for the template and cet_phase2, index
    len(tasks)+i holds the context of task i's noisy copy."""
    contexts: dict[str, list[ParsedContext]] = {}
    skipped: dict[str, str] = {}
    statements = [t.statement for t in tasks] + (list(noisy) if opts.noise else [])
    all_hits = list(hits) + (list(hits) if opts.noise else [])
    # the template sees what the CET sees: the statement and the chunks (not the entry point's name)
    contexts["rule_based"] = [parse_context(rule_based_context(s, h).to_text(), [x.id for x in h])
                              for s, h in zip(statements, all_hits, strict=True)]
    for condition, given in (("cet_phase1", opts.phase1), ("cet_phase2", opts.phase2)):
        path = Path(given or Path(cfg.cet.checkpoints_dir) / condition.removeprefix("cet_"))
        if not (path / MANIFEST).is_file():
            skipped[condition] = f"no checkpoint at {path}"
            continue
        cet = CETModel.load(path, cfg)
        # the noisy copies only for the CET under test (each CET context costs a generation)
        count = len(statements) if condition == TARGET else len(tasks)
        try:
            items = [{"task": s, "hits": h} for s, h in zip(statements[:count], all_hits[:count], strict=True)]
            contexts[condition] = [parsed for parsed, _ in cet.engineer(items)]
        finally:
            cet.close_engine()
    return contexts, skipped


def condition_prompt(condition: str, task: CodingTask, hits: Sequence[Any], parsed: ParsedContext | None) -> str:
    if condition == "raw":
        return render_prompt(task.statement, language=task.language)
    if condition == "naive_rag":
        return f"Retrieved knowledge:\n{naive_rag_text(hits)}\n\n" + render_prompt(task.statement,
                                                                                  language=task.language)
    context = parsed.context if parsed is not None else EngineeredContext()
    return render_prompt(task.statement, context, language=task.language)


def generate_and_run(cfg: CetConfig, opts: ContextEvalOptions, tasks: Sequence[CodingTask],
                     prompts: dict[str, list[str]], on_step: Callable[[str], None]
                     ) -> tuple[dict[str, list[bool]], list[dict[str, Any]]]:
    """The generator's code for every (task, condition), run in the sandbox: pass/fail per condition. Requests go
    task by task, each task pinned to one generator model for all its conditions (a budget that runs out cuts
    whole tasks, not one condition's tail)."""
    order = [(c, i) for i in range(len(tasks)) for c in prompts]
    with Team(cfg) as team:
        params = team.params(max_tokens=opts.max_tokens, temperature=0.0)
        generators = team.models_for("generator")
        requests = [Request([Message("system", GENERATOR_SYSTEM), Message("user", prompts[c][i])], params,
                            model=generators[i % len(generators)], tag=(c, i)) for c, i in order]
        done = [0]

        def tick(_: Any) -> None:
            done[0] += 1
            on_step(f"context eval: generator {done[0]}/{len(requests)}")

        results = team.map("generator", requests, on_result=tick)
    codes = [extract_code(r.text or "", tasks[i].entry_point, tasks[i].language) for r, (_, i) in
             zip(results, order, strict=True)]
    on_step(f"context eval: the sandbox runs {len(order)} solutions")
    with sandbox_executor(cfg) as executor:
        runs = [executor.run(tasks[i], code) if code else None for code, (_, i) in zip(codes, order, strict=True)]
    outcomes: dict[str, list[bool]] = {c: [False] * len(tasks) for c in prompts}
    rows = []
    for (condition, i), result, code, reply in zip(order, runs, codes, results, strict=True):
        passed = bool(result and result.passed)
        outcomes[condition][i] = passed
        rows.append({"task_id": tasks[i].id, "source": tasks[i].metadata.source, "condition": condition,
                     "passed": passed, "exit_reason": result.exit_reason if result else "no-code",
                     "tests": f"{result.tests.passed}/{result.tests.total}" if result else None,
                     "generator_error": reply.error, "prompt_chars": len(prompts[condition][i]),
                     "completion_tokens": reply.completion.completion_tokens if reply.completion else None,
                     "code": code})
    return outcomes, rows


def intrinsic(tasks: Sequence[CodingTask], hits: Sequence[Sequence[Any]], noisy: Sequence[str],
              contexts: dict[str, list[ParsedContext]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for condition, parsed in contexts.items():
        rows = []
        for i, task in enumerate(tasks):
            facts = extract_facts(task, hits[i])
            sources = [task.statement] + [h.text for h in hits[i]]
            input_text = task.statement + "\n" + "\n".join(h.text for h in hits[i])
            row = context_quality(parsed[i], facts, input_text, [h.id for h in hits[i]], sources)
            if len(parsed) > len(tasks):  # the noisy copy's context
                noise = [s for s in CHATTER if s in noisy[i]]
                noisy_row = context_quality(parsed[len(tasks) + i], facts, noisy[i], [h.id for h in hits[i]],
                                            sources, noise_sentences=noise)
                row["noise_reduction"] = noisy_row["noise_reduction"]
                row["recall_on_noisy"] = noisy_row["recall"]
            rows.append(row)
        out[condition] = rows
    return out


def failure_analysis(rows: Sequence[dict[str, Any]], contexts: dict[str, list[ParsedContext]],
                     tasks: Sequence[CodingTask]) -> dict[str, Any]:
    """Where the CET's context lost a task the raw task won (and the reverse), with what went wrong."""
    by = {(r["task_id"], r["condition"]): r for r in rows}
    index = {t.id: i for i, t in enumerate(tasks)}
    lost, won = [], []
    if TARGET not in contexts:
        return {"lost": lost, "won": won}
    for task in tasks:
        raw, cet = by.get((task.id, "raw")), by.get((task.id, TARGET))
        if not raw or not cet or raw["passed"] == cet["passed"]:
            continue
        parsed = contexts[TARGET][index[task.id]]
        entry = {"task_id": task.id, "raw_exit": raw["exit_reason"], "cet_exit": cet["exit_reason"],
                 "context_valid": parsed.valid, "parse_issues": parsed.issues[:3],
                 "context_chars": len(parsed.context.to_text())}
        (lost if raw["passed"] else won).append(entry)
    return {"lost": lost, "won": won}


def _by_source(tasks: Sequence[CodingTask], outcomes: dict[str, list[bool]]) -> dict[str, dict[str, Any]]:
    sources = sorted({t.metadata.source for t in tasks})
    return {s: {c: {"passed": sum(o[i] for i, t in enumerate(tasks) if t.metadata.source == s),
                    "n": sum(t.metadata.source == s for t in tasks)} for c, o in outcomes.items()} for s in sources}


def plots(result: dict[str, Any], where: Path) -> list[str]:
    made = [grouped_bars({"pass rate": {c: v["rate"] for c, v in result["pass_rates"].items()}},
                         f"Generator pass rate on {len(result['tasks'])} held-out tasks", where / "pass_rate.png")]
    metrics = ("recall", "structure_valid", "grounding_citations", "noise_reduction", "compression")
    groups = {m: {c: (result["intrinsic"][c].get(m, {}).get("mean") or 0.0) for c in result["intrinsic"]}
              for m in metrics}
    made.append(grouped_bars(groups, "Intrinsic context quality", where / "intrinsic.png"))
    return [str(p) for p in made]
