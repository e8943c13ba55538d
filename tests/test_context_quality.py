from __future__ import annotations

import pytest

from cet.data.task_facts import TaskFacts
from cet.evaluation.context_quality import (
    aggregate,
    api_known,
    compression,
    context_quality,
    grounding,
    information_preservation,
    mentioned_apis,
    noise_reduction,
    structure,
)
from cet.model.context import EngineeredContext, KnowledgeRef, parse_context

FACTS = TaskFacts(
    entry_point="fib",
    signature="def fib(n: int) -> int",
    parameters=["n"],
    examples=["fib(0) == 0", "fib(10) == 55"],
    errors=["fib(-1) raises ValueError('n must be >= 0')"],
    constraints=["The function must raise ValueError for negative input numbers."],
    relevant_chunk_ids=["exercism:fib#2"],
)
TASK = "Write fib(n) returning the n-th Fibonacci number. The function must raise ValueError for negative input."
NOISE = "Bananas are an excellent source of potassium and grow in tropical climates."


def _full_context() -> EngineeredContext:
    return EngineeredContext(
        goal="Return the n-th Fibonacci number.",
        interface=["def fib(n: int) -> int"],
        examples=["fib(0) == 0", "fib(10) == 55", "fib(-1) raises ValueError('n must be >= 0')"],
        constraints=["raise ValueError for negative input numbers"],
        knowledge=[KnowledgeRef("exercism:fib#2", "An iterative loop avoids the recursion limit.")],
    )


def test_preservation_full_context_scores_one():
    scores = information_preservation(_full_context(), FACTS)
    assert scores == {"signature": 1.0, "examples": 1.0, "constraints": 1.0, "knowledge": 1.0, "recall": 1.0}


def test_preservation_empty_context_scores_zero():
    scores = information_preservation(EngineeredContext(), FACTS)
    assert scores["recall"] == 0.0
    assert all(scores[f] == 0.0 for f in ("signature", "examples", "constraints", "knowledge"))


def test_preservation_missing_examples_scores_less():
    ctx = _full_context()
    ctx.examples = ["fib(0) == 0"]
    scores = information_preservation(ctx, FACTS)
    assert scores["examples"] == pytest.approx(1 / 3)
    assert scores["recall"] < 1.0


def test_preservation_details():
    # whitespace-normalised calls, expected literals anywhere, trivial values do not count
    facts = TaskFacts(entry_point="Image.convert", parameters=["self", "mode", "*args"],
                      examples=["convert('x') == 'PNG'", "f(3) == True"])
    ctx = EngineeredContext(interface=["class Image: def convert(self, mode)"],
                            goal="The result is always 'PNG'.", examples=["f( 3 )"])
    scores = information_preservation(ctx, facts)
    assert scores["signature"] == pytest.approx(0.5 + 0.5 * 0.5)  # entry point, 1 of 2 parameters
    assert scores["examples"] == 1.0
    assert scores["constraints"] is None and scores["knowledge"] is None
    assert scores["recall"] == pytest.approx((0.75 + 1.0) / 2)
    assert information_preservation(EngineeredContext(), TaskFacts())["recall"] is None
    assert information_preservation(EngineeredContext(goal="True"), TaskFacts(examples=["g(1) == True"]))[
        "examples"] == 0.0


def test_noise_reduction():
    copied = _full_context()
    copied.pitfalls = [NOISE]
    assert noise_reduction(copied, [NOISE]) == 0.0
    assert noise_reduction(_full_context(), [NOISE]) == 1.0
    assert noise_reduction(copied, [NOISE, "Quantum chromodynamics describes gluons binding quarks."]) == 0.5
    assert noise_reduction(_full_context(), []) is None


def test_compression_halves_with_half_output():
    text = "one two three four five six seven eight"
    assert compression(text, text) == 1.0
    assert compression("one two three four", text) == pytest.approx(0.5)
    assert compression("a b", "a, b") == pytest.approx(2 / 3)  # punctuation marks are tokens
    assert compression("x", "") is None
    assert compression("xx yy", "abcd", count_tokens=len) == pytest.approx(5 / 4)


