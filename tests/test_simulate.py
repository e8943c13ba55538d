"""`cet simulate` end to end: tasks replayed through the proxy with the real generator (SmolLM2), the sandbox's
verdicts reported as feedback, the experiment's decision in the summary; a second call resumes and replays
nothing already recorded."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.sandbox_helpers import bwrap_or_skip

from cet.execution.tasks import CodingTask, TaskMetadata


def task(name: str, body: str, cases: list[tuple[str, str]]) -> CodingTask:
    tests = f"from solution import {name}\n\n" + "\n".join(
        f"\ndef test_{i}():\n    assert {name}({args}) == {want}\n" for i, (args, want) in enumerate(cases))
    return CodingTask(id=f"sim/{name}", language="python", entry_point=name, signature=f"def {name}(x)",
                      statement=body, tests=tests, test_names=[f"test_{i}" for i in range(len(cases))],
                      metadata=TaskMetadata(source="sim", split="test"))


def test_simulate_replays_reports_and_resumes(tmp_path: Path, run_cet: Callable, cet_env: Callable) -> None:
    bwrap_or_skip()
    tasks = [task("double", "Write `double(x)` returning twice x.", [("2", "4"), ("-3", "-6"), ("0", "0")]),
             task("square", "Write `square(x)` returning x squared.", [("3", "9"), ("-2", "4"), ("0", "0")]),
             task("negate", "Write `negate(x)` returning minus x.", [("3", "-3"), ("-2", "2"), ("0", "0")]),
             task("halve", "Write `halve(x)` returning x // 2.", [("4", "2"), ("5", "2"), ("0", "0")])]
    tasks_file = tmp_path / "tasks.jsonl"
    tasks_file.write_text("".join(t.model_dump_json() + "\n" for t in tasks))
    env = cet_env(CET_LLM__ROLES__GENERATOR='["smollm2-135m-instruct"]', CET_RUN__RUNS_DIR=str(tmp_path / "runs"),
                  CET_LLM__CACHE_PATH=str(tmp_path / "cache.sqlite"), CET_LLM__N_THREADS="1")
    args = ["simulate", "--control", "none", "--treatment", "template", "--tasks-file", str(tasks_file),
            "--min-per-arm", "1", "--no-retrieval", "--max-tokens", "64", "--json"]
    first = run_cet(*args, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    result = json.loads(first.stdout)
    standing = result["experiment"]
    assert standing["n_a"] + standing["n_b"] == 4 and not result["skipped"]
    assert {r["arm"] for r in map(json.loads, Path(result["run_dir"], "tasks.jsonl").read_text().splitlines())} \
        == {"none", "template"}  # sticky per task, both arms drawn from four users
    assert result["decision"] and len(result["tasks_sha256"]) == 64
    assert "Experiment simulate" in Path(result["run_dir"], "dashboard.html").read_text()
    again = run_cet(*args, "--resume", result["run_dir"], env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(Path(result["run_dir"], "tasks.jsonl").read_text().splitlines()) == 4  # nothing replayed twice
    assert json.loads(again.stdout)["experiment"]["n_a"] == standing["n_a"]
    other = run_cet(*[a if a != "template" else "naive_rag" for a in args], "--resume", result["run_dir"], env=env)
    assert other.returncode != 0 and "other settings (treatment)" in other.stderr  # not mixed into this run
    bad = run_cet("simulate", "--control", "nowhere", "--tasks-file", str(tasks_file), "--no-retrieval", env=env)
    assert bad.returncode != 0 and "no CET checkpoint" in bad.stderr and "Traceback" not in bad.stderr
