"""Held-out leakage by content: does a text (a retrieved chunk, a prompt) carry a held-out task's tests,
reference solution or statement, whatever document it came from and whatever it is named?

The measure is the standard one for near-duplicate text (Broder's w-shingling; the GPT-3 and Llama
contamination checks use the same idea with longer n-grams): word 8-gram shingles, plus whole test lines.

* Normalisation: lowercased; a token is a run of word characters, dotted runs kept whole (``1.0``,
  ``self.nums``); punctuation, whitespace and layout are ignored, so re-indenting or re-spacing a copy
  (``[1.0,2.0]`` for ``[1.0, 2.0]``) does not hide it. ``candidate`` and every held-out entry-point name
  become one placeholder, so HumanEval's ``assert candidate(...)`` copied as ``assert has_close_elements(...)``
  still matches.
* A shingle is 8 consecutive tokens, and counts only with at least `MIN_WORDS` (2) tokens holding a letter:
  runs of numbers (primes, Fibonacci, ``1 2 3 4 5``) occur everywhere and prove nothing.
* Each held-out task gives three parts, each a set of shingles: its statement; its tests minus the
  statement's shingles (Exercism statements quote example calls from the tests); its reference solution
  minus both (a HumanEval reference repeats its prompt).
* Test lines: a line of a task's tests that checks something (``assert``, ``==``, ``expected`` or a call of the
  function) with a literal (a digit or a quote), at least `MIN_LINE_CHARS` (16) characters once whitespace is
  removed, is indexed whole. Most HumanEval asserts (``assert candidate(3.5) == 0.5``) are shorter than 8
  tokens and have no shingle; their whole line is still unmistakable.
* Only discriminative shingles and lines are indexed: one found in two or more tasks (held-out or background,
  any part) is boilerplate (``import pytest from solution import Solution``, HumanEval's ``METADATA`` header,
  phrasing shared by a LeetCode problem family) and says nothing about which task a text copies. The
  background is every task known not to be held out (train and dev).

Decision: a text leaks a task's
  * tests or reference when it holds `MIN_SHARED` (3) of its shingles (a verbatim run of 10 tokens: one long
    assert, a binding line of LeetCode cases, two lines of a solution) or one of its test lines;
  * statement when it holds 20 of its shingles (a copied run of about 27 words: a paragraph) or, for a short
    statement, at least 3 shingles and half of all it has.
Common phrases ("return the number of ...") are shorter than a shingle or shared by other tasks, so never
count.

Measured with the real task sets (290 held-out tasks) and asserted in tests/test_no_leaks.py. False positives:
0 of 1,041 training-task statements flagged; 1 of 12,768 knowledge-base chunks of non-held-out exercises
(Exercism, LeetCode, Python docs, freeCodeCamp, Stack Exchange), and that one is a real copy (Exercism's
resistor-color-expert repeats a paragraph of the held-out resistor-color-trio). Detection: a copied statement
288/290 (two HumanEval prompts are too short to tell apart); one copied hidden test function of a held-out
Exercism or LeetCode task 125/126; three HumanEval asserts copied with the function renamed 160/164, the first
assert alone 118/164 (the others are lines like ``assert candidate([]) == []`` that many tasks share); a
HumanEval reference body 141/164.

Speed: the index is two dicts (shingle hash -> task and part, line hash -> task), built in about 2 s for 290
held-out tasks against 1,177 background tasks; checking a 1,800-character chunk costs under a millisecond.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cet.execution.tasks import CodingTask

SHINGLE_WORDS = 8
MIN_WORDS = 2  # tokens holding a letter that a shingle needs to count
MIN_LINE_CHARS = 16  # non-space characters of an indexed test line
PARTS = ("statement", "tests", "reference")
MIN_SHARED = {"statement": 20, "tests": 3, "reference": 3}  # shingles that make a leak
SHORT_FRACTION = 0.5  # ...or this share of a statement's shingles (at least MIN_SHARED["tests"] of them)
SNIPPET_CHARS = 240
FUNCTION = "\x00fn"  # what `candidate` and the entry-point names become

_TOKEN = re.compile(r"\w+(?:\.\w+)*")
_WORD = re.compile(r"\w+")
_LETTER = re.compile(r"[^\W\d_]")
_LITERAL = re.compile(r"[\d'\"]")
_CHECK = re.compile(r"\bassert\b|==|\bexpected\b")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Leak:
    """A text carries part of held-out task `task_id`: `shared` of its shingles and `lines` of its test
    lines; `snippet` quotes the longest copied run (normalised) or a copied line."""

    task_id: str
    part: str  # "statement" | "tests" | "reference"
    shared: int
    snippet: str
    lines: int = 0


def tokens(text: str, functions: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """The normalised words of `text`, with `candidate` and the names in `functions` (lowercase) replaced by
    one placeholder."""
    names = functions | {"candidate"}
    return [FUNCTION if w in names else w for w in _TOKEN.findall(text.lower())]


def shingle_hashes(words: Sequence[str], size: int = SHINGLE_WORDS) -> list[int]:
    """The hash of each run of `size` consecutive words, in order (none when there are fewer words)."""
    return [hash(tuple(words[i:i + size])) for i in range(len(words) - size + 1)]


def strong_shingles(words: Sequence[str], size: int = SHINGLE_WORDS) -> set[int]:
    """The shingles of `words` with at least `MIN_WORDS` tokens holding a letter."""
    lettered = [1 if _LETTER.search(w) else 0 for w in words]
    found, count = set(), sum(lettered[:size - 1])
    for i in range(len(words) - size + 1):
        count += lettered[i + size - 1]
        if count >= MIN_WORDS:
            found.add(hash(tuple(words[i:i + size])))
        count -= lettered[i]
    return found


def line_keys(text: str, functions: frozenset[str] | set[str] = frozenset(),
              test_data_only: bool = False) -> dict[int, str]:
    """Each line of `text` as a hash of its lowercase, space-free form (function names replaced) -> the line.
    `test_data_only`: only lines with a literal and at least `MIN_LINE_CHARS` characters."""
    names = functions | {"candidate"}
    keys: dict[int, str] = {}
    for line in text.splitlines():
        if test_data_only and not _LITERAL.search(line):
            continue
        key = _SPACE.sub("", _WORD.sub(lambda m: FUNCTION if m.group() in names else m.group(), line.lower()))
        if not test_data_only or (len(key) >= MIN_LINE_CHARS and (FUNCTION in key or _CHECK.search(key))):
            keys.setdefault(hash(key), line.strip())
    return keys


def task_functions(task: CodingTask) -> set[str]:
    """The lowercase name of the function a task's tests call (`Solution.two_sum` gives `two_sum`)."""
    return {task.entry_point.rsplit(".", 1)[-1].lower()} if task.entry_point else set()


