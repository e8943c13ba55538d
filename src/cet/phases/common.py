"""What the phase recipes share: the tasks by split, retrieval, the sandbox, conversation files."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cet.config import CetConfig
from cet.data.leakage import HeldOutIndex, Leak
from cet.errors import CetError
from cet.execution.executor import Executor
from cet.execution.pool import WarmPool
from cet.execution.tasks import CodingTask, iter_tasks
from cet.knowledge.records import Hit
from cet.llm.base import Message

TRAIN_SPLITS = frozenset({"train"})
HELD_OUT_SETS = ("exercism", "leetcode", "humaneval", "repository")  # whose evaluation splits retrieval never shows
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


class HeldOut(frozenset[str]):
    """What retrieval must never return, by two rules that apply to every source:

    * slug: the document is named after a held-out exercise (`hit_slug` in this set: its statement, example
      solution, tests, approaches, mentoring notes);
    * content: the chunk's text carries a held-out task's statement, tests or reference solution, whatever it
      is named (a git test file quoting HumanEval asserts, an answer quoting a LeetCode statement), by
      `HeldOutIndex.leaks`.

    It is the frozenset of slugs `held_out_slugs` always returned, so code written for that keeps working
    (and gets the content rule). `dropped` counts the hits each rule removed; `report()` gives the figures."""

    index: HeldOutIndex | None
    dropped: Counter[str]  # refused hits by rule ("slug", "content"), counted by `retrieve` above the last hit shown
    examples: list[dict[str, Any]]  # the first MAX_DROP_EXAMPLES refusals: chunk, rule, task, part, snippet
    _verdicts: dict[tuple[str, int], list[Leak]]

    def __new__(cls, slugs: Iterable[str] = (), index: HeldOutIndex | None = None) -> HeldOut:
        self = super().__new__(cls, slugs)
        self.index = index
        self.dropped = Counter()
        self.examples = []
        self._verdicts = {}
        return self

    def __bool__(self) -> bool:
        return len(self) > 0 or bool(self.index)

    @property
    def slugs(self) -> frozenset[str]:
        return frozenset(self)

    def leaks(self, hit: Hit) -> list[Leak]:
        """The held-out task parts `hit`'s text carries (cached per chunk)."""
        if self.index is None:
            return []
        key = (hit.id, hash(hit.text))
        if key not in self._verdicts:
            self._verdicts[key] = self.index.leaks(hit.text)
        return self._verdicts[key]

    def rule(self, hit: Hit) -> str | None:
        """The rule that leaves `hit` out ("slug" or "content"), or None when it may be shown."""
        if hit_slug(hit) in self:
            return "slug"
        return "content" if self.leaks(hit) else None

    def allows(self, hit: Hit) -> bool:
        """Whether `hit` may be shown; a refusal is counted under its rule."""
        rule = self.rule(hit)
        if rule is not None:
            self.count(hit, rule)
        return rule is None

    def count(self, hit: Hit, rule: str) -> None:
        """Record that `rule` left `hit` out."""
        self.dropped[rule] += 1
        if len(self.examples) < MAX_DROP_EXAMPLES:
            leak = self.leaks(hit)[0] if rule == "content" else None
            self.examples.append({"chunk": hit.id, "rule": rule, "task": leak.task_id if leak else hit_slug(hit),
                                  "part": leak.part if leak else None, "snippet": leak.snippet if leak else None})

    def report(self) -> dict[str, Any]:
        return {"held_out_slugs": len(self), "indexed_tasks": len(self.index) if self.index else 0,
                "dropped": {"slug": self.dropped["slug"], "content": self.dropped["content"]},
                "examples": list(self.examples)}


MAX_DROP_EXAMPLES = 20
_INDEXES: dict[tuple[Any, ...], tuple[frozenset[str], HeldOutIndex | None, frozenset[str]]] = {}


def held_out(cfg: CetConfig, extra: Iterable[CodingTask] = ()) -> HeldOut:
    """The held-out filter of `cfg`'s task sets: the slugs of every evaluation task (splits test and eval) and
    the content index of those tasks, against the other tasks (train and dev) as background. `extra`: more tasks
    to hold out (an evaluation of a user's own tasks file). Built once per process per tasks directory and extra
    tasks (rebuilt when a tasks file changes); every call returns a new HeldOut with its own drop counts.

    Bare-number slugs (HumanEval's `0`..`163`) name no exercise; they are left out of the slug rule, where they
    only matched Stack Exchange question ids, and those tasks are covered by the content rule."""
    tasks_dir = Path(cfg.exec.tasks_dir).resolve()
    stamp = tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in sorted(tasks_dir.glob("*.jsonl"))) \
        if tasks_dir.is_dir() else ()
    base = (str(tasks_dir), stamp)
    if base not in _INDEXES:
        _INDEXES[base] = _build_held_out(cfg, [])
    extra = [t for t in extra if t.id not in _INDEXES[base][2]]
    key = (*base, tuple(sorted(t.id for t in extra))) if extra else base
    if key not in _INDEXES:
        _INDEXES[key] = _build_held_out(cfg, extra)
    slugs, index, _ = _INDEXES[key]
    return HeldOut(slugs, index)


