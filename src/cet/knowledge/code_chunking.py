"""Split a source file into its definitions (functions, classes, methods) for retrieval.

Python is split with the standard `ast` module. Other languages use a tree-sitter grammar when one can
be loaded without the network: a grammar that `tree_sitter_language_pack` has already downloaded, else
a per-language grammar wheel (`tree_sitter_javascript`, `tree_sitter_go`, ...). With no grammar at all,
brace-matching (C-like languages) or `def`/`end` matching (Ruby) finds top-level definitions. A file
that does not parse becomes fixed-size line windows. `split_definitions` never raises.
"""

from __future__ import annotations

import ast
import functools
import importlib
import re
import textwrap
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

WINDOW_LINES = 60
MAX_CLASS_LINES = 120
MODULE_NAME = "<module>"

LANGUAGE_BY_EXTENSION: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".c++": "cpp",
    ".hh": "cpp",
    ".hpp": "cpp",
    ".hxx": "cpp",
    ".rb": "ruby",
    ".rake": "ruby",
    ".cs": "csharp",
    ".kt": "kotlin",
    ".kts": "kotlin",
    ".swift": "swift",
    ".scala": "scala",
    ".php": "php",
    ".sh": "bash",
    ".bash": "bash",
    ".lua": "lua",
    ".hs": "haskell",
    ".ex": "elixir",
    ".exs": "elixir",
    ".erl": "erlang",
    ".ml": "ocaml",
    ".dart": "dart",
    ".r": "r",
    ".jl": "julia",
    ".sql": "sql",
}
LANGUAGE_BY_FILENAME: dict[str, str] = {"Rakefile": "ruby", "Gemfile": "ruby", "Makefile": "make"}


def detect_language(path: str | PurePath) -> str | None:
    """The programming language of a file, from its name (None when it is not a known code file)."""
    pure = PurePath(path)
    if pure.name in LANGUAGE_BY_FILENAME:
        return LANGUAGE_BY_FILENAME[pure.name]
    return LANGUAGE_BY_EXTENSION.get(pure.suffix.lower())


@dataclass
class CodeDefinition:
    """One definition of a source file; line numbers are 1-based and inclusive."""

    name: str
    qualname: str
    kind: str  # function | class | method | module
    start_line: int
    end_line: int
    text: str
    imports: list[str] = field(default_factory=list)
    calls: set[str] = field(default_factory=set)


def split_definitions(
    source: str, language: str, *, max_class_lines: int = MAX_CLASS_LINES, window_lines: int = WINDOW_LINES
) -> list[CodeDefinition]:
    """The definitions of a source file in line order; line windows when it cannot be parsed."""
    source = _normalise_newlines(source)
    if not source.strip():
        return []
    lines = source.split("\n")
    try:
        found = _split(source, lines, language, max_class_lines)
    except Exception:  # a splitter bug must never lose the file: windows keep every line
        found = None
    if found is None:
        return line_windows(lines, window_lines)
    return sorted(found, key=lambda d: (d.start_line, d.kind != "module"))


def _split(source: str, lines: list[str], language: str, max_class_lines: int) -> list[CodeDefinition] | None:
    if language == "python":
        return _split_python(source, lines, max_class_lines)
    root = parse_tree(source, language)
    if root is not None and language in TS_SPECS:
        return _TreeSplitter(source, lines, language, max_class_lines).split(root)
    if language in HEURISTIC_LANGUAGES:
        return _split_heuristic(lines, language)
    return None


def line_windows(lines: list[str], size: int = WINDOW_LINES) -> list[CodeDefinition]:
    """Fixed-size windows of non-blank text, each a "module" definition named after its line range."""
    size = max(1, size)
    windows = []
    for start in range(0, len(lines), size):
        chunk = lines[start : start + size]
        if not any(line.strip() for line in chunk):
            continue
        first, last = start + 1, start + len(chunk)
        label = f"L{first}-L{last}"
        windows.append(CodeDefinition(label, label, "module", first, last, "\n".join(chunk).rstrip()))
    return windows


def top_level_names(definitions: Iterable[CodeDefinition]) -> set[str]:
    """Names of the functions and classes a file defines at its top level (not methods)."""
    return {d.name for d in definitions if d.kind in ("function", "class") and "." not in d.qualname}


def _normalise_newlines(source: str) -> str:
    return source.replace("\r\n", "\n").replace("\r", "\n")


# ---------------------------------------------------------------------------------------------- imports

