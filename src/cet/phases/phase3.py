"""Phase 3: interactive optimisation. The CET learns from what happens when its context is used.

    dev score 0  = the starting CET's greedy contexts on the dev tasks, rolled out (the bar a round must beat)
    per round r:
        candidates  raw, template, the CET's greedy context and `samples` sampled ones (phases/rollouts.py)
        rollouts    every candidate x every generator, on the training tasks' hidden tests (rollouts.jsonl)
        failures    mined into the playbook: new items for frequent patterns, evidence merged (playbook v+1)
        playbook    the task's matching items as candidates (alone, and with the interface), rolled out
        effects     what the items did against raw, merged; items that hurt retired (playbook v+1)
        learning    ReST-EM: per task the candidate of the highest robust reward (raw, and so "## Nothing to add",
                    unless a context beats it by cet.phase3.min_gain; ties go to the shorter context) -> SFT; or
                    DPO: that best against the worst candidate, when their robust rewards differ
        dev         the trained CET's greedy contexts on the dev tasks, rolled out: the round is kept only if its
                    dev score beats the best so far; else training stops (early stopping) and the best stays
    checkpoint   data/cet/phase3 (+ its playbook.json), and the run directory's copy
    (before all)  with --conversations: the synthetic conversations' first attempts, re-run on their training
                 tasks' hidden tests (conversation-rollouts.jsonl), mined into the playbook once (failures only)
    repair       the raw task's failed attempts on the rollout tasks: bug report -> the final CET's debugging
                 context -> one more attempt, at most cet.phase3.repair_rounds rounds (phases/repair.py); fix rates
                 by failure class

Training tasks only (the train split; HumanEval is evaluation-only and never read here); the dev tasks are training
tasks apart from the rollout tasks. The CET's input for a task holds the playbook items that match it, so a context
that carries an item stays traceable to its input (a target that is not is dropped and counted).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from statistics import fmean
from typing import Any

from cet.config import CetConfig
from cet.data.baselines import rule_based_context, rule_interface
from cet.data.gold_context import section_choices, untraceable
from cet.data.playbook import Playbook
from cet.data.task_input import TaskView, cet_input, task_view
from cet.errors import CetError
from cet.model.cet import MANIFEST, CETModel
from cet.model.context import EngineeredContext, parse_context
from cet.model.preference import preference_pair, train_dpo
from cet.model.prompts import CETInput, input_messages
from cet.model.training import data_version, sft_example, train_sft
from cet.phases.common import (
    TRAIN_SPLITS,
    assert_trainable,
    held_out_slugs,
    load_tasks,
    read_conversations,
    read_jsonl,
    retrieve,
    sample_balanced,
    sandbox_executor,
)
from cet.phases.playbook_mining import effect_delta, failure_delta, item_table, pattern_table
from cet.phases.repair import REPAIRS, repair_failures
from cet.phases.rollouts import (
    ROLLOUTS,
    Candidate,
    Work,
    by_candidate,
    distinct,
    items_in,
    playbook_candidates,
    roll_out,
    rollout_record,
)
from cet.runs import RunDir

DEV_ROLLOUTS = "dev-rollouts.jsonl"
CONVERSATION_ROLLOUTS = "conversation-rollouts.jsonl"  # the conversations' first attempts, re-run (seed the playbook)
STATE = "phase3-state.json"
PLAYBOOK_DIR = "playbook"
BUDGETS: dict[str, dict[str, int]] = {
    # a demonstration that fits `make run`: a few tasks, one generator pass each, one round
    "demo": {"tasks": 4, "dev_tasks": 3, "rounds": 1, "samples": 1},
    # the real thing (resumable: rerun with --resume until it finishes)
    "large": {"tasks": 240, "dev_tasks": 48, "rounds": 3, "samples": 2},
}


@dataclass
class Phase3Options:
    tasks: int = 4  # training tasks rolled out each round
    dev_tasks: int = 3  # other training tasks: the early-stopping set
    rounds: int = 1
    samples: int | None = None  # default cet.phase3.samples
    generators: tuple[str, ...] | None = None  # default cet.phase3.generators
    learner: str | None = None  # default cet.phase3.learner
    start_from: str | None = None  # default: data/cet/phase2, else phase1, else the base
    epochs: float | None = None  # default cet.train.epochs
    sets: tuple[str, ...] = ("exercism", "leetcode")
    conversations: str | None = None  # `cet data conversations` output: its failing first attempts seed the playbook


def options_for(budget: str, **changes: Any) -> Phase3Options:
    if budget not in BUDGETS:
        raise CetError(f"unknown Phase 3 budget {budget!r}; choose from {', '.join(BUDGETS)}")
    return replace(Phase3Options(**BUDGETS[budget]), **{k: v for k, v in changes.items() if v is not None})


@dataclass
class TaskSetup:
    view: TaskView
    hits: list[Any]

    def input(self, cfg: CetConfig, playbook: Playbook) -> CETInput:
        """What the CET reads: the evaluation's input, plus the playbook items that match the task."""
        inp = cet_input(self.view, self.hits, budget=cfg.cet.input_tokens)
        return replace(inp, playbook=playbook.texts_for_view(self.view))


