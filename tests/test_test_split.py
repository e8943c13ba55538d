"""Visible/hidden test splits on the real task sets (Exercism, HumanEval, LeetCode), run in the real sandbox,
and the facts the hidden tests reveal (`cet.evaluation.test_facts`) with their recall."""

from __future__ import annotations

import ast
import itertools
import sys
import textwrap
import types
from pathlib import Path

import pytest
from tests.sandbox_helpers import bwrap_or_skip, exec_config

from cet.errors import CetError
from cet.evaluation import test_facts
from cet.evaluation.test_facts import HiddenFacts, fact_found, hidden_facts, recall
from cet.execution.executor import Executor
from cet.execution.tasks import CodingTask, TaskMetadata, iter_tasks
from cet.execution.test_split import TestSplit, split_tests
from task_data import real_tasks_file

LEETCODE_SAMPLE_EVERY = 8  # 1,200-odd LeetCode tasks: every 8th is plenty for the shape checks


def real(name: str) -> dict[str, CodingTask]:
    return {t.id: t for t in iter_tasks(real_tasks_file(name))}


@pytest.fixture(scope="module")
def humaneval() -> dict[str, CodingTask]:
    return real("humaneval")


@pytest.fixture(scope="module")
def exercism() -> dict[str, CodingTask]:
    return real("exercism")


@pytest.fixture(scope="module")
def leetcode() -> dict[str, CodingTask]:
    return real("leetcode")


def make_task(tests: str, names: list[str], entry: str | None = "f", language: str = "python") -> CodingTask:
    return CodingTask(id="hand/1", language=language, statement="s", entry_point=entry, tests=textwrap.dedent(tests),
                      test_names=names, metadata=TaskMetadata(source="hand", split="train"))


def top_tests(tree: ast.Module) -> list[ast.FunctionDef]:
    """The top-level test functions of a module (what pytest collects)."""
    return [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test")]


def check_of(tree: ast.Module) -> ast.FunctionDef:
    return next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check")


def dumps(nodes: list[ast.stmt]) -> list[str]:
    return [ast.dump(n) for n in nodes]


def flat(statements: list[ast.stmt]) -> list[str]:
    """Statements with `with` blocks opened: on one line, what follows a `with` body parses into it."""
    out = []
    for s in statements:
        if isinstance(s, ast.With):
            out.append(ast.dump(ast.With(items=s.items, body=[])))
            out += flat(s.body)
        elif not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)):  # docstrings are not shown
            out.append(ast.dump(s))
    return out


def case_asserts(check: ast.FunctionDef) -> list[ast.Assert]:
    return [n for n in ast.walk(check) if isinstance(n, ast.Assert) and not isinstance(n.test, ast.Constant)]


def as_line(node: ast.Assert, entry: str) -> str:
    """How a visible HumanEval case should read: the assert without its message, `candidate` renamed."""
    return ast.unparse(ast.Assert(test=node.test, msg=None)).replace("candidate(", f"{entry}(")


# ------------------------------------------------------------------------------------------ real: shape


def assert_well_formed(task: CodingTask, split: TestSplit) -> None:
    """Checks common to every source: a parseable hidden file whose test functions are its test_names,
    counts that add up with one case always hidden, readable one-line visible cases, nothing else changed."""
    hidden = split.hidden
    tree = ast.parse(hidden.tests)
    compile(tree, hidden.test_filename, "exec")
    assert [n.name for n in top_tests(tree)] == hidden.test_names, task.id
    assert split.n_hidden >= 1 and split.n_visible == len(split.visible_cases) <= 3, task.id
    assert split.visible_text == "\n".join(split.visible_cases)
    for line in split.visible_cases:
        assert "\n" not in line and line.strip() == line and line, (task.id, line)
        ast.parse(line)  # one statement, or a `with` block on one line: still Python
    unchanged = {k: v for k, v in task.model_dump().items() if k not in ("tests", "test_names", "metadata")}
    assert {k: v for k, v in hidden.model_dump().items() if k not in ("tests", "test_names", "metadata")} == unchanged
    assert hidden.metadata.extra["test_split"] == {"n_visible": split.n_visible, "n_hidden": split.n_hidden}
    assert split_tests(task) == split, task.id  # deterministic
    assert task.tests != hidden.tests or split.n_visible == 0


