"""The ablation study: what each phase, each context section and retrieval contribute, on the same held-out tasks
and the same generator.

    arms    raw           no CET: the task as given
            phase1        the CET after Phase 1 only          phase1-2   after Phases 1-2
            phase1-3      after Phases 1-3 (the target: every other arm is compared with it)
            all           Phases 1-4: Phase 4's retrained CET (`--phase4`, e.g. `cet retrain`'s registered candidate)
            skip_phase2   Phase 3 trained straight from the Phase 1 CET with the target's own Phase 3 options
                          (trained here, reused when it exists for the same data and config)
            skip_phase3   Phases 1, 2 and 4: Phase 4's retraining of the Phase 2 CET (`--skip-phase3`)
            naive_rag     no CET: the retrieved chunks pasted above the task (the same chunks the CET reads)
            template      no CET: a hand-written template over the CET's input (data/baselines.rule_based_context)
            no_retrieval  the target CET with no retrieved chunks in its input
            minus_<s>     the target CET's contexts with section <s> removed (one arm per section its contexts use)
    tasks   the default held-out pool (or a tasks file) plus, with `--repo-tasks`, repository tasks of held-out
            repositories (their own repository is their knowledge: phases/common.retriever_for)

Every arm's prompts go through the same leak check, the same generator (greedy, the response cache) and the sandbox
on the hidden tests. Statistics: per-arm pass rate with Wilson intervals; each arm against the target by exact
McNemar with Holm's correction over the family, the paired difference's interval and the minimum detectable
difference. Phase-specific metrics: Phase 1's grounded-answer accuracy (its run's verified answers), Phase 2's
transformation quality per type (structure, traceability and hidden-fact recall of each arm's contexts on the
held-out requirements; Phase 2's own pairs by kind), Phase 3's pass@1 and mean reward per arm, Phase 4's online
metrics from a simulation (`--simulation`).

Resumable: each finished arm is saved in the run directory (arms/<arm>.json, keyed by the tasks, the checkpoint and
the generator settings) and not run again; an arm's contexts are kept batch by batch (arms/<arm>.contexts.partial.json)
while its CET engineers them; an arm whose CET is the same model reading the same inputs as a finished arm's (a
Phase 3 run whose early stopping kept its start) reuses those contexts (`engine_key`); generations go through the
response cache.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cet.config import CetConfig
from cet.data.gold_context import section_choices, untraceable
from cet.data.playbook import Playbook
from cet.data.task_input import TaskView, cet_input
from cet.errors import CetError
from cet.evaluation.context_eval import (
    ContextEvalOptions,
    Engineered,
    check_leaks,
    condition_prompt,
    engineer_with,
    generate_and_run,
    intrinsic,
    select_tasks,
    template_context,
    views_of,
    with_playbook,
)
from cet.evaluation.context_quality import aggregate
from cet.evaluation.plots import grouped_bars, interval_dots
from cet.evaluation.significance import compare_conditions, pass_rates
from cet.execution.tasks import iter_tasks
from cet.model.cet import CONFIG_FILE, MANIFEST
from cet.model.context import EngineeredContext, ParsedContext
from cet.model.prompts import CETInput, input_messages
from cet.phases.common import held_out, retrieve, retriever_for
from cet.runs import RunDir

PHASE_ARMS = ("raw", "phase1", "phase1-2", "phase1-3", "all", "skip_phase2", "skip_phase3")
OTHER_ARMS = ("naive_rag", "template", "no_retrieval", "sections")
NO_CET = ("raw", "naive_rag", "template")  # the baselines: no checkpoint, the same inputs and retrieval
PROMPT_ONLY = ("raw", "naive_rag")  # no context at all: the prompt is the task (and, for naive RAG, the chunks)
TARGET = "phase1-3"
SECTIONS = ("goal", "interface", "examples", "constraints", "knowledge", "pitfalls")


@dataclass
class AblationOptions:
    tasks: int = 150
    tasks_file: str | None = None
    repo_tasks: str | None = None  # repository tasks (held-out repositories) added to the tasks
    limit: int | None = None
    arms: tuple[str, ...] = (*PHASE_ARMS, *OTHER_ARMS)
    phase1: str | None = None
    phase2: str | None = None
    phase3: str | None = None
    phase4: str | None = None  # the "all" arm
    skip_phase3: str | None = None  # Phase 4's retraining of the Phase 2 CET
    phase3_budget: str = "demo"  # skip_phase2's Phase 3 when the target's own options are not on record
    phase3_changes: dict[str, Any] = field(default_factory=dict)  # overrides of those (tasks, dev_tasks, samples)
    simulation: str | None = None  # a `cet simulate` run directory: Phase 4's online metrics
    max_tokens: int = 320
    train_dir: str | None = None  # trained arms, shared by ablation runs (default: beside cet.checkpoints_dir)


def stored_options(path: Path) -> AblationOptions:
    """The options an ablation run was started with (its ablation_options.json)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    known = {f.name for f in fields(AblationOptions)}
    values = {k: tuple(v) if k == "arms" else v for k, v in data.items() if k in known}
    return AblationOptions(**values)


