"""Documentation trees (reST, Sphinx `_sources/*.rst.txt`, Markdown, HTML), one Document per section.

The default real data is Python's own documentation as Debian's python3.11-doc ships it
(/usr/share/doc/python3.11/html/_sources/). Each file is split at its headings; every section that has
content beyond its heading becomes a Document whose text starts with the (cleaned) heading line. API
directives (`.. function:: zip(*iterables)`) are kept as readable signature lines and their names are
listed in metadata["apis"].

Point the reader at either the reST sources or the rendered HTML of a Sphinx tree, not at a folder that
holds both: it reads every docs file it finds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cet.errors import CetError
from cet.knowledge.records import Document, SkippedRecord
from cet.knowledge.sources.files import UnusableFile, outside_tree, read_text_file

if TYPE_CHECKING:
    from bs4 import Tag

SOURCE = "docs"
PYTHON_DOCS_LICENCE = "PSF-2.0 (Python documentation)"
DEFAULT_DOCS_PATH = Path("/usr/share/doc/python3.11/html/_sources")

# Longest suffix first, so "x.rst.txt" is reST and never looked up as ".txt".
DOC_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".rst.txt", "rst"),
    (".rst", "rst"),
    (".markdown", "markdown"),
    (".md", "markdown"),
    (".html", "html"),
    (".htm", "html"),
)


@dataclass
class _Section:
    """A heading (level 0: text before the first heading) and the rendered lines under it."""

    level: int
    title: str
    heading_line: str = ""
    lines: list[str] = field(default_factory=list)
    apis: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------- walking


def read_docs(
    path: Path,
    language: str | None = "python",
    licence: str | None = None,
    max_file_bytes: int = 2_000_000,
    include: list[str] | None = None,
) -> Iterator[Document | SkippedRecord]:
    """Stream one Document per docs-file section under `path` (sorted); SkippedRecords for bad files.

    ``include`` limits the walk to these top-level folders or files of the tree (e.g. ``["library",
    "tutorial"]``); doc ids stay relative to ``path`` either way. A missing path raises CetError at once,
    before iteration starts."""
    root = Path(path)
    if not root.exists():
        hint = " (install Debian's python3.11-doc)" if "python3" in str(root) else ""
        raise CetError(f"docs path not found: {root}{hint}")
    return _stream(root, language, licence or detect_licence(root), max_file_bytes, include)


def _stream(
    root: Path, language: str | None, licence_name: str, max_file_bytes: int, include: list[str] | None = None
) -> Iterator[Document | SkippedRecord]:
    for file in _iter_files(root):
        fmt = doc_format(file)
        if fmt is None:
            continue  # images, css, js, ...: not documentation, not an error
        rel = file.name if file == root else file.relative_to(root).as_posix()
        if include and rel.split("/", 1)[0] not in include:
            continue
        if file != root and outside_tree(file, root):
            yield SkippedRecord(SOURCE, rel, "symbolic link to a file outside the tree (not read)")
            continue
        try:
            text = read_text_file(file, max_file_bytes)
        except UnusableFile as exc:
            yield SkippedRecord(SOURCE, rel, str(exc))
            continue
        docs = list(_file_documents(rel, fmt, text, language, licence_name))
        if docs:
            yield from docs
        else:
            yield SkippedRecord(SOURCE, rel, "no content beyond headings and navigation")


def doc_format(file: Path) -> str | None:
    """The format name ("rst", "markdown", "html") of a docs file, None for any other file."""
    name = file.name.lower()
    for suffix, fmt in DOC_SUFFIXES:
        if name.endswith(suffix):
            return fmt
    return None


def detect_licence(root: Path) -> str:
    """PSF for Python's documentation (path mentions python3, or a PSF copyright page at the root)."""
    if "python3" in str(root.resolve()).lower():
        return PYTHON_DOCS_LICENCE
    base = root if root.is_dir() else root.parent
    for name in ("copyright.rst.txt", "copyright.rst", "conf.py"):
        candidate = base / name
        if candidate.is_file():
            head = candidate.read_bytes()[:20_000].decode("utf-8", errors="replace")
            if "Python Software Foundation" in head:
                return PYTHON_DOCS_LICENCE
    return "unknown"


def _iter_files(root: Path) -> Iterator[Path]:
    """Files under root in sorted path order, lazily, skipping hidden entries."""
    if root.is_file():
        yield root
        return
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and not entry.is_symlink():
            yield from _iter_files(entry)
        elif entry.is_file():
            yield entry


