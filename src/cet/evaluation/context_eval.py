"""Does the CET's context make a generator pass more tests? The held-out evaluation, with equal inputs.

    tasks   = held-out tasks (HumanEval, evaluation-only, and the test split of the other sets), or a user's tasks
              file; each task's tests split into a visible part (the first cases) and hidden cases
    view    = statement + interface + visible tests: every condition gets it (the raw task)
    input   = the view and the top-k chunks cut to the CET's token budget (`CETInput`): the CET and the template
              read byte for byte the same input
    conditions:
        raw         the view
        full_input  the view + the chunks exactly as the CET reads them
        naive_rag   the view + the top-k chunks pasted whole
        rule_based  the view + a hand-written template over the input (evaluation/baselines.py)
        cet_phase1  the view + the CET's context after Phase 1     cet_phase2  ... after Phase 2
    the generator (Qwen2.5-Coder-0.5B by default) writes code for every (task, condition), greedy, same seed, the
    requests batched on one model; the sandbox runs the HIDDEN tests: pass / fail, and a failure class
    every prompt is checked for leaks (another held-out task's text; the task's own hidden tests or reference)
    statistics: Wilson intervals, exact McNemar of cet_phase2 against every other condition with Holm's
    correction and the minimum detectable difference, harm and help rates against raw, context tokens, recall of
    the facts the hidden tests reveal (names, arguments, edge values, errors), structure validity, traceability,
    noise kept out of a noisy copy (noise sentences disjoint from the training noise)

A CET reply that cannot be generated or parsed is the CET's failure on that task (counted and reported), never an
empty context standing in for a tie. Generations go through the team's response cache, so an interrupted run
resumes where it stopped.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cet.config import CetConfig
from cet.data.baselines import naive_rag_text, rule_based_context
from cet.data.degradations import EVAL_CHATTER, degrade
from cet.data.gold_context import section_choices, untraceable
from cet.data.leakage import HeldOutIndex, prompt_leaks
from cet.data.playbook import Playbook
from cet.data.task_input import TaskView, cet_input, task_view
from cet.errors import CetError
from cet.evaluation.context_quality import aggregate, grounding, noise_reduction
from cet.evaluation.plots import grouped_bars
from cet.evaluation.significance import compare_conditions, harm_rate, help_rate, pass_rates
from cet.evaluation.test_facts import hidden_facts, recall
from cet.execution.failures import classify_failure
from cet.execution.tasks import CodingTask, iter_tasks
from cet.llm.base import Message
from cet.llm.jury import extract_code
from cet.llm.team import Request, Team
from cet.model.cet import MANIFEST, CETModel
from cet.model.context import GENERATOR_SYSTEM, EngineeredContext, ParsedContext, parse_context, render_prompt
from cet.model.prompts import CETInput, approx_tokens, chunk_lines
from cet.phases.common import (
    EVAL_SPLITS,
    append_jsonl,
    held_out,
    load_tasks,
    retrieve,
    retriever_for,
    sample_balanced,
    sandbox_executor,
)
from cet.runs import RunDir

CONDITIONS = ("raw", "full_input", "naive_rag", "rule_based", "playbook", "cet_phase1", "cet_phase2", "cet_phase3")
CET_CONDITIONS = ("cet_phase1", "cet_phase2", "cet_phase3")
ENGINEERED = ("rule_based", "playbook", *CET_CONDITIONS)
BASELINE = "raw"


@dataclass
class ContextEvalOptions:
    tasks: int = 150  # held-out tasks drawn (balanced across sets); the default set has 290
    sets: tuple[str, ...] = ("humaneval", "exercism", "leetcode")
    tasks_file: str | None = None  # a user's own tasks (all of them are held out); replaces the default set
    limit: int | None = None  # at most this many tasks of the file / set, in order (after sampling)
    conditions: tuple[str, ...] = CONDITIONS
    phase1: str | None = None  # checkpoints (default: data/cet/phase1, phase2, phase3)
    phase2: str | None = None
    phase3: str | None = None  # its playbook (playbook.json beside it) also makes the "playbook" condition
    noise: bool = True  # engineer a noisy copy of each statement too (noise reduction)
    max_tokens: int = 320  # the generator's (solutions to these tasks fit; a cut-off block is still extracted)


@dataclass
class Engineered:
    """One condition's context for one task: the parsed context (None when generation failed), the error."""

    parsed: ParsedContext | None
    raw: str = ""
    error: str | None = None
    seconds: float = 0.0
    untraceable: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.parsed is None or self.error is not None or not self.parsed.valid


