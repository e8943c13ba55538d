"""Gold contexts: what they hold for a requirement, a bug report and partial code, built from the CET's input alone
(a `CETInput`), and that each reads back unchanged through `parse_context`."""

from __future__ import annotations

from cet.data.gold_context import (
    MAX_CONSTRAINTS,
    MAX_EXAMPLES,
    completion_context,
    debugging_context,
    example_pitfalls,
    gold_context,
    input_facts,
    merge_examples,
    rank_by_importance,
    requirement_context,
    section_choices,
    selective_context,
    trim_failure,
    untraceable,
)
from cet.data.task_input import cet_input, hidden_strings, task_view
from cet.execution.tasks import iter_tasks
from cet.knowledge.records import Hit
from cet.model.context import NOTHING_TO_ADD, EngineeredContext, parse_context
from cet.model.prompts import CETInput, build_input
from task_data import real_tasks_file

STATEMENT = """# Instructions

Find the position of a value in a sorted list.

Assume the list is sorted. Raise an error if the value is missing.

## Interface

The tests import these functions from `binary_search.py`:

```python
def find(array, value): ...
```

Examples from the tests:

- `find([1, 3, 5], 5) == 2`

Errors:

- `find([], 1)` raises `ValueError('value not in array')`
"""

INTERFACE = "def find(array, value)"
VISIBLE = "assert find([6], 6) == 0\nassert find([-3, 1], -3) == 0"

BUGGY = (
    "def find(array, value):\n    low, high = 0, len(array)\n    while low < high:\n        mid = (low + high) // 2\n"
)

FAILURE = """    def test_one():
>       assert find([6], 6) == 0
E       assert None == 0
E        +  where None = find([6], 6)

test_binary_search.py:7: AssertionError"""


def hit(chunk_id: str, title: str, text: str) -> Hit:
    return Hit(id=chunk_id, source="exercism", title=title, path="p", score=1.0, text=text, metadata={})


HITS = [
    hit("kb:weather#0", "Weather", "It rains in spring."),
    hit("kb:bisect#1", "Binary search", "Sorting is easy. A binary search halves the sorted list each step. Done."),
]


def make_input(code: str | None = None, error: str | None = None, hits: list[Hit] = HITS,
               statement: str = STATEMENT) -> CETInput:
    return build_input(statement, hits, interface=INTERFACE, visible_tests=VISIBLE, code=code, error=error)


def roundtrip(context: EngineeredContext, inp: CETInput) -> None:
    parsed = parse_context(context.to_text(), inp.chunk_ids())
    assert parsed.valid, parsed.issues
    assert parsed.context == context


def test_the_hand_written_input_is_not_cut() -> None:
    inp = make_input()
    assert inp.cut == {}
    assert inp.task == STATEMENT.strip() and inp.interface == INTERFACE and inp.visible_tests == VISIBLE


def test_gold_context_fields() -> None:
    inp = make_input()
    context = gold_context(inp)
    assert context.goal == "Find the position of a value in a sorted list."
    assert context.interface == ["def find(array, value)", "module: binary_search.py"]
    # the visible tests first, then the statement's own examples, then its error
    assert context.examples == ["find([6], 6) == 0", "find([-3, 1], -3) == 0", "find([1, 3, 5], 5) == 2",
                                "find([], 1) raises ValueError('value not in array')"]
    assert context.constraints == ["Assume the list is sorted.", "Raise an error if the value is missing."]
    # the chunk sharing a salient word of the input ("sorted", "list"), quoted by its most relevant sentence
    assert [(k.chunk_id, k.quote) for k in context.knowledge] == [
        ("kb:bisect#1", "A binary search halves the sorted list each step.")]
    assert context.pitfalls == ["raise ValueError with the exact message", "handle empty input",
                                "handle negative numbers"]
    assert not (context.failure or context.suspects or context.checks)
    assert untraceable(context, inp) == []
    roundtrip(context, inp)


