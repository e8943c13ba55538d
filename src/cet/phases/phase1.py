"""Phase 1: subject expertise, grounded in the knowledge base.

    for each round:
        sample coding questions (easy training tasks; some reworded by the team's question writer; with
        --conversations, the tasks of synthetic conversations first, each asked as its conversation's vague
        first message); a question
        shows what a learner sees: the statement, the interface and the task's first tests (the visible tests)
        retrieve the top-k chunks for each
        the CET answers from them; the team's teachers answer the same question from the same chunks, in order:
        a teacher answers only the questions every teacher before it failed (0.5B first, a stronger one after)
        the jury (model judges + the sandbox running the task's *hidden* tests) evaluates every answer
        keep, per question, the CET's own answer when the jury passes it with consensus, else the team's
        (distilled), else nothing
        fine-tune the CET's adapters on everything kept so far (TRL SFT); checkpoint
    write the conversations (question, retrieved ids, answers, verdicts, scores): Phase 2 reads them

"Consensus" is the sandbox's verdict when the task's tests could run on the answer's code (the ground truth),
else a high-consensus panel (more than 80% of at least two voting judges). The sandbox runs only the tests the
question does not show (`execution/test_split.py`), so an answer that hard-codes the visible cases is not accepted.

Easy questions: LeetCode's Easy problems, and tasks without a difficulty (the Exercism data here carries none)
whose whole question fits (`QUESTION_CHARS`, statement not cut) and whose visible tests call the entry point,
so the statement and the visible tests define the interface. Left-out tasks are counted by reason (`pool`).
"""

from __future__ import annotations

import ast
import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cet.config import CetConfig
from cet.errors import CetError
from cet.execution.tasks import CodingTask
from cet.execution.test_split import TestSplit, split_tests
from cet.llm.base import GenerationParams, LLMError
from cet.llm.jury import ExecutionVerifier, Jury, JuryVerdict
from cet.llm.team import Request, Team
from cet.model.cet import MANIFEST, CETModel
from cet.model.prompts import answer_messages
from cet.model.training import data_version, sft_example, train_sft
from cet.phases.common import (
    TRAIN_SPLITS,
    append_jsonl,
    as_messages,
    assert_trainable,
    closing_engine,
    held_out_slugs,
    load_tasks,
    read_conversations,
    read_jsonl,
    retrieve,
    sample_balanced,
    sandbox_executor,
)
from cet.runs import RunDir

CONVERSATIONS = "conversations.jsonl"
ANSWER_TOKENS = 512  # an answer with code: solutions cut off at 256 tokens fail their tests for no other reason
CET_ANSWER_TOKENS = 384  # the small CET rambles to its limit
EASY = frozenset({"", "easy"})  # LeetCode's Easy; "" is a task without a difficulty (the Exercism data has none)
EASY_TRACK_LEVEL = 3  # an Exercism track difficulty (1-10), when the data carries one: 1-3 is easy
# a question holds the statement, the interface and the visible tests. An easy question fits whole in QUESTION_CHARS
# (a statement cut short loses its interface, e.g. the function's name); other questions have their statement cut
# to STATEMENT_CHARS. Measured on the training pool with SmolLM2's tokenizer and five chunks: prompts of 530-1,100
# tokens (median 860), so prompt + answer train uncut only from TRAIN_MAX_LENGTH on (a floor on cet.train.max_length).
QUESTION_CHARS = 1800
STATEMENT_CHARS = 1200
TRAIN_MAX_LENGTH = 1536
JURY_CHUNK_CHARS = 300  # what a judge sees of each chunk and of the question: local judges read ~100 tokens/s
JURY_QUESTION_CHARS = 1000


@dataclass
class Phase1Options:
    rounds: int = 2
    questions: int = 4  # per round
    synthetic_share: float = 0.25  # of each round's questions, written by the team's question writer
    start_from: str | None = None  # a CET checkpoint to continue from (default: the base with fresh adapters)
    judges: tuple[str, ...] | None = None  # the jury's model judges (default: llm.roles.judge); the sandbox sits too
    easy_only: bool = True  # easy questions only (see the module docstring): a 0.5B team solves few of the others
    sets: tuple[str, ...] = ("exercism", "leetcode")
    # the models that answer as the team, in order: the next one answers only the questions every one before it
    # failed in the sandbox (e.g. the 0.5B, then the 1.5B); default: llm.roles.generator, in its order
    teacher: list[str] | None = None
    # `cet data conversations` output: its tasks are asked first, each as its conversation's vague first message
    conversations: str | None = None


