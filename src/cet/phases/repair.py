"""Phase 3's repair loop (seed 4.3): a failed attempt becomes a bug report, the CET engineers a debugging context
from it, and the generator tries once more; at most `rounds` rounds per attempt, stopping at the first pass.

    attempt     a failed rollout of the raw task (one generator): its code and the sandbox's failure report (the
                failing tests with their error and traceback, as a developer would paste them)
    round k     the CET reads the task, the code and the report (`CETInput` with code and error; the playbook items
                that match) -> debugging context (Failure / Suspects / Check ...) -> the generator reads the task,
                its code, the report and the context -> new code -> the sandbox on the same hidden tests
    recorded    repairs.jsonl: one line per round (resumable: a rerun skips rounds already there)
    reported    fix rate by the original failure class and pattern: attempts, fixed after round 1, after round 2

The report quotes the hidden tests of a TRAINING task (Phase 3 never repairs an evaluation task): the fix rate says
how often a reported failure is turned into a pass with the CET's debugging context, not a held-out pass rate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from cet.config import CetConfig
from cet.data.gold_context import section_choices
from cet.data.playbook import Playbook
from cet.data.task_input import TaskView, cet_input
from cet.execution.failures import classify_failure, failure_pattern
from cet.llm.base import Message
from cet.llm.jury import extract_code
from cet.llm.team import Request, Team
from cet.model.cet import CETModel
from cet.model.context import GENERATOR_SYSTEM, EngineeredContext, render_prompt
from cet.phases.common import append_jsonl, read_jsonl, sandbox_executor
from cet.phases.phase2 import failure_report
from cet.phases.rollouts import REPORT_CHARS

REPAIRS = "repairs.jsonl"


def repair_failures(cfg: CetConfig, cet: CETModel, failed: Sequence[dict[str, Any]], views: dict[str, TaskView],
                    hits: dict[str, list[Any]], playbook: Playbook, path: Path, rounds: int,
                    on_step: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Repair each failed rollout in `failed` (rollout records with code and report) for up to `rounds` rounds;
    returns the fix rates (see `fix_rates`)."""
    done = read_jsonl(path)
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in failed:
        if rec.get("code") and rec.get("report") and rec["task_id"] in views:
            state[(rec["task_id"], rec["generator"])] = {"code": rec["code"], "report": rec["report"],
                                                         "class": rec["failure_class"], "pattern": rec["pattern"],
                                                         "fixed": False}
    for rec in done:  # a resumed run continues where the file stops
        s = state.get((rec["task_id"], rec["generator"]))
        if s is not None:
            s.update(code=rec["code"] or s["code"], report=rec["report"] or s["report"], fixed=rec["passed"],
                     round=rec["round"])
    for k in range(1, rounds + 1):
        todo = [key for key, s in state.items() if not s["fixed"] and s.get("round", 0) == k - 1]
        if not todo:
            break
        on_step(f"phase 3: repair round {k}: {len(todo)} failed attempts")
        inputs = []
        for key in todo:
            inp = cet_input(views[key[0]], hits.get(key[0], []), code=state[key]["code"], error=state[key]["report"],
                            budget=cfg.cet.input_tokens)
            inputs.append(replace(inp, playbook=playbook.texts_for_view(views[key[0]])))
        try:
            replies = cet.engineer([{"input": inp, "choices": section_choices(inp)} for inp in inputs])
        finally:
            cet.close_engine()
        with Team(cfg) as team, sandbox_executor(cfg) as executor:
            params = team.params(max_tokens=cfg.cet.phase3.max_tokens, temperature=0.0)
            requests = []
            for (task_id, generator), reply in zip(todo, replies, strict=True):
                s, view = state[(task_id, generator)], views[task_id]
                context = reply.parsed.context if reply.parsed is not None and reply.error is None \
                    else EngineeredContext()
                s["context"] = context.to_text()
                prompt = render_prompt(view.raw_text(), context if not context.is_empty() else None, code=s["code"],
                                       error=s["report"], language=view.task.language)
                requests.append(Request([Message("system", GENERATOR_SYSTEM), Message("user", prompt)], params,
                                        model=generator))
            answers = team.map("generator", requests)
            for (task_id, generator), answer in zip(todo, answers, strict=True):
                s, view = state[(task_id, generator)], views[task_id]
                code = extract_code(answer.text or "", view.task.entry_point, view.task.language)
                result = executor.run(view.hidden, code) if code else None
                passed = bool(result and result.passed)
                report = failure_report(result)[:REPORT_CHARS] if result and not passed else None
                append_jsonl(path, {
                    "task_id": task_id, "generator": generator, "round": k, "original_class": s["class"],
                    "original_pattern": s["pattern"], "context": s["context"], "code": code, "passed": passed,
                    "failure_class": classify_failure(result, code, view.task.entry_point),
                    "pattern": failure_pattern(result, code, view.task.entry_point, view.interface),
                    "report": report})
                s.update(code=code or s["code"], report=report or s["report"], fixed=passed, round=k)
    return fix_rates(read_jsonl(path), rounds)


def fix_rates(records: Sequence[dict[str, Any]], rounds: int) -> dict[str, Any]:
    """Per original failure class (and pattern): attempts, and how many were fixed by round 1, 2, ..."""
    attempts: dict[tuple[str, str], int] = {}
    fixed_at: dict[tuple[str, str], int] = {}
    for r in records:
        key = (r["task_id"], r["generator"])
        attempts[key] = 1
        if r["passed"]:
            fixed_at[key] = min(fixed_at.get(key, r["round"]), r["round"])
    by: dict[str, dict[str, dict[str, Any]]] = {"class": defaultdict(dict), "pattern": defaultdict(dict)}
    first = {(r["task_id"], r["generator"]): r for r in records if r["round"] == 1}
    for axis, field in (("class", "original_class"), ("pattern", "original_pattern")):
        for key, r in first.items():
            row = by[axis].setdefault(r[field], {"attempts": 0, **{f"fixed_by_round_{k}": 0
                                                                   for k in range(1, rounds + 1)}})
            row["attempts"] += 1
            for k in range(1, rounds + 1):
                row[f"fixed_by_round_{k}"] += int(key in fixed_at and fixed_at[key] <= k)
    total = len(first)
    return {"attempts": total, "fixed": len(fixed_at), "rate": round(len(fixed_at) / total, 3) if total else None,
            "by_class": dict(by["class"]), "by_pattern": dict(by["pattern"])}