def assert_functions_partitioned(task: CodingTask, split: TestSplit) -> None:
    """Per-function tasks: the first n visible, the rest hidden untouched, module-level code untouched."""
    original, hidden = ast.parse(task.tests), ast.parse(split.hidden.tests)
    functions = top_tests(original)
    n = split.n_visible
    assert n == min(3, len(functions) - 1) and split.n_hidden == len(functions) - n, task.id
    assert split.hidden.test_names == task.test_names[n:]
    assert not set(split.hidden.test_names) & set(task.test_names[:n])
    assert dumps(top_tests(hidden)) == dumps(functions[n:])
    others = [s for s in original.body if s not in functions]
    assert dumps([s for s in hidden.body if s not in top_tests(hidden)]) == dumps(others)
    for line, function in zip(split.visible_cases, functions[:n], strict=True):
        assert flat(ast.parse(line).body) == flat(function.body)  # the case's statements, on one line


@pytest.mark.parametrize("name", ["exercism", "leetcode"])
def test_real_per_function_tasks_are_partitioned(name: str) -> None:
    tasks = list(real(name).values())
    if name == "leetcode":
        tasks = tasks[::LEETCODE_SAMPLE_EVERY]
    assert len(tasks) >= 50
    for task in tasks:
        split = split_tests(task)
        assert_well_formed(task, split)
        assert_functions_partitioned(task, split)


def test_real_humaneval_checks_are_partitioned(humaneval: dict[str, CodingTask]) -> None:
    assert len(humaneval) == 164
    visible_counts = []
    for task in humaneval.values():
        split = split_tests(task)
        assert_well_formed(task, split)
        assert split.hidden.test_names == ["test_check"]
        original, hidden = ast.parse(task.tests), ast.parse(split.hidden.tests)
        before, after = check_of(original), check_of(hidden)
        # everything but check is untouched; inside check, only asserts left (the visible ones)
        assert dumps([s for s in hidden.body if s is not after]) == dumps([s for s in original.body if s is not before])
        assert dumps([s for s in after.body if not isinstance(s, ast.Assert)]) \
            == dumps([s for s in before.body if not isinstance(s, ast.Assert)]), task.id
        kept = case_asserts(after)
        assert len(kept) == split.n_hidden and len(case_asserts(before)) == split.n_visible + split.n_hidden
        # the visible lines plus the kept asserts are exactly the original asserts: no loss, no overlap
        entry = task.entry_point
        assert sorted(split.visible_cases + [as_line(a, entry) for a in kept]) \
            == sorted(as_line(a, entry) for a in case_asserts(before)), task.id
        assert all("candidate" not in line and f"{entry}(" in line for line in split.visible_cases)
        visible_counts.append(split.n_visible)
    assert visible_counts.count(3) >= 130  # most checks start with three plain asserts


def test_humaneval_0_visible_lines(humaneval: dict[str, CodingTask]) -> None:
    split = split_tests(humaneval["humaneval/0"])
    assert split.visible_cases == [
        "assert has_close_elements([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True",
        "assert has_close_elements([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05) == False",
        "assert has_close_elements([1.0, 2.0, 5.9, 4.0, 5.0], 0.95) == True",
    ]
    assert (split.n_visible, split.n_hidden) == (3, 4)
    assert "0.05) == False" not in split.hidden.tests and "0.8) == False" in split.hidden.tests
    assert "# noqa: F403" in split.hidden.tests  # comments kept: the hidden file is the original minus lines


def test_humaneval_checks_with_other_statements_keep_them(humaneval: dict[str, CodingTask]) -> None:
    # 151: `lst = ...` then `assert candidate(lst) == odd_sum`: that assert never shows; messages are dropped
    split = split_tests(humaneval["humaneval/151"])
    assert split.visible_cases[0] == "assert double_the_difference([]) == 0"
    assert "lst = list(range(-99, 100, 2))" in split.hidden.tests
    assert "assert candidate(lst) == odd_sum" in split.hidden.tests
    # 53: the asserts in the random loop stay, with the import they need
    split = split_tests(humaneval["humaneval/53"])
    assert split.visible_cases == ["assert add(0, 1) == 1", "assert add(1, 0) == 1", "assert add(2, 3) == 5"]
    assert "import random" in split.hidden.tests and "assert candidate(x, y) == x + y" in split.hidden.tests
    # 32: its only assert is inside a loop over random polynomials: nothing can be shown
    task = humaneval["humaneval/32"]
    split = split_tests(task)
    assert (split.visible_cases, split.n_visible, split.n_hidden) == ([], 0, 1)
    assert split.hidden.tests == task.tests
    # 34: a single assert: it stays hidden so the hidden task still has a verdict
    split = split_tests(humaneval["humaneval/34"])
    assert (split.n_visible, split.n_hidden) == (0, 1)


