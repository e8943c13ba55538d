"""What the CET reads (`CETInput`): the token cut keeps the parts that matter, the CET and the template read the same
input, and every training target built from it holds only what the input holds (`untraceable`)."""

from __future__ import annotations

import ast
import copy
import functools
import random
import traceback
from collections.abc import Iterator

import pytest

from cet.data.baselines import rule_based_context
from cet.data.degradations import degrade_randomly
from cet.data.gold_context import (
    completion_context,
    debugging_context,
    gold_context,
    input_entry_point,
    restrict_to_input,
    section_choices,
    undefined_names,
    untraceable,
)
from cet.data.partial_code import partial_variants
from cet.data.task_input import TaskView, cet_input, hidden_strings, task_view
from cet.execution.tasks import CodingTask, TaskMetadata, iter_tasks
from cet.knowledge.records import Hit
from cet.model.context import EngineeredContext, KnowledgeRef
from cet.model.prompts import (
    INPUT_TOKENS,
    SYSTEM,
    CETInput,
    approx_tokens,
    build_input,
    context_messages,
    cut_statement,
    cut_text,
    input_messages,
)
from task_data import real_tasks_file


def hit(chunk_id: str, title: str, text: str) -> Hit:
    return Hit(id=chunk_id, source="x", title=title, path="p", score=1.0, text=text, metadata={})


HITS = [
    hit("kb:strings#0", "Strings", "Python strings are immutable. Use slicing to reverse them. " * 6),
    hit("kb:lists#2", "Lists", "A list keeps its order; sorted() returns a new list. Use a set for membership tests."),
]


@functools.cache
def tasks_of(name: str) -> tuple[CodingTask, ...]:
    return tuple(iter_tasks(real_tasks_file(name)))


def task_by_id(task_id: str) -> CodingTask:
    return next(t for t in tasks_of(task_id.split("/")[0]) if t.id == task_id)


def sample_tasks() -> Iterator[CodingTask]:
    """Every second HumanEval task, every Exercism task, every tenth LeetCode task (~290 tasks)."""
    yield from tasks_of("humaneval")[::2]
    yield from tasks_of("exercism")
    yield from tasks_of("leetcode")[::10]


def squash(text: str) -> str:
    return "".join(text.split())


def signature_shown(task: CodingTask, inp: CETInput) -> bool:
    """Every line of the task's signature (whitespace and a trailing colon aside) is in what the CET reads."""
    rendered = squash(inp.render())
    return all(squash(line).rstrip(":") in rendered for line in (task.signature or "").splitlines() if line.strip()
               and not line.startswith("from "))


def real_traceback() -> str:
    """A real CPython traceback of code run from a file named solution.py (failing on its line 2)."""
    namespace: dict = {}
    exec(compile("def divide(a, b):\n    return a / b\n", "/work/solution.py", "exec"), namespace)  # noqa: S102
    try:
        namespace["divide"](1, 0)
    except ZeroDivisionError:
        return traceback.format_exc()
    raise AssertionError("the division did not fail")


def partial_code(task: CodingTask) -> str:
    """Partial code of a task: a real cut of HumanEval's reference solution, else the stub with `pass` bodies."""
    if task.reference_solution:
        variants = partial_variants(task.reference_solution, random.Random(task.id), task.entry_point)
        if variants:
            return variants[0].code
    lines = []
    for line in (task.signature or "").splitlines():
        stripped = line.strip()
        if stripped.startswith(("def ", "async def ")):
            indent = line[: len(line) - len(line.lstrip())]
            lines += [indent + stripped.rstrip(":") + ":", indent + "    pass"]
        else:
            lines.append(line)
    code = "\n".join(lines) + "\n"
    ast.parse(code)  # the stub is valid Python
    return code


# ------------------------------------------------------------------------------------------- (1) the token cut