_IMPORT_PATTERNS: dict[str, list[re.Pattern[str]]] = {
    "javascript": [
        re.compile(r"""\b(?:import|export)\s[^'";]*?\bfrom\s*['"]([^'"]+)['"]"""),
        re.compile(r"""^\s*import\s*['"]([^'"]+)['"]""", re.M),
        re.compile(r"""\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)"""),
        re.compile(r"""\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)"""),
    ],
    "go": [re.compile(r"""^\s*import\s+(?:[\w.]+\s+)?"([^"]+)\"""", re.M)],
    "rust": [re.compile(r"^\s*(?:pub\s+)?use\s+([^;]+);", re.M)],
    "java": [re.compile(r"^\s*import\s+(?:static\s+)?([\w.*]+)\s*;", re.M)],
    "c": [re.compile(r"""^\s*#\s*include\s*[<"]([^>"]+)[>"]""", re.M)],
    "ruby": [re.compile(r"""^\s*require(_relative)?\s*\(?\s*['"]([^'"]+)['"]""", re.M)],
}
_IMPORT_PATTERNS["typescript"] = _IMPORT_PATTERNS["tsx"] = _IMPORT_PATTERNS["javascript"]
_IMPORT_PATTERNS["cpp"] = _IMPORT_PATTERNS["c"]
_PY_IMPORT_LINE = re.compile(r"^\s*(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))", re.M)
_GO_IMPORT_BLOCK = re.compile(r"^\s*import\s*\((.*?)\)", re.M | re.S)
_GO_IMPORT_SPEC = re.compile(r"""^\s*(?:[\w.]+\s+)?"([^"]+)\"""", re.M)


def extract_imports(source: str, language: str) -> list[str]:
    """What a file imports, in order and without repeats.

    Python: dotted names with the imported name appended and leading dots for relative imports
    (`from .core import add` -> ".core.add"). JavaScript/TypeScript: module specifiers. Go: import paths.
    Ruby: `require_relative 'x'` -> "./x", `require 'x'` -> "x". Others: the imported path text.
    """
    if language == "python":
        found = _python_imports(source)
    elif language == "go":
        found = _go_imports(source)
    elif language == "ruby":
        found = [
            ("./" + m[1] if m[0] and not m[1].startswith(".") else m[1]) for m in _findall(source, "ruby")
        ]
    else:
        found = _findall(source, language)
    return list(dict.fromkeys(s.strip() for s in found if s.strip()))


def _findall(source: str, language: str) -> list[Any]:
    return [m for pattern in _IMPORT_PATTERNS.get(language, []) for m in pattern.findall(source)]


def _go_imports(source: str) -> list[str]:
    found = _findall(source, "go")
    for block in _GO_IMPORT_BLOCK.findall(source):
        found.extend(_GO_IMPORT_SPEC.findall(block))
    return found


def _parse_python(source: str) -> ast.Module:
    with warnings.catch_warnings():  # invalid escapes in a scraped file are not our warnings
        warnings.simplefilter("ignore")
        return ast.parse(source)


def _python_imports(source: str) -> list[str]:
    try:
        tree = _parse_python(source)
    except (SyntaxError, ValueError, RecursionError):
        return [a or b for a, b in _PY_IMPORT_LINE.findall(source)]
    return _python_node_imports(tree)


def _python_node_imports(node: ast.AST) -> list[str]:
    found: list[str] = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Import):
            found.extend(alias.name for alias in sub.names)
        elif isinstance(sub, ast.ImportFrom):
            base = "." * sub.level + (sub.module or "")
            for alias in sub.names:
                if alias.name == "*":
                    found.append(base)
                else:
                    found.append(
                        f"{base}.{alias.name}" if base and not base.endswith(".") else base + alias.name
                    )
    return found


def python_used_names(source: str) -> set[str]:
    """Names a Python file calls (`f()`, `obj.f()`) or imports by name (`from m import f`)."""
    try:
        tree = _parse_python(source)
    except (SyntaxError, ValueError, RecursionError):
        return set(re.findall(r"\b([A-Za-z_]\w*)\s*\(", source))
    names = _python_calls(tree)
    for sub in ast.walk(tree):
        if isinstance(sub, ast.ImportFrom):
            names.update(alias.asname or alias.name for alias in sub.names if alias.name != "*")
            names.update(alias.name for alias in sub.names if alias.name != "*")
    return names


# ----------------------------------------------------------------------------------------------- python

_PyDef = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def _split_python(source: str, lines: list[str], max_class_lines: int) -> list[CodeDefinition] | None:
    try:
        tree = _parse_python(source)
    except (SyntaxError, ValueError, RecursionError):
        return None
    found: list[CodeDefinition] = []
    covered: set[int] = set()
    for node in tree.body:
        if isinstance(node, _PyDef):
            found.extend(_python_definition(node, lines, "", max_class_lines, covered))
    leftover = [n for n in tree.body if not isinstance(n, _PyDef)]
    meaningful = any(not isinstance(n, ast.Import | ast.ImportFrom) for n in leftover)
    if meaningful or (not found and leftover):
        module = _leftover_chunk(lines, covered)
        if module is not None:
            module.imports = _python_node_imports(ast.Module(body=leftover, type_ignores=[]))
            module.calls = set().union(set(), *(_python_calls(n) for n in leftover))
            found.append(module)
    return found


def _python_definition(
    node: _PyDef, lines: list[str], prefix: str, max_class_lines: int, covered: set[int]
) -> list[CodeDefinition]:
    start = _with_leading_comments(lines, _python_start(node), covered, ("#",))
    end = node.end_lineno or node.lineno
    qualname = prefix + node.name
    if isinstance(node, ast.ClassDef) and end - start + 1 > max_class_lines:
        return _python_split_class(node, lines, start, qualname, max_class_lines, covered)
    covered.update(range(start, end + 1))
    kind = "class" if isinstance(node, ast.ClassDef) else ("method" if prefix else "function")
    text = "\n".join(lines[start - 1 : end])
    return [
        CodeDefinition(
            node.name, qualname, kind, start, end, text, _python_node_imports(node), _python_calls(node)
        )
    ]


