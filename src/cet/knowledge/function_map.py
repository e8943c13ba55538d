"""Which tests exercise which function or method of a Python repository: the code-to-test map at function level.

`file_map` (test_mapping.py) says which test files import which source files; this says, for every test function,
which library functions and methods it reaches. Two ways, one result shape (pytest node id -> qualnames):

`traced_map` runs the repository's tests under coverage.py with one context per test (pytest-cov's
`--cov-context=test`), in bubblewrap without network (never unsandboxed unless asked), and names each function
whose body ran during a test's setup or call. It is exact for what ran: against 447 (test, function) pairs of two
real libraries, labelled by reading the code, it agreed on every pair (bench/function_map_labels.py,
docs/benchmarks.md; recall there is within the pool of pairs the labels were drawn from).

`static_map` reads the code only, for repositories whose tests cannot run here (missing dependencies, no Python):
    direct      what the test's body calls or references, resolved through its module's imports (aliases,
                `from m import f`, a package's re-exports), `module.f`, `Class.method`, `Class(...)` (its
                `__init__`/`__post_init__`), `self.m()` in a class (and its bases), a local bound to `Class(...)`
    fixtures    pytest fixtures the test (or its fixtures) names as parameters, from its module and the conftest.py
                files above it, and a test class's setUp/setup_method and its base classes
    helpers     non-test functions of the test files that the test calls, followed like the test
    reach       the closure over the library's own call graph, following only the calls a library function always
                makes (not those in if/else branches or except handlers)
It is an approximation and measured as one: it misses run-time machinery (toolz's `curry`) and over-reaches into
protocol methods a test never triggers.

`map_repository` picks: traced when the tests run, else static, and says which it used.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from cet.errors import CetError
from cet.knowledge.test_mapping import RepoIndex, is_test_file

INIT_METHODS = ("__init__", "__post_init__", "__new__")
PROTOCOL_METHODS = ("__call__", "__iter__", "__next__", "__enter__", "__exit__", "__getitem__", "__len__",
                    "__contains__")
SETUP_METHODS = ("setUp", "setup_method", "setUpClass", "setup_class", "setup")


@dataclass
class Function:
    qualname: str  # "pkg.module:Class.method"
    path: str
    line: int  # the first line of the definition, decorators included (a code object's co_firstlineno)
    node: ast.FunctionDef | ast.AsyncFunctionDef
    module: str
    cls: str | None = None
    test: bool = False  # defined in a test file


@dataclass
class _Module:
    name: str
    path: str
    scope: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> ("def"|"class"|"module"|"from", x)
    classes: dict[str, list[str]] = field(default_factory=dict)  # class -> base expressions (dotted names)
    stars: list[str] = field(default_factory=list)  # modules this one imports * from


class PythonRepo:
    """The Python files of a repository (relative path -> source), parsed once."""

    def __init__(self, files: dict[str, str]) -> None:
        self.index = RepoIndex(files)
        self.functions: dict[str, Function] = {}
        self.modules: dict[str, _Module] = {}
        self.by_path: dict[str, _Module] = {}
        self.methods: dict[str, dict[str, str]] = defaultdict(dict)  # "mod:Class" -> method -> qualname
        self.fixtures: dict[str, dict[str, str]] = defaultdict(dict)  # directory -> fixture name -> qualname
        self.skipped: dict[str, str] = {}
        self.files = files
        self.trees: dict[str, ast.Module] = {}  # path -> its parsed tree, for whoever reads the repository next
        for path, source in sorted(files.items()):
            if not path.endswith(".py"):
                continue
            try:
                tree = ast.parse(source)
            except (SyntaxError, ValueError) as e:
                self.skipped[path] = f"does not parse: {e}"
                continue
            names = sorted(self.index._module_names(path), key=len)
            module = _Module(names[0] if names else path, path)
            for alias in names:
                self.modules.setdefault(alias, module)
            self.by_path[path] = module
            self.trees[path] = tree
            self._collect(module, tree, is_test_file(path))

    # ----------------------------------------------------------------------------------------------- parsing

    def _collect(self, module: _Module, tree: ast.Module, test: bool) -> None:
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                qualname = f"{module.name}:{node.name}"
                self._add(Function(qualname, module.path, _first_line(node), node, module.name, None, test))
                module.scope[node.name] = ("def", qualname)
                if _is_fixture(node):
                    self.fixtures[str(PurePosixPath(module.path).parent)][_fixture_name(node)] = qualname
            elif isinstance(node, ast.ClassDef):
                key = f"{module.name}:{node.name}"
                module.scope[node.name] = ("class", key)
                module.classes[node.name] = [_dotted(b) for b in node.bases if _dotted(b)]
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                        qualname = f"{key}.{item.name}"
                        self._add(Function(qualname, module.path, _first_line(item), item, module.name, node.name,
                                           test))
                        self.methods[key][item.name] = qualname
                        if _is_fixture(item):
                            self.fixtures[f"{module.path}::{node.name}"][_fixture_name(item)] = qualname
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        module.scope[alias.asname] = ("module", alias.name)
                    else:
                        top = alias.name.split(".")[0]
                        module.scope.setdefault(top, ("module", top))
            elif isinstance(node, ast.ImportFrom):
                base = self._absolute(module, node.module or "", node.level)
                for alias in node.names:
                    if alias.name == "*":
                        module.stars.append(base)
                    else:
                        module.scope[alias.asname or alias.name] = ("from", f"{base}.{alias.name}" if base
                                                                    else alias.name)
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                target = _dotted(node.value)  # `name = other_function` aliases
                if target:
                    module.scope.setdefault(node.targets[0].id, ("alias", target))

    def _absolute(self, module: _Module, dotted: str, level: int) -> str:
        if not level:
            return dotted
        package = module.name.split(".")
        if not module.path.endswith("__init__.py"):
            package = package[:-1]
        package = package[: len(package) - (level - 1)] if level > 1 else package
        return ".".join([*package, dotted] if dotted else package)

    def _add(self, function: Function) -> None:
        self.functions[function.qualname] = function

    # ----------------------------------------------------------------------------------------------- resolving

    def resolve(self, module: str, name: str, depth: int = 0) -> tuple[str, str] | None:
        """What `name` means in `module`: ("def", qualname), ("class", "mod:Class") or ("module", name)."""
        found = self.modules.get(module)
        if found is None or depth > 8:
            return None
        kind, target = found.scope.get(name, ("", ""))
        if not kind:  # `from .more import *`: the name may come from there
            return next((r for r in (self.resolve(star, name, depth + 1) for star in found.stars) if r), None)
        if kind in ("def", "class"):
            return kind, target
        if kind == "module":
            return ("module", target) if target in self.modules else None
        if kind in ("from", "alias"):
            return self.resolve_dotted(target, module if kind == "alias" else None, depth + 1)
        return None

    def resolve_dotted(self, dotted: str, module: str | None = None, depth: int = 0) -> tuple[str, str] | None:
        """A dotted name (`pkg.mod.f`, `pkg.Class.m`, or in `module`'s scope `alias.f`)."""
        parts = dotted.split(".")
        if module is not None:
            head = self.resolve(module, parts[0], depth)
            if head is None:
                return None
            return self._walk(head, parts[1:], depth)
        if dotted in self.modules:
            return "module", dotted
        for size in range(len(parts) - 1, 0, -1):
            if ".".join(parts[:size]) in self.modules:
                return self._walk(("module", ".".join(parts[:size])), parts[size:], depth)
        return None

    def _walk(self, head: tuple[str, str], rest: list[str], depth: int) -> tuple[str, str] | None:
        for part in rest:
            kind, target = head
            if kind == "module":
                step = self.resolve(target, part, depth + 1)
                if step is None and f"{target}.{part}" in self.modules:
                    step = ("module", f"{target}.{part}")
            elif kind == "class":
                method = self.method(target, part)
                step = ("def", method) if method else None
            else:
                step = None
            if step is None:
                return None
            head = step
        return head

    def method(self, cls: str, name: str, seen: frozenset[str] = frozenset()) -> str | None:
        """`cls`'s method `name`, its own or a repository base class's (method resolution order, depth first)."""
        if cls in seen:
            return None
        own = self.methods.get(cls, {}).get(name)
        if own:
            return own
        module, _, short = cls.partition(":")
        for base in self.modules[module].classes.get(short, []) if module in self.modules else []:
            found = self.resolve_dotted(base, module)
            if found and found[0] == "class":
                inherited = self.method(found[1], name, seen | {cls})
                if inherited:
                    return inherited
        return None

    def bases(self, cls: str) -> list[str]:
        module, _, short = cls.partition(":")
        out = []
        for base in self.modules[module].classes.get(short, []) if module in self.modules else []:
            found = self.resolve_dotted(base, module)
            if found and found[0] == "class":
                out.append(found[1])
        return out

    def _construct(self, cls: str) -> set[str]:
        """What building an instance of `cls` runs, and what Python calls on it without naming it: its
        initialisers, the protocol methods an instance is used through (call, iteration, context, item access,
        descriptor access) and its properties."""
        found = {m for m in (self.method(cls, name) for name in (*INIT_METHODS, *PROTOCOL_METHODS)) if m}
        for qualname in self._class_methods(cls):
            descriptor = self._property_of(self.functions[qualname])
            if descriptor is not None:
                found.add(qualname)
                found |= {descriptor} if descriptor else set()
        return found

    def _class_methods(self, cls: str, seen: frozenset[str] = frozenset()) -> list[str]:
        if cls in seen:
            return []
        own = list(self.methods.get(cls, {}).values())
        return own + [m for base in self.bases(cls) for m in self._class_methods(base, seen | {cls})]

    def _property_of(self, function: Function) -> str | None:
        """None when `function` is no property; else "" for a built-in property, or the `__get__` of the
        repository's descriptor class that decorates it (it runs on every access)."""
        for decorator in function.node.decorator_list:
            name = _dotted(decorator.func if isinstance(decorator, ast.Call) else decorator)
            if name.split(".")[-1] in ("property", "cached_property"):
                return ""
            found = self.resolve_dotted(name, function.module) if name else None
            if found and found[0] == "def":  # a factory of the repository's descriptor (`instanceproperty`)
                made = [self.resolve(function.module, n.id) for n in ast.walk(self.functions[found[1]].node)
                        if isinstance(n, ast.Name)]
                found = next((m for m in made if m and m[0] == "class"), None)
            if found and found[0] == "class" and self.method(found[1], "__get__"):
                return self.method(found[1], "__get__") or ""
        return None

    def decorated_by(self, function: Function) -> set[str]:
        """What calling a function decorated by a repository class runs (the decorator's instance stands in)."""
        found: set[str] = set()
        for decorator in function.node.decorator_list:
            name = _dotted(decorator.func if isinstance(decorator, ast.Call) else decorator)
            target = self.resolve_dotted(name, function.module) if name else None
            if target and target[0] == "class":
                found |= self._construct(target[1])
        return found

    def uses(self, function: Function, certain: bool = False, bound: dict[str, str] | None = None) -> set[str]:
        """The functions and methods `function`'s body calls or references, resolved (see the module doc); with
        `certain`, only those outside conditional branches (if/else, except handlers, the right of and/or, a
        conditional expression): what runs whenever the function does."""
        found: set[str] = set()
        module = function.module
        own_class = f"{module}:{function.cls}" if function.cls else None
        bound = dict(bound or {})  # local name -> class it was built from (a fixture parameter: what it returns)
        # the body only: decorators and default values run once, when the definition runs, not when it is called
        for node in (n for statement in function.node.body for n in _walk(statement, certain)):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                made = self._expression(node.value.func, module, own_class, bound)
                if made and made[0] == "class":
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            bound[target.id] = made[1]
            if isinstance(node, ast.Name | ast.Attribute) and isinstance(node.ctx, ast.Load):
                target = self._expression(node, module, own_class, bound)
                if target is None:
                    continue
                if target[0] == "def":
                    found.add(target[1])
                    found |= self.decorated_by(self.functions[target[1]])
                elif target[0] == "class":
                    found |= self._construct(target[1])
        found.discard(function.qualname)
        return found

    def _expression(self, node: ast.expr, module: str, own_class: str | None, bound: dict[str, str]
                    ) -> tuple[str, str] | None:
        if isinstance(node, ast.Name):
            return self.resolve(module, node.id)
        if not isinstance(node, ast.Attribute):
            return None
        if isinstance(node.value, ast.Name):
            owner = node.value.id
            if owner in ("self", "cls") and own_class:
                method = self.method(own_class, node.attr)
                return ("def", method) if method else None
            if owner in bound:
                method = self.method(bound[owner], node.attr)
                return ("def", method) if method else None
        if isinstance(node.value, ast.Call):  # `Class(...).method`
            made = self._expression(node.value.func, module, own_class, bound)
            if made and made[0] == "class":
                method = self.method(made[1], node.attr)
                return ("def", method) if method else None
        dotted = _dotted(node)
        return self.resolve_dotted(dotted, module) if dotted else None

    # ------------------------------------------------------------------------------------------------- tests

    def tests(self) -> list[tuple[str, Function]]:
        """(pytest node id, function) of every test: `test*` functions of test files, and `test*` methods of their
        classes, inherited ones included (pytest runs a base class's tests again under each subclass)."""
        out = []
        for function in self.functions.values():
            name = function.node.name
            if not function.test or not name.startswith("test") or _is_fixture(function.node) or function.cls:
                continue
            out.append((f"{function.path}::{name}", function))
        test_modules = {m.name: m for m in self.by_path.values() if is_test_file(m.path)}
        for cls in sorted({f"{name}:{short}" for name, m in test_modules.items() for short in m.classes
                           if self._collected_class(f"{name}:{short}")}):
            module, _, short = cls.partition(":")
            path = self.modules[module].path
            for qualname in self._class_methods(cls):
                method = self.functions[qualname]
                name = method.node.name
                if name.startswith("test") and not _is_fixture(method.node) and self.method(cls, name) == qualname:
                    out.append((f"{path}::{short}::{name}", replace(method, cls=short, module=module)
                                if method.cls != short else method))
        return sorted(out, key=lambda pair: pair[0])

    def _collected_class(self, cls: str, seen: frozenset[str] = frozenset()) -> bool:
        """Whether pytest collects the class's tests: a `Test*` class, or a unittest.TestCase whatever its name."""
        module, _, short = cls.partition(":")
        if short.startswith("Test") and not seen:
            return True
        if cls in seen or module not in self.modules:
            return False
        for base in self.modules[module].classes.get(short, []):
            if base.split(".")[-1] == "TestCase":
                return True
            found = self.resolve_dotted(base, module)
            if found and found[0] == "class" and self._collected_class(found[1], seen | {cls}):
                return True
        return False

    def fixture_class(self, fixture: str) -> str | None:
        """The repository class a fixture returns or yields an instance of (`return Parser(";")`), if any."""
        function = self.functions[fixture]
        for node in ast.walk(function.node):
            if isinstance(node, ast.Return | ast.Yield) and isinstance(node.value, ast.Call):
                made = self._expression(node.value.func, function.module, None, {})
                if made and made[0] == "class":
                    return made[1]
        return None

    def fixture_for(self, function: Function, name: str) -> str | None:
        """The fixture a parameter names: the test class's, the module's, then conftest.py's up the tree."""
        if function.cls:
            found = self.fixtures.get(f"{function.path}::{function.cls}", {}).get(name)
            if found:
                return found
        directory = PurePosixPath(function.path).parent
        module_fixtures = {k: v for k, v in self.fixtures.get(str(directory), {}).items()
                           if self.functions[v].path in (function.path, str(directory / "conftest.py"))}
        if name in module_fixtures:
            return module_fixtures[name]
        for parent in directory.parents:
            conftest = str(parent / "conftest.py")
            found = next((v for k, v in self.fixtures.get(str(parent), {}).items()
                          if k == name and self.functions[v].path == conftest), None)
            if found:
                return found
        return None

    def reach(self, function: Function) -> set[str]:
        """The library functions a test reaches (its fixtures, setup, helpers and the library's call graph)."""
        start = [function.qualname]
        if function.cls:
            cls = f"{function.module}:{function.cls}"
            start += [m for m in (self.method(cls, name) for name in SETUP_METHODS) if m]
        seen: set[str] = set()
        library: set[str] = set()
        todo = list(start)
        while todo:
            current = todo.pop()
            if current in seen or current not in self.functions:
                continue
            seen.add(current)
            fn = self.functions[current]
            if not fn.test:
                library.add(current)
            fixtures: dict[str, str] = {}
            if fn.test:  # fixtures are named by the parameters of tests and of other fixtures
                for arg in [*fn.node.args.posonlyargs, *fn.node.args.args, *fn.node.args.kwonlyargs]:
                    fixture = self.fixture_for(fn, arg.arg)
                    if fixture:
                        todo.append(fixture)
                        made = self.fixture_class(fixture)
                        if made:
                            fixtures[arg.arg] = made
            todo.extend(self.uses(fn, certain=not fn.test and CERTAIN_ONLY, bound=fixtures))
            if fn.test:
                for decorator in fn.node.decorator_list:  # @pytest.mark.usefixtures("name")
                    if isinstance(decorator, ast.Call) and _dotted(decorator.func).endswith("usefixtures"):
                        for arg in decorator.args:
                            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                                fixture = self.fixture_for(fn, arg.value)
                                if fixture:
                                    todo.append(fixture)
        return library


@dataclass
class FunctionMap:
    """A repository's tests -> the library functions each one exercises, and how that was found."""

    tests: dict[str, set[str]]  # pytest node id (parameters folded) -> qualnames "pkg.module:Class.method"
    method: str  # "traced" | "static"
    functions: int  # library functions and methods the repository defines
    skipped: dict[str, str] = field(default_factory=dict)  # file -> why it was not read
    problem: str | None = None  # why tracing was not used, when it was asked for and fell back
    repo: PythonRepo | None = field(default=None, repr=False, compare=False)  # the parsed repository it was made from

    def by_function(self) -> dict[str, list[str]]:
        """qualname -> the sorted node ids of the tests that exercise it."""
        out: dict[str, list[str]] = defaultdict(list)
        for node_id, functions in sorted(self.tests.items()):
            for qualname in functions:
                out[qualname].append(node_id)
        return dict(sorted(out.items()))

    def to_json(self) -> dict:
        by_function = self.by_function()
        return {"method": self.method, "problem": self.problem, "tests": len(self.tests),
                "functions": self.functions, "functions_tested": len(by_function),
                "skipped": self.skipped, "map": by_function}


IGNORED_PARTS = frozenset({"docs", "doc", ".tox", ".git", "build", "dist", "__pycache__", ".venv", "venv"})


def read_python_files(root: Path, max_file_bytes: int = 2_000_000) -> tuple[dict[str, str], dict[str, str]]:
    """The repository's Python files (relative path -> text) and those skipped (path -> why): documentation,
    build and virtual-environment folders are left out, and so are files too large or not UTF-8."""
    files: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if IGNORED_PARTS & set(relative.parts[:-1]) or not path.is_file():
            continue
        if path.stat().st_size > max_file_bytes:
            skipped[str(relative)] = f"larger than {max_file_bytes} bytes"
            continue
        try:
            files[str(relative)] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            skipped[str(relative)] = "not UTF-8"
    return files, skipped


def test_files(files: dict[str, str]) -> list[str]:
    """The files pytest collects by default: test_*.py and *_test.py inside the repository's test files."""
    return sorted(p for p in files if is_test_file(p) and (PurePosixPath(p).name.startswith("test_")
                                                           or PurePosixPath(p).name.endswith("_test.py")))


def map_repository(root: Path, method: str = "auto", per_test_s: int = 20, timeout: float = 900.0) -> FunctionMap:
    """The function-level map of the repository at `root`: `method` "traced", "static", or "auto" (traced, and
    static when the tests cannot be traced here, with the reason in `problem`)."""
    if method not in ("auto", "traced", "static"):
        raise CetError(f"unknown mapping method {method!r}: use auto, traced or static")
    if not root.is_dir():
        raise CetError(f"no repository at {root}")
    files, skipped = read_python_files(root)
    repo = PythonRepo(files)
    skipped |= repo.skipped
    functions = sum(1 for f in repo.functions.values() if not f.test)
    if not test_files(files):
        raise CetError(f"{root} has no pytest test files (test_*.py or *_test.py)")
    problem = None
    if method in ("auto", "traced"):
        try:
            traced = traced_map(root, files, test_files(files), timeout=timeout, per_test_s=per_test_s, repo=repo)
            if traced:
                return FunctionMap(traced, "traced", functions, skipped, repo=repo)
            problem = "the traced run recorded no test (none ran, or every one failed to import)"
        except CetError as e:
            problem = str(e)
        if method == "traced":
            raise CetError(problem)
    return FunctionMap(static_map(files, repo), "static", functions, skipped, problem, repo)


def static_map(files: dict[str, str], repo: PythonRepo | None = None) -> dict[str, set[str]]:
    """Test node id -> the library functions it reaches (statically); `repo`: `files` already parsed."""
    repo = repo or PythonRepo(files)
    return {node_id: repo.reach(function) for node_id, function in repo.tests()}


# --------------------------------------------------------------------------------------------- the measured truth

_COVERAGE_RC = """[run]
branch = False
data_file = {data}
"""


def traced_map(root: Path, files: dict[str, str], test_paths: Iterable[str], timeout: float = 900.0,
               per_test_s: int = 20, allow_unsandboxed: bool = False, repo: PythonRepo | None = None
               ) -> dict[str, set[str]]:
    """Test node id -> the library functions whose body ran during it (its setup and call), measured by running
    pytest on `test_paths` of the repository at `root` under coverage.py with one context per test (pytest-cov's
    `--cov-context=test`), in bubblewrap without network (refused without it unless `allow_unsandboxed`).
    Parametrized cases fold into their
    test function's id; a test that runs longer than `per_test_s` is stopped (pytest-timeout) and keeps what ran."""
    root = root.resolve()
    repo = repo or PythonRepo(files)
    owner = _line_owners(repo)
    with tempfile.TemporaryDirectory(prefix="cet-trace-") as work:
        data = Path(work) / "coverage.sqlite"
        rc = Path(work) / "coveragerc"
        rc.write_text(_COVERAGE_RC.format(data=data), encoding="utf-8")
        ini = Path(work) / "pytest.ini"  # the repository's own pytest settings (addopts, plugins) are not ours
        ini.write_text("[pytest]\n", encoding="utf-8")
        paths = [str(root / p) for p in sorted(test_paths)]
        source_roots = [str(root / d) for d in ("src", "") if (root / d).is_dir()]
        env = {**os.environ, "COVERAGE_FILE": str(data), "PYTHONPATH": os.pathsep.join(source_roots),
               "PYTHONDONTWRITEBYTECODE": "1"}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "pytest_cov", "-p", "no:cacheprovider",
                   "-p", "no:legacypath",  # as the sandbox's runner: a test that needs tmpdir is not mapped
                   f"--cov={root}", "--cov-context=test", "--cov-report=", f"--cov-config={rc}",
                   f"--timeout={per_test_s}", "-c", str(ini), "--rootdir", str(root),
                   "--continue-on-collection-errors", *paths]
        bwrap = shutil.which("bwrap")
        if not bwrap and not allow_unsandboxed:
            raise CetError("bubblewrap (bwrap) is not installed: a repository's tests are not run unsandboxed "
                           "unless asked (allow_unsandboxed)")
        if bwrap:
            # a fresh /tmp hides what lies under it: the repository, the work dir and this interpreter's own
            # environment (a checkout or virtual environment under /tmp) are bound back over it
            python = [a for prefix in sorted({sys.prefix, sys.base_prefix}) for a in ("--ro-bind", prefix, prefix)]
            command = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", *python,
                       "--ro-bind", str(root), str(root), "--bind", work, work, "--unshare-net", "--die-with-parent",
                       *command]
        try:
            done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired as e:
            raise CetError(f"tracing the tests of {root} took longer than {timeout:.0f} s") from e
        if not data.is_file():
            raise CetError(f"tracing the tests of {root} failed: {(done.stdout + done.stderr).strip()[-500:]}")
        from coverage import CoverageData

        measured = CoverageData(str(data))
        measured.read()
        out: dict[str, set[str]] = defaultdict(set)
        for filename in measured.measured_files():
            path = os.path.relpath(filename, root)
            lines = owner.get(path)
            if not lines:
                continue
            for line, contexts in measured.contexts_by_lineno(filename).items():
                function = lines.get(line)
                if function is None:
                    continue
                for context in contexts:
                    node_id, _, phase = context.rpartition("|")
                    if node_id and phase in ("setup", "run"):
                        out[node_id.split("[", 1)[0]].add(function)
    return dict(out)