def test_exercism_error_case_is_one_readable_line(exercism: dict[str, CodingTask]) -> None:
    split = split_tests(exercism["exercism/binary-search"], visible=7)
    assert split.visible_cases[-1] == ("with pytest.raises(ValueError) as excinfo: find([1, 3, 4, 6, 8, 9, 11], 7); "
                                       "assert str(excinfo.value) == 'value not in array'")
    assert split_tests(exercism["exercism/isogram"]).visible_cases[0] == "assert is_isogram('') is True"


def test_single_case_task_shows_nothing(exercism: dict[str, CodingTask]) -> None:
    task = exercism["exercism/hello-world"]
    split = split_tests(task)
    assert (split.visible_cases, split.visible_text, split.n_visible, split.n_hidden) == ([], "", 0, 1)
    assert (split.hidden.tests, split.hidden.test_names) == (task.tests, task.test_names)


def test_leetcode_case_keeps_its_binding_line(leetcode: dict[str, CodingTask]) -> None:
    split = split_tests(leetcode["leetcode/add-binary"], visible=1)
    assert split.visible_cases == ["a, b, expected = ('11', '1', '100'); result = run_add_binary(Solution, a, b); "
                                   "assert_add_binary(result, expected)"]
    assert split.hidden.test_names[0] == "test_add_binary_2"
    assert "def run_add_binary" in split.hidden.tests and "def assert_add_binary" in split.hidden.tests


# -------------------------------------------------------------------------------------- hand-written rules


CHECK = '''
"""A check with everything that must not be shown."""

from solution import *  # noqa: F403
from solution import f

LIMIT = 10


def check(candidate):
    assert True, "not a case"
    assert candidate(1) == 2, "a message the learner does not need"
    import math
    data = [1, 2]
    assert candidate(data[0]) == 2
    x = 3; assert candidate(x) == 4
    assert candidate(math.floor(2.5)) == 3
    assert candidate(
        5,
    ) == 6
    for i in range(3):
        assert candidate(i) == i + 1
    assert candidate(LIMIT) == 11


def test_check():
    check(f)
'''


def run_in_process(task: CodingTask, solution: str) -> list[str]:
    """The test functions of `task` that pass against `solution`, run here (fast; plain functions only)."""
    module = types.ModuleType(task.module)
    sys.modules[task.module] = module
    try:
        exec(compile(solution, task.solution_filename, "exec"), module.__dict__)
        namespace: dict[str, object] = {}
        exec(compile(task.tests, task.test_filename, "exec"), namespace)
        passed = []
        for name in task.test_names:
            try:
                namespace[name]()  # type: ignore[operator]
            except AssertionError:
                continue
            passed.append(name)
        return passed
    finally:
        del sys.modules[task.module]


def test_check_rules_on_a_hand_written_check() -> None:
    task = make_task(CHECK, ["test_check"])
    split = split_tests(task, visible=5)
    assert split.visible_cases == ["assert f(1) == 2", "assert f(5) == 6", "assert f(LIMIT) == 11"]
    assert (split.n_visible, split.n_hidden) == (3, 4)  # `assert True` is no case; the loop's assert is one
    hidden = split.hidden.tests
    assert 'assert True, "not a case"' in hidden and "x = 3; assert candidate(x) == 4" in hidden
    assert "assert candidate(data[0]) == 2" in hidden and "assert candidate(math.floor(2.5)) == 3" in hidden
    assert "a message the learner" not in hidden and "5,\n" not in hidden and "LIMIT) == 11" not in hidden
    assert "LIMIT = 10" in hidden
    assert run_in_process(split.hidden, "def f(x):\n    return x + 1\n") == ["test_check"]
    assert run_in_process(split.hidden, "def f(x):\n    return x + 1 if x != 3 else 0\n") == []


def test_visible_zero_and_more_than_there_are() -> None:
    tests = "from solution import f\n\n\ndef test_a():\n    assert f(1) == 1\n\n\ndef test_b():\n    assert f(2) == 2\n"
    task = make_task(tests, ["test_a", "test_b"])
    assert split_tests(task, visible=0).hidden.tests == tests
    split = split_tests(task, visible=10)
    assert (split.visible_cases, split.hidden.test_names) == (["assert f(1) == 1"], ["test_b"])
    assert split.hidden.tests == "from solution import f\n\n\ndef test_b():\n    assert f(2) == 2\n"


