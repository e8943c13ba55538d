"""freeCodeCamp curriculum reader: challenge markdown files from ``curriculum/challenges/<lang>/...``.

Each challenge is one ``.md`` file: YAML front matter (``id``, ``title``, ``challengeType``,
``dashedName``, ...) then ``# --section--`` headings outside code fences:

* ``# --description--`` and ``# --instructions--``: prose;
* ``# --hints--``: each hint is prose followed by a test code fence (usually ```js);
* ``# --seed--``: ``## --seed-contents--`` (starter code fences), ``## --before-user-code--`` and
  ``## --after-user-code--`` (hidden scaffolding, not shown to learners);
* ``# --solutions--``: code fences, separate solutions divided by ``---`` lines;
* ``# --questions--`` with ``## --text--``, ``## --answers--`` (divided by ``---``) and
  ``## --video-solution--`` (the 1-based number of the right answer) for quiz and video challenges.

A challenge yields a ``statement`` document, a ``tests`` document when it has hints, and one ``solution``
document per solution. The tree is walked lazily in sorted order; unusable files become ``SkippedRecord`` s.
The curriculum is BSD-3-Clause licensed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cet.errors import CetError
from cet.knowledge.records import Document, SkippedRecord
from cet.knowledge.sources.files import UnusableFile, read_text_file

SOURCE = "freecodecamp"
LICENCE = "BSD-3-Clause (freeCodeCamp curriculum)"
MAX_FILE_BYTES = 1_000_000

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
class Challenge:
    """One parsed challenge file."""

    front_matter: dict[str, Any]
    sections: dict[str, str]  # "description", "seed/seed-contents", "questions/answers", ...

    def section(self, name: str) -> str:
        return self.sections.get(name, "").strip()


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
    try:
        data = yaml.safe_load(text[4 : 4 + end.start()])
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" near line {mark.line + 2}" if mark is not None else ""
        raise ChallengeError(f"unparseable YAML front matter{where}") from exc
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
    sections = split_sections(body)
    challenge = Challenge(front_matter, sections)
    if not challenge.section("description") and not challenge.section("questions/text"):
        raise ChallengeError("no # --description-- section")
    return challenge


# -------------------------------------------------------------------------------------- documents


def _fenced(block: CodeBlock) -> str:
    longest = max((len(run) for run in re.findall(r"`{3,}", block.code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{block.language}\n{block.code}\n{fence}"


def challenge_language(challenge: Challenge) -> str | None:
    """The language of the first seed, solution or quiz fence, else the challengeType's, else the first
    description fence's, else None."""
    found = _first_fence_language(challenge, ("seed/seed-contents", "solutions", "questions/text"))
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


def _quiz_text(challenge: Challenge) -> str:
    question = challenge.section("questions/text")
    if not question:
        return ""
    parts = [f"## Question\n\n{question}"]
    answers = split_on_dividers(challenge.section("questions/answers"))
    if answers:
        listed = "\n\n".join(f"Answer {n}:\n\n{answer}" for n, answer in enumerate(answers, start=1))
        parts.append(f"## Answers\n\n{listed}")
    solution = challenge.section("questions/video-solution")
    if solution:
        parts.append(f"## Correct answer\n\n{solution}")
    return "\n\n".join(parts)


def statement_text(challenge: Challenge, title: str) -> str:
    parts = [f"# {title}"]
    for name, heading in (("description", "Description"), ("instructions", "Instructions")):
        if challenge.section(name):
            parts.append(f"## {heading}\n\n{challenge.section(name)}")
    quiz = _quiz_text(challenge)
    if quiz:
        parts.append(quiz)
    seed = code_blocks(challenge.section("seed/seed-contents"))
    if seed:
        parts.append("## Starter code\n\n" + "\n\n".join(_fenced(block) for block in seed))
    return "\n\n".join(parts)


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


def _block_names(relative: Path) -> tuple[str | None, str | None]:
    """(block, superblock) from ``.../<superblock>/<block>/<challenge>.md``."""
    parents = relative.parent.parts
    block = parents[-1] if parents else None
    superblock = _strip_order(parents[-2]) if len(parents) >= 2 else None
    if superblock in ("blocks", "english", "challenges", "curriculum"):
        superblock = None
    return block, superblock


@dataclass(frozen=True)
class _Where:
    relative: Path
    doc_stem: str  # relative path without .md, POSIX style


def challenge_documents(challenge: Challenge, where: _Where) -> list[Document]:
    """The statement, tests and solution documents of one challenge."""
    fm = challenge.front_matter
    title = str(fm.get("title") or fm.get("dashedName") or where.relative.stem).strip()
    hints = [hint for hint in parse_hints(challenge.section("hints")) if hint.text or hint.tests]
    block, superblock = _block_names(where.relative)
    metadata: dict[str, Any] = {
        "licence": LICENCE,
        "challenge_id": None if fm.get("id") is None else str(fm.get("id")),
        "challenge_type": fm.get("challengeType"),
        "dashed_name": fm.get("dashedName"),
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
    """``.md`` files under root, depth first in sorted order, without listing the whole tree up front."""
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
        elif entry.name.endswith(".md") and entry.is_file():
            yield Path(entry.path)


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
    base = root.parent if root.is_file() else root
    for file in files:
        relative = file.relative_to(base)
        where = _Where(relative, relative.with_suffix("").as_posix())
        try:
            challenge = parse_challenge(read_text_file(file, MAX_FILE_BYTES))
        except (ChallengeError, UnusableFile) as exc:
            yield SkippedRecord(SOURCE, relative.as_posix(), str(exc))
            continue
        yield from challenge_documents(challenge, where)
