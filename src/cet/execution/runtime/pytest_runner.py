"""Runs a task's pytest file inside the sandbox and reports every test's outcome as JSON.

This file runs INSIDE the sandbox, under the sandbox's interpreter, never imported by cet on the host.
Only the standard library and pytest are importable there. Usage (one-shot):

    python -I -B pytest_runner.py WORK_DIR TEST_FILE SITE_DIR...

It writes one JSON object to the file descriptor in $CET_RESULT_FD: {"exit_code", "cases",
"collect_errors", "duration_s"}. The fork server (fork_server.py) calls `run_tests` the same way.
Only the process that started the run reports: a forked child of a solution never writes results.
"""

from __future__ import annotations

import json
import os
import sys
import time

MAX_MESSAGE = 500
MAX_TRACEBACK = 1500


class ResultsPlugin:
    """A pytest plugin collecting per-test outcomes, error types, messages and call durations."""

    def __init__(self, full_ids: bool = False) -> None:
        self.pid = os.getpid()
        self.full_ids = full_ids  # a repository's tests: several files, so a case is named by its whole node id
        self.cases: dict[str, dict] = {}
        self.collect_errors: list[str] = []

    def _case(self, nodeid: str) -> dict:
        name = nodeid if self.full_ids else nodeid.split("::", 1)[-1]
        return self.cases.setdefault(name, {"name": name, "outcome": "passed", "duration_s": 0.0,
                                            "error_type": None, "message": None, "traceback_tail": None})

    def pytest_runtest_makereport(self, item, call):  # noqa: ANN001 (pytest hook)
        if os.getpid() != self.pid or call.excinfo is None:
            return
        case = self._case(item.nodeid)
        if case["error_type"] is None:
            case["error_type"] = call.excinfo.typename
            case["message"] = _clip(str(call.excinfo.value), MAX_MESSAGE)

    def pytest_runtest_logreport(self, report) -> None:  # noqa: ANN001
        if os.getpid() != self.pid:
            return
        case = self._case(report.nodeid)
        if report.when == "call":
            case["duration_s"] = round(report.duration, 6)
        if report.failed:
            case["outcome"] = "failed" if report.when == "call" else "error"
            case["traceback_tail"] = _clip(str(report.longrepr), MAX_TRACEBACK, tail=True)
        elif report.skipped and case["outcome"] == "passed":
            case["outcome"] = "skipped"

    def pytest_collectreport(self, report) -> None:  # noqa: ANN001
        if os.getpid() == self.pid and report.failed:
            self.collect_errors.append(_clip(str(report.longrepr), MAX_TRACEBACK, tail=True))


def _clip(text: str, limit: int, tail: bool = False) -> str:
    if len(text) <= limit:
        return text
    return ("..." + text[-limit:]) if tail else (text[:limit] + "...")


REPOSITORY_TESTS = "cet_tests.txt"  # as in cet.execution.tasks (this file imports nothing of cet)
REPOSITORY_ARCHIVE = "cet_repository.zip"


def run_tests(work_dir: str, test_file: str) -> dict:
    """Run one test file with pytest in-process; return the results object. A repository task's `test_file` is
    REPOSITORY_TESTS: the repository is unpacked from REPOSITORY_ARCHIVE first, and its listed tests run."""
    import pytest

    os.chdir(work_dir)
    if work_dir not in sys.path:
        sys.path.insert(0, work_dir)
    targets, plugin, settings = [test_file], ResultsPlugin(), []
    if test_file == REPOSITORY_TESTS:
        import zipfile

        with zipfile.ZipFile(REPOSITORY_ARCHIVE) as archive:
            archive.extractall(work_dir)
        with open(REPOSITORY_TESTS, encoding="utf-8") as f:
            targets = [line.strip() for line in f if line.strip()]
        if not targets:  # pytest with no target would collect everything under the work folder
            return {"exit_code": 4, "cases": [], "collect_errors": ["no test to run"], "duration_s": 0.0,
                    "pid": os.getpid(), "rusage": _rusage()}
        with open("cet_pytest.ini", "w", encoding="utf-8") as f:  # not the repository's own settings
            f.write("[pytest]\n")
        plugin, settings = ResultsPlugin(full_ids=True), ["-c", "cet_pytest.ini"]
    args = [*targets, *settings, "-q", "--no-header", "-p", "no:cacheprovider", "-p", "no:pastebin",
            "-p", "no:legacypath", "--tb=short", "--capture=no", "-o", "console_output_style=classic",
            f"--rootdir={work_dir}"]
    started = time.perf_counter()
    try:
        exit_code = int(pytest.main(args, plugins=[plugin]))
    except MemoryError:
        exit_code = -1
        plugin.collect_errors.append("MemoryError")
    return {"exit_code": exit_code, "cases": list(plugin.cases.values()), "collect_errors": plugin.collect_errors,
            "duration_s": round(time.perf_counter() - started, 6), "pid": plugin.pid, "rusage": _rusage()}


def _rusage() -> dict:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpu_s": own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime,
            "peak_memory_mb": max(own.ru_maxrss, children.ru_maxrss) / 1024.0}


def report(results: dict) -> None:
    """Write the results to the result descriptor (only from the process that ran the tests)."""
    fd = int(os.environ.get("CET_RESULT_FD", "3"))
    data = json.dumps(results).encode("utf-8")
    with os.fdopen(fd, "wb", closefd=True) as f:
        f.write(data)


def main(argv: list[str]) -> int:
    work_dir, test_file, *site_dirs = argv[1:]
    sys.path[:0] = site_dirs
    results = run_tests(work_dir, test_file)
    if os.getpid() == results["pid"]:
        report(results)
    sys.stdout.flush()
    sys.stderr.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
