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


def _tasks_dir(where, tasks: list[CodingTask]) -> None:
    where.mkdir(parents=True, exist_ok=True)
    (where / "exercism.jsonl").write_text("".join(t.model_dump_json() + "\n" for t in tasks))


def _arith(name: str, op: str, split: str = "train") -> CodingTask:
    import operator

    apply = {"+": operator.add, "-": operator.sub, "*": operator.mul, "//": operator.floordiv}[op]
    cases = [(1, 2), (0, 1), (5, 3), (2, 2)]
    tests = f"from solution import {name}\n\n" + "".join(
        f"\ndef test_{i}():\n    assert {name}({a}, {b}) == {apply(a, b)}\n" for i, (a, b) in enumerate(cases))
    return CodingTask(id=f"exercism/{name}", language="python", statement=f"Return a {op} b.", entry_point=name,
                      tests=tests, test_names=[f"test_{i}" for i in range(len(cases))],
                      metadata=TaskMetadata(source="exercism", split=split))


def test_phase3_mines_the_conversations_failing_first_attempts_into_the_playbook(tmp_path) -> None:
    from cet.config import CetConfig
    from cet.data.playbook import Playbook
    from cet.phases.phase3 import conversation_failures
    from cet.phases.playbook_mining import failure_delta

    tasks = [_arith("add", "+"), _arith("sub", "-"), _arith("mul", "*"), _arith("div", "//", split="test")]
    _tasks_dir(tmp_path / "tasks", tasks)
    cfg = CetConfig.model_validate({"exec": {"tasks_dir": str(tmp_path / "tasks"), "visible_tests": 1}})

    def conv(name: str, code: str) -> dict:
        return {"task_id": f"exercism/{name}", "first_attempt": {"code": code},
                "provenance": {"models": {"generator": ["qwen2.5-coder-0.5b-instruct"]}}}

    records = [conv("add", "def add(a, b):\n    print(a + b)\n"), conv("sub", "def sub(a, b):\n    print(a - b)\n"),
               conv("sub", "def sub(a, b):\n    print(a - b)\n"),  # the same attempt twice: run once
               conv("add", "def add(a, b):\n    return a + b\n"),  # a first attempt that passed: a rollout too
               conv("mul", "def mul(a, b):\n    print(a * b)\n"),  # a dev task: early stopping's, left out
               conv("div", "def div(a, b):\n    print(a // b)\n")]  # an evaluation task: never read
    seeds = conversation_failures(cfg, records, {"exercism/mul"}, ("exercism",))
    assert conversation_failures(cfg, records[4:], {"exercism/mul"}, ("exercism",)) == []  # nothing to run
    assert sorted((r["task_id"], r["passed"], r["pattern"]) for r in seeds) == [
        ("exercism/add", False, "printed"), ("exercism/add", True, "passed"), ("exercism/sub", False, "printed")]
    assert all(r["round"] == 0 and r["candidate"] == "conversation" and not r["items"] for r in seeds)
    assert all(r["generator"] == "qwen2.5-coder-0.5b-instruct" for r in seeds)
    delta = failure_delta(seeds, Playbook())
    assert [item["pattern"] for item in delta["add"]] == ["printed"]  # two failures of a catalogued pattern


