"""The freeCodeCamp curriculum reader: front matter, sections, documents per part, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from cet.errors import CetError
from cet.knowledge.records import Document, SkippedRecord
from cet.knowledge.sources import get_reader
from cet.knowledge.sources.freecodecamp import (
    code_blocks,
    parse_challenge,
    parse_hints,
    read_freecodecamp,
    split_on_dividers,
    split_sections,
)

FIXTURES = Path(__file__).parent / "fixtures" / "freecodecamp"
ENGLISH = "curriculum/challenges/english"
BASIC_JS = f"{ENGLISH}/02-javascript-algorithms-and-data-structures/basic-javascript"
ADD = f"{BASIC_JS}/add-two-numbers-with-a-function"
CENTER = f"{ENGLISH}/01-responsive-web-design/basic-css/center-a-heading-with-css"
QUIZ = f"{ENGLISH}/07-scientific-computing-with-python/python-for-everybody/what-a-variable-holds"


def _docs(records: list[Document | SkippedRecord]) -> dict[str, Document]:
    return {r.doc_id: r for r in records if isinstance(r, Document)}


def _skips(records: list[Document | SkippedRecord]) -> list[tuple[str, str]]:
    return [(r.path, r.reason) for r in records if isinstance(r, SkippedRecord)]


def _challenge(front: str = "id: abc\ntitle: T\nchallengeType: 1\ndashedName: t", body: str = "") -> str:
    return f"---\n{front}\n---\n\n{body}"


@pytest.fixture(scope="module")
def records() -> list[Document | SkippedRecord]:
    return list(read_freecodecamp(FIXTURES))


def test_registry_returns_this_reader() -> None:
    assert get_reader("freecodecamp") is read_freecodecamp


def test_fixture_documents_in_sorted_order(records: list[Document | SkippedRecord]) -> None:
    ids = [r.doc_id for r in records if isinstance(r, Document)]
    assert ids == [
        f"freecodecamp:{CENTER}#statement", f"freecodecamp:{CENTER}#tests",
        f"freecodecamp:{CENTER}#solution-1", f"freecodecamp:{ADD}#statement", f"freecodecamp:{ADD}#tests",
        f"freecodecamp:{ADD}#solution-1", f"freecodecamp:{ADD}#solution-2", f"freecodecamp:{QUIZ}#statement",
    ]
    kinds = [r.kind for r in records if isinstance(r, Document)]
    assert kinds == ["statement", "tests", "solution"] + ["statement", "tests", "solution", "solution"] + [
        "statement"
    ]


def test_malformed_front_matter_is_skipped(records: list[Document | SkippedRecord]) -> None:
    broken = f"{BASIC_JS}/broken-front-matter.md"
    [(path, reason)] = _skips(records)
    assert path == broken and reason.startswith("unparseable YAML front matter")


def test_front_matter_becomes_metadata(records: list[Document | SkippedRecord]) -> None:
    doc = _docs(records)[f"freecodecamp:{ADD}#statement"]
    assert doc.title == "Add Two Numbers with a Function"
    assert doc.source == "freecodecamp" and doc.format == "markdown" and doc.path == ADD + ".md"
    assert doc.metadata == {
        "licence": "CC BY-SA 4.0 (freeCodeCamp.org curriculum content)",
        "challenge_id": "5e7b9f0a1c2d3e4f5a6b7c8d",
        "challenge_type": 1,
        "dashed_name": "add-two-numbers-with-a-function",
        "block": "basic-javascript",
        "superblock": "javascript-algorithms-and-data-structures",
        "tests_present": True,
        "difficulty": None,
    }


def test_statement_has_description_instructions_and_starter_code_only(records: list) -> None:
    text = _docs(records)[f"freecodecamp:{ADD}#statement"].text
    assert text.startswith("# Add Two Numbers with a Function\n\n## Description\n\nA function can take")
    assert "```js\nfunction double(n) {\n  return n * 2;\n}\n```" in text  # code inside the description
    assert "## Instructions\n\nWrite a function `addTwo`" in text
    seed = "// Only change code below this line\nfunction addTwo(a, b) {\n\n}"
    assert text.endswith(f"## Starter code\n\n```js\n{seed}\n```")
    assert "typeof addTwo" not in text  # --after-user-code-- is hidden scaffolding
    assert "assert.strictEqual" not in text and "return a + b" not in text


def test_tests_document_pairs_each_hint_with_its_test(records: list) -> None:
    text = _docs(records)[f"freecodecamp:{ADD}#tests"].text
    assert text.count("## Test ") == 3
    test_2 = ("## Test 2\n\n`addTwo(2, 3)` should return `5`.\n\n"
              "```js\nassert.strictEqual(addTwo(2, 3), 5);\n```")
    assert test_2 in text


def test_one_solution_document_per_solution(records: list) -> None:
    docs = _docs(records)
    first, second = docs[f"freecodecamp:{ADD}#solution-1"].text, docs[f"freecodecamp:{ADD}#solution-2"].text
    assert "return a + b;" in first and "=>" not in first
    assert "const addTwo = (a, b) => a + b;" in second and "return a + b" not in second
    multi_file = docs[f"freecodecamp:{CENTER}#solution-1"].text
    assert "```html\n<style>\n  h1 { text-align: center; }" in multi_file and "```css\nh1 {" in multi_file


def test_language_from_fences_and_challenge_type(records: list) -> None:
    docs = _docs(records)
    assert {d.language for k, d in docs.items() if ADD in k} == {"javascript"}
    assert {d.language for k, d in docs.items() if CENTER in k} == {"html"}
    assert docs[f"freecodecamp:{QUIZ}#statement"].language == "python"


def test_quiz_challenge_lists_question_answers_and_solution(records: list) -> None:
    doc = _docs(records)[f"freecodecamp:{QUIZ}#statement"]
    question = "## Question\n\nWhat does this program print?\n\n```python\nx = 4\nx = x + 1\nprint(x)\n```"
    assert question in doc.text
    assert doc.text.endswith("Answer 1:\n\n4\n\nAnswer 2 (correct):\n\n5\n\nAnswer 3:\n\nx + 1")
    assert doc.metadata["tests_present"] is False and doc.metadata["challenge_type"] == 11


def test_section_headings_inside_code_fences_are_not_sections() -> None:
    body = ("# --description--\n\nIntro.\n\n```md\n# --hints--\nnot a heading\n```\n\n"
            "# --seed--\n\n## --seed-contents--\n\n```py\nx = 1\n```\n")
    sections = split_sections(body)
    assert set(sections) == {"description", "seed", "seed/seed-contents"}
    assert "# --hints--\nnot a heading" in sections["description"]
    assert code_blocks(sections["seed/seed-contents"])[0].code == "x = 1"


def test_dividers_inside_code_do_not_split_solutions() -> None:
    text = "```js\nconst doc = `\n---\ntitle: x\n`;\n```\n\n---\n\n```js\nlet y;\n```"
    pieces = split_on_dividers(text)
    assert len(pieces) == 2 and "---\ntitle: x" in pieces[0]


def test_hints_without_code_and_with_several_fences() -> None:
    hints = parse_hints("First hint.\n\n```js\nassert(a);\n```\n\n```js\nassert(b);\n```\n\nLast, untested.")
    assert [(h.text, [t.code for t in h.tests]) for h in hints] == [
        ("First hint.", ["assert(a);", "assert(b);"]), ("Last, untested.", []),
    ]


def test_crlf_and_bom_are_accepted() -> None:
    text = "\ufeff" + _challenge(body="# --description--\n\nHello.\n").replace("\n", "\r\n")
    challenge = parse_challenge(text)
    assert challenge.front_matter["title"] == "T" and challenge.section("description") == "Hello."


def test_bad_files_are_skipped_with_reasons(tmp_path: Path) -> None:
    block = tmp_path / "curriculum" / "challenges" / "english" / "03-front-end" / "react"
    block.mkdir(parents=True)
    (block / "a-no-front-matter.md").write_text("# --description--\n\nNo front matter.\n")
    (block / "b-list-front-matter.md").write_text("---\n- just\n- a list\n---\n\n# --description--\n\nx\n")
    (block / "c-unclosed.md").write_text("---\ntitle: never closed\n\n# --description--\n")
    (block / "d-no-description.md").write_text(_challenge(body="# --hints--\n\nA hint only.\n"))
    (block / "e-latin1.md").write_bytes(_challenge(body="# --description--\n\ncaf\xe9\n").encode("latin-1"))
    (block / "f-binary.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (block / "g-huge.md").write_text(_challenge(body="# --description--\n\n" + "x" * 1_100_000))
    (block / "h-good.md").write_text(_challenge(body="# --description--\n\nFine.\n"))
    (block / "notes.txt").write_text("not a challenge")
    records = list(read_freecodecamp(tmp_path))
    reasons = {Path(path).stem: reason for path, reason in _skips(records)}
    assert reasons == {
        "a-no-front-matter": "no YAML front matter",
        "b-list-front-matter": "front matter is not a YAML mapping",
        "c-unclosed": "front matter is never closed with ---",
        "d-no-description": reasons["d-no-description"],
        "e-latin1": reasons["e-latin1"],
        "f-binary": "binary file (contains NUL bytes)",
        "g-huge": reasons["g-huge"],
    }
    assert reasons["d-no-description"].startswith("no content section")
    assert reasons["e-latin1"].startswith("not UTF-8")
    assert reasons["g-huge"].startswith("file too large")
    [doc] = _docs(records).values()
    assert doc.doc_id == "freecodecamp:curriculum/challenges/english/03-front-end/react/h-good#statement"
    assert doc.metadata["superblock"] == "front-end" and doc.metadata["block"] == "react"
    assert doc.language == "javascript"  # challengeType 1 with no code fences
    assert doc.metadata["tests_present"] is False


def test_hidden_and_node_modules_directories_are_not_walked(tmp_path: Path) -> None:
    for folder in (".git", "node_modules", "blocks/real-block"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "c.md").write_text(_challenge(body="# --description--\n\nHi.\n"))
    records = list(read_freecodecamp(tmp_path))
    assert [r.path for r in records] == ["blocks/real-block/c.md"]
    assert records[0].metadata["superblock"] is None  # "blocks" is a layout folder, not a superblock


def test_single_file_path(tmp_path: Path) -> None:
    file = tmp_path / "one.md"
    file.write_text(_challenge(body="# --description--\n\nOne.\n\n# --solutions--\n\n```js\nok();\n```\n"))
    docs = _docs(list(read_freecodecamp(file)))
    assert sorted(docs) == ["freecodecamp:one#solution-1", "freecodecamp:one#statement"]


def test_missing_path_raises_cet_error(tmp_path: Path) -> None:
    with pytest.raises(CetError, match="freeCodeCamp curriculum not found"):
        read_freecodecamp(tmp_path / "missing")


# ----------------------------------------------------------------------------- today's formats, real files

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "freecodecamp"
BLOCKS = "curriculum/challenges/english/blocks"


@pytest.fixture(scope="module")
def real() -> dict[str, Document]:
    if not (REAL / BLOCKS).is_dir():
        pytest.skip(f"real freeCodeCamp files not found at {REAL} (../shared/data/freecodecamp)")
    records = list(read_freecodecamp(REAL / "curriculum" / "challenges"))
    assert not _skips(records)  # every one of today's formats is read
    return {d.doc_id.removeprefix(f"freecodecamp:{BLOCKS}/"): d for d in _docs(records).values()}


def test_a_quiz_keeps_every_question_with_its_answer_and_distractors(real: dict[str, Document]) -> None:
    text = real["quiz-basic-html/66df3b712c41c499e9d31e5b#statement"].text  # 26 KB: was one sentence
    assert text.count("### Question ") == 80 and text.count("Answer (correct):") == 80
    assert text.count("Distractor ") == 240 and len(text) > 20_000
    assert ("How does the `loop` attribute work inside the `audio` element?\n\nAnswer (correct):\n\nIt starts the "
            "audio again once it is finished.\n\nDistractor 1:\n\nIt allows the `audio` element") in text
    assert "--" + "distractors--" not in text and "--" + "answer--" not in text


def test_a_lecture_keeps_its_interactive_body_and_each_question(real: dict[str, Document]) -> None:
    text = real["lecture-working-with-loops/6732c04638420641dcca2e6e#statement"].text
    assert text.startswith("# How Does the For...of Loop Work, and When Should You Use It?\n\n## Lecture\n\n"
                           "A `for...of` loop is used when")  # the --interactive-- body, dropped before
    assert "```js\nconst numbers = [1, 2, 3, 4, 5];" in text and ":::" not in text
    assert [text.count(f"## Question {n}\n") for n in (1, 2, 3)] == [1, 1, 1]  # three questions, not one merged
    assert "### --feedback--" not in text and "Feedback: Think about what the `color` variable" in text
    http = real["lecture-understanding-the-http-request-response-model/68dd97fbd18ede5ae983e342#statement"].text
    assert "Answer 4 (correct):\n\nHTML" in http and "Answer 3 (correct):\n\napplication/pdf" in http
    assert "Answer 2 (correct):\n\nMP3" in http and "Answer 5" not in http  # four answers each, none fused


def test_dialogues_and_fill_in_the_blank_keep_their_lines_and_answers(real: dict[str, Document]) -> None:
    dialogue = real["learn-greetings-in-your-first-day-at-the-office/651dd3e06ffb500e3f2ce478#statement"].text
    assert "## Assignment\n\nWatch the video." in dialogue
    assert "Maria: Hello. You're the new graphic designer, right? I'm Maria, the team lead.\nTom: Hi," in dialogue
    assert dialogue.count("\nMaria: ") + dialogue.count("\nTom: ") == 9
    blank = real["learn-greetings-in-your-first-day-at-the-office/651dd5296ffb500e3f2ce479#statement"].text
    assert "Sentence: `Hello. BLANK the new graphic designer, right?`\n\nBlank 1: `You're`\nFeedback: Use a " \
           "contraction of `you are`." in blank


def test_the_content_licence_is_recorded_not_the_software_licence(real: dict[str, Document]) -> None:
    assert {d.metadata["licence"] for d in real.values()} == {"CC BY-SA 4.0 (freeCodeCamp.org curriculum content)"}


def test_ids_do_not_depend_on_the_path_given() -> None:
    if not (REAL / BLOCKS).is_dir():
        pytest.skip("real freeCodeCamp files not found")
    ids = [{r.doc_id for r in read_freecodecamp(path) if isinstance(r, Document)}
           for path in (REAL, REAL / "curriculum" / "challenges", REAL / BLOCKS)]
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) == 31
    one = REAL / BLOCKS / "quiz-basic-html" / "66df3b712c41c499e9d31e5b.md"
    [doc] = [r for r in read_freecodecamp(one) if isinstance(r, Document)]
    assert doc.doc_id in ids[0] and doc.path == f"{BLOCKS}/quiz-basic-html/66df3b712c41c499e9d31e5b.md"


def test_the_superblock_comes_from_the_structure_files(tmp_path: Path) -> None:
    block = tmp_path / "curriculum" / "challenges" / "english" / "blocks" / "lab-recipe-page"
    block.mkdir(parents=True)
    (block / "a.md").write_text(_challenge(body="# --description--\n\nCook.\n"))
    structure = tmp_path / "curriculum" / "structure" / "superblocks"
    structure.mkdir(parents=True)
    (structure / "full-stack-developer.json").write_text(
        '{"chapters": [{"dashedName": "html", "modules": [{"dashedName": "basic-html", '
        '"blocks": ["workshop-cat-photo-app", "lab-recipe-page"]}]}]}')
    [doc] = _docs(list(read_freecodecamp(tmp_path / "curriculum" / "challenges"))).values()
    assert doc.metadata["block"] == "lab-recipe-page" and doc.metadata["superblock"] == "full-stack-developer"


def test_yaml_aliases_are_refused_at_once(tmp_path: Path) -> None:
    levels = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 10)]  # 9**10 strings if expanded
    bomb = tmp_path / "bomb.md"
    bomb.write_text(_challenge("id: x\n" + "\n".join(levels) + "\ntitle: *a9") + "# --description--\n\nx\n")
    [skip] = list(read_freecodecamp(bomb))
    assert isinstance(skip, SkippedRecord) and "unparseable YAML front matter" in skip.reason
    assert "not allowed" in skip.reason
    deep = tmp_path / "deep.md"
    deep.write_text(_challenge("id: x\ntitle: " + "[" * 3000 + "]" * 3000) + "# --description--\n\nx\n")
    [skip] = list(read_freecodecamp(deep))
    assert isinstance(skip, SkippedRecord) and skip.reason.startswith("unparseable YAML front matter")
    big = tmp_path / "big.md"
    big.write_text(_challenge("id: x\ntitle: " + "y" * 30_000) + "# --description--\n\nx\n")
    [skip] = list(read_freecodecamp(big))
    assert isinstance(skip, SkippedRecord) and skip.reason.startswith("front matter too large")


def test_a_link_to_a_file_outside_the_tree_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text(_challenge(body="# --description--\n\nSecret.\n"))
    tree = tmp_path / "curriculum" / "challenges" / "english" / "blocks" / "b"
    tree.mkdir(parents=True)
    (tree / "inside.md").write_text(_challenge(body="# --description--\n\nFine.\n"))
    (tree / "link-in.md").symlink_to(tree / "inside.md")
    (tree / "link-out.md").symlink_to(outside)
    (tree / "loop.md").symlink_to(tree / "loop.md")
    records = list(read_freecodecamp(tmp_path / "curriculum"))
    assert [(Path(p).name, r) for p, r in _skips(records)] == [
        ("link-out.md", "symbolic link to a file outside the tree (not read)"),
        ("loop.md", "symbolic link to a file outside the tree (not read)")]
    assert "Secret" not in " ".join(d.text for d in _docs(records).values())
    assert len(_docs(records)) == 2  # a link inside the tree is read
