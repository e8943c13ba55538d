"""Phase 2: context engineering skills.

    pairs = []
    for sampled training tasks:
        requirement  → the facts worth pointing at       (cet.requirement_targets: "selective" = the statement's
                                                          facts the hidden tests use and the visible tests do not
                                                          show, else "## Nothing to add"; "full" = the whole
                                                          restated specification)
        degraded     → the same target, kept to what     (structure removed, noise, fragments, vagueness,
                       survives in the degraded input     scrambling)
    for Phase 1's verified solutions (the sandbox passed them):
        partial code → complete context                 (imports / signature / body removed → what is missing,
                                                          the interface and the tests that exercise it)
        bug report   → debugging context                (a mutant that fails its tests in the sandbox, with the
                                                          traceback → the failure, the suspect line, what to check)
    fine-tune the Phase 1 CET on the pairs (TRL SFT); checkpoint

Every input is what the CET reads at inference (`CETInput`: the statement, interface and visible tests, the code
and the error report, the retrieved chunks, cut to its token budget), and every target is built from that input
alone: selected, reorganised and cited, never from the hidden tests or the reference solution (those only rank
which input facts come first). A pair whose target states something its input does not hold is dropped and
counted (`untraceable`). Evaluation tasks are never used.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cet.config import CetConfig
from cet.data.degradations import TRAIN_CHATTER, degrade_randomly
from cet.data.gold_context import (
    completion_context,
    debugging_context,
    requirement_context,
    restrict_to_input,
    untraceable,
)
from cet.data.mutations import mutants
from cet.data.partial_code import partial_variants
from cet.data.task_input import cet_input, hidden_strings, task_view
from cet.execution.executor import Executor
from cet.execution.failures import failure_report
from cet.execution.tasks import CodingTask
from cet.model.cet import MANIFEST, CETModel
from cet.model.prompts import CETInput, input_messages
from cet.model.training import data_version, plain_step_throughput, sft_example, train_sft
from cet.phases.common import (
    TRAIN_SPLITS,
    append_jsonl,
    assert_trainable,
    held_out_slugs,
    load_tasks,
    read_jsonl,
    retrieve,
    sample_balanced,
    sandbox_executor,
)
from cet.phases.phase1 import CONVERSATIONS
from cet.runs import RunDir

PAIRS = "pairs.jsonl"


@dataclass
class Phase2Options:
    conversations: str | None = None  # Phase 1's conversations.jsonl (default: the run behind data/cet/phase1)
    requirement_tasks: int = 12  # training tasks turned into requirement → specification pairs
    degraded_per_task: int = 1  # degraded variants of each of those statements
    partial_per_solution: int = 2
    bugs_per_solution: int = 2
    start_from: str | None = None  # default: the Phase 1 checkpoint (the base when there is none)
    epochs: float | None = None  # default: cet.train.epochs
    sets: tuple[str, ...] = ("exercism", "leetcode")


def run_phase2(cfg: CetConfig, opts: Phase2Options, run: RunDir, retriever: Any,
               on_step: Callable[[str], None] = lambda _: None, quiet: bool = False) -> dict[str, Any]:
    tasks = {t.id: t for t in load_tasks(cfg, TRAIN_SPLITS, opts.sets)}
    assert_trainable(tasks.values())
    rng = random.Random(cfg.run.seed + 2)
    pairs_path = run.path / PAIRS
    skipped: list[str] = []
    pairs = read_jsonl(pairs_path, skipped)  # a resumed run keeps the pairs it built (and their sandbox runs)
    held_out = held_out_slugs(cfg)
    if not pairs:
        conversations = phase1_conversations(cfg, opts)
        solutions = verified_solutions(conversations, tasks)
        on_step(f"phase 2: requirement pairs from {opts.requirement_tasks} tasks")
        chosen = sample_balanced(list(tasks.values()), opts.requirement_tasks, rng)
        pairs = requirement_pairs(chosen, retriever, cfg, opts.degraded_per_task, rng, held_out)
        on_step(f"phase 2: partial-code pairs from {len(solutions)} verified solutions")
        pairs += partial_pairs(solutions, retriever, cfg, opts.partial_per_solution, rng, held_out)
        on_step("phase 2: bug reports (mutants run in the sandbox)")
        with sandbox_executor(cfg) as executor:
            pairs += bug_pairs(solutions, retriever, cfg, executor, opts.bugs_per_solution, rng, held_out)
        pairs += conversation_bug_pairs(conversations, tasks, retriever, cfg, held_out)
        partial = pairs_path.with_name(PAIRS + ".partial")  # all or nothing: a resumed run reuses complete files only
        partial.unlink(missing_ok=True)
        for pair in pairs:
            append_jsonl(partial, pair)
        partial.replace(pairs_path)
    pairs, untraced = traceable_only(pairs)
    examples = [sft_example(p["prompt"], p["target"]) for p in pairs]
    cet = start_model(cfg, opts)
    on_step(f"phase 2: training on {len(examples)} pairs")
    settings = cfg.cet.train.model_copy(update={"epochs": opts.epochs}) if opts.epochs else cfg.cet.train
    report = train_sft(cet, examples, settings, run.path, cfg.run.seed, quiet)
    throughput = trainer_vs_plain(cet, examples, cfg, report.tokens_per_s) if report.steps else None
    version = data_version(examples)
    final = cet.save(Path(cfg.cet.checkpoints_dir) / "phase2", "phase2", version, opts, run_dir=str(run.path))
    cet.save(run.path / "checkpoint", "phase2", version, opts)
    result = {"checkpoint": str(final), "pairs": len(pairs), "by_kind": dict(Counter(p["kind"] for p in pairs)),
              "nothing_to_add": sum(1 for p in pairs if p.get("nothing_to_add")),
              "dropped_untraceable": untraced,
              "skipped_lines": len(skipped), "training": report.to_dict(), "throughput": throughput,
              "pairs_file": str(pairs_path)}
    run.log_metrics("phase2", result)
    cet.close_engine()
    return result


def phase1_conversations(cfg: CetConfig, opts: Phase2Options) -> list[dict[str, Any]]:
    """Phase 1's conversations: the file given, else the one in the run that wrote data/cet/phase1 (none: [])."""
    import json

    path = Path(opts.conversations) if opts.conversations else None
    if path is None:
        manifest = Path(cfg.cet.checkpoints_dir) / "phase1" / MANIFEST
        if manifest.is_file():
            run_dir = json.loads(manifest.read_text(encoding="utf-8")).get("run_dir")
            path = Path(run_dir) / CONVERSATIONS if run_dir else None
    return read_jsonl(path) if path else []