def test_gold_context_never_reads_outside_its_input() -> None:
    """What is not in the input is not in the target: no interface, module or example appears from nowhere."""
    bare = build_input("Find the position of a value in a sorted list.", [])
    context = gold_context(bare)
    assert context.goal == "Find the position of a value in a sorted list."
    assert context.interface == [] and context.examples == [] and context.knowledge == []
    assert untraceable(context, bare) == []


def test_important_strings_order_examples_and_constraints_but_add_nothing() -> None:
    statement = STATEMENT.replace("Assume the list is sorted.", "Assume the list is sorted. The list may hold 10 "
                                  "values at most.")
    inp = make_input(statement=statement)
    plain = gold_context(inp)
    ranked = gold_context(inp, important=["-3", "10"])
    assert ranked.examples[0] == "find([-3, 1], -3) == 0"
    assert ranked.constraints[0] == "The list may hold 10 values at most."
    assert sorted(ranked.examples) == sorted(plain.examples)
    assert sorted(ranked.constraints) == sorted(plain.constraints)
    # a string no input fact holds changes nothing
    assert gold_context(inp, important=["zzz-not-there"]) == plain


def test_selective_context_adds_only_what_the_task_as_given_does_not_show() -> None:
    inp = make_input(statement=STATEMENT.replace("find([1, 3, 5], 5)", "find([1, 3, 15], 15)"))
    # the hidden tests use the statement's own example (15 -> 2) and its error, which the visible tests do not
    # show; one-character values ("5") are too common to tell anything
    chosen = selective_context(inp, important=["15", "value not in array", "6", "5"])
    assert chosen.examples == ["find([1, 3, 15], 15) == 2", "find([], 1) raises ValueError('value not in array')"]
    assert chosen.pitfalls == ["raise ValueError with the exact message", "handle empty input"]
    assert not (chosen.goal or chosen.interface or chosen.knowledge)  # the generator reads those anyway
    assert untraceable(chosen, inp) == []
    roundtrip(chosen, inp)
    # the hidden tests use only what the visible tests already show (6, -3), or a bare number a constraint
    # happens to hold: nothing to add, and the target says so
    for important in (["6", "-3"], [], ["zzz-not-there"]):
        nothing = selective_context(inp, important=important)
        assert nothing.is_empty() and nothing.to_reply() == NOTHING_TO_ADD, important
        assert parse_context(nothing.to_reply()).nothing_to_add
    sized = make_input(statement=STATEMENT.replace("Assume the list is sorted.", "The list holds 10 values."))
    assert selective_context(sized, important=["10"]).constraints == []
    assert requirement_context(inp, ["15"], "full") == gold_context(inp, ["15"])
    assert requirement_context(inp, ["15"], "selective") == selective_context(inp, ["15"])


def test_rank_by_importance_is_stable() -> None:
    items = ["f(1) == 1", "f(2) == 4", "f(3) == 9", "f(2, 3) == 6"]
    assert rank_by_importance(items, []) == items
    assert rank_by_importance(items, ["3"]) == ["f(3) == 9", "f(2, 3) == 6", "f(1) == 1", "f(2) == 4"]
    assert rank_by_importance(items, ["2", "3"]) == ["f(2, 3) == 6", "f(2) == 4", "f(3) == 9", "f(1) == 1"]


def test_merge_examples_keeps_room_for_errors() -> None:
    examples = [f"f({i}) == {i}" for i in range(8)]
    errors = ["f(-1) raises ValueError", "f(-2) raises ValueError", "f(-3) raises ValueError"]
    merged = merge_examples(examples, errors)
    assert len(merged) == MAX_EXAMPLES and merged[-2:] == errors[:2] and merged[0] == "f(0) == 0"
    assert merge_examples([], errors) == errors
    assert merge_examples(examples[:2], []) == examples[:2]


