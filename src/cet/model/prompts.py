"""What the CET reads: the task (and code, error report) with the retrieved chunks, as chat messages."""

from __future__ import annotations

from collections.abc import Sequence
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
# What the CET reads is bounded in characters: training cost grows with every token (a step of 4 x 800 tokens
# takes ~30 s on 2 cores), and the chunks are pointers with a taste of their text, cited by id
TASK_CHARS = 1000
CHUNK_CHARS = 160


def chunk_lines(hits: Sequence[Any], chunk_chars: int = CHUNK_CHARS) -> str:
    """Retrieved chunks as `[chunk-id] title: text` lines (text cut), the ids the CET may cite."""
    lines = []
    for hit in hits:
        text = " ".join(str(getattr(hit, "text", "")).split())
        if len(text) > chunk_chars:
            text = text[:chunk_chars].rsplit(" ", 1)[0] + " …"
        title = str(getattr(hit, "title", "") or "")
        lines.append(f"[{hit.id}] {title}: {text}" if title else f"[{hit.id}] {text}")
    return "\n".join(lines) if lines else "(nothing retrieved)"


def context_messages(task: str, hits: Sequence[Any] = (), code: str | None = None, error: str | None = None,
                     chunk_chars: int = CHUNK_CHARS, task_chars: int = TASK_CHARS) -> list[dict[str, str]]:
    """The CET's input for engineering a context (chat format, as TRL and the tokenizer's template take it)."""
    parts = [f"Task:\n{_cut(task.strip(), task_chars)}"]
    if code:
        parts.append(f"Code:\n{code.rstrip()}")
    if error:
        parts.append(f"Error report:\n{error.strip()}")
    parts.append(f"Retrieved knowledge:\n{chunk_lines(hits, chunk_chars)}")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def answer_messages(question: str, hits: Sequence[Any] = (), chunk_chars: int = CHUNK_CHARS,
                    question_chars: int = TASK_CHARS) -> list[dict[str, str]]:
    """Phase 1: the CET (or a team model) answers a coding question grounded in the retrieved chunks."""
    question = _cut(question.strip(), question_chars)
    user = f"Question:\n{question}\n\nRetrieved knowledge:\n{chunk_lines(hits, chunk_chars)}"
    return [{"role": "system", "content": ANSWER_SYSTEM}, {"role": "user", "content": user}]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " […]"
