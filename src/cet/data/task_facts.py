"""The facts a coding task's context must carry (signature, examples, constraints, relevant knowledge),
read from the whole task: the targets of Phase 2 and what the intrinsic context metrics look for.

Also the text helpers the gold contexts and the rule-based baseline share: prose units of a statement (markdown
or a Python docstring), sentence splitting, constraint-sentence detection, the first descriptive sentence,
signatures found in text, and line numbers named by a traceback.
"""

from __future__ import annotations

import ast
import builtins
import copy
import html
import inspect
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from cet.execution.tasks import CodingTask
from cet.knowledge.function_map import dotted_name as _dotted
from cet.knowledge.records import Hit

MAX_ITEM_CHARS = 200  # longest example or constraint kept
MAX_CONSTRAINTS = 6
MAX_CHUNKS = 3


@dataclass
class TaskFacts:
    entry_point: str | None = None  # the function the tests call, e.g. "fib" (or "Class.method")
    signature: str | None = None  # e.g. "def fib(n: int) -> int"
    parameters: list[str] = field(default_factory=list)  # parameter names, in order
    examples: list[str] = field(default_factory=list)  # e.g. "fib(10) == 55", from the tests
    errors: list[str] = field(default_factory=list)  # e.g. "fib(-1) raises ValueError('n must be >= 0')"
    constraints: list[str] = field(default_factory=list)  # sentences of the statement that constrain
    relevant_chunk_ids: list[str] = field(default_factory=list)  # knowledge-base chunks relevant to the task


# ---------------------------------------------------------------------------------------------------------------
# Plain text helpers


_BULLET = re.compile(r"^(?:[-*+•]|\d+[.)])\s+")
_CODE_SPAN = re.compile(r"(`[^`\n]*`)")
_LINK = re.compile(r"(?<![\w\]`])\[([^\]\n]+)\](?:\[[^\]\n]*\]|\([^)\n]*\))")
_STRONG = re.compile(r"\*\*(.+?)\*\*")
_EMPHASIS = re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])")
_HTML_CODE = re.compile(r"<code>(.*?)</code>", re.IGNORECASE)
_HTML_SUP = re.compile(r"<sup>(.*?)</sup>", re.IGNORECASE)
_HTML_TAG = re.compile(r"</?(?:p|strong|em|b|i|u|ul|ol|li|br|span|div|pre|sub|font)\b[^>]*>", re.IGNORECASE)


def normalize_space(text: str) -> str:
    """The text on one line, runs of whitespace collapsed to one space."""
    return " ".join(str(text).split())


