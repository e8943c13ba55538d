"""Task facts: signatures, examples and errors read from the tests, constraint sentences, statement examples,
relevant chunks and traceback lines, on real tasks (when the tasks files exist) and hand-written ones."""

from __future__ import annotations

import pytest

from cet.data.task_facts import (
    constraint_sentences,
    examples_from_tests,
    extract_facts,
    find_signatures,
    first_descriptive_sentence,
    relevant_chunk_ids,
    signature_parameters,
    split_sentences,
    statement_examples,
    traceback_line_numbers,
)
from cet.execution.tasks import CodingTask, TaskMetadata, iter_tasks
from cet.knowledge.records import Hit
from task_data import real_tasks_file


def real_task(name: str, task_id: str) -> CodingTask:
    """A task from data/tasks/<name>.jsonl (skipped when the file, made by the project's setup, is missing)."""
    path = real_tasks_file(name)
    for task in iter_tasks(path):
        if task.id == task_id:
            return task
    pytest.skip(f"{task_id} not in {path}")


def make_task(statement: str, tests: str, entry_point: str = "f", signature: str | None = "def f(x)",
              task_id: str = "x/f", reference: str | None = None) -> CodingTask:
    return CodingTask(id=task_id, language="python", statement=statement, entry_point=entry_point,
                      signature=signature, tests=tests, test_names=["test_a"], reference_solution=reference,
                      metadata=TaskMetadata(source="x", split="train"))


def hit(chunk_id: str, title: str, text: str) -> Hit:
    return Hit(id=chunk_id, source="x", title=title, path="p", score=1.0, text=text, metadata={})


# -- real tasks ----------------------------------------------------------------------------------------------------


def test_humaneval_0_facts() -> None:
    facts = extract_facts(real_task("humaneval", "humaneval/0"))
    assert facts.entry_point == "has_close_elements"
    assert facts.signature == "def has_close_elements(numbers: List[float], threshold: float) -> bool"
    assert facts.parameters == ["numbers", "threshold"]
    assert facts.examples[0] == "has_close_elements([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True"
    assert len(facts.examples) == 4
    assert all(e.startswith("has_close_elements(") and "candidate" not in e for e in facts.examples)
    assert facts.errors == []


def test_exercism_raises_block_gives_error_with_message() -> None:
    facts = extract_facts(real_task("exercism", "exercism/binary-search"))
    assert facts.signature == "def find(array, value)"
    assert "find([6], 6) == 0" in facts.examples
    assert "find([1, 3, 4, 6, 8, 9, 11], 7) raises ValueError('value not in array')" in facts.errors
    assert any("ValueError" in c for c in facts.constraints)


def test_exercism_acronym_examples() -> None:
    facts = extract_facts(real_task("exercism", "exercism/acronym"), max_examples=2)
    assert facts.examples == ["abbreviate('Portable Network Graphics') == 'PNG'",
                              "abbreviate('Ruby on Rails') == 'ROR'"]


def test_leetcode_helpers_inlined_and_constraints_section_first() -> None:
    facts = extract_facts(real_task("leetcode", "leetcode/add-binary"))
    assert facts.signature == "class Solution: def add_binary(self, a: str, b: str) -> str"
    assert facts.parameters == ["a", "b"]
    assert facts.examples[:2] == ["add_binary('11', '1') == '100'", "add_binary('1010', '1011') == '10101'"]
    assert facts.constraints[0] == "`1 <= a.length, b.length <= 10^4`"


def test_real_tasks_examples_are_clean() -> None:
    path = real_tasks_file("exercism")
    tasks = list(iter_tasks(path))
    with_examples = 0
    for task in tasks:
        facts = extract_facts(task)
        with_examples += bool(facts.examples)
        assert len(facts.examples) <= 4 and all(len(e) <= 200 for e in facts.examples)
        assert all(len(c) <= 200 and "\n" not in c for c in facts.constraints) and len(facts.constraints) <= 6
    assert with_examples >= 0.9 * len(tasks)


