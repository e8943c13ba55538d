"""Phase 3's repair loop with real parts: a failing solution run in the real sandbox, the tiny CET's debugging
context, the real SmolLM2 as the generator; rounds stop at a pass, the file resumes, fix rates add up."""

from __future__ import annotations

import json
from pathlib import Path

from tests.sandbox_helpers import bwrap_or_skip

from cet.config import load_config
from cet.data.playbook import Playbook
from cet.data.task_input import task_view
from cet.execution.executor import Executor
from cet.execution.failures import classify_failure, failure_pattern, failure_report
from cet.execution.tasks import CodingTask, TaskMetadata
from cet.model.cet import CETModel
from cet.phases.repair import fix_rates, repair_failures

TESTS = '''from solution import add


def test_small():
    assert add(1, 2) == 3


def test_negative():
    assert add(-1, -4) == -5


def test_zero():
    assert add(0, 0) == 0
'''
BROKEN = "def add(a, b):\n    return a - b\n"


def test_a_failed_attempt_is_repaired_for_at_most_two_rounds(tiny_base: Path, tmp_path: Path) -> None:
    bwrap_or_skip()
    cfg = load_config(cet={"base_model": str(tiny_base), "device": "cpu", "max_new_tokens": 24},
                      llm={"cache_path": str(tmp_path / "cache.sqlite"), "max_tokens": 96, "n_threads": 1,
                           "roles": {"generator": ["smollm2-135m-instruct"]}},
                      exec={"isolation": "bubblewrap"})
    task = CodingTask(id="exercism/add", language="python", entry_point="add", signature="def add(a, b)",
                      statement="Write `add(a, b)` returning the sum of two integers.", tests=TESTS,
                      test_names=["test_small", "test_negative", "test_zero"],
                      metadata=TaskMetadata(source="exercism", split="train"))
    view = task_view(task, 1)
    result = Executor(cfg.exec).run(view.hidden, BROKEN)
    assert not result.passed
    failed = [{"task_id": task.id, "generator": "smollm2-135m-instruct", "code": BROKEN,
               "report": failure_report(result), "failure_class": classify_failure(result, BROKEN, "add"),
               "pattern": failure_pattern(result, BROKEN, "add")}]
    path = tmp_path / "repairs.jsonl"
    cet = CETModel.from_base(cfg)
    rates = repair_failures(cfg, cet, failed, {task.id: view}, {}, Playbook(), path, rounds=2)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert {r["arm"] for r in lines} == {"cet", "report_only"}  # the CET's context and the report alone
    for arm in ("cet", "report_only"):
        records = [r for r in lines if r["arm"] == arm]
        assert 1 <= len(records) <= 2 and [r["round"] for r in records] == list(range(1, len(records) + 1))
        assert all(not r["passed"] for r in records[:-1])  # a round runs only after a failed one
        # add(0, 0) passes: an edge value, not wrong logic throughout
        assert records[0]["original_class"] == "assertion" and records[0]["original_pattern"] == "edge-value"
        assert rates["arms"][arm]["attempts"] == 1 and rates["arms"][arm]["fixed"] == int(records[-1]["passed"])
    assert all(r["context"] == "" for r in lines if r["arm"] == "report_only")
    assert rates["attempts"] == 1 and rates["fixed"] == rates["arms"]["cet"]["fixed"]
    row = rates["by_class"]["assertion"]
    assert row["attempts"] == 1 and row["fixed_by_round_2"] >= row["fixed_by_round_1"]
    assert rates["paired"]["attempts"] == 1
    again = repair_failures(cfg, cet, failed, {task.id: view}, {}, Playbook(), path, rounds=2)
    assert len(path.read_text().splitlines()) == len(lines) and again == rates  # resumed: nothing redone
    # a run stopped after round 1: the rerun goes on with round 2 for the attempts round 1 did not fix
    stopped = tmp_path / "stopped.jsonl"
    first = [line for line in path.read_text().splitlines() if json.loads(line)["round"] == 1]
    stopped.write_text("\n".join(first) + "\n")
    repair_failures(cfg, cet, failed, {task.id: view}, {}, Playbook(), stopped, rounds=2)
    resumed = [json.loads(line) for line in stopped.read_text().splitlines()]
    assert sorted((r["arm"], r["round"]) for r in resumed) == sorted((r["arm"], r["round"]) for r in lines)
    assert rates["arms"]["cet"]["rounds_without_context"] == sum(1 for r in lines if r["arm"] == "cet"
                                                                 and not r["context"])


def test_fix_rates_count_each_attempt_once() -> None:
    records = [
        {"task_id": "a", "generator": "g", "round": 1, "passed": False, "original_class": "assertion",
         "original_pattern": "edge-value"},
        {"task_id": "a", "generator": "g", "round": 2, "passed": True, "original_class": "assertion",
         "original_pattern": "edge-value"},
        {"task_id": "b", "generator": "g", "round": 1, "passed": True, "original_class": "syntax",
         "original_pattern": "truncated"},
        {"task_id": "c", "generator": "g", "round": 1, "passed": False, "original_class": "assertion",
         "original_pattern": "wrong-logic"},
    ]
    rates = fix_rates(records, 2)
    assert rates["attempts"] == 3 and rates["fixed"] == 2 and rates["rate"] == 0.667
    assert rates["by_class"]["assertion"] == {"attempts": 2, "fixed_by_round_1": 0, "fixed_by_round_2": 1}
    assert rates["by_pattern"]["truncated"] == {"attempts": 1, "fixed_by_round_1": 1, "fixed_by_round_2": 1}


def test_fix_rates_pair_the_cet_arm_with_the_report_alone() -> None:
    def rec(task: str, arm: str, round_: int, passed: bool) -> dict:
        return {"task_id": task, "generator": "g", "arm": arm, "round": round_, "passed": passed,
                "original_class": "assertion", "original_pattern": "edge-value"}

    records = [rec("a", "cet", 1, True), rec("a", "report_only", 1, False), rec("a", "report_only", 2, False),
               rec("b", "cet", 1, False), rec("b", "cet", 2, True), rec("b", "report_only", 1, True),
               rec("c", "cet", 1, True), rec("c", "report_only", 1, False), rec("c", "report_only", 2, True),
               rec("d", "cet", 1, False), rec("d", "cet", 2, False), rec("d", "report_only", 1, False),
               rec("d", "report_only", 2, False)]
    rates = fix_rates(records, 2)
    assert rates["arms"]["cet"]["fixed"] == 3 and rates["arms"]["report_only"]["fixed"] == 2
    assert rates["fixed"] == 3 and rates["by_class"]["assertion"] == {"attempts": 4, "fixed_by_round_1": 2,
                                                                        "fixed_by_round_2": 3}
    assert rates["paired"] == {"attempts": 4, "cet_fixed": 3, "report_only_fixed": 2, "cet_only": 1,
                               "report_only_only": 0, "difference": 0.25, "p_value": 1.0}
    assert fix_rates(records[:1], 2)["paired"] is None  # one arm: nothing to pair