def _python_split_class(
    node: ast.ClassDef, lines: list[str], start: int, qualname: str, max_class_lines: int, covered: set[int]
) -> list[CodeDefinition]:
    members: list[CodeDefinition] = []
    member_lines: set[int] = set()
    for child in node.body:
        if isinstance(child, _PyDef):
            members.extend(_python_definition(child, lines, qualname + ".", max_class_lines, member_lines))
    end = node.end_lineno or node.lineno
    header_lines = [n for n in range(start, end + 1) if n not in member_lines]
    covered.update(range(start, end + 1))
    outside = [c for c in node.body if not isinstance(c, _PyDef)] + node.decorator_list + node.bases
    header = _chunk_from_lines(lines, header_lines, node.name, qualname, "class")
    header.calls = set().union(set(), *(_python_calls(c) for c in outside))
    return [header, *members]


def _python_start(node: _PyDef) -> int:
    decorators = [d.lineno for d in node.decorator_list]
    return min([node.lineno, *decorators])


def _python_calls(node: ast.AST) -> set[str]:
    calls = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            func = sub.func
            if isinstance(func, ast.Name):
                calls.add(func.id)
            elif isinstance(func, ast.Attribute):
                calls.add(func.attr)
    return calls


def _with_leading_comments(lines: list[str], start: int, covered: set[int], markers: tuple[str, ...]) -> int:
    """Move a 1-based start line up over the comment lines directly above it (no blank line between)."""
    while start > 1 and (start - 1) not in covered:
        above = lines[start - 2].strip()
        if not above or not above.startswith(markers) or above.startswith("#!"):
            break
        start -= 1
    return start


def _chunk_from_lines(
    lines: list[str], numbers: list[int], name: str, qualname: str, kind: str
) -> CodeDefinition:
    """A definition made of some (maybe non-contiguous) lines, runs of blank lines collapsed to one."""
    kept: list[str] = []
    for n in numbers:
        line = lines[n - 1]
        if line.strip() or (kept and kept[-1].strip()):
            kept.append(line)
    text = textwrap.dedent("\n".join(kept)).strip("\n") if kind == "module" else "\n".join(kept).rstrip()
    nonblank = [n for n in numbers if lines[n - 1].strip()] or numbers
    return CodeDefinition(name, qualname, kind, nonblank[0], nonblank[-1], text)


def _leftover_chunk(lines: list[str], covered: set[int]) -> CodeDefinition | None:
    numbers = [n for n in range(1, len(lines) + 1) if n not in covered]
    if not any(lines[n - 1].strip() for n in numbers):
        return None
    return _chunk_from_lines(lines, numbers, MODULE_NAME, MODULE_NAME, "module")


# ------------------------------------------------------------------------------------------ tree-sitter

# (module, function) of the per-language grammar wheels; tried when the language pack has no grammar.
_GRAMMAR_WHEELS: dict[str, tuple[str, str]] = {
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "ruby": ("tree_sitter_ruby", "language"),
}


@functools.cache
def _parsers(language: str) -> tuple[Any, ...]:
    """Parsers that can be had for a language without downloading anything (cached per process)."""
    found: list[Any] = []
    try:
        import tree_sitter_language_pack as pack

        if language in pack.downloaded_languages():
            found.append(pack.get_parser(language))
    except Exception:
        pass
    if language in _GRAMMAR_WHEELS:
        module_name, function = _GRAMMAR_WHEELS[language]
        try:
            from tree_sitter import Language, Parser

            module = importlib.import_module(module_name)
            found.append(Parser(Language(getattr(module, function)())))
        except Exception:
            pass
    return tuple(found)


def tree_sitter_available(language: str) -> bool:
    """Whether a tree-sitter grammar for the language can be loaded here."""
    return bool(_parsers(language))


def parse_tree(source: str, language: str) -> Node | None:
    """The tree-sitter root node of a source text, or None when no grammar for the language loads."""
    data = _normalise_newlines(source).encode("utf-8")
    for parser in _parsers(language):
        try:
            tree = _parse_with(parser, data)
            return Node(_value(tree, "root_node"), data)
        except Exception:
            continue
    return None


def _parse_with(parser: Any, data: bytes) -> Any:
    try:
        return parser.parse(data)
    except TypeError:
        return parser.parse(data.decode("utf-8"))


def _value(obj: Any, name: str) -> Any:
    """An attribute of a py-tree-sitter object, or the same-named method of a language-pack native one."""
    value = getattr(obj, name)
    return value() if callable(value) else value


