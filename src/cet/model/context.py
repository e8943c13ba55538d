"""The CET's output: an `EngineeredContext`, its text form, its parser and the generator prompt it renders.

The CET writes the context as a short sectioned text (a 135M model keeps headings far more reliably
than JSON), one `## Heading` per field, list fields as `- ` bullets, knowledge as `- [chunk-id] quote`:

    ## Goal
    Return the n-th Fibonacci number.
    ## Interface
    - def fib(n: int) -> int
    ## Examples
    - fib(0) == 0
    - fib(10) == 55
    ## Constraints
    - n >= 0; raise ValueError for negative n
    ## Knowledge
    - [exercism:fib#2] An iterative loop avoids the recursion limit.
    ## Pitfalls
    - off-by-one at n == 1
    ## Failure
    AssertionError: assert fib(1) == 1 (got 0)
    ## Suspects
    - the loop bound in line 4
    ## Check
    - run fib(1) and fib(2) by hand

Every heading is optional; the bug-report fields (failure, suspects, check) appear only for bug
reports. A context may be empty on purpose: the reply `## Nothing to add` (`NOTHING_TO_ADD`, alone) says the
input needs nothing beyond the task as given, and the generator then gets the raw task, byte for byte (a
failed or unreadable reply is never read as this: it has no heading, or other sections with it).
`parse_context` never raises: what it cannot read is reported in `ParsedContext.issues`, and a reply with
no known heading at all keeps its text as the goal (so the generator still sees it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1
NOTHING_TO_ADD = "## Nothing to add"  # the whole reply of a context that is empty on purpose


@dataclass(frozen=True)
class KnowledgeRef:
    """A piece of retrieved knowledge the context relies on: the chunk's id in the knowledge base and a quote."""

    chunk_id: str
    quote: str


@dataclass
class EngineeredContext:
    goal: str = ""
    interface: list[str] = field(default_factory=list)  # signatures, inputs and outputs
    examples: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)  # constraints and edge cases
    knowledge: list[KnowledgeRef] = field(default_factory=list)
    pitfalls: list[str] = field(default_factory=list)
    failure: str = ""  # bug reports: what failed, and how
    suspects: list[str] = field(default_factory=list)  # bug reports: where the fault probably is
    checks: list[str] = field(default_factory=list)  # bug reports: what to check

    def is_empty(self) -> bool:
        return not any(getattr(self, name) for name in FIELDS)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineeredContext:
        values = {name: data.get(name) for name in FIELDS if data.get(name) is not None}
        values["knowledge"] = [KnowledgeRef(**k) if isinstance(k, dict) else k for k in values.get("knowledge", [])]
        return cls(**values)

    def to_text(self) -> str:
        """The sectioned text form: what the CET is trained to write and what `parse_context` reads ("" when
        empty; `to_reply` writes an empty context as `NOTHING_TO_ADD`)."""
        lines: list[str] = []
        for name in FIELDS:
            value = getattr(self, name)
            if not value:
                continue
            lines.append(f"## {HEADINGS[name]}")
            if name == "knowledge":
                lines += [f"- [{k.chunk_id}] {_one_line(k.quote)}" for k in value]
            elif isinstance(value, list):
                lines += [f"- {_one_line(item)}" for item in value]
            else:
                lines.append(value.strip())
        return "\n".join(lines)

    def to_reply(self) -> str:
        """What the CET writes for this context: its text form, or `NOTHING_TO_ADD` when it is empty."""
        return self.to_text() or NOTHING_TO_ADD

    def cited_chunk_ids(self) -> list[str]:
        return [k.chunk_id for k in self.knowledge]


FIELDS = ("goal", "interface", "examples", "constraints", "knowledge", "pitfalls", "failure", "suspects", "checks")
LIST_FIELDS = frozenset({"interface", "examples", "constraints", "knowledge", "pitfalls", "suspects", "checks"})
HEADINGS = {"goal": "Goal", "interface": "Interface", "examples": "Examples", "constraints": "Constraints",
            "knowledge": "Knowledge", "pitfalls": "Pitfalls", "failure": "Failure", "suspects": "Suspects",
            "checks": "Check"}
ALIASES = {
    "goal": "goal", "objective": "goal", "task": "goal", "summary": "goal",
    "interface": "interface", "specification": "interface", "spec": "interface", "signature": "interface",
    "signatures": "interface", "interface / specification": "interface",
    "examples": "examples", "example": "examples", "tests": "examples",
    "constraints": "constraints", "constraints and edge cases": "constraints", "edge cases": "constraints",
    "knowledge": "knowledge", "relevant knowledge": "knowledge", "references": "knowledge",
    "pitfalls": "pitfalls", "pitfall": "pitfalls",
    "failure": "failure", "error": "failure",
    "suspects": "suspects", "suspect": "suspects",
    "check": "checks", "checks": "checks", "what to check": "checks",
}
_HEADING = re.compile(r"^\s{0,3}#{1,4}\s*(.+?)\s*:?\s*$")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_KNOWLEDGE = re.compile(r"^\[([^\]\s]+)\]\s*(.*)$")