def test_limits_on_a_long_input() -> None:
    """Many visible tests, statement examples and constraints: the gold context keeps to its limits."""
    constraints = " ".join(f"The value {i} must be positive." for i in range(8))
    statement = f"# Instructions\n\nFind the position of a value.\n\n{constraints}\n"
    visible = "\n".join(f"assert find([{i}], {i}) == 0" for i in range(1, 9))
    inp = build_input(statement, HITS, interface=INTERFACE, visible_tests=visible + "\nwith pytest.raises(ValueError): "
                      "find([], 1)")
    context = gold_context(inp)
    assert len(context.examples) <= MAX_EXAMPLES and len(context.constraints) == MAX_CONSTRAINTS
    assert untraceable(context, inp) == []
    roundtrip(context, inp)


def test_section_choices_of_the_hand_written_input() -> None:
    choices = section_choices(make_input())
    assert choices["interface"] == ["def find(array, value)", "module: binary_search.py"]
    assert choices["examples"] == ["find([6], 6) == 0", "find([-3, 1], -3) == 0", "find([1, 3, 5], 5) == 2",
                                   "find([], 1) raises ValueError('value not in array')"]


def test_input_facts_come_from_the_input() -> None:
    facts = input_facts(make_input())
    assert facts.entry_point == "find" and facts.signature == "def find(array, value)"
    assert facts.parameters == ["array", "value"]
    assert facts.errors == ["find([], 1) raises ValueError('value not in array')"]
    assert facts.relevant_chunk_ids == ["kb:bisect#1"]


def test_example_pitfalls() -> None:
    assert example_pitfalls(["f('') == 0", "f(0) == 1"], []) == ["handle empty input", "handle zero"]
    assert example_pitfalls(["f(10) == 3", "f(x - 1) == 2"], []) == []
    assert example_pitfalls(["f(-2) == 4"], ["f('x') raises ValueError"]) == [
        "raise ValueError for invalid input", "handle negative numbers"]
    assert example_pitfalls([], ["f([]) raises ValueError('empty')"]) == [
        "raise ValueError with the exact message", "handle empty input"]


def test_gold_contexts_of_real_tasks_read_back() -> None:
    hits = [hit("kb:generic#0", "Strings", "Python strings are immutable. Use slicing to reverse them.")]
    checked = 0
    for name in ("humaneval", "exercism", "leetcode"):
        for index, task in enumerate(iter_tasks(real_tasks_file(name))):
            if index % 7:
                continue
            view = task_view(task, 3)
            inp = cet_input(view, hits)
            context = gold_context(inp, hidden_strings(view))
            assert context.goal and len(context.goal) <= 200, task.id
            assert len(context.examples) <= MAX_EXAMPLES and len(context.constraints) <= MAX_CONSTRAINTS
            assert len(context.pitfalls) <= 3 and len(context.knowledge) <= 2
            roundtrip(context, inp)
            checked += 1
    assert checked > 100


def test_real_exercism_gold_has_error_and_module() -> None:
    task = next(t for t in iter_tasks(real_tasks_file("exercism")) if t.id == "exercism/binary-search")
    view = task_view(task, 3)
    context = gold_context(cet_input(view))
    assert "def find(array, value)" in context.interface
    assert "module: binary_search.py" in context.interface
    assert "find([1, 3, 4, 6, 8, 9, 11], 7) raises ValueError('value not in array')" in context.examples
    assert "raise ValueError with the exact message" in context.pitfalls


def test_debugging_context_names_the_mutated_line() -> None:
    inp = make_input(code=BUGGY, error=FAILURE)
    context = debugging_context(inp, mutation_line=3)
    assert context.goal == "Fix find so that its tests pass"
    assert context.interface == ["def find(array, value)"]
    assert context.suspects == ["line 3: `while low < high:`"]
    assert context.failure == FAILURE.strip()
    assert context.checks == ["re-run the failing example: find([6], 6)",
                              "compare the result with the expected value: find([6], 6) == 0",
                              "check boundary conditions near line 3"]
    assert [k.chunk_id for k in context.knowledge] == ["kb:bisect#1"]
    assert not (context.examples or context.constraints or context.pitfalls)
    assert untraceable(context, inp) == []
    roundtrip(context, inp)


