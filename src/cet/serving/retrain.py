"""Retraining from served traffic (Phase 4 → Phase 3's learner): the feedback store's contexts and their verdicts
become a candidate CET, registered next to the champion, for an experiment to judge.

    gate      with `if_drift`, only when the traffic calls for it: input drift (PSI) or a pass-rate drop (CUSUM)
              between the first and the last window of requests (drift.py); otherwise nothing is trained
    data      every served context with a verdict, grouped by task; a row served for a held-out task (its unit
              is an evaluation-split task's id, or one a replay listed in held_out_ids.json beside its store) or
              whose task or context carries a held-out task's statement, tests or solution is dropped and counted
              (never trained on); per task, the contexts served are Phase 3's candidates, each scored by its pass
              rate over the times it was served (the "none" arm, and a CET's "nothing to add", are raw)
    input     what the service's CET read for the task: `serving_input` over a fresh search of the knowledge base
              with the held-out filter, and the starting checkpoint's playbook
    learning  Phase 3's learner on tasks where some context passed: ReST-EM (SFT on the best context, raw unless
              a context beat it) or DPO (best against worst); targets not traceable to the input are dropped
    candidate saved in the run directory with its parent and data version, and registered (`Registry.register`):
              the champion is untouched; `cet serve --ab <version>` (or `cet simulate --treatment <version>`)
              runs the experiment, and `cet registry promote` decides with its evidence
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cet.config import CetConfig
from cet.errors import CetError
from cet.runs import RunDir
from cet.serving.drift import embed_with
from cet.serving.feedback import is_postgres, store_exists


@dataclass(frozen=True)
class RetrainOptions:
    feedback_db: str
    start_from: str | None = None  # a checkpoint; default: the registry's champion, else the latest phase
    learner: str | None = None  # rest (ReST-EM) or dpo; default cet.phase3.learner
    epochs: float | None = None
    if_drift: bool = False
    window: int = 200  # requests per drift window
    min_tasks: int = 2  # tasks with a passing context needed to train at all
    register: bool = True


def task_key(task: str) -> str:
    return "served/" + hashlib.sha256(task.encode("utf-8")).hexdigest()[:16]


def drift_gate(store: Any, window: int, embed: Callable[[list[str]], Any] | None = None) -> dict[str, Any]:
    """The drift verdict over the store's traffic (as GET /v1/drift), or why it cannot be judged yet."""
    from cet.serving.drift import traffic_drift

    report = traffic_drift(store, window, embed)
    if report is None:
        return {"retrain": False, "why": f"not enough traffic to judge drift: {store.counts()['requests']} requests, "
                                         f"two windows of {window} needed"}
    return {**report, "why": report["why"] or "no drift and no drop"}