def test_grounding_citations():
    ctx = _full_context()
    assert grounding(ctx, ["exercism:fib#2"], [TASK])["citations"] == 1.0
    ctx.knowledge.append(KnowledgeRef("made:up#1", "Something."))
    assert grounding(ctx, ["exercism:fib#2"], [TASK])["citations"] == 0.5
    assert grounding(EngineeredContext(), [], [TASK])["citations"] is None


def test_grounding_apis():
    ctx = EngineeredContext(
        interface=["def fib(n: int) -> int"],
        pitfalls=["use sorted(xs) and str.join, not frobnicate_list(xs)", "math.gcd helps; call out.append(x)",
                  "item(s) may repeat, e.g. twice; if(x) is not Python style; len(s)"],
        checks=["''.join(parts) then str.frobnicate(s)"],
    )
    names = mentioned_apis(ctx)
    assert "item" not in names and "if" not in names and "e.g" not in names
    result = grounding(ctx, [], [TASK])
    assert set(result["unknown_apis"]) == {"frobnicate_list", "str.frobnicate"}
    assert result["apis"] == pytest.approx(1 - 2 / len(names))
    for name in ("len", "sorted", "str.join", "math.gcd", ".join", "out.append", "fib"):
        assert name in names
    assert grounding(EngineeredContext(goal="No calls here."), [], [TASK])["apis"] is None


def test_api_known_rules():
    sources = {"frobnicate_list"}
    assert api_known("frobnicate_list", sources)
    assert not api_known("frobnicate_list", set())
    assert api_known("os.path.join", set()) and api_known("collections.Counter", set())
    assert not api_known("math.frobnicate", set())
    assert api_known("self.items.append", set()) and not api_known("self.frobnicate", set())
    assert api_known("self.frobnicate", {"frobnicate"})


def test_structure_and_context_quality_row():
    ctx = _full_context()
    parsed = parse_context(ctx.to_text())
    assert structure(parsed) == {"valid": True, "sections": 5, "issues": 0}
    assert structure(parse_context("just prose"))["valid"] is False
    row = context_quality(parsed, FACTS, TASK + " " + NOISE, ["exercism:fib#2"], [TASK], [NOISE])
    assert row["recall"] == 1.0 and row["preservation"]["examples"] == 1.0
    assert row["noise_reduction"] == 1.0
    assert row["grounding_citations"] == 1.0
    assert row["grounding_apis"] == 1.0 and row["unknown_apis"] == []
    assert row["structure_valid"] is True and row["sections"] == 5 and row["parse_issues"] == 0
    assert row["compression"] > 0


def test_aggregate():
    rows = [
        {"preservation": {"examples": 1.0, "knowledge": None}, "recall": 1.0, "noise_reduction": None,
         "structure_valid": True, "unknown_apis": ["x"]},
        {"preservation": {"examples": 0.0, "knowledge": None}, "recall": 0.5, "noise_reduction": None,
         "structure_valid": False, "unknown_apis": []},
        {"preservation": {"examples": 0.5, "knowledge": None}, "recall": None, "noise_reduction": 1.0,
         "structure_valid": True, "unknown_apis": []},
    ]
    summary = aggregate(rows)
    assert summary["recall"]["mean"] == pytest.approx(0.75) and summary["recall"]["n"] == 2
    assert summary["preservation.examples"]["mean"] == pytest.approx(0.5)
    low, high = summary["preservation.examples"]["ci95"]
    assert 0.0 <= low <= 0.5 <= high <= 1.0
    assert summary["structure_valid"]["mean"] == pytest.approx(2 / 3)
    assert summary["noise_reduction"] == {"mean": 1.0, "n": 1, "ci95": [1.0, 1.0]}
    assert summary["preservation.knowledge"] == {"mean": None, "n": 0, "ci95": None}
    assert "unknown_apis" not in summary
    assert aggregate([]) == {}