def test_the_cut_keeps_the_interface_section_and_visible_tests_and_cuts_the_prose() -> None:
    """Exercism's `## Interface` section sits at the END of the statement: a small budget keeps it (with the
    signature) and the visible tests as whole lines, and cuts the prose before it."""
    view = task_view(task_by_id("exercism/binary-search"), 3)
    inp = cet_input(view, budget=200)
    interface = view.statement[view.statement.index("## Interface"):].strip()
    assert inp.task.endswith(interface)  # the whole section, as written
    assert "```python\ndef find(array, value): ...\n```" in inp.task
    assert "- `find([1, 3, 4, 6, 8, 9, 11], 7)` raises `ValueError('value not in array')`" in inp.task
    assert inp.task.startswith("# Instructions\n\nYour task is to implement a binary search algorithm.")
    assert "Find the middle element" not in inp.task and "Exception messages" not in inp.task  # prose dropped
    # the visible tests: whole lines from the start, within their share of the budget
    kept = inp.visible_tests.splitlines()
    assert 1 <= len(kept) and kept == view.visible_tests.splitlines()[: len(kept)]
    assert approx_tokens(inp.visible_tests) <= 200 * 0.25
    # a budget a little larger keeps all of them
    assert cet_input(view, budget=260).visible_tests == view.visible_tests


def test_the_cut_reports_what_was_dropped() -> None:
    view = task_view(task_by_id("exercism/binary-search"), 3)
    inp = cet_input(view, HITS, budget=200)
    assert set(inp.cut) == {"task", "visible_tests", "chunks"}
    assert inp.cut["task"] == approx_tokens(view.statement) - approx_tokens(inp.task) > 0
    assert inp.cut["visible_tests"] == approx_tokens(view.visible_tests) - approx_tokens(inp.visible_tests) > 0
    full = sum(approx_tokens(" ".join(h.text.split())) for h in HITS)
    assert inp.cut["chunks"] == full - sum(approx_tokens(h.text) for h in inp.hits) > 0
    assert [h.id for h in inp.hits] == ["kb:strings#0", "kb:lists#2"]
    # nothing cut: nothing reported
    small = build_input("Reverse a string.", [HITS[1]], interface="def reverse(text)",
                        visible_tests="assert reverse('ab') == 'ba'")
    assert small.cut == {} and small.hits == (HITS[1],)


def test_a_trimmed_error_report_is_reported_as_cut() -> None:
    """`cut` says what the CET did not get: a long failure report trimmed to its assertion and last lines lost
    most of its text, so `cut` must say so."""
    noise = "\n".join(f"    frame line {i} " + "x" * 30 for i in range(80))
    error = f"{noise}\n>       assert reverse('ab') == 'ba'\n{noise}\nAssertionError"
    inp = build_input("Reverse a string.", interface="def reverse(text)", code="def reverse(text):\n    pass\n",
                      error=error)
    assert inp.error is not None and "frame line 40" not in inp.error
    assert inp.cut.get("error", 0) == approx_tokens(error) - approx_tokens(inp.error) > 0


def test_the_cut_is_deterministic() -> None:
    view = task_view(task_by_id("leetcode/add-binary"), 3)
    first = cet_input(view, HITS, budget=200)
    again = cet_input(task_view(task_by_id("leetcode/add-binary"), 3), copy.deepcopy(HITS), budget=200)
    assert first == again and first.render() == again.render()
    assert cut_statement(view.statement, 50) == cut_statement(view.statement, 50)
    assert approx_tokens("def add_binary(self, a: str) -> str:") == 15


def test_cut_text_cuts_at_a_word_and_marks_the_cut() -> None:
    text = "one two three four five six"
    assert cut_text(text, 100) == text
    assert cut_text(text, 3) == "one two three …"
    assert cut_text("antidisestablishmentarianism-and-more", 1) == ""


