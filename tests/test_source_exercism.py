"""The Exercism reader: the real data in its three layouts, and hand-written fixtures with broken files."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from cet.errors import CetError
from cet.knowledge.records import KINDS, Document, SkippedRecord
from cet.knowledge.sources import get_reader
from cet.knowledge.sources.exercism import LICENCE, MENTORING_LICENCE, read_exercism

META_FIELDS = {"licence", "exercise", "layout", "tests_present", "mentor_note", "difficulty"}


def split(records: list) -> tuple[list[Document], list[SkippedRecord]]:
    docs = [r for r in records if isinstance(r, Document)]
    skipped = [r for r in records if isinstance(r, SkippedRecord)]
    assert len(docs) + len(skipped) == len(records)
    return docs, skipped


def leaf_cases(cases: list) -> int:
    return sum(leaf_cases(c["cases"]) if isinstance(c.get("cases"), list) else 1 for c in cases if isinstance(c, dict))


def test_registry_returns_this_reader() -> None:
    assert get_reader("exercism") is read_exercism


# ------------------------------------------------------------------------------------------ real data


@pytest.fixture(scope="module")
def real(real_exercism: Path) -> tuple[list[Document], list[SkippedRecord]]:
    return split(list(read_exercism(real_exercism)))


def test_real_counts_by_layout_and_kind(real: tuple[list[Document], list[SkippedRecord]],
                                        real_exercism: Path) -> None:
    docs, skipped = real
    counts = Counter((d.metadata["layout"], d.kind) for d in docs)
    assert counts[("problem-specifications", "statement")] == 118
    assert counts[("python-track", "statement")] >= 100
    assert counts[("python-track", "approach")] >= 100
    assert counts[("problem-specifications", "tests")] >= 100
    assert counts[("website-copy", "mentoring")] >= 30
    spec_dirs = list((real_exercism / "problem-specifications" / "exercises").iterdir())
    with_canonical = sum((d / "canonical-data.json").is_file() for d in spec_dirs)
    assert counts[("problem-specifications", "tests")] == with_canonical
    assert skipped == [], [(s.path, s.reason) for s in skipped][:5]
    assert len({d.doc_id for d in docs}) == len(docs), "doc ids are unique"
    assert all(d.kind in KINDS and d.source == "exercism" and d.text.strip() for d in docs)


def test_real_metadata_fields(real: tuple[list[Document], list[SkippedRecord]], real_exercism: Path) -> None:
    docs, _ = real
    for d in docs:
        assert META_FIELDS <= set(d.metadata), d.doc_id
        assert isinstance(d.metadata["tests_present"], bool) and isinstance(d.metadata["mentor_note"], bool)
        assert d.metadata["mentor_note"] == (d.kind == "mentoring")
        assert d.metadata["licence"] == (MENTORING_LICENCE if d.kind == "mentoring" else LICENCE)
        assert not Path(d.path).is_absolute() and (real_exercism / d.path).exists(), d.path
    spec = [d for d in docs if d.metadata["layout"] == "problem-specifications"]
    assert all(isinstance(d.metadata["blurb"], str) and d.metadata["blurb"] for d in spec)
    for d in spec:
        has_data = (real_exercism / "problem-specifications" / "exercises" / d.metadata["exercise"]
                    / "canonical-data.json").is_file()
        assert d.metadata["tests_present"] == has_data, d.doc_id
        assert d.language is None
    track = [d for d in docs if d.metadata["layout"] == "python-track"]
    assert all(d.language == "python" and d.metadata["track"] == "python" for d in track)
    approaches = [d for d in track if d.kind == "approach" and d.metadata.get("approach")]
    assert sum(1 for d in approaches if d.metadata["blurb"]) > 50
    mentoring = [d for d in docs if d.kind == "mentoring"]
    assert all(d.language == "python" and d.format == "markdown" for d in mentoring)
    assert all(d.path == f"website-copy/tracks/python/exercises/{d.metadata['exercise']}/mentoring.md"
               for d in mentoring)


def test_real_documents_all_carry_a_blurb_key(real: tuple[list[Document], list[SkippedRecord]]) -> None:
    """Every document has the same metadata schema: blurb is present (None where the layout has none)."""
    docs, _ = real
    missing = Counter(d.metadata["layout"] for d in docs if "blurb" not in d.metadata)
    assert missing == Counter()


def test_real_statement_is_the_exercise_prose_without_the_blurb(
    real: tuple[list[Document], list[SkippedRecord]], real_exercism: Path
) -> None:
    docs, _ = real
    by_id = {d.doc_id: d for d in docs}
    folder = real_exercism / "problem-specifications" / "exercises" / "acronym"
    statement = by_id["exercism:spec:acronym#statement"]
    files = [f for f in ("introduction.md", "instructions.md", "description.md") if (folder / f).is_file()]
    assert statement.text == "\n\n".join((folder / f).read_text(encoding="utf-8").strip() for f in files)
    assert statement.title == "Acronym" and statement.format == "markdown"
    assert statement.metadata["blurb"] == "Convert a long phrase to its acronym."
    luhn = by_id["exercism:python:luhn#statement"]
    docs_dir = real_exercism / "python" / "exercises" / "practice" / "luhn" / ".docs"
    assert luhn.text == "\n\n".join((docs_dir / f).read_text(encoding="utf-8").strip()
                                    for f in ("introduction.md", "instructions.md"))
    recursion = by_id["exercism:python:luhn#approaches:recursion"]
    assert recursion.metadata["approach"] == "recursion"
    assert recursion.metadata["blurb"] == "Use recursion to validate the number."
    assert recursion.title == "Luhn — recursion" and recursion.kind == "approach"


def test_real_canonical_cases_are_rendered(real: tuple[list[Document], list[SkippedRecord]],
                                           real_exercism: Path) -> None:
    docs, _ = real
    by_id = {d.doc_id: d for d in docs}
    acronym = by_id["exercism:spec:acronym#tests"]
    assert acronym.kind == "tests" and acronym.path == "problem-specifications/exercises/acronym/canonical-data.json"
    assert acronym.text.startswith("Canonical test cases for Acronym:\n")
    assert '- basic: abbreviate(phrase="Portable Network Graphics") == "PNG"' in acronym.text.splitlines()
    affine = by_id["exercism:spec:affine-cipher#tests"]
    lines = affine.text.splitlines()
    assert '- encode / encode yes: encode(phrase="yes", key={"a": 5, "b": 7}) == "xbt"' in lines
    assert ('- encode / encode with a not coprime to m: encode(phrase="This is a test.", key={"a": 6, "b": 17}) '
            'raises error "a and m must be coprime."') in lines
    for doc in (acronym, affine):
        data = json.loads((real_exercism / doc.path).read_text(encoding="utf-8"))
        rendered = [line for line in doc.text.splitlines() if line.startswith("- ")]
        assert doc.metadata["test_case_count"] == len(rendered) == leaf_cases(data["cases"])
    errors = sum("raises error" in d.text for d in docs if d.kind == "tests")
    assert errors > 20, "error expectations are rendered as errors, not as dicts"
    assert not any('== {"error"' in d.text for d in docs if d.kind == "tests")


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def fixture_records(core_exercism: Path) -> list:
    return list(read_exercism(core_exercism))


def test_malformed_json_is_skipped_but_the_statement_is_kept(fixture_records: list) -> None:
    docs, skipped = split(fixture_records)
    bad = [s for s in skipped if s.path == "exercises/broken-canon/canonical-data.json"]
    assert len(bad) == 1 and bad[0].reason.startswith("malformed JSON: ") and bad[0].source == "exercism"
    ids = {d.doc_id for d in docs}
    assert "exercism:spec:broken-canon#statement" in ids
    assert "exercism:spec:broken-canon#tests" not in ids
    statement = next(d for d in docs if d.doc_id == "exercism:spec:broken-canon#statement")
    assert statement.metadata["tests_present"] is False
    assert statement.metadata["blurb"] == "A fixture whose test data cannot be parsed."


def test_malformed_toml_is_skipped_but_the_statement_is_kept(fixture_records: list) -> None:
    docs, skipped = split(fixture_records)
    bad = [s for s in skipped if s.path == "exercises/broken-meta/metadata.toml"]
    assert len(bad) == 1 and bad[0].reason.startswith("malformed TOML: ")
    by_id = {d.doc_id: d for d in docs}
    statement = by_id["exercism:spec:broken-meta#statement"]
    assert statement.title == "Broken Meta", "the title falls back to the slug"
    assert statement.metadata["blurb"] is None
    assert "cheapest stamp set" in statement.text
    assert by_id["exercism:spec:broken-meta#tests"].metadata["tests_present"] is True
    assert len(skipped) == 2


def test_fixture_documents_in_path_order(fixture_records: list) -> None:
    docs, _ = split(fixture_records)
    assert [d.doc_id for d in docs] == [
        "exercism:spec:broken-canon#statement",
        "exercism:spec:broken-meta#statement", "exercism:spec:broken-meta#tests",
        "exercism:spec:honeycomb-path#statement", "exercism:spec:honeycomb-path#tests",
        "exercism:spec:lantern-relay#statement", "exercism:spec:lantern-relay#tests",
        "exercism:spec:pebble-sorter#statement", "exercism:spec:pebble-sorter#tests",
        "exercism:spec:tidal-clock#statement",
    ]


def test_fixture_cases_rendered_with_nesting_and_errors(fixture_records: list) -> None:
    docs, _ = split(fixture_records)
    tests = next(d for d in docs if d.doc_id == "exercism:spec:lantern-relay#tests")
    assert tests.title == "Lantern Relay — canonical test cases"
    assert tests.text.splitlines() == [
        "Canonical test cases for Lantern Relay:",
        "- single hill: lastLantern(delays=[5]) == 5",
        "- chains / three hills: lastLantern(delays=[3, 1, 4]) == 8",
        '- chains / negative delay: lastLantern(delays=[2, -1]) raises error "delays must not be negative"',
    ]
    assert tests.metadata["test_case_count"] == 3
    assert tests.format == "text" and tests.path == "exercises/lantern-relay/canonical-data.json"


def test_fixture_statement_joins_introduction_and_instructions(fixture_records: list, core_exercism: Path) -> None:
    docs, _ = split(fixture_records)
    pebble = next(d for d in docs if d.doc_id == "exercism:spec:pebble-sorter#statement")
    folder = core_exercism / "exercises" / "pebble-sorter"
    assert pebble.text == (folder / "introduction.md").read_text().strip() + "\n\n" + (
        folder / "instructions.md").read_text().strip()
    assert pebble.metadata["blurb"] not in pebble.text
    assert pebble.metadata["origin"] is None
    tidal = next(d for d in docs if d.doc_id == "exercism:spec:tidal-clock#statement")
    assert tidal.metadata["tests_present"] is False
    lantern = next(d for d in docs if d.doc_id == "exercism:spec:lantern-relay#statement")
    assert lantern.metadata["origin"] == "Written for the cet test fixtures"


def test_a_single_exercise_directory_can_be_read(core_exercism: Path) -> None:
    docs, skipped = split(list(read_exercism(core_exercism / "exercises" / "lantern-relay")))
    assert skipped == []
    assert [d.doc_id for d in docs] == ["exercism:spec:lantern-relay#statement", "exercism:spec:lantern-relay#tests"]
    assert docs[0].path == "lantern-relay"


def test_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(CetError, match="not found"):
        list(read_exercism(tmp_path / "nowhere"))


def test_other_broken_files(tmp_path: Path, core_exercism: Path) -> None:
    root = tmp_path / "exercises"
    (root / "no-cases").mkdir(parents=True)
    (root / "no-cases" / "description.md").write_text("# Description\n\nCount the sheep.\n", encoding="utf-8")
    (root / "no-cases" / "canonical-data.json").write_text('{"cases": "none"}', encoding="utf-8")
    (root / "latin1").mkdir()
    (root / "latin1" / "description.md").write_bytes("Caf\xe9 au lait".encode("latin-1"))
    (root / "latin1" / "metadata.toml").write_text('title = "Latin"\n', encoding="utf-8")
    shutil.copytree(core_exercism / "exercises" / "tidal-clock", root / "tidal-clock")
    docs, skipped = split(list(read_exercism(tmp_path)))
    reasons = {(s.path, s.reason) for s in skipped}
    assert ("exercises/no-cases/canonical-data.json", "canonical data without a cases list") in reasons
    assert any(p == "exercises/latin1/description.md" and r.startswith("not UTF-8 text") for p, r in reasons)
    assert ("exercises/latin1", "exercise without a description or instructions") in reasons
    assert [d.doc_id for d in docs] == ["exercism:spec:no-cases#statement", "exercism:spec:tidal-clock#statement"]


def test_track_and_mentoring_layouts(tmp_path: Path) -> None:
    ex = tmp_path / "python" / "exercises" / "practice" / "kite-string"
    (ex / ".docs").mkdir(parents=True)
    (ex / ".meta").mkdir()
    (ex / ".approaches" / "loop").mkdir(parents=True)
    (ex / ".docs" / "instructions.md").write_text("# Instructions\n\nMeasure the kite string.\n", encoding="utf-8")
    (ex / ".docs" / "hints.md").write_text("# Hints\n\nUse a loop.\n", encoding="utf-8")
    (ex / ".meta" / "config.json").write_text(json.dumps({"blurb": "How long is the string?"}), encoding="utf-8")
    (ex / ".approaches" / "config.json").write_text(json.dumps(
        {"approaches": [{"slug": "loop", "title": "A plain loop", "blurb": "Walk the string once."}]}),
        encoding="utf-8")
    (ex / ".approaches" / "introduction.md").write_text("There is one approach.\n", encoding="utf-8")
    (ex / ".approaches" / "loop" / "content.md").write_text("# Loop\n\nfor knot in string: ...\n", encoding="utf-8")
    (ex / "kite_string_test.py").write_text("def test_length():\n    assert True\n", encoding="utf-8")
    note = tmp_path / "website-copy" / "tracks" / "python" / "exercises" / "kite-string" / "mentoring.md"
    note.parent.mkdir(parents=True)
    note.write_text("# Mentoring\n\nAsk about off-by-one errors.\n", encoding="utf-8")

    docs, skipped = split(list(read_exercism(tmp_path)))
    assert skipped == []
    by_id = {d.doc_id: d for d in docs}
    assert set(by_id) == {
        "exercism:python:kite-string#statement", "exercism:python:kite-string#hints",
        "exercism:python:kite-string#approaches:introduction", "exercism:python:kite-string#approaches:loop",
        "exercism:python:kite-string#test:kite_string_test.py", "exercism:mentoring:python:kite-string",
    }
    statement = by_id["exercism:python:kite-string#statement"]
    assert statement.title == "Kite String (python)" and statement.language == "python"
    assert statement.metadata["blurb"] == "How long is the string?" and statement.metadata["tests_present"] is True
    assert "How long is the string?" not in statement.text
    loop = by_id["exercism:python:kite-string#approaches:loop"]
    assert loop.title == "Kite String — A plain loop" and loop.metadata["blurb"] == "Walk the string once."
    assert by_id["exercism:python:kite-string#test:kite_string_test.py"].kind == "tests"
    mentoring = by_id["exercism:mentoring:python:kite-string"]
    assert mentoring.kind == "mentoring" and mentoring.metadata["mentor_note"] is True
    assert mentoring.title == "Kite String — mentoring notes (python)"
