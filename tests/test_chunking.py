"""Chunking: Markdown split at headings outside fences, packing under the size limit, stable ids, metadata."""

from __future__ import annotations

import re

from cet.knowledge.chunking import blocks, chunk_document, chunk_id, markdown_sections, pack
from cet.knowledge.records import Document


def doc(text: str, fmt: str = "markdown", doc_id: str = "d1", title: str = "Guide", **meta: object) -> Document:
    return Document(source="src", doc_id=doc_id, title=title, text=text, kind="doc", path="docs/guide.md",
                    format=fmt, language="python", metadata=dict(meta))


FENCED = """# Setup

Install the tool before you start, then read on.

```python
# this is a comment, not a heading
def main():
    return 1
```

## Usage

Call main from the command line.

### Details

Nothing else to say about it.
"""


def test_markdown_sections_split_at_headings_not_inside_fences() -> None:
    sections = markdown_sections(FENCED)
    assert [h for h, _ in sections] == ["Setup", "Usage", "Details"]
    setup = sections[0][1]
    assert setup.startswith("# Setup")
    assert "# this is a comment, not a heading" in setup
    assert "def main():" in setup and setup.rstrip().endswith("```")
    assert sections[1][1] == "## Usage\n\nCall main from the command line."


def test_markdown_sections_keep_text_before_the_first_heading_and_strip_closing_hashes() -> None:
    sections = markdown_sections("Preamble line.\n\n## Title ##\nbody\n")
    assert sections == [(None, "Preamble line."), ("Title", "## Title ##\nbody")]


def test_tilde_fences_also_hide_headings() -> None:
    text = "# A\n~~~\n# inside\n~~~\n# B\nend\n"
    assert [h for h, _ in markdown_sections(text)] == ["A", "B"]


def test_long_markdown_document_chunks_per_section_with_heading_titles() -> None:
    chunks = chunk_document(doc(FENCED), max_chars=120)
    titles = [c.title for c in chunks]
    assert titles[0] == "Guide — Setup"
    assert "Guide — Usage" in titles and "Guide — Details" in titles
    # the fenced block is one piece and never leaves its section
    fence_chunks = [c for c in chunks if "def main():" in c.text]
    assert len(fence_chunks) == 1
    assert "# this is a comment, not a heading" in fence_chunks[0].text
    assert fence_chunks[0].title == "Guide — Setup"
    assert not any(c.title.endswith("this is a comment, not a heading") for c in chunks)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_heading_equal_to_document_title_is_not_repeated() -> None:
    text = "# Guide\n\n" + "word " * 60 + "\n\n# Other\n\n" + "more " * 60
    chunks = chunk_document(doc(text), max_chars=200)
    assert chunks[0].title == "Guide"
    assert chunks[-1].title == "Guide — Other"


def test_short_markdown_stays_one_chunk_titled_by_the_document() -> None:
    chunks = chunk_document(doc("# Setup\n\nshort\n\n## Usage\n\nalso short"), max_chars=1800)
    assert len(chunks) == 1
    assert chunks[0].title == "Guide"
    assert chunks[0].text == "# Setup\n\nshort\n\n## Usage\n\nalso short"


def test_non_markdown_is_not_split_at_hash_lines() -> None:
    text = "# not a heading in python\nx = 1\n\n" + "\n\n".join(f"# comment {i}\ny{i} = {i}" for i in range(30))
    chunks = chunk_document(doc(text, fmt="python"), max_chars=100)
    assert len(chunks) > 1
    assert {c.title for c in chunks} == {"Guide"}


def test_packing_respects_max_chars_and_loses_nothing() -> None:
    paragraphs = [f"Paragraph {i} " + "lorem ipsum " * (i % 7 + 1) for i in range(40)]
    text = "\n\n".join(paragraphs)
    pieces = pack(text, 150)
    assert all(len(p) <= 150 for p in pieces)
    assert len(pieces) < len(paragraphs), "small paragraphs are packed together"
    assert [b for p in pieces for b in p.split("\n\n")] == paragraphs


