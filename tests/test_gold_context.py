"""Gold contexts: what they hold for a requirement, a bug report and partial code, and that each reads back
unchanged through `parse_context`."""

from __future__ import annotations

from cet.data.gold_context import (
    MAX_CONSTRAINTS,
    MAX_EXAMPLES,
    completion_context,
    debugging_context,
    describe_removed,
    example_pitfalls,
    gold_context,
    trim_failure,
)
from cet.data.task_facts import TaskFacts
from cet.execution.tasks import CodingTask, TaskMetadata, iter_tasks
from cet.knowledge.records import Hit
from cet.model.context import EngineeredContext, parse_context
from task_data import real_tasks_file

STATEMENT = """# Instructions

Find the position of a value in a sorted list.

Assume the list is sorted. Raise an error if the value is missing.

## Interface

The tests import these functions from `binary_search.py`:

```python
def find(array, value): ...
```
"""

TESTS = '''import pytest

from binary_search import find


def test_one():
    assert find([6], 6) == 0


def test_empty():
    with pytest.raises(ValueError) as err:
        find([], 1)
    assert err.value.args[0] == "value not in array"


def test_negative():
    assert find([-3, 1], -3) == 0
'''

BUGGY = (
    "def find(array, value):\n    low, high = 0, len(array)\n    while low < high:\n        mid = (low + high) // 2\n"
)

FAILURE = """    def test_one():
>       assert find([6], 6) == 0
E       assert None == 0
E        +  where None = find([6], 6)

test_binary_search.py:7: AssertionError"""


def make_task(statement: str = STATEMENT, tests: str = TESTS) -> CodingTask:
    return CodingTask(id="exercism/binary-search", language="python", statement=statement, entry_point="find",
                      signature="def find(array, value)", module="binary_search", tests=tests, test_names=["test_one"],
                      metadata=TaskMetadata(source="x", split="train"))


def hit(chunk_id: str, title: str, text: str) -> Hit:
    return Hit(id=chunk_id, source="exercism", title=title, path="p", score=1.0, text=text, metadata={})


HITS = [
    hit("kb:weather#0", "Weather", "It rains in spring."),
    hit("kb:bisect#1", "Binary search", "Sorting is easy. A binary search halves the search range each step. Done."),
]


def roundtrip(context: EngineeredContext, hits: list[Hit] = HITS) -> None:
    parsed = parse_context(context.to_text(), [h.id for h in hits])
    assert parsed.valid, parsed.issues
    assert parsed.context == context


def test_gold_context_fields() -> None:
    context = gold_context(make_task(), HITS)
    assert context.goal == "Find the position of a value in a sorted list."
    assert context.interface == ["def find(array, value)", "module: binary_search.py"]
    assert context.examples == ["find([6], 6) == 0", "find([-3, 1], -3) == 0",
                                "find([], 1) raises ValueError('value not in array')"]
    assert context.constraints == ["Assume the list is sorted.", "Raise an error if the value is missing."]
    assert [k.chunk_id for k in context.knowledge] == ["kb:bisect#1"]
    assert context.knowledge[0].quote == "A binary search halves the search range each step."
    assert context.pitfalls == ["raise ValueError with the exact message", "handle empty input",
                                "handle negative numbers"]
    assert not (context.failure or context.suspects or context.checks)
    roundtrip(context)


def test_gold_context_uses_given_facts_and_limits() -> None:
    facts = TaskFacts(entry_point="find", signature="def find(a, v)", examples=[f"find([{i}], {i}) == 0" for i in
                                                                                 range(1, 9)],
                      errors=["find([], 1) raises ValueError", "find([], 2) raises ValueError",
                              "find([], 3) raises ValueError"],
                      constraints=[f"rule {i} must hold" for i in range(6)], relevant_chunk_ids=["kb:bisect#1",
                                                                                                   "kb:weather#0"])
    context = gold_context(make_task(), HITS, facts)
    assert context.interface[0] == "def find(a, v)"
    assert len(context.examples) == MAX_EXAMPLES and context.examples[-2:] == facts.errors[:2]
    assert len(context.constraints) == MAX_CONSTRAINTS
    assert [k.chunk_id for k in context.knowledge] == ["kb:bisect#1", "kb:weather#0"]
    assert context.pitfalls[0] == "raise ValueError for invalid input"
    roundtrip(context)


def test_example_pitfalls() -> None:
    assert example_pitfalls(["f('') == 0", "f(0) == 1"], []) == ["handle empty input", "handle zero"]
    assert example_pitfalls(["f(10) == 3", "f(x - 1) == 2"], []) == []