# ------------------------------------------------------------------------------------------- documents


def _file_documents(rel: str, fmt: str, text: str, language: str | None, licence: str) -> Iterator[Document]:
    parser = _PARSERS[fmt]
    sections, fallback_title = parser(text)
    _merge_preamble(sections)
    headings = [s for s in sections if s.level > 0]
    doc_title = headings[0].title if headings else (fallback_title or _stem(rel))
    first = headings[0] if headings else None
    stack: list[tuple[int, str]] = []
    slugs: dict[str, int] = {}
    for section in sections:
        parents: list[str] = []
        if section.level > 0:
            while stack and stack[-1][0] >= section.level:
                stack.pop()
            parents = [title for _, title in stack]
            stack.append((section.level, section.title))
        body = "\n".join(_squeeze_blank_lines(section.lines)).strip("\n")
        if not body.strip():
            continue  # a heading with nothing under it: its title lives on in its children's heading_path
        name = section.title or doc_title
        is_first = section is first or section.level == 0
        slug = _unique_slug(slugify(name) if section.level > 0 else "top", slugs)
        text_out = f"{section.heading_line}\n\n{body}" if section.heading_line else body
        yield Document(
            source=SOURCE,
            doc_id=f"docs:{rel}#{slug}",
            title=doc_title if is_first else f"{doc_title} — {name}",
            text=text_out,
            kind="doc",
            path=rel,
            format=fmt,
            language=language,
            metadata={
                "licence": licence,
                "doc_title": doc_title,
                "section": name,
                "heading_path": parents,
                "apis": list(dict.fromkeys(section.apis)),
            },
        )


def _merge_preamble(sections: list[_Section]) -> None:
    """Text before the first heading (a note, a testsetup) goes under that heading rather than alone."""
    if len(sections) > 1 and sections[0].level == 0 and any(line.strip() for line in sections[0].lines):
        sections[1].lines = [*sections[0].lines, "", *sections[1].lines]
        sections[0].lines = []


def slugify(title: str) -> str:
    slug = re.sub(r"[^\w]+", "-", title.lower()).strip("-_")
    return slug or "section"


def _unique_slug(slug: str, seen: dict[str, int]) -> str:
    count = seen.get(slug, 0) + 1
    seen[slug] = count
    return slug if count == 1 else f"{slug}-{count}"


def _stem(rel: str) -> str:
    name = rel.rsplit("/", 1)[-1]
    fmt_suffix = next((s for s, _ in DOC_SUFFIXES if name.lower().endswith(s)), "")
    return name[: len(name) - len(fmt_suffix)] or name


