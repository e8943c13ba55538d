"""Stack Exchange data dump reader: question/answer pairs from ``Posts.xml``.

The public dumps (archive.org ``<site>-Posts.7z``, extracted to ``<site>/Posts.xml``) hold one
``<row .../>`` per post inside ``<posts>``. ``PostTypeId="1"`` rows are questions (``Title``, ``Tags``,
``AcceptedAnswerId``), ``PostTypeId="2"`` rows are answers (``ParentId``). Bodies are HTML, escaped in
the attribute. Other post types (tag wikis, moderator nominations, ...) are not Q&A and are ignored.

Each question is paired with its accepted answer, or failing that its best-scored answer, and yields one
``Document`` of kind ``qa``. The file is read twice, streaming both times:

1. the first pass keeps, per question that passes the score/tag filters, four small ints (accepted id,
   accepted score, best answer id and score), plus a bitmap of every question id seen so answers to
   rejected questions are dropped at once;
2. the second pass converts the needed bodies to markdown and emits each pair as soon as both halves are
   read. The half read first waits in a pending store that holds at most ``PENDING_MEMORY_CHARS`` of text
   in memory and spills the rest to a temporary SQLite file.

Memory is therefore O(kept questions x a few ints + max question id / 8 bytes + PENDING_MEMORY_CHARS +
one row), whatever the size of the file. Bad rows and bad XML inside a dump become ``SkippedRecord`` s; a file
that is no Posts dump at all (empty, compressed, plain text, another root element) is one ``CetError`` at the
call. An answer without a body is never chosen (the next best answer is). A question whose answers are not in the
file is reported as such: "answers cut off" when the file ends early, "answers not in the file" when its
``AnswerCount`` says it has some (a partial dump), "no answer" only when it has none. In a directory, a link to a
file outside it is refused. Licence: a row's ``ContentLicense``; without one, the licence Stack Exchange applied
at the post's ``CreationDate`` (CC BY-SA 2.5 before 2011-04-08, 3.0 before 2018-05-02, 4.0 after).
"""

from __future__ import annotations

import json
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from cet.errors import CetError
from cet.knowledge.records import Document, SkippedRecord
from cet.knowledge.sources.files import outside_tree

SOURCE = "stackexchange"
DEFAULT_LICENCE = "CC BY-SA 4.0"  # posts from 2018-05-02 on, when a row names none
LICENCE_ERAS = (("2011-04-08", "CC BY-SA 2.5"), ("2018-05-02", "CC BY-SA 3.0"))  # (first day after, licence)
UNDATED_LICENCE = "CC BY-SA (version unknown: no ContentLicense or CreationDate)"
MAX_BODY_BYTES = 200_000
PENDING_MEMORY_CHARS = 32_000_000
QUESTION, ANSWER = 1, 2

# Tag -> language name. Names follow the Exercism track slugs so filters agree across sources.
LANGUAGE_TAGS: dict[str, str] = {
    "python": "python", "javascript": "javascript", "js": "javascript", "typescript": "typescript",
    "java": "java", "c": "c", "c++": "cpp", "cpp": "cpp", "c#": "csharp", "csharp": "csharp",
    "go": "go", "golang": "go", "rust": "rust", "ruby": "ruby", "php": "php", "kotlin": "kotlin",
    "swift": "swift", "scala": "scala", "haskell": "haskell", "r": "r", "perl": "perl", "lua": "lua",
    "bash": "bash", "shell": "shell", "sh": "shell", "powershell": "powershell", "sql": "sql",
    "html": "html", "css": "css", "dart": "dart", "elixir": "elixir", "erlang": "erlang",
    "clojure": "clojure", "f#": "fsharp", "ocaml": "ocaml", "julia": "julia", "matlab": "matlab",
    "objective-c": "objective-c", "vb.net": "vbnet", "groovy": "groovy", "fortran": "fortran",
    "cobol": "cobol", "assembly": "assembly", "common-lisp": "common-lisp", "scheme": "scheme",
    "racket": "racket", "zig": "zig", "nim": "nim", "crystal": "crystal", "elm": "elm", "d": "d",
    "prolog": "prolog", "pascal": "pascal", "delphi": "delphi", "visual-basic": "vbnet",
}
_VERSIONED_TAG = re.compile(r"^(?P<base>[a-z#+]+)-\d[\w.]*$")  # python-3.x, java-8, c++-11
_GLUED_VERSION = re.compile(r"^(?P<base>c\+\+|c#|python|php|java)\d[\w.]*$")  # c++17, python3, php7
_DOMAIN = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")
_VISIBLE = re.compile(r"<[^>]*>|&nbsp;|&#160;|&#xa0;|\s", re.IGNORECASE)  # what an empty body may hold


