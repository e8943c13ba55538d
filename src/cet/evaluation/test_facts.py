"""The facts a task's hidden tests reveal, read from their syntax tree, and how many of them a context states.

This is the measuring side: it shares no code with `cet.data.task_facts` (which writes the template and
the training targets), so the metric does not grade that extractor's own regexes.

`hidden_facts(tests, entry_point)` takes a `TestSplit` (its hidden task), a `CodingTask` or a pytest
source. Four families, each a sorted list of distinct short strings:

* ``names``: what the tests use from the solution: the names imported from a non-standard-library module
  (``from solution import is_isogram``; a star import adds every called name the test file does not define
  and builtins do not provide, e.g. ``poly``), the parts of `entry_point` (``Solution.add_binary`` gives
  ``Solution`` and ``add_binary``), and methods called on a solution name, on an object it returns, or on
  a local name assigned such an object (``Solution().two_sum(...)``, ``implementation.inc(...)``).
  A test-file function called with a solution name (``check(has_close_elements)``,
  ``run_add_binary(Solution, ...)``) makes that parameter an alias of the solution name.
* ``arguments``: literal arguments (anything ``ast.literal_eval`` accepts), unparsed, of calls to solution
  names and of calls to test-file helpers that call the solution (``run_add_binary(Solution, a, b)``).
  A name argument is resolved through a literal assignment made exactly once in the same function
  (``a, b, expected = '11', '1', '100'``).
* ``edge_values``: edge-like literals among those arguments and the expected values (literal operands of
  ``==``/``!=``/``is``/``is not`` inside ``assert`` statements, ``pytest.approx(x)`` read as ``x``, and
  literal arguments of test-file helpers that do not call the solution, e.g. ``assert_add_binary(result,
  expected)``). Edge-like: ``None``, ``True``/``False``, ``0``, a negative number, a number of magnitude
  at least 10**6, an empty (or whitespace-only) string, an empty list/tuple/dict/set. Only whole values
  count, not items nested in a container.
* ``errors``: exception types given to ``pytest.raises`` (each member of a tuple), its ``match=`` text, and
  the literal messages compared with ``str(x)`` where ``x`` involves a ``pytest.raises ... as`` or an
  ``except ... as`` name.

Literals longer than `MAX_FACT_CHARS` unparsed are left out: a context cannot be expected to quote them.

`recall(text, facts)` gives, per family, the share of its facts found in `text` (whitespace normalised;
None for an empty family) and ``overall``, the micro average over all facts. A name counts when it appears
as a word; a literal when its unparsed form appears (either quote style for strings; containers also with
the spaces removed) or, for a string of at least `MIN_PLAIN_CHARS` characters, its plain value does.
"""

from __future__ import annotations

import ast
import builtins
import json
import re
import sys
from dataclasses import asdict, dataclass
from typing import Any

from cet.errors import CetError
from cet.execution.tasks import CodingTask
from cet.execution.test_split import TestSplit

FAMILIES = ("names", "arguments", "edge_values", "errors")
MAX_FACT_CHARS = 120
MIN_PLAIN_CHARS = 3  # a shorter string counts only quoted: a bare "a" or "is" is in any sentence
LARGE = 10**6
_NOT_SOLUTION = set(sys.stdlib_module_names) | {"pytest", "__future__", "_pytest"}
_EQUALITY = (ast.Eq, ast.NotEq, ast.Is, ast.IsNot)

Scope = ast.Module | ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class HiddenFacts:
    names: list[str]
    arguments: list[str]
    edge_values: list[str]
    errors: list[str]

    def families(self) -> dict[str, list[str]]:
        return asdict(self)

    @property
    def total(self) -> int:
        return sum(len(items) for items in self.families().values())


def hidden_facts(tests: TestSplit | CodingTask | str, entry_point: str | None = None) -> HiddenFacts:
    """The facts `tests` reveal (a split's hidden tests, a task's tests, or a pytest source)."""
    if isinstance(tests, TestSplit):
        tests = tests.hidden
    if isinstance(tests, CodingTask):
        entry_point = entry_point or tests.entry_point
        tests = tests.tests
    try:
        tree = ast.parse(tests)
    except SyntaxError as e:
        raise CetError(f"the tests do not parse (line {e.lineno}: {e.msg}); no facts can be read") from None
    return _Reader(tree, entry_point).facts()


# -------------------------------------------------------------------------------------------- extraction


