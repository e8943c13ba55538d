"""The Stack Exchange dump reader: pairing, filters, HTML conversion, bad input and bounded memory."""

from __future__ import annotations

import gc
import sqlite3
import tracemalloc
from pathlib import Path

import pytest

from cet.errors import CetError
from cet.knowledge.records import Document, SkippedRecord
from cet.knowledge.sources import get_reader
from cet.knowledge.sources import stackexchange as se
from cet.knowledge.sources.stackexchange import html_to_markdown, parse_tags, read_stackexchange

FIXTURES = Path(__file__).parent / "fixtures" / "stackexchange"
POSTS = FIXTURES / "stackoverflow.com" / "Posts.xml"
TRUNCATED = FIXTURES / "truncated-Posts.xml"


def _split(records: list[Document | SkippedRecord]) -> tuple[dict[str, Document], list[SkippedRecord]]:
    docs = {r.doc_id: r for r in records if isinstance(r, Document)}
    skips = [r for r in records if isinstance(r, SkippedRecord)]
    return docs, skips


def _esc(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
            .replace("\n", "&#xA;"))


def _question(post_id: int, score: int = 1, accepted: int | None = None, tags: str = "<python>",
              body: str = "<p>question body</p>") -> str:
    acc = f' AcceptedAnswerId="{accepted}"' if accepted is not None else ""
    return (f'  <row Id="{post_id}" PostTypeId="1"{acc} Score="{score}" ViewCount="10" Body="{_esc(body)}" '
            f'Title="Question {post_id}" Tags="{_esc(tags)}" AnswerCount="1" '
            'ContentLicense="CC BY-SA 4.0" />\n')


def _answer(post_id: int, parent: int, score: int = 1, body: str = "<p>answer body</p>") -> str:
    return (f'  <row Id="{post_id}" PostTypeId="2" ParentId="{parent}" Score="{score}" Body="{_esc(body)}" '
            f'ContentLicense="CC BY-SA 4.0" />\n')