# ---------------------------------------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True)
class _Post:
    """The fields of a row both passes need; bodies stay in ``attrib`` until the second pass."""

    post_id: int
    post_type: int
    score: int
    parent_id: int | None
    accepted_id: int | None
    tags: tuple[str, ...]
    too_big: bool
    attrib: dict[str, str]
    empty: bool = False  # no body at all (an answer so is never chosen)


@dataclass(frozen=True, slots=True)
class _XmlFailure:
    reason: str


def _rows(path: Path) -> Iterator[dict[str, str] | _XmlFailure]:
    """Attributes of each ``row`` element, streaming; a parse error ends the stream with an _XmlFailure."""
    with path.open("rb") as fh:
        root: Element | None = None
        try:
            for event, elem in iterparse(fh, events=("start", "end")):
                if event == "start":
                    root = elem if root is None else root
                    continue
                if elem.tag == "row":
                    attrib = dict(elem.attrib)
                    elem.clear()
                    if root is not None:
                        root.clear()
                    yield attrib
        except ParseError as exc:
            line, column = getattr(exc, "position", (0, 0))
            message = re.sub(r": line \d+, column \d+$", "", str(exc))
            yield _XmlFailure(f"malformed XML at line {line}, column {column} ({message}); stopped reading")
        except DefusedXmlException as exc:
            yield _XmlFailure(f"unsafe XML refused ({type(exc).__name__}); stopped reading")


def _int(attrib: dict[str, str], name: str) -> int | None:
    value = attrib.get(name)
    return None if value is None or value.strip() == "" else int(value)


def parse_tags(raw: str) -> tuple[str, ...]:
    """Tags from ``<python><list>`` (classic dumps) or ``|python|list|`` (newer dumps), lower-cased."""
    raw = raw.strip()
    parts = raw.split("|") if raw.startswith("|") else re.findall(r"<([^<>]+)>", raw)
    return tuple(tag.strip().lower() for tag in parts if tag.strip())


def _parse_row(attrib: dict[str, str]) -> _Post | str:
    """A _Post, or the reason the row is unusable."""
    try:
        post_id, post_type = _int(attrib, "Id"), _int(attrib, "PostTypeId")
    except ValueError:
        return "non-integer Id or PostTypeId"
    if post_id is None or post_type is None:
        return "row without Id or PostTypeId"
    try:
        score = _int(attrib, "Score") or 0
        parent_id, accepted_id = _int(attrib, "ParentId"), _int(attrib, "AcceptedAnswerId")
    except ValueError:
        return f"post {post_id}: non-integer Score, ParentId or AcceptedAnswerId"
    if post_type == ANSWER and parent_id is None:
        return f"answer {post_id}: no ParentId"
    body = attrib.get("Body", "")
    too_big = len(body) > MAX_BODY_BYTES // 4 and len(body.encode("utf-8")) > MAX_BODY_BYTES
    tags = parse_tags(attrib.get("Tags", ""))
    empty = not _VISIBLE.sub("", body)  # "<p></p>", "<p>&nbsp;</p>": nothing a reader would see
    return _Post(post_id, post_type, score, parent_id, accepted_id, tags, too_big, attrib, empty)


# ---------------------------------------------------------------------------------------- first pass