def test_the_input_keeps_to_its_budget() -> None:
    """Statement, interface, visible tests and chunks together stay within the budget (each cut may add its one
    "…" token)."""
    for task in sample_tasks():
        view = task_view(task, 3)
        for budget in (200, INPUT_TOKENS):
            inp = cet_input(view, HITS, budget=budget)
            total = sum(approx_tokens(t) for t in (inp.task, inp.interface, inp.visible_tests))
            total += sum(approx_tokens(h.text) for h in inp.hits)
            assert total <= budget + 4, (task.id, budget, total)


def test_an_interface_section_after_a_long_example_section_survives_the_cut() -> None:
    """The signature is what a solution must match: a long `## Example` walk-through early in the statement must
    not push the `## Interface` section at its end out of the input (nor the first paragraph, which says what to
    do: prompts.cut_statement's docstring keeps it before the rest)."""
    walk_through = "\n".join(f"- step {i}: divide 60 by {i + 2} and keep the remainder" for i in range(30))
    statement = (f"# Instructions\n\nCompute the prime factors of a natural number.\n\n## Example\n\n{walk_through}\n\n"
                 "## Interface\n\n```python\ndef factors(value): ...\n```\n")
    kept = build_input(statement, budget=200).task
    assert "def factors(value): ..." in kept
    assert "Compute the prime factors of a natural number." in kept
    assert "step 29" not in kept


def test_the_signature_reaches_the_input_of_real_tasks() -> None:
    """task_view leaves the interface empty when the statement shows the signature, so the statement's cut must
    keep it: every Exercism task at a small budget (200) and every task of the three sets at the default budget."""
    lost = [t.id for t in tasks_of("exercism") if not signature_shown(t, cet_input(task_view(t, 3), budget=200))]
    for name in ("exercism", "humaneval", "leetcode"):
        lost += [f"{t.id}@{INPUT_TOKENS}" for t in tasks_of(name)
                 if not signature_shown(t, cet_input(task_view(t, 3), budget=INPUT_TOKENS))]
    assert not lost, f"{len(lost)} inputs lost their signature: {', '.join(lost)}"


# ------------------------------------------------------------------------------ (2) the CET and the template


def test_the_cet_reads_exactly_the_rendered_input() -> None:
    for task in sample_tasks():
        view = task_view(task, 3)
        inp = cet_input(view, HITS)
        messages = input_messages(inp)
        assert messages == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": inp.render()}]
        assert inp.text_for_tracing() == inp.render()
        assert inp.chunk_ids() == ["kb:strings#0", "kb:lists#2"]
        assert context_messages(view.statement, HITS, interface=view.interface,
                                visible_tests=view.visible_tests) == messages


def test_the_render_shows_every_part() -> None:
    inp = build_input("Reverse a string.", [HITS[1]], interface="def reverse(text)",
                      visible_tests="assert reverse('ab') == 'ba'", code="def reverse(text):\n    pass\n",
                      error="AssertionError")
    assert inp.render() == (
        "Task:\nReverse a string.\n\nInterface:\ndef reverse(text)\n\nVisible tests:\nassert reverse('ab') == 'ba'"
        "\n\nCode:\ndef reverse(text):\n    pass\n\nError report:\nAssertionError\n\nRetrieved knowledge:\n"
        "[kb:lists#2] Lists: A list keeps its order; sorted() returns a new list. Use a set for membership tests.")
    assert build_input("Do it.").render() == "Task:\nDo it.\n\nRetrieved knowledge:\n(nothing retrieved)"


def hidden_changed(task: CodingTask) -> CodingTask:
    """The task with the last assert of its tests (a hidden case) changed."""
    lines = task.tests.splitlines(keepends=True)
    last = max(i for i, line in enumerate(lines) if line.lstrip().startswith("assert "))
    indent = lines[last][: len(lines[last]) - len(lines[last].lstrip())]
    lines[last] = f"{indent}assert 987654 != 123456 and {lines[last].lstrip().removeprefix('assert ')}"
    return task.model_copy(update={"tests": "".join(lines)})