ADDABLE = ("phase4", "skip_phase3", "simulation")  # arms' inputs a resumed run may be given when it started without


def resumed_options(stored: AblationOptions, given: AblationOptions, arms_given: bool) -> AblationOptions:
    """The options a resumed run carries on with: those it was started with, except `--arms` (when given: arms may be
    added or dropped) and the inputs of the arms that need a Phase 4 CET or a simulation, which may be added when the
    run started without them. Changing one it was started with is refused: its finished arms would mix two studies."""
    changes: dict[str, Any] = {"arms": given.arms} if arms_given else {}
    for name in ADDABLE:
        before, now = getattr(stored, name), getattr(given, name)
        if now is None or now == before:
            continue
        if before is not None:
            raise CetError(f"this ablation run was started with --{name.replace('_', '-')} {before}; start a new run "
                           "to use another")
        changes[name] = now
    return replace(stored, **changes)


def _eval_options(opts: AblationOptions) -> ContextEvalOptions:
    return ContextEvalOptions(tasks=opts.tasks, tasks_file=opts.tasks_file, limit=opts.limit, phase1=opts.phase1,
                              phase2=opts.phase2, phase3=opts.phase3, noise=False, max_tokens=opts.max_tokens)


def by_repository(tasks: Sequence[Any], n: int) -> list[Any]:
    """`n` repository tasks drawn round-robin across repositories (file order within each), so none crowds out."""
    groups: dict[str, list[Any]] = {}
    for task in tasks:
        groups.setdefault(task.repository.name, []).append(task)
    picked: list[Any] = []
    while len(picked) < n and any(groups.values()):
        for name in sorted(groups):
            if groups[name] and len(picked) < n:
                picked.append(groups[name].pop(0))
    return picked


