"""Mutations: seeded, AST-based single-node changes that turn a correct Python solution into a plausible buggy one,
for "bug report -> debugging context" pairs. Running a mutant against the task's tests happens elsewhere.

A site is one node (found by its index in `ast.walk` order, which is the same in a deep copy) and one operator;
each mutant changes exactly one site of a fresh copy of the tree.
"""

from __future__ import annotations

import ast
import copy
import random
from collections.abc import Callable
from dataclasses import dataclass

OPERATORS: tuple[str, ...] = ("compare", "arith", "constant", "boolop", "negate", "return", "index", "slice", "drop")

COMPARE_FLIPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
ARITH_SWAPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Add,
    ast.FloorDiv: ast.Div,
    ast.Div: ast.FloorDiv,
    ast.Mod: ast.FloorDiv,
}
SYMBOLS: dict[type[ast.AST], str] = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.FloorDiv: "//",
    ast.Div: "/",
    ast.Mod: "%",
    ast.And: "and",
    ast.Or: "or",
}
BODY_FIELDS = ("body", "orelse", "finalbody")
UNDROPPABLE = (ast.Return, ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Pass)


@dataclass(frozen=True)
class Mutant:
    """A buggy variant of a solution: its code, the operator used, the mutated node's 1-based line in the original
    source, and a human-readable description of the change."""

    code: str
    operator: str
    line: int
    description: str


@dataclass(frozen=True)
class Site:
    """One place to mutate: an operator, the node's walk index, and a field and position within that node."""

    operator: str
    index: int
    field: str = ""
    position: int = 0


def walk(tree: ast.AST) -> list[ast.AST]:
    """Every node of the tree in `ast.walk` order (stable across deep copies)."""
    return list(ast.walk(tree))


def snippet(node: ast.AST, width: int = 60) -> str:
    """The node's source (first line, shortened) for a description."""
    text = ast.unparse(node).splitlines()[0] if ast.unparse(node) else ""
    return text if len(text) <= width else text[: width - 3] + "..."