class _Reader:
    """One pass over a test module: which names are the solution, then the facts in every scope."""

    def __init__(self, tree: ast.Module, entry_point: str | None) -> None:
        self.tree = tree
        self.functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        self.all_nodes = list(ast.walk(tree))
        self.scopes: list[Scope] = [tree, *(n for n in self.all_nodes
                                           if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))]
        self.nodes = {id(scope): _own_nodes(scope) for scope in self.scopes}
        self.calls = {id(scope): [n for n in self.nodes[id(scope)] if isinstance(n, ast.Call)]
                      for scope in self.scopes}
        self.names: set[str] = {part for part in (entry_point or "").split(".") if part.isidentifier()}
        self.solution: set[str] = set()  # module-level names bound to the solution
        self.solution_modules: set[str] = set()  # `import solution` / `import solution as s`
        self.other_modules: set[str] = set()
        self.star = False
        self._read_imports()
        self.defined = self._defined()
        self.aliases: dict[str, set[str]] = {name: set() for name in self.functions}  # function -> parameters
        self._find_aliases()
        self._instance_cache: dict[int, set[str]] = {}  # filled once the aliases are known
        self.helpers = self._solution_helpers()
        self.arguments: set[str] = set()
        self.expected: set[str] = set()
        self.errors: set[str] = set()

    def facts(self) -> HiddenFacts:
        for scope in self.scopes:
            self._read_scope(scope)
        edge = {text for text in self.arguments | self.expected if _edge_like(ast.literal_eval(text))}
        return HiddenFacts(names=sorted(self.names), arguments=sorted(self.arguments), edge_values=sorted(edge),
                           errors=sorted(self.errors))

    # -- what the solution is

    def _read_imports(self) -> None:
        for node in self.all_nodes:
            if isinstance(node, ast.ImportFrom):
                if (node.module or "").split(".")[0] in _NOT_SOLUTION or node.level:
                    self.other_modules |= {a.asname or a.name for a in node.names}
                    continue
                for alias in node.names:
                    if alias.name == "*":
                        self.star = True
                    else:
                        self.solution.add(alias.asname or alias.name)
                        self.names.add(alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    bound = alias.asname or alias.name.split(".")[0]
                    target = self.other_modules if alias.name.split(".")[0] in _NOT_SOLUTION else self.solution_modules
                    target.add(bound)

    def _defined(self) -> set[str]:
        """Every name the test file binds anywhere, plus the builtins (what a star import cannot be)."""
        names = set(dir(builtins)) | self.solution | self.solution_modules | self.other_modules
        for node in self.all_nodes:
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                names.add(node.name)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}
        return names

    def _solution_names(self, scope: Scope) -> set[str]:
        if isinstance(scope, ast.Module) or self.functions.get(scope.name) is not scope:
            return set(self.solution)
        return self.solution | self.aliases[scope.name]

    def _find_aliases(self) -> None:
        """Parameters of test-file functions that receive a solution name, until nothing changes."""
        changed = True
        while changed:
            changed = False
            for scope in self.scopes:
                known = self._solution_names(scope)
                for call in self.calls[id(scope)]:
                    if not (isinstance(call.func, ast.Name) and call.func.id in self.functions):
                        continue
                    params = [a.arg for a in self.functions[call.func.id].args.args]
                    for param, arg in zip(params, call.args, strict=False):
                        if isinstance(arg, ast.Name) and arg.id in known \
                                and param not in self.aliases[call.func.id]:
                            self.aliases[call.func.id].add(param)
                            changed = True

    def _solution_helpers(self) -> set[str]:
        """Test-file functions that call the solution, directly or through another such function."""
        helpers: set[str] = set()
        changed = True
        while changed:
            changed = False
            for name, function in self.functions.items():
                if name not in helpers and any(self._is_solution_call(call, function, helpers)
                                               for call in self.calls[id(function)]):
                    helpers.add(name)
                    changed = True
        return helpers

    def _instances(self, scope: Scope) -> set[str]:
        """Local names assigned the result of calling a solution name (`implementation = solution_class()`)."""
        if id(scope) in self._instance_cache:
            return self._instance_cache[id(scope)]
        known = self._solution_names(scope)
        found: set[str] = set()
        self._instance_cache[id(scope)] = found
        for node in self.nodes[id(scope)]:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) \
                    and isinstance(node.value.func, ast.Name) and node.value.func.id in known:
                found |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        return found

    def _solution_target(self, call: ast.Call, scope: Scope) -> str | None:
        """The solution name or method `call` calls, or None when it is not a call into the solution."""
        known = self._solution_names(scope)
        func = call.func
        if isinstance(func, ast.Name):
            if func.id in known:
                return func.id
            if self.star and func.id not in self.defined:
                return func.id
            return None
        if not isinstance(func, ast.Attribute):
            return None
        receiver = func.value
        if isinstance(receiver, ast.Name) and (receiver.id in known | self.solution_modules
                                               or receiver.id in self._instances(scope)):
            return func.attr
        if isinstance(receiver, ast.Call) and self._solution_target(receiver, scope) is not None:
            return func.attr
        return None

    def _is_solution_call(self, call: ast.Call, scope: Scope, helpers: set[str]) -> bool:
        if self._solution_target(call, scope) is not None:
            return True
        return isinstance(call.func, ast.Name) and call.func.id in helpers

    # -- facts in one scope

    def _read_scope(self, scope: Scope) -> None:
        bindings = _literal_bindings(self.nodes[id(scope)])
        known = self._solution_names(scope)
        raised = self._read_raises(scope)
        for call in self.calls[id(scope)]:
            target = self._solution_target(call, scope)
            if target is not None:
                if target not in known:  # aliases and parameters are not names the solution defines
                    self.names.add(target)
                self.arguments |= _literal_args(call, bindings)
            elif isinstance(call.func, ast.Name) and call.func.id in self.helpers:
                self.arguments |= _literal_args(call, bindings)
            elif isinstance(call.func, ast.Name) and call.func.id in self.functions:
                self.expected |= _literal_args(call, bindings)
            elif isinstance(call.func, ast.Attribute) and call.func.attr == "match" \
                    and isinstance(call.func.value, ast.Name) and call.func.value.id in raised:
                self.errors |= _literal_args(call, bindings)
        for node in self.nodes[id(scope)]:
            if isinstance(node, ast.Assert):
                self._read_assert(node, bindings, raised)

    def _read_raises(self, scope: Scope) -> set[str]:
        """Record `pytest.raises` types and match texts; the names bound to exceptions in this scope."""
        raised: set[str] = set()
        for node in self.nodes[id(scope)]:
            if isinstance(node, ast.ExceptHandler) and node.name:
                raised.add(node.name)
            if not isinstance(node, ast.With | ast.AsyncWith):
                continue
            for item in node.items:
                call = item.context_expr
                if not (isinstance(call, ast.Call) and _is_raises(call.func)):
                    continue
                if call.args:
                    kinds = call.args[0].elts if isinstance(call.args[0], ast.Tuple) else [call.args[0]]
                    self.errors |= {ast.unparse(k) for k in kinds}
                self.errors |= {text for k in call.keywords if k.arg == "match"
                                for text in [_literal_text(k.value, {})] if text}
                if isinstance(item.optional_vars, ast.Name):
                    raised.add(item.optional_vars.id)
        return raised

    def _read_assert(self, node: ast.Assert, bindings: dict[str, ast.expr], raised: set[str]) -> None:
        for compare in (n for n in ast.walk(node.test) if isinstance(n, ast.Compare)):
            if not all(isinstance(op, _EQUALITY) for op in compare.ops):
                continue
            operands = [compare.left, *compare.comparators]
            literals = {text for o in operands for text in [_literal_text(o, bindings)] if text}
            if any(_is_str_of(o, raised) for o in operands):
                self.errors |= literals
            else:
                self.expected |= literals