def checkpoint_of(cfg: CetConfig, opts: AblationOptions, arm: str) -> Path | None:
    base = Path(cfg.cet.checkpoints_dir)
    given = {"phase1": opts.phase1, "phase1-2": opts.phase2, "phase1-3": opts.phase3, "no_retrieval": opts.phase3,
             "sections": opts.phase3, "all": opts.phase4, "skip_phase3": opts.skip_phase3}.get(arm)
    default = {"phase1": base / "phase1", "phase1-2": base / "phase2", "phase1-3": base / "phase3",
               "no_retrieval": base / "phase3", "sections": base / "phase3"}.get(arm)
    where = Path(given) if given else default
    return where if where is not None and (where / MANIFEST).is_file() else None


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def checkpoint_digest(where: Path | None) -> str | None:
    """The checkpoint's identity: its manifest and the bytes of its adapter files."""
    if where is None:
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in where.rglob("*") if p.is_file()):
        digest.update(path.relative_to(where).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def target_phase3_options(cfg: CetConfig, opts: AblationOptions) -> Any:
    """The Phase 3 options the target CET was trained with (its manifest's, or for a checkpoint saved before
    manifests carried them, its run's phase3-state.json), so the arm that skips Phase 2 differs from it in that
    alone; None when they are not on record."""
    from cet.phases.phase3 import Phase3Options

    target = checkpoint_of(cfg, opts, TARGET)
    if target is None:
        return None
    manifest = json.loads((target / MANIFEST).read_text())
    options = manifest.get("options") if manifest.get("phase") == "phase3" else None
    if not options:
        state = Path(manifest["run_dir"]) / "phase3-state.json" if manifest.get("run_dir") else None
        if state is None or not state.is_file():
            return None
        options = json.loads(state.read_text()).get("options") or {}
    known = {f.name for f in fields(Phase3Options)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items() if k in known}
    return Phase3Options(**values)


def train_skip_phase2(cfg: CetConfig, opts: AblationOptions, retriever: Any,
                      on_step: Callable[[str], None]) -> tuple[Path | None, str | None]:
    """Phase 3 from the Phase 1 CET (no Phase 2), into train_dir; reused when it exists for the same Phase 1
    checkpoint, Phase 3 budget and config. (checkpoint, None) or (None, why it could not be made)."""
    from cet.phases.phase3 import options_for, run_phase3

    start = checkpoint_of(cfg, opts, "phase1")
    if start is None:
        return None, "no Phase 1 checkpoint to start Phase 3 from"
    phase3 = target_phase3_options(cfg, opts) or options_for(opts.phase3_budget)
    phase3 = replace(phase3, start_from=str(start), **opts.phase3_changes)
    options = vars(phase3) | {"start_from": None}
    if options.get("conversations") is None:
        options.pop("conversations", None)  # an option added later: left out when unused, so earlier keys hold
    key = _digest(checkpoint_digest(start), options, cfg.cet.model_dump(mode="json"),
                  cfg.llm.roles.model_dump(mode="json"), cfg.exec.tasks_dir, cfg.run.seed)[:16]
    train_dir = Path(opts.train_dir) if opts.train_dir else Path(cfg.cet.checkpoints_dir).parent / "ablation"
    home = train_dir / f"skip_phase2-{key}"
    final = home / "cet" / "phase3"
    if (final / MANIFEST).is_file():
        return final, None
    on_step("ablation: training Phase 3 from the Phase 1 CET (skip_phase2)")
    arm_cfg = cfg.model_copy(update={"cet": cfg.cet.model_copy(update={"checkpoints_dir": str(home / "cet")})})
    run = RunDir(arm_cfg, "phase3-skip-phase2")
    run_phase3(arm_cfg, phase3, run, retriever, on_step=on_step, quiet=True)
    return (final, None) if (final / MANIFEST).is_file() else (None, "Phase 3 from Phase 1 saved no checkpoint")


def _engineered_to(e: Engineered) -> dict[str, Any]:
    parsed = None if e.parsed is None else {"context": e.parsed.context.to_dict(), "issues": e.parsed.issues,
                                            "sections": e.parsed.sections, "nothing_to_add": e.parsed.nothing_to_add}
    return {"parsed": parsed, "raw": e.raw, "error": e.error, "seconds": e.seconds, "untraceable": e.untraceable}


def _engineered_from(data: dict[str, Any]) -> Engineered:
    p = data["parsed"]
    parsed = None if p is None else ParsedContext(EngineeredContext.from_dict(p["context"]), p["issues"],
                                                  p["sections"], p["nothing_to_add"])
    return Engineered(parsed, data["raw"], data["error"], data["seconds"], data["untraceable"])


def section_arms(contexts: Sequence[Engineered]) -> list[str]:
    """The sections the target's contexts use: one `minus_<section>` arm each."""
    used = {name for e in contexts if e.parsed for name in SECTIONS if getattr(e.parsed.context, name)}
    return [f"minus_{name}" for name in SECTIONS if name in used]


def without_section(engineered: Engineered, section: str, inp: CETInput | None = None) -> Engineered:
    """The context with one section emptied (its traceability checked again against `inp` when given)."""
    if engineered.parsed is None:
        return engineered
    default = next(f for f in fields(EngineeredContext) if f.name == section)
    empty = default.default_factory() if callable(default.default_factory) else default.default  # type: ignore[misc]
    context = replace(engineered.parsed.context, **{section: empty})
    return replace(engineered, parsed=replace(engineered.parsed, context=context),
                   untraceable=untraceable(context, inp) if inp is not None else engineered.untraceable)


def _arm_prompts(arm: str, views: Sequence[TaskView], inputs: Sequence[CETInput], hits: Sequence[Any],
                 contexts: Sequence[Engineered] | None) -> list[str]:
    """Each task's prompt, as `cet eval context` builds it: an engineered arm's failure on a task is no prompt (a
    failure, never the raw task)."""
    assert arm in PROMPT_ONLY or (contexts is not None and len(contexts) == len(views))
    return [condition_prompt(arm if arm in PROMPT_ONLY else "engineered", v, inputs[i], hits[i],
                             None if contexts is None else contexts[i]) for i, v in enumerate(views)]


def run_ablation(cfg: CetConfig, opts: AblationOptions, run: RunDir, retriever: Any,
                 on_step: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    unknown = [a for a in opts.arms if a not in (*PHASE_ARMS, *OTHER_ARMS)]
    if unknown:
        raise CetError(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join((*PHASE_ARMS, *OTHER_ARMS))}")
    eval_opts = _eval_options(opts)
    tasks = select_tasks(cfg, eval_opts)
    if opts.repo_tasks:
        skipped_lines: list[str] = []
        repo = [t for t in iter_tasks(opts.repo_tasks, skipped_lines) if t.repository is not None
                and t.metadata.split in ("test", "eval")]
        if not repo:
            raise CetError(f"{opts.repo_tasks}: no held-out repository tasks (split test) to add")
        tasks += by_repository(repo, opts.limit) if opts.limit else repo
    views, skipped_tasks = views_of(tasks, cfg.exec.visible_tests)
    if not views:
        raise CetError("no task to evaluate: " + "; ".join(list(skipped_tasks.values())[:3]))
    tasks = [v.task for v in views]
    guard = held_out(cfg, extra=tasks)
    hits = [retrieve(retriever_for(cfg, v.task, retriever), v.statement, cfg.cet.top_k, guard) for v in views]
    inputs = [cet_input(v, h, budget=cfg.cet.input_tokens) for v, h in zip(views, hits, strict=True)]
    bare = [cet_input(v, [], budget=cfg.cet.input_tokens) for v in views]
    task_key = _digest([t.model_dump_json() for t in tasks], [inp.render() for inp in inputs],
                       cfg.llm.roles.generator, opts.max_tokens, cfg.run.seed, cfg.exec.model_dump(mode="json"))
    (run.path / "arms").mkdir(exist_ok=True)

    skipped: dict[str, str] = {}
    checkpoints: dict[str, Path | None] = {}
    for arm in opts.arms:
        if arm in NO_CET:
            continue
        if arm == "skip_phase2":
            checkpoints[arm], why = train_skip_phase2(cfg, opts, retriever, on_step)
        else:
            checkpoints[arm] = checkpoint_of(cfg, opts, arm)
            why = None if checkpoints[arm] else {
                "all": "no Phase 4 CET given (--phase4: a `cet retrain` candidate)",
                "skip_phase3": "no Phase 4 retraining of the Phase 2 CET given (--skip-phase3)"}.get(
                arm, f"no checkpoint for {arm}")
        if why:
            skipped[arm] = why
    target = TARGET if TARGET not in skipped and TARGET in opts.arms else None

    outcomes: dict[str, list[bool]] = {}
    rows: dict[str, list[dict[str, Any]]] = {}
    quality: dict[str, list[dict[str, Any]]] = {}
    target_contexts: list[Engineered] | None = None
    arms = [a for a in opts.arms if a not in skipped and a != "sections"]
    if "sections" in opts.arms and target is None:
        skipped["sections"] = "no target CET (phase1-3) to remove sections from"
    if not arms:
        raise CetError("no arm can run: " + "; ".join(f"{a}: {why}" for a, why in skipped.items()))
    pending = list(arms)
    while pending:
        arm = pending.pop(0)
        ckpt = checkpoints.get(arm)
        keyed = checkpoints.get("sections") if arm.startswith("minus_") else ckpt  # a section arm: the target's
        key = _digest(task_key, arm, checkpoint_digest(keyed) if keyed else None)
        saved = _keyed(run.path / "arms" / f"{arm}.json", key)
        if saved is not None and arm != TARGET:
            outcomes[arm], rows[arm], quality[arm] = saved["outcomes"], saved["rows"], saved["quality"]
            continue
        on_step(f"ablation: {arm}")
        stored = _keyed(run.path / "arms" / f"{arm}.contexts.json", key)
        engine = engine_key(cfg, ckpt, _arm_inputs(arm, ckpt, views, inputs, bare)) \
            if ckpt is not None and arm != "sections" and not arm.startswith("minus_") else None
        same = _same_contexts(run.path / "arms", engine) if engine else None
        if stored is not None:
            contexts = [_engineered_from(d) for d in stored["contexts"]]
        elif same is not None:  # the same model on the same inputs: the contexts another arm engineered
            contexts = [_engineered_from(d) for d in same["contexts"]]
            run.write_json(f"arms/{arm}.contexts.json", {"key": key, "engine": engine, "reused_from": same["arm"],
                                                         "contexts": same["contexts"]})
        else:
            partial = run.path / "arms" / f"{arm}.contexts.partial.json"
            done = [_engineered_from(d) for d in (_keyed(partial, key) or {"contexts": []})["contexts"]]

            def keep(so_far: list[Engineered], arm: str = arm, key: str = key) -> None:
                run.write_json(f"arms/{arm}.contexts.partial.json",
                               {"key": key, "contexts": [_engineered_to(e) for e in so_far]})
                on_step(f"ablation: {arm} contexts {len(so_far)}/{len(views)}")

            contexts = _contexts(cfg, arm, ckpt, views, inputs, bare, target_contexts, done, keep)
            if contexts is not None and not arm.startswith("minus_"):  # engineered once, kept for a resume
                run.write_json(f"arms/{arm}.contexts.json", {"key": key, "engine": engine, "arm": arm, "contexts": [
                    _engineered_to(e) for e in contexts]})
                partial.unlink(missing_ok=True)
        if arm == TARGET:
            target_contexts = contexts
            if "sections" in opts.arms:
                pending += [s for s in section_arms(contexts) if s not in pending]
            if saved is not None:
                outcomes[arm], rows[arm], quality[arm] = saved["outcomes"], saved["rows"], saved["quality"]
                continue
        prompts = {arm: _arm_prompts(arm, views, inputs, hits, contexts)}
        leaks = check_leaks(views, prompts, guard.index)
        if leaks:
            run.write_json("leaks.json", leaks)
            raise CetError(f"{len(leaks)} prompts of arm {arm} leak held-out text; see {run.path}/leaks.json")
        result, arm_rows, _ = generate_and_run(cfg, eval_opts, views, prompts,
                                               {arm: list(contexts)} if contexts else {}, on_step)
        outcomes[arm], rows[arm] = result[arm], arm_rows
        quality[arm] = intrinsic(views, bare if arm == "no_retrieval" else inputs, [], prompts,
                                 {arm: list(contexts)} if contexts else {})[arm]
        run.write_json(f"arms/{arm}.json", {"key": key, "outcomes": outcomes[arm], "rows": rows[arm],
                                            "quality": quality[arm], "checkpoint": str(ckpt) if ckpt else None})

    comparisons = compare_conditions(outcomes, target, [a for a in outcomes if a != target]) if target else {}
    result = {
        "target": target, "arms": list(outcomes), "skipped_arms": skipped,
        "tasks": [t.id for t in tasks], "skipped_tasks": skipped_tasks,
        "tasks_by_source": dict(Counter(t.metadata.source for t in tasks)),
        "pass_rates": pass_rates(outcomes), "comparisons": comparisons,
        "by_source": {s: {a: {"passed": sum(o[i] for i, t in enumerate(tasks) if t.metadata.source == s),
                              "n": sum(t.metadata.source == s for t in tasks)} for a, o in outcomes.items()}
                      for s in sorted({t.metadata.source for t in tasks})},
        "failure_classes": {a: dict(Counter(r["failure_class"] for r in rows[a])) for a in rows},
        "phase_metrics": phase_metrics(cfg, opts, outcomes, rows, quality),
        "checkpoints": {a: str(c) if c else None for a, c in checkpoints.items()},
        "generator": cfg.llm.roles.generator, "seed": cfg.run.seed, "max_tokens": opts.max_tokens,
    }
    run.log_metrics("ablation", {k: result[k] for k in ("pass_rates", "comparisons")})
    result["plots"] = plots(result, run.plots)
    return result


def _keyed(path: Path, key: str) -> dict[str, Any] | None:
    """A file the run saved (an arm, its contexts, the contexts kept so far), when saved under `key`: the same tasks,
    checkpoint and settings; None when it is not there or belongs to other ones."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return data if data.get("key") == key else None


def _contexts(cfg: CetConfig, arm: str, ckpt: Path | None, views: Sequence[TaskView], inputs: Sequence[CETInput],
              bare: Sequence[CETInput], target_contexts: Sequence[Engineered] | None,
              done: Sequence[Engineered] = (), keep: Callable[[list[Engineered]], None] | None = None
              ) -> list[Engineered] | None:
    """An arm's contexts: none (raw, naive RAG), the template's, the target's less a section, or engineered by the
    arm's CET (continuing after `done`, each batch handed to `keep`)."""
    if arm in PROMPT_ONLY:
        return None
    if arm == "template":
        return [template_context(inp) for inp in inputs]
    if arm.startswith("minus_"):
        assert target_contexts is not None
        return [without_section(e, arm.removeprefix("minus_"), inp) for e, inp in zip(target_contexts, inputs,
                                                                                     strict=True)]
    assert ckpt is not None
    return engineer_with(cfg, ckpt, _arm_inputs(arm, ckpt, views, inputs, bare), done, keep)


def _arm_inputs(arm: str, ckpt: Path, views: Sequence[TaskView], inputs: Sequence[CETInput],
                bare: Sequence[CETInput]) -> list[CETInput]:
    """What an arm's CET reads: the inputs (without retrieved chunks for no_retrieval), with the playbook a Phase 3
    CET was trained with."""
    chosen = list(bare if arm == "no_retrieval" else inputs)
    if (ckpt / "playbook.json").is_file():
        chosen = with_playbook(views, chosen, Playbook.load(ckpt / "playbook.json"))
    return chosen


def model_digest(where: Path) -> str:
    """What a CET checkpoint computes, apart from its bookkeeping (the config and options it was trained under):
    the adapter's weights, its settings (lists in any order), its base, chat template and tokenizer. Two
    checkpoints of the same weights (a Phase 3 run whose early stopping kept its start) have the same digest."""
    digest = hashlib.sha256()
    for path in sorted(p for p in where.iterdir() if p.is_file()):
        if path.name in ("README.md", "playbook.json", CONFIG_FILE) or path.name.startswith("playbook-"):
            continue
        digest.update(path.name.encode())
        if path.name == MANIFEST:
            digest.update(json.dumps(json.loads(path.read_text())["base"]).encode())
        elif path.name == "adapter_config.json":
            settings = {k: sorted(v) if isinstance(v, list) and all(isinstance(x, str) for x in v) else v
                        for k, v in json.loads(path.read_text()).items()}
            digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
        else:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def engine_key(cfg: CetConfig, ckpt: Path, chosen: Sequence[CETInput]) -> str:
    """The identity of an arm's contexts before they are made: the model, exactly what it reads, the CET's
    decoding settings and the seed (greedy with one llama.cpp slot, so the same key gives the same contexts)."""
    return _digest(model_digest(ckpt), [[input_messages(i), section_choices(i)] for i in chosen],
                   cfg.cet.model_dump(mode="json"), cfg.llm.n_parallel, cfg.run.seed)


def _same_contexts(arms_dir: Path, engine: str) -> dict[str, Any] | None:
    """A finished arm's contexts made by the same model from the same inputs (`engine_key`), if any."""
    for path in sorted(arms_dir.glob("*.contexts.json")):
        data = json.loads(path.read_text())
        if data.get("engine") == engine and "reused_from" not in data:
            return {"arm": data.get("arm") or path.name.removesuffix(".contexts.json"), "contexts": data["contexts"]}
    return None


def phase_metrics(cfg: CetConfig, opts: AblationOptions, outcomes: dict[str, list[bool]],
                  rows: dict[str, list[dict[str, Any]]], quality: dict[str, list[dict[str, Any]]]
                  ) -> dict[str, Any]:
    """The phase-specific metrics (seed 7.1), each from where it is measured; "not recorded" where it is not."""
    phase1 = _last_metrics(checkpoint_of(cfg, opts, "phase1"), "phase1/round")
    phase2 = _last_metrics(checkpoint_of(cfg, opts, "phase1-2"), "phase2")
    simulation = _simulation(opts.simulation)
    return {
        "phase1_grounded_answer_accuracy": {
            "cet_pass_rate": phase1.get("cet_pass_rate"), "team_pass_rate": phase1.get("team_pass_rate"),
            "questions": phase1.get("questions"), "where": "the Phase 1 run's last round (sandbox-verified answers)"}
        if phase1 else "not recorded",
        "phase2_transformation_quality": {
            "pairs_by_kind": phase2.get("by_kind") if phase2 else "not recorded",
            "held_out_requirements": {a: {m: v.get("mean") for m, v in aggregate(q).items()
                                          if m in ("structure_valid", "traceable", "hidden_fact_recall.overall",
                                                   "context_recall.overall")}
                                      for a, q in quality.items() if a not in PROMPT_ONLY},
            "note": "the held-out tasks are requirements; partial-code and bug-report contexts are scored in Phase 2's "
                    "own run"},
        "phase3_pass_at_1_and_reward": {a: {"pass_at_1": sum(o) / len(o) if o else None,
                                            "mean_reward": _mean([r.get("reward") for r in rows[a]])}
                                        for a, o in outcomes.items()},
        "phase4_online": simulation or "not recorded (give --simulation RUN_DIR of `cet simulate`)",
    }


def _last_metrics(checkpoint: Path | None, step: str) -> dict[str, Any]:
    if checkpoint is None:
        return {}
    manifest = json.loads((checkpoint / MANIFEST).read_text())
    # a round's checkpoint (<run>/checkpoints/round-N) names no run directory: it sits inside one
    run_dir = manifest.get("run_dir") or (checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else None)
    metrics = Path(run_dir or "") / "metrics.jsonl"
    if not run_dir or not metrics.is_file():
        return {}
    found: dict[str, Any] = {}
    for line in metrics.read_text().splitlines():
        entry = json.loads(line)
        if str(entry.get("step", "")).startswith(step):
            found = entry
    return found


def _simulation(where: str | None) -> dict[str, Any] | None:
    if not where:
        return None
    summary = Path(where) / "summary.json"
    if not summary.is_file():
        raise CetError(f"{where} is not a `cet simulate` run directory (no summary.json)")
    data = json.loads(summary.read_text())
    return {k: data.get(k) for k in ("arms", "pass_rates", "decision", "clustered", "tasks") if k in data}


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def plots(result: dict[str, Any], where: Path) -> list[str]:
    rates = result["pass_rates"]
    made = [grouped_bars({"pass rate": {a: v["rate"] for a, v in rates.items()}},
                         f"Ablation: generator pass rate on {len(result['tasks'])} held-out tasks",
                         where / "ablation.png")]
    if result["comparisons"]:
        made.append(interval_dots({a: (c["difference"], c["ci95"][0], c["ci95"][1])
                                   for a, c in result["comparisons"].items()},
                                  f"{result['target']} minus each arm, with 95% intervals",
                                  where / "ablation_difference.png", "difference in pass rate"))
    return [str(p) for p in made]


__all__ = ["AblationOptions", "OTHER_ARMS", "PHASE_ARMS", "TARGET", "resumed_options", "run_ablation",
           "stored_options"]


def render_ablation(result: dict[str, Any]) -> list[str]:
    """The report's markdown: the arms table, the phase-specific metrics, what was skipped and why."""
    target = result["target"]
    sources = ", ".join(f"{k} {v}" for k, v in result["tasks_by_source"].items())
    lines = [f"Tasks: {len(result['tasks'])} held-out ({sources}); "
             f"generator {', '.join(result['generator'])}, greedy, max {result['max_tokens']} tokens; seed "
             f"{result['seed']}. Target: **{target}**; each arm against it by exact McNemar, Holm-corrected over "
             f"{len(result['comparisons'])} comparisons.", "",
             "| arm | passed | pass rate [95% CI] | target − arm [95% CI] | p (Holm) | detectable at 80% power |",
             "|---|---|---|---|---|---|"]
    for arm, rate in result["pass_rates"].items():
        c = result["comparisons"].get(arm)
        diff = f"{c['difference']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]" if c else "(target)"
        p = f"{c['p_holm']:.3f}" if c else ""
        mdd = f"{c['mdd']:.3f}" if c and c.get("mdd") is not None else ""
        lines.append(f"| {arm} | {rate['passed']}/{rate['n']} | {rate['rate']:.3f} [{rate['ci95'][0]:.3f}, "
                     f"{rate['ci95'][1]:.3f}] | {diff} | {p} | {mdd} |")
    if result["skipped_arms"]:
        lines += ["", "Skipped arms:"] + [f"- {a}: {why}" for a, why in result["skipped_arms"].items()]
    metrics = result["phase_metrics"]
    lines += ["", "## Phase-specific metrics", "", "| phase | metric | value |", "|---|---|---|"]
    p1 = metrics["phase1_grounded_answer_accuracy"]
    lines.append("| 1 | grounded-answer accuracy (CET / team) | "
                 + (f"{p1['cet_pass_rate']} / {p1['team_pass_rate']} on {p1['questions']} questions |"
                    if isinstance(p1, dict) else f"{p1} |"))
    p2 = metrics["phase2_transformation_quality"]
    lines.append(f"| 2 | training pairs by kind | {p2['pairs_by_kind']} |")
    for arm, values in p2["held_out_requirements"].items():
        shown = ", ".join(f"{k} {v:.2f}" for k, v in values.items() if v is not None)
        lines.append(f"| 2 | {arm}: held-out requirement contexts | {shown} |")
    for arm, values in metrics["phase3_pass_at_1_and_reward"].items():
        reward = f"{values['mean_reward']:.3f}" if values["mean_reward"] is not None else "–"
        lines.append(f"| 3 | {arm}: pass@1 / mean reward | {values['pass_at_1']:.3f} / {reward} |")
    lines.append(f"| 4 | online (simulation) | {metrics['phase4_online']} |")
    lines += ["", "## By source", ""]
    for source, arms in result["by_source"].items():
        lines.append(f"- {source}: " + ", ".join(f"{a} {v['passed']}/{v['n']}" for a, v in arms.items()))
    lines += ["", *[f"![{Path(p).stem}](plots/{Path(p).name})" for p in result.get("plots", [])]]
    return lines
