"""Baselines: naive RAG text, and the rule-based template, which reads exactly the CET's input (one `CETInput`) and
never the hidden tests."""

from __future__ import annotations

from cet.data.baselines import naive_rag_text, rule_based_context
from cet.data.gold_context import untraceable
from cet.data.task_facts import extract_facts
from cet.data.task_input import cet_input, task_view
from cet.execution.tasks import CodingTask, iter_tasks
from cet.knowledge.records import Hit
from cet.model.context import parse_context
from cet.model.prompts import CETInput, build_input
from task_data import real_tasks_file

STATEMENT = '''from typing import List


def count_odd(numbers: List[int]) -> int:
    """ Count the odd numbers in the list. The list is never empty.
    >>> count_odd([1, 2, 3])
    2
    """
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
    hit("kb:odd#0", "Odd numbers", "A number is odd when n % 2 == 1. Use a generator."),
    hit("kb:sum#3", "Summing", "sum() adds the items of an iterable."),
    hit("kb:other#1", "Other", "Unrelated."),
]


def roundtrip(inp: CETInput) -> None:
    context = rule_based_context(inp)
    parsed = parse_context(context.to_text(), inp.chunk_ids())
    assert parsed.valid, parsed.issues
    assert parsed.context == context


def real_task(name: str, task_id: str) -> CodingTask:
    return next(t for t in iter_tasks(real_tasks_file(name)) if t.id == task_id)


def test_naive_rag_text() -> None:
    text = naive_rag_text(HITS, k=2, max_chars=10)
    assert text == "[kb:odd#0] Odd numbers\nA number i\n\n[kb:sum#3] Summing\nsum() adds"
    assert naive_rag_text([]) == ""
    assert naive_rag_text(HITS).count("[kb:") == 3
    assert naive_rag_text(HITS, k=1) == "[kb:odd#0] Odd numbers\nA number is odd when n % 2 == 1. Use a generator."


def test_rule_based_context_from_a_statement() -> None:
    inp = build_input(STATEMENT, HITS, visible_tests="assert count_odd([5]) == 1")
    context = rule_based_context(inp)
    assert context.goal == "Count the odd numbers in the list."
    assert context.interface == ["def count_odd(numbers: List[int]) -> int"]
    assert context.examples == ["count_odd([5]) == 1", "count_odd([1, 2, 3]) == 2"]  # visible tests first
    assert context.constraints == ["The list is never empty."]
    assert [(k.chunk_id, k.quote) for k in context.knowledge] == [
        ("kb:odd#0", "A number is odd when n % 2 == 1."), ("kb:sum#3", "sum() adds the items of an iterable.")]
    assert not (context.pitfalls or context.failure or context.suspects or context.checks)
    assert untraceable(context, inp) == []
    roundtrip(inp)


def test_rule_based_context_reads_the_interface_of_the_input() -> None:
    inp = build_input("Count the odd numbers in the list.", interface="def count_odd(numbers: list[int]) -> int")
    context = rule_based_context(inp)
    assert context.interface == ["def count_odd(numbers: list[int]) -> int"]
    assert untraceable(context, inp) == []


def test_rule_based_context_never_shows_hidden_test_examples() -> None:
    """A real task's hidden-only examples (in its hidden tests, not in its statement or visible tests) never reach
    the template: it reads the CET's input, which holds the visible tests only."""
    for name, task_id in (("exercism", "exercism/acronym"), ("exercism", "exercism/binary-search"),
                          ("leetcode", "leetcode/add-binary"), ("humaneval", "humaneval/2")):
        view = task_view(real_task(name, task_id), 3)
        shown = "".join(view.raw_text().split())
        hidden_only = [e for e in extract_facts(view.hidden).examples if "".join(e.split()) not in shown]
        assert hidden_only, task_id
        text = "".join(rule_based_context(cet_input(view, HITS)).to_text().split())
        for example in hidden_only:
            assert "".join(example.split()) not in text, (task_id, example)
    view = task_view(real_task("exercism", "exercism/acronym"), 3)
    text = rule_based_context(cet_input(view, HITS)).to_text()
    assert "GIMP" in view.hidden.tests and "GIMP" not in text
    assert "abbreviate('Portable Network Graphics') == 'PNG'" in text  # a visible test is shown


def test_rule_based_context_for_an_error() -> None:
    inp = build_input(STATEMENT, HITS, code=CODE, error=ERROR)
    context = rule_based_context(inp)
    assert context.failure == ERROR
    assert context.suspects == ["line 4: `total += n % 2 / 0`"]
    assert context.checks == ["reproduce the failing call", "check the expression on the suspect line"]
    assert context.pitfalls == ["the current code fails with: ZeroDivisionError: division by zero"]
    assert context.interface == ["def count_odd(numbers: List[int]) -> int", "def count_odd(numbers)"]
    assert untraceable(context, inp) == []
    roundtrip(inp)


def test_rule_based_failure_is_the_last_15_lines() -> None:
    error = "\n".join(f"frame {i}" for i in range(40))
    inp = build_input("Do it.", error=error)
    assert inp.error == error  # short enough to reach the input whole
    context = rule_based_context(inp)
    assert context.failure.splitlines() == [f"frame {i}" for i in range(25, 40)]
    assert context.suspects == []  # no traceback line names a line of the code


def test_rule_based_context_without_code_names_lines_only() -> None:
    context = rule_based_context(build_input("Do it.", error=ERROR))
    assert context.suspects == ["line 4"]


def test_rule_based_context_of_a_degraded_statement() -> None:
    run_on = ('from typing import List def count_odd(numbers: List[int]) -> int: """ Count the odd numbers in the '
              'list. I think this came up in the last sprint. """')
    inp = build_input(run_on)
    context = rule_based_context(inp)
    assert context.goal == "Count the odd numbers in the list."
    assert context.interface == ["def count_odd(numbers: List[int]) -> int"]
    assert untraceable(context, inp) == []


def test_rule_based_context_of_real_tasks() -> None:
    view = task_view(real_task("exercism", "exercism/acronym"), 3)
    context = rule_based_context(cet_input(view))
    assert context.goal == "Convert a phrase to its acronym."
    assert context.interface == ["def abbreviate(phrase)"]
    assert context.examples == ["abbreviate('Portable Network Graphics') == 'PNG'",
                                "abbreviate('Ruby on Rails') == 'ROR'", "abbreviate('First In, First Out') == 'FIFO'"]
    view = task_view(real_task("leetcode", "leetcode/add-binary"), 3)
    context = rule_based_context(cet_input(view))
    assert context.interface == ["class Solution: def add_binary(self, a: str, b: str) -> str"]
    assert context.examples[-1] == 'Input: a = "11", b = "1" -> Output: "100"'
    assert context.constraints[0] == "`1 <= a.length, b.length <= 10^4`"


def test_the_template_reads_exactly_the_cets_input() -> None:
    """Every item of the template's context is traceable to the CET's input, for real tasks of the three sets,
    with and without a bug report."""
    error = ('Traceback (most recent call last):\n  File "/w/solution.py", line 1, in <module>\n'
             "ZeroDivisionError: division by zero")
    untraced = []
    checked = 0
    for name, step in (("humaneval", 3), ("exercism", 2), ("leetcode", 25)):
        for index, task in enumerate(iter_tasks(real_tasks_file(name))):
            if index % step:
                continue
            view = task_view(task, 3)
            for inp in (cet_input(view, HITS), cet_input(view, HITS, code=task.signature, error=error)):
                missing = untraceable(rule_based_context(inp), inp)
                if missing:
                    untraced.append(f"{task.id}: {missing}")
            checked += 1
    assert checked >= 100
    assert not untraced, "\n".join(untraced)


def test_the_template_quotes_chunks_of_every_kind_from_their_text() -> None:
    """Retrieved chunks are Markdown sections, code and Q&A text: the template's quote of each must be in the
    chunk's text as the CET reads it (the hit's text, whitespace flattened by the cut), as `untraceable` checks."""
    hits = [
        hit("kb:odd#0", "Odd numbers", "# Odd\n\nA number is odd when n % 2 == 1. Use a generator."),
        hit("kb:code#1", "count.py", "def count_odd(numbers):\n    return sum(n % 2 for n in numbers)\n"),
    ]
    inp = build_input(STATEMENT, hits)
    context = rule_based_context(inp)
    assert [k.chunk_id for k in context.knowledge] == ["kb:odd#0", "kb:code#1"]
    assert untraceable(context, inp) == []
