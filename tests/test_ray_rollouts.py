"""Phase 3 rollouts on a local Ray cluster give the rollouts this process gives: the same (task, candidate,
generator) records with the same verdicts (greedy generation, the real SmolLM2, the real sandbox)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.sandbox_helpers import bwrap_or_skip

from cet.config import load_config
from cet.data.baselines import rule_based_context
from cet.data.task_input import cet_input, task_view
from cet.execution.tasks import CodingTask, TaskMetadata
from cet.phases.rollouts import Candidate, Work, roll_out

TESTS = '''from solution import add


def test_small():
    assert add(1, 2) == 3


def test_negative():
    assert add(-1, -4) == -5
'''


def works() -> list[Work]:
    task = CodingTask(id="exercism/add", language="python", entry_point="add", signature="def add(a, b)",
                      statement="Write `add(a, b)` returning the sum of two integers.", tests=TESTS,
                      test_names=["test_small", "test_negative"], metadata=TaskMetadata(source="exercism",
                                                                                        split="train"))
    view = task_view(task, 1)
    inp = cet_input(view)
    return [Work(view, inp, [Candidate("raw"), Candidate("template", rule_based_context(inp))])]


def test_a_local_ray_cluster_rolls_out_what_this_process_does(tmp_path: Path) -> None:
    bwrap_or_skip()
    ray = pytest.importorskip("ray")
    base = {"llm": {"max_tokens": 64, "n_threads": 1}, "exec": {"isolation": "bubblewrap"}}
    here = load_config(llm={**base["llm"], "cache_path": str(tmp_path / "here.sqlite")}, exec=base["exec"])
    there = load_config(llm={**base["llm"], "cache_path": str(tmp_path / "ray.sqlite")}, exec=base["exec"],
                        cet={"phase3": {"ray_address": "local", "ray_cpus_per_task": 1}})
    generators = ["smollm2-135m-instruct"]
    try:
        local, local_stats = roll_out(here, works(), generators, tmp_path / "local.jsonl", round_=1, batch=1)
        remote, remote_stats = roll_out(there, works(), generators, tmp_path / "ray.jsonl", round_=1, batch=1)
        assert not ray.is_initialized()  # the cluster the rollouts started is shut down again
    finally:
        ray.shutdown()
    assert local_stats.rollouts == remote_stats.rollouts == 2 and remote_stats.generated == 2

    def verdicts(records: list[dict]) -> dict:
        return {(r["task_id"], r["key"], r["generator"]): (r["passed"], r["code"]) for r in records}

    assert verdicts(local) == verdicts(remote)
    lines = [json.loads(line) for line in (tmp_path / "ray.jsonl").read_text().splitlines()]
    assert {r["candidate"] for r in lines} == {"raw", "template"}
