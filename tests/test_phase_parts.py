"""The parts the phase recipes are made of: which answers become training signal, the evaluation-set guard,
balanced sampling, and a failing sandbox run turned into a bug report."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cet.config import load_config
from cet.errors import CetError
from cet.execution.executor import Executor
from cet.execution.tasks import CodingTask, TaskMetadata, write_tasks
from cet.llm.jury import JudgeVote, JuryVerdict
from cet.phases.common import EVAL_SPLITS, TRAIN_SPLITS, assert_trainable, load_tasks, sample_balanced
from cet.phases.phase1 import accepted, select_target, training_examples
from cet.phases.phase2 import failure_report
from sandbox_helpers import exec_config, make_task


def verdict(final: str | None, panel: str | None, verifier: str | None | bool, consensus: bool) -> JuryVerdict:
    votes = [JudgeVote(judge="a", verdict=panel), JudgeVote(judge="b", verdict=panel)] if panel else []
    vote = None
    if verifier is not None:
        vote = JudgeVote.abstention("sandbox", "no code", kind="verifier") if verifier is False else \
            JudgeVote(judge="sandbox", kind="verifier", verdict=verifier)
    return JuryVerdict(verdict=final, panel_verdict=panel, votes=votes, verifier=vote, high_consensus=consensus)


def test_only_the_sandbox_decides_when_the_task_has_tests():
    assert accepted(verdict("pass", "fail", "pass", False))
    assert not accepted(verdict("fail", "pass", "fail", True))  # a unanimous panel does not overrule the tests
    assert not accepted(verdict("pass", "pass", False, True))  # the sandbox abstained (no code): not accepted
    assert accepted(verdict("pass", "pass", None, True))  # no tests at all: a high-consensus panel decides
    assert not accepted(verdict("pass", "pass", None, False))


def test_own_answer_first_then_the_team_distilled():
    assert select_target({"cet": {"accepted": True}, "team": {"accepted": True}}) == "cet"
    assert select_target({"cet": {"accepted": False}, "team": {"accepted": True}}) == "team"
    assert select_target({"cet": {"accepted": False}, "team": {"accepted": False}}) is None
    records = [{"question_id": "b", "trained_on": "team", "prompt": [{"role": "user", "content": "q"}],
                "answers": {"team": {"text": "team answer"}, "cet": {"text": "x"}}},
               {"question_id": "a", "trained_on": None, "prompt": [], "answers": {}}]
    (example,) = training_examples(records)
    assert example["completion"] == [{"role": "assistant", "content": "team answer"}]


def _task(task_id: str, source: str, split: str, evaluation_only: bool = False) -> CodingTask:
    return CodingTask(id=task_id, language="python", statement="s", tests="def test_x():\n    pass\n",
                      test_names=["test_x"], metadata=TaskMetadata(source=source, split=split,
                                                                   evaluation_only=evaluation_only))


def test_training_never_sees_evaluation_tasks(tmp_path: Path):
    write_tasks([_task("e/1", "exercism", "train"), _task("e/2", "exercism", "test"),
                 _task("e/3", "exercism", "train", evaluation_only=True)], tmp_path / "exercism.jsonl")
    write_tasks([_task("h/1", "humaneval", "eval", evaluation_only=True)], tmp_path / "humaneval.jsonl")
    cfg = load_config(exec={"tasks_dir": str(tmp_path)})
    assert [t.id for t in load_tasks(cfg, TRAIN_SPLITS)] == ["e/1"]
    assert sorted(t.id for t in load_tasks(cfg, EVAL_SPLITS)) == ["e/2", "h/1"]
    with pytest.raises(CetError, match="refusing to train on evaluation tasks: h/1"):
        assert_trainable(load_tasks(cfg, EVAL_SPLITS, sets=("humaneval",)))
    with pytest.raises(CetError, match="no python tasks"):
        load_tasks(cfg, TRAIN_SPLITS, sets=("leetcode",))


def test_balanced_sampling_is_seeded_and_alternates_sources():
    tasks = [_task(f"a/{i}", "a", "train") for i in range(6)] + [_task(f"b/{i}", "b", "train") for i in range(2)]
    first = sample_balanced(tasks, 4, random.Random(7))
    assert first == sample_balanced(list(reversed(tasks)), 4, random.Random(7))
    assert [t.metadata.source for t in first] == ["a", "b", "a", "b"]
    assert len(sample_balanced(tasks, 20, random.Random(7))) == 8


def test_failure_report_reads_like_a_pasted_failing_run():
    task = make_task("from solution import add\n\ndef test_add():\n    assert add(2, 3) == 5\n\n"
                     "def test_zero():\n    assert add(0, 0) == 0\n", ["test_add", "test_zero"])
    result = Executor(exec_config("auto")).run(task, "def add(a, b):\n    return a - b\n")
    assert not result.passed
    report = failure_report(result)
    assert report.startswith("1 of 2 tests fail (failed).")
    assert "test_add: AssertionError" in report and "assert" in report