def test_decorated_and_documented_top_tests() -> None:
    tests = '''
    import pytest
    from solution import f


    @pytest.mark.slow
    def test_a():
        """Docstrings are not shown."""
        assert f("") is None


    def test_b():
        assert f("x") == "x"
    '''
    split = split_tests(make_task(tests, ["test_a", "test_b"]), visible=1)
    assert split.visible_cases == ["assert f('') is None"]
    assert "mark.slow" not in split.hidden.tests and split.hidden.test_names == ["test_b"]


@pytest.mark.parametrize(("task", "message"), [
    (make_task("test('x', () => {});", ["x"], language="javascript"), "only Python tests can be split"),
    (make_task("def test_a(:\n    pass\n", ["test_a"]), "do not parse"),
    (make_task("def test_a():\n    pass\n", ["test_a", "test_b"]), "are not the task's test_names"),
])
def test_tasks_that_cannot_be_split_say_why(task: CodingTask, message: str) -> None:
    with pytest.raises(CetError, match=message):
        split_tests(task)


def test_negative_visible_is_refused() -> None:
    with pytest.raises(CetError, match=">= 0"):
        split_tests(make_task("def test_a():\n    pass\n", ["test_a"]), visible=-1)


# ------------------------------------------------------------------------------------------ real sandbox


ISOGRAM = "def is_isogram(string):\n    letters = [c.lower() for c in string if c.isalpha()]\n" \
          "    return len(letters) == len(set(letters))\n"
ADD_BINARY = "class Solution:\n    def add_binary(self, a: str, b: str) -> str:\n" \
             "        return bin(int(a, 2) + int(b, 2))[2:]\n"


def memoriser(split: TestSplit, entry: str, default: str) -> str:
    """A wrong solution that answers exactly the visible cases and `default` otherwise."""
    table = {}
    for line in split.visible_cases:
        compare = ast.parse(line).body[0].test  # type: ignore[attr-defined]
        table[ast.unparse(ast.Tuple(elts=compare.left.args, ctx=ast.Load()))] = ast.unparse(compare.comparators[0])
    cases = "".join(f"    if args == {key}:\n        return {value}\n" for key, value in table.items())
    return f"def {entry}(*args):\n{cases}    return {default}\n"


@pytest.fixture(scope="module")
def executor() -> Executor:
    bwrap_or_skip()
    return Executor(exec_config("bubblewrap", workers=2, wall_timeout_s=20, cpu_time_s=20))


def test_humaneval_references_pass_the_hidden_tests_in_the_sandbox(humaneval: dict[str, CodingTask],
                                                                   executor: Executor) -> None:
    ids = ["humaneval/0", "humaneval/32", "humaneval/53", "humaneval/129", "humaneval/151", "humaneval/160"]
    tasks = [split_tests(humaneval[i]).hidden for i in ids]
    results = list(executor.run_many((t, t.reference_solution) for t in tasks))
    assert [(r.task_id, r.passed, r.tests.total) for r in results] == [(i, True, 1) for i in ids], \
        [r.detail for r in results if not r.passed]


def test_wrong_solutions_fail_the_hidden_tests_in_the_sandbox(humaneval: dict[str, CodingTask],
                                                              executor: Executor) -> None:
    task = humaneval["humaneval/0"]
    split = split_tests(task)
    wrong = "from typing import List\n\n" + memoriser(split, "has_close_elements", "True")
    assert run_in_process(task.model_copy(update={"tests": "\n".join(
        ["from solution import *", "", "def test_visible():", *(f"    {line}" for line in split.visible_cases)]),
        "test_names": ["test_visible"]}), wrong) == ["test_visible"]  # it does pass what the learner saw
    wrong_result, right_result = executor.run_many([(split.hidden, wrong), (split.hidden, task.reference_solution)])
    assert not wrong_result.passed and wrong_result.exit_reason == "failed"
    assert right_result.passed