class Node:
    """A tree-sitter node seen the same way whether it came from py-tree-sitter or the language pack."""

    __slots__ = ("raw", "data")

    def __init__(self, raw: Any, data: bytes) -> None:
        self.raw = raw
        self.data = data

    @property
    def type(self) -> str:
        raw = self.raw
        return raw.type if hasattr(raw, "type") else raw.kind()

    @property
    def start_byte(self) -> int:
        return _value(self.raw, "start_byte")

    @property
    def end_byte(self) -> int:
        return _value(self.raw, "end_byte")

    @property
    def start_row(self) -> int:
        raw = self.raw
        return (raw.start_point if hasattr(raw, "start_point") else raw.start_position()).row

    @property
    def end_row(self) -> int:
        raw = self.raw
        return (raw.end_point if hasattr(raw, "end_point") else raw.end_position()).row

    @property
    def has_error(self) -> bool:
        return bool(_value(self.raw, "has_error"))

    @property
    def is_named(self) -> bool:
        return bool(_value(self.raw, "is_named"))

    @property
    def text(self) -> str:
        return self.data[self.start_byte : self.end_byte].decode("utf-8", errors="replace")

    @property
    def children(self) -> list[Node]:
        raw = self.raw
        if hasattr(raw, "children"):
            kids = raw.children
        else:
            kids = [raw.child(i) for i in range(raw.child_count())]
        return [Node(k, self.data) for k in kids if k is not None]

    @property
    def named_children(self) -> list[Node]:
        return [c for c in self.children if c.is_named]

    def field(self, name: str) -> Node | None:
        child = self.raw.child_by_field_name(name)
        return Node(child, self.data) if child is not None else None

    def walk(self) -> Iterator[Node]:
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))


@dataclass(frozen=True)
class TreeSpec:
    """Which node types of one grammar are definitions, and of what kind."""

    functions: frozenset[str] = frozenset()  # function definitions ("method" when inside a container)
    containers: frozenset[str] = frozenset()  # classes, impls, namespaces: split into members when long
    types: frozenset[str] = frozenset()  # type-like definitions kept whole (structs, enums, typedefs)
    methods: frozenset[str] = frozenset()  # top-level definitions that are methods (Go receivers)
    wrappers: frozenset[str] = frozenset()  # export/template wrappers around a definition
    variables: frozenset[str] = frozenset()  # `const f = () => ...` declarations
    attached: frozenset[str] = frozenset({"comment"})  # siblings just above a definition that belong to it
    trivial: frozenset[str] = frozenset({"comment"})  # top-level statements that alone make no module chunk


def _spec(**kinds: Iterable[str]) -> TreeSpec:
    base = TreeSpec()
    values = {
        k: frozenset(v) | (getattr(base, k) if k in ("attached", "trivial") else frozenset())
        for k, v in kinds.items()
    }
    return TreeSpec(**values)


_JS_SPEC = _spec(
    functions={"function_declaration", "generator_function_declaration", "method_definition"},
    containers={"class_declaration", "class"},
    wrappers={"export_statement"},
    variables={"lexical_declaration", "variable_declaration"},
    trivial={"import_statement", "hash_bang_line", "empty_statement"},
)
_TS_SPEC = _spec(
    functions=_JS_SPEC.functions | {"method_signature", "abstract_method_signature", "function_signature"},
    containers=_JS_SPEC.containers
    | {"abstract_class_declaration", "interface_declaration", "internal_module", "module"},
    types={"type_alias_declaration", "enum_declaration"},
    wrappers={"export_statement", "ambient_declaration"},
    variables=_JS_SPEC.variables,
    trivial=_JS_SPEC.trivial,
)
TS_SPECS: dict[str, TreeSpec] = {
    "javascript": _JS_SPEC,
    "typescript": _TS_SPEC,
    "tsx": _TS_SPEC,
    "go": _spec(
        functions={"function_declaration"},
        methods={"method_declaration"},
        types={"type_declaration"},
        trivial={"package_clause", "import_declaration"},
    ),
    "rust": _spec(
        functions={"function_item", "function_signature_item"},
        containers={"impl_item", "trait_item", "mod_item"},
        types={
            "struct_item",
            "enum_item",
            "union_item",
            "type_item",
            "macro_definition",
            "const_item",
            "static_item",
        },
        attached={"line_comment", "block_comment", "attribute_item"},
        trivial={
            "line_comment",
            "block_comment",
            "use_declaration",
            "extern_crate_declaration",
            "attribute_item",
            "inner_attribute_item",
        },
    ),
    "java": _spec(
        functions={"method_declaration", "constructor_declaration", "compact_constructor_declaration"},
        containers={
            "class_declaration",
            "interface_declaration",
            "enum_declaration",
            "record_declaration",
            "annotation_type_declaration",
        },
        attached={"line_comment", "block_comment"},
        trivial={"line_comment", "block_comment", "package_declaration", "import_declaration"},
    ),
    "c": _spec(
        functions={"function_definition"},
        types={"struct_specifier", "union_specifier", "enum_specifier", "type_definition"},
        trivial={"preproc_include", "preproc_def", "preproc_call", "preproc_pragma"},
    ),
    "cpp": _spec(
        functions={"function_definition"},
        containers={"class_specifier", "struct_specifier", "union_specifier", "namespace_definition"},
        types={"enum_specifier", "type_definition", "alias_declaration", "concept_definition"},
        wrappers={"template_declaration"},
        trivial={"preproc_include", "preproc_def", "preproc_call", "preproc_pragma", "using_declaration"},
    ),
    "ruby": _spec(
        functions={"method", "singleton_method"},
        containers={"class", "module", "singleton_class"},
    ),
}

