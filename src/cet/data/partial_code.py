"""Partial code: seeded cuts of a complete solution into what a user pastes when asking for help (no imports, no
signature, a stubbed body, a truncated function), for "partial code -> complete context" pairs.

The cuts work on the source text, keeping the user's formatting; `ast` only finds the line numbers.
"""

from __future__ import annotations

import ast
import io
import random
import tokenize
from collections.abc import Callable
from dataclasses import dataclass

PARTIAL_KINDS: tuple[str, ...] = ("no_imports", "no_signature", "stub_body", "truncated")

Function = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class PartialCode:
    """A partial version of a solution: the code left, the kind of cut, and the text that was taken away."""

    code: str
    kind: str
    removed: list[str]


@dataclass(frozen=True)
class Source:
    """A parsed source: its text, its lines (with line ends) and its module tree."""

    text: str
    lines: list[str]
    tree: ast.Module


def parse(source: str) -> Source | None:
    """The parsed source, or None if it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        return None
    return Source(source, source.splitlines(keepends=True), tree)


def find_function(tree: ast.Module, entry_point: str | None) -> Function | None:
    """The top-level function named `entry_point`, or the first top-level function when no name is given."""
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    if entry_point is None:
        return functions[0] if functions else None
    return next((f for f in functions if f.name == entry_point), None)


def header_end(text: str, function: Function) -> tuple[int, int]:
    """The (1-based line, column) of the colon that ends the function's `def` header."""
    depth = 0
    started = False
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if not started:
            started = token.type == tokenize.NAME and token.string == "def" and token.start[0] >= function.lineno
            continue
        if token.type == tokenize.OP and token.string in ("(", "[", "{"):
            depth += 1
        elif token.type == tokenize.OP and token.string in (")", "]", "}"):
            depth -= 1
        elif token.type == tokenize.OP and token.string == ":" and depth == 0:
            return token.start
    raise ValueError(f"no header colon for function {function.name!r}")


def docstring_end(function: Function) -> int | None:
    """The last line of the function's docstring, or None if it has none."""
    first = function.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first.end_lineno
    return None


def body_indent(src: Source, function: Function, colon_line: int) -> str:
    """The indentation of the function's body (four spaces past the `def` for a one-line function)."""
    first = function.body[0]
    if first.lineno > colon_line:
        line = src.lines[first.lineno - 1]
        return line[: len(line) - len(line.lstrip())]
    return " " * (function.col_offset + 4)


def dedent_line(line: str, width: int) -> str:
    """The line with `width` leading whitespace characters removed (fewer if it has fewer); blank lines stay."""
    if not line.strip():
        return line[len(line.rstrip("\r\n")) :]
    stripped = line[:width]
    return line[width:] if not stripped.strip() else line[len(stripped) - len(stripped.lstrip()) :]


def ensure_newline(text: str) -> str:
    """The text ending in a line end (unless empty)."""
    return text if not text or text.endswith("\n") else text + "\n"


def drop_imports(src: Source, function: Function | None, rng: random.Random) -> PartialCode | None:
    """The source without its top-level import lines."""
    del function, rng
    taken: set[int] = set()
    removed: list[str] = []
    others = {n for s in src.tree.body if not isinstance(s, ast.Import | ast.ImportFrom) for n in span(s)}
    for stmt in src.tree.body:
        lines = span(stmt)
        if isinstance(stmt, ast.Import | ast.ImportFrom) and not lines & others:
            taken |= lines
            removed.append("".join(src.lines[n - 1] for n in sorted(lines)).rstrip("\n"))
    if not removed:
        return None
    code = "".join(line for n, line in enumerate(src.lines, start=1) if n not in taken).lstrip("\n")
    return PartialCode(code, "no_imports", removed)


def span(stmt: ast.stmt) -> set[int]:
    """The 1-based line numbers a statement occupies, decorators included."""
    decorators = getattr(stmt, "decorator_list", [])
    first = min([stmt.lineno, *(d.lineno for d in decorators)])
    return set(range(first, (stmt.end_lineno or stmt.lineno) + 1))


