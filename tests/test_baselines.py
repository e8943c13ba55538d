"""Baselines: naive RAG text, and the rule-based template, which sees only what the CET sees (never the tests)."""

from __future__ import annotations

from cet.data.task_facts import extract_facts
from cet.evaluation.baselines import naive_rag_text, rule_based_context
from cet.execution.tasks import CodingTask, TaskMetadata, iter_tasks
from cet.knowledge.records import Hit
from cet.model.context import parse_context
from task_data import real_tasks_file

STATEMENT = '''from typing import List


def count_odd(numbers: List[int]) -> int:
    """ Count the odd numbers in the list. The list is never empty.
    >>> count_odd([1, 2, 3])
    2
    """
'''

TESTS = '''from solution import count_odd


def test_secret():
    assert count_odd([7, 9, 11, 13]) == 4
    assert count_odd([2]) == 0
'''

CODE = "def count_odd(numbers):\n    total = 0\n    for n in numbers:\n        total += n % 2 / 0\n    return total\n"

ERROR = """Traceback (most recent call last):
  File "/w/test_solution.py", line 5, in test_secret
    assert count_odd([7, 9, 11, 13]) == 4
  File "/w/solution.py", line 4, in count_odd
    total += n % 2 / 0
ZeroDivisionError: division by zero"""


def hit(chunk_id: str, title: str, text: str) -> Hit:
    return Hit(id=chunk_id, source="x", title=title, path="p", score=1.0, text=text, metadata={})


HITS = [
    hit("kb:odd#0", "Odd numbers", "# Odd\n\nA number is odd when n % 2 == 1. Use a generator."),
    hit("kb:sum#3", "Summing", "sum() adds the items of an iterable."),
    hit("kb:other#1", "Other", "Unrelated."),
]


def make_task() -> CodingTask:
    return CodingTask(id="x/count-odd", language="python", statement=STATEMENT, entry_point="count_odd",
                      signature="def count_odd(numbers: List[int]) -> int", tests=TESTS, test_names=["test_secret"],
                      metadata=TaskMetadata(source="x", split="train"))


def test_naive_rag_text() -> None:
    text = naive_rag_text(HITS, k=2, max_chars=10)
    assert text == "[kb:odd#0] Odd numbers\n# Odd\n\nA n\n\n[kb:sum#3] Summing\nsum() adds"
    assert naive_rag_text([]) == ""
    assert naive_rag_text(HITS).count("[kb:") == 3


def test_rule_based_context_from_a_statement() -> None:
    context = rule_based_context(STATEMENT, HITS, entry_point="count_odd")
    assert context.goal == "Count the odd numbers in the list."
    assert context.interface == ["def count_odd(numbers: List[int]) -> int"]
    assert context.examples == ["count_odd([1, 2, 3]) == 2"]
    assert context.constraints == ["The list is never empty."]
    assert [(k.chunk_id, k.quote) for k in context.knowledge] == [
        ("kb:odd#0", "A number is odd when n % 2 == 1."), ("kb:sum#3", "sum() adds the items of an iterable.")]
    assert not (context.pitfalls or context.failure or context.suspects or context.checks)
    parsed = parse_context(context.to_text(), [h.id for h in HITS])
    assert parsed.valid and parsed.context == context


def test_rule_based_context_never_shows_test_examples() -> None:
    task = make_task()
    test_examples = extract_facts(task).examples
    assert test_examples == ["count_odd([7, 9, 11, 13]) == 4", "count_odd([2]) == 0"]
    text = rule_based_context(task.statement, HITS, task.entry_point).to_text()
    for example in test_examples:
        assert example not in text
    assert "7, 9, 11, 13" not in text


def test_rule_based_context_for_an_error() -> None:
    context = rule_based_context(STATEMENT, HITS, entry_point="count_odd", code=CODE, error=ERROR)
    assert context.failure == ERROR
    assert context.suspects == ["line 4: `total += n % 2 / 0`"]
    assert context.checks == ["reproduce the failing call", "check the expression on the suspect line"]
    assert context.pitfalls == ["the current code fails with: ZeroDivisionError: division by zero"]
    assert "def count_odd(numbers)" in context.interface
    parsed = parse_context(context.to_text(), [h.id for h in HITS])
    assert parsed.valid and parsed.context == context


def test_rule_based_failure_is_the_last_15_lines() -> None:
    error = "\n".join(f"frame {i}" for i in range(40))
    context = rule_based_context("Do it.", error=error)
    assert context.failure.splitlines() == [f"frame {i}" for i in range(25, 40)]
    assert context.suspects == []


def test_rule_based_context_of_a_degraded_statement() -> None:
    run_on = ('from typing import List def count_odd(numbers: List[int]) -> int: """ Count the odd numbers in the '
              'list. I think this came up in the last sprint. """')
    context = rule_based_context(run_on, entry_point="count_odd")
    assert context.goal == "Count the odd numbers in the list."
    assert context.interface == ["def count_odd(numbers: List[int]) -> int"]


def test_rule_based_context_of_real_tasks() -> None:
    path = real_tasks_file("exercism")
    task = next(t for t in iter_tasks(path) if t.id == "exercism/acronym")
    context = rule_based_context(task.statement, entry_point=task.entry_point)
    assert context.goal == "Convert a phrase to its acronym."
    assert context.interface == ["def abbreviate(phrase)"]
    assert context.examples == ["abbreviate('Portable Network Graphics') == 'PNG'"]
    task = next(t for t in iter_tasks(real_tasks_file("leetcode")) if t.id == "leetcode/add-binary")
    context = rule_based_context(task.statement, entry_point=task.entry_point)
    assert context.interface == ["class Solution: def add_binary(self, a: str, b: str) -> str"]
    assert context.examples[0] == 'Input: a = "11", b = "1" -> Output: "100"'
    assert context.constraints[0] == "`1 <= a.length, b.length <= 10^4`"
