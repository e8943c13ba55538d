"""Repository tasks: a real library's function with its body removed; its signature and docstring are the ask, the
rest of the repository is the knowledge, and the repository's own tests that exercise it are the verdict.

From a snapshot (cet.execution.repository) and its function-level test map (cet.knowledge.function_map, traced):
every library function or method with a docstring, a body of at least `min_statements` statements, at most
`max_lines` lines and at least one mapped test is a candidate. It becomes a task only when the sandbox confirms both
sides: the original definition passes every chosen test, and a body that does nothing (`return None`) fails at least
one (tests that pass either way would not judge anything). Each rejected candidate is one `SkippedTask` with its reason.

All tasks of one repository share a split: the benchmark is split by repository, so a held-out repository is never
trained on, not even through its other functions.
"""

from __future__ import annotations

import ast
import hashlib
import json
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from cet.errors import CetError
from cet.execution.executor import Executor
from cet.execution.importers import SkippedTask
from cet.execution.repository import (
    DEFAULT_INDEX,
    Snapshot,
    definition_scope,
    definition_span,
    fetch_sdist,
    run_path,
    stub,
    unpack,
)
from cet.execution.tasks import SPLITS, CodingTask, RepositoryRef, TaskMetadata, write_tasks
from cet.knowledge.function_map import FunctionMap, PythonRepo, map_repository, read_python_files

SOURCE = "repository"
BUILDER_VERSION = 3  # part of a finished repository's settings: a change to how tasks are written rebuilds them


@dataclass(frozen=True)
class RepositoryTaskOptions:
    split: str = "test"
    min_statements: int = 2  # body statements, the docstring not counted
    max_lines: int = 60  # body lines, the docstring not counted
    max_tests: int = 20  # tests per task (a deterministic choice among those mapped)
    max_tasks: int | None = None  # per repository, in a deterministic order

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise CetError(f"unknown split {self.split!r}: choose {', '.join(SPLITS)}")


def task_id(snapshot: Snapshot, qualname: str) -> str:
    return f"repo-{snapshot.name.lower()}-{snapshot.version}-{qualname.replace(':', '.')}"


def candidates(snapshot: Snapshot, fmap: FunctionMap, options: RepositoryTaskOptions
               ) -> Iterator[tuple[CodingTask, str] | SkippedTask]:
    """Each candidate function as (task whose verdict is not yet checked, its stub), or why it is not one."""
    repo = fmap.repo or PythonRepo(read_python_files(snapshot.root)[0])  # the map's own parse, when it has one
    files = repo.files
    tested = fmap.by_function()
    chosen = sorted(repo.functions.values(), key=lambda f: hashlib.sha256(f.qualname.encode()).hexdigest())
    for function in chosen:
        if function.test:
            continue
        node = function.node
        tid = task_id(snapshot, function.qualname)
        docstring = ast.get_docstring(node)
        body = node.body[1:] if docstring is not None else node.body
        lines = (node.end_lineno or node.lineno) - body[0].lineno + 1 if body else 0  # the docstring not counted
        reason = ("no-docstring" if not docstring else "too-short" if len(body) < options.min_statements
                  else "too-long" if lines > options.max_lines else "untested" if function.qualname not in tested
                  else "defined-twice" if _defined_twice(repo.trees[function.path], function.qualname) else None)
        if reason:
            yield SkippedTask(SOURCE, tid, reason)
            continue
        source = files[function.path]
        start, end, _ = definition_span(source, function.qualname, repo.trees[function.path])
        tests = _choose(tested[function.qualname], options.max_tests)
        yield _task(snapshot, function.qualname, function.path, source, start, end, tests, repo, options), ""


def _defined_twice(tree: ast.Module, qualname: str) -> bool:
    """Whether the name is defined more than once in its scope (overloads, property setters): which one a task
    means would be ambiguous."""
    name = qualname.partition(":")[2].split(".")[-1]
    scope = definition_scope(tree, qualname) or []
    return sum(1 for n in scope if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name) > 1


def _choose(tests: list[str], limit: int) -> list[str]:
    return sorted(sorted(tests, key=lambda t: hashlib.sha256(t.encode()).hexdigest())[:limit])