@dataclass
class Question:
    id: str
    round: int
    task: CodingTask
    text: str
    origin: str  # "dataset" | "synthetic" (the question writer's) | "conversation" (a synthetic conversation's ask)
    hidden: CodingTask | None = None  # the task with only the tests the question does not show: verdicts run on it
    visible: list[str] = field(default_factory=list)  # the test cases the question shows

    @property
    def verdict_task(self) -> CodingTask:
        return self.hidden or self.task


def run_phase1(cfg: CetConfig, opts: Phase1Options, run: RunDir, retriever: Any,
               on_step: Callable[[str], None] = lambda _: None, quiet: bool = False) -> dict[str, Any]:
    tasks, left_out = question_pool(load_tasks(cfg, TRAIN_SPLITS, opts.sets), cfg.exec.visible_tests, opts.easy_only)
    assert_trainable(tasks)
    if not tasks:
        raise CetError(f"no training task can be a Phase 1 question (left out: {left_out})")
    rng = random.Random(cfg.run.seed)
    asks = conversation_asks(read_conversations(opts.conversations)[0], tasks) if opts.conversations else {}
    plan = conversation_plan(tasks, asks, opts.rounds * opts.questions, rng)
    conversations_path = run.path / CONVERSATIONS
    skipped: list[str] = []
    done = {r["question_id"]: r for r in read_jsonl(conversations_path, skipped)}
    _rewrite(conversations_path, done.values())  # drop a line an interruption cut off
    held_out = held_out_slugs(cfg)
    cet, first_round = _resume_model(cfg, opts, run)
    # an accepted answer after a whole question: cut at cet.train.max_length it would teach cut-off code
    train_settings = cfg.cet.train.model_copy(update={"max_length": max(cfg.cet.train.max_length, TRAIN_MAX_LENGTH)})
    rounds: list[dict[str, Any]] = []
    with Team(cfg) as team, sandbox_executor(cfg) as executor, closing_engine(cet):
        teachers = check_teachers(team, opts.teacher)
        team.unload()  # checking opened the teachers: the question writer comes first
        jury = Jury(team, judges=opts.judges, verifier=ExecutionVerifier(executor))
        for number in range(opts.rounds):
            batch = plan[number * opts.questions:(number + 1) * opts.questions]
            if not batch:
                break
            if number < first_round:
                continue  # finished before an interruption: its checkpoint is already loaded
            on_step(f"phase 1 round {number + 1}/{opts.rounds}: questions")
            questions = write_questions(team, batch, number, opts.synthetic_share,
                                        random.Random(f"{cfg.run.seed}:round:{number}"), cfg.exec.visible_tests, asks)
            team.unload()  # the question writer is done for this round: its memory is the teachers' now
            pending = [q for q in questions if q.id not in done]
            for record in converse(cet, team, jury, retriever, pending, cfg, on_step, held_out, teachers):
                done[record["question_id"]] = record
                append_jsonl(conversations_path, record)
            examples = training_examples(done.values())
            on_step(f"phase 1 round {number + 1}/{opts.rounds}: training on {len(examples)} examples")
            # training needs none of the team's models (the CET's engine closed once its answers were in): freeing
            # them first keeps the job's peak memory to the larger of the two steps, not their sum
            team.unload()
            report = train_sft(cet, examples, train_settings, run.path / f"round-{number}", cfg.run.seed,
                               quiet) if examples else None
            cet.save(run.path / "checkpoints" / f"round-{number}", "phase1", data_version(examples), opts,
                     round=number, examples=len(examples))
            summary = round_summary(number, [done[q.id] for q in questions if q.id in done], report)
            run.log_metrics(f"phase1/round-{number}", summary)
            rounds.append(summary)
    final = cet.save(Path(cfg.cet.checkpoints_dir) / "phase1", "phase1", data_version(training_examples(
        done.values())), opts, run_dir=str(run.path))
    records = list(done.values())
    return {"checkpoint": str(final), "conversations": str(conversations_path), "rounds": rounds,
            "questions": len(records), "trained_on": _count(r["trained_on"] for r in records),
            "teachers": teachers, "acceptance": acceptance(records),
            "pool": {"tasks": len(tasks), "left_out": left_out},
            "skipped_lines": len(skipped), "team_usage": _usage_totals(team)}


# ------------------------------------------------------------------------------------------------ questions