def task_parts(task: CodingTask, functions: frozenset[str] | set[str] = frozenset()) -> dict[str, set[int]]:
    """A task's three parts as sets of strong shingles, each without the shingles of the parts before it."""
    names = frozenset(functions) | task_functions(task)
    statement = strong_shingles(tokens(task.statement, names))
    tests = strong_shingles(tokens(task.tests, names)) - statement
    reference = strong_shingles(tokens(task.reference_solution or "", names)) - statement - tests
    return {"statement": statement, "tests": tests, "reference": reference}


def case_lines(task: CodingTask, functions: frozenset[str] | set[str] = frozenset()) -> dict[int, str]:
    """The task's test-data lines (hash -> line) that its statement does not hold."""
    names = frozenset(functions) | task_functions(task)
    lines = line_keys(task.tests, names, test_data_only=True)
    for key in line_keys(task.statement, names):
        lines.pop(key, None)
    return lines


def is_leak(part: str, shared: int, lines: int, size: int) -> bool:
    """The decision rule (module docstring): `shared` shingles and `lines` test lines of a part of `size`."""
    if part != "statement":
        return shared >= MIN_SHARED[part] or lines > 0
    return shared >= MIN_SHARED[part] or shared >= max(MIN_SHARED["tests"], SHORT_FRACTION * size)