def select_tasks(cfg: CetConfig, opts: ContextEvalOptions) -> list[CodingTask]:
    if opts.tasks_file:
        skipped: list[str] = []
        tasks = [t for t in iter_tasks(opts.tasks_file, skipped) if t.language == "python"]
        if not tasks:
            raise CetError(f"{opts.tasks_file}: no Python tasks to evaluate ({len(skipped)} bad lines)")
    else:
        tasks = sample_balanced(load_tasks(cfg, EVAL_SPLITS, opts.sets), opts.tasks, random.Random(cfg.run.seed + 3))
    return tasks[: opts.limit] if opts.limit else tasks


def views_of(tasks: Sequence[CodingTask], visible: int) -> tuple[list[TaskView], dict[str, str]]:
    """The view of each task whose tests can be split; the others skipped with the reason (counted)."""
    views, skipped = [], {}
    for task in tasks:
        try:
            views.append(task_view(task, visible))
        except CetError as e:
            skipped[task.id] = str(e)
    return views, skipped


def run_context_eval(cfg: CetConfig, opts: ContextEvalOptions, run: RunDir, retriever: Any,
                     on_step: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    unknown = [c for c in opts.conditions if c not in CONDITIONS]
    if unknown:
        raise CetError(f"unknown condition(s) {', '.join(unknown)}; choose from {', '.join(CONDITIONS)}")
    views, skipped_tasks = views_of(select_tasks(cfg, opts), cfg.exec.visible_tests)
    if not views:
        raise CetError("no task to evaluate: " + "; ".join(list(skipped_tasks.values())[:3]))
    tasks = [v.task for v in views]
    guard = held_out(cfg, extra=tasks)  # no retrieval of a held-out task's documents or of text that copies one
    hits = [retrieve(retriever_for(cfg, v.task, retriever), v.statement, cfg.cet.top_k, guard) for v in views]
    inputs = [cet_input(v, h, budget=cfg.cet.input_tokens) for v, h in zip(views, hits, strict=True)]
    noisy_views = [task_view(v.task, cfg.exec.visible_tests, degrade(v.statement, "noise", random.Random(
        f"{cfg.run.seed}:{v.task.id}"), chatter=EVAL_CHATTER)) for v in views] if opts.noise else []
    noisy_inputs = [cet_input(v, h, budget=cfg.cet.input_tokens) for v, h in zip(noisy_views, hits, strict=True)] \
        if opts.noise else []

    on_step(f"context eval: engineering contexts for {len(views)} tasks")
    target = target_of([c for c in opts.conditions if c not in skipped_cets(cfg, opts)])
    contexts, skipped = engineered_contexts(cfg, opts, views, inputs, noisy_inputs, target)
    conditions = [c for c in opts.conditions if c not in skipped]
    prompts = {c: [condition_prompt(c, v, inputs[i], hits[i], contexts.get(c, [None] * len(views))[i])
                   for i, v in enumerate(views)] for c in conditions}
    leaks = check_leaks(views, prompts, guard.index)
    if leaks:
        run.write_json("leaks.json", leaks)
        raise CetError(f"{len(leaks)} prompts leak held-out text (first: {leaks[0]}); see {run.path}/leaks.json")

    on_step(f"context eval: the generator writes {len(views) * len(conditions)} solutions")
    outcomes, rows, generation = generate_and_run(cfg, opts, views, prompts, contexts, on_step)
    for row in rows:
        append_jsonl(run.path / "records.jsonl", row)
    quality = intrinsic(views, inputs, noisy_views, prompts, contexts)
    comparisons = compare_conditions(outcomes, target, [c for c in conditions if c != target]) \
        if target in outcomes else {}
    result = {
        "target": target,
        "tasks": [t.id for t in tasks], "skipped_tasks": skipped_tasks, "by_source": _by_source(tasks, outcomes),
        "conditions": conditions, "skipped_conditions": skipped, "pass_rates": pass_rates(outcomes),
        "comparisons": comparisons,
        "harm_vs_raw": {c: {"harm": harm_rate(outcomes[c], outcomes[BASELINE]),
                            "help": help_rate(outcomes[c], outcomes[BASELINE])}
                        for c in conditions if c != BASELINE and BASELINE in outcomes},
        "context_tokens": {c: _mean([r["context_tokens"] for r in rows if r["condition"] == c]) for c in conditions},
        "failure_classes": {c: dict(Counter(r["failure_class"] for r in rows if r["condition"] == c))
                            for c in conditions},
        "cet_failures": {c: [{"task_id": views[i].task.id, "error": e.error or "; ".join(e.parsed.issues[:2])
                              if e.parsed else e.error} for i, e in enumerate(contexts[c][:len(views)]) if e.failed]
                         for c in contexts if c.startswith("cet_")},
        # how often each CET said its input needs nothing beyond the task as given (its prompt is then raw's)
        "nothing_to_add": {c: sum(1 for e in contexts[c][:len(views)] if e.parsed and e.parsed.nothing_to_add)
                           for c in contexts if c.startswith("cet_")},
        "intrinsic": {c: aggregate(rows_) for c, rows_ in quality.items()},
        "failure_analysis": failure_analysis(rows, target),
        "selection_ceiling": selection_ceiling(outcomes),
        "generation": generation, "visible_tests": cfg.exec.visible_tests, "input_tokens": cfg.cet.input_tokens,
        "generator": cfg.llm.roles.generator, "seed": cfg.run.seed,
        "tasks_file": opts.tasks_file, "leak_checks": sum(len(p) for p in prompts.values()),
    }
    result["goal"] = goal_status(result) if comparisons else None
    run.log_metrics("context_eval", {k: result[k] for k in ("pass_rates", "comparisons", "harm_vs_raw", "intrinsic",
                                                             "goal")})
    result["plots"] = plots(result, run.plots)
    return result


NON_INFERIORITY_MARGIN = 0.05  # "at least level": the difference's 95% interval stays above -5 points
HARM_GOAL = 0.05
ABSTAINED_MOSTLY = 0.9  # the share of "nothing to add" past which the goal's verdict carries a note
PLAYBOOK_CAVEAT = ("the playbook's item sentences (data/playbook.CATALOGUE) were written after reading the failure "
                   "patterns of raw replies on the default held-out pool; which items are active, where they apply and "
                   "whether they stay come from training rollouts only")
# issue 11: the CET after Phase 3 must beat each of these by at least this much pass@1
PHASE3_MARGINS = {"raw": 0.10, "naive_rag": 0.15, "rule_based": 0.03, "cet_phase2": 0.05}


def goal_status(result: dict[str, Any]) -> dict[str, Any]:
    """The goal for the CET under test (`result["target"]`), judged on intervals, not on point estimates. Each part
    is "shown" (its 95% interval lies on the goal's side), "failed" (it lies on the other side) or "not shown" (it
    straddles: the run cannot tell); a part whose condition was not run is "not run". The goal is met when every
    part is shown, not met when any failed, else not shown.

    cet_phase2 (issue 10), against the template and full input: level with them (non-inferiority: the
    difference's interval above -NON_INFERIORITY_MARGIN); above naive RAG (a Holm-significant positive difference).
    cet_phase3 (issue 11), a gain of at least the margin over each of `PHASE3_MARGINS`: shown when the difference
    is Holm-significant and its 95% interval lies at or above the margin, failed when it lies under the margin.
    Both: harm against raw <= HARM_GOAL (the harm rate's interval at or under it; failed: entirely over it)."""
    comparisons, target = result["comparisons"], result.get("target", "cet_phase2")
    parts: dict[str, str] = {}
    if target == "cet_phase3":
        for other, margin in PHASE3_MARGINS.items():
            c = comparisons.get(other)
            part = f"{other} + {margin:.2f}"
            parts[part] = "not run" if c is None else "shown" if c["significant"] and c["ci95"][0] >= margin \
                else "failed" if c["ci95"][1] < margin else "not shown"
    else:
        for other in ("rule_based", "full_input"):
            part = f"level with {other}"
            if other not in comparisons:
                parts[part] = "not run"
                continue
            low, high = comparisons[other]["ci95"]
            parts[part] = "shown" if low >= -NON_INFERIORITY_MARGIN else \
                "failed" if high < -NON_INFERIORITY_MARGIN else "not shown"
        c = comparisons.get("naive_rag")
        parts["above naive_rag"] = "not run" if c is None else "shown" if c["difference"] > 0 and c["significant"] \
            else "failed" if c["ci95"][1] <= 0 else "not shown"
    harm = (result["harm_vs_raw"].get(target) or {}).get("harm")
    part = f"harm vs raw <= {HARM_GOAL}"
    if isinstance(harm, dict) and harm.get("ci95"):
        low, high = harm["ci95"]
        parts[part] = "shown" if high <= HARM_GOAL else "failed" if low > HARM_GOAL else "not shown"
    else:
        parts[part] = "not run"
    values = set(parts.values())
    # a part whose condition was not run is not shown: the goal is met only with every comparison made
    status = "met" if values == {"shown"} else "not met" if "failed" in values else "not shown"
    goal = {"status": status, "parts": parts, "margin": NON_INFERIORITY_MARGIN, "harm_goal": HARM_GOAL,
            "target": target}
    if target == "cet_phase3":
        goal["caveat"] = PLAYBOOK_CAVEAT
    abstained, n = (result.get("nothing_to_add") or {}).get(target, 0), len(result.get("tasks") or ())
    if n and abstained >= ABSTAINED_MOSTLY * n:
        # the parts above can all be shown by a CET that adds nothing: say so wherever the goal is reported
        goal["note"] = (f"{target} said nothing to add on {abstained} of {n} tasks: its prompts there are the raw "
                        "task's, so what it shows is no harm, not a gain over raw")
    return goal


def selection_ceiling(outcomes: dict[str, list[bool]]) -> dict[str, Any] | None:
    """The most a selective context could reach by choosing, task by task, among the contexts that involve no
    learned model (raw, full input, naive RAG, the template, the playbook): a task counts as passed when any of them
    passed it. An oracle's number (it picks with the hidden verdict), so an upper bound on what selection among these
    contexts can earn; a goal above it needs a context that changes what the generator writes, not a better choice.
    None when raw and at least one other such condition were not both run."""
    among = [c for c in CONDITIONS if c in outcomes and c not in CET_CONDITIONS]
    if BASELINE not in among or len(among) < 2:
        return None
    best = [any(outcomes[c][i] for c in among) for i in range(len(outcomes[BASELINE]))]
    n, passed, raw = len(best), sum(best), sum(outcomes[BASELINE])
    return {"among": among, "passed": passed, "n": n, "rate": passed / n if n else 0.0,
            "gain_over_raw": (passed - raw) / n if n else 0.0}


def target_of(conditions: Sequence[str]) -> str:
    """The CET under test: the latest phase among the conditions run (cet_phase2 when none is)."""
    return next((c for c in reversed(CET_CONDITIONS) if c in conditions), "cet_phase2")


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


# ------------------------------------------------------------------------------------------------- contexts


def cet_checkpoint(cfg: CetConfig, opts: ContextEvalOptions, condition: str) -> Path:
    given = {"cet_phase1": opts.phase1, "cet_phase2": opts.phase2, "cet_phase3": opts.phase3}[condition]
    return Path(given or Path(cfg.cet.checkpoints_dir) / condition.removeprefix("cet_"))


def skipped_cets(cfg: CetConfig, opts: ContextEvalOptions) -> dict[str, str]:
    """The CET conditions (and the playbook, which is Phase 3's) asked for whose checkpoint does not exist."""
    missing = {c: f"no checkpoint at {cet_checkpoint(cfg, opts, c)}" for c in CET_CONDITIONS
               if c in opts.conditions and not (cet_checkpoint(cfg, opts, c) / MANIFEST).is_file()}
    if "playbook" in opts.conditions and not (cet_checkpoint(cfg, opts, "cet_phase3") / "playbook.json").is_file():
        missing["playbook"] = f"no playbook at {cet_checkpoint(cfg, opts, 'cet_phase3')}"
    return missing


def with_playbook(views: Sequence[TaskView], inputs: Sequence[CETInput], playbook: Playbook) -> list[CETInput]:
    """The inputs as the CET after Phase 3 reads them: with the playbook items that match each task (a noisy copy,
    index len(views)+i, gets task i's)."""
    texts = [playbook.texts_for_view(v) for v in views]
    return [replace(inp, playbook=texts[i % len(views)]) for i, inp in enumerate(inputs)]


def engineered_contexts(cfg: CetConfig, opts: ContextEvalOptions, views: Sequence[TaskView],
                        inputs: Sequence[CETInput], noisy: Sequence[CETInput], target: str
                        ) -> tuple[dict[str, list[Engineered]], dict[str, str]]:
    """Per engineered condition, one `Engineered` per task; for the template and the CET under test, index
    len(inputs)+i holds the context of task i's noisy copy. A CET condition without a checkpoint is skipped (and
    said), and so is the playbook without Phase 3's."""
    contexts: dict[str, list[Engineered]] = {}
    skipped = skipped_cets(cfg, opts)
    everything = list(inputs) + list(noisy)
    if "rule_based" in opts.conditions:
        contexts["rule_based"] = [template_context(inp) for inp in everything]
    playbook = Playbook.load(cet_checkpoint(cfg, opts, "cet_phase3") / "playbook.json")
    if "playbook" in opts.conditions and "playbook" not in skipped:
        # the matching items alone, as pitfalls: what the CET after Phase 3 could carry, with no learning at all
        contexts["playbook"] = [playbook_context(inp) for inp in with_playbook(views, inputs, playbook)]
    for condition in CET_CONDITIONS:
        if condition not in opts.conditions or condition in skipped:
            continue
        # the noisy copies only for the CET under test (each CET context costs a generation)
        chosen = everything if condition == target else list(inputs)
        if condition == "cet_phase3":
            chosen = with_playbook(views, chosen, playbook)
        contexts[condition] = engineer_with(cfg, cet_checkpoint(cfg, opts, condition), chosen)
    return contexts, {c: why for c, why in skipped.items() if c in opts.conditions}


def engineer_with(cfg: CetConfig, checkpoint: Path, inputs: Sequence[CETInput], done: Sequence[Engineered] = (),
                  on_batch: Callable[[list[Engineered]], None] | None = None, batch: int = 32) -> list[Engineered]:
    """The contexts the CET at `checkpoint` engineers for `inputs` (its engine released afterwards). `done`: the
    contexts of the first inputs, engineered earlier (a resume); `on_batch` gets every context so far after each
    `batch` inputs (a multiple of the transformers batch size), so an interrupted run keeps them. Each input's reply
    is its own with one llama.cpp slot, so engineering in batches gives the contexts of engineering all at once; with
    several slots a reply depends on what shares its batch, batched or not (cet.model.cet)."""
    out = list(done)
    if len(out) >= len(inputs):
        return out[:len(inputs)]
    cet = CETModel.load(checkpoint, cfg)
    try:
        for start in range(len(out), len(inputs), batch):
            part = inputs[start:start + batch]
            replies = cet.engineer([{"input": inp, "choices": section_choices(inp)} for inp in part])
            out += [Engineered(r.parsed, r.raw, r.error, r.seconds,
                               untraceable(r.parsed.context, inp) if r.parsed else [])
                    for r, inp in zip(replies, part, strict=True)]
            if on_batch is not None:
                on_batch(out)
    finally:
        cet.close_engine()
    return out


def playbook_context(inp: CETInput) -> Engineered:
    context = EngineeredContext(pitfalls=list(inp.playbook))
    text = context.to_text()
    parsed = parse_context(text, inp.chunk_ids()) if text else ParsedContext(context, sections=1, nothing_to_add=True)
    return Engineered(parsed, text, None, 0.0, [])


def template_context(inp: CETInput) -> Engineered:
    started = time.perf_counter()
    context = rule_based_context(inp)
    parsed = parse_context(context.to_text(), inp.chunk_ids())
    return Engineered(parsed, context.to_text(), None, time.perf_counter() - started, untraceable(context, inp))


def condition_prompt(condition: str, view: TaskView, inp: CETInput, hits: Sequence[Any],
                     engineered: Engineered | None) -> str:
    """The generator's user message for a condition: the view (raw task) and what the condition adds."""
    language = view.task.language
    raw = render_prompt(view.raw_text(), language=language)
    if condition == "raw":
        return raw
    if condition == "naive_rag":
        return f"Retrieved knowledge:\n{naive_rag_text(hits)}\n\n{raw}" if hits else raw
    if condition == "full_input":
        return f"Retrieved knowledge:\n{chunk_lines(inp.hits, None)}\n\n{raw}" if inp.hits else raw
    if engineered is None or engineered.failed:
        return ""  # the condition failed on this task: no prompt, no code, a failure (never the raw task)
    return render_prompt(view.raw_text(), engineered.parsed.context, language=language)


def check_leaks(views: Sequence[TaskView], prompts: dict[str, list[str]], index: HeldOutIndex | None
                ) -> list[dict[str, Any]]:
    """Every prompt of every condition, checked: no other held-out task's text, none of its own hidden tests or
    reference solution."""
    found = []
    for condition, texts in prompts.items():
        for view, prompt in zip(views, texts, strict=True):
            for leak in prompt_leaks(prompt, view.hidden, view.visible_tests + "\n" + view.statement, index):
                found.append({"condition": condition, "task_id": view.task.id, "leak": str(leak)})
    return found


# ----------------------------------------------------------------------------------------------- generation


def generate_and_run(cfg: CetConfig, opts: ContextEvalOptions, views: Sequence[TaskView],
                     prompts: dict[str, list[str]], contexts: dict[str, list[Engineered]],
                     on_step: Callable[[str], None]
                     ) -> tuple[dict[str, list[bool]], list[dict[str, Any]], dict[str, Any]]:
    """The generator's code for every (task, condition) that has a prompt, run on the hidden tests. Requests go
    task by task, each task pinned to one generator model for all its conditions, and are batched on the model
    (llm.n_parallel slots)."""
    order = [(c, i) for i in range(len(views)) for c in prompts if prompts[c][i]]
    started = time.perf_counter()
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
    seconds = time.perf_counter() - started
    replies = dict(zip(order, results, strict=True))
    codes = {key: extract_code(r.text or "", views[key[1]].task.entry_point, views[key[1]].task.language)
             for key, r in replies.items()}
    on_step(f"context eval: the sandbox runs {len(order)} solutions on the hidden tests")
    with sandbox_executor(cfg) as executor:
        runs = {key: executor.run(views[key[1]].hidden, code) if code else None for key, code in codes.items()}
    outcomes: dict[str, list[bool]] = {c: [False] * len(views) for c in prompts}
    rows = []
    cached = sum(1 for r in results if r.completion is not None and r.completion.cached)
    for c in prompts:
        for i, view in enumerate(views):
            reply, result, code = replies.get((c, i)), runs.get((c, i)), codes.get((c, i))
            passed = bool(result and result.passed)
            outcomes[c][i] = passed
            engineered = contexts.get(c, [None] * len(views))[i]
            context_text = engineered.parsed.context.to_text() if engineered and engineered.parsed else ""
            added = context_text if c in ENGINEERED else prompts[c][i].replace(
                render_prompt(view.raw_text(), language=view.task.language), "")
            rows.append({
                "task_id": view.task.id, "source": view.task.metadata.source, "condition": c, "passed": passed,
                "failure_class": "context-failed" if not prompts[c][i] else classify_failure(
                    result, code, view.task.entry_point),
                "exit_reason": result.exit_reason if result else ("context-failed" if not prompts[c][i] else "no-code"),
                "tests": f"{result.tests.passed}/{result.tests.total}" if result else None,
                "generator_error": reply.error if reply else None, "prompt_chars": len(prompts[c][i]),
                "context_tokens": approx_tokens(added), "prompt_tokens": reply.completion.prompt_tokens
                if reply and reply.completion else None,
                "completion_tokens": reply.completion.completion_tokens if reply and reply.completion else None,
                "context_error": engineered.error if engineered else None, "code": code,
                "reward": result.reward if result else None})
    # rates over the generations this run made: a reply from the cache took no generator time
    made = [r for r in results if r.completion is not None and not r.completion.cached]
    tokens = sum(r.completion.completion_tokens for r in made)
    generation = {"requests": len(order), "seconds": round(seconds, 1), "cached": cached, "generated": len(made),
                  "generations_per_hour": round(len(made) / seconds * 3600, 1) if seconds and made else None,
                  "completion_tokens_per_s": round(tokens / seconds, 1) if seconds and made else None,
                  "n_parallel": cfg.llm.n_parallel}
    return outcomes, rows, generation


# ------------------------------------------------------------------------------------------------ metrics


def intrinsic(views: Sequence[TaskView], inputs: Sequence[CETInput], noisy: Sequence[TaskView],
              prompts: dict[str, list[str]], contexts: dict[str, list[Engineered]]
              ) -> dict[str, list[dict[str, Any]]]:
    """Per condition and task: recall of the facts the hidden tests reveal in what the generator is shown (the
    whole prompt, and the condition's own addition), context tokens; for engineered contexts also structure
    validity, traceability to the input, cited chunks that were retrieved, compression, and on the noisy copy
    the share of the (evaluation-only) noise sentences kept out."""
    facts = [hidden_facts(v.hidden.tests, v.task.entry_point) for v in views]
    out: dict[str, list[dict[str, Any]]] = {}
    for condition, texts in prompts.items():
        rows = []
        for i in range(len(views)):
            row: dict[str, Any] = {"hidden_fact_recall": recall(texts[i], facts[i]) if texts[i] else None}
            engineered = contexts.get(condition, [None] * len(views))[i] if condition in contexts else None
            if engineered is not None:
                ctx = engineered.parsed.context if engineered.parsed else EngineeredContext()
                row.update({
                    "structure_valid": not engineered.failed,
                    "traceable": not engineered.untraceable,
                    "context_recall": recall(ctx.to_text(), facts[i]),
                    "grounding_citations": grounding(ctx, inputs[i].chunk_ids(), [inputs[i].render()])["citations"],
                    "compression": approx_tokens(ctx.to_text()) / max(1, approx_tokens(inputs[i].render())),
                })
                extra = contexts[condition]
                if len(extra) > len(views) and noisy:
                    noise = [s for s in EVAL_CHATTER if s in noisy[i].statement]
                    copy = extra[len(views) + i]
                    row["noise_reduction"] = noise_reduction(copy.parsed.context, noise) \
                        if copy.parsed and not copy.failed else (0.0 if noise else None)
            rows.append(row)
        out[condition] = rows
    return out


def failure_analysis(rows: Sequence[dict[str, Any]], target: str = "cet_phase2") -> dict[str, Any]:
    """The tasks the CET under test lost against raw (raw passed, the CET failed) and won, with each side's failure
    class."""
    by = {(r["task_id"], r["condition"]): r for r in rows}
    lost, won = [], []
    for task_id in dict.fromkeys(r["task_id"] for r in rows):
        raw, cet = by.get((task_id, BASELINE)), by.get((task_id, target))
        if not raw or not cet or raw["passed"] == cet["passed"]:
            continue
        entry = {"task_id": task_id, "raw": raw["failure_class"], "cet": cet["failure_class"],
                 "context_error": cet["context_error"], "context_tokens": cet["context_tokens"]}
        (lost if raw["passed"] else won).append(entry)
    return {"lost": lost, "won": won, "lost_by_class": dict(Counter(e["cet"] for e in lost))}


def _by_source(tasks: Sequence[CodingTask], outcomes: dict[str, list[bool]]) -> dict[str, dict[str, Any]]:
    sources = sorted({t.metadata.source for t in tasks})
    return {s: {c: {"passed": sum(o[i] for i, t in enumerate(tasks) if t.metadata.source == s),
                    "n": sum(t.metadata.source == s for t in tasks)} for c, o in outcomes.items()} for s in sources}


def plots(result: dict[str, Any], where: Path) -> list[str]:
    made = [grouped_bars({"pass rate": {c: v["rate"] for c, v in result["pass_rates"].items()}},
                         f"Generator pass rate on {len(result['tasks'])} held-out tasks (hidden tests)",
                         where / "pass_rate.png")]
    metrics = ("hidden_fact_recall.overall", "structure_valid", "traceable", "noise_reduction")
    groups = {m: {c: (result["intrinsic"][c].get(m, {}).get("mean") or 0.0) for c in result["intrinsic"]}
              for m in metrics}
    made.append(grouped_bars(groups, "Intrinsic context quality", where / "intrinsic.png"))
    classes = {c: {k: v / max(1, sum(counts.values())) for k, v in counts.items()}
               for c, counts in result["failure_classes"].items()}
    made.append(grouped_bars(classes, "Outcome classes by condition (share of tasks)", where / "failure_classes.png"))
    return [str(p) for p in made]