def test_per_function_hidden_tasks_in_the_sandbox(exercism: dict[str, CodingTask], leetcode: dict[str, CodingTask],
                                                  executor: Executor) -> None:
    isogram, add_binary = split_tests(exercism["exercism/isogram"]), split_tests(leetcode["leetcode/add-binary"])
    wrong_isogram = memoriser(isogram, "is_isogram", "True")
    results = list(executor.run_many([(isogram.hidden, ISOGRAM), (add_binary.hidden, ADD_BINARY),
                                      (isogram.hidden, wrong_isogram)]))
    good_isogram, good_binary, bad_isogram = results
    assert good_isogram.passed and good_isogram.tests.total == len(isogram.hidden.test_names) == isogram.n_hidden
    assert good_binary.passed and good_binary.tests.total == len(add_binary.hidden.test_names) == 8
    assert not bad_isogram.passed and 0 < bad_isogram.tests.passed < bad_isogram.tests.total
    assert {c.name for c in bad_isogram.tests.cases} == set(isogram.hidden.test_names)


# ----------------------------------------------------------------------------------------- hidden facts


EXERCISM_LIKE = '''
import pytest

from all_your_base import rebase, is_isogram


def test_empty():
    assert is_isogram("") is True


def test_words():
    assert is_isogram("six-year-old") == True
    assert rebase(2, [1, 0, 1], 10) == [5]


def test_negative_and_large():
    assert rebase(-2, [1], 10) == []
    assert rebase(10, [1], 2000000) == pytest.approx(0.0)


def test_raises_with_match():
    with pytest.raises(ValueError, match="input base must be >= 2"):
        rebase(1, [0], 10)


def test_raises_compared():
    with pytest.raises((ValueError, TypeError)) as excinfo:
        rebase(2, [2], 10)
    assert str(excinfo.value) == "all digits must satisfy 0 <= d < input base"
'''

LEETCODE_LIKE = '''
from solution import Solution, Counter


def run_two_sum(solution_class: type, nums, target):
    implementation = solution_class()
    return implementation.two_sum(nums, target)


def run_counter(solution_class: type, operations, inputs):
    counter = solution_class()
    results = []
    for op, args in zip(operations, inputs):
        if op == "inc":
            results.append(counter.inc(*args))
        else:
            results.append(counter.get_count())
    return results


def assert_two_sum(result, expected):
    assert result == expected
    return True


def test_two_sum_1():
    nums, target, expected = [2, 7, 11, 15], 9, [0, 1]
    result = run_two_sum(Solution, nums, target)
    assert_two_sum(result, expected)


def test_two_sum_2():
    nums, target, expected = [-3, 3], 0, []
    assert_two_sum(run_two_sum(Solution, nums, target), expected)


def test_direct():
    assert Solution().two_sum([1, 1], 2) == [0, 1]
    assert Solution.max_value(1_000_000_000) is None


def test_counter():
    assert run_counter(Counter, ["inc", "get"], [[1], []]) == [None, 1]
'''

CHECK_LIKE = '''
from solution import *  # noqa: F403
from solution import find_zero

import math


def check(candidate):
    import random
    rng = random.Random(42)
    coeffs = []
    for _ in range(3):
        coeffs.append(rng.randint(-10, 10))
    solution = candidate(coeffs)
    assert math.fabs(poly(coeffs, solution)) < 1e-4
    assert candidate([-6, 11, -6, 1]) == 1.0
    assert candidate([0, 1], strict=False) == 0


def test_check():
    check(find_zero)
'''


def test_facts_of_an_exercism_like_file() -> None:
    facts = hidden_facts(EXERCISM_LIKE, "rebase")
    assert facts.names == ["is_isogram", "rebase"]
    assert facts.arguments == ["''", "'six-year-old'", "-2", "1", "10", "2", "2000000", "[0]", "[1, 0, 1]", "[1]",
                               "[2]"]
    assert facts.edge_values == ["''", "-2", "0.0", "2000000", "True", "[]"]
    assert facts.errors == ["'all digits must satisfy 0 <= d < input base'", "'input base must be >= 2'",
                            "TypeError", "ValueError"]


def test_facts_of_a_leetcode_like_file() -> None:
    facts = hidden_facts(LEETCODE_LIKE, "Solution.two_sum")
    # classes imported; methods called on them, on what they return and on local instances
    assert facts.names == ["Counter", "Solution", "get_count", "inc", "max_value", "two_sum"]
    # bound parameters resolve through the test's literal assignment; helper arguments count
    assert facts.arguments == ["0", "1000000000", "2", "9", "['inc', 'get']", "[-3, 3]", "[1, 1]",
                               "[2, 7, 11, 15]", "[[1], []]"]
    # `expected` reaches assert_two_sum (a helper that does not call the solution): an expected value
    assert facts.edge_values == ["0", "1000000000", "None", "[]"]
    assert facts.errors == []