def verified_solutions(conversations: Sequence[dict[str, Any]], tasks: dict[str, CodingTask]
                       ) -> list[tuple[CodingTask, str]]:
    """(task, code) for each Phase 1 answer the sandbox passed, on training tasks only."""
    seen, out = set(), []
    for record in conversations:
        task = tasks.get(record.get("task_id", ""))
        code = record.get("solution")
        if task is None or not code or task.id in seen:
            continue
        seen.add(task.id)
        out.append((task, code))
    return out


def pair(kind: str, task: CodingTask, inp: CETInput, target: Any, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "task_id": task.id, "hit_ids": inp.chunk_ids(), "input": inp.task, "code": inp.code,
            "error": inp.error, "prompt": input_messages(inp), "target": target.to_reply(),
            "untraceable": untraceable(target, inp), **extra}


def traceable_only(pairs: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The pairs whose target holds only what its input holds, and how many were dropped."""
    kept = [p for p in pairs if not p["untraceable"]]
    return kept, len(pairs) - len(kept)


def requirement_pairs(tasks: Sequence[CodingTask], retriever: Any, cfg: CetConfig, degraded: int,
                      rng: random.Random, held_out: Any = frozenset()) -> list[dict[str, Any]]:
    """The statement as given → its context; a degraded statement → the same context, kept to what survives in
    the degraded input (the visible tests and interface are never degraded)."""
    pairs = []
    for task in tasks:
        view = task_view(task, cfg.exec.visible_tests)
        important = hidden_strings(view)
        hits = retrieve(retriever, view.statement, cfg.cet.top_k, held_out)
        inp = cet_input(view, hits, budget=cfg.cet.input_tokens)
        kind = cfg.cet.requirement_targets
        target = requirement_context(inp, important, kind)
        pairs.append(pair("requirement", task, inp, target, nothing_to_add=target.is_empty()))
        for _ in range(degraded):
            text, kinds = degrade_randomly(task.statement, rng)
            degraded_view = task_view(task, cfg.exec.visible_tests, statement=text)
            hits = retrieve(retriever, text, cfg.cet.top_k, held_out)
            degraded_inp = cet_input(degraded_view, hits, budget=cfg.cet.input_tokens)
            own = requirement_context(degraded_inp, important, kind)
            clean = requirement_context(cet_input(view, hits, budget=cfg.cet.input_tokens), important, kind)
            restricted = restrict_to_input(clean, degraded_inp, own)
            noise = [s for s in TRAIN_CHATTER if s in text]
            pairs.append(pair("degraded", task, degraded_inp, restricted, degradations=kinds, noise=noise,
                              nothing_to_add=restricted.is_empty()))
    return pairs


def partial_pairs(solutions: Sequence[tuple[CodingTask, str]], retriever: Any, cfg: CetConfig, per_solution: int,
                  rng: random.Random, held_out: Any = frozenset()) -> list[dict[str, Any]]:
    pairs = []
    for task, code in solutions:
        view = task_view(task, cfg.exec.visible_tests)
        variants = partial_variants(code, rng, task.entry_point.split(".")[0] if task.entry_point else None)
        for partial in rng.sample(variants, min(per_solution, len(variants))):
            hits = retrieve(retriever, f"{task.statement}\n{partial.code}", cfg.cet.top_k, held_out)
            inp = cet_input(view, hits, code=partial.code, budget=cfg.cet.input_tokens)
            target = completion_context(inp, hidden_strings(view))
            pairs.append(pair("partial", task, inp, target, partial_kind=partial.kind))
    return pairs


def bug_pairs(solutions: Sequence[tuple[CodingTask, str]], retriever: Any, cfg: CetConfig, executor: Executor,
              per_solution: int, rng: random.Random, held_out: Any = frozenset()) -> list[dict[str, Any]]:
    """Mutants of verified solutions that fail their tests: the failing run is the bug report."""
    pairs = []
    for task, code in solutions:
        found = 0
        for mutant in mutants(code, rng, limit=per_solution * 3):
            if found >= per_solution:
                break
            result = executor.run(task, mutant.code)
            if result.passed:
                continue  # an equivalent mutant: no bug to report
            pairs.append(bug_pair(task, mutant.code, failure_report(result), retriever, cfg, held_out, mutant.line,
                                  operator=mutant.operator, exit_reason=result.exit_reason))
            found += 1
    return pairs


def bug_pair(task: CodingTask, code: str, report: str, retriever: Any, cfg: CetConfig, held_out: Any,
             line: int | None = None, **extra: Any) -> dict[str, Any]:
    """One bug-report pair: the failing code and its report as the input, the debugging context as the target
    (`line`, where a fault was planted, only chooses which line is quoted)."""
    view = task_view(task, cfg.exec.visible_tests, statement=f"The tests of this code fail. {task.statement}")
    hits = retrieve(retriever, f"{report}\n{code}", cfg.cet.top_k, held_out)
    inp = cet_input(view, hits, code=code, error=report, budget=cfg.cet.input_tokens)
    # the CET reads the report cut to its budget (in the prompt); the pair keeps the whole report
    return {**pair("bug", task, inp, debugging_context(inp, line), **extra), "error": report}


def conversation_bug_pairs(conversations: Sequence[dict[str, Any]], tasks: dict[str, CodingTask], retriever: Any,
                           cfg: CetConfig, held_out: Any = frozenset()) -> list[dict[str, Any]]:
    """The real failing first attempts of synthetic conversations (`cet data conversations`), each with the
    sandbox's report: bug reports as a developer brings them, beside the planted ones. Training tasks only."""
    pairs, seen = [], set()
    for record in conversations:
        attempt = record.get("first_attempt") or {}
        task = tasks.get(record.get("task_id", ""))
        code, report = attempt.get("code"), attempt.get("report")
        if task is None or not code or not report or (attempt.get("verdict") or {}).get("passed"):
            continue
        if (task.id, code) in seen:
            continue
        seen.add((task.id, code))
        pairs.append(bug_pair(task, code, report, retriever, cfg, held_out, origin="conversation"))
    return pairs


def trainer_vs_plain(cet: CETModel, examples: Sequence[dict[str, Any]], cfg: CetConfig,
                     trainer_tokens_per_s: float) -> dict[str, Any]:
    """The trainer's tokens/s against a plain transformers step on the same batches, measured now."""
    plain = plain_step_throughput(cet, examples, cfg.cet.train, steps=1, seed=cfg.run.seed)
    ratio = round(trainer_tokens_per_s / plain["tokens_per_s"], 3) if plain["tokens_per_s"] else None
    return {"trainer_tokens_per_s": trainer_tokens_per_s, "plain_tokens_per_s": plain["tokens_per_s"],
            "plain_steps": plain["steps"], "ratio": ratio}


def start_model(cfg: CetConfig, opts: Phase2Options) -> CETModel:
    """The CET to train: `--from` (which must be a checkpoint), else the Phase 1 CET, else the base."""
    if opts.start_from:
        return CETModel.load(opts.start_from, cfg, trainable=True)
    start = Path(cfg.cet.checkpoints_dir) / "phase1"
    if (start / MANIFEST).is_file():
        return CETModel.load(start, cfg, trainable=True)
    return CETModel.from_base(cfg)
