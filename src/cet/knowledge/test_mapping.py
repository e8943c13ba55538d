"""Which test files exercise which source files of a repository: the start of a code-to-test map.

A test exercises a source file when it imports it (Python modules, src layout included; relative
JavaScript/TypeScript specifiers; Ruby `require_relative`), or when it imports a Python package and calls
or imports a name that a source file inside that package defines at its top level. A Go test exercises
the other Go files of its directory (same package). Tests are analysed first and kept small
(`TestUsage`), so a reader can stream the source files afterwards.
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from cet.knowledge.code_chunking import extract_imports, python_used_names, split_definitions, top_level_names

TEST_DIRS = frozenset({"tests", "test", "__tests__", "spec"})
_TEST_NAME = re.compile(
    r"^(?:test_.+\.py|.+_test\.py|.+_test\.go|.+\.(?:test|spec)\.[cm]?[jt]sx?|.+_spec\.rb|.+_test\.rb"
    r"|.+Tests?\.(?:java|kt|cs|scala|swift)|conftest\.py)$"
)
JS_EXTENSIONS = (".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".mts", ".cts")
_JS_TO_TS = {".js": (".ts", ".tsx"), ".jsx": (".tsx",), ".mjs": (".mts",), ".cjs": (".cts",)}
_JS_LANGUAGES = frozenset({"javascript", "typescript", "tsx"})


def is_test_file(relpath: str) -> bool:
    """Whether a repository path is a test file by its name or by a test directory above it."""
    path = PurePosixPath(relpath)
    return bool(_TEST_NAME.match(path.name)) or any(part in TEST_DIRS for part in path.parts[:-1])


@dataclass
class TestUsage:
    """What one test file touches: source files it imports, packages it imports, names it uses."""

    __test__ = False  # not a pytest test class

    path: str
    language: str
    targets: set[str] = field(default_factory=set)
    packages: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)


class RepoIndex:
    """The repository's file paths, with the Python module names each file can be imported as."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths = set(paths)
        python = sorted(p for p in self.paths if p.endswith((".py", ".pyi")))
        self.package_dirs = {posixpath.dirname(p) for p in python if posixpath.basename(p) == "__init__.py"}
        self.modules: dict[str, list[str]] = defaultdict(list)
        for path in python:
            for name in self._module_names(path):
                if path not in self.modules[name]:
                    self.modules[name].append(path)

    def _module_names(self, path: str) -> set[str]:
        parts = list(PurePosixPath(path).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not parts:
            return set()
        names = {".".join(parts)}
        if parts[0] in ("src", "lib", "python") and len(parts) > 1:
            names.add(".".join(parts[1:]))
        root = len(parts) - 1  # index of the first part below the import root (sys.path entry)
        while root > 0 and "/".join(parts[:root]) in self.package_dirs:
            root -= 1
        names.add(".".join(parts[root:]))
        return names

    def resolve_python(self, dotted: str, from_path: str) -> list[str]:
        """Repository files a Python import of `dotted` (as `extract_imports` writes it) refers to."""
        level = len(dotted) - len(dotted.lstrip("."))
        parts = [p for p in dotted[level:].split(".") if p]
        if level:
            base = PurePosixPath(from_path).parent
            for _ in range(level - 1):
                base = base.parent
            return self._relative_python(str(base), parts)
        for size in range(len(parts), 0, -1):
            candidates = self.modules.get(".".join(parts[:size]))
            if candidates:
                return _nearest(candidates, from_path)
        return []

    def _relative_python(self, base: str, parts: list[str]) -> list[str]:
        for size in range(len(parts), -1, -1):
            stem = posixpath.normpath(posixpath.join(base, *parts[:size]))
            for candidate in (stem + ".py", posixpath.join(stem, "__init__.py")):
                if candidate in self.paths:
                    return [candidate]
        return []

    def resolve_relative(self, specifier: str, from_path: str, extensions: tuple[str, ...]) -> str | None:
        """The repository file a relative specifier (`./util`, `../lib/x.js`) names, trying extensions."""
        if not specifier.startswith(("./", "../")):
            return None
        target = posixpath.normpath(posixpath.join(posixpath.dirname(from_path), specifier))
        if target.startswith(".."):
            return None
        stem, suffix = posixpath.splitext(target)
        candidates = [target, *(target + ext for ext in extensions)]
        candidates += [stem + ext for ext in _JS_TO_TS.get(suffix, ())]
        candidates += [posixpath.join(target, "index" + ext) for ext in extensions]
        return next((c for c in candidates if c in self.paths), None)


def _nearest(candidates: list[str], from_path: str) -> list[str]:
    """The candidates sharing the longest directory prefix with `from_path` (ties all kept)."""
    origin = PurePosixPath(from_path).parent.parts

    def shared(path: str) -> int:
        count = 0
        for a, b in zip(PurePosixPath(path).parent.parts, origin, strict=False):
            if a != b:
                break
            count += 1
        return count

    best = max(shared(c) for c in candidates)
    return [c for c in candidates if shared(c) == best]


def analyze_test(path: str, text: str, language: str | None, index: RepoIndex) -> TestUsage:
    """What the test file at `path` imports and uses, resolved against the repository."""
    usage = TestUsage(path, language or "")
    if language == "python":
        for dotted in extract_imports(text, "python"):
            for target in index.resolve_python(dotted, path):
                usage.targets.add(target)
                if posixpath.basename(target) == "__init__.py":
                    usage.packages.add(posixpath.dirname(target))
        usage.names = python_used_names(text)
    elif language in _JS_LANGUAGES:
        for specifier in extract_imports(text, language):
            target = index.resolve_relative(specifier, path, JS_EXTENSIONS)
            if target is not None:
                usage.targets.add(target)
    elif language == "ruby":
        for specifier in extract_imports(text, "ruby"):
            relative = specifier if specifier.startswith(".") else None
            target = index.resolve_relative(relative, path, (".rb",)) if relative else None
            if target is None and not specifier.startswith("."):
                target = next(
                    (c for c in (f"lib/{specifier}.rb", f"{specifier}.rb") if c in index.paths), None
                )
            if target is not None:
                usage.targets.add(target)
    elif language == "go":
        usage.packages.add(posixpath.dirname(path))
    usage.targets.discard(path)
    return usage


class TestMap:
    """The analysed tests of a repository, indexed so that each source file is looked up quickly."""

    __test__ = False

    def __init__(self, usages: Iterable[TestUsage]) -> None:
        self.by_target: dict[str, set[str]] = defaultdict(set)
        self.go_dirs: dict[str, set[str]] = defaultdict(set)
        self.python_packages: list[tuple[str, TestUsage]] = []
        for usage in usages:
            for target in usage.targets:
                self.by_target[target].add(usage.path)
            for package in usage.packages:
                if usage.language == "go":
                    self.go_dirs[package].add(usage.path)
                elif usage.language == "python":
                    self.python_packages.append((package, usage))

    def tests_for(self, path: str, language: str | None, defined_names: set[str]) -> list[str]:
        """Test files (sorted) that exercise the source file at `path`, which defines `defined_names`."""
        found = set(self.by_target.get(path, ()))
        directory = posixpath.dirname(path)
        if language == "go":
            found |= self.go_dirs.get(directory, set())
        if language == "python" and defined_names:
            for package, usage in self.python_packages:
                if _is_within(directory, package) and defined_names & usage.names:
                    found.add(usage.path)
        found.discard(path)
        return sorted(found)


def tests_for_source(
    path: str, language: str | None, defined_names: set[str], usages: Iterable[TestUsage]
) -> list[str]:
    """Test files (sorted) that exercise the source file at `path` (see `TestMap` for many lookups)."""
    return TestMap(usages).tests_for(path, language, defined_names)


def _is_within(directory: str, package: str) -> bool:
    return package == "" or directory == package or directory.startswith(package + "/")


def map_tests_to_sources(
    files: Mapping[str, str], language_of: Callable[[str], str | None]
) -> dict[str, list[str]]:
    """Source relpath -> sorted test relpaths that exercise it, for the files given (path -> text).

    Only source files exercised by at least one test appear.
    """
    index = RepoIndex(files)
    usages = [analyze_test(p, text, language_of(p), index) for p, text in files.items() if is_test_file(p)]
    tests = TestMap(usages)
    mapping: dict[str, list[str]] = {}
    for path, text in files.items():
        language = language_of(path)
        if language is None or is_test_file(path):
            continue
        names = top_level_names(split_definitions(text, language)) if language == "python" else set()
        exercised_by = tests.tests_for(path, language, names)
        if exercised_by:
            mapping[path] = exercised_by
    return mapping