class _IdBitmap:
    """A set of non-negative ints as a growable bitmap (1 bit per id); huge ids fall back to a set."""

    LIMIT = 1 << 28  # 32 MiB of bitmap at most

    def __init__(self) -> None:
        self._bits = bytearray()
        self._overflow: set[int] = set()

    def add(self, value: int) -> None:
        if not 0 <= value < self.LIMIT:
            self._overflow.add(value)
            return
        byte = value >> 3
        if byte >= len(self._bits):
            self._bits.extend(bytes(max(byte + 1 - len(self._bits), len(self._bits))))
        self._bits[byte] |= 1 << (value & 7)

    def __contains__(self, value: int) -> bool:
        if not 0 <= value < self.LIMIT:
            return value in self._overflow
        byte = value >> 3
        return byte < len(self._bits) and bool(self._bits[byte] & (1 << (value & 7)))


@dataclass(slots=True)
class _Candidates:
    """What the first pass learns about a kept question's answers."""

    accepted_id: int | None
    accepted_score: int | None = None
    best_id: int | None = None
    best_score: int = 0

    def offer(self, answer_id: int, score: int) -> None:
        if answer_id == self.accepted_id:
            self.accepted_score = score
        better = score > self.best_score or (score == self.best_score and answer_id < (self.best_id or 0))
        if self.best_id is None or better:
            self.best_id, self.best_score = answer_id, score

    def choice(self) -> tuple[int, bool] | None:
        """(answer id, is accepted) of the answer to pair with, or None when no answer was read."""
        if self.accepted_id is not None and self.accepted_score is not None:
            return self.accepted_id, True
        return (self.best_id, False) if self.best_id is not None else None


@dataclass
class _Plan:
    candidates: dict[int, _Candidates] = field(default_factory=dict)
    orphans: set[int] = field(default_factory=set)  # answers whose question is not in the file
    answer_counts: dict[int, int] = field(default_factory=dict)  # kept question -> its AnswerCount, when > 0
    bodiless: dict[int, int] = field(default_factory=dict)  # question -> answers read without a body
    cut: str | None = None  # why the file ended early, when it did

    def unanswered(self, question_id: int) -> str:
        """Why a kept question has no answer to pair with."""
        count = self.answer_counts.get(question_id, 0)
        if self.bodiless.get(question_id):
            return f"only answers without a body ({self.bodiless[question_id]})"
        if self.cut is not None and count:
            return f"answers cut off (AnswerCount {count}; the file ends early)"
        if count:
            return f"answers not in the file (AnswerCount {count}; a partial dump)"
        return "no answer"


def _wanted(post: _Post, min_score: int, tags: frozenset[str] | None) -> bool:
    if post.too_big or post.score < min_score:
        return False
    return tags is None or any(tag in tags for tag in post.tags)


def _plan(path: Path, min_score: int, tags: frozenset[str] | None) -> _Plan:
    """First pass: for each kept question, which answer to pair it with (small ints only)."""
    plan = _Plan()
    seen = _IdBitmap()
    early: dict[int, list[tuple[int, int]]] = {}  # question id -> answers read before the question
    for attrib in _rows(path):
        if isinstance(attrib, _XmlFailure):
            plan.cut = attrib.reason
            continue
        post = _parse_row(attrib)
        if not isinstance(post, _Post):
            continue
        if post.post_type == QUESTION and post.post_id not in seen:
            seen.add(post.post_id)
            waiting = early.pop(post.post_id, [])
            if _wanted(post, min_score, tags):
                candidates = _Candidates(post.accepted_id)
                for answer_id, score in waiting:
                    candidates.offer(answer_id, score)
                plan.candidates[post.post_id] = candidates
                count = _safe_int(post.attrib.get("AnswerCount")) or 0
                if count > 0:
                    plan.answer_counts[post.post_id] = count
        elif post.post_type == ANSWER and post.empty:
            if post.parent_id is not None:  # nothing to pair with: the next best answer is chosen
                plan.bodiless[post.parent_id] = plan.bodiless.get(post.parent_id, 0) + 1
        elif post.post_type == ANSWER and not post.too_big and post.parent_id is not None:
            candidates = plan.candidates.get(post.parent_id)
            if candidates is not None:
                candidates.offer(post.post_id, post.score)
            elif post.parent_id not in seen:
                early.setdefault(post.parent_id, []).append((post.post_id, post.score))
    plan.orphans = {answer_id for answers in early.values() for answer_id, _ in answers}
    return plan