# ----------------------------------------------------------------------------------------- tree helpers


def _own_nodes(scope: Scope) -> list[ast.AST]:
    """The nodes of `scope` without those of functions nested in it (they are scopes of their own)."""
    nested = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
    found: list[ast.AST] = []
    stack: list[ast.AST] = [node for node in reversed(scope.body) if not isinstance(node, nested)]
    while stack:
        node = stack.pop()
        found.append(node)
        stack.extend(child for child in reversed(list(ast.iter_child_nodes(node))) if not isinstance(child, nested))
    return found


def _is_raises(func: ast.expr) -> bool:
    if isinstance(func, ast.Attribute):
        return func.attr == "raises" and isinstance(func.value, ast.Name) and func.value.id == "pytest"
    return isinstance(func, ast.Name) and func.id == "raises"


def _is_str_of(node: ast.expr, raised: set[str]) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "str"
            and len(node.args) == 1 and any(isinstance(n, ast.Name) and n.id in raised for n in ast.walk(node.args[0])))


def _literal_bindings(nodes: list[ast.AST]) -> dict[str, ast.expr]:
    """Names assigned a literal exactly once in `scope` (`x = 3`, `a, b = 'p', 'q'`) and never touched
    through an attribute or an item store (`coeffs.append(c)`, `grid[0] = 1`: the value may change)."""
    values: dict[str, ast.expr] = {}
    counts: dict[str, int] = {}
    for node in nodes:
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            counts[node.id] = counts.get(node.id, 0) + 1
        touched = node.value if isinstance(node, ast.Attribute) else node.value \
            if isinstance(node, ast.Subscript) and not isinstance(node.ctx, ast.Load) else None
        if isinstance(touched, ast.Name):
            counts[touched.id] = counts.get(touched.id, 0) + 2
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target, value = node.targets[0], node.value
        pairs = zip(target.elts, value.elts, strict=True) \
            if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts) \
            else [(target, value)]
        for name, expr in pairs:
            if isinstance(name, ast.Name) and _literal_value(expr) is not _NOTHING:
                values[name.id] = expr
    return {name: expr for name, expr in values.items() if counts.get(name) == 1}


