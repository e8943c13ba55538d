"""freeCodeCamp curriculum reader: challenge markdown files from ``curriculum/challenges/<lang>/...``.

Each challenge is one ``.md`` file: YAML front matter (``id``, ``title``, ``challengeType``,
``dashedName``, ...) then ``# --section--`` headings outside code fences:

* ``# --description--`` and ``# --instructions--``: prose;
* ``# --hints--``: each hint is prose followed by a test code fence (usually ```js);
* ``# --seed--``: ``## --seed-contents--`` (starter code fences), ``## --before-user-code--`` and
  ``## --after-user-code--`` (hidden scaffolding, not shown to learners);
* ``# --solutions--``: code fences, separate solutions divided by ``---`` lines;
* ``# --questions--``: one or more questions, each ``## --text--``, ``## --answers--`` (divided by ``---``; a
  wrong answer may carry ``### --feedback--``) and ``## --video-solution--`` (the 1-based number of the right
  answer), for video and lecture challenges;
* ``# --quizzes--``: ``## --quiz--`` sets of ``### --question--``, each ``#### --text--``,
  ``#### --distractors--`` (divided by ``---``) and ``#### --answer--``;
* ``# --interactive--``: a lecture's body, prose with ``:::interactive_editor`` ... ``:::`` around code fences;
* ``# --assignment--`` and ``# --scene--`` (a JSON fence whose ``commands`` carry the dialogue lines) for the
  English curriculum's dialogues; ``# --fillInTheBlank--`` with ``## --sentence--`` (``BLANK`` marks each gap) and
  ``## --blanks--`` (the answers, divided by ``---``, each with an optional ``### --feedback--``).

A challenge yields a ``statement`` document (every format's content: questions with their answers, the right one
marked, distractors marked, feedback kept; lectures; dialogue lines; gaps with their answers), a ``tests`` document
when it has hints, and one ``solution`` document per solution. The tree is walked lazily in sorted order; unusable
files become ``SkippedRecord`` s, and so does a symbolic link to a file outside the tree. Document ids and paths
start at the ``curriculum`` folder whatever path is given (so ingesting ``.../challenges`` and then
``.../challenges/english/blocks`` stores each document once). The superblock comes from the path in the older
layout (``<NN-superblock>/<block>/``) or from ``curriculum/structure/superblocks/*.json`` when the tree has it.
Front matter is YAML without aliases or anchors, at most ``MAX_FRONT_MATTER_BYTES``.
Licence: freeCodeCamp's software is BSD-3-Clause; the curriculum content is licensed separately by
freeCodeCamp.org under CC BY-SA 4.0 (the repository's curriculum licence file), which is what is recorded.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cet.errors import CetError
from cet.knowledge.records import Document, SkippedRecord
from cet.knowledge.sources.files import UnusableFile, outside_tree, read_text_file, safe_yaml

SOURCE = "freecodecamp"
LICENCE = "CC BY-SA 4.0 (freeCodeCamp.org curriculum content)"
MAX_FILE_BYTES = 1_000_000
MAX_FRONT_MATTER_BYTES = 20_000

FENCE_LANGUAGES: dict[str, str] = {
    "js": "javascript", "javascript": "javascript", "jsx": "javascript", "mjs": "javascript",
    "ts": "typescript", "typescript": "typescript", "tsx": "typescript", "html": "html", "css": "css",
    "scss": "scss", "sass": "scss", "py": "python", "python": "python", "sh": "bash", "bash": "bash",
    "shell": "bash", "sql": "sql", "json": "json", "java": "java", "c": "c", "cpp": "cpp", "c++": "cpp",
}
# challengeType -> language when no seed or solution fence names one (0 html, 1 js, 5 bonfire = js).
TYPE_LANGUAGES: dict[int, str] = {0: "html", 1: "javascript", 5: "javascript"}
_SKIP_DIRS = frozenset({"node_modules", "__pycache__"})
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_SECTION = re.compile(r"^(?P<level>#{1,2}) --(?P<name>[a-z0-9-]+)--\s*$", re.IGNORECASE)
_MARKER = re.compile(r"^(?P<level>#{1,6}) --(?P<name>[a-z0-9-]+)--\s*$", re.IGNORECASE)  # any level
_EDITOR = re.compile(r"^:::(?:interactive_editor)?\s*$")  # a lecture's interactive-editor fences
_DIVIDER = re.compile(r"^-{3,}\s*$")


# ------------------------------------------------------------------------------------------ parsing


@dataclass
class CodeBlock:
    language: str
    code: str


@dataclass
class Hint:
    text: str
    tests: list[CodeBlock] = field(default_factory=list)


@dataclass
class Part:
    """A ``--name--`` heading of any level and what lies under it: its own text (up to its first sub-heading), its
    sub-parts in order (repeats kept), and every line under it, sub-headings included."""

    name: str
    level: int
    text: list[str] = field(default_factory=list)
    parts: list[Part] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)

    def own(self) -> str:
        return "\n".join(self.text).strip()

    def whole(self) -> str:
        return "\n".join(self.raw).strip()


@dataclass
class Challenge:
    """One parsed challenge file."""

    front_matter: dict[str, Any]
    sections: dict[str, str]  # "description", "seed/seed-contents", "questions/answers", ... (first of each)
    parts: list[Part] = field(default_factory=list)  # every top-level section as a tree, repeats kept

    def section(self, name: str) -> str:
        return self.sections.get(name, "").strip()

    def part(self, name: str) -> Part | None:
        return next((part for part in self.parts if part.name == name), None)


class ChallengeError(ValueError):
    """A challenge file that cannot be used; the message is the skip reason."""


def _fence_open(line: str) -> re.Match[str] | None:
    return _FENCE.match(line)


def _is_fence_close(line: str, fence: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(fence[0] * len(fence)) and set(stripped) == {fence[0]}


def _outside_fences(lines: list[str]) -> Iterator[tuple[str, bool]]:
    """Each line with whether it is outside any code fence (fence lines themselves count as inside)."""
    fence: str | None = None
    for line in lines:
        if fence is not None:
            if _is_fence_close(line, fence):
                fence = None
            yield line, False
            continue
        opened = _fence_open(line)
        if opened:
            fence = opened.group("fence")
            yield line, False
        else:
            yield line, True


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """The YAML front matter as a mapping and the markdown after it; raises ChallengeError."""
    if not text.startswith("---\n"):
        raise ChallengeError("no YAML front matter")
    end = re.search(r"^---[ \t]*$", text[4:], re.MULTILINE)
    if end is None:
        raise ChallengeError("front matter is never closed with ---")
    raw = text[4 : 4 + end.start()]
    if len(raw.encode()) > MAX_FRONT_MATTER_BYTES:
        raise ChallengeError(f"front matter too large ({len(raw.encode())} bytes > {MAX_FRONT_MATTER_BYTES})")
    try:
        data = safe_yaml(raw)
    except RecursionError:
        raise ChallengeError("unparseable YAML front matter: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" near line {mark.line + 2}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "unparseable"
        raise ChallengeError(f"unparseable YAML front matter{where}: {problem}") from exc
    if not isinstance(data, dict):
        raise ChallengeError("front matter is not a YAML mapping")
    return data, text[4 + end.end() :]


def split_sections(body: str) -> dict[str, str]:
    """``# --name--`` sections as ``name`` and ``## --sub--`` inside them as ``name/sub`` (fences respected).

    A parent section's own text is what comes before its first subsection.
    """
    sections: dict[str, list[str]] = {}
    top: str | None = None
    current: str | None = None
    for line, outside in _outside_fences(body.split("\n")):
        heading = _SECTION.match(line) if outside else None
        if heading:
            name = heading.group("name").lower()
            if heading.group("level") == "#":
                top = current = name
            else:
                current = f"{top}/{name}" if top else name
            sections.setdefault(current, [])
        elif current is not None:
            sections[current].append(line)
    return {name: "\n".join(lines).strip() for name, lines in sections.items()}


def section_tree(body: str) -> list[Part]:
    """The ``--name--`` headings of every level (outside code fences) as a tree of `Part` s; text before the first
    heading (an HTML comment, say) belongs to no part."""
    roots: list[Part] = []
    stack: list[Part] = []
    for line, outside in _outside_fences(body.split("\n")):
        heading = _MARKER.match(line) if outside else None
        if heading:
            part = Part(heading.group("name").lower(), len(heading.group("level")))
            while stack and stack[-1].level >= part.level:
                stack.pop()
            for ancestor in stack:
                ancestor.raw.append(line)
            (stack[-1].parts if stack else roots).append(part)
            stack.append(part)
        elif stack:
            for ancestor in stack:
                ancestor.raw.append(line)
            stack[-1].text.append(line)
    return roots


def code_blocks(text: str) -> list[CodeBlock]:
    """The fenced code blocks of a markdown fragment, in order."""
    blocks: list[CodeBlock] = []
    fence: str | None = None
    language, lines = "", []
    for line in text.split("\n"):
        if fence is None:
            opened = _fence_open(line)
            if opened:
                fence, language, lines = opened.group("fence"), opened.group("info").strip().lower(), []
        elif _is_fence_close(line, fence):
            blocks.append(CodeBlock(language.split()[0] if language else "", "\n".join(lines)))
            fence = None
        else:
            lines.append(line)
    return blocks


def split_on_dividers(text: str) -> list[str]:
    """Pieces of a markdown fragment between ``---`` lines that are outside code fences."""
    pieces: list[list[str]] = [[]]
    for line, outside in _outside_fences(text.split("\n")):
        if outside and _DIVIDER.match(line):
            pieces.append([])
        else:
            pieces[-1].append(line)
    return [piece for piece in ("\n".join(lines).strip() for lines in pieces) if piece]


def parse_hints(text: str) -> list[Hint]:
    """Hints: prose, then the code fence(s) that test it."""
    hints: list[Hint] = []
    prose: list[str] = []
    fence: str | None = None
    language, code = "", []
    for line in text.split("\n"):
        if fence is not None:
            if _is_fence_close(line, fence):
                if not hints or prose:
                    hints.append(Hint("\n".join(prose).strip()))
                    prose = []
                hints[-1].tests.append(CodeBlock(language, "\n".join(code)))
                fence = None
            else:
                code.append(line)
        elif opened := _fence_open(line):
            fence, language, code = opened.group("fence"), opened.group("info").strip().lower(), []
        elif line.strip() or prose:
            prose.append(line)
    if "\n".join(prose).strip():
        hints.append(Hint("\n".join(prose).strip()))
    return hints


def parse_challenge(text: str) -> Challenge:
    """A Challenge from a file's text; raises ChallengeError when the file is not a usable challenge."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    front_matter, body = split_front_matter(text)
    challenge = Challenge(front_matter, split_sections(body), section_tree(body))
    if not any(part.name in CONTENT_SECTIONS and part.whole() for part in challenge.parts):
        raise ChallengeError("no content section (# --description--, --questions--, --quizzes--, --interactive--, "
                             "--fillInTheBlank--, --scene-- or --assignment--)")
    return challenge


