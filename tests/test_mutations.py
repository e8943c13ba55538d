"""Mutations: each mutant compiles, differs from the original in one place, carries its operator, and behaves
differently from the correct solution."""

from __future__ import annotations

import ast
import random
import sys
from collections import Counter
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from cet.data.mutations import OPERATORS, Mutant, mutants

BSEARCH = '''from math import floor


def bsearch(xs: list[int], target: int) -> int:
    """Index of target in the sorted list xs, or -1 (uses 2 pointers)."""
    lo, hi = 0, len(xs) - 1
    while lo <= hi:
        mid = floor((lo + hi) / 2)
        if xs[mid] == target:
            return mid
        if xs[mid] < target and xs[-1] >= target:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1
'''

SLICES = """def tail_sum(xs):
    total = 0
    for x in xs[1:]:
        if x > 0 or x == -5:
            total += x * 2
    return total % 7
"""

ADD = "def add(a, b):\n    return a + b\n"


class TooSlow(Exception):
    """A mutant ran past its step budget (an infinite loop, usually)."""


def run_limited(function: Callable[..., Any], *args: Any, steps: int = 20_000) -> Any:
    """The function's result, or the exception it raised, stopping it after `steps` traced line events."""
    count = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        count += 1
        if count > steps:
            raise TooSlow
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        return function(*args)
    except Exception as error:  # a crash is a behaviour too
        return type(error)
    finally:
        sys.settrace(previous)


def load(code: str, name: str) -> Callable[..., Any]:
    namespace: dict[str, Any] = {}
    exec(compile(code, "<mutant>", "exec"), namespace)
    return namespace[name]


def features(code: str) -> dict[str, Counter[str]]:
    """What each operator changes, counted over the whole tree."""
    nodes = list(ast.walk(ast.parse(code)))
    return {
        "compare": Counter(type(op).__name__ for n in nodes if isinstance(n, ast.Compare) for op in n.ops),
        "arith": Counter(type(n.op).__name__ for n in nodes if isinstance(n, ast.BinOp | ast.AugAssign)),
        "constant": Counter(repr(n.value) for n in nodes if isinstance(n, ast.Constant) and type(n.value) is int),
        "boolop": Counter(type(n.op).__name__ for n in nodes if isinstance(n, ast.BoolOp)),
        "negate": Counter("not" for n in nodes if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.Not)),
        "return": Counter("bare" for n in nodes if isinstance(n, ast.Return) and n.value is None),
        "index": Counter(ast.unparse(n) for n in nodes if isinstance(n, ast.Subscript)),
        "slice": Counter(ast.unparse(n) for n in nodes if isinstance(n, ast.Slice)),
        "drop": Counter("stmt" for n in nodes if isinstance(n, ast.stmt)),
    }


def all_mutants(source: str, seed: int = 0) -> list[Mutant]:
    return mutants(source, random.Random(seed), limit=1000)


@pytest.mark.parametrize("source", [BSEARCH, SLICES, ADD])
def test_mutants_compile_differ_and_are_distinct(source: str) -> None:
    original = ast.unparse(ast.parse(source))
    found = all_mutants(source)
    assert found
    assert len({m.code for m in found}) == len(found)
    for mutant in found:
        compile(mutant.code, "<mutant>", "exec")
        assert mutant.code != original
        assert mutant.operator in OPERATORS
        assert 1 <= mutant.line <= len(source.splitlines())
        assert mutant.description.startswith(f"line {mutant.line}: ")


@pytest.mark.parametrize("source", [BSEARCH, SLICES])
def test_each_mutant_changes_what_its_operator_claims(source: str) -> None:
    before = features(source)
    for mutant in all_mutants(source):
        after = features(mutant.code)
        changed = {name for name in before if before[name] != after[name]}
        assert mutant.operator in changed, mutant.description
        if mutant.operator == "drop":
            assert after["drop"]["stmt"] < before["drop"]["stmt"]
        if mutant.operator in ("negate", "return"):
            assert sum(after[mutant.operator].values()) == sum(before[mutant.operator].values()) + 1