def _squeeze_blank_lines(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        line = line.rstrip()
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    return out


# ------------------------------------------------------------------------------------------------ reST

# docutils accepts any non-alphanumeric printable ASCII character as a section adornment.
_ADORNMENT_RE = re.compile(r"""^([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])\1+\s*$""")
_ROLE_RE = re.compile(r":[\w:+-]+:`([^`]*)`")
_LITERAL_RE = re.compile(r"``([^`]*)``")
_DIRECTIVE_RE = re.compile(r"^(\s*)\.\.\s+([\w:-]+)::\s*(.*)$")
_TARGET_RE = re.compile(r"^\s*(\.\.\s+_|__\s)")
_COMMENT_RE = re.compile(r"^(\s*)\.\.(\s*$|\s+(?![_\[|]).*$)")
_OPTION_RE = re.compile(r"^\s+:[\w-]+:")

# Python-domain directives that declare an API, with the word Sphinx shows before the signature.
_PY_API_DIRECTIVES = {
    "function": "",
    "method": "",
    "data": "",
    "attribute": "",
    "property": "property ",
    "class": "class ",
    "exception": "exception ",
    "classmethod": "classmethod ",
    "staticmethod": "staticmethod ",
    "abstractmethod": "abstractmethod ",
    "coroutinefunction": "coroutine ",
    "coroutinemethod": "coroutine ",
    "awaitablefunction": "awaitable ",
    "awaitablemethod": "awaitable ",
    "decorator": "@",
    "decoratormethod": "@",
}
_CLASS_DIRECTIVES = {"class", "exception"}
_C_API_DIRECTIVES = {"c:function", "c:macro", "c:type", "c:var", "c:member", "c:struct", "c:data"}
# Directives that carry nothing a reader of the text needs (index entries, authorship, highlighting).
# Directives whose whole block is dropped: index entries, authorship, highlighting, generated tables of
# contents (navigation, not content).
_NOISE_DIRECTIVES = {
    "index", "sectionauthor", "moduleauthor", "highlight", "highlightlang", "tabularcolumns", "contents",
    "toctree", "raw",
}  # fmt: skip
# Directives that only choose a builder; their content is kept, their own line dropped.
_TRANSPARENT_DIRECTIVES = {"only"}
# File-wide fields Sphinx reads from the top of a file (not content).
_FILE_FIELD_RE = re.compile(r"^:(orphan|tocdepth|nosearch|nocomments|author|date|keywords)\b.*$")


@dataclass
class _RstContext:
    """What API names are qualified with: the current module and the enclosing class directives."""

    module: str = ""
    classes: list[tuple[int, str]] = field(default_factory=list)


def _parse_rst(text: str) -> tuple[list[_Section], str]:
    lines = text.splitlines()
    sections = [_Section(0, "")]
    styles: list[tuple[str, bool]] = []
    i = 0
    while i < len(lines):
        heading = _rst_heading_at(lines, i)
        if heading is None:
            sections[-1].lines.append(lines[i])
            i += 1
            continue
        title, style, consumed = heading
        if style not in styles:
            styles.append(style)
        clean = clean_rst_inline(title)
        sections.append(_Section(styles.index(style) + 1, clean, heading_line=clean))
        i += consumed
    context = _RstContext()
    for section in sections:
        section.lines, section.apis = _render_rst_body(section.lines, context)
    return sections, ""


def _is_adornment(line: str, min_length: int = 2) -> bool:
    return bool(_ADORNMENT_RE.match(line)) and len(line.rstrip()) >= min_length


def _rst_heading_at(lines: list[str], i: int) -> tuple[str, tuple[str, bool], int] | None:
    """(title, (adornment char, has overline), lines consumed) when a section title starts at line i."""
    if i > 0 and lines[i - 1].strip():
        return None
    line = lines[i]
    if _is_adornment(line) and i + 2 < len(lines):
        title, under = lines[i + 1], lines[i + 2]
        if (
            title.strip()
            and not _is_adornment(title)
            and _is_adornment(under)
            and under[0] == line[0]
            and len(line.rstrip()) >= len(title.strip())
        ):
            return title.strip(), (line[0], True), 3
    if (
        line.strip()
        and not line[0].isspace()
        and not _is_adornment(line)
        and i + 1 < len(lines)
        and _is_adornment(lines[i + 1], max(2, len(line.rstrip())))
    ):
        return line.strip(), (lines[i + 1][0], False), 2
    return None


def clean_rst_inline(text: str) -> str:
    """Readable text for a reST title: roles and literals unwrapped, `---` as a dash."""

    def role(match: re.Match[str]) -> str:
        inner = match.group(1)
        explicit = re.match(r"(.*?)\s*<[^>]*>$", inner)
        if explicit and explicit.group(1):
            return explicit.group(1)
        if inner.startswith("~"):
            return inner[1:].rsplit(".", 1)[-1]
        return inner.lstrip("!")

    text = _ROLE_RE.sub(role, text)
    text = _LITERAL_RE.sub(r"\1", text)
    text = re.sub(r"\s+---?\s+", " — ", text)
    text = re.sub(r"\*\*([^*]+)\*\*|\*([^*]+)\*", lambda m: m.group(1) or m.group(2), text)
    return text.replace("\\ ", "").replace("\\", "").strip()


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _render_rst_body(lines: list[str], context: _RstContext) -> tuple[list[str], list[str]]:
    """Body lines with API directives as signature lines, noise dropped; and the API names declared."""
    out: list[str] = []
    apis: list[str] = []
    context.classes.clear()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip():
            while context.classes and _indent(line) <= context.classes[-1][0]:
                context.classes.pop()
        directive = _DIRECTIVE_RE.match(line)
        if directive:
            i = _render_directive(lines, i, directive, context, out, apis)
        elif _TARGET_RE.match(line):
            i += 1
        elif line.strip() == "..":
            i += 1  # an empty comment ends at the next blank line
        elif _COMMENT_RE.match(line):
            i = _skip_block(lines, i)
        elif _FILE_FIELD_RE.match(line):
            i += 1
        elif _is_adornment(line, 4) and not (i > 0 and lines[i - 1].strip()):
            i += 1  # a transition line
        else:
            out.append(line)
            i += 1
    return out, apis


def _skip_block(lines: list[str], i: int) -> int:
    """Index after the explicit-markup line at i and its block: the following blank or more indented lines."""
    base = _indent(lines[i])
    i += 1
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
        i += 1
    return i


def _render_directive(
    lines: list[str], i: int, match: re.Match[str], context: _RstContext, out: list[str], apis: list[str]
) -> int:
    """Render the directive at line i into out; returns the index of the first line not consumed."""
    indent, name, argument = match.group(1), match.group(2), match.group(3).strip()
    bare = name.removeprefix("py:")
    if bare in _NOISE_DIRECTIVES:
        return _skip_block(lines, i)
    if bare in _TRANSPARENT_DIRECTIVES:
        return i + 1
    is_api = bare in _PY_API_DIRECTIVES or name in _C_API_DIRECTIVES
    if not is_api and bare not in ("module", "currentmodule"):
        out.append(lines[i])
        return i + 1
    signatures = [argument] if argument else []
    j = i + 1
    while j < len(lines) and lines[j].strip() and not _OPTION_RE.match(lines[j]):
        signatures.append(lines[j].strip())  # further signatures of the same object
        j += 1
    options: dict[str, str] = {}
    while j < len(lines) and _OPTION_RE.match(lines[j]):
        key, _, value = lines[j].strip()[1:].partition(":")
        options[key] = value.strip()
        j += 1
    if bare in ("module", "currentmodule"):
        context.module = "" if argument == "None" else argument
        context.classes.clear()
        if bare == "module" and argument:
            apis.append(argument)
            synopsis = options.get("synopsis")
            out.append(f"{indent}module {argument}" + (f" — {synopsis}" if synopsis else ""))
        return j
    declared: list[str] = []
    for signature in signatures:
        rendered, api = _render_signature(name, bare, signature, context)
        out.append(f"{indent}{rendered}")
        if api:
            declared.append(api)
    apis.extend(declared)
    if bare in _CLASS_DIRECTIVES and declared:
        context.classes.append((len(indent), declared[0]))  # methods indented under it belong to it
    return j


def _render_signature(name: str, bare: str, signature: str, context: _RstContext) -> tuple[str, str]:
    """(readable signature line, qualified API name) for one signature of an API directive."""
    if name in _C_API_DIRECTIVES:
        head = signature.split("(", 1)[0]
        names = re.findall(r"[A-Za-z_][\w.]*", head)
        return signature, names[-1] if names else ""
    found = re.match(r"[\w.]+", signature)
    short = found.group(0) if found else ""
    qualified = _qualify(short, context)
    return f"{_PY_API_DIRECTIVES[bare]}{qualified}{signature[len(short) :]}", qualified


def _qualify(short: str, context: _RstContext) -> str:
    if not short:
        return short
    if context.classes:
        owner = context.classes[-1][1]
        owner_short = owner.rsplit(".", 1)[-1]
        if short.startswith(owner_short + "."):
            short = short[len(owner_short) + 1 :]
        return f"{owner}.{short}"
    if context.module and not short.startswith(context.module + "."):
        return f"{context.module}.{short}"
    return short


# -------------------------------------------------------------------------------------------- Markdown

_ATX_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_MD_LINK_RE = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def _parse_markdown(text: str) -> tuple[list[_Section], str]:
    lines, front_title = _strip_front_matter(text.splitlines())
    sections = [_Section(0, "")]
    fence: str | None = None
    for line in lines:
        if fence is not None:
            sections[-1].lines.append(line)
            stripped = line.strip()
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                fence = None
            continue
        opening = _FENCE_RE.match(line)
        heading = None if opening else _ATX_RE.match(line)
        if opening:
            fence = opening.group(1)
            sections[-1].lines.append(line)
        elif heading and heading.group(2):
            title = clean_markdown_inline(heading.group(2))
            sections.append(_Section(len(heading.group(1)), title, heading_line=line.strip()))
        else:
            sections[-1].lines.append(line)
    return sections, front_title


def _strip_front_matter(lines: list[str]) -> tuple[list[str], str]:
    """Lines without a leading YAML front-matter block, and its `title:` if it has one."""
    if not lines or lines[0].strip() != "---":
        return lines, ""
    for end in range(1, min(len(lines), 100)):
        if lines[end].strip() in ("---", "..."):
            titles = [
                ln.split(":", 1)[1].strip().strip("'\"") for ln in lines[1:end] if ln.startswith("title:")
            ]
            title = titles[0] if titles else ""
            return lines[end + 1 :], title
    return lines, ""


def clean_markdown_inline(text: str) -> str:
    text = _MD_LINK_RE.sub(r"\1", text)
    text = re.sub(r"`([^`]*)`", r"\1", text)
    text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text)
    return text.strip()