def test_debugging_context_without_mutation_line_uses_the_traceback() -> None:
    failure = ('Traceback (most recent call last):\n  File "/w/test_binary_search.py", line 7, in test_one\n'
               '  File "/w/binary_search.py", line 4, in find\nZeroDivisionError: integer division by zero')
    inp = make_input(code=BUGGY, error=failure, hits=[])
    context = debugging_context(inp)
    assert context.suspects == ["line 4: `mid = (low + high) // 2`"]
    assert context.checks[0] == "re-run the failing test and read its assertion"
    assert context.checks[-1] == "check boundary conditions near line 4"
    assert untraceable(context, inp) == []
    roundtrip(context, inp)


def test_debugging_context_with_a_line_outside_the_code_names_no_suspect() -> None:
    inp = make_input(code=BUGGY, error="E   AssertionError", hits=[])
    context = debugging_context(inp, mutation_line=40)
    assert context.suspects == []
    assert context.checks[-1] == "check boundary conditions near line 40"


def test_trim_failure_keeps_assertion_and_last_frame() -> None:
    noise = "\n".join(f"    noise line {i} " + "x" * 40 for i in range(40))
    failure = (f"{noise}\n>       assert find([6], 6) == 0\nE       assert None == 0\n{noise}\n"
               '  File "/w/binary_search.py", line 4, in find\n    mid = (low + high) // 2\nZeroDivisionError: boom')
    trimmed = trim_failure(failure)
    assert len(trimmed) <= 650
    assert ">       assert find([6], 6) == 0" in trimmed
    assert 'File "/w/binary_search.py", line 4, in find' in trimmed
    assert "mid = (low + high) // 2" in trimmed
    assert trimmed.endswith("ZeroDivisionError: boom") and "..." in trimmed
    assert "noise line 20" not in trimmed
    assert trim_failure("# not a heading\nok") == "| # not a heading\nok"
    assert trim_failure("short\nfailure") == "short\nfailure"


def test_a_long_failure_reaches_the_input_trimmed() -> None:
    noise = "\n".join(f"    noise line {i} " + "x" * 40 for i in range(60))
    failure = f"{noise}\n>       assert find([6], 6) == 0\n{noise}\nZeroDivisionError: boom"
    inp = make_input(code=BUGGY, error=failure)
    assert inp.error is not None and "assert find([6], 6) == 0" in inp.error
    assert inp.error.endswith("ZeroDivisionError: boom") and "noise line 30" not in inp.error
    context = debugging_context(inp)
    assert "assert find([6], 6) == 0" in context.failure
    assert untraceable(context, inp) == []


def test_completion_context() -> None:
    partial = "import math\n\ndef find(array: List[int], value):\n    return bisect_left(array, value)\n"
    inp = make_input(code=partial)
    context = completion_context(inp)
    assert context.goal == "Complete find"
    assert context.interface == ["def find(array, value)"]
    assert context.examples[0] == "find([6], 6) == 0"
    assert "find([], 1) raises ValueError('value not in array')" in context.examples
    assert context.constraints == ["Assume the list is sorted.", "Raise an error if the value is missing."]
    assert context.pitfalls == ["`bisect_left` is used but not defined or imported"]
    assert untraceable(context, inp) == []
    roundtrip(context, inp)


def test_completion_context_of_a_stub() -> None:
    inp = make_input(code="def find(array, value):\n    pass\n")
    context = completion_context(inp)
    assert context.goal == "Complete find"
    assert context.pitfalls == ["the code given is incomplete"]
    assert untraceable(context, inp) == []
    roundtrip(context, inp)