# --------------------------------------------------------------------------------------- second pass


class _PendingStore:
    """Halves of pairs waiting for their other half: in memory up to a budget, then in temporary SQLite."""

    def __init__(self, budget_chars: int) -> None:
        self._budget = budget_chars
        self._used = 0
        self._memory: dict[tuple[int, int], dict[str, Any]] = {}
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._db: sqlite3.Connection | None = None

    def put(self, role: int, question_id: int, data: dict[str, Any]) -> None:
        size = len(data.get("text", "")) + len(data.get("title", ""))
        if self._used + size <= self._budget:
            self._memory[(role, question_id)] = data
            self._used += size
            return
        db = self._database()
        db.execute("INSERT OR REPLACE INTO pending VALUES (?, ?, ?)", (role, question_id, json.dumps(data)))

    def pop(self, role: int, question_id: int) -> dict[str, Any] | None:
        data = self._memory.pop((role, question_id), None)
        if data is not None:
            self._used -= len(data.get("text", "")) + len(data.get("title", ""))
            return data
        if self._db is None:
            return None
        row = self._db.execute(
            "SELECT data FROM pending WHERE role = ? AND question_id = ?", (role, question_id)
        ).fetchone()
        if row is None:
            return None
        self._db.execute("DELETE FROM pending WHERE role = ? AND question_id = ?", (role, question_id))
        return json.loads(row[0])

    def has(self, role: int, question_id: int) -> bool:
        if (role, question_id) in self._memory:
            return True
        if self._db is None:
            return False
        query = "SELECT 1 FROM pending WHERE role = ? AND question_id = ?"
        return self._db.execute(query, (role, question_id)).fetchone() is not None

    @property
    def spilled(self) -> bool:
        return self._db is not None

    def _database(self) -> sqlite3.Connection:
        if self._db is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="cet-stackexchange-")
            self._db = sqlite3.connect(Path(self._tmp.name) / "pending.sqlite")
            self._db.execute(
                "CREATE TABLE pending (role INTEGER, question_id INTEGER, data TEXT, "
                "PRIMARY KEY (role, question_id))"
            )
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        self._memory.clear()


@dataclass(frozen=True)
class _Site:
    name: str
    is_domain: bool


def _site_for(posts_xml: Path) -> _Site:
    """The site a dump belongs to, from its directory (``stackoverflow.com/Posts.xml``) or file name."""
    stem = posts_xml.stem
    if stem.lower().endswith("-posts") and _DOMAIN.match(stem[: -len("-posts")].lower()):
        return _Site(stem[: -len("-posts")].lower(), True)
    parent = posts_xml.resolve().parent.name.lower()
    if _DOMAIN.match(parent):
        return _Site(parent, True)
    return _Site(parent or SOURCE, False)


def language_for(tags: tuple[str, ...], default: str | None = None) -> str | None:
    """The first tag that names a programming language (``python-3.x`` counts as python), else default."""
    for tag in tags:
        if tag in LANGUAGE_TAGS:
            return LANGUAGE_TAGS[tag]
        versioned = _VERSIONED_TAG.match(tag) or _GLUED_VERSION.match(tag)
        if versioned and versioned.group("base") in LANGUAGE_TAGS:
            return LANGUAGE_TAGS[versioned.group("base")]
    return default


def _question_data(post: _Post) -> dict[str, Any]:
    return {
        "title": (post.attrib.get("Title") or "").strip() or f"Stack Exchange question {post.post_id}",
        "text": html_to_markdown(post.attrib.get("Body", "")),
        "score": post.score,
        "tags": list(post.tags),
        "view_count": _safe_int(post.attrib.get("ViewCount")),
        "licence": licence_of(post.attrib),
    }


