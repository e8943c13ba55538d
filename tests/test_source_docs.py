"""The docs reader: reST / Markdown / HTML fixtures, bad files, and Python's real documentation."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cet.errors import CetError
from cet.knowledge.records import KINDS, Document, SkippedRecord
from cet.knowledge.sources import get_reader
from cet.knowledge.sources.docs import PYTHON_DOCS_LICENCE, read_docs

FIXTURES = Path(__file__).parent / "fixtures" / "docs"
PYTHON_DOCS = Path("/usr/share/doc/python3.11/html/_sources")
needs_python_docs = pytest.mark.skipif(
    not (PYTHON_DOCS / "library" / "itertools.rst.txt").is_file(),
    reason=f"Python's docs not installed at {PYTHON_DOCS} (apt-get install python3.11-doc)",
)


def _split(records: list[Document | SkippedRecord]) -> tuple[list[Document], list[SkippedRecord]]:
    docs = [r for r in records if isinstance(r, Document)]
    skipped = [r for r in records if isinstance(r, SkippedRecord)]
    assert len(docs) + len(skipped) == len(records)
    return docs, skipped


@pytest.fixture(scope="module")
def fixture_records() -> list[Document | SkippedRecord]:
    return list(read_docs(FIXTURES))


@pytest.fixture(scope="module")
def by_id(fixture_records: list[Document | SkippedRecord]) -> dict[str, Document]:
    return {d.doc_id: d for d in _split(fixture_records)[0]}


# ----------------------------------------------------------------------------------------------- tree


def test_registry_returns_this_reader() -> None:
    assert get_reader("docs") is read_docs


def test_fixture_tree_documents_and_order(fixture_records: list[Document | SkippedRecord]) -> None:
    docs, _ = _split(fixture_records)
    paths = [d.path for d in docs]
    assert paths == sorted(paths), "files are walked in sorted order"
    assert set(paths) == {"guide.rst", "notes.md", "page.html", "reference/api.rst.txt"}
    assert len({d.doc_id for d in docs}) == len(docs)
    for doc in docs:
        assert (doc.source, doc.kind, doc.language) == ("docs", "doc", "python")
        assert doc.kind in KINDS
        assert doc.metadata["licence"] == "unknown"
        assert doc.doc_id.startswith(f"docs:{doc.path}#")
        assert doc.text.strip()
        assert set(doc.metadata) >= {"licence", "doc_title", "section", "heading_path", "apis"}


def test_bad_files_are_skipped_with_reasons(fixture_records: list[Document | SkippedRecord]) -> None:
    _, skipped = _split(fixture_records)
    reasons = {s.path: s.reason for s in skipped}
    assert set(reasons) == {"binary.rst", "latin1.md"}, "images and css are ignored, not counted"
    assert "binary" in reasons["binary.rst"]
    assert "not UTF-8" in reasons["latin1.md"]
    assert all(s.source == "docs" for s in skipped)


def test_files_over_the_size_limit_are_skipped() -> None:
    records = list(read_docs(FIXTURES, max_file_bytes=300))
    too_large = {
        s.path: s.reason for s in records if isinstance(s, SkippedRecord) and "too large" in s.reason
    }
    assert set(too_large) == {"guide.rst", "page.html"}
    assert "> 300" in too_large["guide.rst"]
    assert any(isinstance(r, Document) and r.path == "notes.md" for r in records)


def test_missing_path_raises_a_one_line_cet_error(tmp_path: Path) -> None:
    with pytest.raises(CetError, match="docs path not found") as info:
        read_docs(tmp_path / "nowhere")  # at the call, not at the first next()
    assert "\n" not in str(info.value)
    with pytest.raises(CetError, match="python3.11-doc"):
        list(read_docs(Path("/nonexistent/python3.11/html/_sources")))


def test_reading_is_lazy(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n\ntext\n")
    records = read_docs(tmp_path)
    (tmp_path / "b.md").write_text("# B\n\nmore\n")  # appears before the walk reaches it
    assert [r.path for r in records] == ["a.md", "b.md"]


def test_licence_argument_and_python_docs_detection(tmp_path: Path) -> None:
    (tmp_path / "page.md").write_text("# Page\n\nbody\n")
    assert next(read_docs(tmp_path, licence="CC-BY-4.0")).metadata["licence"] == "CC-BY-4.0"
    assert next(read_docs(tmp_path)).metadata["licence"] == "unknown"
    (tmp_path / "copyright.rst.txt").write_text("Copyright\n=========\n\nPython Software Foundation.\n")
    assert next(read_docs(tmp_path)).metadata["licence"] == PYTHON_DOCS_LICENCE


def test_language_argument_is_passed_through(tmp_path: Path) -> None:
    (tmp_path / "page.md").write_text("# Page\n\nbody\n")
    assert next(read_docs(tmp_path, language=None)).language is None
    assert next(read_docs(tmp_path, language="rust")).language == "rust"


def test_file_with_only_headings_is_counted_not_dropped(tmp_path: Path) -> None:
    (tmp_path / "index.rst").write_text("Index\n=====\n\n.. toctree::\n\n   one\n   two\n")
    (record,) = read_docs(tmp_path)
    assert isinstance(record, SkippedRecord)
    assert "no content" in record.reason


# ----------------------------------------------------------------------------------------------- reST


def test_rst_sections_titles_and_heading_paths(by_id: dict[str, Document]) -> None:
    rst = {k: d for k, d in by_id.items() if d.path == "guide.rst"}
    assert list(rst) == [
        "docs:guide.rst#the-widget-guide",
        "docs:guide.rst#getting-started",
        "docs:guide.rst#functions",
        "docs:guide.rst#classes",
        "docs:guide.rst#child-with-text",
        "docs:guide.rst#functions-2",
    ], "heading-only sections ('API reference', 'Empty parent') are not documents; repeated titles get -2"
    first = rst["docs:guide.rst#the-widget-guide"]
    assert first.title == "The Widget Guide"
    assert first.format == "rst"
    assert rst["docs:guide.rst#getting-started"].title == "The Widget Guide — Getting started"
    functions = rst["docs:guide.rst#functions"]
    assert functions.metadata["heading_path"] == ["The Widget Guide", "API reference"]
    assert functions.metadata["section"] == "Functions"
    assert functions.metadata["doc_title"] == "The Widget Guide"
    assert rst["docs:guide.rst#child-with-text"].metadata["heading_path"] == [
        "The Widget Guide",
        "Empty parent",
    ]


def test_rst_text_starts_with_clean_heading_and_drops_markup_noise(by_id: dict[str, Document]) -> None:
    first = by_id["docs:guide.rst#the-widget-guide"]
    assert first.text.startswith("The Widget Guide\n\n")
    for noise in ("=====", "------", "internal comment", "it continues", ".. _guide-top", ".. index::"):
        assert noise not in first.text
    started = by_id["docs:guide.rst#getting-started"]
    assert started.text.startswith("Getting started\n\nInstall")
    assert "    w = widgets.make(3)" in started.text, "literal blocks keep their indentation"
    assert ".. note::" in started.text, "ordinary directives are kept"


def test_rst_api_directives_become_signatures_and_apis(by_id: dict[str, Document]) -> None:
    first = by_id["docs:guide.rst#the-widget-guide"]
    assert first.metadata["apis"] == ["widgets"]
    assert "module widgets — Build, shape and count widgets." in first.text
    functions = by_id["docs:guide.rst#functions"]
    assert functions.metadata["apis"] == ["widgets.make", "widgets.shape"]
    assert 'widgets.make(size, *, colour="red")' in functions.text
    assert "widgets.shape(widget)\nwidgets.shape(widget, form)" in functions.text
    assert ".. function::" not in functions.text
    classes = by_id["docs:guide.rst#classes"]
    assert classes.metadata["apis"] == [
        "widgets.Widget",
        "widgets.Widget.grow",
        "widgets.Widget.size",
        "widgets.WidgetError",
    ]
    assert "class widgets.Widget(size)" in classes.text
    assert "   widgets.Widget.grow(by=1)" in classes.text
    assert "exception widgets.WidgetError" in classes.text


def test_sphinx_sources_currentmodule_and_c_api(by_id: dict[str, Document]) -> None:
    api = by_id["docs:reference/api.rst.txt#reference"]
    assert api.format == "rst"
    assert api.metadata["apis"] == ["widgets.extra.count", "Widget_New"]
    assert "PyObject* Widget_New(Py_ssize_t size)" in api.text
    assert "*****" not in api.text


# ------------------------------------------------------------------------------------------- Markdown


def test_markdown_headings_outside_fences_only(by_id: dict[str, Document]) -> None:
    md = [d for d in by_id.values() if d.path == "notes.md"]
    assert [d.metadata["section"] for d in md] == ["Widget notes", "Tips", "A code tip", "Last"]
    top = md[0]
    assert top.format == "markdown"
    assert top.title == "Widget notes"
    assert '```python\n# not a heading\nprint("hello")\n```' in top.text
    assert "## also not a heading" in top.text
    assert "title: Notes on widgets" not in top.text, "front matter is not content"
    tip = by_id["docs:notes.md#a-code-tip"]
    assert tip.title == "Widget notes — A code tip"
    assert tip.metadata["heading_path"] == ["Widget notes", "Tips"]
    assert tip.text.startswith("### A `code` tip\n\nUse `widgets.make`.")
    assert "docs:notes.md#empty" not in by_id


# ----------------------------------------------------------------------------------------------- HTML


def test_html_sections_text_and_code(by_id: dict[str, Document]) -> None:
    html = [d for d in by_id.values() if d.path == "page.html"]
    assert [d.metadata["section"] for d in html] == ["Widget page", "Usage", "Table"]
    joined = "\n".join(d.text for d in html)
    for dropped in ("tracking", "color: red", "Home", "Next page", "Previous", "¶"):
        assert dropped not in joined
    top = by_id["docs:page.html#widget-page"]
    assert top.format == "html"
    assert top.text == "# Widget page\n\nAn introduction with `inline code` and a link."
    usage = by_id["docs:page.html#usage"]
    assert "```\nimport widgets\nwidgets.make(3)\n```" in usage.text
    assert "- first point\n- second point" in usage.text
    assert usage.metadata["apis"] == ["widgets.make"]
    assert "| small | 1 |" in by_id["docs:page.html#table"].text
    assert by_id["docs:page.html#table"].metadata["heading_path"] == ["Widget page", "Usage"]


# --------------------------------------------------------------------------------- Python's real docs


@needs_python_docs
def test_real_itertools_page() -> None:
    docs = [r for r in read_docs(PYTHON_DOCS / "library" / "itertools.rst.txt") if isinstance(r, Document)]
    assert docs[0].title == "itertools — Functions creating iterators for efficient looping"
    assert docs[0].metadata["licence"] == PYTHON_DOCS_LICENCE
    functions = next(d for d in docs if "itertools.chain" in d.metadata["apis"])
    assert functions.metadata["section"] == "Itertool functions"
    assert {"itertools.chain.from_iterable", "itertools.groupby", "itertools.zip_longest"} <= set(
        functions.metadata["apis"]
    )
    assert "\nitertools.chain(*iterables)\n" in functions.text
    assert "classmethod itertools.chain.from_iterable(iterable)" in functions.text
    assert "def chain(*iterables):" in functions.text, "code examples are kept"


@needs_python_docs
def test_real_builtins_and_classes() -> None:
    builtins = [
        r for r in read_docs(PYTHON_DOCS / "library" / "functions.rst.txt") if isinstance(r, Document)
    ]
    apis = {api for d in builtins for api in d.metadata["apis"]}
    assert {"zip", "sorted", "enumerate", "print"} <= apis
    text = "\n".join(d.text for d in builtins)
    assert "\nzip(*iterables, strict=False)\n" in text
    assert "awaitable anext(async_iterator, default)" in text
    collections = [
        r for r in read_docs(PYTHON_DOCS / "library" / "collections.rst.txt") if isinstance(r, Document)
    ]
    counter = next(d for d in collections if "collections.Counter" in d.metadata["apis"])
    assert "collections.Counter.most_common" in counter.metadata["apis"]
    assert counter.title == "collections — Container datatypes — Counter objects"


@pytest.mark.slow
@needs_python_docs
def test_real_python_docs_tree() -> None:
    started = time.monotonic()
    docs, skipped = _split(list(read_docs(PYTHON_DOCS)))
    elapsed = time.monotonic() - started
    assert elapsed < 60
    files = {d.path for d in docs}
    assert 480 <= len(files) <= 497
    assert 3_000 <= len(docs) <= 8_000
    assert len(skipped) <= 5 and all("no content" in s.reason for s in skipped)
    assert len({d.doc_id for d in docs}) == len(docs)
    assert all(d.metadata["licence"] == PYTHON_DOCS_LICENCE for d in docs)
    assert sum(len(d.metadata["apis"]) for d in docs) > 8_000
    assert "library/itertools.rst.txt" in files and "tutorial/index.rst.txt" in files
    assert not any(d.text.startswith(("===", "---", "***")) for d in docs), "adornments are cleaned"


def test_a_link_to_a_file_outside_the_tree_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret.md").write_text("# Secret\n\nA private note kept outside the docs.\n")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "page.md").write_text("# Page\n\nPublic text of the documentation.\n")
    (docs / "alias.md").symlink_to(docs / "page.md")
    (docs / "leak.md").symlink_to(tmp_path / "secret.md")
    records = list(read_docs(docs))
    skipped = [(r.path, r.reason) for r in records if isinstance(r, SkippedRecord)]
    assert skipped == [("leak.md", "symbolic link to a file outside the tree (not read)")]
    assert not any("private note" in r.text for r in records if isinstance(r, Document))
    assert {r.path for r in records if isinstance(r, Document)} == {"alias.md", "page.md"}