def drop_signature(src: Source, function: Function, rng: random.Random) -> PartialCode:
    """The source with the function's decorators and `def` header removed and its body dedented in place."""
    del rng
    colon_line, colon_col = header_end(src.text, function)
    start = min(span(function))
    header = src.lines[start - 1 : colon_line]
    signature = "".join(header[:-1]) + header[-1][: colon_col + 1]
    tail = header[-1][colon_col + 1 :]
    indent = body_indent(src, function, colon_line)
    outer = " " * function.col_offset
    body = [outer + tail.strip() + "\n"] if tail.strip() and not tail.strip().startswith("#") else []
    width = len(indent) - len(outer)
    body += [dedent_line(line, width) for line in src.lines[colon_line : function.end_lineno]]
    code = "".join(src.lines[: start - 1] + body + src.lines[function.end_lineno :])
    return PartialCode(ensure_newline(code), "no_signature", [signature])


def stub_body(src: Source, function: Function, rng: random.Random) -> PartialCode | None:
    """The source with the function's body, past its docstring, replaced by a `# TODO` comment and `...`."""
    del rng
    colon_line, colon_col = header_end(src.text, function)
    indent = body_indent(src, function, colon_line)
    stub = [f"{indent}# TODO: implement\n", f"{indent}...\n"]
    kept_end = docstring_end(function)
    if kept_end is not None and len(function.body) == 1:
        return None
    if kept_end is None and function.body[0].lineno == colon_line:
        head = src.lines[: colon_line - 1] + [src.lines[colon_line - 1][: colon_col + 1] + "\n"]
        removed = src.lines[colon_line - 1][colon_col + 1 :].strip()
        rest = src.lines[colon_line:]
        return PartialCode("".join(head + stub + rest), "stub_body", [removed])
    keep = kept_end if kept_end is not None else colon_line
    removed_lines = src.lines[keep : function.end_lineno]
    code = "".join(src.lines[:keep] + stub + src.lines[function.end_lineno :])
    if code == src.text:
        return None
    return PartialCode(code, "stub_body", ["".join(removed_lines).rstrip("\n")])


def truncate(src: Source, function: Function, rng: random.Random) -> PartialCode | None:
    """The source cut off after the first 30-70% of the function body's non-blank lines (past its docstring)."""
    colon_line, _ = header_end(src.text, function)
    first = docstring_end(function) or colon_line
    body = [n for n in range(first + 1, (function.end_lineno or first) + 1) if src.lines[n - 1].strip()]
    if len(body) < 2:
        return None
    keep = max(1, min(len(body) - 1, round(len(body) * rng.uniform(0.3, 0.7))))
    cut = body[keep - 1]
    return PartialCode("".join(src.lines[:cut]), "truncated", ["".join(src.lines[cut:]).rstrip("\n")])


CUTS: dict[str, Callable[..., PartialCode | None]] = {
    "no_imports": drop_imports,
    "no_signature": drop_signature,
    "stub_body": stub_body,
    "truncated": truncate,
}


def make_partial(source: str, kind: str, rng: random.Random, entry_point: str | None = None) -> PartialCode | None:
    """The source cut by one kind from `PARTIAL_KINDS`, or None where the kind does not apply (no imports, no such
    function, nothing to cut) or the source does not parse."""
    if kind not in CUTS:
        raise ValueError(f"unknown partial-code kind {kind!r}; known: {', '.join(PARTIAL_KINDS)}")
    src = parse(source)
    if src is None:
        return None
    function = find_function(src.tree, entry_point)
    if function is None and kind != "no_imports":
        return None
    return CUTS[kind](src, function, rng)


def partial_variants(source: str, rng: random.Random, entry_point: str | None = None) -> list[PartialCode]:
    """Every kind of cut that applies to the source, in `PARTIAL_KINDS` order."""
    variants = (make_partial(source, kind, rng, entry_point) for kind in PARTIAL_KINDS)
    return [variant for variant in variants if variant is not None]
