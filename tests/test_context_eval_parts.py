"""The pure parts of the context evaluation: each condition's prompt, the failure class of a real sandbox run, the
views of a task list and the failure analysis of result rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.sandbox_helpers import bwrap_or_skip, exec_config, make_task

from cet.data.baselines import naive_rag_text, rule_based_context
from cet.data.gold_context import gold_context
from cet.data.task_input import TaskView, cet_input, task_view
from cet.evaluation.context_eval import (
    CONDITIONS,
    ENGINEERED,
    Engineered,
    condition_prompt,
    failure_analysis,
    goal_status,
    playbook_context,
    selection_ceiling,
    template_context,
    views_of,
)
from cet.execution.executor import Executor
from cet.execution.failures import classify_failure
from cet.execution.result import ExecutionResult
from cet.execution.tasks import CodingTask, TaskMetadata, iter_tasks
from cet.knowledge.records import Hit
from cet.model.context import NOTHING_TO_ADD, parse_context, render_prompt
from cet.model.prompts import CETInput
from task_data import real_tasks_file

LONG = ("An acronym is formed from the initial letters of the words of a phrase. Hyphens separate words too, and "
        "punctuation other than the hyphen is dropped before the letters are taken. ") * 4


def hit(chunk_id: str, title: str, text: str) -> Hit:
    return Hit(id=chunk_id, source="x", title=title, path="p", score=1.0, text=text, metadata={})


HITS = [hit("kb:acronym#0", "Acronyms", LONG),
        hit("kb:split#1", "Splitting", "str.split() splits at whitespace. " * 20)]


@pytest.fixture(scope="module")
def acronym() -> tuple[TaskView, CETInput]:
    task = next(t for t in iter_tasks(real_tasks_file("exercism")) if t.id == "exercism/acronym")
    view = task_view(task, 3)
    return view, cet_input(view, HITS)


# ------------------------------------------------------------------------------------------------ prompts


def test_every_condition_prompt_holds_the_raw_task(acronym: tuple[TaskView, CETInput]) -> None:
    view, inp = acronym
    raw = render_prompt(view.raw_text(), language="python")
    assert view.visible_tests in raw and "abbreviate" in raw
    cet = Engineered(parse_context(gold_context(inp).to_text(), inp.chunk_ids()))
    assert not cet.failed
    contexts = {"rule_based": template_context(inp), "playbook": playbook_context(inp), "cet_phase1": cet,
                "cet_phase2": cet, "cet_phase3": cet}
    for condition in CONDITIONS:
        prompt = condition_prompt(condition, view, inp, HITS, contexts.get(condition))
        assert prompt, condition
        task_part = prompt if condition in ENGINEERED else prompt[prompt.index("Task:"):]
        assert task_part.startswith(raw.removesuffix("Write the complete python solution in one ```python code "
                                                     "block.").rstrip()), condition
    assert condition_prompt("raw", view, inp, HITS, None) == raw


def test_naive_rag_pastes_the_hits_whole_and_full_input_the_cut_hits(acronym: tuple[TaskView, CETInput]) -> None:
    view, inp = acronym
    raw = render_prompt(view.raw_text(), language="python")
    assert inp.cut.get("chunks", 0) > 0  # the CET read the chunks cut
    naive = condition_prompt("naive_rag", view, inp, HITS, None)
    assert naive == f"Retrieved knowledge:\n{naive_rag_text(HITS)}\n\n{raw}"
    assert LONG.strip() in naive  # the whole chunk
    full = condition_prompt("full_input", view, inp, HITS, None)
    assert full.endswith(raw)
    for cut_hit in inp.hits:
        assert f"[{cut_hit.id}] {cut_hit.title}: {cut_hit.text}" in full  # exactly as the CET read it
        assert cut_hit.text.endswith("…")
    assert LONG.strip() not in full
    # no hits: nothing to add
    bare = cet_input(view)
    assert condition_prompt("naive_rag", view, bare, [], None) == raw
    assert condition_prompt("full_input", view, bare, [], None) == raw


def test_engineered_conditions_add_their_context(acronym: tuple[TaskView, CETInput]) -> None:
    view, inp = acronym
    template = template_context(inp)
    assert not template.failed and template.untraceable == []
    assert template.parsed is not None and template.parsed.context == rule_based_context(inp)
    prompt = condition_prompt("rule_based", view, inp, HITS, template)
    assert prompt == render_prompt(view.raw_text(), rule_based_context(inp), language="python")
    assert rule_based_context(inp).to_text() in prompt
    gold = gold_context(inp)
    cet = Engineered(parse_context(gold.to_text(), inp.chunk_ids()))
    prompt = condition_prompt("cet_phase2", view, inp, HITS, cet)
    assert gold.to_text() in prompt and prompt.startswith(f"Task:\n{view.raw_text()}")


def test_a_failed_context_gives_no_prompt(acronym: tuple[TaskView, CETInput]) -> None:
    view, inp = acronym
    for condition in ENGINEERED:
        assert condition_prompt(condition, view, inp, HITS, Engineered(parsed=None, error="x")) == ""
        assert condition_prompt(condition, view, inp, HITS, None) == ""
        unreadable = Engineered(parse_context("no sections at all", inp.chunk_ids()))
        assert unreadable.failed and condition_prompt(condition, view, inp, HITS, unreadable) == ""
        errored = Engineered(parse_context(gold_context(inp).to_text(), inp.chunk_ids()), error="timed out")
        assert errored.failed and condition_prompt(condition, view, inp, HITS, errored) == ""


def test_nothing_to_add_gives_the_raw_prompt_and_an_empty_reply_does_not(acronym: tuple[TaskView, CETInput]) -> None:
    view, inp = acronym
    raw = condition_prompt("raw", view, inp, HITS, None)
    nothing = Engineered(parse_context(NOTHING_TO_ADD + "\n", inp.chunk_ids()))
    assert not nothing.failed and condition_prompt("cet_phase2", view, inp, HITS, nothing) == raw
    empty = Engineered(parse_context("", inp.chunk_ids()))  # a reply that says nothing at all is a failure
    assert empty.failed and condition_prompt("cet_phase2", view, inp, HITS, empty) == ""


# ---------------------------------------------------------------------------------------- failure classes


ADD_TESTS = """
from solution import add

