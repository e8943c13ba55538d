"""The function-level code-to-test map (static and traced) and the repository tasks built from it, on a small
repository written here: a default class every test reaches only through a library function, a conftest fixture,
a test helper, and a test method a subclass inherits."""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
from pathlib import Path

import pytest
from tests.sandbox_helpers import bwrap_or_skip, exec_config
from typer.testing import CliRunner

from cet.cli import app
from cet.errors import CetError
from cet.execution.executor import Executor
from cet.execution.importers.repository import RepositoryTaskOptions, make_repository_tasks
from cet.execution.repository import splice, stub, unpack
from cet.execution.tasks import RepositoryRef, iter_tasks
from cet.knowledge.function_map import compare, map_repository, read_python_files, static_map, traced_map

MINI = {
    "pkg/__init__.py": "from pkg.core import Parser, parse\n",
    "pkg/core.py": '''
        class Parser:
            def __init__(self, sep=","):
                self.sep = sep

            def split(self, text):
                """The fields of `text`, stripped."""
                parts = text.split(self.sep)
                return [p.strip() for p in parts]


        def parse(text, sep=","):
            """Fields of `text` by the default parser."""
            return Parser(sep).split(text)


        def total(text):
            """The sum of the integers in `text`."""
            values = parse(text)
            return sum(int(v) for v in values)


        def describe(text):
            """A description of `text`."""
            size = len(text)
            return f"{size} characters"


        def broken(x):
            """Twice x."""
            y = x * 2
            return y


        def unused(x):
            """Never tested."""
            y = x + 1
            return y
        ''',
    "tests/conftest.py": '''
        import pytest
        from pkg.core import Parser


        @pytest.fixture
        def semicolon():
            return Parser(";")
        ''',
    "tests/test_core.py": '''
        from pkg import parse
        from pkg.core import broken, describe, total


        def helper(text):
            return total(text)


        def test_parse():
            assert parse("a, b") == ["a", "b"]


        def test_fixture(semicolon):
            assert semicolon.split("a;b") == ["a", "b"]


        def test_helper():
            assert helper("1,2") == 3


        def test_describe_runs():
            describe("abc")


        def test_broken():
            assert broken(2) == 5


        class Base:
            def test_total(self):
                assert total(self.text) == self.expected


        class TestSmall(Base):
            text, expected = "1,2", 3
        ''',
}
SPLIT, INIT, PARSE, TOTAL = "pkg.core:Parser.split", "pkg.core:Parser.__init__", "pkg.core:parse", "pkg.core:total"
TRUTH = {  # what each test runs, by reading it (and what tracing must find)
    "tests/test_core.py::test_parse": {PARSE, INIT, SPLIT},
    "tests/test_core.py::test_fixture": {INIT, SPLIT},
    "tests/test_core.py::test_helper": {TOTAL, PARSE, INIT, SPLIT},
    "tests/test_core.py::test_describe_runs": {"pkg.core:describe"},
    "tests/test_core.py::test_broken": {"pkg.core:broken"},
    "tests/test_core.py::TestSmall::test_total": {TOTAL, PARSE, INIT, SPLIT},
}