# -- examples from tests -------------------------------------------------------------------------------------------

TESTS = '''
import pytest
from solution import f, g


def test_equal():
    assert f(1) == 2


def test_truthy():
    assert f(0)
    assert not f(-1)
    assert g('') is None
    assert f(0.5) == pytest.approx(1.5)


def test_skipped():
    assert True, "not an example"
    for x in range(3):
        assert f(x) == x + 1
    assert f('LONG') == 1


def test_raises_args():
    with pytest.raises(ValueError) as err:
        f(-5)
    assert err.type == ValueError
    assert err.value.args[0] == "x must be positive"


def test_raises_match():
    with pytest.raises(TypeError, match=r"not a number"):
        g("a")


def test_raises_plain():
    with pytest.raises(KeyError):
        g(None)
'''.replace("LONG", "a" * 250)


def test_examples_from_hand_written_tests() -> None:
    examples, errors = examples_from_tests(TESTS, "f", "solution", limit=10)
    assert examples == ["f(1) == 2", "f(0)", "not f(-1)", "g('') is None", "f(0.5) == pytest.approx(1.5)"]
    assert errors == ["f(-5) raises ValueError('x must be positive')", "g('a') raises TypeError('not a number')",
                      "g(None) raises KeyError"]


def test_max_examples_keeps_the_first() -> None:
    facts = extract_facts(make_task("Do f.", TESTS), max_examples=2)
    assert facts.examples == ["f(1) == 2", "f(0)"]
    assert len(facts.errors) == 2


def test_candidate_renamed_and_variables_substituted() -> None:
    tests = '''
def check(candidate):
    assert candidate([1, 2], 3) == [1, 3, 2]
    xs, n = [4], 0
    assert candidate(xs, n) == [4]


def test_check():
    check(intersperse)
'''
    examples, _ = examples_from_tests(tests, "intersperse")
    assert examples == ["intersperse([1, 2], 3) == [1, 3, 2]", "intersperse([4], 0) == [4]"]


def test_unparseable_tests_give_no_examples() -> None:
    assert examples_from_tests("def broken(:\n", "f") == ([], [])


# -- signatures ----------------------------------------------------------------------------------------------------


def test_signature_from_statement_when_task_has_none() -> None:
    statement = "Reverse it.\n\n```python\ndef reverse(text: str) -> str: ...\n```\n"
    task = make_task(statement, "def test_a():\n    assert reverse('ab') == 'ba'\n", entry_point="reverse",
                     signature=None)
    facts = extract_facts(task)
    assert facts.signature == "def reverse(text: str) -> str"
    assert facts.parameters == ["text"]
    assert facts.examples == ["reverse('ab') == 'ba'"]


def test_signature_from_reference() -> None:
    task = make_task("Add.", "", entry_point="add", signature=None, reference="def add(a, b=(1, 2), *rest, k=0):\n"
                     "    return a\n")
    facts = extract_facts(task)
    assert facts.signature == "def add(a, b=(1, 2), *rest, k=0)"
    assert facts.parameters == ["a", "b", "rest", "k"]


def test_find_signatures_groups_methods_and_ignores_imports() -> None:
    text = "from typing import List\n\nclass Solution:\n    def two_sum(self, nums: List[int], t: int) -> List[int]:\n"
    assert find_signatures(text) == ["class Solution: def two_sum(self, nums: List[int], t: int) -> List[int]"]
    assert signature_parameters(text, "Solution.two_sum") == ["nums", "t"]
    design = "class LRU:\n    def __init__(self, capacity: int):\n    def get(self, key: int) -> int:\n"
    assert find_signatures(design) == ["class LRU: def __init__(self, capacity: int); def get(self, key: int) -> int"]
    assert signature_parameters(design, "LRU") == ["capacity"]


# -- statement text ------------------------------------------------------------------------------------------------


