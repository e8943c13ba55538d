"""Gold contexts: the `EngineeredContext`s the CET learns to write. Every target is built from what the CET can
see (a `CETInput`: the task text, its interface, its visible tests, the code, the error report and the retrieved
chunks), reorganised, selected and compressed, never from the hidden tests or the reference solution: for a
requirement (`selective_context`: only the facts worth pointing at, else nothing to add; `gold_context`: the whole
restated specification), a bug report (`debugging_context`) and a piece of partial code (`completion_context`).
The hidden tests may only decide which input facts come first (`important`: strings the hidden tests use, as
RECOMP trains its compressor on the end task); they never supply text. `untraceable` lists every example,
signature and constant of a context that the input does not hold (empty for every target; tested).

Every item is one line and cleaned of bullet or heading markers, so `context.to_text()` reads back with
`parse_context` to the same context.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Literal

from cet.data.task_facts import (
    TaskFacts,
    clean_item,
    clip,
    constraint_sentences,
    find_signatures,
    first_descriptive_sentence,
    normalize_space,
    plain_markdown,
    safe_block,
    signature_parameters,
    split_sentences,
    statement_examples,
    traceback_line_numbers,
    words_of,
)
from cet.model.context import EngineeredContext, KnowledgeRef
from cet.model.prompts import CETInput

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
_EXCEPTION = re.compile(r"\braises(?:\s+|\(\s*)([A-Za-z_][\w.]*)(\()?")
_ASSERT_LINE = re.compile(r"^\s*(?:>\s+|E\s+)?(?:assert\b|AssertionError\b|\w+(?:Error|Exception)\b)")
_ASSERT_SOURCE = re.compile(r"^\s*>?\s*assert\s+(.+?)\s*$")
_FRAME = re.compile(r'^\s*File "[^"]+", line \d+|^[^\s:]+\.py:\d+:')
_WORD_GOAL = re.compile(r"[A-Za-z]{4,}")
_NUMBER = re.compile(r"[-+]?\d[\d_.e+-]*")


def example_call(example: str) -> str:
    """The call of an example: `f(x)` of `f(x) == y`, `f(x) raises E` or `f(x) -> y`."""
    return _EXAMPLE_SPLIT.split(example, maxsplit=1)[0].strip()


def named_module(statement: str) -> str | None:
    """The solution file a statement names ("import these functions from `acronym.py`"), or None."""
    match = _MODULE.search(statement)
    return match.group(1) if match else None


def input_goal(inp: CETInput, entry_point: str | None = None) -> str:
    """The first sentence of the statement that says what to do (at most 200 characters)."""
    return clean_item(first_descriptive_sentence(inp.task, entry_point))


def _entry_name(entry_point: str | None) -> str | None:
    return entry_point.split(".")[-1] if entry_point else None


_DEF_NAME = re.compile(r"\bdef\s+([A-Za-z_]\w*)\s*\(")


_CALLED = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\s*\(")
_FENCED = re.compile(r"^\s*```[\w-]*\n(.*?)^\s*```", re.MULTILINE | re.DOTALL)


def stub_functions(text: str) -> list[str]:
    """The functions a text (Python, or markdown with fenced Python) declares without a body: only `...`, `pass`
    or a docstring."""
    import ast

    names: list[str] = []
    for block in [text, *_FENCED.findall(text)]:
        try:
            tree = ast.parse(block)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and all(
                    isinstance(stmt, ast.Pass) or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))
                    for stmt in node.body):
                names.append(node.name)
    return list(dict.fromkeys(names))


def input_entry_point(inp: CETInput) -> str | None:
    """The function the input asks for, read from the input alone (the CET is never told the entry point; neither
    is any target or template): among the functions the input defines or declares, the one its visible tests call
    first), else the interface's first `def`, else the first function the statement leaves without a body (a stub:
    `...`, `pass` or only a docstring), else the first `def` of the statement, the code."""
    defined = [n for text in (inp.interface, inp.task, inp.code or "") for n in _DEF_NAME.findall(text)
               if not n.startswith("_")]
    if not defined:
        return None
    called = [n for n in _CALLED.findall(inp.visible_tests) if n in defined]
    if called:
        return called[0]
    declared = [n for n in _DEF_NAME.findall(inp.interface) if not n.startswith("_")]
    if declared:
        return declared[0]
    stubs = [n for n in stub_functions(inp.task) if n in defined]
    return stubs[0] if stubs else defined[0]


def input_keywords(inp: CETInput, entry_point: str | None = None) -> set[str]:
    """The input's salient words: the entry point's parts, the first heading's words and the goal's long words."""
    words = set(re.split(r"[_.]|(?<=[a-z])(?=[A-Z])", entry_point or ""))
    heading = next((line.lstrip("#").strip() for line in inp.task.splitlines() if line.startswith("#")), "")
    if not heading.lower().startswith(("instructions", "introduction", "description")):
        words |= set(re.split(r"[^A-Za-z0-9]+", heading))
    words |= set(_WORD_GOAL.findall(input_goal(inp, entry_point)))
    return {w.lower() for w in words if len(w) >= 4}


def _visible_lines(inp: CETInput) -> list[str]:
    lines = [line.strip() for line in inp.visible_tests.splitlines() if line.strip()]
    return [clean_item(line.removeprefix("assert ").strip()) for line in lines]


def input_facts(inp: CETInput) -> TaskFacts:
    """The facts a context may state, read from the input alone: the signatures it writes (the entry point's
    first), the visible tests and the statement's own examples (errors apart), its constraint sentences, and the
    chunks that share a salient word with it."""
    entry_point = input_entry_point(inp)
    name = _entry_name(entry_point)
    signatures = [clean_item(s) for s in dict.fromkeys(
        find_signatures(inp.interface) + find_signatures(inp.task) + (find_signatures(inp.code) if inp.code else []))]
    signatures.sort(key=lambda s: not (name and re.search(rf"\bdef {re.escape(name)}\(", s)))
    written = [clean_item(e) for e in statement_examples(inp.task, entry_point)]
    shown = list(dict.fromkeys(_visible_lines(inp) + written))
    errors = [e for e in shown if _EXCEPTION.search(e)]
    keywords = input_keywords(inp, entry_point)
    relevant = [h.id for h in inp.hits if keywords & words_of(f"{h.title} {h.text}")] or [h.id for h in inp.hits[:1]]
    return TaskFacts(
        entry_point=entry_point, signature=signatures[0] if signatures else None,
        parameters=signature_parameters(signatures[0], entry_point) if signatures else [],
        examples=[e for e in shown if e not in errors], errors=errors,
        constraints=constraint_sentences(inp.task, MAX_CONSTRAINTS * 2, entry_point),
        relevant_chunk_ids=list(dict.fromkeys(relevant)),
    )


MAX_CHOICES = 24  # per section: the grammar stays small, and no target needs more


def chunk_quotes(text: str, limit: int = QUOTE_CHARS) -> list[str]:
    """The sentences of a chunk as a knowledge line may quote them (`best_sentence` picks one of these)."""
    sentences = split_sentences(text) or [line for line in text.splitlines() if line.strip()]
    return [q for q in dict.fromkeys(clip(clean_item(s), limit) for s in sentences) if q]


def section_choices(inp: CETInput) -> dict[str, list[str]]:
    """What each section may hold, copied from the input (or, for pitfalls, derived from its examples by fixed
    rules): the goal (one of the statement's first sentences), signatures (and the module the statement names), the
    visible tests and the statement's examples and errors, its constraint sentences, the edge-case pitfalls its
    examples show, and each chunk's sentences as `[chunk-id] quote`. Constrained decoding makes the CET pick from
    these (it selects and orders, it cannot invent); every target picks from them too."""
    facts = input_facts(inp)
    signatures = [clean_item(s) for s in dict.fromkeys(
        find_signatures(inp.interface) + find_signatures(inp.task) + (find_signatures(inp.code) if inp.code else []))]
    module = named_module(inp.task)
    interface = signatures + ([f"module: {module}"] if module else [])
    citable = [hit for hit in inp.hits if hit.id and not any(c.isspace() or c == "]" for c in hit.id)]
    knowledge = [f"[{hit.id}] {quote}" for hit in citable for quote in chunk_quotes(hit.text)[:4]]
    sentences = [clean_item(x) for x in split_sentences(inp.task, facts.entry_point)[:6]]
    choices = {
        "goal": [input_goal(inp, facts.entry_point), *[clip(x, 200) for x in sentences]],
        "interface": interface, "examples": facts.examples + facts.errors,
        "constraints": [clean_item(c) for c in facts.constraints],
        "pitfalls": [*inp.playbook, *example_pitfalls(facts.examples, facts.errors, limit=MAX_CHOICES)],
        "knowledge": knowledge,
    }
    return {name: [item for item in dict.fromkeys(items) if item][:MAX_CHOICES] for name, items in choices.items()}


def rank_by_importance(items: Sequence[str], important: Collection[str]) -> list[str]:
    """The items holding more of the `important` strings first (stable otherwise): the hidden tests may decide
    which input facts matter, never what they say."""
    if not important:
        return list(items)
    squashed = [normalize_space(s).lower() for s in important if len(normalize_space(s)) >= 1]

    def score(item: str) -> int:
        text = normalize_space(item).lower()
        return sum(1 for s in squashed if s and s in text)

    return sorted(items, key=lambda item: -score(item))


def merge_examples(examples: Sequence[str], errors: Sequence[str], limit: int = MAX_EXAMPLES) -> list[str]:
    """Examples then errors, at most `limit` in all, keeping room for up to two errors when there are any."""
    room = min(len(errors), 2) if examples else min(len(errors), limit)
    chosen = list(examples[: limit - room])
    chosen += list(errors[: limit - len(chosen)])
    return [clean_item(item) for item in chosen if clean_item(item)]


def best_sentence(text: str, keywords: set[str], limit: int = QUOTE_CHARS) -> str:
    """The quote of a chunk (of its first four, see `chunk_quotes`) sharing the most words with the task (the
    earliest on a tie)."""
    quotes = chunk_quotes(text, limit)[:4]
    if not quotes:
        return ""
    return max(enumerate(quotes), key=lambda pair: (len(keywords & words_of(pair[1])), -pair[0]))[1]


def knowledge_refs(inp: CETInput, chunk_ids: Sequence[str], limit: int = MAX_KNOWLEDGE) -> list[KnowledgeRef]:
    """A `KnowledgeRef` for each of the first `limit` chunk ids among the input's hits, quoting the sentence of the
    chunk's (cut) text most relevant to the input."""
    by_id = {hit.id: hit for hit in inp.hits}
    keywords = input_keywords(inp, input_entry_point(inp))
    refs = []
    for chunk_id in chunk_ids:
        hit = by_id.get(chunk_id)
        if hit is None or not chunk_id or any(c.isspace() or c == "]" for c in chunk_id):
            continue
        quote = best_sentence(hit.text, keywords)
        if quote:
            refs.append(KnowledgeRef(chunk_id, quote))
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


def _interface(inp: CETInput, facts: TaskFacts) -> list[str]:
    interface = [facts.signature] if facts.signature else []
    module = named_module(inp.task)
    if module:
        interface.append(f"module: {module}")
    return interface


def gold_context(inp: CETInput, important: Collection[str] = ()) -> EngineeredContext:
    """The context the CET should write for a requirement, from its input alone: the goal, the signature, the
    visible tests and the statement's examples and errors, its constraints (those holding what the hidden tests
    use first), quoted relevant knowledge and the edge cases the examples show."""
    facts = input_facts(inp)
    examples = rank_by_importance(facts.examples, important)
    errors = rank_by_importance(facts.errors, important)
    return EngineeredContext(
        goal=input_goal(inp, facts.entry_point),
        interface=_interface(inp, facts),
        examples=merge_examples(examples, errors),
        constraints=[clean_item(c) for c in rank_by_importance(facts.constraints, important)[:MAX_CONSTRAINTS]],
        knowledge=knowledge_refs(inp, facts.relevant_chunk_ids),
        pitfalls=example_pitfalls(examples, errors),
    )


def selective_context(inp: CETInput, important: Collection[str] = ()) -> EngineeredContext:
    """The statement's facts worth pointing at: its own examples and constraints that hold a value the hidden tests
    use and the visible tests do not show, and the pitfalls those examples show. The generator reads the whole
    statement anyway, so this adds emphasis, not information; the filter that matters is "not already in the
    visible tests". Empty (written `NOTHING_TO_ADD`) when no input fact qualifies. The hidden tests only decide
    which of the input's facts qualify; every item is the input's own text, as in `gold_context`."""
    shown = normalize_space(inp.visible_tests).lower()
    novel = [s for s in dict.fromkeys(normalize_space(x).lower() for x in important)
             if len(s) >= 2 and not _holds(shown, s)]
    if not novel:
        return EngineeredContext()
    facts = input_facts(inp)
    visible = set(_visible_lines(inp))

    def unseen_and_used(items: Sequence[str], values: Sequence[str]) -> list[str]:
        return [i for i in items if i not in visible and any(_holds(normalize_space(i).lower(), s) for s in values)]

    examples, errors = unseen_and_used(facts.examples, novel), unseen_and_used(facts.errors, novel)
    # a constraint qualifies by a word or string the tests use, not by a bare number ("1 <= n <= 10^4" holds "10")
    words = [s for s in novel if not _NUMBER.fullmatch(s)]
    constraints = [clean_item(c) for c in unseen_and_used(facts.constraints, words)][:MAX_CONSTRAINTS]
    merged = merge_examples(rank_by_importance(examples, novel), rank_by_importance(errors, novel))
    return EngineeredContext(examples=merged, constraints=constraints, pitfalls=example_pitfalls(examples, errors))


def _holds(text: str, value: str) -> bool:
    """`value` occurs in `text` as a whole literal (not "1" inside "10", not "in" inside "print")."""
    return re.search(rf"(?<![\w.]){re.escape(value)}(?![\w])", text) is not None


def requirement_context(inp: CETInput, important: Collection[str],
                        kind: Literal["selective", "full"] = "selective") -> EngineeredContext:
    """Phase 2's requirement target of the configured kind (`cet.requirement_targets`)."""
    if kind not in ("selective", "full"):
        raise ValueError(f"requirement target kind {kind!r}: choose 'selective' or 'full'")
    return selective_context(inp, important) if kind == "selective" else gold_context(inp, important)


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


def debugging_context(inp: CETInput, mutation_line: int | None = None) -> EngineeredContext:
    """The context for a bug report (`inp.code`, `inp.error`): what failed (cut to ~600 characters), the suspect
    line and the checks that find the fault. `mutation_line` (1-based) may come from outside the input (where the
    fault was planted): it only chooses which of the code's lines is quoted; without it the innermost traceback
    line inside the code."""
    facts = input_facts(inp)
    code_lines = (inp.code or "").splitlines()
    failure = inp.error or ""
    line = mutation_line
    if line is None:
        line = next((n for n in traceback_line_numbers(failure) if 1 <= n <= len(code_lines)), None)
    suspects = []
    if line is not None and 1 <= line <= len(code_lines) and code_lines[line - 1].strip():
        suspects.append(clean_item(f"line {line}: `{code_lines[line - 1].strip()}`"))
    name = _entry_name(facts.entry_point) or "the code"
    return EngineeredContext(
        goal=f"Fix {name} so that its tests pass",
        interface=[facts.signature] if facts.signature else [],
        knowledge=knowledge_refs(inp, facts.relevant_chunk_ids, 1),
        failure=trim_failure(failure),
        suspects=suspects,
        checks=debugging_checks(facts, failure, line),
    )


def undefined_names(code: str) -> list[str]:
    """Names the code calls but neither defines, imports, assigns nor gets from builtins (what is missing)."""
    import ast
    import builtins

    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    defined = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
    called = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    return [name for name in dict.fromkeys(called) if name not in defined]


def completion_context(inp: CETInput, important: Collection[str] = ()) -> EngineeredContext:
    """The context for partial code (`inp.code`): complete the entry point, with the signatures, the visible tests
    and the statement's examples (what exercises the code), and the names the code uses but does not define."""
    facts = input_facts(inp)
    missing = undefined_names(inp.code or "")
    pitfalls = [clean_item(f"`{name}` is used but not defined or imported") for name in missing[:MAX_PITFALLS]]
    return EngineeredContext(
        goal=f"Complete {_entry_name(facts.entry_point) or 'the code'}",
        interface=[facts.signature] if facts.signature else [],
        examples=merge_examples(rank_by_importance(facts.examples, important),
                                rank_by_importance(facts.errors, important)),
        constraints=[clean_item(c) for c in rank_by_importance(facts.constraints, important)[:MAX_CONSTRAINTS]],
        knowledge=knowledge_refs(inp, facts.relevant_chunk_ids),
        pitfalls=pitfalls or ["the code given is incomplete"],
    )


# ---------------------------------------------------------------------------------------------------------------
# Traceability: what a context states must be in its input


_LITERAL = re.compile(r"'[^']*'|\"[^\"]*\"|(?<![\w.])-?\d+(?:\.\d+)?(?![\w])")
_DERIVED_PITFALLS = frozenset({"handle empty input", "handle negative numbers", "handle zero",
                               "the code given is incomplete"})


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", str(text).replace("`", "").replace('"', "'"))


def _both_forms(text: str) -> str:
    """The text squashed, as written and with its markdown made plain (the extractors make links, emphasis and
    <sub> tags plain): a fact found in either counts as traceable."""
    return _squash(text) + "\n" + _squash(plain_markdown(text))


def untraceable(context: EngineeredContext, inp: CETInput) -> list[str]:
    """The items of `context` its input does not hold: an interface line, example, constraint or quote that is not
    a copy of input text (whitespace, backticks and quote style aside), a literal (number or string) of the goal,
    pitfalls, suspects or checks that the input never writes, a cited chunk that was not given. Empty means every
    fact is traceable to the input."""
    haystack = _both_forms(inp.render())
    by_id = {h.id: _both_forms(h.text) for h in inp.hits}
    missing: list[str] = []
    for item in context.interface:
        # a class's methods are written on one line, joined by "; "
        pieces = [p.strip().rstrip(":") for p in re.split(r"; |: (?=def )", item.removeprefix("module: "))]
        if not all(_squash(p) in haystack for p in pieces if p):
            missing.append(f"interface: {item}")
    for field_name in ("examples", "constraints"):
        for item in getattr(context, field_name):
            # an example is traceable when each side of it is (a doctest's call and its output sit on two lines)
            splitter = r"^Input: | -> Output: |\.\.\.|…| == | raises | -> " if field_name == "examples" else r"\.\.\.|…"
            pieces = [p for p in re.split(splitter, item) if p.strip()]
            if not all(_squash(p) in haystack for p in pieces):
                missing.append(f"{field_name}: {item}")
    for ref in context.knowledge:
        chunk = by_id.get(ref.chunk_id)
        pieces = [p for p in re.split(r"\.\.\.|…", ref.quote) if p.strip()]
        if chunk is None or not all(_squash(p) in chunk for p in pieces):
            missing.append(f"knowledge: [{ref.chunk_id}] {ref.quote}")
    free = [context.goal, context.failure, *context.pitfalls, *context.suspects, *context.checks]
    for text in free:
        if text in _DERIVED_PITFALLS:
            continue
        for literal in _LITERAL.findall(text):
            if _squash(literal) not in haystack and _squash(literal.strip("'\"")) not in haystack:
                missing.append(f"literal {literal} in: {clip(text, 80)}")
    return missing


def restrict_to_input(context: EngineeredContext, inp: CETInput, fallback: EngineeredContext) -> EngineeredContext:
    """`context` with every item `inp` does not hold removed (a degraded input keeps what survived of the clean
    statement's context); the goal is `fallback`'s when the clean goal is not in the input."""
    missing = set(untraceable(context, inp))
    haystack = _both_forms(inp.render())

    def keep(field_name: str, items: Sequence[str]) -> list[str]:
        return [item for item in items if f"{field_name}: {item}" not in missing]

    examples = keep("examples", context.examples)
    errors = [e for e in examples if _EXCEPTION.search(e)]
    shown = set(example_pitfalls([e for e in examples if e not in errors], errors, limit=len(context.pitfalls) + 3))
    return EngineeredContext(
        goal=context.goal if _squash(context.goal) in haystack else fallback.goal,
        interface=keep("interface", context.interface),
        examples=examples,
        constraints=keep("constraints", context.constraints),
        knowledge=[k for k in context.knowledge if f"knowledge: [{k.chunk_id}] {k.quote}" not in missing],
        # a pitfall stays only while an example that shows it does
        pitfalls=[p for p in context.pitfalls if p in shown],
    )