def held_out_ids(cfg: CetConfig, feedback_db: str) -> set[str]:
    """Task ids no served row may be trained from when it was served for them (the unit a replay gives a request
    is its task id): every evaluation-split task of cfg's task sets, and the tasks a replay held out, listed beside
    its feedback store."""
    from cet.phases.common import EVAL_SPLITS, load_tasks
    from cet.serving.simulate import HELD_OUT_IDS

    try:
        ids = {t.id for t in load_tasks(cfg, EVAL_SPLITS)}
    except CetError:  # no task sets imported: nothing of theirs to hold out
        ids = set()
    listed = Path(feedback_db).parent / HELD_OUT_IDS
    if not is_postgres(feedback_db) and listed.is_file():
        try:
            ids |= set(json.loads(listed.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as e:
            raise CetError(f"{listed} cannot be read ({e}): refusing to train without knowing what was held out") \
                from None
    return ids


def candidate_groups(rows: list[dict[str, Any]], leaks: Callable[[str], list[Any]]
                     ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str], dict[str, int]]:
    """(groups by task key in Phase 3's entry shape, task text by key, counts). A row whose task or context leaks a
    held-out task is dropped; the rest are pooled per (task, context): robust reward = pass rate."""
    from cet.model.prompts import approx_tokens

    pooled: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    texts: dict[str, str] = {}
    counts = {"rows": len(rows), "held_out_dropped": 0}
    for row in rows:
        if leaks(f"{row['task']}\n{row['context']}"):
            counts["held_out_dropped"] += 1
            continue
        key = task_key(row["task"])
        texts[key] = row["task"]
        pooled[(key, row["context"])].append(row)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (key, context), served in pooled.items():
        rate = sum(r["passed"] for r in served) / len(served)
        groups[key].append({"task_id": key, "key": hashlib.sha256(context.encode()).hexdigest()[:16],
                            "candidate": served[0]["arm"] if context else "raw", "context": context,
                            "context_tokens": approx_tokens(context), "robust": rate, "served": len(served)})
    learnable = {k: v for k, v in groups.items() if max(e["robust"] for e in v) > 0}
    counts.update(tasks=len(groups), tasks_with_a_pass=len(learnable))
    return learnable, texts, counts


def retrain(cfg: CetConfig, opts: RetrainOptions, run: RunDir, retriever: Any | None,
            on_step: Callable[[str], None] = lambda _: None, quiet: bool = True) -> dict[str, Any]:
    """Train a candidate CET from the feedback store; the summary (trained or not, and why)."""
    from cet.config import mask_url
    from cet.data.playbook import Playbook
    from cet.model.cet import MANIFEST, CETModel
    from cet.phases.common import HeldOutRetriever, held_out, retrieve
    from cet.phases.phase3 import Phase3Options, learn
    from cet.serving.engine import search_text, serving_input
    from cet.serving.feedback import open_feedback_store
    from cet.serving.registry import Registry

    if not store_exists(opts.feedback_db):
        raise CetError(f"no feedback store at {opts.feedback_db}")  # a file path: no credentials in it
    learner = opts.learner or cfg.cet.phase3.learner
    if learner not in ("rest", "dpo"):
        raise CetError(f"learner: rest (ReST-EM: SFT on the best context) or dpo, not {learner!r}")
    store = open_feedback_store(opts.feedback_db)
    try:
        gate = drift_gate(store, opts.window, embed_with(retriever)) if opts.if_drift else \
            {"retrain": True, "why": "asked for"}
        rows = store.served_outcomes()
    finally:
        store.close()
    summary: dict[str, Any] = {"feedback_db": mask_url(opts.feedback_db), "gate": gate, "learner": learner}
    if not gate["retrain"]:
        return {**summary, "retrained": False, "why": gate["why"]}
    holdout = held_out(cfg)
    index = holdout.index
    banned = held_out_ids(cfg, opts.feedback_db)
    kept = [r for r in rows if r["unit"] not in banned]
    groups, texts, counts = candidate_groups(kept, lambda text: index.leaks(text) if index is not None else [])
    counts = {**counts, "rows": len(rows), "held_out_dropped": counts["held_out_dropped"] + len(rows) - len(kept)}
    summary["data"] = counts
    if len(groups) < opts.min_tasks:
        return {**summary, "retrained": False,
                "why": f"{len(groups)} task(s) with a passing context; {opts.min_tasks} needed to train"}
    registry = Registry(cfg.serve.registry_dir)
    champion = registry.champion()
    start = opts.start_from or (champion["path"] if champion else None) or _latest(cfg)
    if not (Path(start) / MANIFEST).is_file():
        raise CetError(f"not a CET checkpoint: {start}")
    on_step(f"retrain: {len(groups)} tasks, from {start}")
    cet = CETModel.load(start, cfg, trainable=True)
    playbook = Playbook.load(Path(start) / "playbook.json") if (Path(start) / "playbook.json").is_file() \
        else Playbook()
    search = HeldOutRetriever(retriever, holdout) if retriever is not None else None
    inputs = {key: serving_input(cfg, texts[key], retrieve(search, search_text(texts[key]), cfg.cet.top_k), playbook)
              for key in groups}
    training = learn(cfg, Phase3Options(epochs=opts.epochs), cet, groups, inputs, learner, run.path / "train", quiet)
    summary["training"] = training
    if "skipped" in training:
        cet.close_engine()
        return {**summary, "retrained": False, "why": training["skipped"]}
    # the options as they travel with the checkpoint (and into the registry): the feedback store without a password
    shown = replace(opts, feedback_db=mask_url(opts.feedback_db))
    checkpoint = cet.save(run.path / "checkpoint", "phase4", training.get("data_version"), shown, run_dir=str(run.path),
                          parent=champion["id"] if champion and start == champion["path"] else start,
                          feedback_rows=counts["rows"])
    playbook.save(checkpoint)
    cet.close_engine()
    summary.update(retrained=True, checkpoint=str(checkpoint), why=gate["why"])
    if opts.register:
        version = registry.register(checkpoint)
        summary.update(registered=version, champion=registry.read()["champion"],
                       next=f"cet serve --ab {version}  (or: cet simulate --control "
                            f"{registry.read()['champion']} --treatment {version})")
    return summary


def _latest(cfg: CetConfig) -> str:
    from cet.model.cet import MANIFEST

    for phase in ("phase3", "phase2", "phase1"):
        path = Path(cfg.cet.checkpoints_dir) / phase
        if (path / MANIFEST).is_file():
            return str(path)
    raise CetError("no CET checkpoint to retrain (train one with `cet run`, or give --start-from)")


def watch(cfg: CetConfig, opts: RetrainOptions, retriever: Any | None, make_run: Callable[[], RunDir],
          every_s: float, checks: int | None = None, on_result: Callable[[dict[str, Any]], None] = lambda _: None,
          sleep: Callable[[float], None] | None = None) -> int:
    """Retraining triggered by the traffic: every `every_s` seconds, once `opts.window` new requests have come
    since the last retraining, the drift gate is read; when it calls for it, a candidate is trained and
    registered (a run directory each). Runs until interrupted, or for `checks` checks; returns the candidates
    trained."""
    import time

    from cet.serving.feedback import open_feedback_store

    pause = sleep or time.sleep
    trained, seen, done = 0, 0, 0
    while checks is None or done < checks:
        done += 1
        if store_exists(opts.feedback_db):
            store = open_feedback_store(opts.feedback_db)
            try:
                requests = store.counts()["requests"]
                gate = drift_gate(store, opts.window, embed_with(retriever)) if requests - seen >= opts.window else None
            finally:
                store.close()
            if gate is not None and gate["retrain"]:
                result = retrain(cfg, replace(opts, if_drift=False), make_run(), retriever)
                result["gate"] = gate
                seen = requests
                trained += int(bool(result.get("retrained")))
                on_result(result)
            elif gate is not None:
                on_result({"retrained": False, "why": gate["why"], "requests": requests})
        if checks is None or done < checks:
            pause(every_s)
    return trained
