"""Exercism exercises as coding tasks: problem-specifications canonical data rendered as a pytest file.

PATH is the Exercism data folder holding ``problem-specifications/exercises/<slug>/`` and, optionally, the
Python track ``python/exercises/practice/<slug>/`` (or the problem-specifications folder itself, with the
Python track beside it). Every exercise folder yields one task ``exercism/<slug>`` or one skip.

Mapping (general; nothing is written per exercise):

* Cases: nested ``cases`` groups are flattened; a leaf's test name is ``test_`` + its group descriptions
  and its own description joined, as an identifier (duplicates get ``_2``, ``_3``...). Each leaf needs
  ``property``, an ``input`` object and ``expected``, or the exercise is skipped.
* Which cases: with the Python track's ``.meta/tests.toml``, only cases listed there and not marked
  ``include = false`` are kept (unlisted cases have not been adopted by the track). With or without it, a
  case that a kept case ``reimplements`` is dropped. Without a tests.toml all cases are kept and the task
  records ``extra["tests_toml"] = False``. The track's ``additional_tests.json`` is not used.
* Calls: ``property`` camelCase becomes a snake_case function (a trailing ``_`` when the name is a Python
  keyword or builtin, e.g. ``list_``, ``sum_``); the input object's values are passed positionally in its
  key order; parameter names in the signature are the snake_case keys (same ``_`` rule).
* Checks: ``== expected`` (``is None`` / ``is True`` / ``is False`` for null and booleans); an expected
  value holding floats, as a number or a flat list/object of numbers, is compared with ``pytest.approx``.
* Errors: ``expected = {"error": msg}`` becomes ``with pytest.raises(T) as excinfo: call`` and
  ``assert str(excinfo.value) == M``. The Python track's ``instructions.append.md`` tells solvers which
  exception to raise, with example messages (``raise ValueError("...")``). When one of those messages
  matches the canonical one (ignoring case, whitespace and a final period), T is its exception type and M
  that Python message. Otherwise M is the canonical message and T the one builtin exception type the
  append raises, or ``Exception`` (several types, custom classes, or no append). Custom exception classes
  are never imported: T is then ``Exception``. Every (function, message) pair the tests check is listed in
  the statement's Interface section, so the expected messages are part of the task, not hidden.
* Module: the Python track's solution file (``.meta/config.json`` ``files.solution[0]`` minus ``.py``),
  else the slug with ``-`` -> ``_``. Entry point: the first function; signature: one ``def f(params)``
  line per function.
* Statement: the Python track's ``.docs/instructions.md`` plus ``instructions.append.md`` when present,
  else problem-specifications ``instructions.md`` or ``description.md``; then an "Interface" section
  naming the file, the functions and one example call per function taken from the tests (the
  instructions often describe another track's API, so the contract the tests impose is stated).

Skipped, with a reason, because the mapping cannot express them honestly:

* no canonical-data.json, malformed canonical data or tests.toml, a case missing property/input/expected,
  no cases left after tests.toml, no instructions;
* non-deterministic or symbolic cases: any case with scenario ``random`` or ``immutable``;
* stateful exercises: an input value that is a list of objects carrying an operation/command key
  (``operation``, ``command``, ``op``, ``action``, ``type``);
* object-style exercises: a property that is a constructor (``create``, ``new``, ``constructor``...), or a
  Python track whose instructions.append.md says its tests expect (or asks you to write) a ``class``;
* symbolic values: strings written as pseudo-code functions (``(x) -> x + 1``) or numbers written as
  expressions inside numeric lists (``[0, "pi"]``);
* one property called with differing input keys (optional or overloaded arguments);
* floats nested deeper than a flat list/object (``pytest.approx`` cannot compare them);
* canonical comments saying an order "does not matter" (or "any order"): an exact comparison would
  reject correct solutions.
"""

from __future__ import annotations

import builtins
import json
import keyword
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cet.errors import CetError
from cet.execution.importers import SkippedTask
from cet.execution.tasks import CodingTask, TaskMetadata, assign_split