def run_phase3(cfg: CetConfig, opts: Phase3Options, run: RunDir, retriever: Any,
               on_step: Callable[[str], None] = lambda _: None, quiet: bool = False) -> dict[str, Any]:
    """The loop in the module's docstring. Every step is resumable from the run directory: the options of the first
    call (a resumed run keeps its task split and plan whatever flags it is given), each round's candidates
    (`round-N/candidates.jsonl`), the rollouts, each playbook update (`playbook/playbook-vN.json`, marked done in
    `phase3-state.json`, so no evidence is counted twice), each round's result and an early stop."""
    state = _load_state(run.path)
    opts = Phase3Options(**{**state["options"], "sets": tuple(state["options"]["sets"]),
                            "generators": tuple(state["options"]["generators"])}) if "options" in state else opts
    p3 = cfg.cet.phase3
    generators = list(opts.generators or p3.generators)
    if not generators:
        raise CetError("Phase 3 needs at least one generator (cet.phase3.generators)")
    check_generators(generators)
    opts = replace(opts, generators=tuple(generators), learner=opts.learner or p3.learner,
                   samples=p3.samples if opts.samples is None else opts.samples)
    state["options"] = asdict(opts)
    train, dev = setups(cfg, opts, retriever)
    playbook = Playbook.load(run.path / PLAYBOOK_DIR) if (run.path / PLAYBOOK_DIR).is_dir() else \
        starting_playbook(cfg, opts)
    if opts.conversations:  # before any rollout, so the dev score of the start already reads the seeded playbook
        playbook = seeded_playbook(cfg, opts.conversations, run, state, playbook, {s_.view.task.id for s_ in dev},
                                   opts.sets)
    rounds: list[dict[str, Any]] = list(state.get("rounds", []))
    best = state.get("best")
    cet = CETModel.load(run.path / f"round-{best['round']}" / "checkpoint", cfg, trainable=True) \
        if best and best["round"] else start_model(cfg, opts)
    if best is None:
        playbook.save(run.path / PLAYBOOK_DIR)  # the starting version, so every version is on disk
        on_step(f"phase 3: dev score of the starting CET on {len(dev)} tasks")
        best = {"round": 0, "playbook_version": playbook.version,
                **dev_score(cfg, cet, playbook, dev, generators, run, 0, on_step)}
    state.update(best=best, rounds=rounds)
    _save_state(run.path, state)
    stats: list[dict[str, Any]] = []
    for r in range(len(rounds) + 1, opts.rounds + 1):
        if state.get("stopped"):
            break
        marks = state.setdefault("steps", {}).setdefault(f"r{r}", {})

        on_step(f"phase 3: round {r}: candidate contexts for {len(train)} tasks")
        works = round_candidates(cfg, cet, train, playbook, opts.samples or 0, r, run.path / f"round-{r}")
        records, s = roll_out(cfg, works, generators, run.path / ROLLOUTS, round_=r, max_tokens=p3.max_tokens,
                              on_step=on_step)
        stats.append({"round": r, "pass": "candidates", **s.to_dict()})
        wanted = {(w.view.task.id, c.key) for w in works for c in w.candidates}
        # failures are counted once: from this round's candidate rollouts
        playbook = updated(run, state, marks, "failures", playbook, failure_delta,
                           [x for x in records if x["round"] == r and (x["task_id"], x["key"]) in wanted])
        works = [Work(w.view, s_.input(cfg, playbook), []) for w, s_ in zip(works, train, strict=True)]
        for w in works:
            w.candidates = playbook_candidates(w.inp, playbook, rule_interface(f"{w.inp.interface}\n{w.inp.task}"))
            wanted |= {(w.view.task.id, c.key) for c in w.candidates}
        with_items = [w for w in works if w.candidates]
        if with_items:
            on_step(f"phase 3: round {r}: playbook v{playbook.version} candidates for {len(with_items)} tasks")
            _, s = roll_out(cfg, with_items, generators, run.path / ROLLOUTS, round_=r, max_tokens=p3.max_tokens,
                            on_step=on_step)
            stats.append({"round": r, "pass": "playbook", **s.to_dict()})
        # this round's candidates (a context rolled out in an earlier round is not rolled out again)
        round_records = [x for x in read_jsonl(run.path / ROLLOUTS) if (x["task_id"], x["key"]) in wanted]
        # an item's effect is counted once: from this round's rollouts that carried it, against raw's
        playbook = updated(run, state, marks, "effects", playbook, effect_delta,
                           [x for x in round_records if (x["items"] and x["round"] == r) or x["candidate"] == "raw"])
        groups = by_candidate(round_records, generators, p3.robustness_lambda)
        inputs = {s_.view.task.id: s_.input(cfg, playbook) for s_ in train}
        on_step(f"phase 3: round {r}: training ({opts.learner})")
        training = learn(cfg, opts, cet, groups, inputs, opts.learner or p3.learner, run.path / f"round-{r}", quiet)
        score = dev_score(cfg, cet, playbook, dev, generators, run, r, on_step)
        improved = score["score"] > best["score"]
        rounds.append({"round": r, "training": training, "dev": score, "improved": improved,
                       "playbook_version": playbook.version})
        # every round's CET is kept in its run directory (with the playbook it read); the best one is the product
        kept = cet.save(run.path / f"round-{r}" / "checkpoint", "phase3", training.get("data_version"), opts,
                        round=r)
        playbook.save(kept)
        if improved:
            best = {"round": r, "playbook_version": playbook.version, **score}
        else:
            state["stopped"] = (f"round {r}'s dev score {score['score']} did not beat round {best['round']}'s "
                                f"{best['score']}")
        state.update(best=best, rounds=rounds)
        _save_state(run.path, state)
    used = Playbook.load(run.path / PLAYBOOK_DIR / f"playbook-v{best['playbook_version']}.json")
    final = finish(cfg, opts, best, used, run)
    repairs = None
    if p3.repair_rounds:
        # the raw task's failed attempts on the training tasks, repaired with the final CET's debugging contexts
        ids = {s_.view.task.id for s_ in train}
        failed = [x for x in read_jsonl(run.path / ROLLOUTS) if x["candidate"] == "raw" and not x["passed"]
                  and x["task_id"] in ids]
        repairer = CETModel.load(final, cfg)
        try:
            repairs = repair_failures(cfg, repairer, failed, {s_.view.task.id: s_.view for s_ in train},
                                      {s_.view.task.id: s_.hits for s_ in train}, used, run.path / REPAIRS,
                                      p3.repair_rounds, on_step)
        finally:
            repairer.close_engine()
    records = read_jsonl(run.path / ROLLOUTS) + read_jsonl(run.path / DEV_ROLLOUTS)
    latest = Playbook.load(run.path / PLAYBOOK_DIR)
    result = {
        "checkpoint": str(final), "generators": generators, "learner": opts.learner, "samples": opts.samples,
        "options": state["options"],
        "train_tasks": [s_.view.task.id for s_ in train], "dev_tasks": [s_.view.task.id for s_ in dev],
        "rounds": rounds, "best_round": best["round"], "dev_best": best, "early_stop": state.get("stopped"),
        "rollout_stats": stats, "rollouts": len(records),
        "conversation_rollouts": state.get("conversation_rollouts"),
        "by_candidate": candidate_summary(records, generators),
        "failure_patterns": pattern_table(records),
        # the playbook the saved CET reads (the best round's), and the latest the mining reached
        "playbook": {"version": used.version, "items": item_table(used)},
        "playbook_latest": {"version": latest.version, "items": item_table(latest)},
        "repairs": repairs, "rollouts_file": str(run.path / ROLLOUTS),
    }
    run.log_metrics("phase3", {k: result[k] for k in ("best_round", "dev_best", "rollouts", "by_candidate")})
    cet.close_engine()
    return result