def clip(text: str, limit: int) -> str:
    """The text on one line, cut at a word boundary to at most `limit` characters (with "..." when cut)."""
    text = normalize_space(text)
    if len(text) <= limit:
        return text
    head = text[: max(limit - 3, 1)]
    cut = head.rsplit(" ", 1)[0] if " " in head[limit // 2 :] else head
    return cut.rstrip(" ,;:") + "..."


def clean_item(text: str) -> str:
    """One list item: on one line, without leading bullet or heading markers (which would confuse the parser)."""
    item = normalize_space(text)
    while True:
        stripped = _BULLET.sub("", item, count=1).lstrip("#").strip()
        if stripped == item:
            return item
        item = stripped


def plain_markdown(text: str) -> str:
    """Inline markdown and HTML made plain outside `code spans`: links to their text, **strong**, *emphasis* and
    HTML tags dropped, `<code>x</code>` to `x` in backticks, `<sup>4</sup>` to `^4`, entities unescaped."""
    text = _HTML_CODE.sub(r"`\1`", text)
    parts = _CODE_SPAN.split(text)
    for i in range(0, len(parts), 2):  # the even parts lie outside code spans
        part = _HTML_SUP.sub(r"^\1", parts[i])
        part = html.unescape(_HTML_TAG.sub("", part))
        part = _LINK.sub(r"\1", part)
        parts[i] = _EMPHASIS.sub(r"\1", _STRONG.sub(r"\1", part))
    return "".join(parts)


def safe_block(text: str) -> str:
    """A multi-line block (a failure report) that reads back unchanged as one section: lines right-stripped,
    and no line that the context parser would take for a `## Heading`."""
    lines = []
    for line in str(text).strip().splitlines():
        line = line.rstrip()
        if line.lstrip().startswith("#") and len(line) - len(line.lstrip()) < 4:
            line = "    " + line.lstrip() if lines else "| " + line.lstrip()
        lines.append(line)
    return "\n".join(lines).strip()


# ---------------------------------------------------------------------------------------------------------------
# Prose units of a statement


_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_CODE_LINE = re.compile(
    r"^\s*(?:async\s+def\s|def\s|class\s+\w|from\s+[\w.]+\s+import\s|import\s+\w|@\w|return\b|if __name__)"
)
_SKIP_LINE = re.compile(r"^\s*(?:\||\[[^\]]*\]:\s|<!--|</?\w+[^>]*>\s*$)")
_META_LINE = re.compile(r"^\s*(?:difficulty|topics|tags)\s*:", re.IGNORECASE)
_DOCTEST = re.compile(r"^\s*>>>")
_TRIPLE_QUOTE = re.compile(r"\"\"\"|'''")
_BEFORE_DOCTEST = re.compile(r"(?=>>>)")
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+(?=[A-Za-z0-9`\"'(\[*_])")
_ABBREVIATIONS = frozenset("e.g i.e etc vs cf mr mrs ms dr st no fig approx resp eg ie".split())


def _python_docstrings(text: str, entry_point: str | None) -> list[str] | None:
    """The docstrings of a statement written as Python (HumanEval), the entry point's first; None if not Python."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return None
    defs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
    if not defs:
        return None
    short = entry_point.split(".")[-1] if entry_point else None
    ordered = sorted(defs, key=lambda n: (n.name != short, n.lineno))
    docs = [_docstring(n) for n in [ordered[0], tree, *ordered[1:]]]
    return [d for d in docs if d]


def _docstring(node: ast.AST) -> str | None:
    """The docstring of a module, class or function, or the first string in its body (after an import, say)."""
    doc = ast.get_docstring(node)  # type: ignore[arg-type]
    if doc:
        return doc
    for stmt in getattr(node, "body", [])[:3]:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
            return inspect.cleandoc(stmt.value.value)
    return None


def _sentences(paragraph: str) -> list[str]:
    """A paragraph split into sentences (not after "e.g." or an initial), inline markdown made plain."""
    text = plain_markdown(normalize_space(paragraph))
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        word = text[start : match.start()].rsplit(" ", 1)[-1].rstrip(".?!").lower()
        if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha() and text[match.start() - 1] == "."):
            continue
        sentences.append(text[start : match.start()].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def _markdown_units(text: str) -> list[tuple[str, str]]:
    """(section heading in lower case, sentence) for the prose of a markdown or plain text: fenced code, tables,
    doctest lines and their output, code lines and metadata lines are left out; each bullet is its own paragraph."""
    units: list[tuple[str, str]] = []
    heading = ""
    paragraph: list[str] = []
    in_fence = in_doctest = False

    def flush() -> None:
        if paragraph:
            units.extend((heading, s) for s in _sentences(" ".join(paragraph)))
            paragraph.clear()

    lines = [piece for raw in text.splitlines() for part in _TRIPLE_QUOTE.split(raw) for piece in
             _BEFORE_DOCTEST.split(part)]
    for line in lines:
        if _FENCE.match(line):
            flush()
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        stripped = line.strip()
        if not stripped:
            flush()
            in_doctest = False
            continue
        heading_match = _HEADING.match(line)
        if heading_match:
            flush()
            heading = heading_match.group(1).strip().lower()
            in_doctest = False
            continue
        if _DOCTEST.match(line):
            flush()
            in_doctest = True
            continue
        if in_doctest or _CODE_LINE.match(line) or _SKIP_LINE.match(line) or _META_LINE.match(line):
            flush()
            continue
        if _BULLET.match(stripped):
            flush()
            stripped = _BULLET.sub("", stripped)
        paragraph.append(stripped)
    flush()
    return units


def prose_units(text: str, entry_point: str | None = None) -> list[tuple[str, str]]:
    """(section heading in lower case, sentence) for the prose of a statement. A statement written as Python
    (HumanEval) gives the sentences of its docstrings, the entry point's first."""
    docstrings = _python_docstrings(text, entry_point)
    if docstrings is None:
        return _markdown_units(text)
    return [unit for doc in docstrings for unit in _markdown_units(doc)]


def split_sentences(text: str, entry_point: str | None = None) -> list[str]:
    """The prose sentences of a statement (or of any markdown text), in order."""
    return [sentence for _, sentence in prose_units(text, entry_point)]


_CONSTRAINT = re.compile(
    r"\b(?:must|should|only|never|at most|at least|assum\w*|guarantee\w*|constraints?|rais\w*|empty|negative)\b"
    r"|<=|>=|≤|≥|\breturns?\b[^.]*\bif\b",
    re.IGNORECASE,
)
_NOT_CONSTRAINT_SECTIONS = ("interface", "signature", "example")
_BOILERPLATE_SECTIONS = ("exception messages", "customizing and raising exceptions")  # Exercism's stock text
_NAMED_ERROR = re.compile(r"\b[A-Z]\w*(?:Error|Exception)\b")
_FOLLOW_UP = re.compile(r"^follow[- ]?up\b", re.IGNORECASE)


def is_constraint_sentence(sentence: str) -> bool:
    """Whether a sentence constrains the solution (must, only, at most, `<=`, "return ... if", empty, ...)."""
    return _CONSTRAINT.search(sentence) is not None


def constraint_sentences(text: str, limit: int = MAX_CONSTRAINTS, entry_point: str | None = None) -> list[str]:
    """The sentences of a statement that constrain: every item of a "Constraints" section first (LeetCode), then
    the constraining sentences elsewhere, in order; one line each, deduplicated, at most 200 characters."""
    in_section: list[str] = []
    elsewhere: list[str] = []
    seen: set[str] = set()
    for heading, sentence in prose_units(text, entry_point):
        if any(word in heading for word in _NOT_CONSTRAINT_SECTIONS) or _FOLLOW_UP.match(sentence):
            continue
        if heading in _BOILERPLATE_SECTIONS and not _NAMED_ERROR.search(sentence):
            continue
        section = "constraint" in heading
        if not (section or is_constraint_sentence(sentence)):
            continue
        item = clip(clean_item(sentence), MAX_ITEM_CHARS)
        if not item or item.lower() in seen:
            continue
        seen.add(item.lower())
        (in_section if section else elsewhere).append(item)
    return (in_section + elsewhere)[:limit]


def first_descriptive_sentence(text: str, entry_point: str | None = None, limit: int = 200) -> str:
    """The first sentence that says what to do: headings, code, import and `def` lines, metadata lines and
    docstring quotes skipped; a sentence ending in ":" only when there is nothing better."""
    fallback = ""
    for _, sentence in prose_units(text, entry_point):
        sentence = clean_item(sentence)
        if len(sentence.split()) < 2:
            continue
        if sentence.endswith(":"):
            fallback = fallback or sentence
            continue
        return clip(sentence, limit)
    if fallback:
        return clip(fallback, limit)
    for line in text.splitlines():
        if line.strip() and not (_CODE_LINE.match(line) or _HEADING.match(line) or _FENCE.match(line)):
            return clip(clean_item(_TRIPLE_QUOTE.sub("", line)), limit)
    return ""


# ---------------------------------------------------------------------------------------------------------------
# Signatures


_DEF = re.compile(r"\b(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(")
_CLASS = re.compile(r"\bclass\s+([A-Za-z_]\w*)\s*(\([^()]*\))?\s*:")
_RETURNS = re.compile(r"[ \t]*->[ \t]*([^:\n]+?)[ \t]*(?::|$)", re.MULTILINE)


@dataclass(frozen=True)
class _Def:
    name: str
    params: str
    returns: str | None
    owner: str | None  # "class Name" (with bases) for a method, else None

    @property
    def line(self) -> str:
        returns = f" -> {self.returns}" if self.returns else ""
        return f"def {self.name}({self.params}){returns}"


def _closing_paren(text: str, start: int) -> int | None:
    """The index of the parenthesis closing the one at `start` (quotes respected), or None."""
    depth = 0
    quote: str | None = None
    for i in range(start, min(len(text), start + 1000)):
        char = text[i]
        if quote:
            if char == quote and text[i - 1] != "\\":
                quote = None
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return i
    return None


def _defs(text: str) -> list[_Def]:
    """Every `def name(...)` in the text (code or prose), with its parameters, return annotation and class."""
    classes = [(m.start(), f"class {m.group(1)}{m.group(2) or ''}") for m in _CLASS.finditer(text)]
    found: list[_Def] = []
    for match in _DEF.finditer(text):
        close = _closing_paren(text, match.end() - 1)
        if close is None:
            continue
        params = normalize_space(text[match.end() : close]).rstrip(", ")
        returns = _RETURNS.match(text, close + 1)
        first = params.split(",")[0].split(":")[0].strip()
        owner = None
        if first in ("self", "cls"):
            owner = next((name for start, name in reversed(classes) if start < match.start()), None)
        found.append(_Def(match.group(1), params, normalize_space(returns.group(1)) if returns else None, owner))
    return found


def find_signatures(text: str) -> list[str]:
    """The signatures written in a text, one line each: `def f(x: int) -> int` for a function, and
    `class Solution: def m(self, x) -> int; def n(self)` for the methods of a class; deduplicated, in order."""
    entries: list[str | tuple[str, list[str]]] = []
    groups: dict[str, list[str]] = {}
    for found in _defs(text):
        if found.owner is None:
            entries.append(found.line)
        elif found.owner in groups:
            groups[found.owner].append(found.line)
        else:
            groups[found.owner] = [found.line]
            entries.append((found.owner, groups[found.owner]))
    lines = [e if isinstance(e, str) else f"{e[0]}: " + "; ".join(dict.fromkeys(e[1])) for e in entries]
    return list(dict.fromkeys(lines))


def one_line_signature(signature: str) -> str:
    """A task's signature on one line (imports dropped, no trailing colon), as `find_signatures` writes it."""
    found = find_signatures(signature)
    return "; ".join(found) if found else normalize_space(signature).rstrip(":").strip()


def signature_parameters(signature: str, entry_point: str | None = None) -> list[str]:
    """The parameter names of the entry point's `def` in a signature (of `__init__` for a class), self ignored."""
    defs = _defs(signature or "")
    if not defs:
        return []
    parts = entry_point.split(".") if entry_point else []
    chosen = next((d for d in defs if parts and d.name == parts[-1]), None)
    if chosen is None and parts:
        chosen = next((d for d in defs if d.name == "__init__" and d.owner and d.owner.split()[1].startswith(
            parts[-1])), None)
    chosen = chosen or defs[0]
    try:
        function = ast.parse(f"def _f({chosen.params}): pass").body[0]
    except (SyntaxError, ValueError, RecursionError):
        return []
    assert isinstance(function, ast.FunctionDef)
    args = function.args
    names = [a.arg for a in [*args.posonlyargs, *args.args]]
    names += [args.vararg.arg] if args.vararg else []
    names += [a.arg for a in args.kwonlyargs]
    names += [args.kwarg.arg] if args.kwarg else []
    return [n for i, n in enumerate(names) if not (i == 0 and n in ("self", "cls"))]


def task_signature(task: CodingTask) -> str | None:
    """The task's signature on one line; without one, the entry point's `def` line in its statement or reference."""
    if task.signature and task.signature.strip():
        return one_line_signature(task.signature)
    if not task.entry_point:
        return None
    name = task.entry_point.split(".")[-1]
    for text in (task.statement, task.reference_solution or ""):
        for line in find_signatures(text):
            if re.search(rf"\bdef {re.escape(name)}\(", line):
                return line
    return None


# ---------------------------------------------------------------------------------------------------------------
# Examples from the tests


_BUILTIN_NAMES = frozenset(dir(builtins))
_CONSTRUCTORS = frozenset({"float", "int", "str", "bool", "list", "tuple", "set", "frozenset", "dict", "bytes"})
_UNITTEST_ASSERTS = {"assertEqual": ast.Eq, "assertEquals": ast.Eq, "assertIs": ast.Is, "assertAlmostEqual": ast.Eq}




def _literal(node: ast.AST) -> bool:
    """Whether an expression is a plain literal (numbers, strings, containers of them, negative numbers)."""
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _rewrite(node: ast.AST, replace: Callable[[ast.AST], ast.AST | None]) -> ast.AST:
    """A copy of a tree in which `replace` substitutes nodes (returning None keeps one); unchanged subtrees are
    shared, not copied, and nothing is modified in place, so shared subtrees stay as they were."""
    if isinstance(node, ast.Constant):
        return node
    replaced = replace(node)
    if replaced is not None:
        return replaced
    changes: dict[str, object] = {}
    for name, value in ast.iter_fields(node):
        if isinstance(value, ast.AST):
            new = _rewrite(value, replace)
            if new is not value:
                changes[name] = new
        elif isinstance(value, list):
            items = [_rewrite(v, replace) if isinstance(v, ast.AST) else v for v in value]
            if any(a is not b for a, b in zip(items, value, strict=True)):
                changes[name] = items
    if not changes:
        return node
    clone = copy.copy(node)
    for name, value in changes.items():
        setattr(clone, name, value)
    return clone


def _statements(body: Sequence[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement of a block and of the blocks nested in it (expressions are not entered)."""
    for stmt in body:
        yield stmt
        for name in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(stmt, name, None)
            if isinstance(inner, list):
                yield from _statements([s for s in inner if isinstance(s, ast.stmt | ast.excepthandler)])


class _TestReader:
    """Walks a pytest file in source order, collecting rendered examples and errors."""

    def __init__(self, tree: ast.Module, entry_point: str | None, module: str | None, limit: int) -> None:
        parts = entry_point.split(".") if entry_point else []
        self.short = parts[-1] if parts else None
        self.limit = limit
        self.rename = {"candidate": self.short} if self.short else {}
        self.helpers = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("run_")}
        self.targets = set(parts) | set(self.helpers) | {"candidate"}
        self.allowed = set(_BUILTIN_NAMES) | set(self.targets)
        statements = list(_statements(tree.body))
        for node in statements:
            if isinstance(node, ast.ImportFrom):
                names = {a.asname or a.name for a in node.names if a.name != "*"}
                self.allowed |= names
                if module and node.module == module:
                    self.targets |= names
            elif isinstance(node, ast.Import):
                self.allowed |= {(a.asname or a.name).split(".")[0] for a in node.names}
        self.allowed |= {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
        self.examples: list[str] = []
        self.errors: list[str] = []
        self.may_raise = any(isinstance(n, ast.With | ast.AsyncWith) for n in statements)

    @property
    def done(self) -> bool:
        """Whether nothing more can be collected (the walk stops early: deep copies of large literals are slow)."""
        return len(self.examples) >= self.limit and (len(self.errors) >= self.limit or not self.may_raise)

    # -- expressions --------------------------------------------------------------------------------------------

    def prepare(self, node: ast.expr, env: dict[str, ast.expr]) -> ast.expr:
        """A copy of the expression with bound names substituted and `candidate` renamed."""

        def replace(sub: ast.AST) -> ast.AST | None:
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
                if sub.id in env:
                    return env[sub.id]
                if sub.id in self.rename:
                    return ast.Name(id=self.rename[sub.id], ctx=ast.Load())
            return None

        return _rewrite(node, replace)  # type: ignore[return-value]

    def has_target(self, node: ast.AST) -> bool:
        """Whether the expression calls the solution (the entry point, a name imported from it, a run_ helper)."""
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call):
                name = _dotted(sub.func)
                if name and (name.split(".")[0] in self.targets or name.split(".")[-1] == self.short):
                    return True
        return False

    def is_closed(self, node: ast.AST) -> bool:
        """Whether every name the expression reads is known (no loop variables or unbound locals)."""
        return all(n.id in self.allowed for n in ast.walk(node) if isinstance(n, ast.Name))

    def is_value(self, node: ast.AST) -> bool:
        """Whether an expression is worth substituting: closed, calling only the solution or builtin constructors."""
        return self.is_closed(node) and all(
            _dotted(call.func) in _CONSTRUCTORS or self.has_target(call)
            for call in ast.walk(node) if isinstance(call, ast.Call)
        )

    def helper_call(self, node: ast.AST) -> ast.Call | None:
        """The run_ helper call an expression is (or subscripts), else None."""
        if isinstance(node, ast.Subscript):
            node = node.value
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in self.helpers:
            return node
        return None

    def design_text(self, node: ast.AST) -> str | None:
        """`Class: operations=[...], inputs=[...]` for a run_ helper that replays operations on an object."""
        call = self.helper_call(node)
        if call is None:
            return None
        params = [a.arg for a in self.helpers[call.func.id].args.args]  # type: ignore[union-attr]
        if "operations" not in params or not call.args:
            return None
        pairs = ", ".join(f"{p}={ast.unparse(a)}" for p, a in zip(params[1:], call.args[1:], strict=False))
        return f"{ast.unparse(call.args[0])}: {pairs}"

    def inline(self, node: ast.expr) -> ast.expr:
        """Replace each run_ helper call `run_m(Solution, a, b)` by the method call it makes, `m(a, b)`."""

        def replace(sub: ast.AST) -> ast.AST | None:
            call = self.helper_call(sub)
            if call is None:
                return None
            method = self.method_name(call.func.id)  # type: ignore[union-attr]
            args = [_rewrite(a, replace) for a in call.args[1:]]
            return ast.Call(func=ast.Name(id=method, ctx=ast.Load()), args=args, keywords=call.keywords)

        return _rewrite(node, replace)  # type: ignore[return-value]

    def method_name(self, helper: str) -> str:
        """The method a run_ helper calls on the solution object (its name without `run_` when unclear)."""
        for node in ast.walk(self.helpers[helper]):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == self.short:
                return node.func.attr
        return helper.removeprefix("run_")

    def render(self, node: ast.expr) -> str | None:
        """The example's source text, or None when it is not an example of the solution."""
        if not self.has_target(node) or not self.is_closed(node):
            return None
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq):
            design = self.design_text(node.left)
            if design:
                return f"{design} -> {ast.unparse(node.comparators[0])}"
        return ast.unparse(self.inline(node))

    def add(self, bucket: list[str], text: str | None) -> None:
        if text and len(text) <= MAX_ITEM_CHARS and text not in bucket and len(bucket) < self.limit:
            bucket.append(text)

    # -- statements ---------------------------------------------------------------------------------------------

    def bind(self, stmt: ast.Assign, env: dict[str, ast.expr]) -> None:
        """Record `a, b, expected = 1, 2, 3` and `result = run_m(Solution, a, b)` bindings (forget others)."""
        for target in stmt.targets:
            if isinstance(target, ast.Name):
                pairs: list[tuple[ast.expr, ast.expr]] = [(target, stmt.value)]
            elif isinstance(target, ast.Tuple | ast.List):
                if isinstance(stmt.value, ast.Tuple | ast.List) and len(stmt.value.elts) == len(target.elts):
                    pairs = list(zip(target.elts, stmt.value.elts, strict=True))
                else:
                    pairs = [(t, ast.Subscript(value=stmt.value, slice=ast.Constant(i), ctx=ast.Load()))
                             for i, t in enumerate(target.elts)]
            else:
                continue
            for name, value in pairs:
                if not isinstance(name, ast.Name):
                    continue
                value = self.prepare(value, env)
                if _literal(value) or self.is_value(value):
                    env[name.id] = value
                else:
                    env.pop(name.id, None)

    def forget(self, target: ast.AST, env: dict[str, ast.expr]) -> None:
        for node in ast.walk(target):
            if isinstance(node, ast.Name):
                env.pop(node.id, None)

    def call_statement(self, call: ast.Call, env: dict[str, ast.expr]) -> None:
        """`assert_m(result, expected)` helpers and unittest `self.assertEqual(a, b)` as comparisons."""
        name = _dotted(call.func)
        short = name.split(".")[-1]
        if short.startswith("assert_") and len(call.args) >= 2:
            test: ast.expr = ast.Compare(left=call.args[0], ops=[ast.Eq()], comparators=[call.args[-1]])
        elif short in _UNITTEST_ASSERTS and len(call.args) >= 2:
            test = ast.Compare(left=call.args[0], ops=[_UNITTEST_ASSERTS[short]()], comparators=[call.args[1]])
        elif short in ("assertTrue", "assertFalse") and call.args:
            test = call.args[0] if short == "assertTrue" else ast.UnaryOp(op=ast.Not(), operand=call.args[0])
        else:
            return
        self.add(self.examples, self.render(self.prepare(test, env)))

    def raises(self, stmt: ast.With, rest: Sequence[ast.stmt], env: dict[str, ast.expr]) -> bool:
        """A `with pytest.raises(Exc[, match=...]) as err:` block as "call raises Exc('message')"; False if not one."""
        for item in stmt.items:
            context = item.context_expr
            if not (isinstance(context, ast.Call) and _dotted(context.func) in ("pytest.raises", "raises")):
                continue
            exception = ast.unparse(context.args[0]) if context.args else "Exception"
            message = next((k.value.value for k in context.keywords if k.arg == "match"
                            and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)), None)
            if message is not None:
                message = re.sub(r"\\(.)", r"\1", message.removeprefix("^").removesuffix("$"))
            variable = item.optional_vars.id if isinstance(item.optional_vars, ast.Name) else None
            if message is None and variable:
                message = _asserted_message(rest, variable)
            call = next((s.value for s in stmt.body if isinstance(s, ast.Expr | ast.Assign)), None)
            text = self.render(self.prepare(call, env)) if call is not None else None
            if text:
                self.add(self.errors, f"{text} raises {exception}({message!r})" if message else
                         f"{text} raises {exception}")
            return True
        return False

    def walk(self, body: Sequence[ast.stmt], env: dict[str, ast.expr]) -> None:
        """Collect the examples and errors of a block of statements, in order."""
        for index, stmt in enumerate(body):
            examples_full = len(self.examples) >= self.limit
            if self.done:
                return
            if isinstance(stmt, ast.Assign):
                self.bind(stmt, env)
            elif isinstance(stmt, ast.AugAssign | ast.AnnAssign):
                self.forget(stmt.target, env)
            elif isinstance(stmt, ast.Assert) and not examples_full:
                self.add(self.examples, self.render(self.prepare(stmt.test, env)))
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and not examples_full:
                self.call_statement(stmt.value, env)
            elif isinstance(stmt, ast.With | ast.AsyncWith):
                if not self.raises(stmt, body[index + 1 :], env):  # type: ignore[arg-type]
                    self.walk(stmt.body, env)
            elif isinstance(stmt, ast.For | ast.AsyncFor):
                inner = dict(env)
                self.forget(stmt.target, inner)
                self.walk(stmt.body, inner)
            elif isinstance(stmt, ast.While | ast.If):
                self.walk(stmt.body, dict(env))
            elif isinstance(stmt, ast.Try):
                self.walk(stmt.body, dict(env))
            elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self.walk(stmt.body, dict(env))


def _asserted_message(statements: Sequence[ast.stmt], variable: str) -> str | None:
    """The message asserted after a raises block: `err.value.args[0] == "..."` or `str(err.value) == "..."`."""
    for stmt in statements:
        if isinstance(stmt, ast.With) and any("raises" in _dotted(getattr(i.context_expr, "func", i.context_expr))
                                              for i in stmt.items):
            return None
        if not (isinstance(stmt, ast.Assert) and isinstance(stmt.test, ast.Compare) and len(stmt.test.ops) == 1):
            continue
        sides = [stmt.test.left, stmt.test.comparators[0]]
        text = [ast.unparse(side) for side in sides]
        refers = any(t.startswith(f"{variable}.value") or t in (f"str({variable}.value)", f"str({variable})")
                     for t in text)
        constant = next((s.value for s in sides if isinstance(s, ast.Constant) and isinstance(s.value, str)), None)
        if refers and constant is not None:
            return constant
    return None


def examples_from_tests(tests: str, entry_point: str | None, module: str | None = None,
                        limit: int = 4) -> tuple[list[str], list[str]]:
    """(examples, errors) read from a pytest file: `f(x) == y`, `f(x)`, `not f(x)`, `f(x) is None` assertions
    (HumanEval's `candidate` renamed, LeetCode's run_/assert_ helpers inlined), and `f(x) raises E('message')`
    for `pytest.raises` blocks; the first `limit` of each, none longer than 200 characters."""
    try:
        tree = ast.parse(tests)
    except (SyntaxError, ValueError, RecursionError):
        return [], []
    reader = _TestReader(tree, entry_point, module, limit)
    module_env: dict[str, ast.expr] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            reader.bind(stmt, module_env)
    reader.walk([s for s in tree.body if not isinstance(s, ast.Assign)], module_env)
    return reader.examples, reader.errors


# ---------------------------------------------------------------------------------------------------------------
# Examples written in a statement


_INPUT_OUTPUT = re.compile(
    r"\bInput(?:\*\*)?:(?:\*\*)?[ \t]*(?P<input>[^\n]*?)[ \t]*(?:\n[ \t]*)?(?:\*\*)?Output(?:\*\*)?:(?:\*\*)?[ \t]*"
    r"(?P<output>[^\n]+?)[ \t]*(?=\**Explanation|\bInput\b|#|```|\n|$)"
)
_BACKTICK_EXAMPLE = re.compile(r"`([^`\n]+?\s==\s[^`\n]+?)`")
_BACKTICK_RAISES = re.compile(r"`([^`\n]+\))`\s+raises\s+`([^`\n]+)`")
_ARROW = re.compile(r"\s*(?:==>|==|=>|->|➞|=(?!=)|#\s*=>|#\s*->|#?\s*returns?|should (?:return|be)|gives)\s*")
_FOR_INPUT = re.compile(r"^\s*For\s+(\w+\s*=\s*.+?),?\s+the (?:output|result) should be\s+(.+?)\.?\s*$",
                        re.MULTILINE)


def _leading_call(text: str) -> int | None:
    """The end of a call (`name(...)`, maybe wrapped by other calls) that starts the text, or None."""
    match = re.match(r"\s*[A-Za-z_][\w.]*\s*\(", text)
    if not match:
        return None
    close = _closing_paren(text, match.end() - 1)
    return None if close is None else close + 1


def _doctest_examples(text: str) -> list[tuple[int, str]]:
    """(position, `call == output`) for each `>>> call` followed by its output (on the next lines or the same)."""
    found: list[tuple[int, str]] = []
    lines = text.splitlines(keepends=True)
    position = 0
    for number, line in enumerate(lines):
        pieces = line.split(">>>")
        for index, piece in enumerate(pieces[1:], 1):
            piece = _TRIPLE_QUOTE.split(piece)[0]
            end = _leading_call(piece)
            expr = piece[:end] if end else piece.split(" #")[0]
            output = piece[end:].strip() if end else ""
            if output.startswith("#"):
                output = ""  # a comment after the call, not its output
            if re.match(r"(?:==|!=|is\b|in\b)", output):
                found.append((position + len(">>>".join(pieces[:index])), normalize_space(piece)))
                continue  # `>>> f(x) == y` is an example as it stands
            if not output and index == len(pieces) - 1:
                outs = []
                for after in lines[number + 1 :]:
                    if not after.strip() or ">>>" in after or _TRIPLE_QUOTE.match(after.strip()):
                        break
                    outs.append(_TRIPLE_QUOTE.split(after)[0].strip())
                output = " ".join(o for o in outs if o)
            expr = normalize_space(expr)
            if expr and output:
                found.append((position + len(">>>".join(pieces[:index])), f"{expr} == {normalize_space(output)}"))
        position += len(line)
    return found


def _call_examples(text: str, entry_point: str | None) -> list[tuple[int, str]]:
    """(position, `f(x) == y`) for prose lines such as `f(x) == y`, `f(x) # => y` or `f(x) -> y`."""
    if not entry_point:
        return []
    name = re.escape(entry_point.split(".")[-1])
    found: list[tuple[int, str]] = []
    for match in re.finditer(rf"(?<![\w.>`]){name}\s*\(", text):
        start = match.start()
        line_start = text.rfind("\n", 0, start) + 1
        if ">>>" in text[line_start:start] or "def " in text[line_start:start]:
            continue
        close = _closing_paren(text, match.end() - 1)
        if close is None:
            continue
        call = text[start : close + 1]
        rest = text[close + 1 :].split("\n")[0]
        arrow = _ARROW.match(rest)
        if not (arrow and arrow.group(0).strip() and rest[arrow.end() :].strip()):
            continue
        value = normalize_space(rest[arrow.end() :].split("`")[0].split(" # ")[0]).rstrip(".,;")
        if value:
            found.append((start, f"{normalize_space(call)} == {value}"))
    return found


def statement_examples(text: str, entry_point: str | None) -> list[str]:
    """The examples written in a statement, in order: doctests (`>>> f(x)` and its output, as `f(x) == output`),
    LeetCode and markdown `Input: ... Output: ...` pairs (as `Input: ... -> Output: ...`), backticked
    `` `f(x) == y` `` and `` `f(x)` raises `E('m')` ``, and prose lines `f(x) == y` / `f(x) -> y`."""
    found = _doctest_examples(text) + _call_examples(text, entry_point)
    found += [(m.start(), f"Input: {normalize_space(m.group(1))} -> Output: {normalize_space(m.group(2))}")
              for m in _FOR_INPUT.finditer(text)]
    for match in _INPUT_OUTPUT.finditer(text):
        given, output = normalize_space(match.group("input")), normalize_space(match.group("output")).strip("*` ")
        if given and output:
            found.append((match.start(), f"Input: {given.strip('`')} -> Output: {output}"))
    found += [(m.start(), normalize_space(m.group(1))) for m in _BACKTICK_EXAMPLE.finditer(text)]
    found += [(m.start(), f"{normalize_space(m.group(1))} raises {m.group(2)}")
              for m in _BACKTICK_RAISES.finditer(text)]
    examples = [clean_item(example) for _, example in sorted(found, key=lambda pair: pair[0])]
    return [e for e in dict.fromkeys(examples) if e and len(e) <= MAX_ITEM_CHARS]


# ---------------------------------------------------------------------------------------------------------------
# Relevant knowledge


_GENERIC_WORDS = frozenset(
    "the and for with from into that this are all any get set has have solution instructions introduction find "
    "make count number numbers list lists string strings value values return returns check data test tests "
    "function class int str problem task given exercise new two one not out".split()
)
_WORD = re.compile(r"[a-z0-9]+")


def words_of(text: str) -> set[str]:
    """The lower-case words (runs of letters and digits) of a text; `has_close_elements` gives three."""
    return set(_WORD.findall(text.lower()))


def task_keywords(task: CodingTask) -> list[str]:
    """The task's salient words: its entry point split on `_` (and camelCase), its id's slug and its title heading,
    without short or generic words."""
    raw: list[str] = []
    if task.entry_point:
        raw += re.split(r"[_.]|(?<=[a-z])(?=[A-Z])", task.entry_point)
    raw += re.split(r"[-_\s]+", task.id.split("/")[-1])
    heading = next((m for m in map(_HEADING.match, task.statement.splitlines()) if m), None)
    if heading and not heading.group(1).strip().lower().startswith(("instructions", "introduction", "description")):
        raw += re.split(r"[^A-Za-z0-9]+", heading.group(1))
    words = [w.lower() for w in raw if len(w) >= 3 and w.isalpha()]
    return [w for w in dict.fromkeys(words) if w not in _GENERIC_WORDS]


def relevant_chunk_ids(task: CodingTask, hits: Sequence[Hit], limit: int = MAX_CHUNKS) -> list[str]:
    """The ids of the hits (in order) whose title or text shares a salient word with the task, at most `limit`;
    the first hit's id when none does (and there are hits)."""
    keywords = set(task_keywords(task))
    chosen = [h.id for h in hits if keywords & words_of(f"{h.title} {h.text}")]
    chosen = list(dict.fromkeys(chosen))[:limit]
    if not chosen and hits:
        chosen = [hits[0].id]
    return chosen


# ---------------------------------------------------------------------------------------------------------------
# Tracebacks


_FRAME_FILE = re.compile(r'File "([^"]+)", line (\d+)')
_FRAME_PYTEST = re.compile(r"^([^\s:]+\.py):(\d+):", re.MULTILINE)
_LINE_N = re.compile(r"\bline (\d+)\b")


def _is_test_or_library(path: str) -> bool:
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return (name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py" or path.startswith("<")
            or "site-packages" in path or "/lib/python" in path or "_pytest" in path)


def traceback_line_numbers(text: str) -> list[int]:
    """Line numbers a traceback points at, innermost frame first: frames of the solution when it names them
    (test files and libraries left out), else every frame, else every "line N" the text mentions."""
    frames = [(m.start(), m.group(1), int(m.group(2))) for m in _FRAME_FILE.finditer(text)]
    frames += [(m.start(), m.group(1), int(m.group(2))) for m in _FRAME_PYTEST.finditer(text)]
    frames.sort()
    own = [line for _, path, line in frames if not _is_test_or_library(path)]
    numbers = own or [line for _, _, line in frames] or [int(m.group(1)) for m in _LINE_N.finditer(text)]
    return list(dict.fromkeys(reversed(numbers)))


# ---------------------------------------------------------------------------------------------------------------


def extract_facts(task: CodingTask, hits: Sequence[Hit] = (), max_examples: int = 4) -> TaskFacts:
    """The facts of a task, read from all of it: signature and parameters, the first `max_examples` examples and
    errors of its tests, the constraining sentences of its statement, and the hits relevant to it."""
    signature = task_signature(task)
    examples: list[str] = []
    errors: list[str] = []
    if task.language == "python":
        examples, errors = examples_from_tests(task.tests, task.entry_point, task.module, max_examples)
    return TaskFacts(
        entry_point=task.entry_point,
        signature=signature,
        parameters=signature_parameters(signature or "", task.entry_point),
        examples=examples,
        errors=errors,
        constraints=constraint_sentences(task.statement, MAX_CONSTRAINTS, task.entry_point),
        relevant_chunk_ids=relevant_chunk_ids(task, hits),
    )
