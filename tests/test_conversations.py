"""Synthetic conversations: near-duplicates, diversity measures, what Phase 2 reads of them, training tasks only."""

from __future__ import annotations

import numpy as np
import pytest

from cet.data.conversations import _copies, distinct_n, drop_near_duplicates, embedding_spread, trainable
from cet.errors import CetError
from cet.execution.tasks import CodingTask, TaskMetadata
from cet.phases.phase2 import verified_solutions


def record(ask: str, task_id: str = "exercism/add", solution: str | None = None) -> dict:
    return {"task_id": task_id, "messages": [{"role": "user", "content": ask}], "solution": solution}


def task(task_id: str, split: str, evaluation_only: bool = False) -> CodingTask:
    return CodingTask(id=task_id, language="python", statement="Add.", tests="def test_x():\n    pass\n",
                      metadata=TaskMetadata(source="exercism", split=split, evaluation_only=evaluation_only))


def test_near_duplicate_asks_are_dropped_and_counted() -> None:
    records = [record("can you write me something that adds two numbers together for my app please"),
               record("can you write me something that adds two numbers together for my app please now"),
               record("I need a function to reverse a string, quickly")]
    kept, dropped = drop_near_duplicates(records, 0.8)
    assert dropped == 1 and [r["messages"][0]["content"] for r in kept] == [records[0]["messages"][0]["content"],
                                                                           records[2]["messages"][0]["content"]]
    assert drop_near_duplicates(records, 1.01)[1] == 0  # a threshold past 1 drops nothing


def test_diversity_measures() -> None:
    assert distinct_n(["a b a b"], 1) == 0.5 and distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n([""], 2) is None
    same = np.array([[1.0, 0.0], [2.0, 0.0]])
    assert embedding_spread(same) == pytest.approx(0.0)
    assert embedding_spread(np.array([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(1.0)
    assert embedding_spread(same[:1]) is None


def test_a_copied_statement_is_no_vague_ask() -> None:
    statement = "Given a number n, determine what the nth prime is. By listing the first six prime numbers."
    assert _copies(statement, statement)
    assert not _copies("hey, how do I get the n-th prime?", statement)


def test_conversations_use_training_tasks_only_and_phase2_reads_only_verified_code() -> None:
    tasks = [task("a", "train"), task("b", "dev"), task("c", "test"), task("d", "train", evaluation_only=True)]
    assert [t.id for t in trainable(tasks)] == ["a"]
    from cet.data.conversations import make_conversations

    with pytest.raises(CetError, match="no training task"):
        make_conversations([tasks[2]], None, None, None, 3)  # type: ignore[arg-type]
    records = [record("x", "a", solution=None), record("y", "a", solution="def add(a, b):\n    return a + b\n"),
               record("z", "c", solution="def f(): pass\n")]
    found = verified_solutions(records, {t.id: t for t in tasks[:1]})
    assert [(t.id, code.startswith("def add")) for t, code in found] == [("a", True)]


def test_phase2_reads_a_real_failing_first_attempt_as_a_bug_report() -> None:
    from cet.config import CetConfig
    from cet.phases.phase2 import conversation_bug_pairs

    add = CodingTask(id="exercism/add", language="python", statement="Add two numbers.", entry_point="add",
                     tests="from solution import add\n\n\ndef test_one():\n    assert add(1, 2) == 3\n",
                     test_names=["test_one"], metadata=TaskMetadata(source="exercism", split="train"))
    failing = {"code": "def add(a, b):\n    return a - b\n", "verdict": {"passed": False},
               "report": "1 of 1 tests fail (failed).\ntest_one: AssertionError: assert -1 == 3"}
    records = [{"task_id": "exercism/add", "first_attempt": failing},
               {"task_id": "exercism/add", "first_attempt": failing},  # the same attempt twice: one pair
               {"task_id": "exercism/add", "first_attempt": {**failing, "verdict": {"passed": True}}},
               {"task_id": "humaneval/0", "first_attempt": failing}]  # not a training task given
    (bug,) = conversation_bug_pairs(records, {"exercism/add": add}, None, CetConfig())
    assert bug["kind"] == "bug" and bug["origin"] == "conversation" and bug["code"].strip() == failing["code"].strip()
    assert "assert -1 == 3" in bug["error"] and "## Failure" in bug["target"]
