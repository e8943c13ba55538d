"""Phase 1: subject expertise, grounded in the knowledge base.

    for each round:
        sample coding questions (from the training tasks, some rewritten by the team's question writer)
        retrieve the top-k chunks for each
        the CET answers from them; the team's generator answers the same question from the same chunks
        the jury (model judges + the sandbox running the task's tests) evaluates both answers
        keep, per question, the CET's own answer when the jury passes it with consensus, else the team's
        (distilled), else nothing
        fine-tune the CET's adapters on everything kept so far (TRL SFT); checkpoint
    write the conversations (question, retrieved ids, answers, verdicts, scores): Phase 2 reads them

"Consensus" is the sandbox's verdict when the task's tests could run on the answer's code (the ground truth),
else a high-consensus panel (more than 80% of at least two voting judges).
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cet.config import CetConfig
from cet.execution.tasks import CodingTask
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
    read_jsonl,
    retrieve,
    sample_balanced,
    sandbox_executor,
)
from cet.runs import RunDir

CONVERSATIONS = "conversations.jsonl"
ANSWER_TOKENS = 512  # an answer with code: solutions cut off at 256 tokens fail their tests for no other reason
CET_ANSWER_TOKENS = 384  # the small CET rambles to its limit
EASY = frozenset({"", "easy"})  # Phase 1 questions: the sets' easy problems (LeetCode Easy; Exercism has none)
JURY_CHUNK_CHARS = 300  # what a judge sees of each chunk and of the question: local judges read ~100 tokens/s
JURY_QUESTION_CHARS = 1000


@dataclass
class Phase1Options:
    rounds: int = 2
    questions: int = 4  # per round
    synthetic_share: float = 0.25  # of each round's questions, written by the team's question writer
    start_from: str | None = None  # a CET checkpoint to continue from (default: the base with fresh adapters)
    judges: tuple[str, ...] | None = None  # the jury's model judges (default: llm.roles.judge); the sandbox sits too
    easy_only: bool = True  # questions from the easy problems only: a 0.5B team solves few of the others
    sets: tuple[str, ...] = ("exercism", "leetcode")


@dataclass
class Question:
    id: str
    round: int
    task: CodingTask
    text: str
    origin: str  # "dataset" | "synthetic"


def run_phase1(cfg: CetConfig, opts: Phase1Options, run: RunDir, retriever: Any,
               on_step: Callable[[str], None] = lambda _: None, quiet: bool = False) -> dict[str, Any]:
    tasks = [t for t in load_tasks(cfg, TRAIN_SPLITS, opts.sets)
             if not opts.easy_only or (t.metadata.difficulty or "").lower() in EASY]
    assert_trainable(tasks)
    rng = random.Random(cfg.run.seed)
    plan = sample_balanced(tasks, opts.rounds * opts.questions, rng)
    conversations_path = run.path / CONVERSATIONS
    skipped: list[str] = []
    done = {r["question_id"]: r for r in read_jsonl(conversations_path, skipped)}
    _rewrite(conversations_path, done.values())  # drop a line an interruption cut off
    held_out = held_out_slugs(cfg)
    cet, first_round = _resume_model(cfg, opts, run)
    rounds: list[dict[str, Any]] = []
    with Team(cfg) as team, sandbox_executor(cfg) as executor, closing_engine(cet):
        jury = Jury(team, judges=opts.judges, verifier=ExecutionVerifier(executor))
        for number in range(opts.rounds):
            batch = plan[number * opts.questions:(number + 1) * opts.questions]
            if not batch:
                break
            if number < first_round:
                continue  # finished before an interruption: its checkpoint is already loaded
            on_step(f"phase 1 round {number + 1}/{opts.rounds}: questions")
            questions = write_questions(team, batch, number, opts.synthetic_share,
                                        random.Random(f"{cfg.run.seed}:round:{number}"))
            pending = [q for q in questions if q.id not in done]
            for record in converse(cet, team, jury, retriever, pending, cfg, on_step, held_out):
                done[record["question_id"]] = record
                append_jsonl(conversations_path, record)
            examples = training_examples(done.values())
            on_step(f"phase 1 round {number + 1}/{opts.rounds}: training on {len(examples)} examples")
            report = train_sft(cet, examples, cfg.cet.train, run.path / f"round-{number}", cfg.run.seed,
                               quiet) if examples else None
            cet.save(run.path / "checkpoints" / f"round-{number}", "phase1", data_version(examples),
                     round=number, examples=len(examples))
            summary = round_summary(number, [done[q.id] for q in questions if q.id in done], report)
            run.log_metrics(f"phase1/round-{number}", summary)
            rounds.append(summary)
    final = cet.save(Path(cfg.cet.checkpoints_dir) / "phase1", "phase1", data_version(training_examples(
        done.values())), run_dir=str(run.path))
    records = list(done.values())
    return {"checkpoint": str(final), "conversations": str(conversations_path), "rounds": rounds,
            "questions": len(records), "trained_on": _count(r["trained_on"] for r in records),
            "skipped_lines": len(skipped), "team_usage": _usage_totals(team)}


def write_questions(team: Team, batch: Sequence[CodingTask], number: int, synthetic_share: float,
                    rng: random.Random) -> list[Question]:
    """The round's questions: the task statements, and for a share of them the question writer's rewording
    (a developer's question about the same exercise, still answerable by the task's tests)."""
    synthetic = {t.id for t in rng.sample(list(batch), round(len(batch) * synthetic_share))}
    requests = [Request(as_messages(rewrite_prompt(t)), team.params(max_tokens=96), tag=t.id)
                for t in batch if t.id in synthetic]
    rewritten = {r.request.tag: r.text for r in team.map("question_writer", requests) if r.ok and r.text}
    questions = []
    for task in batch:
        text, origin = task.statement, "dataset"
        if task.id in rewritten:
            signature = task.signature or task.entry_point or ""
            text, origin = f"{rewritten[task.id].strip()}\n\nThe function to write: `{signature}`", "synthetic"
        questions.append(Question(f"{task.id}#{origin}", number, task, text, origin))
    return questions


def rewrite_prompt(task: CodingTask) -> list[dict[str, str]]:
    return [{"role": "user", "content": (
        "Here is a programming exercise:\n\n" + task.statement[:1500] + "\n\nWrite the question a developer "
        "working on it would ask a colleague, in one to three sentences, in your own words. Reply with the "
        "question only.")}]


def converse(cet: CETModel, team: Team, jury: Jury, retriever: Any, questions: Sequence[Question],
             cfg: CetConfig, on_step: Callable[[str], None], held_out: frozenset[str] = frozenset()
             ) -> list[dict[str, Any]]:
    """Both answers to each question, judged: one conversation record per question."""
    if not questions:
        return []
    hits = [retrieve(retriever, q.text, cfg.cet.top_k, held_out) for q in questions]
    prompts = [answer_messages(q.text, h) for q, h in zip(questions, hits, strict=True)]
    on_step(f"phase 1: the CET answers {len(questions)} questions")
    began = time.perf_counter()
    cet_answers = cet.generate(prompts, CET_ANSWER_TOKENS, cfg.cet.max_input_tokens)
    cet_s = (time.perf_counter() - began) / len(questions)
    on_step(f"phase 1: the team answers {len(questions)} questions")
    began = time.perf_counter()
    params = team.params(max_tokens=ANSWER_TOKENS)
    team_results = team.map("generator", [Request(as_messages(p), params) for p in prompts])
    team_s = (time.perf_counter() - began) / len(questions)
    records = []
    for i, question in enumerate(questions):
        on_step(f"phase 1: the jury on question {i + 1}/{len(questions)}")
        began = time.perf_counter()
        team_text = team_results[i].text or ""
        answers = {"cet": {"model": "cet", "text": cet_answers[i]},
                   "team": {"model": team_results[i].model, "text": team_text, "error": team_results[i].error}}
        for answer in answers.values():
            verdict = jury.evaluate(question.text[:JURY_QUESTION_CHARS], answer["text"], jury_chunks(hits[i]),
                                    question.task) if answer["text"] else None
            answer.update(verdict_record(verdict))
        trained_on = select_target(answers)
        records.append({
            "question_id": question.id, "round": question.round, "task_id": question.task.id,
            "source": question.task.metadata.source, "origin": question.origin, "question": question.text,
            "retrieved": [{"id": h.id, "source": h.source, "title": h.title, "score": round(h.score, 4)}
                          for h in hits[i]],
            "answers": answers, "trained_on": trained_on,
            "solution": answers[trained_on]["code"] if trained_on else None,
            "prompt": prompts[i],
            "seconds": {"cet_answer": round(cet_s, 2), "team_answer": round(team_s, 2),
                        "jury": round(time.perf_counter() - began, 2)},
        })
    return records


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
            "trained_on": _count(r["trained_on"] for r in records),
            "training": report.to_dict() if report else None}


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
