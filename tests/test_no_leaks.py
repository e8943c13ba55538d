"""No held-out task leaks into retrieval or a prompt: the content rule (word 8-gram shingles and whole test lines,
cet.data.leakage) beside the slug rule, over a real SQLite knowledge base with the packaged embedder, the
real imported task sets and the real knowledge-base sources.

The texts that quote held-out tasks are built here from the loaded tasks, never written into this file, so this
file does not itself quote an evaluation task.

Measured false positives (the thresholds of cet.data.leakage, the task sets of tests/task_data.py):
* training-split task statements flagged as carrying a held-out task: 0 of 1,041;
* knowledge-base chunks of non-held-out exercises flagged (Exercism, LeetCode, Python docs, freeCodeCamp, Stack
  Exchange; 12,768 chunks): 1, exercism:python:resistor-color-expert#statement, which copies a 31-shingle
  paragraph of the held-out resistor-color-trio's statement (a real copy the slug rule cannot see).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from cet.config import CetConfig, load_config
from cet.data.leakage import HeldOutIndex, prompt_leaks, tokens
from cet.execution.tasks import CodingTask, TaskMetadata, iter_tasks
from cet.execution.test_split import split_tests
from cet.knowledge.chunking import chunk_document
from cet.knowledge.ingest import Ingestor
from cet.knowledge.records import Document, Hit
from cet.knowledge.retrieval import HybridRetriever
from cet.knowledge.sources import read_source
from cet.knowledge.stores.sqlite import SQLiteStore
from cet.phases.common import EVAL_SPLITS, HeldOut, held_out, held_out_slugs, hit_slug, retrieve, task_slug
from task_data import SETS, real_tasks_dir

MAX_TRAIN_STATEMENTS_FLAGGED = 2  # measured: 0
MAX_KB_CHUNKS_FLAGGED = 3  # measured: 1 (resistor-color-expert, a real copied paragraph)
PYTHON_DOCS = Path(CetConfig().sources.docs or "/nonexistent")


@functools.lru_cache(maxsize=1)
def all_tasks() -> dict[str, CodingTask]:
    where = real_tasks_dir()
    return {t.id: t for name in SETS if (where / f"{name}.jsonl").is_file()
            for t in iter_tasks(where / f"{name}.jsonl")}


def first(source: str, splits: frozenset[str] = EVAL_SPLITS, min_asserts: int = 0) -> CodingTask:
    """The first task (by id) of `source` in `splits`, with at least `min_asserts` assert lines."""
    for task_id in sorted(all_tasks()):
        task = all_tasks()[task_id]
        if task.metadata.source == source and task.metadata.split in splits \
                and len(asserts(task)) >= min_asserts and task.language == "python":
            return task
    pytest.skip(f"no {source} task of split {sorted(splits)} in the real task sets")


def asserts(task: CodingTask) -> list[str]:
    return [line.strip() for line in task.tests.splitlines() if line.strip().startswith("assert ")]


@pytest.fixture(scope="module")
def cfg() -> CetConfig:
    return load_config(exec={"tasks_dir": str(real_tasks_dir())})


@pytest.fixture(scope="module")
def guard(cfg: CetConfig) -> HeldOut:
    found = held_out(cfg)
    if found.index is None:
        pytest.skip("no held-out tasks were imported")
    return found


@pytest.fixture(scope="module")
def index(guard: HeldOut) -> HeldOutIndex:
    assert guard.index is not None
    return guard.index


# ------------------------------------------------------------------------------------ the index itself


def test_held_out_is_built_once_and_keeps_the_old_api(cfg: CetConfig, guard: HeldOut) -> None:
    again = held_out(cfg)
    assert again.index is guard.index and again is not guard  # one index per process, own drop counts
    slugs = held_out_slugs(cfg)
    assert isinstance(slugs, frozenset) and slugs == frozenset(guard)
    held = [t for t in all_tasks().values() if t.metadata.split in EVAL_SPLITS and t.language == "python"]
    assert len(guard.index) == len(held) >= 200  # every held-out task of every set, HumanEval included
    assert {task_slug(t.id) for t in held if t.metadata.source == "exercism"} <= guard
    assert not any(slug.isdigit() for slug in guard)  # HumanEval's bare numbers named Stack Exchange questions
    question = Hit(id="c", source="stackexchange", title="", path="", score=1.0, text="How to teach fractions?",
                   metadata={}, doc_id="stackexchange:matheducators.stackexchange.com:1")
    assert guard.rule(question) is None


def test_extra_tasks_are_held_out_too(cfg: CetConfig, guard: HeldOut) -> None:
    mine = CodingTask(
        id="mytasks/pelican-count", language="python", module="pelicans", entry_point="count_pelicans",
        statement="Count the pelicans standing on the harbour wall at low tide, given the tide table and the "
                  "sightings log of the harbour master, and report the busiest hour of the afternoon.",
        tests="from pelicans import count_pelicans\n\n\ndef test_busy():\n"
              "    assert count_pelicans(['14:00 3', '15:00 7', '16:00 2']) == '15:00'\n",
        test_names=["test_busy"], metadata=TaskMetadata(source="mine", split="test"))
    chunk = Hit(id="x", source="git", title="", path="", score=1.0, metadata={}, doc_id="git:r:t.py",
                text="def test_it():\n    assert count_pelicans(['14:00 3', '15:00 7', '16:00 2']) == '15:00'\n")
    assert guard.rule(chunk) is None
    with_mine = held_out(cfg, extra=[mine])
    assert with_mine.rule(chunk) == "content" and "pelican_count" in with_mine
    assert held_out(cfg, extra=[mine]).index is with_mine.index  # cached
    evaluation = [t for t in all_tasks().values() if t.metadata.split in EVAL_SPLITS][:5]
    assert held_out(cfg, extra=evaluation).index is guard.index  # already held out: the same index


def test_a_copied_assert_line_leaks_but_common_phrases_and_number_runs_do_not(index: HeldOutIndex) -> None:
    task = first("humaneval", min_asserts=3)
    line = max(asserts(task), key=len)
    renamed = line.replace("candidate", task.entry_point or "f")
    for text in (line, f"def test_mine():\n    {renamed}\n", re.sub(r"\s+", "", renamed).replace("assert", "assert ")):
        leaks = index.leaks(text)
        assert [(leak.task_id, leak.part) for leak in leaks] == [(task.id, "tests")], text
    innocent = ("Return the number of elements in the list that are greater than the given threshold. "
                "Given an array of integers nums and an integer target, return the indices of the two numbers. "
                "primes: 2 3 5 7 11 13 17 19 23 29 31 37 41 43 47 53 59 61 67 71 73 79 83 89 97; "
                "fibonacci: 1 1 2 3 5 8 13 21 34 55 89 144 233 377; assert sorted([3, 1, 2]) == [1, 2, 3]")
    assert index.leaks(innocent) == []


def test_a_copied_statement_or_solution_leaks(index: HeldOutIndex) -> None:
    leetcode = first("leetcode")
    quoted = f"I am stuck on this one, any hints?\n\n> {leetcode.statement}\n\nThanks!"
    assert (leetcode.id, "statement") in {(leak.task_id, leak.part) for leak in index.leaks(quoted)}
    humaneval = first("humaneval", min_asserts=3)
    assert humaneval.reference_solution is not None
    body = humaneval.reference_solution[len(humaneval.statement):]
    if len(tokens(body)) >= 12:
        assert (humaneval.id, "reference") in {(leak.task_id, leak.part) for leak in index.leaks(body)}


def test_no_training_statement_is_flagged_as_a_held_out_task(index: HeldOutIndex) -> None:
    train = [t for t in all_tasks().values() if t.metadata.split == "train"]
    assert len(train) > 500
    flagged = [(t.id, leak.task_id, leak.part, leak.shared) for t in train for leak in index.leaks(t.statement)]
    print(f"training statements flagged: {len(flagged)} of {len(train)}: {flagged}")
    assert len(flagged) <= MAX_TRAIN_STATEMENTS_FLAGGED, flagged


def _kb_chunks(real_exercism: Path) -> Iterator[tuple[str, Document, Hit]]:
    sources = [("exercism", real_exercism, {}), ("leetcode", "packaged", {})]
    shared = real_exercism.parent
    sources += [(name, shared / name, {}) for name in ("freecodecamp", "stackexchange") if (shared / name).is_dir()]
    if PYTHON_DOCS.is_dir():
        sources.append(("docs", PYTHON_DOCS, {"include": CetConfig().sources.docs_include}))
    for name, path, options in sources:
        for record in read_source(name, path, **options):  # type: ignore[arg-type]
            if isinstance(record, Document):
                for chunk in chunk_document(record):
                    yield name, record, Hit(id=chunk.chunk_id, source=chunk.source, title=chunk.title, path=chunk.path,
                                            score=0.0, text=chunk.text, metadata={}, doc_id=chunk.doc_id)


def test_knowledge_base_names_line_up_and_few_training_chunks_are_flagged(guard: HeldOut, index: HeldOutIndex,
                                                                          real_exercism: Path) -> None:
    held = {t.id: t for t in all_tasks().values() if t.metadata.split in EVAL_SPLITS}
    named: set[str] = set()
    flagged, checked = [], 0
    for _, _, hit in _kb_chunks(real_exercism):
        if hit_slug(hit) in guard:
            named.add(hit_slug(hit))
            continue
        checked += 1
        flagged += [(hit.doc_id, leak.task_id, leak.part, leak.shared) for leak in index.leaks(hit.text)]
    # the slug rule finds the documents of every held-out Exercism and LeetCode task: the names line up
    missing = [t.id for t in held.values()
               if t.metadata.source in ("exercism", "leetcode") and task_slug(t.id) not in named]
    assert missing == []
    print(f"knowledge-base chunks of non-held-out exercises flagged: {len(flagged)} of {checked}: {flagged}")
    assert checked > 5000
    assert len(flagged) <= MAX_KB_CHUNKS_FLAGGED, flagged


# ---------------------------------------------------------------------------- retrieval over a real store


@pytest.fixture(scope="module")
def leaky_kb(tmp_path_factory: pytest.TempPathFactory, embedder) -> Iterator[tuple[HybridRetriever, dict[str, str]]]:
    """A real SQLite knowledge base: (a) a git test file quoting a held-out HumanEval task's asserts, (b) a Stack
    Exchange question copying a held-out LeetCode statement, (d) a document named after a held-out Exercism
    exercise, and ordinary chunks (c)."""
    humaneval, leetcode, exercism = first("humaneval", min_asserts=4), first("leetcode"), first("exercism")
    entry = humaneval.entry_point or "f"
    quoted_tests = "\n".join(f"    {line.replace('candidate', entry)}" for line in asserts(humaneval))
    docs = [
        Document("git", "git:mathutils:tests/test_helpers.py#test_helpers", "test_helpers",
                 f"from mathutils.helpers import {entry}\n\n\ndef test_helpers():\n{quoted_tests}\n", "code",
                 "tests/test_helpers.py", "text", "python", {"licence": "MIT"}),
        Document("stackexchange", "stackexchange:stackoverflow.com:7301", "Stuck on an interview question",
                 f"I was given this in an interview and could not finish it:\n\n{leetcode.statement}\n\n"
                 "What is the right approach?", "qa", "Posts.xml", "text", "python", {"licence": "CC BY-SA 4.0"}),
        Document("exercism", f"exercism:python:{exercism.id.split('/', 1)[1]}#hints", "Hints",
                 "Think about the smallest input first, then the general case.", "statement", "hints.md",
                 "markdown", "python", {"licence": "MIT"}),
        Document("notes", "notes:float-close", "Are two floats close?",
                 "Compare floating point numbers with math.isclose(a, b, abs_tol=threshold), or check "
                 "abs(a - b) < threshold for every pair of numbers in a list (itertools.combinations).", "qa",
                 "notes/float-close.md", "markdown", "python", {"licence": "CC0"}),
        Document("notes", "notes:two-pointers", "Two pointers and hash maps",
                 "For array problems, a hash map from value to index or two pointers over a sorted copy often "
                 "turns a quadratic search into a linear one. Interview questions reward stating the approach.",
                 "qa", "notes/two-pointers.md", "markdown", "python", {"licence": "CC0"}),
        Document("notes", "notes:sort-tuples", "Sorting tuples in Python",
                 "Use sorted(pairs, key=lambda t: t[1]) to order a list of tuples by their second element.", "qa",
                 "notes/sort-tuples.md", "markdown", "python", {"licence": "CC0"}),
    ]
    store = SQLiteStore(tmp_path_factory.mktemp("leaks") / "kb.sqlite")
    Ingestor(store, embedder).ingest(docs, "mixed", "memory")
    queries = {"humaneval": humaneval.statement, "leetcode": leetcode.statement, "exercism": exercism.statement}
    yield HybridRetriever(store, embedder, candidates=20), queries
    store.close()


LEAKY = ("git:mathutils:tests/test_helpers.py#test_helpers", "stackexchange:stackoverflow.com:7301")
ORDINARY = {"notes:float-close", "notes:two-pointers", "notes:sort-tuples"}


def test_retrieval_never_returns_a_leaking_chunk_but_keeps_the_rest(cfg: CetConfig, guard: HeldOut,
                                                                    leaky_kb: tuple[HybridRetriever, dict[str, str]]
                                                                    ) -> None:
    retriever, queries = leaky_kb
    # without the filter the leaking chunks are what the held-out tasks' statements find first
    assert retriever.search(queries["humaneval"], k=1)[0].doc_id == LEAKY[0]
    assert retriever.search(queries["leetcode"], k=1)[0].doc_id == LEAKY[1]
    total = 6
    counter = held_out(cfg)
    for query in [*queries.values(), "test helpers asserts", "stuck on an interview question", "hints"]:
        for k in (1, 2, 3, total):
            found = [h.doc_id for h in retrieve(retriever, query, k, counter)]
            assert not set(found) & set(LEAKY), (query, k, found)
            assert not any(doc.startswith("exercism:") for doc in found)
            assert len(found) == min(k, len(ORDINARY))
            if k == total:
                assert set(found) == ORDINARY  # everything else is still returned
    assert retrieve(retriever, queries["humaneval"], 1, counter)[0].doc_id == "notes:float-close"
    report = counter.report()
    assert report["dropped"]["content"] > 0 and report["dropped"]["slug"] > 0
    reasons = {(e["rule"], e["part"]) for e in report["examples"]}
    assert ("content", "tests") in reasons and ("content", "statement") in reasons and ("slug", None) in reasons
    assert guard.dropped == {}  # each HeldOut counts its own refusals


def test_a_plain_frozenset_still_applies_the_slug_rule(guard: HeldOut,
                                                       leaky_kb: tuple[HybridRetriever, dict[str, str]]) -> None:
    retriever, queries = leaky_kb
    found = [h.doc_id for h in retrieve(retriever, queries["exercism"], 6, frozenset(guard))]
    assert not any(doc.startswith("exercism:") for doc in found) and len(found) == 5
    assert [h.doc_id for h in retrieve(retriever, "hints", 6)] and retrieve(None, "x", 3, guard) == []


# --------------------------------------------------------------------------------------------- prompts


def test_prompt_leaks_flags_hidden_tests_and_the_reference_but_not_the_visible_tests(index: HeldOutIndex) -> None:
    task = first("humaneval", min_asserts=5)
    split = split_tests(task, visible=3)
    hidden = [line for line in asserts(split.hidden) if "candidate" in line]
    assert split.n_visible == 3 and hidden
    prompt = f"{task.statement}\n\nThese tests must pass:\n{split.visible_text}\n\nWrite the function."
    for idx in (index, None):
        assert prompt_leaks(prompt, task, split.visible_text, idx) == []
        leaked = prompt_leaks(f"{prompt}\n{max(hidden, key=len)}\n", task, split.visible_text, idx)
        assert [(leak.task_id, leak.part) for leak in leaked] == [(task.id, "tests")]
        assert task.reference_solution is not None
        body = task.reference_solution[len(task.statement):]
        leaked = prompt_leaks(f"{prompt}\n\nA solution:\n{body}", task, split.visible_text, idx)
        assert (task.id, "reference") in {(leak.task_id, leak.part) for leak in leaked}
    assert index.prompt_leaks(prompt, task, split.visible_text) == []


@pytest.mark.parametrize("source", ["leetcode", "exercism"])
def test_prompt_leaks_per_function_tests(index: HeldOutIndex, source: str) -> None:
    task = next((t for t in sorted(all_tasks().values(), key=lambda t: t.id)
                 if t.metadata.source == source and t.metadata.split in EVAL_SPLITS and len(t.test_names) >= 6), None)
    if task is None:
        pytest.skip(f"the {source} task set could not be imported here (its data is missing)")
    split = split_tests(task, visible=3)
    prompt = f"{task.statement}\n\nVisible tests:\n{split.visible_text}\n"
    assert prompt_leaks(prompt, task, split.visible_text, index) == []
    last_test = re.findall(r"\ndef test_.*?(?=\n\n\n|\Z)", split.hidden.tests, re.S)[-1]
    leaked = prompt_leaks(f"{prompt}\n{last_test}\n", task, split.visible_text, index)
    assert [(leak.task_id, leak.part) for leak in leaked] == [(task.id, "tests")]


def test_prompt_leaks_flags_other_held_out_tasks(index: HeldOutIndex) -> None:
    task = first("humaneval", min_asserts=5)
    other, another = first("leetcode"), first("exercism")
    split = split_tests(task, visible=3)
    prompt = f"{task.statement}\n\n{split.visible_text}\n"
    leaked = prompt_leaks(f"{prompt}\nRelated problem:\n{other.statement}\n", task, split.visible_text, index)
    assert [(leak.task_id, leak.part) for leak in leaked] == [(other.id, "statement")]
    line = max((line for line in asserts(another)), key=len)
    leaked = prompt_leaks(f"{prompt}\nFor example:\n    {line}\n", task, split.visible_text, index)
    assert (another.id, "tests") in {(leak.task_id, leak.part) for leak in leaked}
    # a training task's own prompt may hold its statement and visible tests; nothing held out is in it
    train = first("leetcode", frozenset({"train"}))
    visible = split_tests(train, visible=3).visible_text
    assert prompt_leaks(f"{train.statement}\n\n{visible}", train, visible, index) == []
