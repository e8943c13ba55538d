"""Partial code: each kind removes what it claims, keeps the user's formatting, and is None where it does not apply."""

from __future__ import annotations

import ast
import random

import pytest

from cet.data.partial_code import PARTIAL_KINDS, make_partial, partial_variants

HUMANEVAL = '''from typing import List
import math


def has_close_elements(numbers: List[float],
                       threshold: float) -> bool:
    """ Check if in given list of numbers, are any two numbers closer to each other than
    given threshold.
    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)
    False
    """
    for idx, elem in enumerate(numbers):
        for idx2, elem2 in enumerate(numbers):
            if idx != idx2:
                distance = abs(elem - elem2)

                if distance < threshold:
                    return True

    return False


def helper(x): return math.floor(x)
'''

NO_IMPORTS = "def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s\n"


def partial(kind: str, source: str = HUMANEVAL, seed: int = 0, entry_point: str | None = None):  # -> PartialCode
    result = make_partial(source, kind, random.Random(seed), entry_point)
    assert result is not None and result.kind == kind
    return result


def test_no_imports_drops_only_the_import_lines() -> None:
    result = partial("no_imports")
    assert result.removed == ["from typing import List", "import math"]
    assert not [line for line in result.code.splitlines() if line.startswith(("import ", "from "))]
    assert result.code == HUMANEVAL.split("\n\n\n", 1)[1]
    assert make_partial(NO_IMPORTS, "no_imports", random.Random(0)) is None


def test_no_imports_keeps_a_line_shared_with_other_code() -> None:
    assert make_partial("import os; x = 1\n", "no_imports", random.Random(0)) is None


def test_no_signature_removes_the_def_and_dedents_the_body() -> None:
    result = partial("no_signature")
    assert "def has_close_elements(" not in result.code
    assert result.removed == [
        "def has_close_elements(numbers: List[float],\n                       threshold: float) -> bool:"
    ]
    lines = result.code.splitlines()
    assert "for idx, elem in enumerate(numbers):" in lines
    assert "    for idx2, elem2 in enumerate(numbers):" in lines
    assert ">>> has_close_elements([1.0, 2.0, 3.0], 0.5)" in lines
    assert "return False" in lines
    assert (
        "\n\n                if distance" not in result.code and "\n\n            if distance" in result.code
    )  # blank kept
    assert result.code.startswith("from typing import List\nimport math\n")
    assert result.code.endswith("def helper(x): return math.floor(x)\n")


def test_no_signature_of_a_one_line_function_keeps_its_body() -> None:
    result = partial("no_signature", entry_point="helper")
    assert "def helper(" not in result.code
    assert result.removed == ["def helper(x):"]
    assert result.code.endswith("\n\nreturn math.floor(x)\n")
    assert "def has_close_elements(numbers" in result.code


def test_no_signature_takes_the_decorators_too() -> None:
    source = "import functools\n\n\n@functools.cache\ndef fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
    result = partial("no_signature", source)
    assert result.removed == ["@functools.cache\ndef fib(n):"]
    assert result.code == "import functools\n\n\nreturn n if n < 2 else fib(n - 1) + fib(n - 2)\n"


def test_stub_body_keeps_signature_and_docstring() -> None:
    result = partial("stub_body")
    head = HUMANEVAL.split("    for idx,", 1)[0]
    assert result.code.startswith(head)  # the user's formatting, multi-line signature included
    assert "    # TODO: implement\n    ...\n" in result.code
    assert "return False" not in result.code and "enumerate" not in result.code
    assert result.removed[0].startswith("    for idx, elem in enumerate(numbers):")
    assert result.removed[0].endswith("    return False")
    function = ast.parse(result.code).body[2]
    assert isinstance(function, ast.FunctionDef) and ast.get_docstring(function)


def test_stub_body_of_a_one_line_function() -> None:
    result = partial("stub_body", entry_point="helper")
    assert result.code.endswith("def helper(x):\n    # TODO: implement\n    ...\n")
    assert result.removed == ["return math.floor(x)"]
    ast.parse(result.code)


def test_stub_body_is_none_for_a_docstring_only_function() -> None:
    source = 'def later():\n    """Not written yet."""\n'
    assert make_partial(source, "stub_body", random.Random(0)) is None


def test_truncated_is_a_prefix_with_30_to_70_percent_of_the_body() -> None:
    body = [
        line for line in HUMANEVAL.split('    """\n', 1)[1].split("\n\n\ndef helper")[0].splitlines() if line.strip()
    ]
    sizes = set()
    for seed in range(20):
        result = partial("truncated", seed=seed)
        assert HUMANEVAL.startswith(result.code)
        assert result.code + result.removed[0] + "\n" == HUMANEVAL
        assert "def has_close_elements(numbers: List[float]," in result.code and '    """\n' in result.code
        kept = [line for line in result.code.split('    """\n', 1)[1].splitlines() if line.strip()]
        assert 1 <= len(kept) < len(body)
        assert 0.25 * len(body) <= len(kept) <= 0.75 * len(body)
        sizes.add(len(kept))
    assert len(sizes) > 1
    assert partial("truncated", seed=3) == partial("truncated", seed=3)


def test_truncated_is_none_for_a_one_line_body() -> None:
    assert make_partial(HUMANEVAL, "truncated", random.Random(0), entry_point="helper") is None


@pytest.mark.parametrize("kind", ["no_signature", "stub_body", "truncated"])
def test_function_kinds_are_none_without_the_function(kind: str) -> None:
    assert make_partial("import os\nx = 1\n", kind, random.Random(0)) is None
    assert make_partial(HUMANEVAL, kind, random.Random(0), entry_point="missing") is None


@pytest.mark.parametrize("kind", PARTIAL_KINDS)
def test_unparseable_source_gives_none(kind: str) -> None:
    assert make_partial("import os\ndef broken(:\n", kind, random.Random(0)) is None


def test_unknown_kind_raises() -> None:
    with pytest.raises(ValueError, match="unknown partial-code kind 'half'.*no_imports"):
        make_partial(HUMANEVAL, "half", random.Random(0))


def test_partial_variants_lists_the_kinds_that_apply() -> None:
    assert [p.kind for p in partial_variants(HUMANEVAL, random.Random(0))] == list(PARTIAL_KINDS)
    assert [p.kind for p in partial_variants(NO_IMPORTS, random.Random(0))] == [
        "no_signature",
        "stub_body",
        "truncated",
    ]
    assert [p.kind for p in partial_variants("import os\nx = 1\n", random.Random(0))] == ["no_imports"]
    assert partial_variants(HUMANEVAL, random.Random(4)) == partial_variants(HUMANEVAL, random.Random(4))
    for variant in partial_variants(HUMANEVAL, random.Random(1), entry_point="has_close_elements"):
        assert variant.code != HUMANEVAL and variant.removed and all(variant.removed)
