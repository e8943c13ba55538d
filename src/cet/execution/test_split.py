"""Visible and hidden tests: split one task's test file into cases a learner is shown and a hidden task.

`split_tests(task, visible=3)` is pure and deterministic (a function of the task alone) and works on the
syntax tree of the pytest file. Rules:

* Shapes. Python only: a JavaScript task, tests that do not parse, or a file whose top-level ``test*``
  functions are not exactly ``task.test_names`` raise a `CetError` (the caller decides to skip and count).
  Two shapes are split:

  - per function (Exercism, LeetCode): each top-level ``test*`` function is one case. The first
    ``visible`` functions in file order are visible, the rest stay in the hidden file.
  - one check (HumanEval): a single test function whose body is ``check(<entry>)`` for a module-level
    ``check(candidate)``. Every ``assert`` inside ``check`` (at any depth) whose test is not a constant
    (``assert True, "..."`` is not a case) is one case. Only a *top-level* assert of ``check`` that calls
    ``candidate``, references no name bound anywhere inside ``check`` (assignments, loop targets, local
    imports...) and shares its lines with no other statement may be shown; the first ``visible`` of those
    are. Everything else (loops, imports, assignments, the other asserts) stays in ``check``, and
    ``test_names`` stays ``["test_check"]``.

* At least one case always stays hidden, so the hidden task still gives a verdict: with ``n`` cases at
  most ``n - 1`` are shown (a single case: nothing visible, everything hidden).

* Visible lines. Each case is one line: the statements of the test body (docstrings left out) unparsed
  and joined with ``"; "``; a ``with`` block is written ``with <items>: <body>``; any other block falls back
  to its unparsed lines joined with ``"; "`` (readable, not always valid Python). A statement after a ``with``
  block (Exercism's ``assert str(excinfo.value) == ...``) follows it after ``"; "`` too: it reads in order,
  though Python would parse it into the block. For a check, ``candidate`` becomes the entry point's name
  and the assert's failure message is left out.

* Hidden file. The original text minus the lines of the visible cases (a removed function takes the blank
  lines before it with it), so comments, helpers, imports, fixtures and module-level code are kept
  byte for byte. Its ``test_names`` are the ``test*`` functions of the hidden file, parsed again. The
  hidden task keeps the id and everything else, and records ``metadata.extra["test_split"]`` (the counts).
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass

from cet.errors import CetError
from cet.execution.tasks import CodingTask


@dataclass(frozen=True)
class TestSplit:
    __test__ = False  # not a pytest class

    visible_cases: list[str]
    visible_text: str
    hidden: CodingTask
    n_visible: int
    n_hidden: int


def split_tests(task: CodingTask, visible: int = 3) -> TestSplit:
    """The first `visible` cases as readable lines, and a copy of `task` whose tests hold only the rest."""
    if visible < 0:
        raise CetError(f"{task.id}: the number of visible tests must be >= 0, not {visible}")
    if task.repository is not None:  # the repository's own tests, all of them hidden: they decide the task
        return TestSplit([], "", task, 0, len(task.test_names))
    tree = _parse(task)
    tests = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
             and n.name.startswith("test")]
    if [n.name for n in tests] != task.test_names:
        raise CetError(f"{task.id}: the top-level test functions {[n.name for n in tests]} are not the task's "
                       f"test_names {task.test_names}; cannot split")
    check = _check_function(tree, tests)
    if check is not None:
        lines, removed, n_cases = _split_check(*check, visible)
    else:
        lines, removed, n_cases = _split_functions(tests, visible)
    source = _without_lines(task.tests, removed)
    hidden_names = _test_names(task, source)
    extra = {**task.metadata.extra, "test_split": {"n_visible": len(lines), "n_hidden": n_cases - len(lines)}}
    hidden = task.model_copy(update={
        "tests": source, "test_names": hidden_names,
        "metadata": task.metadata.model_copy(update={"extra": extra}),
    })
    return TestSplit(visible_cases=lines, visible_text="\n".join(lines), hidden=hidden,
                     n_visible=len(lines), n_hidden=n_cases - len(lines))


# ------------------------------------------------------------------------------------------------ shapes


def _parse(task: CodingTask) -> ast.Module:
    if task.language != "python":
        raise CetError(f"{task.id}: only Python tests can be split (this task is {task.language})")
    try:
        return ast.parse(task.tests)
    except SyntaxError as e:
        raise CetError(f"{task.id}: the tests do not parse (line {e.lineno}: {e.msg}); cannot split") from None


def _check_function(tree: ast.Module, tests: list[ast.FunctionDef | ast.AsyncFunctionDef],
                    ) -> tuple[ast.FunctionDef, str] | None:
    """(the module-level `check(candidate)`, <name>) when the single test is `check(<name>)`; else None."""
    if len(tests) != 1 or len(tests[0].body) != 1:
        return None
    stmt = tests[0].body[0]
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and isinstance(stmt.value.func, ast.Name)
            and len(stmt.value.args) == 1 and isinstance(stmt.value.args[0], ast.Name) and not stmt.value.keywords):
        return None
    name = stmt.value.func.id
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name and len(node.args.args) == 1:
            return node, stmt.value.args[0].id
    return None


def _split_functions(tests: list[ast.FunctionDef | ast.AsyncFunctionDef], visible: int,
                     ) -> tuple[list[str], list[tuple[int, int]], int]:
    count = _visible_count(visible, len(tests), len(tests))
    shown = tests[:count]
    lines = [_case_line(node.body) for node in shown]
    removed = [(_first_line(node), node.end_lineno or node.lineno) for node in shown]
    return lines, removed, len(tests)


def _split_check(check: ast.FunctionDef, entry: str, visible: int) -> tuple[list[str], list[tuple[int, int]], int]:
    candidate = check.args.args[0].arg
    cases = [n for n in ast.walk(check) if isinstance(n, ast.Assert) and not isinstance(n.test, ast.Constant)]
    bound = _bound_names(check) - {candidate}
    shared = _shared_lines(check)
    eligible = [s for s in check.body if isinstance(s, ast.Assert) and not isinstance(s.test, ast.Constant)
                and _calls(s, candidate) and not (_loaded_names(s) & bound)
                and not any(line in shared for line in range(s.lineno, (s.end_lineno or s.lineno) + 1))]
    shown = eligible[:_visible_count(visible, len(eligible), len(cases))]
    lines = [ast.unparse(_renamed(ast.Assert(test=s.test, msg=None), candidate, entry)) for s in shown]
    removed = [(s.lineno, s.end_lineno or s.lineno) for s in shown]
    return lines, removed, len(cases)


def _visible_count(visible: int, available: int, cases: int) -> int:
    """How many to show: at most `visible`, at most those that may be shown, and one case always hidden."""
    return max(0, min(visible, available, cases - 1))


# --------------------------------------------------------------------------------------------- visible


def _case_line(body: list[ast.stmt]) -> str:
    statements = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                                          and isinstance(s.value.value, str))]
    return "; ".join(_one_line(s) for s in statements)


def _one_line(stmt: ast.stmt) -> str:
    if isinstance(stmt, ast.With | ast.AsyncWith):
        items = ", ".join(ast.unparse(item) for item in stmt.items)
        prefix = "async with" if isinstance(stmt, ast.AsyncWith) else "with"
        return f"{prefix} {items}: {'; '.join(_one_line(s) for s in stmt.body)}"
    return "; ".join(line.strip() for line in ast.unparse(stmt).splitlines() if line.strip())


class _Rename(ast.NodeTransformer):
    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.Name(id=self.new, ctx=node.ctx) if node.id == self.old else node


def _renamed(node: ast.AST, old: str, new: str) -> ast.AST:
    return _Rename(old, new).visit(copy.deepcopy(node))


# ------------------------------------------------------------------------------------------- name scans


def _bound_names(function: ast.FunctionDef) -> set[str]:
    """Every name bound inside `function`'s body (assignments, loop targets, imports, nested defs, as-names)."""
    names: set[str] = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node is not function:
            names.add(node.name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.arg) and node is not function.args.args[0]:
            names.add(node.arg)  # lambda / nested parameters
        elif isinstance(node, ast.Global | ast.Nonlocal):
            names |= set(node.names)
    return names


