"""The EngineeredContext text form: round trip, graceful parsing of what a small model really writes, rendering."""

from __future__ import annotations

from cet.model.context import EngineeredContext, KnowledgeRef, parse_context, render_prompt


def full_context() -> EngineeredContext:
    return EngineeredContext(
        goal="Return the n-th Fibonacci number.", interface=["def fib(n: int) -> int"],
        examples=["fib(0) == 0", "fib(10) == 55"], constraints=["n >= 0", "raise ValueError for negative n"],
        knowledge=[KnowledgeRef("abc123-0", "An iterative loop avoids the recursion limit.")],
        pitfalls=["off-by-one at n == 1"], failure="AssertionError: assert fib(1) == 1", suspects=["line 4: loop"],
        checks=["run fib(1) by hand"])


def test_round_trip_is_exact_and_valid():
    ctx = full_context()
    parsed = parse_context(ctx.to_text(), known_chunk_ids=["abc123-0"])
    assert parsed.context == ctx
    assert parsed.valid and parsed.issues == [] and parsed.sections == 9
    assert EngineeredContext.from_dict(ctx.to_dict()) == ctx


def test_prose_without_headings_is_kept_as_goal_and_reported():
    parsed = parse_context("Sure! Here is what you need: write a function that adds numbers.")
    assert not parsed.valid
    assert parsed.context.goal.startswith("Sure!")
    assert any("no known section" in issue for issue in parsed.issues)


def test_messy_reply_is_read_where_it_can_be():
    text = ("Some chatter first\n### Goal:\nAdd two numbers\n## Signature\n* def add(a, b)\n"
            "## Weird Section\nignored\n## Knowledge\n- [zzz-9] not retrieved\n- no id here\n- [abc-1] good quote\n"
            "## Examples\n1. add(1, 2) == 3\n   continued line\n## Goal\nagain")
    parsed = parse_context(text, known_chunk_ids=["abc-1"])
    ctx = parsed.context
    assert ctx.interface == ["def add(a, b)"]
    assert ctx.examples == ["add(1, 2) == 3 continued line"]
    assert ctx.knowledge == [KnowledgeRef("abc-1", "good quote")]
    issues = " | ".join(parsed.issues)
    for expected in ("unknown section", "not retrieved", "without a [chunk-id]", "repeated", "before the first"):
        assert expected in issues
    assert not parsed.valid


def test_empty_and_none_text_do_not_raise():
    for text in ("", "\n\n", "## Goal\n\n## Examples\n"):
        parsed = parse_context(text)
        assert not parsed.valid
    assert parse_context(None).context.is_empty()  # type: ignore[arg-type]


def test_render_prompt_carries_task_code_error_and_context():
    prompt = render_prompt("Write fib.", full_context(), code="def fib(n):\n    pass", error="Traceback ...")
    for part in ("Task:\nWrite fib.", "```python\ndef fib(n):", "Error report:\nTraceback", "## Interface",
                 "- [abc123-0] An iterative loop", "one ```python code block"):
        assert part in prompt
    bare = render_prompt("Write fib.", EngineeredContext())
    assert "Engineered context" not in bare