def test_facts_of_a_check_like_file() -> None:
    facts = hidden_facts(CHECK_LIKE, "find_zero")
    # `candidate` is find_zero (check is called with it); `poly` comes from the star import
    assert facts.names == ["find_zero", "poly"]
    # `coeffs = []` is appended to, so it is not resolved to []; keyword arguments count
    assert facts.arguments == ["False", "[-6, 11, -6, 1]", "[0, 1]"]
    assert facts.edge_values == ["0", "False"]


def test_facts_read_only_the_hidden_tests(exercism: dict[str, CodingTask]) -> None:
    task = exercism["exercism/isogram"]
    split = split_tests(task)
    facts = hidden_facts(split)
    assert "''" not in facts.arguments  # the empty string is only in the first (visible) case
    assert "''" in hidden_facts(task).arguments
    assert facts == hidden_facts(split.hidden.tests, task.entry_point) == hidden_facts(split.hidden)


def test_facts_of_real_tasks(exercism: dict[str, CodingTask], leetcode: dict[str, CodingTask],
                             humaneval: dict[str, CodingTask]) -> None:
    facts = hidden_facts(split_tests(exercism["exercism/binary-search"]))
    assert facts.names == ["find"]
    assert facts.errors == ["'value not in array'", "ValueError"]
    assert "[]" in facts.edge_values and "[]" in facts.arguments
    facts = hidden_facts(split_tests(leetcode["leetcode/add-binary"]))
    assert facts.names == ["Solution", "add_binary"] and "'1111'" in facts.arguments
    facts = hidden_facts(split_tests(humaneval["humaneval/32"]))
    assert facts.names == ["find_zero", "poly"]
    every = {t.id: hidden_facts(split_tests(t)) for t in itertools.islice(humaneval.values(), 40)}
    assert all(f.names and f.errors == [] for f in every.values())
    # without literal arguments: 25 calls `candidate(3 * 19)` (an expression, not a literal); 32 and 38 call
    # it only on random inputs built in a loop
    assert sorted(i for i, f in every.items() if not f.arguments) == ["humaneval/25", "humaneval/32", "humaneval/38"]


def test_unparseable_tests_give_a_clear_error() -> None:
    with pytest.raises(CetError, match="do not parse"):
        hidden_facts("def test_(:", "f")


def test_test_facts_does_not_use_the_template_extractor() -> None:
    tree = ast.parse(Path(test_facts.__file__).read_text(encoding="utf-8"))
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and m.startswith("cet.data") for m in modules)


# ------------------------------------------------------------------------------------------------ recall


def test_recall_per_family_and_overall() -> None:
    facts = HiddenFacts(names=["rebase", "is_isogram"], arguments=["'six-year-old'", "[1, 0, 1]", "10"],
                        edge_values=["''", "-2"], errors=[])
    text = """Call rebase(2, [1,0,1], 10).   Words such as six-year-old  are isograms; an empty
    string "" is one too."""
    scores = recall(text, facts)
    assert scores == {"names": 0.5, "arguments": 1.0, "edge_values": 0.5, "errors": None, "overall": 5 / 7}
    assert recall("", HiddenFacts([], [], [], [])) == {"names": None, "arguments": None, "edge_values": None,
                                                        "errors": None, "overall": None}


@pytest.mark.parametrize(("fact", "text", "found"), [
    ("rebase", "use rebase_all", False),  # a name counts only as a word
    ("rebase", "call `rebase`.", True),
    ("0", "between 10 and 20", False),  # a number is not found inside another
    ("0", "0.5 or more", False),
    ("0", "returns 0.", True),
    ("-2", "a base of -2 is refused", True),
    ("''", 'the empty string ""', True),  # either quote style
    ("'a'", "a word", False),  # a short string needs its quotes
    ("'a'", "the letter 'a'", True),
    ("'value not in array'", "raise ValueError: value   not in array", True),  # plain value, whitespace normalised
    ("[1, 0, 1]", "digits [1,0,1]", True),
    ("True", "returns True", True),
    ("True", "Trueish", False),
    ("ValueError", "raise a ValueError", True),
])
def test_fact_found(fact: str, text: str, found: bool) -> None:
    assert fact_found(fact, " ".join(text.split())) is found