def is_easy(task: CodingTask) -> bool:
    """LeetCode's Easy; an Exercism track level of 1-3; a task without a difficulty (the Exercism data here)."""
    level = (task.metadata.difficulty or "").strip().lower()
    return level in EASY or (level.isdigit() and int(level) <= EASY_TRACK_LEVEL)


def question_pool(tasks: Iterable[CodingTask], visible: int, easy_only: bool = True
                  ) -> tuple[list[CodingTask], dict[str, int]]:
    """The tasks that can be Phase 1 questions, and how many were left out for each reason. Every question needs
    tests to split (a hidden case to judge by); an easy question also fits whole and its visible tests call the
    entry point, so what the question shows defines the interface."""
    pool, left_out = [], Counter()
    for task in tasks:
        if easy_only and not is_easy(task):
            left_out["not easy"] += 1
            continue
        try:
            split = split_tests(task, visible)
        except CetError:
            left_out["tests cannot be split"] += 1
            continue
        if easy_only:
            if len(task.statement.strip()) > QUESTION_CHARS or len(question_text(task, split)) > QUESTION_CHARS:
                left_out["question does not fit whole"] += 1
                continue
            if not shows_entry_point(task, split):
                left_out["visible tests do not call the entry point"] += 1
                continue
        pool.append(task)
    return pool, dict(sorted(left_out.items()))


def write_questions(team: Team, batch: Sequence[CodingTask], number: int, synthetic_share: float,
                    rng: random.Random, visible: int = 3, asks: dict[str, str] | None = None) -> list[Question]:
    """The round's questions: the task statements, and for a share of them the question writer's rewording
    (a developer's question about the same exercise); a task with a synthetic conversation is asked as that
    conversation's first message (`asks`). Each with the interface and the visible tests, judged by the hidden
    ones."""
    asks = asks or {}
    # a task with a conversation is asked as its conversation's message, not reworded as well (so with
    # conversations, fewer than `synthetic_share` of the round may be the writer's)
    synthetic = {t.id for t in rng.sample(list(batch), round(len(batch) * synthetic_share))} - set(asks)
    requests = [Request(as_messages(rewrite_prompt(t)), team.params(max_tokens=96), tag=t.id)
                for t in batch if t.id in synthetic]
    rewritten = {r.request.tag: r.text for r in team.map("question_writer", requests) if r.ok and r.text}
    questions = []
    for task in batch:
        split = split_tests(task, visible)
        origin = "conversation" if task.id in asks else "synthetic" if task.id in rewritten else "dataset"
        asked = asks.get(task.id) or rewritten.get(task.id)
        text = question_text(task, split, asked.strip() if asked else None)
        questions.append(Question(f"{task.id}#{origin}", number, task, text, origin, split.hidden,
                                  list(split.visible_cases)))
    return questions


def conversation_asks(conversations: Iterable[dict[str, Any]], pool: Sequence[CodingTask]) -> dict[str, str]:
    """Task id -> the vague first message of its synthetic conversation (`read_conversations`' records), for the
    pool's tasks (the first record of a task wins; a record without a user message is skipped)."""
    ids = {t.id for t in pool}
    asks: dict[str, str] = {}
    for record in conversations:
        task_id = record.get("task_id")
        first = next((m.get("content") for m in record.get("messages") or [] if m.get("role") == "user"), None)
        if task_id in ids and task_id not in asks and isinstance(first, str) and first.strip():
            asks[task_id] = first.strip()
    return asks


def conversation_plan(pool: Sequence[CodingTask], asks: dict[str, str], n: int, rng: random.Random
                      ) -> list[CodingTask]:
    """`n` questions: the tasks with a conversation first (shuffled), then a balanced draw from the rest."""
    first = [t for t in pool if t.id in asks]
    rng.shuffle(first)
    rest = [t for t in pool if t.id not in asks]
    return (first + sample_balanced(rest, max(0, n - len(first)), rng))[:n] if first else \
        sample_balanced(pool, n, rng)


def question_text(task: CodingTask, split: TestSplit, asked: str | None = None) -> str:
    """What a learner sees: the statement (or a developer's question about it), the interface when the text does
    not define it, and the visible tests with the test-file helpers they call. Never a hidden test."""
    statement = task.statement.strip()
    text = (asked or (statement if len(statement) <= QUESTION_CHARS else _cut(statement, STATEMENT_CHARS))).strip()
    parts = [text]
    name = _entry_name(task)
    if name and not re.search(rf"\bdef\s+{re.escape(name)}\s*\(", text):
        parts.append(f"## Interface\n\n```python\n{stub(task.signature or f'def {name}(...)')}\n```")
    if split.visible_cases:
        parts.append("## Tests you can see\n\nYour code must pass these, and more tests of the same kind that are not "
                     f"shown:\n\n```python\n{visible_tests(task, split)}\n```")
    return "\n\n".join(parts)


