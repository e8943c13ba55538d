"""`cet simulate`: held-out tasks replayed as developer traffic through the service's OpenAI-compatible proxy, with
the real generator answering and the sandbox as the source of feedback, in an A/B experiment between two arms
(two CET versions by default: Phase 2's and Phase 3's checkpoints, or the registry's champion and a candidate).

Each task is one developer (its id is the user, so the arm is sticky per task); the developer sends the task as a
chat message, the service engineers the assigned arm's context, forwards the rewritten message to the generator
and records the pair; the code in the reply is run on the task's hidden tests in the sandbox and the outcome
(passed, compiled, security findings) is reported to /v1/feedback. After the last task the experiment's standing
(always-valid mSPRT and the per-user interval) is the decision.

Everything goes to the run directory: the feedback store (so an interrupted simulation resumes where it stopped:
a task with a recorded outcome is not replayed), per-task rows, the summary with the decision, the dashboard page
and the report. The tasks are held-out (evaluation splits) by default: nothing trains on them (`cet retrain`
drops traffic that carries a held-out task). `--split train` replays training tasks instead: traffic to retrain
from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cet.config import CetConfig
from cet.errors import CetError
from cet.execution.tasks import CodingTask
from cet.runs import RunDir

PROXY_BASELINES = ("template", "naive_rag", "none")
HELD_OUT_IDS = "held_out_ids.json"  # beside a replay's feedback store: the held-out tasks it replayed (by id)


@dataclass(frozen=True)
class SimulationOptions:
    control: str = "phase2"  # an arm: phase1|phase2|phase3, base, a registry version (v1), a checkpoint path,
    treatment: str = "phase3"  # or a baseline strategy (template, naive_rag, none)
    tasks: int = 24
    min_per_arm: int = 10  # outcomes per arm before the mSPRT may decide
    max_tokens: int = 384
    visible_tests: int = 1  # tests of a task the developer shows in the message (the rest are hidden)
    experiment: str = "simulate"
    split: str = "heldout"  # heldout, train (traffic to retrain from) or file (the user's own tasks)


def arm_strategy(cfg: CetConfig, spec: str, retriever: Any | None) -> tuple[str, Any]:
    """(arm name, strategy) for an arm spec; a CET arm loads its checkpoint."""
    from cet.model.cet import MANIFEST
    from cet.serving.registry import Registry
    from cet.serving.strategies import make_strategy

    if spec in PROXY_BASELINES:
        return spec, make_strategy(spec, cfg, retriever=retriever)
    if spec == "base":
        return "base", make_strategy("cet", cfg, base=True, retrieval=retriever is not None, retriever=retriever)
    versions = {v["id"]: v for v in Registry(cfg.serve.registry_dir).read()["versions"]}
    if spec in versions:
        path = Path(versions[spec]["path"])
    elif spec in ("phase1", "phase2", "phase3"):
        path = Path(cfg.cet.checkpoints_dir) / spec
    else:
        path = Path(spec)
    if not (path / MANIFEST).is_file():
        raise CetError(f"arm {spec!r}: no CET checkpoint at {path} (give phase1|phase2|phase3, base, a registry "
                       f"version ({', '.join(versions) or 'none registered'}), a checkpoint path, or one of "
                       f"{', '.join(PROXY_BASELINES)})")
    return spec if spec in versions or spec.startswith("phase") else path.name, make_strategy(
        "cet", cfg, checkpoint=str(path), retrieval=retriever is not None, retriever=retriever)


def same_run(path: Path, settings: dict[str, Any]) -> None:
    """Record a simulation's settings on its first call; a resumed one must have the same (arms, tasks,
    budgets), or its outcomes would mix two experiments."""
    if not path.is_file():
        path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return
    try:
        before = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CetError(f"{path} cannot be read ({e}): start a new simulation") from None
    changed = sorted(k for k in before.keys() | settings.keys() if before.get(k) != settings.get(k))
    if changed:
        raise CetError(f"the simulation being resumed ran with other settings ({', '.join(changed)}): resume it "
                       "with the same arms, tasks and options, or start a new one")


def task_hash(tasks: Sequence[CodingTask]) -> str:
    """sha256 over the replayed tasks (ids, statements, tests), in order: what the numbers were measured on."""
    digest = hashlib.sha256()
    for task in tasks:
        digest.update(json.dumps([task.id, task.statement, task.tests], ensure_ascii=False).encode())
    return digest.hexdigest()


def simulate(cfg: CetConfig, opts: SimulationOptions, run: RunDir, tasks: Sequence[CodingTask],
             retriever: Any | None, on_step: Callable[[int, int, str], None] = lambda *_: None) -> dict[str, Any]:
    """Replay `tasks` through the proxy in an experiment between opts.control and opts.treatment; the summary."""
    from fastapi.testclient import TestClient

    from cet.data.task_input import task_view
    from cet.llm.jury import extract_code
    from cet.llm.team import Team
    from cet.model.context import GENERATOR_SYSTEM, render_prompt
    from cet.phases.common import sandbox_executor
    from cet.serving.app import create_app
    from cet.serving.experiment import Experiment
    from cet.serving.feedback import FeedbackStore

    if opts.control == opts.treatment:
        raise CetError("the simulation needs two different arms")
    same_run(run.path / "simulation.json", {**opts.__dict__, "tasks_sha256": task_hash(tasks)})
    control, control_strategy = arm_strategy(cfg, opts.control, retriever)
    treatment, treatment_strategy = arm_strategy(cfg, opts.treatment, retriever)
    if control == treatment:
        treatment = f"{treatment}-b"
    strategies = {control: control_strategy, treatment: treatment_strategy}
    experiment = Experiment(opts.experiment, control=control, treatment=treatment, min_per_arm=opts.min_per_arm)
    if opts.split != "train":  # what retraining from this store must never learn from
        (run.path / HELD_OUT_IDS).write_text(json.dumps(sorted(t.id for t in tasks)) + "\n", encoding="utf-8")
    store = FeedbackStore(run.path / "feedback.sqlite")
    done = {unit for _, _, unit in store.outcomes(opts.experiment)}
    rows_path = run.path / "tasks.jsonl"
    skipped: dict[str, str] = {}
    try:
        with Team(cfg) as team, sandbox_executor(cfg) as executor:
            app = create_app(strategies, store, experiment=experiment, team=team, limits=_no_latency_guardrail())
            with TestClient(app) as client:
                for i, task in enumerate(tasks):
                    if task.id in done:
                        continue
                    try:
                        view = task_view(task, opts.visible_tests)
                    except CetError as e:
                        skipped[task.id] = str(e)
                        continue
                    on_step(i, len(tasks), task.id)
                    message = render_prompt(view.raw_text(), language=task.language)
                    answer = client.post("/v1/chat/completions", json={
                        "messages": [{"role": "system", "content": GENERATOR_SYSTEM},
                                     {"role": "user", "content": message}],
                        "user": task.id, "max_tokens": opts.max_tokens, "temperature": 0.0})
                    if answer.status_code != 200:  # the arm wrote no context, or the generator failed: counted
                        skipped[task.id] = f"{answer.status_code}: {answer.json().get('error')}"
                        continue
                    body = answer.json()
                    code = extract_code(body["choices"][0]["message"]["content"] or "", task.entry_point,
                                        task.language)
                    result = executor.run(view.hidden, code) if code else None
                    findings = len(result.security.findings) if result and result.security else 0
                    outcome = {"request_id": body["cet"]["request_id"], "passed": bool(result and result.passed),
                               "compiled": bool(result and result.compile.ok), "security_findings": findings}
                    if result is not None:
                        outcome["tests"] = {"passed": result.tests.passed, "total": result.tests.total}
                    recorded = client.post("/v1/feedback", json=outcome)
                    if recorded.status_code != 200:
                        raise CetError(f"feedback for {task.id} was refused: {recorded.text}")
                    with rows_path.open("a", encoding="utf-8") as handle:
                        handle.write(json.dumps({"task_id": task.id, "arm": body["cet"]["arm"],
                                                 "sections": body["cet"]["sections"], **outcome,
                                                 "exit_reason": result.exit_reason if result else "no-code"}) + "\n")
                standing = client.get("/v1/experiment").json()
                guardrails = client.get("/v1/guardrails").json()
                (run.path / "dashboard.html").write_text(client.get("/dashboard").text, encoding="utf-8")
    finally:
        for strategy in strategies.values():
            if hasattr(strategy, "engine"):
                strategy.engine.close()
        store.close()
    decision = (f"{standing['winner']} wins" if standing["decided"] else
                "no decision: the always-valid p-value is above alpha")
    return {"control": {"arm": control, "spec": opts.control, "version": control_strategy.version},
            "treatment": {"arm": treatment, "spec": opts.treatment, "version": treatment_strategy.version},
            "tasks": len(tasks), "tasks_sha256": task_hash(tasks), "task_ids": [t.id for t in tasks],
            "skipped": skipped, "experiment": standing, "guardrails": guardrails, "decision": decision,
            "options": opts.__dict__}


def _no_latency_guardrail() -> Any:
    """The guardrails of a replay: compile failures and security findings as in production; latency is the
    machine's, not the arm's (a CPU replay takes seconds a context), so its limit is lifted."""
    from cet.serving.guardrails import Limits

    return Limits(p95_latency_ms=float("inf"))


def render_report(result: dict[str, Any]) -> str:
    standing = result["experiment"]
    clustered = standing.get("clustered") or {}
    kind = {"heldout": "held-out", "train": "training", "file": "given"}[result["options"]["split"]]
    lines = [f"# cet simulate: {kind} tasks replayed through the proxy", "",
             f"Control **{result['control']['arm']}** ({result['control']['version']}) against treatment "
             f"**{result['treatment']['arm']}** ({result['treatment']['version']}) on {result['tasks']} {kind} "
             f"tasks (sha256 {result['tasks_sha256'][:16]}…), {len(result['skipped'])} skipped.", "",
             "| arm | outcomes | pass rate |", "| --- | --- | --- |",
             f"| {standing['control']} | {standing['n_a']} | {standing['rate_a']:.3f} |",
             f"| {standing['treatment']} | {standing['n_b']} | {standing['rate_b']:.3f} |", "",
             f"Difference (treatment - control): {standing['difference']:+.3f}; always-valid 95% interval "
             f"[{standing['lower']:+.3f}, {standing['upper']:+.3f}], always-valid p = {standing['p_value']:.3f} "
             f"(decides after {result['options']['min_per_arm']} outcomes per arm)."]
    if clustered:
        lines.append(f"Per-user (clustered) interval [{clustered['ci'][0]:+.3f}, {clustered['ci'][1]:+.3f}], "
                     f"p = {clustered['p_value']:.3f}.")
    lines += ["", f"**Decision: {result['decision']}.**"]
    if standing.get("stopped"):
        lines.append(f"The treatment was stopped: {standing['stopped']}.")
    if result["skipped"]:
        lines += ["", "Skipped tasks:"] + [f"- {t}: {why}" for t, why in sorted(result["skipped"].items())]
    lines += ["", "The dashboard as it stood at the end: `dashboard.html`; per-task outcomes: `tasks.jsonl`."]
    return "\n".join(lines) + "\n"