def _line_owners(repo: PythonRepo) -> dict[str, dict[int, str]]:
    """path -> line -> the library function whose body holds it (the innermost definition; lines of a nested
    function or class belong to nobody the map names, and neither does a definition's own header)."""
    owners: dict[str, dict[int, str]] = {}
    named = {(f.path, f.node.lineno): f.qualname for f in repo.functions.values() if not f.test}
    for path in repo.by_path:
        if is_test_file(path):
            continue
        lines: dict[int, str | None] = {}
        definitions = sorted((n for n in ast.walk(repo.trees[path])
                              if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)),
                             key=lambda n: n.lineno)
        for node in definitions:  # outer first: an inner definition takes its own lines over
            name = named.get((path, node.lineno)) if not isinstance(node, ast.ClassDef) else None
            for line in range(node.body[0].lineno, (node.end_lineno or node.body[0].lineno) + 1):
                lines[line] = name
        owners[path] = {line: name for line, name in lines.items() if name}
    return owners


def compare(predicted: dict[str, set[str]], truth: dict[str, set[str]]) -> dict[str, float | int]:
    """Precision and recall of the (test, function) pairs, over the tests both maps know; and of "which
    functions have a test at all"."""
    tests = predicted.keys() & truth.keys()
    guessed = {(t, f) for t in tests for f in predicted[t]}
    real = {(t, f) for t in tests for f in truth[t]}
    hit = len(guessed & real)
    tested_guess = {f for t in tests for f in predicted[t]}
    tested_real = {f for t in tests for f in truth[t]}
    return {"tests": len(tests), "pairs_true": len(real), "pairs_predicted": len(guessed),
            "pair_precision": hit / len(guessed) if guessed else 0.0, "pair_recall": hit / len(real) if real else 0.0,
            "functions_true": len(tested_real), "function_precision":
                len(tested_guess & tested_real) / len(tested_guess) if tested_guess else 0.0,
            "function_recall": len(tested_guess & tested_real) / len(tested_real) if tested_real else 0.0}