def test_packed_chunks_never_exceed_the_limit() -> None:
    text = "\n\n".join(["x" * 90, "y" * 90, "z" * 300, "w" * 10]) + "\n" + "v" * 500
    chunks = chunk_document(doc(text, fmt="text"), max_chars=100)
    assert chunks and all(len(c.text) <= 100 for c in chunks)
    assert "".join(re.sub(r"\s", "", c.text) for c in chunks) == re.sub(r"\s", "", text)


def test_fenced_block_is_kept_whole_when_it_fits() -> None:
    fence = "```\n" + "\n\n".join(f"line {i}" for i in range(20)) + "\n```"
    assert blocks(fence) == [fence], "blank lines inside a fence do not split it"
    pieces = pack("intro paragraph\n\n" + fence + "\n\noutro", len(fence) + 5)
    assert fence in pieces


def test_huge_single_line_is_split_by_characters() -> None:
    line = "".join(chr(ord("a") + i % 26) for i in range(5000))
    pieces = pack(line, 1000)
    assert len(pieces) == 5
    assert all(len(p) == 1000 for p in pieces)
    assert "".join(pieces) == line


def test_huge_line_after_normal_lines_keeps_everything_in_order() -> None:
    text = "first line\nsecond line\n" + "q" * 250 + "\nlast line"
    pieces = pack(text, 100)
    assert all(len(p) <= 100 for p in pieces)
    assert pieces[0] == "first line\nsecond line"
    assert "".join(pieces).replace("\n", "") == text.replace("\n", "")


def test_chunk_ids_are_stable_and_distinct() -> None:
    text = "\n\n".join(f"para {i} " + "text " * 30 for i in range(20))
    first = chunk_document(doc(text), max_chars=300)
    again = chunk_document(doc(text), max_chars=300)
    assert len(first) > 3
    assert [c.chunk_id for c in first] == [c.chunk_id for c in again]
    assert len({c.chunk_id for c in first}) == len(first)
    other = chunk_document(doc(text, doc_id="d2"), max_chars=300)
    assert not {c.chunk_id for c in first} & {c.chunk_id for c in other}
    assert first[2].chunk_id == chunk_id("d1", 2)
    assert re.fullmatch(r"[0-9a-f]{16}-2", first[2].chunk_id)


def test_chunk_id_does_not_depend_on_text() -> None:
    """A changed document keeps its chunk ids by ordinal (so a rewrite replaces rather than duplicates)."""
    a = chunk_document(doc("one version"))
    b = chunk_document(doc("another version entirely"))
    assert a[0].chunk_id == b[0].chunk_id
    assert a[0].hash != b[0].hash


def test_metadata_and_document_fields_are_carried() -> None:
    d = doc(FENCED, fmt="markdown", licence="MIT", exercise="demo")
    chunks = chunk_document(d, max_chars=120)
    for c in chunks:
        assert c.metadata == {"licence": "MIT", "exercise": "demo", "format": "markdown"}
        assert (c.doc_id, c.source, c.kind, c.path, c.language) == ("d1", "src", "doc", "docs/guide.md", "python")
    assert d.metadata == {"licence": "MIT", "exercise": "demo"}, "the document's own metadata is not mutated"
    chunks[0].metadata["licence"] = "changed"
    assert chunks[1].metadata["licence"] == "MIT", "chunks do not share one metadata dict"


def test_embedding_text_and_hash() -> None:
    c = chunk_document(doc("Body text.", fmt="text"))[0]
    assert c.embedding_text == "Guide\nBody text."
    untitled = chunk_document(doc("Body text.", fmt="text", title=""))[0]
    assert untitled.embedding_text == "Body text."
    assert c.hash != untitled.hash


def test_empty_document_has_no_chunks() -> None:
    assert chunk_document(doc("   \n\n  ", fmt="text")) == []