@pytest.mark.parametrize("task_id", ["exercism/acronym", "humaneval/0", "leetcode/add-binary"])
def test_the_template_reads_the_input_alone(task_id: str) -> None:
    task = task_by_id(task_id)
    view = task_view(task, 3)
    inp = cet_input(view, HITS)
    context = rule_based_context(inp)
    # the same input built again, or copied: the same context
    assert rule_based_context(cet_input(task_view(task, 3), HITS)) == context
    assert rule_based_context(copy.deepcopy(inp)) == context
    # a hidden test changed: the CET's input and the template's context are unchanged
    changed = task_view(hidden_changed(task), 3)
    assert changed.hidden.tests != view.hidden.tests and "987654" in changed.hidden.tests
    assert "987654" in hidden_strings(changed) and "987654" not in hidden_strings(view)
    assert changed.visible_tests == view.visible_tests
    changed_inp = cet_input(changed, HITS)
    assert changed_inp == inp and changed_inp.render() == inp.render()
    assert rule_based_context(changed_inp) == context
    # ...and so is the gold target's text: the hidden tests only order the input's facts
    assert sorted(gold_context(changed_inp, hidden_strings(changed)).examples) == \
        sorted(gold_context(inp, hidden_strings(view)).examples)


def test_task_view_parts() -> None:
    task = task_by_id("humaneval/0")
    view = task_view(task, 3)
    assert view.interface == ""  # the statement already shows the signature
    assert view.split.n_visible == 3 and len(view.visible_tests.splitlines()) == 3
    assert view.raw_text() == f"{task.statement.strip()}\n\nVisible tests:\n{view.visible_tests}"
    bare = task_view(task, 2, statement="Say whether two numbers of a list are closer than a threshold.")
    assert bare.interface == task.signature  # a statement without the signature: the view adds it
    assert bare.raw_text() == ("Say whether two numbers of a list are closer than a threshold.\n\nInterface:\n"
                               f"{task.signature}\n\nVisible tests:\n{bare.visible_tests}")
    assert bare.hidden.tests != view.hidden.tests  # two visible tests: one more case hidden
    assert isinstance(view, TaskView) and view.hidden.test_names == task.test_names


def test_hidden_strings_are_the_hidden_tests_literals_most_frequent_first() -> None:
    tests = ("from solution import f\n\n\ndef test_a():\n    assert f('x') == 1\n\n\ndef test_b():\n"
             "    assert f('y') == 2\n    assert f('y', 2.5) == 2\n")
    task = CodingTask(id="t/f", language="python", statement="Do f.", entry_point="f", tests=tests,
                      test_names=["test_a", "test_b"], metadata=TaskMetadata(source="t", split="train"))
    view = task_view(task, 1)
    assert view.visible_tests == "assert f('x') == 1"
    assert hidden_strings(view) == ["y", "2", "2.5"]


# ----------------------------------------------------------------------------------------- (3) traceability


def test_every_target_of_real_tasks_is_traceable_to_its_input() -> None:
    """Requirement, partial-code and bug-report targets of ~290 real tasks hold nothing their input lacks."""
    failure = real_traceback()
    found: list[tuple[str, str, list[str]]] = []
    checked = 0
    for task in sample_tasks():
        view = task_view(task, 3)
        important = hidden_strings(view)
        inp = cet_input(view, HITS)
        found.append((task.id, "gold", untraceable(gold_context(inp, important), inp)))
        partial = cet_input(view, HITS, code=partial_code(task))
        found.append((task.id, "completion", untraceable(completion_context(partial, important), partial)))
        report = cet_input(view, HITS, code=partial.code, error=failure)
        context = debugging_context(report)
        assert context.failure and "ZeroDivisionError: division by zero" in context.failure
        found.append((task.id, "debugging", untraceable(context, report)))
        checked += 1
    assert checked >= 100
    untraced = [f"{task_id} {kind}: {items}" for task_id, kind, items in found if items]
    assert not untraced, "\n".join(untraced)