# ------------------------------------------------------------------------------------------------------- helpers

CERTAIN_ONLY = True  # past the tests, follow only the calls a library function always makes


def _walk(node: ast.AST, certain: bool) -> list[ast.AST]:
    """`ast.walk`, leaving out (with `certain`) what runs only on some paths."""
    if not certain:
        return list(ast.walk(node))
    out, todo = [], [node]
    while todo:
        current = todo.pop()
        out.append(current)
        if isinstance(current, ast.If | ast.IfExp):
            todo.append(current.test)  # the condition always runs; its branches may not
            continue
        if isinstance(current, ast.Try):
            todo.extend([*current.body, *current.finalbody])
            continue
        if isinstance(current, ast.BoolOp):
            todo.append(current.values[0])
            continue
        todo.extend(ast.iter_child_nodes(current))
    return out


def _first_line(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    return min([node.lineno, *(d.lineno for d in node.decorator_list)])


def dotted_name(node: ast.AST) -> str:
    """`a.b.c` for a name or attribute chain, else ""."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = dotted_name(node.value)
        return f"{head}.{node.attr}" if head else ""
    return ""


_dotted = dotted_name


def _is_fixture(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if _dotted(target).split(".")[-1] == "fixture":
            return True
    return False


def _fixture_name(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    for decorator in node.decorator_list:
        if isinstance(decorator, ast.Call) and _dotted(decorator.func).split(".")[-1] == "fixture":
            for keyword in decorator.keywords:
                if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                    return str(keyword.value.value)
    return node.name