def _write_dump(path: Path, rows: list[str], close: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    closing = "</posts>\n" if close else ""
    text = '<?xml version="1.0" encoding="utf-8"?>\n<posts>\n' + "".join(rows) + closing
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def fixture_records() -> list[Document | SkippedRecord]:
    return list(read_stackexchange(POSTS))


def test_registry_returns_this_reader() -> None:
    assert get_reader("stackexchange") is read_stackexchange


def test_fixture_yields_expected_pairs_and_skips(fixture_records: list[Document | SkippedRecord]) -> None:
    docs, skips = _split(fixture_records)
    assert sorted(docs) == [f"stackexchange:stackoverflow.com:{i}" for i in (1, 10, 13, 5)]
    assert sorted((s.path.rsplit("#", 1)[1], s.reason) for s in skips) == [
        ("Id=12", "post 12: non-integer Score, ParentId or AcceptedAnswerId"),
        ("Id=7", "no answer"),
        ("row13", "row without Id or PostTypeId"),
    ]


def test_pairs_question_with_accepted_answer_over_higher_scored(fixture_records: list) -> None:
    doc = _split(fixture_records)[0]["stackexchange:stackoverflow.com:1"]
    assert doc.metadata["answer_id"] == 3  # answer 2 scores 40 but is not accepted
    assert doc.metadata["accepted_answer"] is True
    assert doc.metadata["answer_votes"] == 18
    assert "sorted(people, key=lambda person: person['age'])" in doc.text
    assert "for i in range(len(people))" not in doc.text


def test_falls_back_to_best_answer_even_when_it_precedes_the_question(fixture_records: list) -> None:
    doc = _split(fixture_records)[0]["stackexchange:stackoverflow.com:5"]
    assert doc.metadata["answer_id"] == 4 and doc.metadata["accepted_answer"] is False
    assert "fruits.includes('apple')" in doc.text
    assert doc.language == "javascript"  # first language tag, after the non-language "arrays"


def test_accepted_answer_missing_from_dump_falls_back_to_best(fixture_records: list) -> None:
    doc = _split(fixture_records)[0]["stackexchange:stackoverflow.com:13"]
    assert doc.metadata["answer_id"] == 14 and doc.metadata["accepted_answer"] is False
    assert doc.language == "python"  # from the python-3.x tag


def test_document_fields_and_metadata(fixture_records: list) -> None:
    doc = _split(fixture_records)[0]["stackexchange:stackoverflow.com:1"]
    assert doc.source == "stackexchange" and doc.kind == "qa" and doc.format == "markdown"
    assert doc.title == "How do I sort a list of dictionaries by a value of the dictionary?"
    assert doc.path == "https://stackoverflow.com/q/1"
    assert doc.language == "python"
    assert doc.text.startswith("Question: How do I sort a list of dictionaries")
    assert "\n\nAnswer: Use `sorted()` with a `key` function:" in doc.text
    meta = doc.metadata
    assert meta["licence"] == "CC BY-SA 3.0" and meta["votes"] == 25 and meta["view_count"] == 41230
    assert meta["tags"] == ["python", "list", "sorting"] and meta["question_id"] == 1


def test_missing_licence_defaults_and_pipe_tags_parse(fixture_records: list) -> None:
    doc = _split(fixture_records)[0]["stackexchange:stackoverflow.com:10"]
    assert doc.metadata["licence"] == "CC BY-SA 4.0"
    assert doc.metadata["tags"] == ["rust", "lifetime"]
    assert doc.language == "rust"


def test_html_bodies_become_markdown_with_fenced_code(fixture_records: list) -> None:
    doc = _split(fixture_records)[0]["stackexchange:stackoverflow.com:10"]
    question_code = "fn longest(a: &str, b: &str) -> &str {\n    if a.len() > b.len() { a } else { b }\n}"
    assert f"```rust\n{question_code}\n```" in doc.text
    assert "```rust\nfn longest<'a>(a: &'a str, b: &'a str) -> &'a str {" in doc.text
    assert "The error is `missing lifetime specifier`." in doc.text
    assert "<p>" not in doc.text and "&lt;" not in doc.text and "&amp;" not in doc.text
    first = _split(fixture_records)[0]["stackexchange:stackoverflow.com:1"]
    assert "[operator.itemgetter](https://docs.python.org/3/library/operator.html)" in first.text
    assert "- `key=itemgetter('age')`\n- add `reverse=True` for descending order" in first.text


def test_min_score_filters_questions() -> None:
    default = _split(list(read_stackexchange(POSTS)))[0]
    assert "stackexchange:stackoverflow.com:8" not in default  # score -3 < 0
    lenient = _split(list(read_stackexchange(POSTS, min_score=-5)))[0]
    assert lenient["stackexchange:stackoverflow.com:8"].metadata["votes"] == -3
    strict, skips = _split(list(read_stackexchange(POSTS, min_score=10)))
    assert sorted(strict) == ["stackexchange:stackoverflow.com:1", "stackexchange:stackoverflow.com:10"]
    assert all(s.reason != "no answer" for s in skips)  # question 7 (score 3) is filtered, not skipped


def test_tags_filter_keeps_questions_with_any_tag() -> None:
    rust = _split(list(read_stackexchange(POSTS, tags=["rust"])))[0]
    assert list(rust) == ["stackexchange:stackoverflow.com:10"]
    mixed = _split(list(read_stackexchange(POSTS, tags=["JavaScript", "file-io"])))[0]
    assert sorted(mixed) == ["stackexchange:stackoverflow.com:13", "stackexchange:stackoverflow.com:5"]


def test_language_argument_is_the_fallback(tmp_path: Path) -> None:
    dump = _write_dump(tmp_path / "dump" / "Posts.xml",
                       [_question(1, tags="<regex><arrays>"), _answer(2, 1), _question(3, tags="<java>"),
                        _answer(4, 3)])
    docs = _split(list(read_stackexchange(dump, language="perl")))[0]
    assert docs["stackexchange:dump:1"].language == "perl"
    assert docs["stackexchange:dump:3"].language == "java"
    assert docs["stackexchange:dump:1"].path == str(dump)  # "dump" is not a domain


def test_truncated_xml_yields_good_pairs_then_a_parse_error_skip() -> None:
    records = list(read_stackexchange(TRUNCATED))
    assert isinstance(records[0], Document) and records[0].metadata["answer_id"] == 2
    assert records[0].doc_id == "stackexchange:stackexchange:1"
    # question 3's answer was cut off with the rest of the file: said so, not "no answer"
    assert [r.reason for r in records[1:-1]] == ["answers cut off (AnswerCount 1; the file ends early)"]
    last = records[-1]
    assert isinstance(last, SkippedRecord)
    assert last.reason.startswith("malformed XML at line 6, column") and "stopped reading" in last.reason


def test_garbage_in_the_middle_keeps_pairs_read_before_it(tmp_path: Path) -> None:
    rows = [_question(1), _answer(2, 1), "  <row Id=\"3\" PostTypeId=\"1\" <<< garbage >>>\n",
            _question(4), _answer(5, 4)]
    records = list(read_stackexchange(_write_dump(tmp_path / "Posts.xml", rows)))
    docs, skips = _split(records)
    assert [d.metadata["question_id"] for d in docs.values()] == [1]
    assert len(skips) == 1 and skips[0].reason.startswith("malformed XML at line 5,")
    assert records[-1] is skips[0]


def test_a_file_that_is_no_posts_dump_is_one_clear_error(tmp_path: Path) -> None:
    import gzip

    cases = {"empty": b"", "blank": b"\n  \n", "gzip": gzip.compress(b"<posts></posts>"),
             "text": b"Id,PostTypeId\n1,1\n", "users": b'<?xml version="1.0"?>\n<users><row Id="1" /></users>\n',
             "bomb": b'<?xml version="1.0"?>\n<!DOCTYPE posts [<!ENTITY a "aaaaaaaaaa">]>\n'
                     b'<posts><row Id="1" PostTypeId="1" Body="&a;" /></posts>\n'}
    said = {"empty": "is empty", "blank": "is empty", "gzip": "gzip-compressed", "text": "is not XML",
            "users": "root element <users>, not <posts>", "bomb": "unsafe XML refused"}
    for name, data in cases.items():
        dump = tmp_path / name / "Posts.xml"
        dump.parent.mkdir()
        dump.write_bytes(data)
        with pytest.raises(CetError, match=said[name]):
            read_stackexchange(dump)  # at the call, before anything is read
        with pytest.raises(CetError, match=said[name]):
            read_stackexchange(tmp_path / name)  # a directory holding it, too


def test_an_answer_without_a_body_is_passed_over_for_the_next(tmp_path: Path) -> None:
    rows = [_question(1), _answer(2, 1, score=10, body=""), _answer(3, 1, score=5, body="<p>the real answer</p>"),
            _question(4, accepted=5), _answer(5, 4, score=9, body="<p>&nbsp;</p>"), _answer(6, 4, body="<p>ok</p>"),
            _question(7), _answer(8, 7, body="<p> </p>")]
    docs, skips = _split(list(read_stackexchange(_write_dump(tmp_path / "Posts.xml", rows))))
    assert [d.metadata["answer_id"] for d in docs.values()] == [3, 6]
    assert next(iter(docs.values())).text.endswith("Answer: the real answer")
    assert [s.reason for s in skips] == ["only answers without a body (1)"]  # question 7


def test_a_link_to_a_dump_outside_the_tree_is_refused(tmp_path: Path) -> None:
    outside = _write_dump(tmp_path / "outside" / "Posts.xml", [_question(1), _answer(2, 1)])
    tree = tmp_path / "dumps"
    inside = _write_dump(tree / "site.example.com" / "Posts.xml", [_question(5), _answer(6, 5)])
    (tree / "linked.example.com").mkdir()
    (tree / "linked.example.com" / "Posts.xml").symlink_to(outside)
    (tree / "alias.example.com").mkdir()
    (tree / "alias.example.com" / "Posts.xml").symlink_to(inside)
    docs, skips = _split(list(read_stackexchange(tree)))
    assert [(Path(s.path).parent.name, s.reason) for s in skips] == [
        ("linked.example.com", "symbolic link to a file outside the tree (not read)")]
    assert sorted(docs) == ["stackexchange:site.example.com:5"]  # the inside link reads the same file, once
def test_huge_bodies_are_skipped_with_reason(tmp_path: Path) -> None:
    huge = "<p>" + "x" * 210_000 + "</p>"
    rows = [_question(1, body=huge), _answer(2, 1), _question(3), _answer(4, 3, score=9, body=huge),
            _answer(5, 3, score=1)]
    docs, skips = _split(list(read_stackexchange(_write_dump(tmp_path / "Posts.xml", rows))))
    assert [d.metadata["answer_id"] for d in docs.values()] == [5]  # the huge answer 4 is not a candidate
    huge_ids = sorted(s.path.rsplit("#", 1)[1] for s in skips if "larger than 200 kB" in s.reason)
    assert huge_ids == ["Id=1", "Id=4"]


def test_answers_to_missing_questions_are_skipped(tmp_path: Path) -> None:
    rows = [_answer(2, 1), _question(3), _answer(4, 3)]
    docs, skips = _split(list(read_stackexchange(_write_dump(tmp_path / "Posts.xml", rows))))
    assert len(docs) == 1
    assert [s.reason for s in skips] == ["answer to question 1, which is not in the dump"]


def test_other_post_types_are_ignored(tmp_path: Path) -> None:
    wiki = '  <row Id="9" PostTypeId="5" Score="0" Body="&lt;p&gt;tag wiki&lt;/p&gt;" />\n'
    dump = _write_dump(tmp_path / "Posts.xml", [wiki, _question(1), _answer(2, 1)])
    records = list(read_stackexchange(dump))
    assert [type(r).__name__ for r in records] == ["Document"]


def test_missing_path_raises_cet_error_at_call_time(tmp_path: Path) -> None:
    with pytest.raises(CetError, match="Stack Exchange dump not found"):
        read_stackexchange(tmp_path / "nope")
    with pytest.raises(CetError, match="no Posts.xml"):
        read_stackexchange(tmp_path)


def test_directory_reads_every_site_dump() -> None:
    docs = _split(list(read_stackexchange(FIXTURES)))[0]
    assert "stackexchange:stackexchange:1" in docs  # truncated-Posts.xml in the directory itself
    assert "stackexchange:stackoverflow.com:1" in docs  # stackoverflow.com/Posts.xml below it


def test_pending_halves_spill_to_sqlite_with_same_result(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [_answer(1000 + i, i, score=i, body=f"<p>answer {i}</p><pre><code>print({i})</code></pre>")
            for i in range(1, 40)]
    rows += [_question(i, accepted=1000 + i if i % 2 else None) for i in range(1, 40)]
    dump = _write_dump(tmp_path / "Posts.xml", rows)
    in_memory = [(r.doc_id, r.text, r.metadata) for r in read_stackexchange(dump)]
    connections: list[str] = []
    real_connect = sqlite3.connect

    def spy(database: object, *args: object, **kwargs: object) -> sqlite3.Connection:
        connections.append(str(database))
        return real_connect(database, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(se, "PENDING_MEMORY_CHARS", 0)
    monkeypatch.setattr(se.sqlite3, "connect", spy)
    spilled = [(r.doc_id, r.text, r.metadata) for r in read_stackexchange(dump)]
    assert connections, "nothing was spilled to SQLite"
    assert spilled == in_memory and len(in_memory) == 39
    assert all(not Path(c).exists() for c in connections)  # temporary store cleaned up


def test_large_dump_streams_in_bounded_memory(tmp_path: Path) -> None:
    dump = tmp_path / "stackoverflow.com" / "Posts.xml"
    dump.parent.mkdir()
    question_body = _esc("<p>" + "how do I make this loop faster " * 650 + "</p>")
    code = "total += value  # accumulate\n" * 700
    answer_body = _esc(f"<p>Try this:</p><pre><code>{code}</code></pre>")
    pairs = 1300
    with dump.open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<posts>\n')
        for i in range(pairs):
            qid, aid = 2 * i + 1, 2 * i + 2
            score = 5 if i % 10 == 0 else 0  # one question in ten passes min_score: both passes read it all
            out.write(f'  <row Id="{qid}" PostTypeId="1" AcceptedAnswerId="{aid}" Score="{score}" '
                      f'Body="{question_body}" '
                      f'Title="Loop {qid}" Tags="&lt;python&gt;" />\n')
            out.write(f'  <row Id="{aid}" PostTypeId="2" ParentId="{qid}" Score="1" '
                      f'Body="{answer_body}" />\n')
        out.write("</posts>\n")
    assert dump.stat().st_size > 50_000_000
    gc.collect()
    tracemalloc.start()
    try:
        count = 0
        for record in read_stackexchange(dump, min_score=1):
            assert isinstance(record, Document)
            assert record.metadata["answer_id"] == record.metadata["question_id"] + 1
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == pairs // 10
    assert peak < 20_000_000, f"peak traced memory {peak / 1e6:.1f} MB for a 50 MB dump"


def test_language_from_versioned_tags() -> None:
    assert se.language_for(("regex", "python-3.x")) == "python"
    assert se.language_for(("c++17", "templates")) == "cpp"
    assert se.language_for(("d3.js", "svg"), "javascript") == "javascript"  # d3 is not the D language
    assert se.language_for(("c#", "linq")) == "csharp"


def test_parse_tags_accepts_both_dump_formats() -> None:
    assert parse_tags("<python><list-comprehension>") == ("python", "list-comprehension")
    assert parse_tags("|c++|templates|") == ("c++", "templates")
    assert parse_tags("") == ()


def test_html_to_markdown_nested_blocks_and_backticks() -> None:
    html = ("<p>Call <code>a `tick`</code>:</p>"
            "<ol><li>first</li><li><pre><code>x = 1\n  y</code></pre></li></ol>"
            "<blockquote><p>quoted <em>text</em></p>"
            "<pre class='lang-js'><code>let a;</code></pre></blockquote>"
            "<h2>Heading</h2><p>line<br>break</p><pre><code>has ``` inside</code></pre>")
    assert html_to_markdown(html) == (
        "Call `` a `tick` ``:\n\n1. first\n2.\n   ```\n   x = 1\n     y\n   ```\n\n"
        "> quoted *text*\n>\n> ```js\n> let a;\n> ```\n\n## Heading\n\nline\nbreak\n\n"
        "````\nhas ``` inside\n````"
    )
    assert html_to_markdown("plain &amp; simple") == "plain & simple"


REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "stackexchange"


def test_the_real_fragment_dates_its_licences_and_names_missing_answers() -> None:
    if not (REAL / "matheducators.stackexchange.com" / "Posts.xml").is_file():
        pytest.skip(f"real Stack Exchange fragment not found at {REAL} (../shared/data/stackexchange)")
    docs, skips = _split(list(read_stackexchange(REAL)))
    # every post is from March 2014 and names no ContentLicense: CC BY-SA 3.0 applied then, not 4.0
    assert len(docs) == 49 and {d.metadata["licence"] for d in docs.values()} == {"CC BY-SA 3.0"}
    reasons = {s.path.rsplit("#Id=", 1)[1]: s.reason for s in skips}
    assert {k for k, r in reasons.items() if r == "no answer"} == {"9", "55", "195"}  # AnswerCount 0
    assert reasons["175"] == "answers not in the file (AnswerCount 5; a partial dump)"
    assert len(reasons) == 9 and not any("Answer:" == d.text.rsplit("\n", 1)[-1] for d in docs.values())


def test_licences_follow_the_creation_date_when_a_row_names_none() -> None:
    assert se.licence_of({"CreationDate": "2010-12-31T10:00:00.000"}) == "CC BY-SA 2.5"
    assert se.licence_of({"CreationDate": "2011-04-08T00:00:00.000"}) == "CC BY-SA 3.0"
    assert se.licence_of({"CreationDate": "2018-05-01T23:59:59.999"}) == "CC BY-SA 3.0"
    assert se.licence_of({"CreationDate": "2018-05-02T00:00:00.000"}) == "CC BY-SA 4.0"
    assert se.licence_of({"CreationDate": "2014-03-13", "ContentLicense": "CC BY-SA 4.0"}) == "CC BY-SA 4.0"
    assert se.licence_of({}).startswith("CC BY-SA (version unknown")