# ------------------------------------------------------------------------------------------------ HTML

_HTML_DROP = {"script", "style", "nav", "noscript", "template", "svg", "head", "form", "button"}
_HTML_BLOCKS = {
    "p", "div", "section", "article", "main", "aside", "header", "footer", "blockquote", "ul", "ol", "li",
    "dl", "dt", "dd", "table", "thead", "tbody", "figure", "figcaption", "hr", "body", "html",
}  # fmt: skip


class _HtmlText:
    """Collects readable text from an HTML tree, split into sections at h1-h6."""

    def __init__(self) -> None:
        self.sections = [_Section(0, "")]
        self._inline: list[str] = []
        self.prefix = ""  # put before the next non-empty block (a list item's "- ")

    def inline(self, text: str) -> None:
        self._inline.append(text)

    def flush(self) -> None:
        text = re.sub(r"[ \t\r\f\v]+", " ", "".join(self._inline))
        text = "\n".join(part.strip() for part in text.split("\n")).strip()
        self._inline = []
        if text:
            self.block(self.prefix + text, blank_after=not self.prefix)  # list items stay together
            self.prefix = ""

    def block(self, text: str, blank_after: bool = True) -> None:
        self.sections[-1].lines.extend([text, ""] if blank_after else [text])

    def heading(self, level: int, title: str) -> None:
        self.flush()
        self.sections.append(_Section(level, title, heading_line=f"{'#' * level} {title}"))