SOURCE = "exercism"
LICENCE = "MIT"
URL = "https://exercism.org/tracks/python/exercises/{slug}"
UNEXPRESSIBLE_SCENARIOS = ("random", "immutable")
OPERATION_KEYS = frozenset({"operation", "command", "op", "action", "type"})
CONSTRUCTORS = frozenset({"create", "new", "constructor", "init", "initialize", "construct"})
MAX_NAME = 80  # characters of a test function name
MAX_EXAMPLE = 240  # characters of an example call in the Interface section

NO_CANONICAL = "no canonical-data.json"
BAD_CANONICAL = "malformed canonical-data.json"
BAD_TOML = "malformed tests.toml"
BAD_CASE = "a case without property/input/expected"
NO_CASES = "no cases left after tests.toml"
NO_STATEMENT = "no instructions or description"
NONDETERMINISTIC = "non-deterministic or symbolic cases (scenario random/immutable)"
STATEFUL = "stateful: input is a list of operations"
CONSTRUCTOR = "object-style: a property is a constructor"
SYMBOLIC = "symbolic values (pseudo-code functions or expressions)"
DIFFERING_ARGS = "a property is called with differing arguments"
NESTED_FLOATS = "floats nested in structures (no approximate comparison)"
TRACK_CLASS = "object-style: the Python track's tests expect a class"
FREE_ORDER = "the canonical comments leave an order free (exact comparison would be wrong)"

_LAMBDA = re.compile(r"^\s*\(?\s*\w*(\s*,\s*\w+)*\s*\)?\s*(->|=>)")
_MATH = re.compile(r"(?:pi|e|ln|log|sqrt|exp|sin|cos|tau|[\d.\s()+\-*/^])+")  # "pi", "ln(2)/2": numbers as text
_EXPECTS_CLASS = re.compile(r"\b(expects?|asks? you)\b[^.\n]*(?<![a-z])class(?![a-z])", re.I)
_FREE_ORDER = re.compile(r"(does not|doesn't|do not|don't) matter|any order|order is not (important|significant)"
                         r"|unordered", re.I)
_RAISE = re.compile(r"raise\s+([A-Za-z_]\w*)\(\s*(['\"])(.+?)\2\s*\)")


@dataclass
class Case:
    name: str  # joined descriptions
    uuid: str
    property: str
    input: dict[str, Any]
    expected: Any
    reimplements: str | None = None
    scenarios: list[str] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        if isinstance(self.expected, dict) and set(self.expected) == {"error"}:
            return str(self.expected["error"])
        return None


def import_exercism(path: str | Path) -> Iterator[CodingTask | SkippedTask]:
    """One task or skip per problem-specifications exercise under `path` (sorted by slug)."""
    spec, python = _locate(Path(path))
    practice = python / "exercises" / "practice"
    return _stream(spec, practice if practice.is_dir() else None, _difficulties(python))


def _locate(root: Path) -> tuple[Path, Path]:
    """(problem-specifications/exercises, the Python track root) for the data folder `root`."""
    if not root.exists():
        raise CetError(f"Exercism path not found: {root}")
    if not root.is_dir():
        raise CetError(f"{root} is a file; pass the Exercism data folder (holding problem-specifications/)")
    if (root / "problem-specifications" / "exercises").is_dir():
        return root / "problem-specifications" / "exercises", root / "python"
    if (root / "exercises").is_dir() and any((root / "exercises").glob("*/canonical-data.json")):
        return root / "exercises", root.parent / "python"
    raise CetError(f"not an Exercism data folder: {root} has no problem-specifications/exercises/")


def _stream(spec: Path, practice: Path | None, difficulties: dict[str, str]) -> Iterator[CodingTask | SkippedTask]:
    for folder in sorted(p for p in spec.iterdir() if p.is_dir()):
        track = practice / folder.name if practice is not None and (practice / folder.name).is_dir() else None
        yield exercise_task(folder, track, difficulties.get(folder.name))