def _build_held_out(cfg: CetConfig, extra: list[CodingTask]) -> tuple[frozenset[str], HeldOutIndex | None,
                                                                       frozenset[str]]:
    """(slugs, index, held-out task ids) of the evaluation tasks under `cfg.exec.tasks_dir` plus `extra`."""
    try:  # the repository benchmark (<tasks_dir>/repository.jsonl, `cet tasks repo`) is held out too
        tasks = load_tasks(cfg, EVAL_SPLITS, HELD_OUT_SETS) + extra
    except CetError:
        tasks = extra
    try:
        background = load_tasks(cfg, frozenset({"train", "dev"}))
    except CetError:
        background = []
    slugs = frozenset(slug for slug in (task_slug(t.id) for t in tasks) if not slug.isdigit())
    return slugs, HeldOutIndex(tasks, background) if tasks else None, frozenset(t.id for t in tasks)


def held_out_slugs(cfg: CetConfig) -> HeldOut:
    """The exercises of every held-out task: their documents (statements, example solutions, tests, approaches,
    mentoring notes) are kept out of retrieval everywhere, so no condition and no training example sees them.
    Returns `held_out(cfg)`: a frozenset of the slugs that also carries the content rule."""
    return held_out(cfg)


def retrieve(retriever: Any, text: str, k: int, held_out: frozenset[str] | HeldOut = frozenset()) -> list[Hit]:
    """The top-k chunks for `text`, leaving out what `held_out` refuses: a plain frozenset applies the slug rule
    only; a `HeldOut` (what `held_out(cfg)` and `held_out_slugs(cfg)` return) applies both rules and counts."""
    if retriever is None or k <= 0:
        return []
    if not held_out:
        return retriever.search(text, k=k)
    rule = held_out.rule if isinstance(held_out, HeldOut) else (lambda h: "slug" if hit_slug(h) in held_out else None)
    depth = k * 4
    while True:  # deeper when the refusals left fewer than k
        hits = retriever.search(text, k=depth)
        verdicts = [(hit, rule(hit)) for hit in hits]
        kept = [hit for hit, why in verdicts if why is None]
        if len(kept) >= k or len(hits) < depth or depth >= k * 64:
            break
        depth *= 4
    shown = kept[:k]
    last = hits.index(shown[-1]) if len(shown) == k else len(hits) - 1
    if isinstance(held_out, HeldOut):  # count what was refused above the last hit shown
        for hit, why in verdicts[:last + 1]:
            if why is not None:
                held_out.count(hit, why)
    return shown


def retriever_for(cfg: CetConfig, task: CodingTask, retriever: Any) -> Any:
    """What a task's contexts search: a repository task's own repository (its library code, without the task's
    function: knowledge/repository_index.py), else the knowledge base's `retriever`."""
    ref = task.repository
    if ref is None:
        return retriever
    from cet.execution.repository import snapshot_root
    from cet.knowledge.repository_index import repository_index

    root = snapshot_root(ref, cfg.exec.repos_dir)
    return repository_index(str(root.resolve()), ref.name).without(ref.path, ref.start_line, ref.end_line)


class HeldOutRetriever:
    """A retriever that never returns what `held_out` refuses (`retrieve` under every search): what a replay of
    held-out tasks, or training from served traffic, searches through, so no held-out exercise's own documents
    reach a context."""

    def __init__(self, retriever: Any, held_out: HeldOut) -> None:
        self.retriever, self.held_out = retriever, held_out

    def search(self, text: str, k: int = 5, **_: Any) -> list[Hit]:
        return retrieve(self.retriever, text, k, self.held_out)


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


def read_conversations(path: str | Path) -> tuple[list[dict[str, Any]], int]:
    """The synthetic conversations of a `cet data conversations` file (records with a task id and chat messages),
    and how many records were skipped (a line that does not parse, or a record of another shape). A missing file,
    or one with no conversation in it, is one clear error."""
    where = Path(path)
    if not where.is_file():
        raise CetError(f"conversations file not found: {where}")
    skipped: list[str] = []
    records = read_jsonl(where, skipped)
    good = [r for r in records if _is_conversation(r)]
    if not good:
        raise CetError(f"{where} holds no synthetic conversation (records with task_id and messages, as `cet data "
                       "conversations` writes)")
    return good, len(skipped) + len(records) - len(good)


def _is_conversation(record: Any) -> bool:
    return (isinstance(record, dict) and isinstance(record.get("task_id"), str)
            and isinstance(record.get("messages"), list)
            and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in record["messages"])
            and isinstance(record.get("first_attempt") or {}, dict)
            and isinstance(record.get("provenance") or {}, dict))


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