def test_constraint_sentences() -> None:
    statement = (
        "# Instructions\n\nReturn the sum. The list may be empty.\nYou must not use sum().\n"
        "You must not use sum().\nIt is sunny.\n\n## Constraints\n\n- 1 <= n <= 10^5\n- values fit in an int\n"
        "\n## Interface\n\n- `f([]) == 0` must hold\n"
    )
    found = constraint_sentences(statement)
    assert found == ["1 <= n <= 10^5", "values fit in an int", "The list may be empty.", "You must not use sum()."]
    long_statement = " ".join(f"Item {i} must be positive and {'very ' * 60}long." for i in range(9))
    capped = constraint_sentences(long_statement)
    assert len(capped) == 6 and all(len(c) <= 200 for c in capped)


def test_split_sentences_of_a_docstring_skip_doctests() -> None:
    statement = 'def f(x):\n    """ Double x, e.g. twice. Return it.\n    >>> f(2)\n    4\n    """\n'
    assert split_sentences(statement, "f") == ["Double x, e.g. twice.", "Return it."]


def test_first_descriptive_sentence() -> None:
    assert first_descriptive_sentence("# Instructions\n\nConvert a phrase to its acronym.\n\nMore.") == (
        "Convert a phrase to its acronym.")
    run_on = 'from typing import List def f(xs: List[int]) -> int: """ Count the odd numbers. >>> f([1]) 1 """'
    assert first_descriptive_sentence(run_on, "f") == "Count the odd numbers."
    leetcode = "# 1. Two Sum\n\nDifficulty: Easy · Topics: Array\n\nGiven an array `nums`, return **indices**."
    assert first_descriptive_sentence(leetcode) == "Given an array `nums`, return indices."


def test_statement_examples() -> None:
    statement = (
        'def f(x):\n    """Double.\n    >>> f(2)\n    4\n    >>> f(-1) # negative\n    -2\n    """\n'
        "Input: nums = [2,7,11,15], target = 9\nOutput: [0,1]\n"
        "- `f(3) == 6`\n- `f('a')` raises `ValueError('bad')`\nf(5) => 10\n"
    )
    assert statement_examples(statement, "f") == [
        "f(2) == 4", "f(-1) == -2", "Input: nums = [2,7,11,15], target = 9 -> Output: [0,1]", "f(3) == 6",
        "f('a') raises ValueError('bad')", "f(5) == 10",
    ]


def test_statement_examples_of_real_humaneval() -> None:
    task = real_task("humaneval", "humaneval/0")
    assert statement_examples(task.statement, task.entry_point) == [
        "has_close_elements([1.0, 2.0, 3.0], 0.5) == False",
        "has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3) == True",
    ]


# -- knowledge and tracebacks --------------------------------------------------------------------------------------


def test_relevant_chunk_ids() -> None:
    task = make_task("# Instructions\n\nReverse a string.", "", entry_point="reverse_string",
                     task_id="exercism/reverse")
    hits = [hit("a-0", "Weather", "It rains."), hit("b-0", "Reverse String", "Slicing works."),
            hit("c-0", "Other", "To reverse a list, call reversed."), hit("d-0", "Strings", "reverse it"),
            hit("e-0", "String reverse", "more")]
    assert relevant_chunk_ids(task, hits) == ["b-0", "c-0", "d-0"]
    assert relevant_chunk_ids(task, hits[:1]) == ["a-0"]
    assert relevant_chunk_ids(task, []) == []
    assert extract_facts(task, hits).relevant_chunk_ids == ["b-0", "c-0", "d-0"]


def test_traceback_line_numbers_prefer_the_solution_innermost_first() -> None:
    trace = (
        'Traceback (most recent call last):\n  File "/tmp/w/test_solution.py", line 12, in test_a\n'
        '  File "/tmp/w/solution.py", line 3, in f\n  File "/tmp/w/solution.py", line 7, in g\nZeroDivisionError\n'
    )
    assert traceback_line_numbers(trace) == [7, 3]
    assert traceback_line_numbers("test_x.py:4: AssertionError") == [4]
    assert traceback_line_numbers("error on line 9") == [9]
    assert traceback_line_numbers("nothing") == []