CONTENT_SECTIONS = frozenset({"description", "instructions", "questions", "quizzes", "interactive", "fillintheblank",
                              "scene", "assignment"})


# -------------------------------------------------------------------------------------- documents


def _fenced(block: CodeBlock) -> str:
    longest = max((len(run) for run in re.findall(r"`{3,}", block.code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{block.language}\n{block.code}\n{fence}"


def challenge_language(challenge: Challenge) -> str | None:
    """The language of the first seed, solution or quiz fence, else the challengeType's, else the first
    description fence's, else None."""
    found = _first_fence_language(challenge, ("seed/seed-contents", "solutions", "questions/text", "interactive"))
    if found:
        return found
    challenge_type = challenge.front_matter.get("challengeType")
    if isinstance(challenge_type, int) and challenge_type in TYPE_LANGUAGES:
        return TYPE_LANGUAGES[challenge_type]
    return _first_fence_language(challenge, ("description",))


def _first_fence_language(challenge: Challenge, sections: tuple[str, ...]) -> str | None:
    for name in sections:
        for block in code_blocks(challenge.section(name)):
            if block.language in FENCE_LANGUAGES:
                return FENCE_LANGUAGES[block.language]
    return None


def _joined(parts: list[str]) -> str:
    return "\n\n".join(part for part in parts if part)


def _with_feedback(piece: str) -> tuple[str, str]:
    """An answer (or blank) and the ``### --feedback--`` that follows it, if any."""
    whole = section_tree("# --piece--\n" + piece)[0]
    feedback = next((part.whole() for part in whole.parts if part.name == "feedback"), "")
    return whole.own(), feedback


def _answers_text(answers: list[str], right: str | None) -> str:
    """Numbered answers, the right one marked (`right` is its 1-based number), feedback after a wrong one."""
    lines = []
    for number, piece in enumerate(answers, start=1):
        answer, feedback = _with_feedback(piece)
        mark = " (correct)" if right is not None and right.strip() == str(number) else ""
        lines.append(f"Answer {number}{mark}:\n\n{answer}" + (f"\n\nFeedback: {feedback}" if feedback else ""))
    if right and not any(right.strip() == str(n) for n in range(1, len(answers) + 1)):
        lines.append(f"Correct answer: {right.strip()}")
    return _joined(lines)


def questions_text(part: Part) -> str:
    """A ``--questions--`` section: each question (``--text--``) with its answers, the right one marked by
    ``--video-solution--``, and the feedback on wrong ones."""
    questions: list[dict[str, Any]] = []
    for child in part.parts:
        if child.name == "text":
            questions.append({"text": child.whole(), "answers": [], "right": None})
        elif child.name == "answers" and questions:
            questions[-1]["answers"] = split_on_dividers(child.whole())
        elif child.name == "video-solution" and questions:
            questions[-1]["right"] = child.own()
    many = len(questions) > 1
    return _joined([f"## Question{f' {n}' if many else ''}\n\n" + _joined([q["text"], _answers_text(
        q["answers"], q["right"])]) for n, q in enumerate(questions, start=1)])


def quizzes_text(part: Part) -> str:
    """A ``--quizzes--`` section: each quiz's questions with the answer and the distractors, marked as such."""
    quizzes = [quiz for quiz in part.parts if quiz.name == "quiz"]
    out = []
    for q_number, quiz in enumerate(quizzes, start=1):
        lines = [f"## Quiz {q_number}" if len(quizzes) > 1 else "## Quiz"]
        for n, question in enumerate((q for q in quiz.parts if q.name == "question"), start=1):
            pieces = {child.name: child for child in question.parts}
            text = pieces["text"].whole() if "text" in pieces else ""
            answer = pieces["answer"].whole() if "answer" in pieces else ""
            distractors = split_on_dividers(pieces["distractors"].whole()) if "distractors" in pieces else []
            lines.append(_joined([f"### Question {n}", text, f"Answer (correct):\n\n{answer}" if answer else "",
                                  *(f"Distractor {k}:\n\n{d}" for k, d in enumerate(distractors, start=1))]))
        out.append(_joined(lines))
    return _joined(out)


def fill_in_text(part: Part) -> str:
    """A ``--fillInTheBlank--`` section: the sentence (``BLANK`` marks each gap), then each gap's answer and
    feedback."""
    pieces = {child.name: child for child in part.parts}
    sentence = pieces["sentence"].whole() if "sentence" in pieces else ""
    blanks = split_on_dividers(pieces["blanks"].whole()) if "blanks" in pieces else []
    lines = [f"Sentence: {sentence}"] if sentence else []
    for n, piece in enumerate(blanks, start=1):
        answer, feedback = _with_feedback(piece)
        lines.append(f"Blank {n}: {answer}" + (f"\nFeedback: {feedback}" if feedback else ""))
    return _joined(["## Fill in the blank", *lines]) if lines else ""


def dialogue_text(part: Part) -> str:
    """A ``--scene--`` section's dialogue: ``Character: line`` for each command that speaks (its JSON fence); ""
    when the fence is not a scene."""
    lines = []
    for block in code_blocks(part.whole()):
        try:
            scene = json.loads(block.code)
        except ValueError:
            continue
        commands = scene.get("commands") if isinstance(scene, dict) else None
        for command in commands if isinstance(commands, list) else []:
            spoken = command.get("dialogue") if isinstance(command, dict) else None
            if isinstance(spoken, dict) and str(spoken.get("text") or "").strip():
                who = str(command.get("character") or "").strip()
                lines.append(f"{who}: {spoken['text'].strip()}" if who else spoken["text"].strip())
    return _joined(["## Dialogue", "\n".join(lines)]) if lines else ""


def lecture_text(part: Part) -> str:
    """An ``--interactive--`` lecture body without the ``:::interactive_editor`` / ``:::`` lines around its code."""
    lines = [line for line, outside in _outside_fences(part.whole().split("\n"))
             if not (outside and _EDITOR.match(line.strip()))]
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return f"## Lecture\n\n{body}" if body else ""


def statement_text(challenge: Challenge, title: str) -> str:
    parts = [f"# {title}"]
    for name, heading in (("description", "Description"), ("instructions", "Instructions"),
                          ("assignment", "Assignment")):
        if challenge.section(name):
            parts.append(f"## {heading}\n\n{challenge.section(name)}")
    for name, render in (("interactive", lecture_text), ("scene", dialogue_text), ("fillintheblank", fill_in_text),
                         ("questions", questions_text), ("quizzes", quizzes_text)):
        part = challenge.part(name)
        if part is not None:
            parts.append(render(part))
    seed = code_blocks(challenge.section("seed/seed-contents"))
    if seed:
        parts.append("## Starter code\n\n" + "\n\n".join(_fenced(block) for block in seed))
    return _joined(parts)


def tests_text(hints: list[Hint], title: str) -> str:
    parts = [f"# Tests for {title}"]
    for number, hint in enumerate(hints, start=1):
        piece = f"## Test {number}\n\n{hint.text}".rstrip()
        if hint.tests:
            piece += "\n\n" + "\n\n".join(_fenced(block) for block in hint.tests)
        parts.append(piece)
    return "\n\n".join(parts)


def solution_text(solution: str, number: int, title: str) -> str:
    blocks = code_blocks(solution)
    body = "\n\n".join(_fenced(block) for block in blocks) if blocks else solution
    return f"# Solution {number} for {title}\n\n{body}"


def _strip_order(name: str) -> str:
    """``02-javascript-algorithms`` -> ``javascript-algorithms``: superblock folders carry an order prefix."""
    return re.sub(r"^\d+-", "", name)


def _block_names(relative: Path, superblocks: dict[str, str]) -> tuple[str | None, str | None]:
    """(block, superblock) from ``.../<superblock>/<block>/<challenge>.md`` (the older layout), or for today's
    ``.../blocks/<block>/<challenge>.md`` from the superblock structure files (`superblock_index`)."""
    parents = relative.parent.parts
    block = parents[-1] if parents else None
    superblock = _strip_order(parents[-2]) if len(parents) >= 2 else None
    if superblock in ("blocks", "english", "challenges", "curriculum"):
        superblock = None
    return block, superblock or (superblocks.get(block) if block else None)


def superblock_index(curriculum: Path | None) -> dict[str, str]:
    """block -> superblock from ``<curriculum>/structure/superblocks/<superblock>.json`` (each names its blocks,
    directly or inside chapters and modules: every string or ``dashedName`` found in it); {} without those files."""
    folder = curriculum / "structure" / "superblocks" if curriculum is not None else None
    index: dict[str, str] = {}
    if folder is None or not folder.is_dir():
        return index
    for file in sorted(folder.glob("*.json")):
        try:
            data = json.loads(read_text_file(file, MAX_FILE_BYTES))
        except (UnusableFile, ValueError):
            continue
        for name in _names_in(data):
            index.setdefault(name, file.stem)
    return index


def _names_in(data: Any) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, list):
        for item in data:
            yield from _names_in(item)
    elif isinstance(data, dict):
        for key, value in data.items():
            if key in ("blocks", "chapters", "modules", "dashedName"):
                yield from _names_in(value)
            elif isinstance(value, (list, dict)):
                yield from _names_in(value)


def curriculum_root(path: Path) -> Path | None:
    """The nearest folder named ``curriculum`` at or above `path` (resolved), else None."""
    for folder in (path.resolve(), *path.resolve().parents):
        if folder.name == "curriculum":
            return folder
    return None


@dataclass(frozen=True)
class _Where:
    relative: Path  # from the folder above ``curriculum`` when there is one, else from the path given
    doc_stem: str  # relative path without .md, POSIX style
    superblocks: dict[str, str] = field(default_factory=dict)


def _scalar(value: Any) -> Any:
    """A front-matter value kept only when it is a plain scalar (a list or mapping where a name belongs is dropped)."""
    return value if isinstance(value, (str, int, float, bool)) else None


def challenge_documents(challenge: Challenge, where: _Where) -> list[Document]:
    """The statement, tests and solution documents of one challenge."""
    fm = challenge.front_matter
    title = str(_scalar(fm.get("title")) or _scalar(fm.get("dashedName")) or where.relative.stem).strip()
    hints = [hint for hint in parse_hints(challenge.section("hints")) if hint.text or hint.tests]
    block, superblock = _block_names(where.relative, where.superblocks)
    metadata: dict[str, Any] = {
        "licence": LICENCE,
        "challenge_id": None if _scalar(fm.get("id")) is None else str(fm.get("id")),
        "challenge_type": _scalar(fm.get("challengeType")),
        "dashed_name": _scalar(fm.get("dashedName")),
        "block": block,
        "superblock": superblock,
        "tests_present": bool(hints),
        "difficulty": None,
    }
    language = challenge_language(challenge)

    def document(part: str, kind: str, text: str) -> Document:
        return Document(
            source=SOURCE, doc_id=f"{SOURCE}:{where.doc_stem}#{part}", title=title, text=text, kind=kind,
            path=where.relative.as_posix(), format="markdown", language=language, metadata=dict(metadata),
        )

    documents = [document("statement", "statement", statement_text(challenge, title))]
    if hints:
        documents.append(document("tests", "tests", tests_text(hints, title)))
    for number, solution in enumerate(split_on_dividers(challenge.section("solutions")), start=1):
        documents.append(document(f"solution-{number}", "solution", solution_text(solution, number, title)))
    return documents


# ------------------------------------------------------------------------------------------ walking


def _markdown_files(root: Path) -> Iterator[Path]:
    """``.md`` files under root, depth first in sorted order, without listing the whole tree up front (linked
    folders are not entered; linked files are yielded, and refused later when they point outside the tree)."""
    try:
        with os.scandir(root) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(".") or entry.name in _SKIP_DIRS:
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _markdown_files(Path(entry.path))
        elif entry.name.endswith(".md") and _is_file(entry):
            yield Path(entry.path)


def _is_file(entry: os.DirEntry[str]) -> bool:
    """A file, or a link that cannot be followed (a loop: yielded, then refused as pointing nowhere inside)."""
    try:
        return entry.is_file()
    except OSError:
        return entry.is_symlink()


def read_freecodecamp(path: Path) -> Iterator[Document | SkippedRecord]:
    """Documents from a freeCodeCamp curriculum tree (or one challenge file).

    Raises ``CetError`` only when the path does not exist.
    """
    root = Path(path)
    if not root.exists():
        raise CetError(f"freeCodeCamp curriculum not found: {root}")
    return _read_tree(root)


def _read_tree(root: Path) -> Iterator[Document | SkippedRecord]:
    files = iter([root]) if root.is_file() else _markdown_files(root)
    tree = root.parent if root.is_file() else root
    curriculum = curriculum_root(tree)
    base = curriculum.parent if curriculum is not None else tree.resolve()
    superblocks = superblock_index(curriculum)
    for file in files:
        relative = file.resolve().relative_to(base) if not file.is_symlink() else \
            file.parent.resolve().relative_to(base) / file.name
        if outside_tree(file, tree):
            yield SkippedRecord(SOURCE, relative.as_posix(), "symbolic link to a file outside the tree (not read)")
            continue
        where = _Where(relative, relative.with_suffix("").as_posix(), superblocks)
        try:
            challenge = parse_challenge(read_text_file(file, MAX_FILE_BYTES))
        except (ChallengeError, UnusableFile) as exc:
            yield SkippedRecord(SOURCE, relative.as_posix(), str(exc))
            continue
        yield from challenge_documents(challenge, where)