def licence_of(attrib: dict[str, str]) -> str:
    """The row's ``ContentLicense``, else the licence in force on its ``CreationDate``."""
    if attrib.get("ContentLicense", "").strip():
        return attrib["ContentLicense"].strip()
    created = attrib.get("CreationDate", "").strip()[:10]
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", created):
        return UNDATED_LICENCE
    return next((licence for until, licence in LICENCE_ERAS if created < until), DEFAULT_LICENCE)


def _answer_data(post: _Post) -> dict[str, Any]:
    return {
        "answer_id": post.post_id,
        "text": html_to_markdown(post.attrib.get("Body", "")),
        "score": post.score,
        "licence": licence_of(post.attrib),
    }


def _safe_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _labelled(label: str, body: str) -> str:
    """``Label: body``, or the label on its own line when the body opens with a block (fence, list, ...)."""
    if not body:
        return f"{label}:"
    opens_block = body.startswith(("```", "~~~", "    ", "- ", "> ", "#", "|")) or re.match(r"\d+\. ", body)
    return f"{label}:\n\n{body}" if opens_block else f"{label}: {body}"


@dataclass(frozen=True)
class _Context:
    site: _Site
    path: Path
    language: str | None


def _document(ctx: _Context, question_id: int, question: dict[str, Any], answer: dict[str, Any],
              accepted: bool) -> Document:
    title = question["title"]
    text = _labelled("Question", f"{title}\n\n{question['text']}".strip()) + "\n\n" + _labelled(
        "Answer", answer["text"]
    )
    url = f"https://{ctx.site.name}/q/{question_id}" if ctx.site.is_domain else str(ctx.path)
    metadata: dict[str, Any] = {
        "licence": question["licence"],
        "votes": question["score"],
        "answer_votes": answer["score"],
        "accepted_answer": accepted,
        "tags": question["tags"],
        "question_id": question_id,
        "answer_id": answer["answer_id"],
        "view_count": question["view_count"],
        "site": ctx.site.name,
    }
    if answer["licence"] != question["licence"]:
        metadata["answer_licence"] = answer["licence"]
    return Document(
        source=SOURCE,
        doc_id=f"{SOURCE}:{ctx.site.name}:{question_id}",
        title=title,
        text=text,
        kind="qa",
        path=url,
        format="markdown",
        language=language_for(tuple(question["tags"]), ctx.language),
        metadata=metadata,
    )


def _pair(ctx: _Context, plan: _Plan, budget: int) -> Iterator[Document | SkippedRecord]:
    """Second pass: convert the needed bodies and emit each pair once both halves are read."""
    pending = _PendingStore(budget)
    where = str(ctx.path)
    try:
        for ordinal, attrib in enumerate(_rows(ctx.path), start=1):
            if isinstance(attrib, _XmlFailure):
                yield from _leftovers(ctx, plan)
                yield SkippedRecord(SOURCE, where, attrib.reason)
                return
            post = _parse_row(attrib)
            if isinstance(post, str):
                row_id = attrib.get("Id", "").strip()
                row_where = f"{where}#Id={row_id}" if row_id else f"{where}#row{ordinal}"
                yield SkippedRecord(SOURCE, row_where, post)
            elif post.post_type in (QUESTION, ANSWER):
                yield from _take(ctx, plan, pending, post)
        yield from _leftovers(ctx, plan)
    finally:
        pending.close()


def _take(ctx: _Context, plan: _Plan, pending: _PendingStore,
          post: _Post) -> Iterator[Document | SkippedRecord]:
    """What one question or answer row of the second pass contributes."""
    if post.too_big:
        where = f"{ctx.path}#Id={post.post_id}"
        yield SkippedRecord(SOURCE, where, f"body larger than {MAX_BODY_BYTES // 1000} kB")
    elif post.post_type == QUESTION:
        yield from _take_question(ctx, plan, pending, post)
    else:
        yield from _take_answer(ctx, plan, pending, post)


