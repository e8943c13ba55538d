"""Exercism, in its three published layouts, found anywhere under the given path:

* problem-specifications: ``exercises/<slug>/`` with description.md or instructions.md (+ introduction.md),
  canonical-data.json (test cases as data) and metadata.toml (title, blurb, source);
* a language track: ``exercises/practice/<slug>/`` (and ``exercises/concept/<slug>/``) with ``.docs/*.md``,
  ``.meta/config.json``, ``.approaches/**/content.md``, ``.articles/**/content.md`` and, where present,
  ``*_test.py`` and ``.meta/example.py``;
* mentoring notes: ``tracks/<lang>/exercises/<slug>/mentoring.md`` (exercism/website-copy).

Blurbs are kept in metadata only, never in the indexed text, so the retrieval evaluation can use them
as held-out paraphrases of the exercises they describe.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cet.errors import CetError
from cet.knowledge.records import Document, SkippedRecord
from cet.knowledge.sources.files import UnusableFile, read_text_file

SOURCE = "exercism"
LICENCE = "MIT (exercism)"
MENTORING_LICENCE = "exercism/website-copy (see its licences/ folder)"
STATEMENT_FILES = ("introduction.md", "instructions.md", "description.md", "instructions.append.md")
MAX_FILE_BYTES = 1_000_000


def read_exercism(path: Path) -> Iterator[Document | SkippedRecord]:
    """Every exercise, track exercise and mentoring note under ``path``, streamed in path order."""
    path = Path(path)
    if not path.exists():
        raise CetError(f"Exercism path not found: {path}")
    for slug_dir in _problem_spec_dirs(path):
        yield from _problem_spec(path, slug_dir)
    for slug_dir in _track_dirs(path):
        yield from _track_exercise(path, slug_dir)
    for note in sorted(path.glob("**/tracks/*/exercises/*/mentoring.md")):
        yield from _mentoring(path, note)


def _problem_spec_dirs(root: Path) -> list[Path]:
    found = set()
    for marker in ("metadata.toml", "canonical-data.json", "description.md"):
        for f in root.glob(f"**/exercises/*/{marker}"):
            if f.parent.parent.name == "exercises" and "tracks" not in f.parts:
                found.add(f.parent)
    if root.name != "exercises" and root.parent.name == "exercises":  # a single exercise directory
        found.add(root)
    return sorted(found)


def _track_dirs(root: Path) -> list[Path]:
    return sorted(d for kind in ("practice", "concept") for d in root.glob(f"**/exercises/{kind}/*") if d.is_dir())


def _read_text(root: Path, file: Path) -> str | SkippedRecord:
    try:
        return read_text_file(file, MAX_FILE_BYTES)
    except UnusableFile as e:
        return SkippedRecord(SOURCE, str(file.relative_to(root)), str(e))


def _read_structured(root: Path, file: Path, parse: Any) -> Any | SkippedRecord:
    text = _read_text(root, file)
    if isinstance(text, SkippedRecord):
        return text
    try:
        return parse(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        return SkippedRecord(SOURCE, str(file.relative_to(root)), f"malformed {file.suffix[1:].upper()}: {e}")


def _statement_text(root: Path, folder: Path) -> tuple[str, list[SkippedRecord]]:
    parts, skipped = [], []
    for name in STATEMENT_FILES:
        file = folder / name
        if file.is_file():
            text = _read_text(root, file)
            if isinstance(text, SkippedRecord):
                skipped.append(text)
            elif text.strip():
                parts.append(text.strip())
    return "\n\n".join(parts), skipped


def _problem_spec(root: Path, folder: Path) -> Iterator[Document | SkippedRecord]:
    slug = folder.name
    rel = str(folder.relative_to(root)) if folder != root else folder.name
    meta: dict[str, Any] = {}
    if (folder / "metadata.toml").is_file():
        parsed = _read_structured(root, folder / "metadata.toml", tomllib.loads)
        if isinstance(parsed, SkippedRecord):
            yield parsed
        else:
            meta = parsed
    cases = None
    if (folder / "canonical-data.json").is_file():
        parsed = _read_structured(root, folder / "canonical-data.json", json.loads)
        if isinstance(parsed, SkippedRecord):
            yield parsed
        elif isinstance(parsed, dict) and isinstance(parsed.get("cases"), list):
            cases = parsed["cases"]
        else:
            yield SkippedRecord(SOURCE, f"{rel}/canonical-data.json", "canonical data without a cases list")
    statement, skipped = _statement_text(root, folder)
    yield from skipped
    title = str(meta.get("title") or slug.replace("-", " ").title())
    base = {
        "licence": LICENCE, "exercise": slug, "layout": "problem-specifications", "blurb": meta.get("blurb"),
        "origin": meta.get("source"), "difficulty": None, "tests_present": cases is not None,
        "mentor_note": False,
    }
    if not statement:
        yield SkippedRecord(SOURCE, rel, "exercise without a description or instructions")
    else:
        yield Document(SOURCE, f"exercism:spec:{slug}#statement", title, statement, "statement", rel,
                       "markdown", None, base)
    if cases:
        lines = list(_case_lines(cases))
        yield Document(SOURCE, f"exercism:spec:{slug}#tests", f"{title} — canonical test cases",
                       f"Canonical test cases for {title}:\n" + "\n".join(lines), "tests",
                       f"{rel}/canonical-data.json", "text", None, {**base, "test_case_count": len(lines)})


def _case_lines(cases: list[Any], prefix: str = "") -> Iterator[str]:
    for case in cases:
        if not isinstance(case, dict):
            continue
        label = f"{prefix}{case.get('description', '')}"
        if isinstance(case.get("cases"), list):
            yield from _case_lines(case["cases"], f"{label} / ")
            continue
        args = ", ".join(f"{k}={json.dumps(v)}" for k, v in (case.get("input") or {}).items())
        expected = case.get("expected")
        if isinstance(expected, dict) and "error" in expected:
            outcome = f"raises error {json.dumps(expected['error'])}"
        else:
            outcome = f"== {json.dumps(expected)}"
        yield f"- {label}: {case.get('property', '?')}({args}) {outcome}"


def _track_exercise(root: Path, folder: Path) -> Iterator[Document | SkippedRecord]:
    slug = folder.name
    rel = str(folder.relative_to(root))
    track_dir = folder.parent.parent.parent
    language = track_dir.name
    config: dict[str, Any] = {}
    if (folder / ".meta" / "config.json").is_file():
        parsed = _read_structured(root, folder / ".meta" / "config.json", json.loads)
        if isinstance(parsed, SkippedRecord):
            yield parsed
        else:
            config = parsed
    tests = sorted(folder.glob("*_test.py")) + sorted(folder.glob("*.test.js")) + sorted(folder.glob("*.spec.js"))
    base = {
        "licence": LICENCE, "exercise": slug, "layout": f"{language}-track", "blurb": config.get("blurb"),
        "origin": config.get("source"), "difficulty": _track_difficulty(track_dir, slug),
        "tests_present": bool(tests), "mentor_note": False, "track": language,
    }
    title = slug.replace("-", " ").title()
    statement, skipped = _statement_text(root, folder / ".docs")
    yield from skipped
    hints = folder / ".docs" / "hints.md"
    if statement:
        yield Document(SOURCE, f"exercism:{language}:{slug}#statement", f"{title} ({language})", statement,
                       "statement", f"{rel}/.docs", "markdown", language, base)
    if hints.is_file():
        yield from _file_document(root, hints, f"exercism:{language}:{slug}#hints", f"{title} — hints",
                                  "statement", "markdown", language, base)
    yield from _approaches(root, folder, language, title, base)
    for test in tests:
        yield from _file_document(root, test, f"exercism:{language}:{slug}#test:{test.name}",
                                  f"{title} — tests ({test.name})", "tests", "python", language, base)
    example = folder / ".meta" / "example.py"
    if example.is_file():
        yield from _file_document(root, example, f"exercism:{language}:{slug}#example",
                                  f"{title} — example solution", "solution", "python", language, base)


def _approaches(root: Path, folder: Path, language: str, title: str, base: dict[str, Any]
                ) -> Iterator[Document | SkippedRecord]:
    for group in (".approaches", ".articles"):
        blurbs: dict[str, dict[str, Any]] = {}
        config_file = folder / group / "config.json"
        if config_file.is_file():
            parsed = _read_structured(root, config_file, json.loads)
            if isinstance(parsed, SkippedRecord):
                yield parsed
            else:
                entries = parsed.get("approaches") or parsed.get("articles") or []
                blurbs = {e.get("slug"): e for e in entries if isinstance(e, dict)}
        intro = folder / group / "introduction.md"
        if intro.is_file():
            yield from _file_document(root, intro, f"exercism:{language}:{folder.name}#{group[1:]}:introduction",
                                      f"{title} — {group[1:]} overview", "approach", "markdown", language, base)
        for content in sorted((folder / group).glob("*/content.md")):
            entry = blurbs.get(content.parent.name, {})
            name = entry.get("title") or content.parent.name.replace("-", " ")
            meta = {**base, "approach": content.parent.name, "blurb": entry.get("blurb")}
            yield from _file_document(root, content, f"exercism:{language}:{folder.name}#{group[1:]}:"
                                      f"{content.parent.name}", f"{title} — {name}", "approach", "markdown",
                                      language, meta)


def _file_document(root: Path, file: Path, doc_id: str, title: str, kind: str, fmt: str,
                   language: str | None, meta: dict[str, Any]) -> Iterator[Document | SkippedRecord]:
    text = _read_text(root, file)
    if isinstance(text, SkippedRecord):
        yield text
    elif text.strip():
        yield Document(SOURCE, doc_id, title, text.strip(), kind, str(file.relative_to(root)), fmt, language, meta)


def _track_difficulty(track_dir: Path, slug: str) -> int | None:
    """The exercise's difficulty from the track's config.json, when the track root is present."""
    config = track_dir / "config.json"
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    for kind in ("practice", "concept"):
        for entry in data.get("exercises", {}).get(kind, []):
            if isinstance(entry, dict) and entry.get("slug") == slug:
                return entry.get("difficulty")
    return None


def _mentoring(root: Path, note: Path) -> Iterator[Document | SkippedRecord]:
    slug, language = note.parent.name, note.parent.parent.parent.name
    meta = {"licence": MENTORING_LICENCE, "exercise": slug, "layout": "website-copy", "mentor_note": True,
            "blurb": None, "origin": None,
            "tests_present": False, "difficulty": None, "track": language}
    yield from _file_document(root, note, f"exercism:mentoring:{language}:{slug}",
                              f"{slug.replace('-', ' ').title()} — mentoring notes ({language})", "mentoring",
                              "markdown", language, meta)