@dataclass
class ParsedContext:
    """What `parse_context` read: the context, and every problem it met (empty when the text was well formed)."""

    context: EngineeredContext
    issues: list[str] = field(default_factory=list)
    sections: int = 0  # known headings found (`NOTHING_TO_ADD` counts as one)
    nothing_to_add: bool = False  # the reply said, and only said, that nothing needs adding

    @property
    def valid(self) -> bool:
        return not self.issues and self.sections > 0


def parse_context(text: str, known_chunk_ids: Iterable[str] | None = None) -> ParsedContext:
    """Read the sectioned text form. Never raises: unknown headings, repeated sections, knowledge lines
    without a `[chunk-id]` and citations of chunks that were not retrieved are reported, and skipped."""
    known = set(known_chunk_ids) if known_chunk_ids is not None else None
    ctx = EngineeredContext()
    issues: list[str] = []
    current: str | None = None
    seen: set[str] = set()
    preamble: list[str] = []
    body: dict[str, list[str]] = {}
    lines = (text or "").splitlines()
    if [line.strip() for line in lines if line.strip()] == [NOTHING_TO_ADD]:
        return ParsedContext(ctx, [], 1, nothing_to_add=True)
    for raw in lines:
        heading = _HEADING.match(raw)
        if heading:
            name = ALIASES.get(heading.group(1).strip().lower().rstrip(":"))
            if name is None:
                issues.append(f"unknown section {heading.group(1).strip()!r}")
                current = "_unknown"
                continue
            if name in seen:
                issues.append(f"section {HEADINGS[name]!r} repeated (merged)")
            seen.add(name)
            current = name
            body.setdefault(name, [])
            continue
        if current is None:
            if raw.strip():
                preamble.append(raw.strip())
        elif current != "_unknown":
            body[current].append(raw)
    if preamble and seen:
        issues.append("text before the first section (ignored)")
    for name, lines in body.items():
        if name in LIST_FIELDS:
            items = _items(lines)
            if name == "knowledge":
                ctx.knowledge = _knowledge(items, known, issues)
            else:
                getattr(ctx, name).extend(items)
        else:
            setattr(ctx, name, "\n".join(line.rstrip() for line in lines).strip())
    if not seen:
        issues.append("no known section heading: the whole reply is kept as the goal")
        ctx.goal = "\n".join(preamble).strip()
    elif ctx.is_empty():
        issues.append("every section is empty")
    return ParsedContext(ctx, issues, len(seen))


def _items(lines: Sequence[str]) -> list[str]:
    """Bullets as items; a line that is not a bullet continues the item before it (or starts one)."""
    items: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        if _BULLET.match(line) or not items:
            items.append(_BULLET.sub("", line).strip())
        else:
            items[-1] = f"{items[-1]} {line.strip()}"
    return [item for item in items if item]


def _knowledge(items: Sequence[str], known: set[str] | None, issues: list[str]) -> list[KnowledgeRef]:
    refs = []
    for item in items:
        match = _KNOWLEDGE.match(item)
        if not match:
            issues.append(f"knowledge line without a [chunk-id]: {item[:60]!r}")
            continue
        chunk_id, quote = match.group(1), match.group(2).strip()
        if known is not None and chunk_id not in known:
            issues.append(f"cites chunk {chunk_id!r}, which was not retrieved (dropped)")
            continue
        refs.append(KnowledgeRef(chunk_id, quote))
    return refs


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


GENERATOR_SYSTEM = "You are an expert programmer. Write correct, complete code."  # every generator call's system turn


def render_prompt(task: str, context: EngineeredContext | None = None, *, code: str | None = None,
                  error: str | None = None, language: str = "python") -> str:
    """The generator's user message: the task as given, then the engineered context (when there is one)."""
    parts = [f"Task:\n{task.strip()}"]
    if code:
        parts.append(f"Code so far:\n```{language}\n{code.rstrip()}\n```")
    if error:
        parts.append(f"Error report:\n{error.strip()}")
    if context is not None and not context.is_empty():
        parts.append(f"Engineered context (use it; it was prepared for this task):\n{context.to_text()}")
    parts.append(f"Write the complete {language} solution in one ```{language} code block.")
    return "\n\n".join(parts)