# call node type -> the field holding what is called
_CALL_FIELDS = {
    "call_expression": "function",
    "method_invocation": "name",
    "call": "method",
    "new_expression": "constructor",
    "object_creation_expression": "type",
}
_NAME_FIELDS = ("property", "field", "name", "function")
_FUNCTION_VALUES = {"arrow_function", "function_expression", "function", "generator_function"}


def _terminal_name(node: Node | None, depth: int = 0) -> str | None:
    """The last identifier of a callee expression (`a.b.c` -> "c", `ns::f` -> "f")."""
    if node is None or depth > 6:
        return None
    if node.type.endswith("identifier") or node.type == "constant":
        return node.text
    for name in _NAME_FIELDS:
        child = node.field(name)
        if child is not None:
            return _terminal_name(child, depth + 1)
    named = node.named_children
    return _terminal_name(named[-1], depth + 1) if named else None


class _TreeSplitter:
    """Finds definitions in a tree-sitter tree, splitting long containers into their members."""

    def __init__(self, source: str, lines: list[str], language: str, max_class_lines: int) -> None:
        self.source = source
        self.lines = lines
        self.language = language
        self.spec = TS_SPECS[language]
        self.max_class_lines = max_class_lines

    def split(self, root: Node) -> list[CodeDefinition]:
        covered: set[int] = set()
        found = self._members(root.named_children, "", False, covered)
        leftover = [c for c in root.named_children if not set(_rows(c)) <= covered]
        meaningful = any(not self._trivial(c) for c in leftover)
        if root.has_error and leftover:
            uncovered = [n for n in range(1, len(self.lines) + 1) if n not in covered]
            found.extend(_windows_of(self.lines, uncovered))
        elif meaningful or (not found and leftover):
            module = _leftover_chunk(self.lines, covered)
            if module is not None:
                module.imports = extract_imports(module.text, self.language)
                module.calls = set().union(set(), *(self._calls(c) for c in leftover))
                found.append(module)
        return found

    def _trivial(self, node: Node) -> bool:
        """Imports, comments and the like: alone they make no module chunk."""
        return node.type in self.spec.trivial or (
            node.start_row == node.end_row and _TRIVIAL_LINE.match(node.text) is not None
        )

    def _members(
        self, nodes: list[Node], prefix: str, inside: bool, covered: set[int]
    ) -> list[CodeDefinition]:
        found: list[CodeDefinition] = []
        for index, node in enumerate(nodes):
            target = self._definition_node(node)
            if target is None:
                continue
            kind = self._kind(target, inside)
            dotted = self._name(target)
            name = dotted.rsplit(".", 1)[-1] or dotted
            qualname = prefix + dotted
            if target.type in self.spec.methods:
                receiver = self._receiver(target)
                qualname = f"{prefix}{receiver}.{name}" if receiver else qualname
            start = self._leading_start(nodes, index, covered) + 1
            end = node.end_row + 1
            if target.type in self.spec.containers and end - start + 1 > self.max_class_lines:
                found.extend(self._split_container(target, start, end, name, qualname, covered))
                continue
            covered.update(range(start, end + 1))
            text = "\n".join(self.lines[start - 1 : end])
            found.append(
                CodeDefinition(
                    name,
                    qualname,
                    kind,
                    start,
                    end,
                    text,
                    extract_imports(text, self.language),
                    self._calls(node),
                )
            )
        return found

    def _split_container(
        self, node: Node, start: int, end: int, name: str, qualname: str, covered: set[int]
    ) -> list[CodeDefinition]:
        body = node.field("body") or node
        member_lines: set[int] = set()
        members = self._members(body.named_children, qualname + ".", True, member_lines)
        if not members:  # nothing to split out: keep the container whole
            covered.update(range(start, end + 1))
            text = "\n".join(self.lines[start - 1 : end])
            return [CodeDefinition(name, qualname, "class", start, end, text, [], self._calls(node))]
        header_lines = [n for n in range(start, end + 1) if n not in member_lines]
        covered.update(range(start, end + 1))
        header = _chunk_from_lines(self.lines, header_lines, name, qualname, "class")
        member_rows = {(m.start_line, m.end_line) for m in members}
        header.calls = self._calls(node, skip=member_rows)
        return [header, *members]

    def _definition_node(self, node: Node) -> Node | None:
        """The definition a top-level node holds (unwrapping `export`/`template`), or None."""
        spec = self.spec
        if node.type in spec.wrappers:
            inner = node.field("declaration")
            candidates = [inner] if inner is not None else node.named_children
            for child in candidates:
                found = self._definition_node(child)
                if found is not None:
                    return found
            return None
        if node.type in spec.variables:
            return node if self._variable_function(node) is not None else None
        if node.type in spec.functions | spec.containers | spec.types | spec.methods:
            if (
                node.type in ("struct_specifier", "union_specifier", "enum_specifier")
                and node.field("body") is None
            ):
                return None
            return node
        return None

    def _variable_function(self, node: Node) -> Node | None:
        for declarator in node.named_children:
            value = declarator.field("value")
            if (
                declarator.type == "variable_declarator"
                and value is not None
                and value.type in _FUNCTION_VALUES
            ):
                return declarator
            if value is not None and value.type == "class":
                return declarator
        return None

    def _kind(self, node: Node, inside: bool) -> str:
        spec = self.spec
        if node.type in spec.methods:
            return "method"
        if node.type in spec.functions or node.type in spec.variables:
            return "method" if inside else "function"
        return "class"

    def _name(self, node: Node) -> str:
        if node.type in self.spec.variables:
            declarator = self._variable_function(node)
            named = declarator.field("name") if declarator is not None else None
            return named.text if named is not None else "<anonymous>"
        if node.type == "impl_item":
            target = node.field("type")
            return re.sub(r"<.*", "", target.text) if target is not None else "impl"
        if node.type == "type_declaration":
            spec = next((c for c in node.named_children if c.type in ("type_spec", "type_alias")), None)
            named = spec.field("name") if spec is not None else None
            return named.text if named is not None else "<types>"
        named = node.field("name")
        if named is None:
            named = self._declarator_name(node)
        if named is None:
            return "default" if node.type.endswith("declaration") else "<anonymous>"
        return named.text.replace("::", ".")

    def _declarator_name(self, node: Node) -> Node | None:
        """C/C++: follow `declarator` fields down to the declared identifier."""
        current = node.field("declarator")
        for _ in range(8):
            if current is None:
                return None
            if current.type.endswith("identifier") or current.type in ("operator_name", "destructor_name"):
                return current
            current = current.field("declarator") or current.field("name")
        return None

    def _receiver(self, node: Node) -> str | None:
        receiver = node.field("receiver")
        if receiver is None:
            return None
        for param in receiver.named_children:
            kind = param.field("type")
            if kind is not None:
                return re.sub(r"[\[(].*", "", kind.text.lstrip("*& ")).strip() or None
        return None

    def _leading_start(self, nodes: list[Node], index: int, covered: set[int]) -> int:
        """0-based first row of a definition, including the comments/attributes right above it."""
        start = nodes[index].start_row
        for position in range(index - 1, -1, -1):
            previous = nodes[position]
            if previous.type not in self.spec.attached or previous.end_row < start - 1:
                break
            if previous.end_row + 1 in covered or previous.start_row + 1 in covered:
                break
            start = previous.start_row
        return start

    def _calls(self, node: Node, skip: set[tuple[int, int]] | None = None) -> set[str]:
        calls: set[str] = set()
        stack = [node]
        while stack:
            current = stack.pop()
            if skip and current is not node and (current.start_row + 1, current.end_row + 1) in skip:
                continue
            callee_field = _CALL_FIELDS.get(current.type)
            if callee_field is not None:
                name = _terminal_name(current.field(callee_field))
                if name:
                    calls.add(name)
            stack.extend(current.named_children)
        return calls


