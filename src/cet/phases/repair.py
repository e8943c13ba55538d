"""Phase 3's repair loop (seed 4.3): a failed attempt becomes a bug report, the CET engineers a debugging context
from it, and the generator tries once more; at most `rounds` rounds per attempt, stopping at the first pass.

    attempt     a failed rollout of the raw task (one generator): its code and the sandbox's failure report (the
                failing tests with their error and traceback, as a developer would paste them)
    round k     the CET reads the task, the code and the report (`CETInput` with code and error; the playbook items
                that match) -> debugging context (Failure / Suspects / Check ...) -> the generator reads the task,
                its code, the report and the context -> new code -> the sandbox on the same hidden tests
    control     the same rounds with the bug report alone and no context (arm "report_only"): the fix rate the
                context must beat, paired attempt by attempt (exact McNemar)
    recorded    repairs.jsonl: one line per round and arm (resumable: a rerun skips rounds already there)
    reported    fix rate by the original failure class and pattern, per arm: attempts, fixed after round 1, 2

The report quotes the hidden tests of a TRAINING task (Phase 3 never repairs an evaluation task): the fix rate says
how often a reported failure is turned into a pass with the CET's debugging context, not a held-out pass rate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from scipy.stats import binomtest

from cet.config import CetConfig
from cet.data.gold_context import section_choices
from cet.data.playbook import Playbook
from cet.data.task_input import TaskView, cet_input
from cet.execution.failures import classify_failure, failure_pattern, failure_report
from cet.llm.base import Message
from cet.llm.jury import extract_code
from cet.llm.team import Request, Team
from cet.model.cet import CETModel
from cet.model.context import GENERATOR_SYSTEM, EngineeredContext, render_prompt
from cet.phases.common import append_jsonl, read_jsonl, sandbox_executor
from cet.phases.rollouts import REPORT_CHARS

REPAIRS = "repairs.jsonl"


ARMS = ("cet", "report_only")  # the CET's debugging context with the report, and the report alone (the control)


def repair_failures(cfg: CetConfig, cet: CETModel, failed: Sequence[dict[str, Any]], views: dict[str, TaskView],
                    hits: dict[str, list[Any]], playbook: Playbook, path: Path, rounds: int,
                    on_step: Callable[[str], None] = lambda _: None, arms: Sequence[str] = ARMS) -> dict[str, Any]:
    """Repair each failed rollout in `failed` (rollout records with code and report) for up to `rounds` rounds,
    once per arm: "cet" (the generator reads the CET's debugging context besides the bug report) and "report_only"
    (the same retry with the bug report alone: what the context adds is the difference); returns the fix rates
    (see `fix_rates`)."""
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown repair arm(s) {unknown}; choose from {ARMS}")
    state: dict[tuple[str, str, str], dict[str, Any]] = {}
    for rec in failed:
        if rec.get("code") and rec.get("report") and rec["task_id"] in views:
            for arm in arms:
                state[(rec["task_id"], rec["generator"], arm)] = {
                    "code": rec["code"], "report": rec["report"], "class": rec["failure_class"],
                    "pattern": rec["pattern"], "fixed": False}
    for rec in read_jsonl(path):  # a resumed run continues where the file stops
        s = state.get((rec["task_id"], rec["generator"], rec.get("arm", "cet")))
        if s is not None:
            s.update(code=rec["code"] or s["code"], report=rec["report"] or s["report"], fixed=rec["passed"],
                     round=rec["round"])
    for k in range(1, rounds + 1):
        todo = [key for key, s in state.items() if not s["fixed"] and s.get("round", 0) == k - 1]
        if not todo:
            continue  # a resumed run may have every attempt past this round already
        on_step(f"phase 3: repair round {k}: {len(todo)} failed attempts ({', '.join(arms)})")
        contexts = debugging_contexts(cfg, cet, [key for key in todo if key[2] == "cet"], state, views, hits,
                                      playbook)
        # one generator at a time (its model unloaded before the next), the control before the CET's arm: a CET
        # reply with nothing in it leaves the very prompt of the control, which the response cache then answers
        # with the control's reply (so an empty context can never differ from the control by chance)
        todo.sort(key=lambda key: (key[1], key[2] != "report_only"))
        with Team(cfg) as team, sandbox_executor(cfg) as executor:
            params = team.params(max_tokens=cfg.cet.phase3.max_tokens, temperature=0.0)
            requests = {}
            for key in todo:
                s, view = state[key], views[key[0]]
                context = contexts.get(key, EngineeredContext())
                s["context"] = context.to_text()
                prompt = render_prompt(view.raw_text(), context if not context.is_empty() else None, code=s["code"],
                                       error=s["report"], language=view.task.language)
                requests[key] = Request([Message("system", GENERATOR_SYSTEM), Message("user", prompt)], params,
                                        model=key[1])
            answers: dict[tuple[str, str, str], Any] = {}
            previous = None
            for generator, arm in dict.fromkeys((key[1], key[2]) for key in todo):
                if previous is not None and generator != previous:
                    team.unload()  # the previous generator's model is done with
                previous = generator
                group = [key for key in todo if key[1] == generator and key[2] == arm]
                answers.update(zip(group, team.map("generator", [requests[key] for key in group]), strict=True))
            for key in todo:
                answer, (task_id, generator, arm) = answers[key], key
                if not answer.ok:
                    continue  # the request itself failed (model, budget): no verdict; a rerun tries again
                s, view = state[key], views[task_id]
                code = extract_code(answer.text or "", view.task.entry_point, view.task.language)
                result = executor.run(view.hidden, code) if code else None
                passed = bool(result and result.passed)
                report = failure_report(result)[:REPORT_CHARS] if result and not passed else None
                append_jsonl(path, {
                    "task_id": task_id, "generator": generator, "arm": arm, "round": k, "original_class": s["class"],
                    "original_pattern": s["pattern"], "context": s["context"], "code": code, "passed": passed,
                    "failure_class": classify_failure(result, code, view.task.entry_point),
                    "pattern": failure_pattern(result, code, view.task.entry_point, view.interface),
                    "report": report})
                s.update(code=code or s["code"], report=report or s["report"], fixed=passed, round=k)
    return fix_rates(read_jsonl(path), rounds)


def debugging_contexts(cfg: CetConfig, cet: CETModel, keys: Sequence[tuple[str, str, str]],
                       state: dict[tuple[str, str, str], dict[str, Any]], views: dict[str, TaskView],
                       hits: dict[str, list[Any]], playbook: Playbook) -> dict[tuple[str, str, str], EngineeredContext]:
    """The CET's debugging context for each attempt in `keys` (task, code, report, the matching playbook items); an
    unreadable reply gives an empty context (the generator then reads the report alone)."""
    if not keys:
        return {}
    inputs = []
    for key in keys:
        inp = cet_input(views[key[0]], hits.get(key[0], []), code=state[key]["code"], error=state[key]["report"],
                        budget=cfg.cet.input_tokens)
        inputs.append(replace(inp, playbook=playbook.texts_for_view(views[key[0]])))
    try:
        replies = cet.engineer([{"input": inp, "choices": section_choices(inp)} for inp in inputs])
    finally:
        cet.close_engine()
    return {key: reply.parsed.context if reply.parsed is not None and reply.error is None else EngineeredContext()
            for key, reply in zip(keys, replies, strict=True)}


def fix_rates(records: Sequence[dict[str, Any]], rounds: int) -> dict[str, Any]:
    """Per arm ("cet"; a record without one is the CET's), per original failure class and pattern: attempts, and
    how many were fixed by round 1, 2, ...; the CET arm's figures are also the top level (attempts, fixed, rate,
    by_class, by_pattern). With both arms, `paired`: the attempts both arms ran, fixed by each, and the exact
    McNemar test of the CET's context against the report alone."""
    arms = {arm: _arm_rates(records, arm, rounds) for arm in dict.fromkeys(r.get("arm", "cet") for r in records)}
    result: dict[str, Any] = {**(arms.get("cet") or _arm_rates([], "cet", rounds)), "arms": arms, "paired": None}
    if {"cet", "report_only"} <= arms.keys():
        fixed = {arm: set(_fixed_at(records, arm)) for arm in ("cet", "report_only")}
        both = sorted(set(_attempts(records, "cet")) & set(_attempts(records, "report_only")))
        if both:
            cet_only = sum(key in fixed["cet"] and key not in fixed["report_only"] for key in both)
            control_only = sum(key in fixed["report_only"] and key not in fixed["cet"] for key in both)
            discordant = cet_only + control_only
            result["paired"] = {  # exact McNemar: the discordant attempts split like a fair coin under no effect
                "attempts": len(both), "cet_fixed": sum(key in fixed["cet"] for key in both),
                "report_only_fixed": sum(key in fixed["report_only"] for key in both), "cet_only": cet_only,
                "report_only_only": control_only, "difference": (cet_only - control_only) / len(both),
                "p_value": float(binomtest(cet_only, discordant, 0.5).pvalue) if discordant else 1.0}
    return result


def _attempts(records: Sequence[dict[str, Any]], arm: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["task_id"], r["generator"]): r for r in records if r.get("arm", "cet") == arm and r["round"] == 1}