def visible_tests(task: CodingTask, split: TestSplit) -> str:
    """The visible cases, after the test file's helper functions they call (LeetCode's `run_<method>`), so a
    reader sees how the solution is called."""
    return "\n\n".join([*test_helpers(task.tests, split.visible_text), split.visible_text])


def test_helpers(tests: str, used_by: str) -> list[str]:
    """Source of the test file's top-level non-test functions and classes `used_by` names (and those they name)."""
    try:
        tree = ast.parse(tests)
    except SyntaxError:
        return []
    helpers = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
               and not n.name.startswith("test")}
    wanted: list[str] = []
    frontier = used_by
    while True:
        found = [name for name in helpers if name not in wanted and re.search(rf"\b{re.escape(name)}\b", frontier)]
        if not found:
            break
        wanted += found
        frontier = "\n".join(ast.get_source_segment(tests, helpers[name]) or "" for name in found)
    order = [n.name for n in tree.body if getattr(n, "name", None) in wanted]
    return [ast.get_source_segment(tests, helpers[name]) or "" for name in order]


def shows_entry_point(task: CodingTask, split: TestSplit) -> bool:
    name = _entry_name(task)
    return bool(name and split.visible_cases and re.search(rf"\b{re.escape(name)}\b", visible_tests(task, split)))


def stub(signature: str) -> str:
    """A signature as a stub that parses: `def f(x)` -> `def f(x):` + `...` (LeetCode's class with its method too)."""
    lines = []
    for line in signature.rstrip().splitlines():
        code = line.rstrip()
        if code.lstrip().startswith(("def ", "async def ")):
            indent = len(code) - len(code.lstrip())
            lines += [code if code.endswith(":") else code + ":", " " * (indent + 4) + "..."]
        else:
            lines.append(code)
    return "\n".join(lines)


def _entry_name(task: CodingTask) -> str | None:
    return task.entry_point.split(".")[-1] if task.entry_point else None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " […]"


def rewrite_prompt(task: CodingTask) -> list[dict[str, str]]:
    return [{"role": "user", "content": (
        "Here is a programming exercise:\n\n" + task.statement[:1500] + "\n\nWrite the question a developer "
        "working on it would ask a colleague, in one to three sentences, in your own words. Reply with the "
        "question only.")}]


def check_teachers(team: Team, teachers: Sequence[str] | None) -> list[str]:
    """The teachers in order (default: the generator role's models), each opened now: a teacher that cannot be
    used is a clear error before any work, not a round of failed answers."""
    names = list(teachers) if teachers else team.models_for("generator")
    if len(set(names)) != len(names):
        raise CetError(f"a Phase 1 teacher is named twice: {names}")
    for name in names:
        try:
            team.model(name)
        except LLMError as e:
            raise CetError(f"Phase 1 teacher {name!r} cannot be used: {e}") from None
    return names


def teacher_answers(team: Team, prompts: Sequence[list[dict[str, str]]], teachers: Sequence[str],
                    judge: Callable[[int, str], dict[str, Any]], params: GenerationParams,
                    on_step: Callable[[str], None] = lambda _: None) -> list[list[dict[str, Any]]]:
    """Each question's answers by the teachers, in order: the first teacher answers every question, each next
    one only those every teacher before it failed (`judge(i, text)` → a `verdict_record` with `accepted`).
    Returns, per question, its attempts: {model, text, error, seconds, jury_s, **verdict record}."""
    attempts: list[list[dict[str, Any]]] = [[] for _ in prompts]
    pending = list(range(len(prompts)))
    for teacher in teachers:
        if not pending:
            break
        on_step(f"phase 1: {teacher} answers {len(pending)} question(s)")
        results = team.map(None, [Request(as_messages(prompts[i]), params, model=teacher) for i in pending])
        for i, result in zip(pending, results, strict=True):
            text = result.text or ""
            answer: dict[str, Any] = {"model": teacher, "text": text, "error": result.error,
                                      "seconds": round(result.completion.latency_s, 2) if result.completion else None}
            began = time.perf_counter()
            answer.update(judge(i, text))
            answer["jury_s"] = round(time.perf_counter() - began, 2)
            attempts[i].append(answer)
        pending = [i for i in pending if not attempts[i][-1]["accepted"]]
    return attempts


