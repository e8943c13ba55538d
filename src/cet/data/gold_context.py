"""Gold contexts: the `EngineeredContext`s the CET learns to write, built from the whole task (its tests too, which
the CET never sees at inference): for a requirement (`gold_context`), a bug report (`debugging_context`) and a
piece of partial code (`completion_context`).

Every item is one line and cleaned of bullet or heading markers, so `context.to_text()` reads back with
`parse_context` to the same context.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from cet.data.task_facts import (
    TaskFacts,
    clean_item,
    clip,
    extract_facts,
    first_descriptive_sentence,
    safe_block,
    split_sentences,
    task_keywords,
    traceback_line_numbers,
    words_of,
)
from cet.execution.tasks import CodingTask
from cet.knowledge.records import Hit
from cet.model.context import EngineeredContext, KnowledgeRef

MAX_EXAMPLES = 4
MAX_CONSTRAINTS = 3
MAX_KNOWLEDGE = 2
MAX_PITFALLS = 3
QUOTE_CHARS = 160
FAILURE_CHARS = 600

_MODULE = re.compile(r"\bfrom\s+`([A-Za-z_]\w*\.py)`")
_EXAMPLE_SPLIT = re.compile(r"\s+(?:==|raises|->|is)\s+")
_EMPTY_INPUT = re.compile(r"(?<![\w'\"])(?:''|\"\"|\[\]|\{\}|set\(\))(?![\w'\"])")
_NEGATIVE = re.compile(r"(?:^|[(\[{,=:]\s*)-\s?\d")
_ZERO = re.compile(r"(?:^|[(\[{,=:]\s*)0(?![\w.])")
_EXCEPTION = re.compile(r"\braises\s+([A-Za-z_][\w.]*)(\()?")
_IMPORT = re.compile(r"^\s*(?:from\s+[\w.]+\s+import\s+.+|import\s+[\w., ]+)$")
_ASSERT_LINE = re.compile(r"^\s*(?:>\s+|E\s+)?(?:assert\b|AssertionError\b|\w+(?:Error|Exception)\b)")
_ASSERT_SOURCE = re.compile(r"^\s*>?\s*assert\s+(.+?)\s*$")
_FRAME = re.compile(r'^\s*File "[^"]+", line \d+|^[^\s:]+\.py:\d+:')
_WORD_GOAL = re.compile(r"[A-Za-z]{4,}")


def example_call(example: str) -> str:
    """The call of an example: `f(x)` of `f(x) == y`, `f(x) raises E` or `f(x) -> y`."""
    return _EXAMPLE_SPLIT.split(example, maxsplit=1)[0].strip()


def named_module(statement: str) -> str | None:
    """The solution file a statement names ("import these functions from `acronym.py`"), or None."""
    match = _MODULE.search(statement)
    return match.group(1) if match else None


def task_goal(task: CodingTask) -> str:
    """The first sentence of the statement that says what to do (at most 200 characters)."""
    return clean_item(first_descriptive_sentence(task.statement, task.entry_point))


def merge_examples(examples: Sequence[str], errors: Sequence[str], limit: int = MAX_EXAMPLES) -> list[str]:
    """Examples then errors, at most `limit` in all, keeping room for up to two errors when there are any."""
    room = min(len(errors), 2) if examples else min(len(errors), limit)
    chosen = list(examples[: limit - room])
    chosen += list(errors[: limit - len(chosen)])
    return [clean_item(item) for item in chosen if clean_item(item)]


def best_sentence(text: str, keywords: set[str], limit: int = QUOTE_CHARS) -> str:
    """The sentence of a chunk sharing the most words with the task (the earliest on a tie), cut to `limit`."""
    sentences = split_sentences(text) or [line for line in text.splitlines() if line.strip()]
    if not sentences:
        return ""
    best = max(enumerate(sentences), key=lambda pair: (len(keywords & words_of(pair[1])), -pair[0]))[1]
    return clip(clean_item(best), limit)


def knowledge_refs(task: CodingTask, hits: Sequence[Hit], chunk_ids: Sequence[str],
                   limit: int = MAX_KNOWLEDGE) -> list[KnowledgeRef]:
    """A `KnowledgeRef` for each of the first `limit` chunk ids among the hits, quoting its most relevant sentence."""
    by_id = {hit.id: hit for hit in hits}
    keywords = set(task_keywords(task)) | {w.lower() for w in _WORD_GOAL.findall(task_goal(task))}
    refs = []
    for chunk_id in chunk_ids:
        hit = by_id.get(chunk_id)
        if hit is None or not chunk_id or any(c.isspace() or c == "]" for c in chunk_id):
            continue
        refs.append(KnowledgeRef(chunk_id, best_sentence(hit.text, keywords)))
        if len(refs) == limit:
            break
    return refs


def example_pitfalls(examples: Sequence[str], errors: Sequence[str], limit: int = MAX_PITFALLS) -> list[str]:
    """Edge cases the examples show: an error to raise with its exact message, empty input, negative numbers, zero."""
    pitfalls: list[str] = []
    if errors:
        match = _EXCEPTION.search(errors[0])
        name = match.group(1) if match else "the exception"
        with_message = any(m.group(2) for m in map(_EXCEPTION.search, errors) if m)
        pitfalls.append(f"raise {name} with the exact message" if with_message else f"raise {name} for invalid input")
    calls = [example_call(e) for e in [*examples, *errors]]
    arguments = [call[call.find("(") :] if "(" in call else call for call in calls]
    if any(_EMPTY_INPUT.search(a) for a in arguments):
        pitfalls.append("handle empty input")
    if any(_NEGATIVE.search(a) for a in arguments):
        pitfalls.append("handle negative numbers")
    if any(_ZERO.search(a) for a in arguments):
        pitfalls.append("handle zero")
    return pitfalls[:limit]


def _interface(task: CodingTask, facts: TaskFacts) -> list[str]:
    interface = [clean_item(facts.signature)] if facts.signature else []
    module = named_module(task.statement)
    if module:
        interface.append(f"module: {module}")
    return interface


def gold_context(task: CodingTask, hits: Sequence[Hit] = (), facts: TaskFacts | None = None) -> EngineeredContext:
    """The context the CET should write for a task: goal, interface, examples and errors from the tests,
    constraints of the statement, quoted relevant knowledge and the edge cases the examples show."""
    facts = facts or extract_facts(task, hits)
    return EngineeredContext(
        goal=task_goal(task),
        interface=_interface(task, facts),
        examples=merge_examples(facts.examples, facts.errors),
        constraints=[clean_item(c) for c in facts.constraints[:MAX_CONSTRAINTS]],
        knowledge=knowledge_refs(task, hits, facts.relevant_chunk_ids, MAX_KNOWLEDGE),
        pitfalls=example_pitfalls(facts.examples, facts.errors),
    )


def trim_failure(text: str, limit: int = FAILURE_CHARS) -> str:
    """A failure report cut to about `limit` characters, keeping its first assertion line, the last traceback
    frame (and the two lines after it) and its last line; "..." marks what was left out."""
    lines = [line.rstrip() for line in str(text).strip().splitlines()]
    if len("\n".join(lines)) <= limit:
        return safe_block("\n".join(lines))
    asserts = [i for i, line in enumerate(lines) if _ASSERT_LINE.match(line)]
    frames = [i for i, line in enumerate(lines) if _FRAME.match(line)]
    priority = asserts[:1]
    if frames:
        priority += [frames[-1], frames[-1] + 1, frames[-1] + 2]
    priority += [*asserts[1:], len(lines) - 1]
    chosen: set[int] = set()
    total = 0
    for i in priority:
        if i in chosen or not 0 <= i < len(lines):
            continue
        cost = min(len(lines[i]), limit) + 1
        if chosen and total + cost > limit:
            continue
        chosen.add(i)
        total += cost
    out: list[str] = []
    previous = -1
    for i in sorted(chosen):
        if i > previous + 1:
            out.append("...")
        out.append(lines[i][:limit])
        previous = i
    return safe_block("\n".join(out))


def _failing_example(facts: TaskFacts, failure: str) -> tuple[str | None, str | None]:
    """(the failing call, the example it belongs to) read from an assertion in the failure text."""
    def key(text: str) -> str:
        return re.sub(r"\s+", "", text.replace('"', "'"))

    source = next((m.group(1) for m in map(_ASSERT_SOURCE.match, failure.splitlines()) if m), None)
    if source and facts.entry_point:
        source = re.sub(r"\bcandidate\(", f"{facts.entry_point.split('.')[-1]}(", source)
    known = [*facts.examples, *facts.errors]
    for example in known:
        if source and key(example_call(example)) in key(source):
            return example_call(example), example
    for example in known:
        if key(example_call(example)) in key(failure):
            return example_call(example), example
    if source:
        return example_call(source), known[0] if known else None
    return None, known[0] if known else None


def debugging_checks(facts: TaskFacts, failure: str, line: int | None) -> list[str]:
    """Two or three concrete checks: re-run the failing call, compare with an expected value, look near line N."""
    call, example = _failing_example(facts, failure)
    checks = [f"re-run the failing example: {call}" if call else "re-run the failing test and read its assertion"]
    if example:
        checks.append(f"compare the result with the expected value: {example}")
    if line:
        checks.append(f"check boundary conditions near line {line}")
    elif len(checks) < 2:
        checks.append("check boundary conditions: empty input, the first and the last element")
    return [clean_item(c) for c in checks]


def debugging_context(task: CodingTask, buggy_code: str, failure: str, mutation_line: int | None = None,
                      mutation_description: str | None = None, hits: Sequence[Hit] = ()) -> EngineeredContext:
    """The context for a bug report: what failed (cut to ~600 characters), the suspect line (`mutation_line` is
    1-based; without it the innermost traceback line inside the code) and the checks that find the fault."""
    facts = extract_facts(task, hits)
    code_lines = buggy_code.splitlines()
    line = mutation_line
    if line is None:
        line = next((n for n in traceback_line_numbers(failure) if 1 <= n <= len(code_lines)), None)
    suspects = []
    if line is not None and 1 <= line <= len(code_lines) and code_lines[line - 1].strip():
        suspects.append(clean_item(f"line {line}: `{code_lines[line - 1].strip()}`"))
    if mutation_description and clean_item(mutation_description):
        suspects.append(clean_item(mutation_description))
    name = task.entry_point or "the code"
    return EngineeredContext(
        goal=f"Fix {name} so that its tests pass",
        interface=[clean_item(facts.signature)] if facts.signature else [],
        knowledge=knowledge_refs(task, hits, facts.relevant_chunk_ids, 1),
        failure=trim_failure(failure),
        suspects=list(dict.fromkeys(suspects)),
        checks=debugging_checks(facts, failure, line),
    )


def describe_removed(removed: Sequence[str], limit: int = QUOTE_CHARS) -> str:
    """A short account of what was cut from the code: imports, decorators, definitions, lines."""
    parts: list[str] = []
    for piece in removed:
        lines = [line.strip() for line in piece.splitlines() if line.strip()]
        if not lines:
            continue
        first = lines[0]
        definition = re.search(r"\bdef\s+(\w+)", piece)
        if _IMPORT.match(first):
            parts.append(f"the import `{first}`")
        elif first.startswith("@") and definition:
            parts.append(f"the decorator `{first}` of `{definition.group(1)}`")
        elif first.startswith(("def ", "async def ")) and definition:
            parts.append(f"the signature of `{definition.group(1)}`" if len(lines) == 1 else
                         f"the definition of `{definition.group(1)}`")
        elif len(lines) > 1:
            parts.append(f"{len(lines)} lines from `{clip(first, 50)}`")
        else:
            parts.append(f"the line `{clip(first, 60)}`")
    return clip("; ".join(dict.fromkeys(parts)), limit)


def completion_context(task: CodingTask, partial_code: str, removed: Sequence[str],
                       hits: Sequence[Hit] = ()) -> EngineeredContext:
    """The context for partial code: complete the entry point, with the missing imports in the interface and the
    tests' examples (what exercises the code)."""
    facts = extract_facts(task, hits)
    present = {line.strip() for line in partial_code.splitlines()}
    imports = [line.strip() for piece in removed for line in piece.splitlines()
               if _IMPORT.match(line) and line.strip() not in present]
    interface = [clean_item(facts.signature)] if facts.signature else []
    interface += [clean_item(line) for line in dict.fromkeys(imports)]
    what = describe_removed(removed)
    return EngineeredContext(
        goal=f"Complete {task.entry_point or 'the code'}",
        interface=interface,
        examples=merge_examples(facts.examples, facts.errors),
        constraints=[clean_item(c) for c in facts.constraints[:MAX_CONSTRAINTS]],
        knowledge=knowledge_refs(task, hits, facts.relevant_chunk_ids, MAX_KNOWLEDGE),
        pitfalls=[clean_item(f"the code given is incomplete: {what}" if what else "the code given is incomplete")],
    )