def _fixed_at(records: Sequence[dict[str, Any]], arm: str) -> dict[tuple[str, str], int]:
    fixed: dict[tuple[str, str], int] = {}
    for r in records:
        if r.get("arm", "cet") == arm and r["passed"]:
            key = (r["task_id"], r["generator"])
            fixed[key] = min(fixed.get(key, r["round"]), r["round"])
    return fixed


def _arm_rates(records: Sequence[dict[str, Any]], arm: str, rounds: int) -> dict[str, Any]:
    fixed_at, first = _fixed_at(records, arm), _attempts(records, arm)
    mine = [r for r in records if r.get("arm", "cet") == arm]
    # rounds whose context was empty (the CET said nothing, or its reply could not be read): the control's prompt
    empty = sum(1 for r in mine if not r.get("context")) if arm == "cet" else None
    by: dict[str, dict[str, dict[str, Any]]] = {"class": defaultdict(dict), "pattern": defaultdict(dict)}
    for axis, field in (("class", "original_class"), ("pattern", "original_pattern")):
        for key, r in first.items():
            row = by[axis].setdefault(r[field], {"attempts": 0, **{f"fixed_by_round_{k}": 0
                                                                   for k in range(1, rounds + 1)}})
            row["attempts"] += 1
            for k in range(1, rounds + 1):
                row[f"fixed_by_round_{k}"] += int(key in fixed_at and fixed_at[key] <= k)
    total = len(first)
    return {"attempts": total, "fixed": len(fixed_at), "rate": round(len(fixed_at) / total, 3) if total else None,
            "by_class": dict(by["class"]), "by_pattern": dict(by["pattern"]), "rounds_run": len(mine),
            "rounds_without_context": empty}