_NOTHING = object()


def _literal_value(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NOTHING


def _literal_text(node: ast.expr, bindings: dict[str, ast.expr]) -> str | None:
    """The unparsed literal `node` stands for (through `bindings` and `pytest.approx`), or None."""
    if isinstance(node, ast.Name) and node.id in bindings:
        node = bindings[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name) and len(node.args) == 1 \
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "approx":
        node = node.args[0]
    if _literal_value(node) is _NOTHING:
        return None
    text = ast.unparse(node)
    return text if len(text) <= MAX_FACT_CHARS else None


def _literal_args(call: ast.Call, bindings: dict[str, ast.expr]) -> set[str]:
    values = [*call.args, *(k.value for k in call.keywords)]
    return {text for v in values if not isinstance(v, ast.Starred) for text in [_literal_text(v, bindings)] if text}


def _edge_like(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int | float):
        return value == 0 or value < 0 or abs(value) >= LARGE
    if isinstance(value, str | bytes):
        return not value.strip()
    if isinstance(value, list | tuple | dict | set | frozenset):
        return len(value) == 0
    return False


# ------------------------------------------------------------------------------------------------ recall


def recall(context_text: str, facts: HiddenFacts) -> dict[str, float | None]:
    """Per family, the share of facts `context_text` states (None when the family is empty); `overall`
    is the micro average over every fact (None when there are none)."""
    text = " ".join(context_text.split())
    squeezed = "".join(context_text.split())
    scores: dict[str, float | None] = {}
    found_all = total = 0
    for family, items in facts.families().items():
        found = sum(fact_found(item, text, squeezed) for item in items)
        scores[family] = found / len(items) if items else None
        found_all += found
        total += len(items)
    scores["overall"] = found_all / total if total else None
    return scores


def fact_found(fact: str, text: str, squeezed: str | None = None) -> bool:
    """Whether `text` (whitespace normalised) states `fact`: a name as a word, a literal in any of its forms."""
    if squeezed is None:
        squeezed = "".join(text.split())
    if re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", fact) and fact not in ("None", "True", "False"):
        return _appears(fact, text)
    value = _literal_value(ast.parse(fact, mode="eval").body) if _parses(fact) else _NOTHING
    forms = {fact}
    if isinstance(value, str):
        forms |= {repr(value), json.dumps(value, ensure_ascii=False)}
        if len(value.strip()) >= MIN_PLAIN_CHARS:
            forms.add(" ".join(value.split()))
    if any(_appears(form, text) for form in forms):
        return True
    return isinstance(value, list | tuple | dict | set) and "".join(fact.split()) in squeezed


def _parses(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    return True


def _appears(form: str, text: str) -> bool:
    """`form` in `text`, not as part of a longer word or number (`0` is not found in `10` or `0.5`)."""
    if not form:
        return False
    numeric = re.fullmatch(r"-?\d[\d_]*(\.\d+)?([eE][-+]?\d+)?", form) is not None
    before = r"(?<![\w.])" if numeric or re.match(r"\w", form) else ""
    after = r"(?![\w]|\.\d)" if numeric or re.search(r"\w$", form) else ""
    return re.search(before + re.escape(form) + after, text) is not None