def _take_question(ctx: _Context, plan: _Plan, pending: _PendingStore,
                   post: _Post) -> Iterator[Document | SkippedRecord]:
    candidates = plan.candidates.get(post.post_id)
    if candidates is None:  # filtered out
        return
    where = f"{ctx.path}#Id={post.post_id}"
    choice = candidates.choice()
    if choice is None:
        del plan.candidates[post.post_id]
        yield SkippedRecord(SOURCE, where, plan.unanswered(post.post_id))
    elif pending.has(QUESTION, post.post_id):
        yield SkippedRecord(SOURCE, where, "duplicate question Id")
    else:
        answer = pending.pop(ANSWER, post.post_id)
        if answer is None:
            pending.put(QUESTION, post.post_id, _question_data(post))
        else:
            del plan.candidates[post.post_id]
            yield _document(ctx, post.post_id, _question_data(post), answer, choice[1])


def _take_answer(ctx: _Context, plan: _Plan, pending: _PendingStore,
                 post: _Post) -> Iterator[Document | SkippedRecord]:
    if post.post_id in plan.orphans:
        where = f"{ctx.path}#Id={post.post_id}"
        yield SkippedRecord(SOURCE, where, f"answer to question {post.parent_id}, which is not in the dump")
        return
    question_id = post.parent_id if post.parent_id is not None else -1
    candidates = plan.candidates.get(question_id)
    choice = candidates.choice() if candidates is not None else None
    if choice is None or choice[0] != post.post_id:  # not the answer chosen for a kept question
        return
    question = pending.pop(QUESTION, question_id)
    if question is None:
        pending.put(ANSWER, question_id, _answer_data(post))
    else:
        del plan.candidates[question_id]
        yield _document(ctx, question_id, question, _answer_data(post), choice[1])


def _leftovers(ctx: _Context, plan: _Plan) -> Iterator[SkippedRecord]:
    """Pairs the second pass could not complete (the file changed between passes, or was cut short)."""
    for question_id, candidates in plan.candidates.items():
        choice = candidates.choice()
        reason = plan.unanswered(question_id) if choice is None else \
            f"answer {choice[0]} or its question not read back"
        yield SkippedRecord(SOURCE, f"{ctx.path}#Id={question_id}", reason)
    plan.candidates.clear()


def _is_posts_file(path: Path) -> bool:
    name = path.name.lower()
    return name == "posts.xml" or name.endswith("-posts.xml")


def _dump_files(path: Path) -> tuple[list[Path], list[Path]]:
    """The Posts files to read (the path itself, or ``Posts.xml`` / ``<site>-Posts.xml`` in dir and dir/*) and
    those refused: links, in a directory, to a file outside it."""
    if not path.exists():
        raise CetError(f"Stack Exchange dump not found: {path}")
    if path.is_file():
        return [path], []
    direct = [p for p in sorted(path.iterdir()) if p.is_file() and _is_posts_file(p)]
    nested = [p for p in sorted(path.glob("*/*")) if p.is_file() and _is_posts_file(p)]
    if not direct and not nested:
        raise CetError(f"Stack Exchange dump not found: no Posts.xml in {path} or its subdirectories")
    found = direct + nested
    refused = [p for p in found if outside_tree(p, path)]
    return [p for p in found if p not in refused], refused


_MAGIC = ((b"\x1f\x8b", "gzip-compressed (gunzip it first)"), (b"BZh", "bzip2-compressed (bunzip2 it first)"),
          (b"7z\xbc\xaf\x27\x1c", "a 7z archive (extract Posts.xml)"),
          (b"PK\x03\x04", "a zip archive (extract Posts.xml)"))