def updated(run: RunDir, state: dict[str, Any], marks: dict[str, Any], step: str, playbook: Playbook,
            delta: Callable[[Sequence[dict[str, Any]], Playbook], dict[str, Any]],
            records: Sequence[dict[str, Any]]) -> Playbook:
    """A playbook update made once: its version is marked done in the state; a resumed run reads that version back
    instead of counting the same rollouts' evidence again."""
    if step in marks:
        return Playbook.load(run.path / PLAYBOOK_DIR / f"playbook-v{marks[step]}.json")
    new = playbook.apply(delta(records, playbook))
    new.save(run.path / PLAYBOOK_DIR)
    marks[step] = new.version
    _save_state(run.path, state)
    return new


SPEC_KINDS = ("gguf", "openai", "openai-compatible", "anthropic", "gemini", "hf")


def check_generators(generators: Sequence[str]) -> None:
    """Every generator names a model the team can open (a catalog name, a .gguf path or a provider spec): one clear
    error before any work, not a run of failed rollouts."""
    from cet.llm.catalog import CATALOG

    for name in generators:
        prefix, sep, rest = name.partition(":")
        if name in CATALOG or name.lower().endswith(".gguf") or (sep and prefix.lower() in SPEC_KINDS
                                                                    and rest.strip()):
            continue
        raise CetError(f"unknown generator {name!r}: name a catalog model ({', '.join(sorted(CATALOG))}), a .gguf "
                       f"file or a provider spec ({', '.join(k + ':...' for k in SPEC_KINDS)})")