def write_repo(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def sdist(tmp_path: Path, files: dict[str, str] = MINI) -> Path:
    """A source distribution of the mini repository, as the package index would serve it."""
    archive = tmp_path / "mini-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for relative, text in {**files, "PKG-INFO": "Metadata-Version: 2.1\nName: mini\nVersion: 1.0\n"
                               "License-Expression: MIT\n\n"}.items():
            data = textwrap.dedent(text).lstrip("\n").encode()
            info = tarfile.TarInfo(f"mini-1.0/{relative}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def test_static_map_follows_fixtures_helpers_subclasses_and_the_default_class(tmp_path: Path) -> None:
    files, skipped = read_python_files(write_repo(tmp_path, MINI))
    assert not skipped
    found = static_map(files)
    assert found == TRUTH
    assert compare(found, TRUTH)["pair_precision"] == 1.0


def test_traced_map_names_what_ran_in_each_test(tmp_path: Path) -> None:
    root = write_repo(tmp_path, MINI)
    files, _ = read_python_files(root)
    traced = traced_map(root, files, ["tests/test_core.py"])
    assert traced == TRUTH
    fmap = map_repository(root)
    assert fmap.method == "traced" and fmap.problem is None
    by_function = fmap.by_function()
    assert "pkg.core:unused" not in by_function
    assert by_function[INIT] == sorted(t for t, fs in TRUTH.items() if INIT in fs)


def test_static_map_stands_in_when_the_tests_cannot_run(tmp_path: Path) -> None:
    root = write_repo(tmp_path, {**MINI, "tests/test_core.py": "import not_installed_anywhere\n\n"
                                 + textwrap.dedent(MINI["tests/test_core.py"])})
    fmap = map_repository(root)
    assert fmap.method == "static" and "recorded no test" in (fmap.problem or "")
    assert fmap.tests["tests/test_core.py::test_parse"] == TRUTH["tests/test_core.py::test_parse"]
    with pytest.raises(CetError, match="recorded no test"):
        map_repository(root, "traced")
    with pytest.raises(CetError, match="unknown mapping method"):
        map_repository(root, "guess")


def test_splice_replaces_the_definition_in_place() -> None:
    source = textwrap.dedent('''
        import functools


        class Box:
            @functools.cache
            def area(self, w):
                """Area."""
                return 0

            def other(self):
                return 1
        ''').lstrip("\n")
    ref = RepositoryRef(name="m", version="1", archive_sha256="0", snapshot="m-1", path="m.py", qualname="m:Box.area",
                        start_line=5, end_line=8, test_ids=["t.py::test"])
    solution = ("import math\n\ndef helper(w):\n    return w * w\n\n"
                "def area(self, w):\n    return math.floor(helper(w))\n")
    spliced = splice(source, ref, solution)
    namespace: dict = {}
    exec(compile(spliced, "m.py", "exec"), namespace)  # the spliced file still compiles and runs
    assert namespace["Box"]().area(3) == 9 and namespace["Box"]().other() == 1
    assert "    @functools.cache\n    def area(self, w):" in spliced
    assert "pass" in splice(source, ref, "print('no definition here')")  # the function is left out


def sandbox_for(tmp_path: Path) -> tuple[Executor, Path, Path]:
    """A sandbox whose repository snapshots live under tmp_path, that folder, and a tasks file to write."""
    bwrap_or_skip()
    repos = tmp_path / "repos"
    cfg = exec_config("bubblewrap", wall_timeout_s=30, cpu_time_s=30).model_copy(update={"repos_dir": str(repos)})
    return Executor(cfg), repos, tmp_path / "tasks.jsonl"


def test_repository_tasks_are_confirmed_in_the_sandbox(tmp_path: Path) -> None:
    executor, repos, out = sandbox_for(tmp_path)
    archive = str(sdist(tmp_path))
    reports = make_repository_tasks([archive], out, repos, executor, RepositoryTaskOptions())
    (report,) = reports
    assert report.error is None and report.name == "mini" and report.licence == "MIT"
    assert report.map_method == "traced" and report.tests_mapped == len(TRUTH)
    # parse is one statement long, unused has no test, describe's test passes without it, broken's test fails
    assert report.skipped == {"no-docstring": 1, "too-short": 1, "untested": 1, "tests-blind": 1,
                              "reference-fails": 1}
    tasks = {t.repository.qualname: t for t in iter_tasks(out)}
    assert set(tasks) == {SPLIT, TOTAL}
    task = tasks[TOTAL]
    assert task.metadata.split == "test" and task.metadata.licence == "MIT"
    assert set(task.repository.test_ids) == {t for t, fs in TRUTH.items() if TOTAL in fs}
    assert "def total(text):" in task.statement and "int(v)" not in task.statement
    assert executor.run(task, task.reference_solution).passed
    assert not executor.run(task, stub(task)).passed
    assert not executor.run(task, "def total(text):\n    return 0\n").passed
    alternative = "import re\n\ndef total(text):\n    return sum(map(int, re.findall(r'-?\\d+', text)))\n"
    assert executor.run(task, alternative).passed
    method = tasks[SPLIT]
    assert executor.run(method, "def split(self, text):\n    return [p.strip() for p in text.split(self.sep)]").passed
    assert not executor.run(method, "def split(self, text):\n    return text.split(self.sep)").passed
    # a second run resumes the finished repository instead of rebuilding it
    again = make_repository_tasks([archive], out, repos, executor, RepositoryTaskOptions())
    assert again[0].resumed and again[0].tasks == 2 and len(list(iter_tasks(out))) == 2


def test_unpack_reuses_the_same_archive_and_names_it(tmp_path: Path) -> None:
    archive = sdist(tmp_path)
    first = unpack(archive, tmp_path / "repos")
    (first.root / "marker").write_text("kept")
    again = unpack(archive, tmp_path / "repos")
    assert (again.root / "marker").is_file() and again.name == "mini" and again.version == "1.0"


def test_cli_testmap_and_repo_report_bad_input_plainly(tmp_path: Path) -> None:
    runner = CliRunner()
    root = write_repo(tmp_path / "mini", MINI)
    done = runner.invoke(app, ["kb", "testmap", str(root), "--method", "static", "--json"])
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert data["method"] == "static" and data["map"][TOTAL] == sorted(t for t, fs in TRUTH.items() if TOTAL in fs)
    missing = runner.invoke(app, ["kb", "testmap", str(tmp_path / "nowhere")])
    assert missing.exit_code != 0 and "no repository" in missing.output and "Traceback" not in missing.output
    bad = runner.invoke(app, ["tasks", "repo", "not a spec!", "--out", str(tmp_path / "t.jsonl"), "--json"])
    assert bad.exit_code == 1 and "neither an archive" in json.loads(bad.stdout)["repositories"][0]["error"]
    assert not (tmp_path / "t.jsonl").exists() or (tmp_path / "t.jsonl").read_text() == ""


def test_git_reader_names_the_tests_of_each_definition(tmp_path: Path) -> None:
    from cet.knowledge.sources.git import read_git

    root = write_repo(tmp_path / "mini", MINI)
    documents = {d.metadata["symbol"]: d for d in read_git(root) if getattr(d, "kind", None) == "code"}
    total = documents["total"].metadata
    assert total["tested_at"] == "function"
    assert total["tests"] == sorted(t for t, fs in TRUTH.items() if TOTAL in fs)
    parser = documents["Parser"].metadata  # the default class: reached only through parse() and a fixture
    assert parser["tests_present"] and "tests/test_core.py::test_fixture" in parser["tests"]
    unused = documents["unused"].metadata  # no test reaches it: only the file-level map speaks for it
    assert unused["tested_at"] == "file" and unused["tests"] == []


SRC_LAYOUT = {
    "src/lib/__init__.py": "",
    "src/lib/calc.py": '''
        def scaled(x, k=2):
            """x times k."""
            y = x * k
            return y
        ''',
    "src/lib/tests/test_calc.py": '''
        import pytest
        from lib.calc import scaled


        @pytest.mark.parametrize("x", [1, pytest.param(2, marks=pytest.mark.skip)])
        def test_param(x):
            assert scaled(x) == 2 * x


        def test_plain():
            assert scaled(3, 3) == 9
        ''',
}


def test_a_src_layout_and_a_partly_skipped_test_give_a_task_its_original_passes(tmp_path: Path) -> None:
    executor, repos, out = sandbox_for(tmp_path)
    (report,) = make_repository_tasks([str(sdist(tmp_path, SRC_LAYOUT))], out, repos, executor,
                                      RepositoryTaskOptions())
    assert report.error is None and report.tasks == 1, report
    (task,) = iter_tasks(out)
    # the parametrized test has a skipped case: dropped whole; the plain one decides, under its sandbox name
    assert task.repository.test_ids == ["src/lib/tests/test_calc.py::test_plain"]
    assert task.test_names == ["lib/tests/test_calc.py::test_plain"]
    assert executor.run(task, task.reference_solution).passed
    assert not executor.run(task, "def scaled(x, k=2):\n    return x + k\n").passed


def test_splice_takes_only_a_top_level_candidate_and_keeps_what_it_needs() -> None:
    source = "def f(x):\n    \"\"\"Twice.\"\"\"\n    return 0\n"
    ref = RepositoryRef(name="m", version="1", archive_sha256="0", snapshot="m-1", path="m.py", qualname="m:f",
                        start_line=1, end_line=3, test_ids=["t.py::test"])
    nested = "def helper():\n    def f(x):\n        return 2 * x\n    return f\n"
    assert "pass" in splice(source, ref, nested)  # no top-level f: left out, never a crash
    future = "from __future__ import annotations\nLIMIT = 2\n\ndef f(x: int) -> int:\n    return LIMIT * x\n"
    namespace: dict = {}
    exec(compile(splice(source, ref, future), "m.py", "exec"), namespace)
    assert namespace["f"](3) == 6


def test_a_repository_task_never_retrieves_its_own_definition_nor_the_tests(tmp_path: Path) -> None:
    from cet.execution.repository import definition_span
    from cet.knowledge.repository_index import RepositoryIndex

    root = write_repo(tmp_path / "mini", MINI)
    start, end, _ = definition_span((root / "pkg/core.py").read_text(), TOTAL)
    index = RepositoryIndex(root, "mini")
    everything = index.search("the sum of the integers in text total parse values", k=20)
    assert any(h.metadata["start_line"] == start for h in everything)  # without the leave-out it would come
    hits = index.without("pkg/core.py", start, end).search("the sum of the integers in text total parse values", k=20)
    assert hits and all(not (h.path == "pkg/core.py" and h.metadata["start_line"] <= end
                             and h.metadata["end_line"] >= start) for h in hits)
    assert not any(h.path.startswith("tests/") for h in everything)