def exercise_task(folder: Path, track: Path | None, difficulty: str | None = None) -> CodingTask | SkippedTask:
    """The task of one problem-specifications exercise folder (with its Python track folder, if any)."""
    slug = folder.name
    task_id = f"exercism/{slug}"

    def skip(reason: str, detail: str = "") -> SkippedTask:
        return SkippedTask(SOURCE, task_id, reason, detail)

    canonical = folder / "canonical-data.json"
    if not canonical.is_file():
        return skip(NO_CANONICAL)
    data = _read(canonical, json.loads)
    if isinstance(data, str) or not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        return skip(BAD_CANONICAL, data if isinstance(data, str) else "no cases list")
    cases: list[Case] = []
    bad = _flatten(data["cases"], "", cases)
    if bad:
        return skip(BAD_CASE, bad)
    toml_file = track / ".meta" / "tests.toml" if track else None
    toml = _read(toml_file, tomllib.loads) if toml_file and toml_file.is_file() else None
    if isinstance(toml, str):
        return skip(BAD_TOML, toml)
    cases = select_cases(cases, toml)
    if not cases:
        return skip(NO_CASES)
    problem = unexpressible(cases)
    if problem:
        return skip(*problem)
    free = next((m for text in _comments(data) for m in [_FREE_ORDER.search(text)] if m), None)
    if free:
        return skip(FREE_ORDER, free.string[max(free.start() - 80, 0): free.end() + 40].strip())
    instructions = _instructions(folder, track)
    if not instructions:
        return skip(NO_STATEMENT)
    expects_class = _EXPECTS_CLASS.search(_text(track / ".docs" / "instructions.append.md")) if track else None
    if expects_class:
        return skip(TRACK_CLASS, expects_class.group(0)[:200])
    module = _module_name(track, slug)
    functions = _functions(cases)
    raise_examples = _raise_examples(track)
    tests, names = render_tests(slug, module, cases, functions, raise_examples)
    return CodingTask(
        id=task_id, language="python", module=module,
        statement=instructions + "\n\n" + _interface(module, cases, functions, raise_examples),
        entry_point=next(iter(functions.values()))[0],
        signature="\n".join(f"def {name}({', '.join(params)})" for name, params in functions.values()),
        tests=tests, test_names=names, reference_solution=None,
        metadata=TaskMetadata(
            source=SOURCE, difficulty=difficulty, licence=LICENCE, url=URL.format(slug=slug),
            split=assign_split(task_id),  # type: ignore[arg-type]
            extra={"slug": slug, "python_track": track is not None, "tests_toml": toml is not None,
                   "case_count": len(cases), "functions": [name for name, _ in functions.values()]},
        ),
    )


# ------------------------------------------------------------------------------------------------ cases


def _flatten(items: list[Any], prefix: str, out: list[Case]) -> str:
    """Append the leaf cases of `items` to `out`; the description of the first bad case, or ""."""
    for item in items:
        if not isinstance(item, dict):
            return f"{prefix or 'top level'}: a case that is not an object"
        name = f"{prefix} {item.get('description', '')}".strip()
        if isinstance(item.get("cases"), list):
            bad = _flatten(item["cases"], name, out)
            if bad:
                return bad
            continue
        if not isinstance(item.get("property"), str) or not isinstance(item.get("input"), dict) \
                or "expected" not in item:
            return name or "(no description)"
        out.append(Case(name, str(item.get("uuid", "")), item["property"], item["input"], item["expected"],
                        item.get("reimplements"), list(item.get("scenarios") or [])))
    return ""


def select_cases(cases: list[Case], toml: dict[str, Any] | None) -> list[Case]:
    """The cases the Python track runs: listed in tests.toml and not excluded, minus reimplemented ones."""
    if toml is not None:
        cases = [c for c in cases if isinstance(toml.get(c.uuid), dict) and toml[c.uuid].get("include", True)]
    superseded = {c.reimplements for c in cases if c.reimplements}
    if toml is not None:
        kept = {c.uuid for c in cases}
        superseded |= {entry.get("reimplements") for uuid, entry in toml.items()
                       if uuid in kept and isinstance(entry, dict)}
    return [c for c in cases if c.uuid not in superseded]


