"""Structure-aware chunking: Markdown by heading, then every format by paragraphs (code by blank-line blocks),
packed up to a size limit without cutting a fenced code block unless it alone is too big.

Readers already split what they know the structure of (code by definition, docs by section, Q&A by
pair), so this module mostly packs and, where a document is too long, splits at the best boundary.
"""

from __future__ import annotations

import hashlib
import re

from cet.knowledge.records import Chunk, Document

HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def chunk_id(doc_id: str, ordinal: int) -> str:
    return f"{hashlib.sha1(doc_id.encode('utf-8')).hexdigest()[:16]}-{ordinal}"


def markdown_sections(text: str) -> list[tuple[str | None, str]]:
    """(heading, body) pairs, splitting at ATX headings outside fenced code."""
    sections: list[tuple[str | None, list[str]]] = [(None, [])]
    in_fence = False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else HEADING.match(line)
        if match:
            sections.append((match.group(2).strip(), [line]))
        else:
            sections[-1][1].append(line)
    return [(h, "\n".join(lines).strip()) for h, lines in sections if "\n".join(lines).strip()]


def blocks(text: str) -> list[str]:
    """Paragraphs separated by blank lines; a fenced code block stays one block."""
    out: list[str] = []
    current: list[str] = []
    in_fence = False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        if not line.strip() and not in_fence:
            if current:
                out.append("\n".join(current))
                current = []
        else:
            current.append(line)
    if current:
        out.append("\n".join(current))
    return out


def _split_long(block: str, max_chars: int) -> list[str]:
    """A block over the limit: split by lines, and a single huge line by characters."""
    pieces: list[str] = []
    current = ""
    for line in block.splitlines():
        while len(line) > max_chars:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:max_chars])
            line = line[max_chars:]
        if current and len(current) + 1 + len(line) > max_chars:
            pieces.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        pieces.append(current)
    return pieces


def pack(text: str, max_chars: int) -> list[str]:
    """Pack blocks into pieces of at most max_chars."""
    pieces: list[str] = []
    current = ""
    for block in blocks(text):
        if len(block) > max_chars:
            if current:
                pieces.append(current)
                current = ""
            pieces.extend(_split_long(block, max_chars))
        elif current and len(current) + 2 + len(block) > max_chars:
            pieces.append(current)
            current = block
        else:
            current = f"{current}\n\n{block}" if current else block
    if current:
        pieces.append(current)
    return pieces


def chunk_document(doc: Document, max_chars: int = 1800) -> list[Chunk]:
    """The chunks of one document, in order."""
    if doc.format == "markdown" and len(doc.text) > max_chars:
        parts = [(heading, piece) for heading, body in markdown_sections(doc.text) for piece in pack(body, max_chars)]
    else:
        parts = [(None, piece) for piece in pack(doc.text, max_chars)]
    chunks = []
    for ordinal, (heading, text) in enumerate(parts):
        title = f"{doc.title} — {heading}" if heading and heading != doc.title else doc.title
        chunks.append(
            Chunk(
                chunk_id=chunk_id(doc.doc_id, ordinal), doc_id=doc.doc_id, ordinal=ordinal, source=doc.source,
                kind=doc.kind, title=title, path=doc.path, text=text, language=doc.language,
                metadata={**doc.metadata, "format": doc.format},
            )
        )
    return chunks