def check_dump(path: Path) -> None:
    """Raise a one-line ``CetError`` when `path` is no Posts dump at all: empty, compressed, not XML, or XML whose
    root element is not ``<posts>``. A dump that is good at its start and breaks later is read up to the break."""
    with path.open("rb") as fh:
        head = fh.read(65_536)
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise CetError(f"{path} is {what}, not a Posts.xml")
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not text:
        raise CetError(f"{path} is empty: not a Posts.xml")
    if not text.startswith(b"<"):
        raise CetError(f"{path} is not XML (it starts with {text[:24]!r}): not a Posts.xml")
    with path.open("rb") as fh:
        try:
            _, root = next(iterparse(fh, events=("start",)))
        except DefusedXmlException as exc:
            raise CetError(f"{path}: unsafe XML refused ({type(exc).__name__})") from None
        except (ParseError, StopIteration) as exc:
            raise CetError(f"{path} is not a well-formed XML document ({exc or 'no element'}): not a "
                           "Posts.xml") from None
    if root.tag != "posts":
        raise CetError(f"{path} has the root element <{root.tag}>, not <posts>: not a Posts.xml")


def read_stackexchange(path: Path, min_score: int = 0, tags: list[str] | None = None,
                       language: str | None = None) -> Iterator[Document | SkippedRecord]:
    """Question/answer pairs from a Stack Exchange ``Posts.xml`` (or a directory holding one per site).

    ``min_score`` and ``tags`` (keep questions with any of them) filter questions; ``language`` is the
    fallback language when no tag names one. Raises ``CetError`` at the call when the path does not exist or a
    file is no Posts dump at all (`check_dump`).
    """
    files, refused = _dump_files(Path(path))
    for file in files:
        check_dump(file)
    wanted_tags = frozenset(tag.strip().lower() for tag in tags) if tags else None
    return _read_all(files, refused, min_score, wanted_tags, language)


def _read_all(files: list[Path], refused: list[Path], min_score: int, tags: frozenset[str] | None,
              language: str | None) -> Iterator[Document | SkippedRecord]:
    for link in refused:
        yield SkippedRecord(SOURCE, str(link), "symbolic link to a file outside the tree (not read)")
    for posts_xml in files:
        plan = _plan(posts_xml, min_score, tags)
        ctx = _Context(_site_for(posts_xml), posts_xml, language)
        yield from _pair(ctx, plan, PENDING_MEMORY_CHARS)


# ------------------------------------------------------------------------------------ HTML to markdown

_BLOCK_TAGS = frozenset(
    "p div section article header footer main aside figure figcaption table thead tbody tfoot dl dt dd "
    "details summary".split()
)
_SKIP_TAGS = frozenset({"script", "style", "head", "title", "noscript"})
_INDENT = "\x01"  # a hard indent that survives line stripping; becomes a space at the end
_PLACEHOLDER = re.compile(r"\x00[BI](\d+)\x00")
_BLOCK_LINE = re.compile(r"^(?P<prefix>[ >]*)\x00B(?P<n>\d+)\x00$", re.MULTILINE)


def html_to_markdown(html: str) -> str:
    """Readable markdown from a post body: ``<pre><code>`` becomes a fenced block, ``<code>`` backticks.

    Code is set aside as placeholders while the prose is whitespace-collapsed, then put back verbatim.
    """
    if "<" not in html and "&" not in html:
        return html.strip()
    soup = BeautifulSoup(html, "html.parser")
    codes: list[str] = []
    try:
        text = _render_children(soup, codes)
    except RecursionError:
        return _tidy(soup.get_text())
    return _restore(_tidy(text).replace(_INDENT, " "), codes)


def _render_children(node: Tag, codes: list[str]) -> str:
    parts: list[str] = []
    for child in node.children:
        if isinstance(child, Comment | Declaration | Doctype | ProcessingInstruction):
            continue
        if isinstance(child, NavigableString):
            parts.append(_collapse_whitespace(str(child)))
        elif isinstance(child, Tag):
            parts.append(_render_tag(child, codes))
    return "".join(parts)


def _collapse_whitespace(text: str) -> str:
    """Runs of whitespace to one space, as a browser renders prose (str.split is far faster than re.sub)."""
    if not text or text.isspace():
        return " " if text else ""
    lead = " " if text[0].isspace() else ""
    trail = " " if text[-1].isspace() else ""
    return lead + " ".join(text.split()) + trail