def unexpressible(cases: list[Case]) -> tuple[str, str] | None:
    """(reason, detail) when the plain call-and-compare mapping cannot express these cases."""
    for case in cases:
        hit = [s for s in case.scenarios if s in UNEXPRESSIBLE_SCENARIOS]
        if hit:
            return NONDETERMINISTIC, f"{case.name!r} has scenario {hit[0]}"
    for case in cases:
        for key, value in case.input.items():
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value) \
                    and any(OPERATION_KEYS & set(v) for v in value):
                return STATEFUL, f"{case.property}: input {key!r} is a list of operations"
    for case in cases:
        if case.property.lower() in CONSTRUCTORS:
            return CONSTRUCTOR, f"property {case.property!r}"
    for case in cases:
        for where, value in (("input", case.input), ("expected", case.expected)):
            symbol = _symbolic(value)
            if symbol is not None:
                return SYMBOLIC, f"{case.name!r}: {where} holds {symbol!r}"
    arguments: dict[str, list[str]] = {}
    for case in cases:
        keys = list(case.input)
        if arguments.setdefault(case.property, keys) != keys:
            return DIFFERING_ARGS, f"{case.property}: {arguments[case.property]} and {keys}"
    for case in cases:
        if case.error is None and _nested_floats(case.expected):
            return NESTED_FLOATS, case.name
    return None


def _comments(data: Any) -> Iterator[str]:
    """Every `comments` text in the canonical data, at any level, each joined into one line."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "comments":
                yield " ".join(" ".join(str(v) for v in value).split()) if isinstance(value, list) else str(value)
            else:
                yield from _comments(value)
    elif isinstance(data, list):
        for item in data:
            yield from _comments(item)


def _symbolic(value: Any) -> Any:
    """A pseudo-code function string, or a list mixing numbers with strings ([0, "pi"]); else None."""
    if isinstance(value, str):
        return value if _LAMBDA.match(value) else None
    if isinstance(value, list):
        numbers = any(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        texts = [v for v in value if isinstance(v, str) and _MATH.fullmatch(v)]
        if numbers and texts:
            return texts[0]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for item in items:
        found = _symbolic(item)
        if found is not None:
            return found
    return None


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    return isinstance(value, list) and any(_has_float(v) for v in value)


def _nested_floats(value: Any) -> bool:
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return any(isinstance(v, dict | list) and _has_float(v) for v in items)


# -------------------------------------------------------------------------------------------- rendering


def snake(name: str) -> str:
    """`allergicTo` -> `allergic_to`; names that are Python keywords or builtins get a trailing `_`."""
    text = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    text = re.sub(r"[^0-9a-zA-Z_]+", "_", text).strip("_").lower() or "value"
    if text[0].isdigit():
        text = "_" + text
    return text + "_" if keyword.iskeyword(text) or hasattr(builtins, text) else text


def _functions(cases: list[Case]) -> dict[str, tuple[str, list[str]]]:
    """property -> (function name, parameter names), in order of first use."""
    functions: dict[str, tuple[str, list[str]]] = {}
    for case in cases:
        if case.property not in functions:
            functions[case.property] = (snake(case.property), [snake(key) for key in case.input])
    return functions


def _identifier(text: str) -> str:
    ident = re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_") or "case"
    return ident[:MAX_NAME].rstrip("_")


def _norm(message: str) -> str:
    return " ".join(message.lower().split()).rstrip(".")


def error_check(message: str, examples: list[tuple[str, str]]) -> tuple[str, str]:
    """(exception type for pytest.raises, the exact message to assert), from the track's raise examples."""
    for exc_type, text in examples:
        if _norm(text) == _norm(message):
            return (exc_type if _builtin_exception(exc_type) else "Exception"), text
    types = {exc_type for exc_type, _ in examples}
    if len(types) == 1 and _builtin_exception(next(iter(types))):
        return next(iter(types)), message
    return "Exception", message


def _builtin_exception(name: str) -> bool:
    value = getattr(builtins, name, None)
    return isinstance(value, type) and issubclass(value, BaseException)


def _call(case: Case, functions: dict[str, tuple[str, list[str]]]) -> str:
    return f"{functions[case.property][0]}({', '.join(repr(v) for v in case.input.values())})"


def _assertion(call: str, expected: Any) -> str:
    if expected is None or isinstance(expected, bool):
        return f"assert {call} is {expected!r}"
    if _has_float(expected):
        return f"assert {call} == pytest.approx({expected!r})"
    return f"assert {call} == {expected!r}"