# ------------------------------------------------------------------------------------------------------ setup


def setups(cfg: CetConfig, opts: Phase3Options, retriever: Any) -> tuple[list[TaskSetup], list[TaskSetup]]:
    """The rollout tasks and the dev tasks: training tasks drawn balanced across sets, each with its view (tests
    split as in the evaluation) and its retrieved chunks (held-out documents kept out)."""
    tasks = load_tasks(cfg, TRAIN_SPLITS, opts.sets)
    assert_trainable(tasks)
    drawn = sample_balanced(tasks, opts.tasks + opts.dev_tasks, random.Random(cfg.run.seed + 5))
    guard = held_out_slugs(cfg)
    found: list[TaskSetup] = []
    for task in drawn:
        try:
            view = task_view(task, cfg.exec.visible_tests)
        except CetError:
            continue  # its tests cannot be split: no hidden part to decide a verdict
        found.append(TaskSetup(view, retrieve(retriever, view.statement, cfg.cet.top_k, guard)))
    if len(found) < 2:
        raise CetError(f"Phase 3 needs at least 2 training tasks whose tests split; found {len(found)}")
    dev = min(opts.dev_tasks, len(found) // 2)
    return found[dev:dev + opts.tasks], found[:dev]


def seeded_playbook(cfg: CetConfig, conversations: str, run: RunDir, state: dict[str, Any], playbook: Playbook,
                    dev_ids: set[str], sets: Sequence[str]) -> Playbook:
    """`playbook` with the failure patterns of the conversations' first attempts mined in, once: the re-run attempts
    go to conversation-rollouts.jsonl and the step is marked done in the state, so a resumed run (which loaded its
    latest playbook) gets that playbook back untouched."""
    if "conversations" in state.get("steps", {}).get("r0", {}):
        return playbook
    marks = state.setdefault("steps", {}).setdefault("r0", {})
    playbook.save(run.path / PLAYBOOK_DIR)  # the starting version, so every version is on disk
    records, skipped = read_conversations(conversations)
    seeds = conversation_failures(cfg, records, dev_ids, sets)
    (run.path / CONVERSATION_ROLLOUTS).write_text("".join(json.dumps(x, default=str) + "\n" for x in seeds),
                                                  encoding="utf-8")
    state["conversation_rollouts"] = {"conversations": len(records), "skipped_records": skipped,
                                      "rollouts": len(seeds), "failed": sum(not x["passed"] for x in seeds)}
    return updated(run, state, marks, "conversations", playbook, failure_delta, seeds)


def conversation_failures(cfg: CetConfig, conversations: Sequence[dict[str, Any]], dev_ids: set[str],
                          sets: Sequence[str]) -> list[dict[str, Any]]:
    """The first attempts of synthetic conversations (`cet data conversations`) as round-0 rollout records for the
    failure mining: each re-run in the sandbox on its training task's hidden tests, as a rollout is. The dev tasks'
    conversations are left out (early stopping judges on tasks no training signal came from). They carry no
    playbook item, so they are evidence of failure patterns only, never of an item's effect."""
    tasks = {t.id: t for t in load_tasks(cfg, TRAIN_SPLITS, sets)}
    todo, seen = [], set()
    for record in conversations:
        code = (record.get("first_attempt") or {}).get("code")
        task = tasks.get(record.get("task_id", ""))
        fresh = task is not None and task.id not in dev_ids and (task.id, code) not in seen
        if not fresh or not isinstance(code, str) or not code.strip():
            continue
        seen.add((task.id, code))
        try:
            view = task_view(task, cfg.exec.visible_tests)
        except CetError:
            continue  # no hidden part to judge by
        models = ((record.get("provenance") or {}).get("models") or {})
        generators = models.get("generator") if isinstance(models, dict) else None
        generator = generators[0] if isinstance(generators, list) and generators and isinstance(generators[0], str) \
            else "conversation"
        todo.append((view, code, generator))
    if not todo:
        return []
    # no engineered context (its key is raw's): these records are kept apart in conversation-rollouts.jsonl and never
    # meet the rollouts whose keys the candidates' comparisons read
    candidate = Candidate("conversation")
    with sandbox_executor(cfg) as executor:
        results = executor.run_many((view.hidden, code) for view, code, _ in todo)
        return [rollout_record(Work(view, cet_input(view, [], budget=cfg.cet.input_tokens), []), candidate,
                               generator, None, code, result, 0)
                for (view, code, generator), result in zip(todo, results, strict=True)]


def start_model(cfg: CetConfig, opts: Phase3Options) -> CETModel:
    if opts.start_from:
        return CETModel.load(opts.start_from, cfg, trainable=True)
    for phase in ("phase2", "phase1"):
        path = Path(cfg.cet.checkpoints_dir) / phase
        if (path / MANIFEST).is_file():
            return CETModel.load(path, cfg, trainable=True)
    return CETModel.from_base(cfg)


def starting_playbook(cfg: CetConfig, opts: Phase3Options) -> Playbook:
    """The playbook the starting CET was trained with (a Phase 3 checkpoint's), else an empty one."""
    where = Path(opts.start_from) if opts.start_from else Path(cfg.cet.checkpoints_dir) / "phase3"
    return Playbook.load(where / "playbook.json") if opts.start_from else Playbook()


def round_candidates(cfg: CetConfig, cet: CETModel, train: Sequence[TaskSetup], playbook: Playbook, samples: int,
                     round_: int, where: Path) -> list[Work]:
    """The round's candidates, made once and kept in `where/candidates.jsonl` (a resumed round reads them back:
    sampling the CET again could give other contexts)."""
    path = where / "candidates.jsonl"
    inputs = {s.view.task.id: s.input(cfg, playbook) for s in train}
    if path.is_file():
        kept: dict[str, list[Candidate]] = {}
        for row in read_jsonl(path):
            kept.setdefault(row["task_id"], []).append(
                Candidate(row["name"], EngineeredContext.from_dict(row["context"]), tuple(row["items"])))
        if set(kept) == set(inputs):
            return [Work(s.view, inputs[s.view.task.id], kept[s.view.task.id]) for s in train]
    works = candidate_works(cfg, cet, train, playbook, samples, round_)
    where.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.partial")
    tmp.write_text("".join(json.dumps({"task_id": w.view.task.id, "name": c.name, "context": c.context.to_dict(),
                                       "items": list(c.items)}, ensure_ascii=False) + "\n"
                           for w in works for c in w.candidates), encoding="utf-8")
    tmp.replace(path)
    return works


def candidate_works(cfg: CetConfig, cet: CETModel, train: Sequence[TaskSetup], playbook: Playbook, samples: int,
                    round_: int) -> list[Work]:
    """Each task's candidates: raw, the template, the CET's greedy context and its samples."""
    inputs = [s.input(cfg, playbook) for s in train]
    items = [{"input": inp, "choices": section_choices(inp)} for inp in inputs]
    try:
        drafts = [cet.engineer(items)]
        for k in range(samples):
            drafts.append(cet.engineer(items, temperature=cfg.cet.phase3.temperature,
                                       seed=cfg.run.seed + 1000 * round_ + k))
    finally:
        cet.close_engine()
    works = []
    for i, (setup, inp) in enumerate(zip(train, inputs, strict=True)):
        plain = cet_input(setup.view, setup.hits, budget=cfg.cet.input_tokens)  # the evaluation's template input
        found = [Candidate("raw"), Candidate("template", rule_based_context(plain))]
        for k, replies in enumerate(drafts):
            reply = replies[i]
            if reply.parsed is not None and reply.error is None and reply.parsed.valid:
                context = reply.parsed.context
                found.append(Candidate("cet" if k == 0 else f"cet@{k}", context, items_in(context, playbook)))
        works.append(Work(setup.view, inp, distinct(found)))
    return works


# --------------------------------------------------------------------------------------------------- learning


def best_and_worst(entries: Sequence[dict[str, Any]], min_gain: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The task's best candidate (highest robust reward, ties to fewer context tokens; raw unless another beats it by
    `min_gain`) and its worst (lowest robust reward, ties to more tokens)."""
    raw = next((e for e in entries if e["context"] == ""), None)
    ranked = sorted(entries, key=lambda e: (-e["robust"], e["context_tokens"]))
    best = ranked[0]
    if raw is not None and best is not raw and best["robust"] - raw["robust"] <= min_gain:
        best = raw
    worst = sorted(entries, key=lambda e: (e["robust"], -e["context_tokens"]))[0]
    return best, worst


def learn(cfg: CetConfig, opts: Phase3Options, cet: CETModel, groups: dict[str, list[dict[str, Any]]],
          inputs: dict[str, CETInput], learner: str, out: Path, quiet: bool) -> dict[str, Any]:
    """ReST-EM (SFT on each task's best context) or DPO (best against worst); targets that are not traceable to the
    input the CET reads are dropped and counted."""
    settings = cfg.cet.train.model_copy(update={"epochs": opts.epochs}) if opts.epochs else cfg.cet.train
    examples, pairs, dropped, chosen = [], [], 0, Counter()
    for task_id, entries in groups.items():
        inp = inputs.get(task_id)
        if inp is None:
            continue
        best, worst = best_and_worst(entries, cfg.cet.phase3.min_gain)
        context = parse_context(best["context"], inp.chunk_ids()).context
        if untraceable(context, inp):
            dropped += 1
            continue
        target = context.to_reply()
        chosen[best["candidate"] if best["context"] else "nothing to add"] += 1
        prompt = input_messages(inp)
        examples.append(sft_example(prompt, target))
        if worst["robust"] < best["robust"] and worst["key"] != best["key"]:
            pairs.append(preference_pair(prompt, target, parse_context(worst["context"]).context.to_reply()))
    out.mkdir(parents=True, exist_ok=True)
    # the round's data, as `cet train sft` reads it (to train elsewhere, e.g. under torchrun / accelerate launch)
    for name, rows in (("examples.jsonl", examples), ("pairs.jsonl", pairs)):
        (out / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    summary: dict[str, Any] = {"examples": len(examples), "pairs": len(pairs), "dropped_untraceable": dropped,
                               "targets": dict(chosen)}
    if learner == "dpo":
        if not pairs:
            return {**summary, "skipped": "no task had a better and a worse candidate"}
        report = train_dpo(cet, pairs, settings, out, cfg.run.seed, quiet, beta=cfg.cet.phase3.dpo_beta)
        version = data_version(pairs)
    else:
        if not examples:
            return {**summary, "skipped": "no traceable target"}
        report = train_sft(cet, examples, settings, out, cfg.run.seed, quiet)
        version = data_version(examples)
    return {**summary, "report": report.to_dict(), "data_version": version}


# -------------------------------------------------------------------------------------------------------- dev


def dev_score(cfg: CetConfig, cet: CETModel, playbook: Playbook, dev: Sequence[TaskSetup], generators: list[str],
              run: RunDir, round_: int, on_step: Callable[[str], None]) -> dict[str, Any]:
    """The CET's greedy contexts on the dev tasks and raw, rolled out: the mean robust reward of the CET's (the
    score), raw's, and pass counts per generator."""
    if not dev:
        return {"score": 0.0, "raw": 0.0, "tasks": 0}
    inputs = [s.input(cfg, playbook) for s in dev]
    try:
        replies = cet.engineer([{"input": inp, "choices": section_choices(inp)} for inp in inputs])
    finally:
        cet.close_engine()
    works, keys = [], []
    for setup, inp, reply in zip(dev, inputs, replies, strict=True):
        ok = reply.parsed is not None and reply.error is None and reply.parsed.valid
        context = reply.parsed.context if ok else EngineeredContext()
        mine = Candidate(f"dev-r{round_}" if ok else f"dev-r{round_}-failed", context)
        works.append(Work(setup.view, inp, distinct([Candidate("raw"), mine]) if ok else [Candidate("raw")]))
        keys.append((Candidate("raw").key, mine.key, ok))
    records, _ = roll_out(cfg, works, generators, run.path / DEV_ROLLOUTS, round_=round_,
                          max_tokens=cfg.cet.phase3.max_tokens, on_step=on_step)
    groups = by_candidate(records, generators, cfg.cet.phase3.robustness_lambda)
    cet_scores, raw_scores, passed = [], [], Counter()
    for w, (raw_key, mine_key, ok) in zip(works, keys, strict=True):
        entries = {e["key"]: e for e in groups.get(w.view.task.id, [])}
        raw = entries.get(raw_key)
        mine = entries.get(mine_key) if ok else None  # "nothing to add" is raw's prompt: raw's outcome
        if raw is None or (ok and mine is None):
            continue
        cet_scores.append(mine["robust"] if mine else 0.0)  # a CET that failed scores nothing on the task
        raw_scores.append(raw["robust"])
        for g in generators:
            passed[f"cet:{g}"] += int(bool(mine and mine["passed"][g]))
            passed[f"raw:{g}"] += int(raw["passed"][g])
    return {"score": round(fmean(cet_scores), 4) if cet_scores else 0.0,
            "raw": round(fmean(raw_scores), 4) if raw_scores else 0.0, "tasks": len(cet_scores),
            "passed": dict(passed), "nothing_to_add": sum(1 for r in replies if r.parsed and r.parsed.nothing_to_add)}


# ----------------------------------------------------------------------------------------------------- results


def finish(cfg: CetConfig, opts: Phase3Options, best: dict[str, Any], playbook: Playbook, run: RunDir) -> Path:
    """The best round's CET (the starting one when no round beat it) as data/cet/phase3, with the playbook it was
    scored with."""
    cet = CETModel.load(run.path / f"round-{best['round']}" / "checkpoint", cfg) if best["round"] else \
        start_model(cfg, opts)
    version = cet.info.get("data_version")
    final = cet.save(Path(cfg.cet.checkpoints_dir) / "phase3", "phase3", version, opts, run_dir=str(run.path),
                     round=best["round"], playbook_version=playbook.version)
    playbook.save(final)
    kept = cet.save(run.path / "checkpoint", "phase3", version, opts, round=best["round"])
    playbook.save(kept)
    cet.close_engine()
    return final


def candidate_summary(records: Sequence[dict[str, Any]], generators: Sequence[str]) -> dict[str, Any]:
    """Per candidate kind and generator: rollouts and pass rate (training and dev rollouts of this run)."""
    out: dict[str, Any] = {}
    for name in sorted({r["candidate"] for r in records}):
        mine = [r for r in records if r["candidate"] == name]
        out[name] = {g: {"n": sum(1 for r in mine if r["generator"] == g),
                         "passed": sum(1 for r in mine if r["generator"] == g and r["passed"])} for g in generators}
    return out


def _load_state(where: Path) -> dict[str, Any]:
    path = where / STATE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _save_state(where: Path, state: dict[str, Any]) -> None:
    tmp = where / (STATE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1, default=str), encoding="utf-8")
    tmp.replace(where / STATE)