def test_gold_contexts_of_real_tasks_read_back() -> None:
    paths = [real_tasks_file(name) for name in ("humaneval", "exercism", "leetcode")]
    hits = [hit("kb:generic#0", "Strings", "Python strings are immutable. Use slicing to reverse them.")]
    checked = 0
    for path in paths:
        for index, task in enumerate(iter_tasks(path)):
            if index % 7:
                continue
            context = gold_context(task, hits)
            assert context.goal and context.interface and len(context.goal) <= 200
            assert len(context.examples) <= 5 and len(context.constraints) <= 4 and len(context.pitfalls) <= 3
            roundtrip(context, hits)
            checked += 1
    assert checked > 100


def test_real_exercism_gold_has_error_and_module() -> None:
    path = real_tasks_file("exercism")
    task = next(t for t in iter_tasks(path) if t.id == "exercism/binary-search")
    context = gold_context(task)
    assert "module: binary_search.py" in context.interface
    assert "find([1, 3, 4, 6, 8, 9, 11], 7) raises ValueError('value not in array')" in context.examples
    assert "raise ValueError with the exact message" in context.pitfalls


def test_debugging_context_names_the_mutated_line() -> None:
    context = debugging_context(make_task(), BUGGY, FAILURE, mutation_line=3,
                                mutation_description="line 3: `<` changed to `<=`", hits=HITS)
    assert context.goal == "Fix find so that its tests pass"
    assert context.interface == ["def find(array, value)"]
    assert context.suspects == ["line 3: `while low < high:`", "line 3: `<` changed to `<=`"]
    assert context.failure == FAILURE.strip()
    assert context.checks == ["re-run the failing example: find([6], 6)",
                              "compare the result with the expected value: find([6], 6) == 0",
                              "check boundary conditions near line 3"]
    assert len(context.knowledge) == 1 and context.knowledge[0].chunk_id == "kb:bisect#1"
    roundtrip(context)


def test_debugging_context_without_mutation_line_uses_the_traceback() -> None:
    failure = ('Traceback (most recent call last):\n  File "/w/test_binary_search.py", line 7, in test_one\n'
               '  File "/w/binary_search.py", line 4, in find\nZeroDivisionError: integer division by zero')
    context = debugging_context(make_task(), BUGGY, failure)
    assert context.suspects == ["line 4: `mid = (low + high) // 2`"]
    assert context.checks[-1] == "check boundary conditions near line 4"
    roundtrip(context, [])


def test_trim_failure_keeps_assertion_and_last_frame() -> None:
    noise = "\n".join(f"    noise line {i} " + "x" * 40 for i in range(40))
    failure = (f"{noise}\n>       assert find([6], 6) == 0\nE       assert None == 0\n{noise}\n"
               '  File "/w/binary_search.py", line 4, in find\n    mid = (low + high) // 2\nZeroDivisionError: boom')
    trimmed = trim_failure(failure)
    assert len(trimmed) <= 650
    assert ">       assert find([6], 6) == 0" in trimmed
    assert 'File "/w/binary_search.py", line 4, in find' in trimmed
    assert trimmed.endswith("ZeroDivisionError: boom") and "..." in trimmed
    assert trim_failure("# not a heading\nok") == "| # not a heading\nok"


def test_completion_context() -> None:
    removed = ["from typing import List", "import math", "    for x in array:\n        return x"]
    partial = "import math\n\ndef find(array: List[int], value):\n    pass\n"
    context = completion_context(make_task(), partial, removed, HITS)
    assert context.goal == "Complete find"
    assert context.interface == ["def find(array, value)", "from typing import List"]
    assert context.examples[0] == "find([6], 6) == 0"
    assert "find([], 1) raises ValueError('value not in array')" in context.examples
    assert context.constraints == ["Assume the list is sorted.", "Raise an error if the value is missing."]
    assert context.pitfalls == ["the code given is incomplete: the import `from typing import List`; the import "
                                "`import math`; 2 lines from `for x in array:`"]
    roundtrip(context)


def test_describe_removed() -> None:
    assert describe_removed(["@functools.cache\ndef fib(n):"]) == "the decorator `@functools.cache` of `fib`"
    assert describe_removed(["def helper(x):"]) == "the signature of `helper`"
    assert describe_removed(["return math.floor(x)"]) == "the line `return math.floor(x)`"
    assert describe_removed([]) == ""