def test_every_operator_has_sites_in_the_fixtures() -> None:
    operators = {m.operator for source in (BSEARCH, SLICES) for m in all_mutants(source)}
    assert operators == set(OPERATORS)


def test_same_seed_same_mutants_other_seed_other_order() -> None:
    first = mutants(BSEARCH, random.Random(11), limit=5)
    assert len(first) == 5
    assert mutants(BSEARCH, random.Random(11), limit=5) == first
    others = [mutants(BSEARCH, random.Random(seed), limit=5) for seed in range(5)]
    assert any(other != first for other in others)


def test_limit_is_respected() -> None:
    assert mutants(BSEARCH, random.Random(0), limit=0) == []
    assert len(mutants(BSEARCH, random.Random(0), limit=3)) == 3


def test_add_mutants_all_behave_differently() -> None:
    inputs = [(1, 2), (3, 5), (-4, 9), (0, 0)]
    found = all_mutants(ADD)
    assert {m.operator for m in found} == {"arith", "return"}
    for mutant in found:
        add = load(mutant.code, "add")
        assert any(run_limited(add, a, b) != a + b for a, b in inputs), mutant.description


def test_bsearch_mutants_mostly_behave_differently() -> None:
    correct = load(BSEARCH, "bsearch")
    cases = [([1, 3, 5, 7, 9, 11], t) for t in (0, 1, 3, 4, 7, 11, 12)] + [([], 1), ([2], 2), ([2, 4], 4)]
    expected = [correct(xs, t) for xs, t in cases]
    found = all_mutants(BSEARCH)
    killed = [m for m in found if [run_limited(load(m.code, "bsearch"), xs, t) for xs, t in cases] != expected]
    assert len(killed) >= 0.8 * len(found)
    loop = next(m for m in found if m.operator == "compare" and "`<=` changed to `<`" in m.description)
    assert loop in killed and loop.line == 7


def test_compare_description_and_line() -> None:
    source = "def below(x, n):\n    y = 0\n    return x < n\n"
    (mutant,) = [m for m in all_mutants(source) if m.operator == "compare"]
    assert mutant.line == 3
    assert mutant.description == "line 3: `<` changed to `<=`"
    assert load(mutant.code, "below")(2, 2) is True


def test_docstrings_imports_and_annotations_are_never_mutated() -> None:
    source = '''import os
from math import floor


def scale(x: int, items: list[int]) -> dict[str, int]:
    """Scale by 2 and 3; see RFC 1149."""
    from math import ceil
    y = floor(x * 2)
    return {"a": ceil(y), "n": len(items)}
'''
    docstring = ast.get_docstring(ast.parse(source).body[2])
    for mutant in all_mutants(source):
        tree = ast.parse(mutant.code)
        function = tree.body[2]
        assert isinstance(function, ast.FunctionDef)
        assert ast.get_docstring(function) == docstring
        assert ast.unparse(tree.body[0]) == "import os" and ast.unparse(tree.body[1]) == "from math import floor"
        assert ast.unparse(function.body[1]) == "from math import ceil"
        assert "def scale(x: int, items: list[int]) -> dict[str, int]:" in mutant.code


def test_drop_stays_inside_functions_and_keeps_bare_returns() -> None:
    source = "LIMIT = 3\nSTEP = 1\n\n\ndef f():\n    if LIMIT:\n        return\n    x = 1\n    return x\n"
    found = all_mutants(source)
    dropped = [m for m in found if m.operator == "drop"]
    assert sorted(m.line for m in dropped) == [6, 8]
    assert not [m for m in found if m.operator == "return" and m.line == 7]


@pytest.mark.parametrize("source", ["def broken(:\n    pass\n", "x = (", "", "\0"])
def test_unparseable_or_empty_source_gives_no_mutants(source: str) -> None:
    assert mutants(source, random.Random(0)) == []
