"""Baselines the CET is measured against: naive RAG (the top retrieved chunks pasted as they are) and a
deterministic, hand-written context template that reads exactly what the CET reads (one `CETInput`: the cut task
text, interface, visible tests, optional code and error text, and the cut hits; never the hidden tests)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from cet.data.gold_context import chunk_quotes, input_entry_point
from cet.data.task_facts import (
    clean_item,
    clip,
    constraint_sentences,
    find_signatures,
    first_descriptive_sentence,
    safe_block,
    statement_examples,
    traceback_line_numbers,
)
from cet.knowledge.records import Hit
from cet.model.context import EngineeredContext, KnowledgeRef
from cet.model.prompts import CETInput

MAX_EXAMPLES = 4
MAX_CONSTRAINTS = 4
MAX_KNOWLEDGE = 2
MAX_SUSPECTS = 3
FAILURE_LINES = 15
QUOTE_CHARS = 160
RULE_CHECKS = ("reproduce the failing call", "check the expression on the suspect line")

_INTERFACE_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(?:interface|signature)\b", re.IGNORECASE)
_ANY_HEADING = re.compile(r"^\s{0,3}#{1,6}\s")
_FENCE = re.compile(r"^\s*(```|~~~)")


def naive_rag_text(hits: Sequence[Hit], k: int = 5, max_chars: int = 1200) -> str:
    """The top-k chunks concatenated, each as `[chunk-id] title` then its text (cut to `max_chars`)."""
    blocks = [f"[{hit.id}] {hit.title}".rstrip() + "\n" + hit.text[:max_chars].rstrip() for hit in hits[:k]]
    return "\n\n".join(blocks)


def interface_section_lines(statement: str) -> list[str]:
    """The code lines of the fenced blocks under an "Interface" or "Signature" heading (trailing colon dropped)."""
    lines: list[str] = []
    in_section = in_fence = False
    for line in statement.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence and _ANY_HEADING.match(line):
            in_section = bool(_INTERFACE_HEADING.match(line))
            continue
        if in_section and in_fence and line.strip() and not line.strip().startswith("#"):
            lines.append(clean_item(line.strip().rstrip(":").removesuffix(": ...").strip()))
    return lines


def rule_interface(statement: str, code: str | None = None) -> list[str]:
    """The signatures written in the statement and the code; else the Interface section's code lines."""
    found = find_signatures(statement) + (find_signatures(code) if code else [])
    found = [clean_item(line) for line in dict.fromkeys(found)]
    return found or interface_section_lines(statement)


def rule_knowledge(hits: Sequence[Hit], limit: int = MAX_KNOWLEDGE) -> list[KnowledgeRef]:
    """The top hits, each quoted by its first descriptive sentence (else its first sentence; never its title, which
    the CET's input does not quote)."""
    refs = []
    for hit in hits:
        if not hit.id or any(c.isspace() or c == "]" for c in hit.id):
            continue
        quote = first_descriptive_sentence(hit.text) or next(iter(chunk_quotes(hit.text)), "")
        if not quote:
            continue
        refs.append(KnowledgeRef(hit.id, clip(clean_item(quote), QUOTE_CHARS)))
        if len(refs) == limit:
            break
    return refs


def rule_suspects(error: str, code: str | None) -> list[str]:
    """The lines a traceback names, with the code's text for each when the code is given (and has that line)."""
    code_lines = code.splitlines() if code else None
    suspects = []
    for number in traceback_line_numbers(error):
        if code_lines is None:
            suspects.append(f"line {number}")
        elif 1 <= number <= len(code_lines) and code_lines[number - 1].strip():
            suspects.append(clean_item(f"line {number}: `{code_lines[number - 1].strip()}`"))
    return suspects[:MAX_SUSPECTS]


def rule_based_context(inp: CETInput) -> EngineeredContext:
    """A deterministic template filled from the CET's own input (`CETInput`: byte for byte what the CET reads):
    the first descriptive sentence, the signatures, the visible tests then the statement's own examples, its
    constraint sentences, the top two hits; for an error, its last 15 lines, the lines its traceback names and two
    stock checks."""
    entry_point = input_entry_point(inp)  # read from the input, as the CET must
    visible = [clean_item(line.strip().removeprefix("assert ")) for line in inp.visible_tests.splitlines()
               if line.strip()]
    examples = list(dict.fromkeys(visible + [clean_item(e) for e in statement_examples(inp.task, entry_point)]))
    context = EngineeredContext(
        goal=clean_item(first_descriptive_sentence(inp.task, entry_point)),
        interface=rule_interface(f"{inp.interface}\n{inp.task}", inp.code),
        examples=examples[:MAX_EXAMPLES],
        constraints=[clean_item(c) for c in constraint_sentences(inp.task, MAX_CONSTRAINTS, entry_point)],
        knowledge=rule_knowledge(inp.hits),
    )
    error, code = inp.error, inp.code
    if error and error.strip():
        lines = [line.rstrip() for line in error.strip().splitlines()]
        context.failure = safe_block("\n".join(lines[-FAILURE_LINES:]))
        last = next((line.strip() for line in reversed(lines) if line.strip()), "")
        context.pitfalls = [clip(clean_item(f"the current code fails with: {last}"), QUOTE_CHARS)]
        context.suspects = rule_suspects(error, code)
        context.checks = list(RULE_CHECKS)
    return context