def _rows(node: Node) -> range:
    return range(node.start_row + 1, node.end_row + 2)


def _windows_of(lines: list[str], numbers: list[int], size: int = WINDOW_LINES) -> list[CodeDefinition]:
    """Line windows over runs of consecutive line numbers (the parts of a file no definition covers)."""
    windows: list[CodeDefinition] = []
    run: list[int] = []
    for n in [*numbers, -1]:
        if run and (n != run[-1] + 1 or len(run) >= size):
            chunk = [lines[i - 1] for i in run]
            if any(line.strip() for line in chunk):
                label = f"L{run[0]}-L{run[-1]}"
                windows.append(
                    CodeDefinition(label, label, "module", run[0], run[-1], "\n".join(chunk).rstrip())
                )
            run = []
        if n > 0:
            run.append(n)
    return windows


# -------------------------------------------------------------------------------------------- heuristic

_JS_HEURISTIC = [
    (r"^(?:export\s+(?:default\s+)?)?(?:async\s+)?function\b\s*\*?\s*(?P<name>[\w$]+)", "function", False),
    (r"^(?:export\s+(?:default\s+)?)?(?:abstract\s+)?class\s+(?P<name>[\w$]+)", "class", False),
    (
        r"^(?:export\s+)?(?:const|let|var)\s+(?P<name>[\w$]+)\s*(?::[^=]+)?=\s*(?:async\s+)?"
        r"(?:function\b|\([^)]*\)\s*(?::[^=]+)?=>|[\w$]+\s*=>)",
        "function",
        False,
    ),
]
_TS_HEURISTIC = [
    *_JS_HEURISTIC,
    (r"^(?:export\s+)?(?:declare\s+)?(?:interface|enum|namespace|module)\s+(?P<name>[\w$]+)", "class", False),
    (r"^(?:export\s+)?(?:declare\s+)?type\s+(?P<name>[\w$]+)\s*(?:<[^=]*>)?\s*=", "class", False),
]
_C_FUNCTION = (
    r"^(?!(?:if|for|while|switch|return|else|do|typedef|case)\b)(?:[\w\*&:<>,~\[\]]+\s+)+[\*&]*"
    r"(?P<name>[A-Za-z_~][\w:~]*)\s*\("
)
_TYPE_OPENS = r"\s*(?::[^;{]*)?(?:\{|$)"  # an optional base list, then a body (here or on the next line)
_C_TYPE = r"^(?:typedef\s+)?(?:struct|union|enum)\s+(?P<name>\w+)" + _TYPE_OPENS
_MODIFIERS = r"(?:(?:public|protected|private|internal|abstract|final|static|sealed|open|data|inline)\s+)*"
_HEURISTIC_PATTERNS: dict[str, list[tuple[str, str, bool]]] = {
    "javascript": _JS_HEURISTIC,
    "typescript": _TS_HEURISTIC,
    "tsx": _TS_HEURISTIC,
    "go": [
        (r"^func\s+\((?P<recv>[^)]*)\)\s*(?P<name>\w+)", "method", True),
        (r"^func\s+(?P<name>\w+)", "function", True),
        (r"^type\s+(?P<name>\w+)", "class", False),
    ],
    "rust": [
        (
            r"^(?:pub(?:\([^)]*\))?\s+)?(?:(?:async|const|unsafe|extern(?:\s+\"[^\"]*\")?)\s+)*fn\s+(?P<name>\w+)",
            "function",
            True,
        ),
        (r"^(?:pub(?:\([^)]*\))?\s+)?(?:struct|enum|trait|union)\s+(?P<name>\w+)", "class", False),
        (r"^(?:pub(?:\([^)]*\))?\s+)?mod\s+(?P<name>\w+)\s*\{", "class", True),
        (r"^(?:unsafe\s+)?impl\b(?:<[^>]*>)?\s+(?:[\w:<>,\s]+?\s+for\s+)?(?P<name>[\w:]+)", "class", True),
    ],
    "java": [(_MODIFIERS + r"(?:class|interface|enum|record|@interface)\s+(?P<name>\w+)", "class", True)],
    "c": [(_C_TYPE, "class", True), (_C_FUNCTION, "function", True)],
    "cpp": [
        (
            r"^(?:template\s*<.*>\s*)?(?:class|struct|union|namespace)\s+(?P<name>\w+)" + _TYPE_OPENS,
            "class",
            True,
        ),
        (r"^enum(?:\s+class)?\s+(?P<name>\w+)" + _TYPE_OPENS, "class", True),
        (_C_FUNCTION, "function", True),
    ],
    "csharp": [
        (_MODIFIERS + r"(?:partial\s+)?(?:class|interface|struct|enum|record)\s+(?P<name>\w+)", "class", True)
    ],
    "kotlin": [
        (_MODIFIERS + r"(?:class|interface|object|enum\s+class)\s+(?P<name>\w+)", "class", False),
        (_MODIFIERS + r"fun\s+(?:<[^>]*>\s*)?(?P<name>[\w.]+)", "function", False),
    ],
    "swift": [
        (_MODIFIERS + r"(?:class|struct|enum|protocol|extension)\s+(?P<name>\w+)", "class", True),
        (_MODIFIERS + r"func\s+(?P<name>\w+)", "function", True),
    ],
    "php": [
        (_MODIFIERS + r"(?:class|interface|trait|enum)\s+(?P<name>\w+)", "class", True),
        (r"^function\s+(?P<name>\w+)", "function", True),
    ],
}
_RUBY_START = re.compile(
    r"^(?:def\s+(?P<def>(?:self\.)?[\w?!=\[\]]+)|class\s+(?P<cls>[\w:]+)|module\s+(?P<mod>[\w:]+))"
)
_RUBY_END = re.compile(r"^end\b")
_RUBY_ENDLESS = re.compile(r"^def\s+[\w.?!]+(?:\([^)]*\))?\s*=[^=~>]")
HEURISTIC_LANGUAGES = frozenset({*_HEURISTIC_PATTERNS, "ruby"})
_COMPILED = {
    lang: [(re.compile(p), k, body) for p, k, body in pats] for lang, pats in _HEURISTIC_PATTERNS.items()
}
_TRIVIAL_LINE = re.compile(
    r"^\s*(?:$|//|/\*|\*|#\s*(?:include|pragma|define|if|endif|else)|#\[|#!|package\s|import\s|import\(|from\s|use\s"
    r"|using\s|extern\s+crate\s|require(?:_relative)?\b|[{}()\[\];,]+\s*$|\"[^\"]*\"\s*$|'use strict'"
    r"|(?:const|let|var)\s+[\w${}\s,:]+=\s*require\()"
)