def render_tests(slug: str, module: str, cases: list[Case], functions: dict[str, tuple[str, list[str]]],
                 raise_examples: list[tuple[str, str]]) -> tuple[str, list[str]]:
    """The pytest file and the names of its test functions."""
    imports = ", ".join(sorted({name for name, _ in functions.values()}))
    lines = [f'"""Tests for the Exercism exercise {slug}, generated from its canonical data."""', "",
             "import pytest", "", f"from {module} import {imports}"]
    names: list[str] = []
    seen: set[str] = set()
    for case in cases:
        base = name = f"test_{_identifier(case.name)}"
        number = 1
        while name in seen:
            number += 1
            name = f"{base}_{number}"
        seen.add(name)
        names.append(name)
        lines += ["", "", f"def {name}():"]
        call = _call(case, functions)
        if case.error is None:
            lines.append(f"    {_assertion(call, case.expected)}")
            continue
        exc_type, message = error_check(case.error, raise_examples)
        lines += [f"    with pytest.raises({exc_type}) as excinfo:", f"        {call}",
                  f"    assert str(excinfo.value) == {message!r}"]
    return "\n".join(lines) + "\n", names


def _interface(module: str, cases: list[Case], functions: dict[str, tuple[str, list[str]]],
               raise_examples: list[tuple[str, str]]) -> str:
    defs = "\n".join(f"def {name}({', '.join(params)}): ..." for name, params in functions.values())
    examples = []
    for prop in functions:
        case = next((c for c in cases if c.property == prop and c.error is None), None)
        if case is not None:
            relation = "is" if case.expected is None or isinstance(case.expected, bool) else "=="
            example = f"{_call(case, functions)} {relation} {case.expected!r}"
            if len(example) <= MAX_EXAMPLE:
                examples.append(f"- `{example}`")
    text = f"## Interface\n\nThe tests import these functions from `{module}.py`:\n\n```python\n{defs}\n```\n"
    if examples:
        text += "\nExamples from the tests:\n\n" + "\n".join(examples) + "\n"
    errors: dict[tuple[str, str, str], str] = {}
    for case in cases:
        if case.error is not None:
            exc_type, message = error_check(case.error, raise_examples)
            errors.setdefault((case.property, exc_type, message), _call(case, functions))
    if errors:
        text += ("\nErrors: the tests expect an exception of the named type (or a subclass) whose message, "
                 "`str(exception)`, is exactly the one shown:\n\n")
        text += "\n".join(f"- `{call}` raises `{exc_type}({message!r})`" if len(call) <= MAX_EXAMPLE
                           else f"- `{functions[prop][0]}(...)` raises `{exc_type}({message!r})`"
                           for (prop, exc_type, message), call in errors.items()) + "\n"
    return text


# ------------------------------------------------------------------------------------------------ files


def _read(file: Path, parse: Any) -> Any:
    """The parsed file, or a one-line description of why it cannot be read (a str)."""
    try:
        return parse(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        return f"{file.name}: {e}"


def _text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8").strip() if file.is_file() else ""
    except (OSError, UnicodeDecodeError):
        return ""


def _instructions(folder: Path, track: Path | None) -> str:
    if track is not None and _text(track / ".docs" / "instructions.md"):
        parts = [_text(track / ".docs" / "instructions.md"), _text(track / ".docs" / "instructions.append.md")]
        return "\n\n".join(p for p in parts if p)
    return _text(folder / "instructions.md") or _text(folder / "description.md")


def _raise_examples(track: Path | None) -> list[tuple[str, str]]:
    """(exception type, message) of each `raise T("message")` in the track's instructions.append.md."""
    if track is None:
        return []
    return [(m.group(1), m.group(3)) for m in _RAISE.finditer(_text(track / ".docs" / "instructions.append.md"))]


def _module_name(track: Path | None, slug: str) -> str:
    config = _read(track / ".meta" / "config.json", json.loads) if track else None
    if isinstance(config, dict):
        solution = (config.get("files") or {}).get("solution") or []
        if solution and isinstance(solution[0], str):
            name = solution[0].removesuffix(".py")
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                return name
    return slug.replace("-", "_")


def _difficulties(python: Path) -> dict[str, str]:
    """slug -> difficulty from the Python track's config.json, when the track root has one."""
    config = _read(python / "config.json", json.loads) if (python / "config.json").is_file() else None
    if not isinstance(config, dict):
        return {}
    found = {}
    for entry in (config.get("exercises") or {}).get("practice") or []:
        if isinstance(entry, dict) and entry.get("slug") and entry.get("difficulty") is not None:
            found[str(entry["slug"])] = str(entry["difficulty"])
    return found