def test_an_example_written_as_for_x_the_output_should_be_y_is_traceable() -> None:
    """HumanEval writes examples as "For num = "AB" the output should be 1." (humaneval/78); the gold context
    shows it as 'Input: num = "AB" -> Output: 1', and each side of it is in the input."""
    statement = ('def hex_key(num):\n    """Count the prime hexadecimal digits of num.\n    Examples:\n'
                 '    For num = "AB" the output should be 1.\n    """\n')
    inp = build_input(statement)
    context = gold_context(inp)
    assert context.examples == ['Input: num = "AB" -> Output: 1']
    assert untraceable(context, inp) == []


def test_untraceable_reports_what_the_input_does_not_hold() -> None:
    statement = ("# Instructions\n\nFind the position of a value in a sorted list.\n\nAssume the list is sorted.\n\n"
                 "```python\ndef find(array, value): ...\n```\n")
    chunk = hit("kb:bisect#1", "Binary search", "A binary search halves the sorted list each step.")
    inp = build_input(statement, [chunk], visible_tests="assert find([6], 6) == 0")
    good = gold_context(inp)
    assert untraceable(good, inp) == [] and good.examples == ["find([6], 6) == 0"]
    invented = EngineeredContext(
        goal="Find the position of a value in 4096 steps.",
        interface=[*good.interface, "def find(array, value, start)"],
        examples=[*good.examples, "find([7, 8], 8) == 1"],
        constraints=["Assume the list is sorted.", "The list holds at most 1000 items."],
        knowledge=[*good.knowledge, KnowledgeRef("kb:nowhere#9", "A binary search halves the sorted list each step."),
                   KnowledgeRef("kb:bisect#1", "Binary search always runs in O(log n).")],
        pitfalls=["handle empty input", "the value -77 is special"],
    )
    assert untraceable(invented, inp) == [
        "interface: def find(array, value, start)",
        "examples: find([7, 8], 8) == 1",
        "constraints: The list holds at most 1000 items.",
        "knowledge: [kb:nowhere#9] A binary search halves the sorted list each step.",
        "knowledge: [kb:bisect#1] Binary search always runs in O(log n).",
        "literal 4096 in: Find the position of a value in 4096 steps.",
        "literal -77 in: the value -77 is special",
    ]
    # a quote cut short ("…") is traceable piece by piece; a chunk's text is not traceable to another chunk
    other = hit("kb:other#2", "Other", "It rains in spring.")
    two = build_input(statement, [chunk, other])
    assert untraceable(EngineeredContext(knowledge=[KnowledgeRef("kb:bisect#1", "A binary search … each step.")]),
                       two) == []
    assert untraceable(EngineeredContext(knowledge=[KnowledgeRef("kb:other#2", "A binary search halves")]), two) != []


# ----------------------------------------------------------------------------------- (4) section choices


def test_gold_interface_and_examples_are_picked_from_the_section_choices() -> None:
    checked = 0
    for task in sample_tasks():
        view = task_view(task, 3)
        plain = cet_input(view, HITS)
        code = cet_input(view, HITS, code=partial_code(task))
        for inp, context in ((plain, gold_context(plain, hidden_strings(view))),
                             (code, completion_context(code, hidden_strings(view)))):
            choices = section_choices(inp)
            assert set(context.interface) <= set(choices["interface"]), task.id
            assert set(context.examples) <= set(choices["examples"]), task.id
        checked += 1
    assert checked >= 100


# -------------------------------------------------------------------------------- (5) restrict to the input