def _split_heuristic(lines: list[str], language: str) -> list[CodeDefinition]:
    """Top-level definitions found by patterns and brace (or `end`) matching, when no grammar loads."""
    if language == "ruby":
        blocks = list(_ruby_blocks(lines))
        markers: tuple[str, ...] = ("#",)
    else:
        blocks = list(_brace_blocks(lines, language))
        markers = ("//", "/*", "*", "#[", "///")
    found: list[CodeDefinition] = []
    covered: set[int] = set()
    for start, end, name, kind in blocks:
        start = _with_leading_comments(lines, start, covered, markers)
        covered.update(range(start, end + 1))
        text = "\n".join(lines[start - 1 : end])
        calls = _heuristic_calls(lines[start - 1 : end]) - {name.split(".")[-1]}
        found.append(
            CodeDefinition(
                name.split(".")[-1], name, kind, start, end, text, extract_imports(text, language), calls
            )
        )
    leftover = [lines[n - 1] for n in range(1, len(lines) + 1) if n not in covered]
    meaningful = any(not _TRIVIAL_LINE.match(line) for line in leftover)
    if meaningful or (not found and any(line.strip() for line in leftover)):
        module = _leftover_chunk(lines, covered)
        if module is not None:
            module.imports = extract_imports(module.text, language)
            found.append(module)
    return found