def test_small():
    assert add(1, 2) == 3

def test_negative():
    assert add(-1, -2) == -3
"""

SOLUTIONS = {
    "passed": "def add(a, b):\n    return a + b\n",
    "syntax": "def add(a, b)\n    return a + b\n",
    "wrong name": "def plus(a, b):\n    return a + b\n",
    "wrong signature": "def add(a):\n    return a\n",
    "assertion": "def add(a, b):\n    return a - b\n",
    "exception": "def add(a, b):\n    return [a][b]\n",
    "missing import": "def add(a, b):\n    return math.fsum([a, b])\n",
    "attribute error": "def add(a, b):\n    return a.upper()\n",
    "infinite loop": "def add(a, b):\n    while True:\n        pass\n",
}


@pytest.fixture(scope="module")
def runs() -> dict[str, ExecutionResult]:
    """Each solution run once in the real sandbox (a 2 s CPU limit ends the infinite loop; the wall limit leaves room
    for a loaded machine)."""
    bwrap_or_skip()
    executor = Executor(exec_config("bubblewrap", workers=2, wall_timeout_s=30, cpu_time_s=2))
    task = make_task(ADD_TESTS, ["test_small", "test_negative"])
    results = executor.run_many((task, code) for code in SOLUTIONS.values())
    return dict(zip(SOLUTIONS, results, strict=True))


@pytest.mark.parametrize(("solution", "expected"), [
    ("passed", "passed"),
    ("syntax", "syntax"),
    ("wrong name", "name/signature"),
    ("wrong signature", "name/signature"),
    ("assertion", "assertion"),
    ("exception", "exception"),
    ("infinite loop", "timeout"),
])
def test_classify_failure_of_real_runs(runs: dict[str, ExecutionResult], solution: str, expected: str) -> None:
    result = runs[solution]
    assert classify_failure(result, SOLUTIONS[solution], "add") == expected, (result.exit_reason, result.detail)
    assert classify_failure(result, SOLUTIONS[solution], "solution.add") == expected  # a dotted entry point too


@pytest.mark.parametrize("solution", ["missing import", "attribute error"])
def test_an_error_inside_a_correctly_named_function_is_an_exception(runs: dict[str, ExecutionResult],
                                                                    solution: str) -> None:
    """`add` exists with the right parameters; it fails on a NameError (a missing import) or an AttributeError
    inside its body: a runtime exception, not a wrong name or signature."""
    result = runs[solution]
    assert result.exit_reason == "failed"
    assert classify_failure(result, SOLUTIONS[solution], "add") == "exception"


def test_no_code_is_no_code(runs: dict[str, ExecutionResult]) -> None:
    assert classify_failure(None, None, "add") == "no-code"
    assert classify_failure(None, "def add(a, b):\n    return a + b\n", "add") == "no-code"
    assert classify_failure(runs["assertion"], "", "add") == "no-code"


# ------------------------------------------------------------------------------------- views and analysis


def test_views_of_skips_the_tasks_whose_tests_cannot_be_split() -> None:
    tasks = list(iter_tasks(real_tasks_file("exercism")))[:2]
    javascript = CodingTask(id="js/1", language="javascript", statement="Add.", tests="test('x', () => {})",
                            test_names=["x"], metadata=TaskMetadata(source="t", split="test"))
    broken = CodingTask(id="py/broken", language="python", statement="Add.", tests="def test_x(:\n",
                        test_names=["test_x"], metadata=TaskMetadata(source="t", split="test"))
    views, skipped = views_of([tasks[0], javascript, broken, tasks[1]], 3)
    assert [v.task.id for v in views] == [tasks[0].id, tasks[1].id]
    assert set(skipped) == {"js/1", "py/broken"}
    assert "javascript" in skipped["js/1"] and "do not parse" in skipped["py/broken"]
    assert all(v.split.n_visible <= 3 and v.split.n_hidden >= 1 for v in views)


def row(task_id: str, condition: str, passed: bool, failure_class: str, context_error: str | None = None,
        tokens: int = 10) -> dict:
    return {"task_id": task_id, "condition": condition, "passed": passed, "failure_class": failure_class,
            "context_error": context_error, "context_tokens": tokens}


def test_failure_analysis_lists_the_tasks_the_cet_lost_and_won() -> None:
    rows = [
        row("a", "raw", True, "passed"), row("a", "cet_phase2", False, "assertion", tokens=120),
        row("b", "raw", False, "timeout"), row("b", "cet_phase2", True, "passed"),
        row("c", "raw", True, "passed"), row("c", "cet_phase2", True, "passed"),
        row("d", "raw", True, "passed"), row("d", "rule_based", False, "syntax"),  # no CET row: not compared
        row("e", "raw", True, "passed"), row("e", "cet_phase2", False, "context-failed", "no sections", 0),
        row("f", "raw", False, "exception"), row("f", "cet_phase2", False, "syntax"),
        row("g", "raw", True, "passed"), row("g", "cet_phase2", False, "assertion"),
    ]
    analysis = failure_analysis(rows)
    assert analysis["lost"] == [
        {"task_id": "a", "raw": "passed", "cet": "assertion", "context_error": None, "context_tokens": 120},
        {"task_id": "e", "raw": "passed", "cet": "context-failed", "context_error": "no sections",
         "context_tokens": 0},
        {"task_id": "g", "raw": "passed", "cet": "assertion", "context_error": None, "context_tokens": 10},
    ]
    assert analysis["won"] == [
        {"task_id": "b", "raw": "timeout", "cet": "passed", "context_error": None, "context_tokens": 10}]
    assert analysis["lost_by_class"] == {"assertion": 2, "context-failed": 1}
    assert failure_analysis([]) == {"lost": [], "won": [], "lost_by_class": {}}


def test_the_selection_ceiling_counts_a_task_any_unlearned_context_passed() -> None:
    outcomes = {"raw": [True, False, False, False], "rule_based": [False, True, False, False],
                "naive_rag": [False, False, False, True], "cet_phase2": [False, False, True, False]}
    ceiling = selection_ceiling(outcomes)
    assert ceiling == {"among": ["raw", "naive_rag", "rule_based"], "passed": 3, "n": 4, "rate": 0.75,
                       "gain_over_raw": 0.5}  # the CET's own pass (task 3) is not part of the ceiling
    assert selection_ceiling({"raw": [True], "cet_phase2": [False]}) is None  # nothing to choose among
    assert selection_ceiling({"rule_based": [True], "naive_rag": [False]}) is None  # no raw to measure against


def _goal_of(target: list[bool], others: dict[str, list[bool]], nothing_to_add: int = 0) -> dict:
    from cet.evaluation.significance import compare_conditions, harm_rate

    outcomes = {"cet_phase2": target, **others}
    result = {"comparisons": compare_conditions(outcomes, "cet_phase2", list(others)),
              "harm_vs_raw": {"cet_phase2": {"harm": harm_rate(target, others["raw"])}},
              "tasks": [f"t{i}" for i in range(len(target))], "nothing_to_add": {"cet_phase2": nothing_to_add}}
    return goal_status(result)


def test_the_goal_is_judged_on_evidence_not_on_point_estimates() -> None:
    # six tasks, every condition alike: level on point estimates, but nothing is shown
    same = [True, False, False, True, False, False]
    small = _goal_of(same, {c: list(same) for c in ("raw", "full_input", "naive_rag", "rule_based")})
    assert small["status"] == "not shown" and set(small["parts"].values()) == {"not shown"}
    # 300 tasks: the CET passes 60 tasks naive RAG fails, equals the template and full input, harms raw nowhere
    base = [i % 3 == 0 for i in range(300)]
    cet = [b or i % 5 == 1 for i, b in enumerate(base)]
    big = _goal_of(cet, {"raw": base, "full_input": list(cet), "rule_based": list(cet), "naive_rag": base})
    assert big["status"] == "met" and set(big["parts"].values()) == {"shown"}
    # the same, but the CET loses 50 of the 100 tasks raw passes: harm fails the goal
    harmful = [c and i % 6 != 0 for i, c in enumerate(cet)]
    worse = _goal_of(harmful, {"raw": base, "full_input": list(harmful), "rule_based": list(harmful),
                               "naive_rag": base})
    assert worse["status"] == "not met" and worse["parts"]["harm vs raw <= 0.05"] == "failed"
    # only raw and naive RAG run: the template and full-input parts are "not run", so the goal is not shown
    partial = _goal_of(cet, {"raw": base, "naive_rag": base})
    assert partial["parts"]["level with rule_based"] == "not run" and partial["status"] == "not shown"
    # the CET far behind the template: the level part fails
    behind = _goal_of(base, {"raw": base, "full_input": cet, "rule_based": cet, "naive_rag": base})
    assert behind["parts"]["level with rule_based"] == "failed" and behind["status"] == "not met"
    assert "note" not in big
    # a CET that says nothing to add on (almost) every task is raw: the goal can be met, and the verdict says why
    template = [b and i % 9 != 0 for i, b in enumerate(base)]
    silent = _goal_of(list(base), {"raw": base, "full_input": template, "rule_based": template,
                                   "naive_rag": [False] * 300}, nothing_to_add=290)
    assert silent["status"] == "met" and "nothing to add on 290 of 300 tasks" in silent["note"]


def test_the_phase3_goal_needs_each_margin_inside_the_interval() -> None:
    from cet.evaluation.context_eval import PHASE3_MARGINS, target_of
    from cet.evaluation.significance import compare_conditions, harm_rate

    def goal(target: list[bool], others: dict[str, list[bool]]) -> dict:
        outcomes = {"cet_phase3": target, **others}
        return goal_status({"target": "cet_phase3",
                            "comparisons": compare_conditions(outcomes, "cet_phase3", list(others)),
                            "harm_vs_raw": {"cet_phase3": {"harm": harm_rate(target, others["raw"])}},
                            "tasks": [f"t{i}" for i in range(len(target))], "nothing_to_add": {}})

    n = 400
    raw = [i % 3 == 0 for i in range(n)]  # 0.33
    strong = [r or i % 3 == 1 for i, r in enumerate(raw)]  # 0.67: +33 points over raw, no harm
    others = {"raw": raw, "naive_rag": [False] * n, "rule_based": raw, "cet_phase2": raw}
    met = goal(strong, others)
    assert met["status"] == "met" and set(met["parts"]) == {f"{c} + {m:.2f}" for c, m in PHASE3_MARGINS.items()} | {
        "harm vs raw <= 0.05"} and "playbook" in met["caveat"]
    # +6 points over raw: significant, but the interval reaches under +10: not shown, never "met" on the estimate
    slight = [r or i % 17 == 1 for i, r in enumerate(raw)]
    near = goal(slight, others)
    assert near["parts"]["raw + 0.10"] in ("not shown", "failed") and near["status"] != "met"
    # no gain at all: the interval lies under every margin
    flat = goal(list(raw), others)
    assert flat["parts"]["raw + 0.10"] == "failed" and flat["status"] == "not met"
    assert target_of(["raw", "cet_phase2", "cet_phase3"]) == "cet_phase3"
    assert target_of(["raw", "cet_phase1"]) == "cet_phase1" and target_of(["raw"]) == "cet_phase2"


def test_the_playbook_condition_reads_what_the_phase3_cet_reads() -> None:
    from cet.data.playbook import Playbook, catalogue_item
    from cet.evaluation.context_eval import playbook_context, with_playbook

    leet = CodingTask(id="leetcode/x", language="python", statement="# X\n\n## Constraints\n\n- `1 <= n <= 9`",
                      entry_point="Solution.two_sum", signature="class Solution:\n    def two_sum(self, n: int):",
                      tests=ADD_TESTS, test_names=["test_small", "test_negative"],
                      metadata=TaskMetadata(source="leetcode", split="test"))
    plain = CodingTask(id="humaneval/y", language="python", statement="Add two numbers.", entry_point="add",
                       signature="def add(a, b)", tests=ADD_TESTS, test_names=["test_small", "test_negative"],
                       metadata=TaskMetadata(source="humaneval", split="eval", evaluation_only=True))
    views = [task_view(leet, 1), task_view(plain, 1)]
    inputs = [cet_input(v) for v in views]
    pb = Playbook().apply({"add": [catalogue_item("renamed", "snake-case-names")]})
    read = with_playbook(views, inputs + inputs, pb)  # the noisy copies get their task's items too
    assert [len(i.playbook) for i in read] == [1, 0, 1, 0]
    context = playbook_context(read[0])
    assert context.parsed.context.pitfalls == list(read[0].playbook) and not context.failed
    empty = playbook_context(read[1])  # no item matches: the raw prompt, not a failure
    assert empty.parsed.context.is_empty() and not empty.failed and empty.parsed.nothing_to_add


def test_an_ablation_keeps_each_context_exactly_for_a_resume_and_removes_one_section() -> None:
    from cet.evaluation.ablation import _engineered_from, _engineered_to, section_arms, without_section
    from cet.evaluation.context_eval import Engineered
    from cet.model.context import EngineeredContext, KnowledgeRef, ParsedContext

    context = EngineeredContext(goal="Add two numbers.", examples=["add(1, 2) == 3"], constraints=["ints only"],
                                knowledge=[KnowledgeRef("kb-1", "use the + operator")])
    engineered = Engineered(ParsedContext(context, [], 4, False), "raw text", None, 0.5, [])
    failed = Engineered(None, "garbage", "does not parse", 0.1, [])
    assert [_engineered_from(_engineered_to(e)) for e in (engineered, failed)] == [engineered, failed]
    assert section_arms([engineered, failed]) == ["minus_goal", "minus_examples", "minus_constraints",
                                                  "minus_knowledge"]
    less = without_section(engineered, "examples")
    assert less.parsed.context.examples == [] and less.parsed.context.constraints == ["ints only"]
    assert engineered.parsed.context.examples == ["add(1, 2) == 3"]  # the original is untouched
    assert without_section(failed, "goal") is failed


def test_the_ablation_baselines_see_what_the_cet_reads_and_nothing_else(acronym: tuple[TaskView, CETInput]) -> None:
    from cet.config import CetConfig
    from cet.evaluation.ablation import _arm_prompts, _contexts

    view, inp = acronym
    raw, rag = (_arm_prompts(arm, [view], [inp], [HITS], None)[0] for arm in ("raw", "naive_rag"))
    assert raw == condition_prompt("raw", view, inp, HITS, None) and raw in rag and rag != raw
    assert rag == f"Retrieved knowledge:\n{naive_rag_text(HITS)}\n\n{raw}"  # the chunks the CET's input was cut from
    assert {h.id for h in inp.hits} <= {h.id for h in HITS}
    assert _contexts(CetConfig(), "naive_rag", None, [view], [inp], [inp], None) is None
    [made] = _contexts(CetConfig(), "template", None, [view], [inp], [inp], None)
    assert made.raw == template_context(inp).raw and not made.failed  # the template's text, as eval context's
    assert made.parsed.context == rule_based_context(inp)
    failed = Engineered(None, "garbage", "does not parse", 0.1, [])
    assert _arm_prompts("template", [view, view], [inp, inp], [HITS, HITS], [made, failed]) == [
        render_prompt(view.raw_text(), made.parsed.context, language="python"), ""]  # a failure: no prompt


def test_skip_phase2_trains_with_the_targets_own_phase3_options_from_its_manifest(tmp_path) -> None:
    import json
    from dataclasses import asdict

    from cet.config import CetConfig
    from cet.evaluation.ablation import AblationOptions, target_phase3_options
    from cet.phases.phase3 import Phase3Options

    target = tmp_path / "p3"
    target.mkdir()
    trained = Phase3Options(tasks=40, dev_tasks=10, samples=1)
    (target / "cet.json").write_text(json.dumps({"base": "b", "phase": "phase3", "options": asdict(trained)}))
    assert target_phase3_options(CetConfig(), AblationOptions(phase3=str(target))) == trained
    (target / "cet.json").write_text(json.dumps({"base": "b", "phase": "phase3"}))  # saved before options travelled
    assert target_phase3_options(CetConfig(), AblationOptions(phase3=str(target))) is None  # and no run directory


def test_an_ablation_reuses_contexts_only_for_the_same_model_on_the_same_inputs(tmp_path) -> None:
    import json

    from cet.config import CetConfig
    from cet.evaluation.ablation import _same_contexts, engine_key, model_digest

    def checkpoint(name: str, weights: bytes, modules: list[str], phase: str) -> Path:
        where = tmp_path / name
        where.mkdir()
        (where / "adapter_model.safetensors").write_bytes(weights)
        (where / "adapter_config.json").write_text(json.dumps({"r": 16, "target_modules": modules}))
        (where / "cet.json").write_text(json.dumps({"base": "smollm2-135m-instruct", "phase": phase}))
        (where / "README.md").write_text(f"the {phase} CET")
        return where

    phase2 = checkpoint("p2", b"weights", ["q_proj", "v_proj"], "phase2")
    phase3 = checkpoint("p3", b"weights", ["v_proj", "q_proj"], "phase3")  # kept its start: the same weights
    (phase3 / "playbook.json").write_text("{}")
    other = checkpoint("other", b"trained further", ["q_proj", "v_proj"], "phase3")
    assert model_digest(phase2) == model_digest(phase3) != model_digest(other)
    cfg = CetConfig()
    inputs = [CETInput(task="Add two numbers.")]
    key = engine_key(cfg, phase2, inputs)
    assert key == engine_key(cfg, phase3, inputs) != engine_key(cfg, phase2, [CETInput(task="Add three numbers.")])
    assert key != engine_key(cfg.model_copy(update={"cet": cfg.cet.model_copy(update={"max_new_tokens": 9})}),
                             phase2, inputs)
    arms = tmp_path / "arms"
    arms.mkdir()
    (arms / "phase1-3.contexts.json").write_text(json.dumps({"key": "k", "engine": key, "arm": "phase1-3",
                                                             "contexts": ["made once"]}))
    assert _same_contexts(arms, key) == {"arm": "phase1-3", "contexts": ["made once"]}
    assert _same_contexts(arms, engine_key(cfg, other, inputs)) is None


def test_a_resumed_ablation_keeps_its_options_but_may_add_arms_and_phase4_checkpoints() -> None:
    from cet.errors import CetError
    from cet.evaluation.ablation import AblationOptions, resumed_options

    stored = AblationOptions(tasks=150, arms=("raw", "phase1-3"), phase3="ckpt/p3")
    given = AblationOptions(tasks=1, arms=("raw", "phase1-3", "all"), phase3="elsewhere", phase4="ckpt/p4")
    merged = resumed_options(stored, given, arms_given=True)
    assert (merged.tasks, merged.phase3, merged.arms, merged.phase4) == (150, "ckpt/p3", given.arms, "ckpt/p4")
    assert resumed_options(stored, given, arms_given=False).arms == stored.arms
    with pytest.raises(CetError, match="started with --phase4 ckpt/p4"):
        resumed_options(merged, AblationOptions(phase4="other/p4"), arms_given=False)
    assert resumed_options(merged, AblationOptions(phase4="ckpt/p4"), arms_given=False) == merged