def _task(snapshot: Snapshot, qualname: str, path: str, source: str, start: int, end: int, tests: list[str],
          repo: PythonRepo, options: RepositoryTaskOptions) -> CodingTask:
    lines = source.splitlines()
    node = repo.functions[qualname].node
    header = "\n".join(lines[node.lineno - 1: node.body[0].lineno - 1]).rstrip()
    if ast.get_docstring(node) is not None:  # the header and the docstring exactly as written
        header = "\n".join(lines[node.lineno - 1: node.body[0].end_lineno])
    signature = _dedent_block(header)
    reference = _dedent_block("\n".join(lines[start - 1: end]))
    owner = qualname.partition(":")[2].rsplit(".", 1)
    where = f"method `{owner[1]}` of class `{owner[0]}`" if len(owner) == 2 else f"function `{owner[0]}`"
    statement = (f"Implement the {where} in `{path}` of the {snapshot.name} {snapshot.version} repository. The rest "
                 f"of the repository stays as it is; your definition replaces the original.\n\n```python\n"
                 f"{signature}\n```\n\nAnswer with the complete definition of `{owner[-1]}`: its signature and "
                 f"body, without repeating the docstring.")
    test_source = _test_sources(repo, tests)
    ref = RepositoryRef(name=snapshot.name, version=snapshot.version, archive_sha256=snapshot.archive_sha256,
                        snapshot=snapshot.folder, path=path, qualname=qualname, start_line=start, end_line=end,
                        test_ids=tests)
    return CodingTask(id=task_id(snapshot, qualname), language="python", statement=statement,
                      entry_point=qualname.partition(":")[2], signature=signature, tests=test_source,
                      test_names=[], reference_solution=reference, repository=ref,
                      metadata=TaskMetadata(source=SOURCE, split=options.split, licence=snapshot.licence,
                                            extra={"repository": snapshot.name, "version": snapshot.version,
                                                   "path": path, "qualname": qualname}))