def _loaded_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _calls(node: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name for n in ast.walk(node))


def _shared_lines(function: ast.FunctionDef) -> set[int]:
    """Lines of `function`'s body on which more than one statement starts or ends (`a = 1; assert a`)."""
    seen: dict[int, int] = {}
    for stmt in function.body:
        for line in {stmt.lineno, stmt.end_lineno or stmt.lineno}:
            seen[line] = seen.get(line, 0) + 1
    return {line for line, count in seen.items() if count > 1}


# ------------------------------------------------------------------------------------------ hidden file


def _first_line(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    return min([node.lineno, *(d.lineno for d in node.decorator_list)])


def _without_lines(source: str, ranges: list[tuple[int, int]]) -> str:
    """`source` without the 1-based inclusive line ranges; a removed block at column 0 takes the blank
    lines just before it along (they separate top-level definitions, never sit inside a string)."""
    lines = source.splitlines(keepends=True)
    drop: set[int] = set()
    for start, end in ranges:
        drop.update(range(start - 1, end))
        if lines[start - 1][:1] not in (" ", "\t"):
            before = start - 2
            while before >= 0 and not lines[before].strip():
                drop.add(before)
                before -= 1
    return "".join(line for index, line in enumerate(lines) if index not in drop)


def _test_names(task: CodingTask, source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError as e:  # a bug here, not in the task: say so plainly
        raise CetError(f"{task.id}: the hidden tests do not parse (line {e.lineno}: {e.msg})") from None
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            and n.name.startswith("test")]