def test_phase1_asks_the_conversations_tasks_first_as_their_vague_asks() -> None:
    import random

    from cet.config import CetConfig
    from cet.llm.team import Team
    from cet.phases.phase1 import conversation_asks, conversation_plan, write_questions

    pool = [_arith("add", "+"), _arith("sub", "-"), _arith("mul", "*")]
    records = [record("hey, summing two things?", "exercism/sub"), record("a later ask", "exercism/sub"),
               record("not in the pool", "exercism/div"), {"task_id": "exercism/mul", "messages": []}]
    asks = conversation_asks(records, pool)
    assert asks == {"exercism/sub": "hey, summing two things?"}
    plan = conversation_plan(pool, asks, 2, random.Random(0))
    assert plan[0].id == "exercism/sub" and len(plan) == 2 and len({t.id for t in plan}) == 2
    from cet.phases.common import sample_balanced

    assert [t.id for t in conversation_plan(pool, {}, 2, random.Random(7))] == \
        [t.id for t in sample_balanced(pool, 2, random.Random(7))]  # no conversations: the draw as before
    with Team(CetConfig()) as team:  # no rewording asked for: no model is opened
        questions = write_questions(team, plan, 0, 0.0, random.Random(0), 1, asks)
    by_id = {q.task.id: q for q in questions}
    assert by_id["exercism/sub"].origin == "conversation" and by_id["exercism/sub"].id == "exercism/sub#conversation"
    assert by_id["exercism/sub"].text.startswith("hey, summing two things?") and "## Interface" in \
        by_id["exercism/sub"].text
    assert all(q.origin == "dataset" for q in questions if q.task.id != "exercism/sub")


def test_the_conversations_file_is_checked_and_the_playbook_seeded_once(tmp_path) -> None:
    import json

    from cet.config import CetConfig
    from cet.data.playbook import Playbook
    from cet.phases.common import read_conversations
    from cet.phases.phase3 import CONVERSATION_ROLLOUTS, PLAYBOOK_DIR, seeded_playbook
    from cet.runs import RunDir

    with pytest.raises(CetError, match="not found"):
        read_conversations(tmp_path / "missing.jsonl")
    phase1_shape = tmp_path / "phase1.jsonl"  # Phase 1's own conversations: another shape
    phase1_shape.write_text(json.dumps({"question_id": "q", "answers": []}) + "\n")
    with pytest.raises(CetError, match="no synthetic conversation"):
        read_conversations(phase1_shape)
    attempt = {"code": "def add(a, b):\n    print(a + b)\n"}
    lines = [json.dumps({"task_id": "exercism/add", "messages": [{"role": "user", "content": "add?"}],
                         "first_attempt": attempt}),
             "{cut off", json.dumps(["not", "a", "record"]),
             json.dumps({"task_id": "exercism/sub", "messages": [{"role": "user", "content": "sub?"}],
                         "first_attempt": {"code": "def sub(a, b):\n    print(a - b)\n"}}),
             json.dumps({"task_id": "exercism/add", "messages": "not a list", "first_attempt": attempt})]
    path = tmp_path / "conversations.jsonl"
    path.write_text("\n".join(lines) + "\n")
    records, skipped = read_conversations(path)
    assert [r["task_id"] for r in records] == ["exercism/add", "exercism/sub"] and skipped == 3

    _tasks_dir(tmp_path / "tasks", [_arith("add", "+"), _arith("sub", "-")])
    cfg = CetConfig.model_validate({"exec": {"tasks_dir": str(tmp_path / "tasks"), "visible_tests": 1},
                                    "run": {"runs_dir": str(tmp_path / "runs")}})
    run = RunDir(cfg, "phase3")
    state: dict = {}
    seeded = seeded_playbook(cfg, str(path), run, state, Playbook(), set(), ("exercism",))
    assert [i.pattern for i in seeded.items.values()] == ["printed"] and state["steps"]["r0"]["conversations"] == 1
    assert state["conversation_rollouts"] == {"conversations": 2, "skipped_records": 3, "rollouts": 2, "failed": 2}
    assert len((run.path / CONVERSATION_ROLLOUTS).read_text().splitlines()) == 2
    later = seeded.apply({"evidence": {next(iter(seeded.items)): {"failures": 1}}})  # a later round's version
    assert later.version == seeded.version + 1
    later.save(run.path / PLAYBOOK_DIR)
    (run.path / CONVERSATION_ROLLOUTS).unlink()
    again = seeded_playbook(cfg, str(path), run, state, later, set(), ("exercism",))
    assert again is later and not (run.path / CONVERSATION_ROLLOUTS).exists()  # marked done: nothing mined again