class HeldOutIndex:
    """The discriminative shingles and test lines of the held-out tasks, for asking which of them a text copies.

    `background`: tasks known not to be held out (train and dev); what they share with a held-out task is not
    discriminative and is not indexed. Shingles are Python hashes (salted per process): an index lives in the
    process that built it and is never saved."""

    def __init__(self, held_out: Iterable[CodingTask], background: Iterable[CodingTask] = ()) -> None:
        tasks = list({t.id: t for t in held_out}.values())
        self.task_ids: list[str] = [t.id for t in tasks]
        self.functions: frozenset[str] = frozenset(name for t in tasks for name in task_functions(t))
        owner: dict[int, int] = {}  # shingle -> task number * len(PARTS) + part number
        line_owner: dict[int, int] = {}  # test line -> task number
        shared: set[int] = set()
        shared_lines: set[int] = set()
        for number, task in enumerate(tasks):
            for p, part in enumerate(task_parts(task, self.functions).values()):
                for h in part:
                    if owner.setdefault(h, number * len(PARTS) + p) // len(PARTS) != number:
                        shared.add(h)
            for key in case_lines(task, self.functions):
                if line_owner.setdefault(key, number) != number:
                    shared_lines.add(key)
        held = set(self.task_ids)
        for task in background:
            if task.id in held:
                continue
            for text in (task.statement, task.tests, task.reference_solution or ""):
                shared.update(h for h in shingle_hashes(tokens(text, self.functions)) if h in owner)
                shared_lines.update(k for k in line_keys(text, self.functions) if k in line_owner)
        for h in shared:
            del owner[h]
        for key in shared_lines:
            del line_owner[key]
        self._owner = owner
        self._line_owner = line_owner
        self._number = {task_id: n for n, task_id in enumerate(self.task_ids)}
        self._parts: dict[int, set[int]] = {}
        for h, code in owner.items():
            self._parts.setdefault(code, set()).add(h)
        self._lines: dict[int, set[int]] = {}
        for key, number in line_owner.items():
            self._lines.setdefault(number, set()).add(key)

    def __len__(self) -> int:
        return len(self.task_ids)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._number

    def part_shingles(self, task_id: str, part: str) -> set[int]:
        """The indexed (discriminative) shingles of one task's part."""
        return self._parts.get(self._number[task_id] * len(PARTS) + PARTS.index(part), set())

    def task_lines(self, task_id: str) -> set[int]:
        """The indexed (discriminative) test lines of one task."""
        return self._lines.get(self._number[task_id], set())

    def leaks(self, text: str, ignore: set[int] | frozenset[int] = frozenset(),
              skip_tasks: Iterable[str] = ()) -> list[Leak]:
        """Every held-out (task, part) that `text` leaks (`is_leak`), most shared first. Shingles and line
        hashes in `ignore` (what the text may hold) and the tasks in `skip_tasks` are not counted."""
        words = tokens(text, self.functions)
        skip = {self._number[t] for t in skip_tasks if t in self._number}
        found: dict[int, set[int]] = {}
        for h in shingle_hashes(words):
            code = self._owner.get(h)
            if code is not None and h not in ignore and code // len(PARTS) not in skip:
                found.setdefault(code, set()).add(h)
        found_lines: dict[int, dict[int, str]] = {}
        for key, line in line_keys(text, self.functions, test_data_only=True).items():
            number = self._line_owner.get(key)
            if number is not None and key not in ignore and number not in skip:
                found_lines.setdefault(number * len(PARTS) + PARTS.index("tests"), {})[key] = line
        leaks = []
        for code in found.keys() | found_lines.keys():
            task_id, part = self.task_ids[code // len(PARTS)], PARTS[code % len(PARTS)]
            hashes, lines = found.get(code, set()), found_lines.get(code, {})
            if is_leak(part, len(hashes), len(lines), len(self._parts.get(code, ()))):
                leaks.append(Leak(task_id, part, len(hashes), _quote(words, hashes, lines), len(lines)))
        return sorted(leaks, key=lambda leak: (-leak.shared - leak.lines, leak.task_id, leak.part))

    def prompt_leaks(self, prompt: str, task: CodingTask, visible_text: str) -> list[Leak]:
        """See `prompt_leaks`; this index supplies the other held-out tasks."""
        return prompt_leaks(prompt, task, visible_text, self)


def prompt_leaks(prompt: str, task: CodingTask, visible_text: str, index: HeldOutIndex | None = None) -> list[Leak]:
    """What a prompt for `task` must not hold: the task's hidden tests or its reference solution, and (with
    `index`) any other held-out task's statement, tests or reference.

    `visible_text` is what every condition may show of the task besides its statement (its visible tests, as
    the prompt renders them). The prompt may hold the statement and `visible_text`: their shingles and lines
    are never counted, for the task itself or against other tasks. Without `index`, the task's own test
    boilerplate is not told apart from its hidden cases (the index knows what other tasks share)."""
    functions = (index.functions if index is not None else frozenset()) | task_functions(task)
    words = tokens(prompt, functions)
    present = set(shingle_hashes(words))
    prompt_lines = line_keys(prompt, functions, test_data_only=True)
    allowed_text = f"{task.statement}\n{visible_text}"
    allowed = set(shingle_hashes(tokens(allowed_text, functions))) | set(line_keys(allowed_text, functions))
    own = task_parts(task, functions)
    own_lines = set(case_lines(task, functions))
    known = index is not None and task.id in index
    leaks = []
    for part in ("tests", "reference"):
        hidden = own[part] - allowed
        hidden_lines = own_lines - allowed if part == "tests" else set()
        if known:  # boilerplate other tasks share is not hidden content
            hidden &= index.part_shingles(task.id, part)  # type: ignore[union-attr]
            hidden_lines &= index.task_lines(task.id)  # type: ignore[union-attr]
        hit = present & hidden
        lines = {k: line for k, line in prompt_lines.items() if k in hidden_lines}
        if is_leak(part, len(hit), len(lines), len(hidden)):
            leaks.append(Leak(task.id, part, len(hit), _quote(words, hit, lines), len(lines)))
    if index is not None:
        leaks += index.leaks(prompt, ignore=allowed | own["tests"] | own["reference"] | own_lines,
                             skip_tasks=[task.id])
    return sorted(leaks, key=lambda leak: (-leak.shared - leak.lines, leak.task_id, leak.part))


def _quote(words: list[str], hits: set[int], lines: dict[int, str]) -> str:
    """The longest run of consecutive copied shingles, or else the first copied line."""
    best_start = best_len = start = length = 0
    for i, h in enumerate(shingle_hashes(words)):
        if h in hits:
            start, length = (start, length + 1) if length else (i, 1)
            if length > best_len:
                best_start, best_len = start, length
        else:
            length = 0
    if best_len:
        run = words[best_start:best_start + best_len + SHINGLE_WORDS - 1]
        text = " ".join("<fn>" if w == FUNCTION else w for w in run)
    else:
        text = next(iter(lines.values()), "")
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS - 2].rstrip() + " …"
