"""What the CET reads: the task (and code, error report) with its interface, its visible tests and the retrieved
chunks, cut to a token budget, as one `CETInput`; and the chat messages built from it.

The cut keeps the parts that matter first, not a character prefix: the interface (signature or stub), the
visible tests, the code and the error report within their shares of the budget, then the statement's Interface /
Signature section, its first paragraph, its Examples / Constraints / Input / Output sections and the rest, and the
chunks share what is left. Kept statement units are shown in their original order, so the text still reads as
written. The CET, the rule-based template and the "full input" condition all read the same `CETInput`: byte for
byte the same input.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

SYSTEM = (
    "You are a context engineer. You do not write the solution. From the developer's input and the retrieved "
    "knowledge, write the context a code-writing model needs, with these sections: ## Goal, ## Interface, "
    "## Examples, ## Constraints, ## Knowledge (lines '- [chunk-id] quote'), ## Pitfalls; for a bug report also "
    "## Failure, ## Suspects, ## Check. Use only facts from the input; cite chunks by their id."
)
ANSWER_SYSTEM = (
    "You are a careful programming expert. Answer the question using the retrieved knowledge where it helps; "
    "give code in one ```python block, defining exactly the functions (names and parameters) the question asks "
    "for, without example usage."
)
# What the CET reads is bounded in tokens: training cost grows with every token (a step of 4 x 800 tokens takes
# ~30 s on 2 cores). Shares of the budget each part may take at most, before the statement takes what is left.
INPUT_TOKENS = 768
SHARES = {"interface": 0.2, "visible_tests": 0.25, "code": 0.3, "error": 0.2, "chunks": 0.3}
CHUNK_TOKENS = 60  # per chunk, at most: chunks are pointers with a taste of their text, cited by id
# kept for Phase 1's answers, which read a question and chunks, not a CETInput
TASK_CHARS = 1000
CHUNK_CHARS = 160

_PIECE = re.compile(r"[A-Za-z]+|\d+|[^\sA-Za-z\d]")
_PRIORITY_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*(interface|signature|examples?|constraints?|input|output|note)\b",
                               re.IGNORECASE)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s")
_FENCE = re.compile(r"^\s*(```|~~~)")

TokenCounter = Callable[[str], int]


def approx_tokens(text: str) -> int:
    """A tokenizer-free count close to a BPE's on code and English: runs of letters, runs of digits and single
    symbols each count one (identifiers split at `_`). Deterministic, so a cut is the same on every machine."""
    return len(_PIECE.findall(text))


@dataclass(frozen=True)
class CETInput:
    """Everything the CET reads for one request, already cut to its budget."""

    task: str  # the statement (its kept units)
    interface: str = ""  # the signature or stub the developer gave
    visible_tests: str = ""  # the visible test cases, one per line
    code: str | None = None
    error: str | None = None
    hits: tuple[Any, ...] = ()  # the retrieved chunks, their text cut (knowledge.records.Hit)
    cut: dict[str, int] = field(default_factory=dict)  # tokens dropped, by part (empty: nothing was cut)
    # Phase 3's playbook items that match this task (data/playbook.py): pitfalls seen on training tasks like it.
    # Empty for every CET before Phase 3, and then the rendered input is exactly what it was without them
    playbook: tuple[str, ...] = ()

    def chunk_ids(self) -> list[str]:
        return [h.id for h in self.hits]

    def render(self) -> str:
        """The user message: what the CET reads, and what the "full input" condition pastes."""
        parts = [f"Task:\n{self.task.strip()}"]
        if self.interface.strip():
            parts.append(f"Interface:\n{self.interface.strip()}")
        if self.visible_tests.strip():
            parts.append(f"Visible tests:\n{self.visible_tests.strip()}")
        if self.code:
            parts.append(f"Code:\n{self.code.rstrip()}")
        if self.error:
            parts.append(f"Error report:\n{self.error.strip()}")
        if self.playbook:
            parts.append("Playbook (pitfalls seen on similar tasks):\n" + "\n".join(f"- {p}" for p in self.playbook))
        parts.append(f"Retrieved knowledge:\n{chunk_lines(self.hits, None)}")
        return "\n\n".join(parts)

    def text_for_tracing(self) -> str:
        """Every piece of text the CET was given (what a target may copy from)."""
        return self.render()


def _units(statement: str) -> list[tuple[str, bool]]:
    """The statement as units (paragraphs, fenced blocks, headings) with a flag: in a priority section."""
    units: list[tuple[str, bool]] = []
    current: list[str] = []
    in_fence = priority = False

    def flush() -> None:
        if current and any(line.strip() for line in current):
            units.append(("\n".join(current).strip("\n"), priority))
        current.clear()

    for line in statement.splitlines():
        if _FENCE.match(line):
            if not in_fence:
                flush()
            current.append(line)
            in_fence = not in_fence
            if not in_fence:
                flush()
            continue
        if in_fence:
            current.append(line)
            continue
        if _HEADING.match(line):
            flush()
            priority = bool(_PRIORITY_HEADING.match(line))
            units.append((line.strip(), priority))
            continue
        if not line.strip():
            flush()
            continue
        current.append(line)
    flush()
    return units


def cut_text(text: str, budget: int, count: TokenCounter = approx_tokens) -> str:
    """`text` cut at a word boundary to about `budget` tokens ("…" marks the cut)."""
    if count(text) <= budget:
        return text
    words = text.split(" ")
    lo, hi = 0, len(words)
    while lo < hi:  # the longest prefix of words within the budget
        mid = (lo + hi + 1) // 2
        if count(" ".join(words[:mid])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return (" ".join(words[:lo]).rstrip() + " …") if lo else ""


def _tier(units: Sequence[tuple[str, bool]], i: int, first_prose: int | None) -> int:
    """0: the Interface / Signature section; 1: the first paragraph; 2: other priority sections (examples,
    constraints, input / output); 3: the rest."""
    text, priority = units[i]
    if priority:
        heading = next((units[j][0] for j in range(i, -1, -1) if _HEADING.match(units[j][0])), "")
        return 0 if re.search(r"interface|signature", heading, re.IGNORECASE) else 2
    return 1 if i == first_prose else 3


def cut_statement(statement: str, budget: int, count: TokenCounter = approx_tokens) -> str:
    """The statement's units kept by priority (the Interface / Signature section, the first paragraph, the other
    priority sections, the rest; each tier in order) within `budget` tokens, shown in their original order; a
    prose unit that does not fit whole is cut to what is left, a code block that does not fit is left out."""
    units = _units(statement)
    first_prose = next((i for i, (text, p) in enumerate(units) if not p and not _HEADING.match(text)
                        and not _FENCE.match(text)), None)
    order = sorted(range(len(units)), key=lambda i: (_tier(units, i, first_prose), i))
    kept: dict[int, str] = {}
    left = budget
    for i in order:
        text = units[i][0]
        cost = count(text)
        if cost <= left:
            kept[i] = text
            left -= cost
        elif left > 12 and not _FENCE.match(text) and not _HEADING.match(text):
            kept[i] = cut_text(text, left, count)
            left -= count(kept[i])
    return "\n\n".join(kept[i] for i in sorted(kept) if kept[i])


def _cut_lines(text: str, budget: int, count: TokenCounter) -> str:
    """Whole lines from the start within `budget` tokens."""
    out: list[str] = []
    used = 0
    for line in text.splitlines():
        cost = count(line) + 1
        if used + cost > budget and out:
            break
        out.append(line if used + cost <= budget else cut_text(line, budget - used, count))
        used += cost
    return "\n".join(out)


def build_input(task: str, hits: Sequence[Any] = (), *, interface: str = "", visible_tests: str = "",
                code: str | None = None, error: str | None = None, budget: int = INPUT_TOKENS,
                count: TokenCounter = approx_tokens, chunk_tokens: int = CHUNK_TOKENS) -> CETInput:
    """Cut everything the CET may read to `budget` tokens, the parts that matter first (see the module doc)."""
    from cet.data.gold_context import trim_failure  # the failure's assertion and last frame survive the cut

    cut: dict[str, int] = {}

    def fit(name: str, text: str, share: float, lines: bool = True) -> str:
        limit = max(16, int(budget * share))
        kept = _cut_lines(text, limit, count) if lines else cut_text(text, limit, count)
        if kept != text:
            cut[name] = count(text) - count(kept)
        return kept

    interface = fit("interface", interface.strip(), SHARES["interface"]) if interface else ""
    visible = fit("visible_tests", visible_tests.strip(), SHARES["visible_tests"]) if visible_tests else ""
    code_kept = fit("code", code.rstrip(), SHARES["code"]) if code else None
    error_kept = None
    if error:
        trimmed = trim_failure(error, limit=int(budget * SHARES["error"] * 3))
        error_kept = fit("error", trimmed, SHARES["error"])
        if error_kept != error.strip():
            cut["error"] = count(error) - count(error_kept)
    used = sum(count(t) for t in (interface, visible, code_kept or "", error_kept or ""))
    chunk_budget = min(int(budget * SHARES["chunks"]), chunk_tokens * len(hits))
    statement_budget = max(32, budget - used - chunk_budget)
    statement = cut_statement(task.strip(), statement_budget, count)
    if statement != task.strip():
        cut["task"] = count(task) - count(statement)
    left = max(0, budget - used - count(statement))
    per_chunk = min(chunk_tokens, left // max(1, len(hits))) if hits else 0
    kept_hits = []
    for hit in hits:
        text = " ".join(str(hit.text).split())
        short = cut_text(text, per_chunk, count) if per_chunk > 0 else ""
        if short != text:
            cut["chunks"] = cut.get("chunks", 0) + count(text) - count(short)
        kept_hits.append(replace(hit, text=short))
    return CETInput(statement, interface, visible, code_kept, error_kept, tuple(kept_hits), cut)


def chunk_lines(hits: Sequence[Any], chunk_chars: int | None = CHUNK_CHARS) -> str:
    """Retrieved chunks as `[chunk-id] title: text` lines (text cut to `chunk_chars` unless None), the ids the CET
    may cite."""
    lines = []
    for hit in hits:
        text = " ".join(str(getattr(hit, "text", "")).split())
        if chunk_chars is not None and len(text) > chunk_chars:
            text = text[:chunk_chars].rsplit(" ", 1)[0] + " …"
        title = str(getattr(hit, "title", "") or "")
        lines.append(f"[{hit.id}] {title}: {text}" if title else f"[{hit.id}] {text}")
    return "\n".join(lines) if lines else "(nothing retrieved)"


def input_messages(inp: CETInput) -> list[dict[str, str]]:
    """The CET's chat messages for a `CETInput` (as TRL and the tokenizer's chat template take them)."""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": inp.render()}]


def context_messages(task: str, hits: Sequence[Any] = (), code: str | None = None, error: str | None = None,
                     *, interface: str = "", visible_tests: str = "", budget: int = INPUT_TOKENS
                     ) -> list[dict[str, str]]:
    """The CET's input for engineering a context, cut to `budget` tokens (see `build_input`)."""
    return input_messages(build_input(task, hits, interface=interface, visible_tests=visible_tests, code=code,
                                      error=error, budget=budget))


def answer_messages(question: str, hits: Sequence[Any] = (), chunk_chars: int = CHUNK_CHARS,
                    question_chars: int = TASK_CHARS) -> list[dict[str, str]]:
    """Phase 1: the CET (or a team model) answers a coding question grounded in the retrieved chunks."""
    question = _cut(question.strip(), question_chars)
    user = f"Question:\n{question}\n\nRetrieved knowledge:\n{chunk_lines(hits, chunk_chars)}"
    return [{"role": "system", "content": ANSWER_SYSTEM}, {"role": "user", "content": user}]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " […]"
