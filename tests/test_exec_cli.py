"""`cet exec run` and `cet exec batch` through the real command line: JSON, exit codes, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.sandbox_helpers import bwrap_or_skip, make_task

TESTS = "from solution import double\n\ndef test_two():\n    assert double(2) == 4\n\ndef test_zero():\n" \
        "    assert double(0) == 0\n"
GOOD, BAD = "def double(x):\n    return 2 * x\n", "def double(x):\n    return x + 2\n"


@pytest.fixture()
def task_file(tmp_path: Path) -> Path:
    path = tmp_path / "task.json"
    path.write_text(make_task(TESTS, ["test_two", "test_zero"], reference=GOOD).model_dump_json() + "\n")
    return path


def test_run_json_has_the_promised_fields_and_exit_status(run_cet, task_file: Path, tmp_path: Path) -> None:
    bwrap_or_skip()
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text(GOOD)
    bad.write_text(BAD)
    done = run_cet("exec", "run", "--task", str(task_file), "--solution", str(good), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["passed"] is True and result["exit_reason"] == "ok"
    assert result["tests"]["total"] == 2 and result["tests"]["passed"] == 2 and result["tests"]["failed"] == 0
    assert result["isolation"] == "bubblewrap" and result["performance"]["ratio"] > 0
    done = run_cet("exec", "run", "--task", str(task_file), "--solution", str(bad), "--json")
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["passed"] is False and result["exit_reason"] == "failed"
    assert (result["tests"]["passed"], result["tests"]["failed"]) == (1, 1)


def test_run_in_weak_mode_warns_on_stderr_and_in_the_json(run_cet, task_file: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.py"
    good.write_text(GOOD)
    done = run_cet("exec", "run", "--task", str(task_file), "--solution", str(good), "--isolation", "weak", "--json")
    assert done.returncode == 0
    assert "NOT ISOLATED" in done.stderr
    assert "NOT ISOLATED" in json.loads(done.stdout)["isolation_warning"]


@pytest.mark.parametrize("problem, args, message", [
    ("missing task", ["--task", "nope.json", "--solution", "x.py"], "task file not found"),
    ("missing solution", ["--task", "{task}", "--solution", "nope.py"], "solution file not found"),
    ("bad isolation", ["--task", "{task}", "--solution", "{task}", "--isolation", "docker"], "unknown --isolation"),
])
def test_run_bad_input_is_one_line(run_cet, task_file: Path, problem: str, args: list[str], message: str) -> None:
    args = [a.replace("{task}", str(task_file)) for a in args]
    done = run_cet("exec", "run", *args)
    assert done.returncode == 2, problem
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_not_a_task_is_a_clear_error(run_cet, tmp_path: Path) -> None:
    bogus = tmp_path / "task.json"
    bogus.write_text('{"id": "x", "language": "cobol"}\n')
    solution = tmp_path / "s.py"
    solution.write_text(GOOD)
    done = run_cet("exec", "run", "--task", str(bogus), "--solution", str(solution))
    assert done.returncode == 2 and "not a valid coding task" in done.stderr and "Traceback" not in done.stderr


def test_batch_runs_resumes_and_counts_bad_lines(run_cet, cet_env, tmp_path: Path) -> None:
    bwrap_or_skip()
    tasks = tmp_path / "tasks.jsonl"
    lines = [make_task(TESTS, ["test_two", "test_zero"], task_id=f"t/{i}").model_dump_json() for i in range(4)]
    tasks.write_text("\n".join([lines[0], "{not json", lines[1], lines[2], lines[3]]) + "\n")
    solutions = tmp_path / "solutions.jsonl"
    solutions.write_text("\n".join(json.dumps({"task_id": f"t/{i}", "solution": GOOD if i % 2 == 0 else BAD})
                                   for i in range(3)) + "\n")  # t/3 has none
    out = tmp_path / "results.jsonl"
    env = cet_env(CET_RUN__RUNS_DIR=str(tmp_path / "runs"))
    done = run_cet("exec", "batch", "--tasks", str(tasks), "--solutions", str(solutions), "--out", str(out),
                   "--json", env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["tasks"], summary["ran"], summary["passed"]) == (4, 3, 2)
    assert summary["bad_task_lines"] == 1 and summary["missing_solutions"] == 1
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["task_id"] for r in results] == ["t/0", "t/1", "t/2"]
    assert [r["passed"] for r in results] == [True, False, True]
    report = Path(summary["run_dir"]) / "report.md"
    assert "exit reason" in report.read_text() and (Path(summary["run_dir"]) / "plots" / "exit_reasons.png").exists()
    # an interrupted batch: the last result line was cut off mid-write; the re-run redoes only that task
    out.write_text("\n".join(out.read_text().splitlines()[:2]) + "\n" + '{"task_id": "t/2", "pass')
    done = run_cet("exec", "batch", "--tasks", str(tasks), "--solutions", str(solutions), "--out", str(out),
                   "--json", env=env)
    summary = json.loads(done.stdout)
    assert (summary["resumed"], summary["ran"]) == (2, 1)
    assert [json.loads(line)["task_id"] for line in out.read_text().splitlines()] == ["t/0", "t/1", "t/2"]


def test_batch_needs_exactly_one_solution_source(run_cet, task_file: Path, tmp_path: Path) -> None:
    done = run_cet("exec", "batch", "--tasks", str(task_file), "--out", str(tmp_path / "r.jsonl"))
    assert done.returncode == 2 and "--solutions PATH or --reference" in done.stderr