def int_value(node: ast.expr | None) -> int | None:
    """The value of an int literal (`3`, `-3`), or None for anything else (bools included)."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = int_value(node.operand)
        return None if inner is None else -inner
    return None


def int_literal(value: int) -> ast.expr:
    """An AST literal for the int (negative ones as unary minus)."""
    return ast.Constant(value) if value >= 0 else ast.UnaryOp(ast.USub(), ast.Constant(-value))


def is_docstring(stmt: ast.stmt, owner: ast.AST, position: int) -> bool:
    """Whether the statement is the docstring of its module, class or function."""
    return (
        position == 0
        and isinstance(owner, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def is_string(node: ast.expr) -> bool:
    """A string literal or f-string (where `+` is concatenation)."""
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def inside_functions(nodes: list[ast.AST]) -> set[int]:
    """Walk indices of the nodes that are, or lie inside, a function definition."""
    functions = [node for node in nodes if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    ids = {id(inner) for function in functions for inner in ast.walk(function)}
    return {i for i, node in enumerate(nodes) if id(node) in ids}


def annotation_nodes(nodes: list[ast.AST]) -> set[int]:
    """Ids of the nodes inside type annotations (argument, return and variable annotations), which are not mutated."""
    roots: list[ast.expr] = []
    for node in nodes:
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            roots.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
            roots.append(node.returns)
    return {id(inner) for root in roots for inner in ast.walk(root)}


def subscript_literals(nodes: list[ast.AST]) -> set[int]:
    """Ids of the int literals that are a subscript's index or slice bound (mutated by `index` and `slice`, not
    `constant`)."""
    roots: list[ast.expr | None] = []
    for node in nodes:
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
            roots += [node.slice.lower, node.slice.upper]
        elif isinstance(node, ast.Subscript):
            roots.append(node.slice)
    return {id(inner) for root in roots if int_value(root) is not None for inner in ast.walk(root)}


def node_sites(index: int, node: ast.AST) -> list[Site]:
    """Sites of every operator except `drop` on one node."""
    sites: list[Site] = []
    if isinstance(node, ast.Compare):
        sites += [Site("compare", index, position=i) for i, op in enumerate(node.ops) if type(op) in COMPARE_FLIPS]
    elif isinstance(node, ast.BinOp) and type(node.op) in ARITH_SWAPS:
        if not (isinstance(node.op, ast.Add) and (is_string(node.left) or is_string(node.right))):
            sites.append(Site("arith", index))
    elif isinstance(node, ast.AugAssign) and type(node.op) in ARITH_SWAPS:
        sites.append(Site("arith", index))
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        sites.append(Site("constant", index))
    elif isinstance(node, ast.BoolOp):
        sites.append(Site("boolop", index))
    elif isinstance(node, ast.If | ast.While):
        sites.append(Site("negate", index))
    elif isinstance(node, ast.Return) and node.value is not None:
        if not (isinstance(node.value, ast.Constant) and node.value.value is None):
            sites.append(Site("return", index))
    elif isinstance(node, ast.Subscript):
        if isinstance(node.slice, ast.Slice):
            bounds = ("lower", "upper")
            sites += [Site("slice", index, field=b) for b in bounds if int_value(getattr(node.slice, b)) is not None]
        elif int_value(node.slice) is not None or isinstance(node.slice, ast.Name):
            sites.append(Site("index", index))
    return sites


def drop_sites(index: int, node: ast.AST) -> list[Site]:
    """Sites for deleting one statement from a body of this node with at least two statements."""
    sites: list[Site] = []
    for field in BODY_FIELDS:
        body = getattr(node, field, None)
        if not isinstance(body, list) or len(body) < 2:
            continue
        for position, stmt in enumerate(body):
            droppable = isinstance(stmt, ast.stmt) and not isinstance(stmt, UNDROPPABLE)
            if droppable and not is_docstring(stmt, node, position):
                sites.append(Site("drop", index, field=field, position=position))
    return sites


def find_sites(tree: ast.AST) -> list[Site]:
    """Every mutation site of the tree, in walk order: nothing in imports or annotations, `drop` only inside
    functions, subscript literals only by `index` and `slice`."""
    nodes = walk(tree)
    in_functions = inside_functions(nodes)
    skipped = annotation_nodes(nodes) | subscript_literals(nodes)
    sites: list[Site] = []
    for index, node in enumerate(nodes):
        if isinstance(node, ast.Import | ast.ImportFrom) or id(node) in skipped:
            continue
        sites += node_sites(index, node)
        if index in in_functions:
            sites += drop_sites(index, node)
    return sites


def mutate_compare(node: ast.Compare, site: Site) -> str:
    """Flip one comparison operator."""
    old = node.ops[site.position]
    new = COMPARE_FLIPS[type(old)]()
    node.ops[site.position] = new
    return f"`{SYMBOLS[type(old)]}` changed to `{SYMBOLS[type(new)]}`"


def mutate_arith(node: ast.BinOp | ast.AugAssign, site: Site) -> str:
    """Swap the arithmetic operator."""
    old = node.op
    node.op = ARITH_SWAPS[type(old)]()
    return f"`{SYMBOLS[type(old)]}` changed to `{SYMBOLS[type(node.op)]}`"


def mutate_constant(node: ast.Constant, site: Site) -> str:
    """Add one to the int constant."""
    old = node.value
    node.value = old + 1
    return f"constant `{old}` changed to `{old + 1}`"


def mutate_boolop(node: ast.BoolOp, site: Site) -> str:
    """Swap `and` and `or`."""
    old = node.op
    node.op = ast.Or() if isinstance(old, ast.And) else ast.And()
    return f"`{SYMBOLS[type(old)]}` changed to `{SYMBOLS[type(node.op)]}`"


def mutate_negate(node: ast.If | ast.While, site: Site) -> str:
    """Wrap the condition in `not (...)`."""
    before = snippet(node.test)
    node.test = ast.UnaryOp(ast.Not(), node.test)
    return f"condition `{before}` negated"


def mutate_return(node: ast.Return, site: Site) -> str:
    """Make the return bare (returns None)."""
    before = snippet(node)
    node.value = None
    return f"`{before}` changed to `return None`"


def mutate_index(node: ast.Subscript, site: Site) -> str:
    """Shift the index: an int literal by +1, a name by -1."""
    before = snippet(node)
    value = int_value(node.slice)
    if value is None:
        node.slice = ast.BinOp(node.slice, ast.Sub(), ast.Constant(1))
    else:
        node.slice = int_literal(value + 1)
    return f"index `{before}` changed to `{snippet(node)}`"


def mutate_slice(node: ast.Subscript, site: Site) -> str:
    """Add one to an int slice bound."""
    before = snippet(node)
    bounds = node.slice
    assert isinstance(bounds, ast.Slice)
    value = int_value(getattr(bounds, site.field))
    assert value is not None
    setattr(bounds, site.field, int_literal(value + 1))
    return f"slice `{before}` changed to `{snippet(node)}`"


def mutate_drop(node: ast.AST, site: Site) -> str:
    """Delete one statement from a body."""
    body: list[ast.stmt] = getattr(node, site.field)
    removed = body.pop(site.position)
    return f"statement `{snippet(removed)}` deleted"


MUTATORS: dict[str, Callable[..., str]] = {
    "compare": mutate_compare,
    "arith": mutate_arith,
    "constant": mutate_constant,
    "boolop": mutate_boolop,
    "negate": mutate_negate,
    "return": mutate_return,
    "index": mutate_index,
    "slice": mutate_slice,
    "drop": mutate_drop,
}


def site_line(nodes: list[ast.AST], site: Site) -> int:
    """The 1-based line, in the original source, of the node the site changes (the statement, for `drop`)."""
    node = nodes[site.index]
    if site.operator == "drop":
        node = getattr(node, site.field)[site.position]
    return getattr(node, "lineno", 1)


def apply_site(tree: ast.Module, site: Site) -> tuple[str, str]:
    """The code of a copy of the tree with the site mutated, and the change's description."""
    mutated = copy.deepcopy(tree)
    description = MUTATORS[site.operator](walk(mutated)[site.index], site)
    return ast.unparse(mutated), description


def compiles(code: str) -> bool:
    """Whether the code compiles."""
    try:
        compile(code, "<mutant>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def mutants(source: str, rng: random.Random, limit: int = 5) -> list[Mutant]:
    """Up to `limit` distinct single-site mutants of the source, in a seeded random order; [] if it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        return []
    original = ast.unparse(tree)
    nodes = walk(tree)
    sites = find_sites(tree)
    rng.shuffle(sites)
    found: list[Mutant] = []
    seen = {original}
    for site in sites:
        if len(found) >= limit:
            break
        code, description = apply_site(tree, site)
        if code in seen or not compiles(code):
            continue
        seen.add(code)
        line = site_line(nodes, site)
        found.append(Mutant(code, site.operator, line, f"line {line}: {description}"))
    return found