STATEMENT = """# Instructions

Find the position of a value in a sorted list.

Assume the list is sorted. Raise an error if the value is missing.

## Interface

The tests import these functions from `binary_search.py`:

```python
def find(array, value): ...
```
"""
VISIBLE = "assert find([6], 6) == 0\nassert find([], 1) raises ValueError"
BISECT = hit("kb:bisect#1", "Binary search", "A binary search halves the sorted list each step.")
WEATHER = hit("kb:weather#0", "Weather", "It rains in spring.")


def test_restrict_to_input_drops_what_the_degraded_input_lost() -> None:
    clean_inp = build_input(STATEMENT, [BISECT, WEATHER], visible_tests=VISIBLE)
    clean = gold_context(clean_inp)
    assert clean.interface == ["def find(array, value)", "module: binary_search.py"]
    assert clean.constraints == ["Assume the list is sorted.", "Raise an error if the value is missing."]
    assert [k.chunk_id for k in clean.knowledge] == ["kb:bisect#1"]
    # the degraded statement lost the interface section and a constraint; the bisect chunk was not retrieved
    degraded = build_input("# Instructions\n\nFind the position of a value in a sorted list.\n\nAssume the list is "
                           "sorted.\n", [WEATHER], visible_tests=VISIBLE)
    fallback = gold_context(degraded)
    kept = restrict_to_input(clean, degraded, fallback)
    assert kept.goal == clean.goal
    assert kept.interface == []
    assert kept.examples == clean.examples  # the visible tests are never degraded
    assert kept.constraints == ["Assume the list is sorted."]
    assert kept.knowledge == []
    assert untraceable(kept, degraded) == []
    # a goal the degraded input no longer holds gives way to the fallback's
    reworded = build_input("Where in the sorted list is the value?", [BISECT], visible_tests=VISIBLE)
    assert restrict_to_input(clean, reworded, gold_context(reworded)).goal == gold_context(reworded).goal
    # nothing lost: nothing dropped
    assert restrict_to_input(clean, clean_inp, fallback) == clean


def test_restrict_to_input_drops_the_pitfalls_of_the_examples_it_dropped() -> None:
    """The edge-case pitfalls are read from the examples ("raise ValueError with the exact message" from an error
    example, "handle negative numbers" from a negative argument): when the degraded input lost every example, the
    restricted target must not keep telling the CET about a ValueError its input never mentions."""
    errors = "- `find([], 1)` raises `ValueError('value not in array')`\n- `find([-3], 1)` raises `ValueError('no')`\n"
    clean = gold_context(build_input(f"{STATEMENT}\nErrors:\n\n{errors}"))
    assert clean.pitfalls == ["raise ValueError with the exact message", "handle empty input",
                              "handle negative numbers"]
    degraded = build_input("# Instructions\n\nFind the position of a value in a sorted list.\n")
    kept = restrict_to_input(clean, degraded, gold_context(degraded))
    assert kept.examples == [] and "ValueError" not in degraded.render()
    assert kept.pitfalls == []


def test_restricted_targets_of_degraded_real_tasks_are_traceable() -> None:
    rng = random.Random(7)
    for task in list(sample_tasks())[::3]:
        view = task_view(task, 3)
        important = hidden_strings(view)
        clean = gold_context(cet_input(view, HITS), important)
        text, _ = degrade_randomly(task.statement, rng)
        degraded = cet_input(task_view(task, 3, statement=text), HITS)
        kept = restrict_to_input(clean, degraded, gold_context(degraded, important))
        assert untraceable(kept, degraded) == [], task.id
        for name in ("interface", "examples", "constraints", "knowledge", "pitfalls"):
            assert all(item in getattr(clean, name) for item in getattr(kept, name)), (task.id, name)


# ---------------------------------------------------------------------- (6) undefined names and entry points