def _render_tag(tag: Tag, codes: list[str]) -> str:
    name = tag.name.lower()
    if name in _SKIP_TAGS:
        return ""
    if name == "pre":
        return "\n\n" + _stash(codes, "B", _fenced(tag)) + "\n\n"
    if name == "code":
        return _stash(codes, "I", _inline_code(tag.get_text()))
    if name == "br":
        return "\n"
    if name == "hr":
        return "\n\n---\n\n"
    if name in ("ul", "ol"):
        return "\n\n" + _render_list(tag, codes, ordered=name == "ol") + "\n\n"
    if name == "blockquote":
        inner = _tidy(_render_children(tag, codes))
        return "\n\n" + "\n".join(f"> {line}".rstrip() for line in inner.splitlines()) + "\n\n"
    if re.fullmatch(r"h[1-6]", name):
        heading = _tidy(_render_children(tag, codes)).replace("\n", " ")
        return "\n\n" + "#" * int(name[1]) + " " + heading + "\n\n"
    return _render_inline(tag, name, codes)


def _render_inline(tag: Tag, name: str, codes: list[str]) -> str:
    if name == "img":
        return f"![{tag.get('alt') or ''}]({tag.get('src') or ''})"
    inner = _render_children(tag, codes)
    if name in _BLOCK_TAGS:
        return "\n\n" + inner + "\n\n"
    if name == "tr":
        return "\n" + inner + "\n"
    if name in ("td", "th"):
        return " | " + inner.strip()
    if name in ("strong", "b") and inner.strip():
        return f"**{inner.strip()}**"
    if name in ("em", "i") and inner.strip():
        return f"*{inner.strip()}*"
    if name == "a":
        href = str(tag.get("href") or "")
        label = inner.strip()
        return f"[{label}]({href})" if href.startswith(("http://", "https://")) and label != href else inner
    return inner


def _render_list(tag: Tag, codes: list[str], ordered: bool) -> str:
    lines: list[str] = []
    items = [child for child in tag.children if isinstance(child, Tag) and child.name.lower() == "li"]
    for number, item in enumerate(items, start=1):
        marker = f"{number}. " if ordered else "- "
        indent = _INDENT * len(marker)
        body = _tidy(_render_children(item, codes)).splitlines() or [""]
        if body[0].startswith("\x00B"):  # a code block cannot share the marker's line
            body.insert(0, "")
        lines.append((marker + body[0]).rstrip())
        lines.extend(indent + line if line else "" for line in body[1:])
    return "\n".join(lines)


def _stash(codes: list[str], kind: str, text: str) -> str:
    codes.append(text)
    return f"\x00{kind}{len(codes) - 1}\x00"


def _code_language(pre: Tag) -> str:
    """The fence language from Stack Exchange's ``lang-xxx`` / ``language-xxx`` classes, if any."""
    classes: list[str] = []
    for node in (pre, pre.find("code")):
        if isinstance(node, Tag):
            value = node.get("class") or []
            classes.extend(value if isinstance(value, list) else str(value).split())
    for cls in classes:
        for prefix in ("lang-", "language-"):
            if cls.startswith(prefix) and cls[len(prefix):] not in ("", "none", "default"):
                return cls[len(prefix):]
    return ""


def _fenced(pre: Tag) -> str:
    code = pre.get_text().strip("\n").rstrip()
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{_code_language(pre)}\n{code}\n{fence}"


def _inline_code(code: str) -> str:
    code = code.replace("\n", " ")
    if "`" not in code:
        return f"`{code}`"
    ticks = "`" * (max(len(run) for run in re.findall(r"`+", code)) + 1)
    return f"{ticks} {code} {ticks}"


def _tidy(text: str) -> str:
    lines = (line.strip(" \t\r\f\v") for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _restore(text: str, codes: list[str]) -> str:
    def block(match: re.Match[str]) -> str:
        prefix, code = match.group("prefix"), codes[int(match.group("n"))]
        return "\n".join((prefix + line).rstrip() for line in code.split("\n")) if prefix else code

    text = _BLOCK_LINE.sub(block, text)
    return _PLACEHOLDER.sub(lambda m: codes[int(m.group(1))], text)