_CALL = re.compile(r"(?<![\w$.])(?:[\w$]+\.)*([A-Za-z_$][\w$]*)\(")
_DEFINING = ("def", "fn", "func", "fun", "function", "def self.")
_NOT_CALLS = frozenset(
    "if for while switch return func function fn catch sizeof typeof new match elif and or not".split()
)


def _heuristic_calls(lines: list[str]) -> set[str]:
    """Names followed by `(`, leaving out keywords, attributes and the definition lines themselves."""
    calls: set[str] = set()
    for line in lines:
        stripped = line.strip()
        if stripped.startswith(("#[", "@", "//", "/*", "*")):
            continue
        for match in _CALL.finditer(stripped):
            before = stripped[: match.start()].rstrip()
            defines = before.endswith(_DEFINING) or (not before and "{" in stripped[match.end() :])
            if not defines and match.group(1) not in _NOT_CALLS:
                calls.add(match.group(1))
    return calls


def _brace_blocks(lines: list[str], language: str) -> Iterator[tuple[int, int, str, str]]:
    """(start, end, qualname, kind) of each top-level definition of a C-like language (1-based lines)."""
    code = _code_only("\n".join(lines), language).split("\n")
    patterns = _COMPILED.get(language, [])
    n = 0
    while n < len(lines):
        match = _match_definition(lines[n], code[n], patterns)
        if match is None:
            n += 1
            continue
        name, kind, needs_body = match
        end, opened = _block_end(code, n)
        if needs_body and not opened:
            n += 1
            continue
        yield n + 1, end + 1, name, kind
        n = end + 1


def _match_definition(
    line: str, code: str, patterns: list[tuple[re.Pattern[str], str, bool]]
) -> tuple[str, str, bool] | None:
    if not code.strip() or line[:1].isspace():
        return None
    for pattern, kind, needs_body in patterns:
        match = pattern.match(line)
        if match is None:
            continue
        name = match.group("name").replace("::", ".")
        receiver = match.groupdict().get("recv")
        if receiver:
            receiver_type = (
                re.sub(r"[\[(].*", "", receiver.split()[-1].lstrip("*")) if receiver.split() else ""
            )
            name = f"{receiver_type}.{name}" if receiver_type else name
        return name, kind, needs_body
    return None


_CONTINUES = ("=>", "=", "(", ",", "{", "[", "+", "-", "*", "/", "&&", "||", "?", ":", ".")


def _block_end(code: list[str], start: int) -> tuple[int, bool]:
    """0-based last line of the block starting at `start`, and whether it opened braces."""
    depth = 0
    opened = False
    for n in range(start, len(code)):
        for char in code[n]:
            if char == "{":
                depth += 1
                opened = True
            elif char == "}":
                depth -= 1
        stripped = code[n].strip()
        if depth <= 0 and (
            opened or stripped.endswith(";") or (stripped and not stripped.endswith(_CONTINUES))
        ):
            return n, opened
    return len(code) - 1, opened


def _ruby_blocks(lines: list[str]) -> Iterator[tuple[int, int, str, str]]:
    n = 0
    while n < len(lines):
        match = _RUBY_START.match(lines[n])
        if match is None:
            n += 1
            continue
        name = match.group("def") or match.group("cls") or match.group("mod")
        kind = "function" if match.group("def") else "class"
        end = n
        if not (re.search(r"\bend\s*$", lines[n]) or _RUBY_ENDLESS.match(lines[n])):
            end = next((m for m in range(n + 1, len(lines)) if _RUBY_END.match(lines[m])), len(lines) - 1)
        yield n + 1, end + 1, name.replace("::", "."), kind
        n = end + 1


_CHAR_LITERAL = re.compile(r"'(?:\\.[^'\n]{0,8}|[^\\'\n])'")


def _code_only(text: str, language: str) -> str:
    """The text with comments and string literals blanked out (newlines kept), for brace counting."""
    out = list(text)
    quotes = "'\"`" if language in ("javascript", "typescript", "tsx", "kotlin", "php", "dart") else '"`'
    i, size = 0, len(text)
    while i < size:
        char = text[i]
        pair = text[i : i + 2]
        if pair == "//":
            end = text.find("\n", i)
            end = size if end < 0 else end
        elif pair == "/*":
            end = text.find("*/", i + 2)
            end = size if end < 0 else end + 2
        elif char in quotes:
            end = _string_end(text, i, char)
        elif char == "'":
            literal = _CHAR_LITERAL.match(text, i)
            end = literal.end() if literal else i + 1
            if not literal:
                i += 1
                continue
        else:
            i += 1
            continue
        for j in range(i, end):
            if out[j] != "\n":
                out[j] = " "
        i = end
    return "".join(out)


def _string_end(text: str, start: int, quote: str) -> int:
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == quote:
            return i + 1
        if char == "\n" and quote != "`":
            return i
        i += 1
    return len(text)