def _dedent_block(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def _test_sources(repo: PythonRepo, tests: list[str]) -> str:
    """The source of the chosen tests (for reading and leakage checks; the run uses the repository's files)."""
    out = []
    for node_id in tests:
        path, _, rest = node_id.partition("::")
        name = rest.rsplit("::", 1)[-1]
        owner = rest.rsplit("::", 1)[0] if "::" in rest else None
        module = repo.by_path.get(path)
        if module is None:
            continue
        qualname = f"{module.name}:{owner}.{name}" if owner else f"{module.name}:{name}"
        function = repo.functions.get(qualname) or next(
            (f for f in repo.functions.values() if f.path == path and f.node.name == name), None)
        if function is not None:
            out.append(f"# {node_id}\n{ast.unparse(function.node)}")
    return "\n\n".join(out)


def confirm(task: CodingTask, no_body: str, executor: Executor) -> CodingTask | SkippedTask:
    """The task with its verdict confirmed by the sandbox, or why it has none. The tests kept are those whose every
    case passed with the original (a test with a skipped or failing case is dropped whole); then the original must
    pass the confirmed task as written, and a body that does nothing must fail it."""
    assert task.repository is not None
    reference = executor.run(task, task.reference_solution or "")
    by_test: dict[str, list[str]] = {}
    for case in reference.tests.cases:
        by_test.setdefault(case.name.split("[", 1)[0], []).append(case.outcome)
    whole = {test for test, outcomes in by_test.items() if all(o == "passed" for o in outcomes)}
    kept = [t for t in task.repository.test_ids if run_path(t) in whole]
    if not kept:
        failing = [c for c in reference.tests.cases if c.outcome not in ("passed", "skipped")]
        detail = failing[0].message if failing else (reference.detail or "no chosen test passed whole")
        return SkippedTask(SOURCE, task.id, "reference-fails", (detail or "")[:300])
    names = sorted(c.name for c in reference.tests.cases if c.name.split("[", 1)[0] in {run_path(t) for t in kept})
    confirmed = task.model_copy(update={
        "test_names": names, "repository": task.repository.model_copy(update={"test_ids": kept})})
    if not executor.run(confirmed, confirmed.reference_solution or "").passed:  # as the task will be judged
        return SkippedTask(SOURCE, task.id, "reference-fails", "the original does not pass the confirmed tests")
    if executor.run(confirmed, no_body).passed:
        return SkippedTask(SOURCE, task.id, "tests-blind", "its tests pass with a body that does nothing")
    return confirmed


def build_repository_tasks(snapshot: Snapshot, fmap: FunctionMap, executor: Executor,
                           options: RepositoryTaskOptions = RepositoryTaskOptions(),
                           on_candidate: Callable[[], None] | None = None) -> Iterator[CodingTask | SkippedTask]:
    """The confirmed tasks of one repository (up to `options.max_tasks`) and a SkippedTask per rejected function."""
    if fmap.method != "traced":
        raise CetError(f"repository tasks need the traced test map (the tests must run here): {fmap.problem}")
    made = 0
    for record in candidates(snapshot, fmap, options):
        if isinstance(record, SkippedTask):
            yield record
            continue
        if options.max_tasks is not None and made >= options.max_tasks:
            yield SkippedTask(SOURCE, record[0].id, "over-max-tasks")
            continue
        task, _ = record
        result = confirm(task, stub(task), executor)
        if on_candidate:
            on_candidate()
        if isinstance(result, CodingTask):
            made += 1
        yield result


@dataclass
class RepositoryReport:
    spec: str
    name: str | None = None
    version: str | None = None
    licence: str | None = None
    archive_sha256: str | None = None
    map_method: str | None = None
    tests_mapped: int = 0
    functions: int = 0
    functions_tested: int = 0
    tasks: int = 0
    skipped: dict[str, int] | None = None
    error: str | None = None
    resumed: bool = False


def make_repository_tasks(specs: list[str], out: Path, repos_dir: Path, executor: Executor,
                          options: RepositoryTaskOptions, on_progress: Callable[[str], None] | None = None,
                          index_url: str = DEFAULT_INDEX) -> list[RepositoryReport]:
    """Fetch, unpack, map and build the tasks of each repository spec (NAME, NAME==VERSION or an sdist archive),
    writing all confirmed tasks to `out`. Each repository's tasks are kept in `<out>.parts/` as it finishes, so an
    interrupted run resumes with the next repository; a repository that fails is reported, and the rest go on."""
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    reports: list[RepositoryReport] = []
    for spec in specs:
        report = RepositoryReport(spec)
        reports.append(report)
        try:
            archive = fetch_sdist(spec, repos_dir / "archives", index_url)
            snapshot = unpack(archive, repos_dir)
        except CetError as e:
            report.error = str(e)
            continue
        report.name, report.version = snapshot.name, snapshot.version
        report.licence, report.archive_sha256 = snapshot.licence, snapshot.archive_sha256
        part = parts / f"{snapshot.folder}.json"
        settings = {"archive_sha256": snapshot.archive_sha256, "options": asdict(options),
                    "builder": BUILDER_VERSION}
        if part.is_file():
            saved = json.loads(part.read_text(encoding="utf-8"))
            if saved.get("settings") == settings:
                report.__dict__.update(saved["report"], resumed=True)
                continue
        if on_progress:
            on_progress(f"mapping the tests of {snapshot.folder}")
        try:
            fmap = map_repository(snapshot.root, "traced")
        except CetError as e:
            report.error = f"its tests cannot be traced here: {e}"
            continue
        report.map_method, report.tests_mapped = fmap.method, len(fmap.tests)
        report.functions, report.functions_tested = fmap.functions, len(fmap.by_function())
        skipped: Counter[str] = Counter()
        tasks: list[dict] = []

        def checked(folder: str = snapshot.folder, made: list[dict] = tasks) -> None:
            if on_progress:
                on_progress(f"checking {folder}: {len(made)} tasks")

        for record in build_repository_tasks(snapshot, fmap, executor, options, on_candidate=checked):
            if isinstance(record, SkippedTask):
                skipped[record.reason] += 1
            else:
                tasks.append(record.model_dump(mode="json"))
        report.tasks, report.skipped = len(tasks), dict(skipped.most_common())
        saved_report = {k: v for k, v in asdict(report).items() if k not in ("spec", "resumed")}
        temporary = part.with_name(part.name + ".tmp")  # renamed into place: a part is whole or absent
        temporary.write_text(json.dumps({"settings": settings, "report": saved_report, "tasks": tasks}),
                             encoding="utf-8")
        temporary.replace(part)
    if any(r.tasks for r in reports) or not out.exists():  # nothing built never replaces a tasks file
        write_tasks(_saved_tasks(parts, reports), out)
    return reports


def _saved_tasks(parts: Path, reports: list[RepositoryReport]) -> Iterator[CodingTask]:
    for report in reports:
        if report.error or report.name is None:
            continue
        for part in sorted(parts.glob("*.json")):
            saved = json.loads(part.read_text(encoding="utf-8"))
            if saved["settings"]["archive_sha256"] == report.archive_sha256:
                yield from (CodingTask.model_validate(t) for t in saved["tasks"])
                break