def test_undefined_names() -> None:
    code = ("import math\nfrom functools import reduce as fold\n\n\ndef total(xs, key=len):\n    def inner(y):\n"
            "        return helper(y) + math.floor(y)\n    acc = fold(lambda a, b: a + b, xs)\n"
            "    return inner(acc) + key(xs) + missing(acc) + len(xs) + helper(1) + Later()\n\n\nclass Later:\n"
            "    pass\n")
    assert undefined_names(code) == ["helper", "missing"]
    assert undefined_names("def f(:\n") == []
    assert undefined_names("") == []
    assert undefined_names("print(sorted([3, 1]))\n[g(x) for g in (abs,) for x in (1,)]\n") == []


def test_input_entry_point_reads_the_input_alone() -> None:
    assert input_entry_point(build_input("Find it.", interface="def find(array, value)")) == "find"
    # the interface comes first, then the statement, then the code; private helpers are not entry points
    assert input_entry_point(build_input("```python\ndef _helper(x): ...\ndef locate(x): ...\n```",
                                         interface="def find(a)")) == "find"
    assert input_entry_point(build_input("```python\ndef _helper(x): ...\ndef locate(x): ...\n```")) == "locate"
    assert input_entry_point(build_input("Finish it.", code="def _h():\n    pass\n\ndef solve(n):\n    pass\n")) \
        == "solve"
    assert input_entry_point(build_input("Reverse a string.")) is None
    assert input_entry_point(build_input("class Solution:\n    def add_binary(self, a: str, b: str) -> str:")) \
        == "add_binary"


@pytest.mark.parametrize("name", ["exercism", "humaneval"])
def test_input_entry_point_of_real_tasks_is_the_function_the_tests_call(name: str) -> None:
    """HumanEval prompts may define helpers before the function to write (humaneval/10 defines is_palindrome,
    then asks for make_palindrome): the entry point read from the input must be the one the tests call."""
    wrong = []
    for task in tasks_of(name):
        inp = cet_input(task_view(task, 3))
        if signature_shown(task, inp) and input_entry_point(inp) != task.entry_point.split(".")[-1]:
            wrong.append(f"{task.id}: read {input_entry_point(inp)}, the tests call {task.entry_point}")
    assert not wrong, "; ".join(wrong)


@pytest.mark.parametrize("name", ["exercism", "leetcode", "humaneval"])
def test_a_request_written_as_the_evaluation_writes_it_reads_back_into_the_cets_input(name: str) -> None:
    from cet.config import load_config
    from cet.data.playbook import Playbook
    from cet.data.task_input import split_request
    from cet.model.context import render_prompt
    from cet.serving.engine import search_text, serving_input

    cfg = load_config()
    checked = 0
    for task in tasks_of(name):
        try:
            view = task_view(task, 1)
        except Exception:  # noqa: BLE001 - tasks whose tests cannot be split are not served this way
            continue
        message = render_prompt(view.raw_text(), language=task.language)
        parts = split_request(message)
        assert (parts.statement, parts.interface, parts.visible_tests) == (
            view.statement.strip(), view.interface.strip(), view.visible_tests.strip()), task.id
        # the served CET reads exactly what the evaluation's CET reads for the same hits
        assert serving_input(cfg, message, HITS, Playbook()) == cet_input(view, HITS, budget=cfg.cet.input_tokens)
        assert search_text(message) == view.statement.strip()
        checked += 1
    assert checked >= 20


def test_a_request_keeps_its_code_and_error_and_free_text_stays_the_statement() -> None:
    from cet.data.task_input import split_request
    from cet.model.context import render_prompt

    message = render_prompt("Fix `f`.\n\nInterface:\ndef f(x)", code="def f(x):\n    return y\n",
                            error="NameError: name 'y' is not defined")
    parts = split_request(message)
    assert parts.statement == "Fix `f`." and parts.interface == "def f(x)"
    assert parts.code == "def f(x):\n    return y" and parts.error == "NameError: name 'y' is not defined"
    free = "Parse a date like 2024-01-31.\nInterface: anything goes here"
    assert split_request(free) == split_request(free.strip()) and split_request(free).statement == free
