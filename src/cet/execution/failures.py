"""What went wrong with a generated solution, read from its sandbox run and its code: a coarse failure class (the
evaluation's table) and a finer pattern (what Phase 3's failure miner keys its playbook on).

    class    syntax | name/signature | assertion | exception | timeout | no-code | other | passed
    pattern  the class refined by what the code and the run show:
        missing-import    a NameError / UnboundLocalError on a name the standard library or typing provides
        helpers-instead   the code defines the visible tests' run_/assert_ helpers (or lacks the class the tests
                          import) instead of the interface
        renamed           the tests cannot find the interface's name: the code spells it otherwise (camelCase)
        truncated         the code does not compile and its end is cut (an unclosed bracket or block at the end)
        printed           the code prints and returns nothing the tests can compare (None where a value was due)
        wrong-type        an assertion compares values of different types (a list against a tuple, str against int)
        edge-value        an assertion fails on some cases while others pass
        wrong-logic       an assertion fails on every case
        exception         any other exception raised by the code
        timeout, syntax, other, no-code, passed: as the class
"""

from __future__ import annotations

import re

from cet.execution.result import ExecutionResult

_IMPORT_FAILURE = ("ImportError", "cannot import name", "ModuleNotFoundError")
_ARGUMENT_FAILURE = ("positional argument", "unexpected keyword", "required positional", "takes no arguments")
# names a solution uses without importing them (typing, collections, the common standard modules)
IMPORTABLE = frozenset({
    "List", "Dict", "Set", "Tuple", "Optional", "Union", "Any", "Callable", "Iterable", "Iterator", "Deque",
    "DefaultDict", "Counter", "defaultdict", "deque", "OrderedDict", "namedtuple", "heapq", "heappush", "heappop",
    "heapify", "itertools", "collections", "math", "bisect", "bisect_left", "bisect_right", "functools", "lru_cache",
    "cache", "reduce", "accumulate", "permutations", "combinations", "product", "re", "string", "random", "sys",
    "inf", "gcd", "comb", "sqrt", "isqrt", "operator", "typing", "Fraction", "Decimal", "datetime", "time", "json",
})
_NAME_ERROR = re.compile(r"(?:name|variable) '(\w+)'")
_MISSING_ATTRIBUTE = re.compile(r"object has no attribute '(\w+)'")
_CUT = ("was never closed", "expected an indented block", "unexpected EOF", "EOF while scanning",
        "unterminated string literal", "unterminated triple-quoted string")
_TYPE_PAIR = re.compile(r"assert\s+(\[|\(|'|\"|-?\d|None|True|False)[^\n]*==\s*(\[|\(|'|\"|-?\d|None|True|False)")
_HELPER_DEF = re.compile(r"^\s*def\s+(?:run|assert)_\w+\s*\(", re.MULTILINE)


def classify_failure(result: ExecutionResult | None, code: str | None, entry_point: str | None) -> str:
    """syntax, name/signature, assertion, exception, timeout, no-code, other; "passed" when it passed. A
    name/signature failure: the tests cannot import the name, call it with its arguments, or find it (a NameError
    or AttributeError whose message names the entry point)."""
    if not code or result is None:
        return "no-code"
    if result.passed:
        return "passed"
    if result.exit_reason == "compile-error":
        return "syntax"
    detail = result.detail or ""
    # the CPU-time limit may kill the runner itself with SIGXCPU (exit status 152): that is a timeout too
    if result.exit_reason == "timeout" or "exit status 152" in detail or "SIGXCPU" in detail:
        return "timeout"
    failed = [c for c in result.tests.cases if c.outcome in ("failed", "error")]
    outside = f"{result.stdout_tail[-3000:]} {result.detail or ''}"
    name = (entry_point or "").split(".")[-1]
    for case in failed:
        message = case.message or ""
        if case.error_type in ("ImportError", "ModuleNotFoundError") or \
                (case.error_type == "TypeError" and any(k in message for k in _ARGUMENT_FAILURE)) or \
                (case.error_type in ("NameError", "AttributeError") and name and f"'{name}'" in message):
            return "name/signature"
    if any(k in (result.detail or "") for k in _IMPORT_FAILURE) or (
            not failed and any(k in outside for k in _IMPORT_FAILURE)):
        return "name/signature"  # the test module could not even be collected
    types = {c.error_type for c in failed}
    if types and types <= {"AssertionError"}:
        return "assertion"
    if types:
        return "exception"
    return "other"


def failure_pattern(result: ExecutionResult | None, code: str | None, entry_point: str | None,
                    interface: str = "") -> str:
    """The finer pattern of a failure (see the module's docstring); `interface` is the task's stub or signature as
    shown to the generator (it tells a renamed method from a missing one)."""
    kind = classify_failure(result, code, entry_point)
    if kind in ("passed", "no-code", "timeout", "other") or result is None or code is None:
        return kind
    failed = [c for c in result.tests.cases if c.outcome in ("failed", "error")]
    messages = " ".join(f"{c.error_type or ''}: {c.message or ''}" for c in failed[:5]) + " " + (result.detail or "")
    if kind == "syntax":
        compile_text = f"{result.compile.error or ''} {result.detail or ''}"
        return "truncated" if any(k in compile_text for k in _CUT) else "syntax"
    missing = {m for m in _NAME_ERROR.findall(messages)} & IMPORTABLE
    if missing and ("NameError" in messages or "UnboundLocalError" in messages):
        return "missing-import"
    if kind == "name/signature" and (_HELPER_DEF.search(code) or ("cannot import name" in messages
                                                                    and _missing_class(code, interface))):
        return "helpers-instead"
    if kind == "name/signature":
        wanted = set(_MISSING_ATTRIBUTE.findall(messages)) | set(_NAME_ERROR.findall(messages))
        return "renamed" if any(_camel(w) in code for w in wanted if "_" in w) else "name/signature"
    if kind == "assertion":
        if "print(" in code and any("None ==" in (c.message or "") for c in failed):
            return "printed"
        if any(_mixed_types(c.message or "") for c in failed):
            return "wrong-type"
        return "edge-value" if result.tests.passed > 0 else "wrong-logic"
    return "exception"


def _missing_class(code: str, interface: str) -> bool:
    wanted = re.findall(r"^\s*class\s+(\w+)", interface, re.MULTILINE)
    return any(not re.search(rf"^\s*class\s+{name}\b", code, re.MULTILINE) for name in wanted)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _mixed_types(message: str) -> bool:
    m = _TYPE_PAIR.search(message)
    if not m:
        return False
    kinds = {"[": "seq", "(": "tuple", "'": "str", '"': "str", "N": "none", "T": "bool", "F": "bool"}
    left, right = (kinds.get(g[0], "num") for g in m.groups())
    return left != right


def failure_report(result: ExecutionResult, max_cases: int = 2) -> str:
    """A failing sandbox run as a developer would paste it: the failing tests with their error and traceback."""
    lines = [f"{result.tests.failed} of {result.tests.total} tests fail ({result.exit_reason})."]
    if not result.compile.ok:
        lines.append(result.compile.error or "the code does not compile")
    for case in [c for c in result.tests.cases if c.outcome in ("failed", "error")][:max_cases]:
        lines.append(f"{case.name}: {case.error_type or 'Error'}: {(case.message or '').strip()[:300]}")
        if case.traceback_tail:
            lines.append(case.traceback_tail.strip()[-500:])
    if len(lines) == 1 and result.detail:
        lines.append(result.detail)
    return "\n".join(lines)
