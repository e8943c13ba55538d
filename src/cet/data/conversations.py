"""Synthetic developer conversations grounded in real training tasks, every claim of working code checked.

Each conversation is built in turns by the LLM team and the sandbox, on one training task:

    user       a vague first ask: the question writer rewrites the task's statement the way a developer first asks
               (short, names and edge cases left out); the task's own statement, degraded, when the writer fails
    assistant  one clarifying question (the generator, seeing only the ask)
    user       the clarification: the task's real statement, interface and visible tests (grounded, not invented)
    assistant  a first attempt (the generator's code), run in the sandbox on the task's tests
    user       when it fails: the sandbox's failure report, as a developer would paste it
    assistant  the fix (the generator again, with the failure), run in the sandbox

`claims_working_code` is true when the last assistant turn offers code; `verified` is the sandbox's verdict on that
code, so a claim is never taken on trust. Diversity is measured on the set (distinct n-grams, the embedding spread
of the asks) after near-duplicate asks are removed (word 5-gram Jaccard >= `near_duplicate`).

The output is JSON Lines that `datasets.load_dataset("json", ...)` reads: `messages` in the chat format, with
provenance (task, source, licence, models, seed, the sandbox's verdicts). How the phases use it (docs/data.md):
Phase 2 reads verified conversations as solutions (`cet train phase2 --conversations FILE`: partial-code and
bug-report pairs) and their real failing first attempts with the sandbox's report as bug reports
(`phase2.conversation_bug_pairs`); Phase 1 asks their tasks first, as their vague asks (`cet train phase1
--conversations FILE`); Phase 3 mines their first attempts, re-run in the sandbox, into the playbook's failure
patterns (`cet train phase3 --conversations FILE`); `cet train sft` reads the `prompt` and `completion` pairs each
record also carries (the clarified request and the verified code).
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cet.data.degradations import degrade
from cet.data.leakage import tokens
from cet.errors import CetError
from cet.execution.executor import Executor
from cet.execution.failures import failure_report
from cet.execution.result import ExecutionResult
from cet.execution.tasks import CodingTask
from cet.execution.test_split import split_tests
from cet.llm.base import Message
from cet.llm.jury import extract_code
from cet.llm.team import Request, Team

ASK_SYSTEM = ("You turn programming tasks into the first message a developer would type to a coding assistant: one "
              "or two casual sentences, vague, leaving out names, formats and edge cases. Write only that message.")
CLARIFY_SYSTEM = ("You are a coding assistant. The request is vague: ask the developer exactly one short clarifying "
                  "question about what matters most. Do not write code yet.")
CODE_SYSTEM = "You are a coding assistant. Answer with the complete Python code in one ```python block."
ASK_PROMPT = ("Programming task:\n\n{task}\n\nWrite the first, vague message a developer would send a coding "
              "assistant about this (at most two short sentences, no code, no details).")
FIX_PROMPT = "I ran it and the tests fail:\n\n{report}\n\nPlease fix it."
MAX_ASK_CHARS = 300
SHINGLE = 5


@dataclass(frozen=True)
class ConversationOptions:
    near_duplicate: float = 0.8  # word 5-gram Jaccard of two asks past which the later is a near-duplicate
    max_tokens: int = 384
    temperature: float = 0.8  # the writer's: varied asks
    seed: int = 0
    model: str | None = None  # the writer and coder (default: the team's question_writer and generator roles)


@dataclass
class _Draft:
    task: CodingTask
    ask: str = ""
    ask_origin: str = "writer"
    question: str = ""
    clarification: str = ""
    first_code: str | None = None
    first: ExecutionResult | None = None
    fix_code: str | None = None
    fix: ExecutionResult | None = None


def trainable(tasks: Sequence[CodingTask]) -> list[CodingTask]:
    """Training tasks only (split train): never an evaluation-only task, a held-out split, nor the dev split Phase 3
    keeps apart for early stopping."""
    return [t for t in tasks if t.metadata.split == "train" and not t.metadata.evaluation_only]


def make_conversations(tasks: Sequence[CodingTask], team: Team, executor: Executor, opts: ConversationOptions,
                       visible_tests: int, on_step: Callable[[str], None] = lambda _: None) -> list[dict[str, Any]]:
    """One conversation per task (in order), as records for the JSON Lines file."""
    tasks = trainable(tasks)
    if not tasks:
        raise CetError("no training task to ground conversations in (held-out and evaluation tasks are never used)")
    drafts = [_Draft(t) for t in tasks]
    writer = team.params(max_tokens=96, temperature=opts.temperature, seed=opts.seed)
    on_step(f"conversations: {len(drafts)} vague asks")
    asks = team.map("question_writer", [Request([Message("system", ASK_SYSTEM), Message("user", ASK_PROMPT.format(
        task=d.task.statement))], writer, model=opts.model) for d in drafts])
    for draft, reply in zip(drafts, asks, strict=True):
        text = (reply.text or "").strip().strip('"')
        if reply.error or not text or len(text) > MAX_ASK_CHARS or _copies(text, draft.task.statement):
            rng = random.Random(f"{opts.seed}:{draft.task.id}")
            draft.ask, draft.ask_origin = degrade(_first_sentence(draft.task.statement), "ambiguous", rng), \
                "degraded statement"
        else:
            draft.ask = text
        split = split_tests(draft.task, visible_tests)
        parts = [draft.task.statement.strip()]
        if draft.task.signature:
            parts.append(f"It should look like: {draft.task.signature}")
        if split.visible_text:
            parts.append(f"These should pass:\n{split.visible_text}")
        draft.clarification = "\n\n".join(parts)
    greedy = team.params(max_tokens=opts.max_tokens, temperature=0.0)
    on_step(f"conversations: {len(drafts)} clarifying questions")
    questions = team.map("generator", [Request([Message("system", CLARIFY_SYSTEM), Message("user", d.ask)],
                                               team.params(max_tokens=64, temperature=0.0), model=opts.model)
                                       for d in drafts])
    for draft, reply in zip(drafts, questions, strict=True):
        draft.question = (reply.text or "").strip() or "Could you say more about what it should do exactly?"
    on_step(f"conversations: {len(drafts)} first attempts")
    attempts = team.map("generator", [Request(_messages(d, upto="attempt"), greedy, model=opts.model)
                                      for d in drafts])
    for draft, reply in zip(drafts, attempts, strict=True):
        draft.first_code = extract_code(reply.text or "", draft.task.entry_point, draft.task.language)
    _run(executor, [(d, "first") for d in drafts if d.first_code])
    failing = [d for d in drafts if d.first is not None and not d.first.passed]
    on_step(f"conversations: {len(failing)} fixes")
    fixes = team.map("generator", [Request(_messages(d, upto="fix"), greedy, model=opts.model) for d in failing])
    for draft, reply in zip(failing, fixes, strict=True):
        draft.fix_code = extract_code(reply.text or "", draft.task.entry_point, draft.task.language)
    _run(executor, [(d, "fix") for d in failing if d.fix_code])
    models = {"question_writer": [opts.model] if opts.model else team.models_for("question_writer"),
              "generator": [opts.model] if opts.model else team.models_for("generator")}
    return [_record(d, models, opts) for d in drafts]


def _copies(ask: str, statement: str) -> bool:
    """Whether the writer copied the statement instead of asking vaguely (half its 5-grams are the statement's)."""
    own = _shingles(ask)
    return bool(own) and len(own & _shingles(statement)) / len(own) >= 0.5


def _first_sentence(statement: str) -> str:
    prose = [line.strip() for line in statement.splitlines() if line.strip() and not line.lstrip().startswith(
        ("#", "```", "-", "*", ">", "|"))]
    text = " ".join(prose) or statement
    return text.split(". ")[0].rstrip(".") + "."


def _run(executor: Executor, pairs: list[tuple[_Draft, str]]) -> None:
    codes = [d.first_code if which == "first" else d.fix_code for d, which in pairs]
    for (draft, which), result in zip(pairs, executor.run_many((d.task, c or "") for (d, _), c in
                                                                zip(pairs, codes, strict=True)), strict=True):
        setattr(draft, which, result)


def _fenced(code: str) -> str:
    return f"```python\n{code.strip()}\n```"


def _messages(draft: _Draft, upto: str) -> list[Message]:
    out = [Message("system", CODE_SYSTEM), Message("user", draft.ask), Message("assistant", draft.question),
           Message("user", draft.clarification)]
    if upto == "fix":
        out += [Message("assistant", _fenced(draft.first_code or "")),
                Message("user", FIX_PROMPT.format(report=failure_report(draft.first)))]  # type: ignore[arg-type]
    return out


def _verdict(result: ExecutionResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {"passed": result.passed, "exit_reason": str(result.exit_reason),
            "tests": f"{result.tests.passed}/{result.tests.total}" if result.tests else None}


def _record(draft: _Draft, models: dict[str, list[str]], opts: ConversationOptions) -> dict[str, Any]:
    task = draft.task
    messages = [{"role": "user", "content": draft.ask}, {"role": "assistant", "content": draft.question},
                {"role": "user", "content": draft.clarification}]
    shape = ["vague-ask", "clarifying-question", "clarification"]
    final_code, final = draft.first_code, draft.first
    if draft.first_code:
        messages.append({"role": "assistant", "content": _fenced(draft.first_code)})
        shape.append("attempt")
    if draft.first is not None and not draft.first.passed:
        messages.append({"role": "user", "content": FIX_PROMPT.format(report=failure_report(draft.first))})
        shape.append("sandbox-failure")
        if draft.fix_code:
            messages.append({"role": "assistant", "content": _fenced(draft.fix_code)})
            shape.append("fix")
            final_code, final = draft.fix_code, draft.fix
    passed = bool(final and final.passed)
    digest = hashlib.sha256(repr(messages).encode()).hexdigest()[:12]
    record: dict[str, Any] = {
        "id": f"conv-{task.id}-{digest}", "task_id": task.id, "messages": messages, "shape": shape,
        "claims_working_code": final_code is not None, "verified": _verdict(final),
        "first_attempt": {"code": draft.first_code, "verdict": _verdict(draft.first),
                          "report": failure_report(draft.first) if draft.first and not draft.first.passed else None},
        "solution": final_code if passed else None,  # what Phase 2 reads as a verified solution
        "trained_on": "synthetic-conversation",
        "prompt": messages[:3], "completion": [messages[-1]] if passed else [],
        "provenance": {"task_source": task.metadata.source, "task_split": task.metadata.split,
                       "licence": task.metadata.licence, "url": task.metadata.url, "ask": draft.ask_origin,
                       "models": models, "seed": opts.seed, "created": time.time()},
    }
    return record


# ----------------------------------------------------------------------------------------------------- diversity


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = tokens(text)
    return {tuple(words[i:i + SHINGLE]) for i in range(max(1, len(words) - SHINGLE + 1))} if words else set()


def drop_near_duplicates(records: Sequence[dict[str, Any]], threshold: float) -> tuple[list[dict[str, Any]], int]:
    """The records whose first ask is not a near-duplicate of an earlier kept one, and how many were dropped."""
    kept: list[dict[str, Any]] = []
    seen: list[set[tuple[str, ...]]] = []
    for record in records:
        shingles = _shingles(record["messages"][0]["content"])
        if any(len(shingles & other) / max(1, len(shingles | other)) >= threshold for other in seen):
            continue
        kept.append(record)
        seen.append(shingles)
    return kept, len(records) - len(kept)


def distinct_n(texts: Sequence[str], n: int) -> float | None:
    """Distinct n-grams over all n-grams of the texts (words), the usual dist-n."""
    grams = [tuple(words[i:i + n]) for words in (tokens(t) for t in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def embedding_spread(vectors: np.ndarray) -> float | None:
    """The mean pairwise cosine distance of (normalised) embeddings: 0 when all alike."""
    if len(vectors) < 2:
        return None
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    n = len(unit)
    return float(1.0 - (similarity.sum() - np.trace(similarity)) / (n * (n - 1)))


def summarise(records: Sequence[dict[str, Any]], dropped: int,
              embed: Callable[[list[str]], np.ndarray] | None) -> dict[str, Any]:
    claims = [r for r in records if r["claims_working_code"]]
    asks = [r["messages"][0]["content"] for r in records]
    whole = [" ".join(m["content"] for m in r["messages"]) for r in records]
    shapes: dict[str, int] = {}
    for r in records:
        shapes[" > ".join(r["shape"])] = shapes.get(" > ".join(r["shape"]), 0) + 1
    return {
        "conversations": len(records), "near_duplicates_removed": dropped,
        "claims_working_code": len(claims),
        "sandbox_pass_share": sum(1 for r in claims if r["verified"] and r["verified"]["passed"]) / len(claims)
        if claims else None,
        "first_attempt_passed": sum(1 for r in records if (r["first_attempt"]["verdict"] or {}).get("passed")),
        "fixed_after_failure": sum(1 for r in records if "fix" in r["shape"] and r["verified"]["passed"]),
        "shapes": shapes,
        "asks_from_writer": sum(1 for r in records if r["provenance"]["ask"] == "writer"),
        "diversity": {"distinct_1": distinct_n(whole, 1), "distinct_2": distinct_n(whole, 2),
                      "distinct_3": distinct_n(whole, 3), "asks_distinct_2": distinct_n(asks, 2),
                      "asks_embedding_spread": embedding_spread(embed(asks)) if embed and len(asks) > 1 else None},
    }
