"""What the phase recipes share: the tasks by split, retrieval, the sandbox, conversation files."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cet.config import CetConfig
from cet.errors import CetError
from cet.execution.executor import Executor
from cet.execution.pool import WarmPool
from cet.execution.tasks import CodingTask, iter_tasks
from cet.knowledge.records import Hit
from cet.llm.base import Message

TRAIN_SPLITS = frozenset({"train"})
EVAL_SPLITS = frozenset({"test", "eval"})


def load_tasks(cfg: CetConfig, splits: frozenset[str], sets: Sequence[str] = ("exercism", "leetcode", "humaneval"),
               language: str = "python") -> list[CodingTask]:
    """Tasks of `splits` from `<exec.tasks_dir>/<set>.jsonl` (the main job imports them). Training splits never
    include an evaluation-only task (HumanEval), whatever split it claims."""
    tasks_dir = Path(cfg.exec.tasks_dir)
    tasks = []
    for name in sets:
        path = tasks_dir / f"{name}.jsonl"
        if not path.is_file():
            continue
        for task in iter_tasks(path):
            if task.language != language or task.metadata.split not in splits:
                continue
            if splits & TRAIN_SPLITS and task.metadata.evaluation_only:
                continue
            tasks.append(task)
    if not tasks:
        raise CetError(f"no {language} tasks of split {'/'.join(sorted(splits))} under {tasks_dir}: "
                       "run `cet run` (or `cet tasks import`) to import the task sets")
    return tasks


def assert_trainable(tasks: Iterable[CodingTask]) -> None:
    """The guard every training recipe calls on what it is about to train from."""
    bad = [t.id for t in tasks if t.metadata.evaluation_only or t.metadata.split in EVAL_SPLITS]
    if bad:
        raise CetError(f"refusing to train on evaluation tasks: {', '.join(bad[:5])}")


def sample_balanced(tasks: Sequence[CodingTask], n: int, rng: random.Random) -> list[CodingTask]:
    """`n` tasks drawn round-robin across sources (each source shuffled by `rng`), so no set crowds out the rest."""
    by_source: dict[str, list[CodingTask]] = {}
    for task in sorted(tasks, key=lambda t: t.id):
        by_source.setdefault(task.metadata.source, []).append(task)
    for group in by_source.values():
        rng.shuffle(group)
    picked: list[CodingTask] = []
    while len(picked) < n and any(by_source.values()):
        for source in sorted(by_source):
            if by_source[source] and len(picked) < n:
                picked.append(by_source[source].pop())
    return picked


def task_slug(task_id: str) -> str:
    """The exercise a task is (`exercism/run-length-encoding` → `run_length_encoding`), as documents name it."""
    return task_id.split("/", 1)[-1].replace("-", "_").lower()


def hit_slug(hit: Hit) -> str:
    """The exercise a knowledge-base document belongs to (`exercism:python:bob#approaches:x` → `bob`)."""
    return (hit.doc_id or hit.id).split("#", 1)[0].rsplit(":", 1)[-1].replace("-", "_").lower()


def held_out_slugs(cfg: CetConfig) -> frozenset[str]:
    """The exercises of every held-out task: their documents (statements, example solutions, tests, approaches,
    mentoring notes) are kept out of retrieval everywhere, so no condition and no training example sees them."""
    try:
        return frozenset(task_slug(t.id) for t in load_tasks(cfg, EVAL_SPLITS))
    except CetError:
        return frozenset()


def retrieve(retriever: Any, text: str, k: int, held_out: frozenset[str] = frozenset()) -> list[Hit]:
    """The top-k chunks for `text`, leaving out the documents of held-out exercises."""
    if retriever is None:
        return []
    hits = retriever.search(text, k=k * 4 if held_out else k)
    return [h for h in hits if hit_slug(h) not in held_out][:k]


def as_messages(conversation: Sequence[dict[str, str]]) -> list[Message]:
    return [Message(m["role"], m["content"]) for m in conversation]  # type: ignore[arg-type]


@contextmanager
def closing_engine(cet: Any) -> Iterator[Any]:
    """The CET's llama.cpp engine (and its exported adapter) released however the block ends."""
    try:
        yield cet
    finally:
        cet.close_engine()


@contextmanager
def sandbox_executor(cfg: CetConfig) -> Iterator[Executor]:
    """An Executor on the warm pool when bubblewrap runs (much faster for many runs), else one-shot."""
    one_shot = Executor(cfg.exec)
    if one_shot.backend.isolation != "bubblewrap":
        yield one_shot
        return
    with WarmPool(cfg.exec, one_shot.backend.sandbox) as pool:
        yield Executor(cfg.exec, backend=pool)


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        f.flush()


def read_jsonl(path: Path, skipped: list[str] | None = None) -> list[dict[str, Any]]:
    """Records of a JSONL file; lines that do not parse (a line cut off by an interruption) are skipped and
    counted in `skipped`."""
    records = []
    if not path.is_file():
        return records
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            if skipped is not None:
                skipped.append(f"{path.name}:{n}")
    return records