def _parse_html(text: str) -> tuple[list[_Section], str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    page_title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup.find_all(_is_html_noise):
        tag.decompose()
    root = soup.find("main") or soup.find(attrs={"role": "main"}) or soup.body or soup
    collector = _HtmlText()
    _walk_html(root, collector)
    collector.flush()
    return collector.sections, page_title


def _is_html_noise(tag: Tag) -> bool:
    """Scripts, styles and navigation; Sphinx's "¶" heading links."""
    if tag.name in _HTML_DROP or tag.get("role") == "navigation":
        return True
    return tag.name == "a" and "headerlink" in (tag.get("class") or [])


def _walk_html(node: object, out: _HtmlText) -> None:
    from bs4 import Comment, NavigableString, Tag

    for child in getattr(node, "children", []):
        if isinstance(child, Comment):
            continue
        if isinstance(child, NavigableString):
            out.inline(str(child))
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name
        if re.fullmatch(r"h[1-6]", name):
            title = child.get_text(" ", strip=True)
            if title:
                out.heading(int(name[1]), title)
        elif name == "dt" and child.get("id") and "sig" in (child.get("class") or []):
            out.sections[-1].apis.append(str(child["id"]))  # a Sphinx API signature: id is the full name
            _walk_html(child, out)
            out.flush()
        elif name == "pre":
            out.flush()
            out.block(f"```\n{child.get_text().strip(chr(10))}\n```")
        elif name == "br":
            out.inline("\n")
        elif name in ("code", "kbd", "samp", "tt"):
            out.inline(f"`{child.get_text()}`")
        elif name == "tr":
            out.flush()
            cells = [cell.get_text(" ", strip=True) for cell in child.find_all(["td", "th"], recursive=False)]
            out.block("| " + " | ".join(cells) + " |", blank_after=False)
        elif name in _HTML_BLOCKS:
            out.flush()
            if name == "li":
                out.prefix = "- "
            _walk_html(child, out)
            out.flush()
            if name in ("table", "ul", "ol"):
                out.block("", blank_after=False)
        else:
            _walk_html(child, out)


_PARSERS: dict[str, Callable[[str], tuple[list[_Section], str]]] = {
    "rst": _parse_rst,
    "markdown": _parse_markdown,
    "html": _parse_html,
}