def converse(cet: CETModel, team: Team, jury: Jury, retriever: Any, questions: Sequence[Question],
             cfg: CetConfig, on_step: Callable[[str], None], held_out: frozenset[str] = frozenset(),
             teachers: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The CET's and the teachers' answers to each question, judged on its hidden tests: one record per question."""
    if not questions:
        return []
    teachers = list(teachers) if teachers else team.models_for("generator")
    hits = [retrieve(retriever, q.text, cfg.cet.top_k, held_out) for q in questions]
    prompts = [answer_messages(q.text, h, question_chars=max(QUESTION_CHARS, len(q.text)))
               for q, h in zip(questions, hits, strict=True)]
    on_step(f"phase 1: the CET answers {len(questions)} questions")
    began = time.perf_counter()
    replies = cet.generate_replies(prompts, CET_ANSWER_TOKENS, cfg.cet.max_input_tokens)
    cet.close_engine()  # its answers are in: the teachers' models need the memory (measured 0.24 GB)
    cet_answers = [r.text.strip() for r in replies]
    cet_s = (time.perf_counter() - began) / len(questions)

    def judge(i: int, text: str) -> dict[str, Any]:
        return judge_answer(jury, questions[i], hits[i], text)

    attempts = teacher_answers(team, prompts, teachers, judge, team.params(max_tokens=ANSWER_TOKENS), on_step)
    records = []
    for i, question in enumerate(questions):
        on_step(f"phase 1: the jury on the CET's answer {i + 1}/{len(questions)}")
        began = time.perf_counter()
        # a generation that failed is an empty answer the jury rejects, with its error kept and counted
        cet_answer = {"model": "cet", "text": cet_answers[i], "generation_error": replies[i].error,
                      **judge(i, cet_answers[i])}
        cet_jury_s = time.perf_counter() - began
        answers = {"cet": cet_answer, "team": _final_attempt(attempts[i])}
        trained_on = select_target(answers)
        records.append({
            "question_id": question.id, "round": question.round, "task_id": question.task.id,
            "source": question.task.metadata.source, "origin": question.origin, "question": question.text,
            "visible_tests": question.visible, "hidden_tests": len(question.verdict_task.test_names),
            "retrieved": [{"id": h.id, "source": h.source, "title": h.title, "score": round(h.score, 4)}
                          for h in hits[i]],
            "answers": answers, "team_attempts": attempts[i], "trained_on": trained_on,
            "solution": answers[trained_on]["code"] if trained_on else None,
            "prompt": prompts[i],
            "seconds": {"cet_answer": round(cet_s, 2),
                        "team_answer": round(sum(a["seconds"] or 0.0 for a in attempts[i]), 2),
                        "jury": round(cet_jury_s + sum(a["jury_s"] for a in attempts[i]), 2)},
        })
    return records


def judge_answer(jury: Jury, question: Question, hits: Sequence[Any], text: str) -> dict[str, Any]:
    """The jury on one answer; the sandbox runs the question's hidden tests (the ones it does not show)."""
    return verdict_record(jury.evaluate(question.text[:JURY_QUESTION_CHARS], text, jury_chunks(hits),
                                        question.verdict_task) if text else None)


def _final_attempt(attempts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The team's answer: the accepted attempt (always the last tried), else the last teacher's."""
    return dict(attempts[-1]) if attempts else {"model": None, "text": "", **verdict_record(None)}


def jury_chunks(hits: Sequence[Any], chars: int = JURY_CHUNK_CHARS) -> list[dict[str, str]]:
    """The retrieved chunks as the judges see them: cut, so a local judge's prompt stays short."""
    return [{"title": h.title, "text": h.text[:chars]} for h in hits]


def verdict_record(verdict: JuryVerdict | None) -> dict[str, Any]:
    if verdict is None:
        return {"verdict": None, "accepted": False, "code": None, "reason": "no answer"}
    return {
        "verdict": verdict.verdict, "source": verdict.source, "high_consensus": verdict.high_consensus,
        "agreement": verdict.agreement, "mean_scores": verdict.mean_scores, "code": verdict.code,
        "accepted": accepted(verdict),
        "votes": [{k: v for k, v in asdict(vote).items() if k in ("judge", "kind", "verdict", "scores", "abstained",
                                                                 "reason", "detail")}
                  for vote in verdict.votes + ([verdict.verifier] if verdict.verifier else [])],
    }


def accepted(verdict: JuryVerdict) -> bool:
    """A training signal: passed by the sandbox where the task's tests apply, else by a high-consensus panel."""
    if verdict.verdict != "pass":
        return False
    if verdict.verifier is not None:  # the task has tests: only the sandbox's pass counts (an abstention does not)
        return verdict.source == "verifier"
    return verdict.high_consensus


def select_target(answers: dict[str, dict[str, Any]]) -> str | None:
    """The CET's own answer when accepted, else the team's (distilled), else none."""
    for who in ("cet", "team"):
        if answers[who].get("accepted"):
            return who
    return None


def training_examples(records: Any) -> list[dict[str, Any]]:
    return [sft_example(r["prompt"], r["answers"][r["trained_on"]]["text"])
            for r in sorted(records, key=lambda r: r["question_id"]) if r.get("trained_on")]


def round_summary(number: int, records: Sequence[dict[str, Any]], report: Any) -> dict[str, Any]:
    def rate(who: str) -> float | None:
        """Accepted answers (the sandbox passed them) per question: a panel's "pass" on code-less prose is not one."""
        return round(sum(bool(r["answers"][who].get("accepted")) for r in records) / len(records), 3) \
            if records else None

    return {"round": number, "questions": len(records), "cet_pass_rate": rate("cet"), "team_pass_rate": rate("team"),
            "trained_on": _count(r["trained_on"] for r in records), **acceptance(records),
            "cet_generation_failures": sum(bool(r["answers"]["cet"].get("generation_error")) for r in records),
            "training": report.to_dict() if report else None}


def acceptance(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Accepted answers per source (questions; the CET's, the team's and either one accepted) and per answerer
    (the CET and each teacher: questions it answered, accepted, the rate and the seconds its answers took)."""
    by_source: dict[str, dict[str, Any]] = {}
    answerers: dict[str, dict[str, Any]] = {}
    for r in records:
        s = by_source.setdefault(r.get("source") or "?", {"questions": 0, "cet": 0, "team": 0, "accepted": 0})
        s["questions"] += 1
        s["cet"] += bool(r["answers"]["cet"].get("accepted"))
        s["team"] += bool(r["answers"]["team"].get("accepted"))
        s["accepted"] += bool(r.get("trained_on"))
        team = r.get("team_attempts")
        if team is None:  # a record from before the teachers' fallback
            team = [r["answers"]["team"]] if r["answers"]["team"].get("text") else []
        cet = {**r["answers"]["cet"], "seconds": (r.get("seconds") or {}).get("cet_answer")}
        for who, answer in [("cet", cet), *((str(a.get("model") or "team"), a) for a in team)]:
            a = answerers.setdefault(who, {"answered": 0, "accepted": 0, "seconds": 0.0})
            a["answered"] += 1
            a["accepted"] += bool(answer.get("accepted"))
            a["seconds"] += answer.get("seconds") or 0.0
    for s in by_source.values():
        s["rate"] = round(s["accepted"] / s["questions"], 3)
    for a in answerers.values():
        a["rate"] = round(a["accepted"] / a["answered"], 3)
        a["seconds"] = round(a["seconds"], 1)
    return {"by_source": dict(sorted(by_source.items())), "by_answerer": answerers}


def _resume_model(cfg: CetConfig, opts: Phase1Options, run: RunDir) -> tuple[CETModel, int]:
    """The CET to continue with: the last finished round's checkpoint in this run directory, else the start."""
    finished = sorted((p for p in (run.path / "checkpoints").glob("round-*") if (p / MANIFEST).is_file()),
                      key=lambda p: int(p.name.split("-")[1]))
    if finished:
        return CETModel.load(finished[-1], cfg, trainable=True), int(finished[-1].name.split("-")[1]) + 1
    if opts.start_from:
        return CETModel.load(opts.start_from, cfg, trainable=True), 0
    return CETModel.from_base(cfg), 0


def _rewrite(path: Path, records: Any) -> None:
    if path.exists():
        partial = path.with_name(path.name + ".partial")
        partial.write_text("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records),
                           encoding="utf-8")
        partial.replace(path)


def _count(values: Any) -> dict[str, int]:
    return dict(Counter(str(v) for v in values))


def _usage_totals(team: Team) -> dict[str, Any]:
    usage = team.usage()
    return {k: usage[k] for k in ("requests", "calls", "cache_hits", "errors", "tokens", "latency_s")}
