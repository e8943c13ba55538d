"""Repository snapshots for repository tasks: fetch and unpack a source distribution, and splice a candidate
function into it for a sandboxed run.

A repository task (`CodingTask.repository`) names a function of a real repository. Its solution is that function's
definition; `repository_files` builds what the sandbox receives: the snapshot's files, with the task's definition
replaced by the candidate's, packed as one archive the runner unpacks (runtime/pytest_runner.py), and the list of
the tests that decide it.

Snapshots are unpacked source distributions from the package index (`pip download --no-binary :all:`), kept under
`exec.repos_dir`: they are data, never part of this project. Licences are recorded from the archive's metadata.
"""

from __future__ import annotations

import ast
import hashlib
import io
import re
import shutil
import tarfile
import tempfile
import textwrap
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

from cet.errors import CetError
from cet.execution.tasks import REPOSITORY_ARCHIVE, REPOSITORY_TESTS, CodingTask, RepositoryRef
from cet.knowledge.function_map import IGNORED_PARTS

MAX_FILE_BYTES = 1_000_000
DEFAULT_INDEX = "https://pypi.org/simple"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")


@dataclass(frozen=True)
class Snapshot:
    name: str  # the distribution's name, as its metadata spells it
    version: str
    root: Path  # the unpacked tree (the folder holding the package and its tests)
    archive_sha256: str
    licence: str | None

    @property
    def folder(self) -> str:
        return self.root.name


def fetch_sdist(spec: str, into: Path, index_url: str = DEFAULT_INDEX) -> Path:
    """The source distribution for `spec`: a local archive as given, else `NAME==VERSION` (or a bare NAME: its
    newest version) from the package index's simple API (PEP 503) into `into`, its sha256 checked against the
    index's. Nothing of the package runs: no build backend, no setup.py (what `pip download` would run)."""
    local = Path(spec)
    if local.is_file():
        if not spec.endswith(ARCHIVE_SUFFIXES):
            raise CetError(f"{spec} is not a source distribution (.tar.gz, .tgz or .zip)")
        return local
    if not re.fullmatch(r"[A-Za-z0-9._-]+(==[A-Za-z0-9._+!-]+)?", spec):
        raise CetError(f"{spec!r} is neither an archive nor a package spec like NAME or NAME==VERSION")
    name, _, version = spec.partition("==")
    into.mkdir(parents=True, exist_ok=True)
    cached = sorted((p for p in into.iterdir() if p.name.endswith(ARCHIVE_SUFFIXES)
                     and _split_stem(p.name)[0] == _normal(name)
                     and (not version or _normal(_split_stem(p.name)[1]) == _normal(version))),
                    key=lambda p: _version_key(_split_stem(p.name)[1]))
    if cached:  # fetched before (a bare NAME takes the newest cached: a resume works offline)
        return cached[-1]
    url, digest = _sdist_link(index_url, name, version)
    import httpx

    target = into / url.rsplit("/", 1)[-1].split("#", 1)[0]
    try:
        with httpx.stream("GET", url, timeout=120, follow_redirects=True) as response:
            response.raise_for_status()
            data = b"".join(response.iter_bytes())
    except httpx.HTTPError as e:
        raise CetError(f"cannot download {url}: {e}") from None
    if digest and hashlib.sha256(data).hexdigest() != digest:
        raise CetError(f"{url}: its sha256 is not the one the index gives; not kept")
    temporary = target.with_name(target.name + ".part")
    temporary.write_bytes(data)
    temporary.replace(target)
    return target


def _sdist_link(index_url: str, name: str, version: str) -> tuple[str, str | None]:
    """(url, sha256) of NAME's source distribution of `version` (newest when empty) on a PEP 503 index."""
    import httpx

    page = f"{index_url.rstrip('/')}/{_normal(name).replace('_', '-')}/"
    try:
        response = httpx.get(page, timeout=60, follow_redirects=True)
    except httpx.HTTPError as e:
        raise CetError(f"cannot reach the package index at {page}: {e}") from None
    if response.status_code == 404:
        raise CetError(f"the package index has no project {name!r} ({page})")
    if response.status_code != 200:
        raise CetError(f"the package index answered {response.status_code} for {page}")
    found = []
    for href in re.findall(r'href="([^"]+)"', response.text):
        url = str(httpx.URL(page).join(href.replace("&amp;", "&")))
        filename = url.split("#", 1)[0].rsplit("/", 1)[-1]
        if not filename.endswith(ARCHIVE_SUFFIXES):
            continue
        stem_name, stem_version = _split_stem(filename)
        if stem_name != _normal(name) or (version and _normal(stem_version) != _normal(version)):
            continue
        digest = re.search(r"#sha256=([0-9a-f]{64})", url)
        found.append((_version_key(stem_version), url.split("#", 1)[0], digest.group(1) if digest else None))
    if not found:
        raise CetError(f"the package index has no source distribution of {name}{'==' + version if version else ''}")
    _, url, digest = max(found)
    return url, digest


def _split_stem(filename: str) -> tuple[str, str]:
    """(normalised name, version) of an sdist file name `NAME-VERSION.tar.gz`."""
    name, _, version = _stem(filename).rpartition("-")
    return _normal(name), version


def _version_key(version: str) -> tuple:
    from packaging.version import InvalidVersion, Version

    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def _normal(text: str) -> str:
    return re.sub(r"[-_.]+", "_", text).lower()


def _stem(filename: str) -> str:
    for suffix in ARCHIVE_SUFFIXES:
        filename = filename.removesuffix(suffix)
    return filename


def unpack(archive: Path, repos_dir: Path) -> Snapshot:
    """Unpack `archive` under `repos_dir` (once; an existing unpacked copy of the same archive is reused)."""
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    stem = _stem(archive.name)
    root = repos_dir / stem
    marker = root / ".cet-archive-sha256"
    if not (marker.is_file() and marker.read_text().strip() == digest):
        if root.exists():
            shutil.rmtree(root)
        with tempfile.TemporaryDirectory(prefix="cet-unpack-", dir=repos_dir if repos_dir.is_dir() else None) as work:
            try:
                if archive.name.endswith(".zip"):
                    with zipfile.ZipFile(archive) as z:
                        z.extractall(work)
                else:
                    with tarfile.open(archive) as t:
                        t.extractall(work, filter="data")
            except (tarfile.TarError, zipfile.BadZipFile, OSError) as e:
                raise CetError(f"cannot unpack {archive}: {e}") from None
            tops = list(Path(work).iterdir())
            top = tops[0] if len(tops) == 1 and tops[0].is_dir() else Path(work)
            repos_dir.mkdir(parents=True, exist_ok=True)
            shutil.move(str(top), root)
        marker.write_text(digest + "\n")
    name, version, licence = _metadata(root, stem)
    return Snapshot(name, version, root, digest, licence)


def _metadata(root: Path, stem: str) -> tuple[str, str, str | None]:
    fields: dict[str, str] = {}
    info = root / "PKG-INFO"
    if info.is_file():
        for line in info.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                break
            key, _, value = line.partition(":")
            fields.setdefault(key.strip().lower(), value.strip())
    name, _, version = stem.rpartition("-")
    licence = fields.get("license-expression") or fields.get("license") or next(
        (c.split("::")[-1].strip() for c in _classifiers(info) if c.startswith("License ::")), None)
    return fields.get("name", name or stem), fields.get("version", version), licence


def _classifiers(info: Path) -> list[str]:
    if not info.is_file():
        return []
    return [line.partition(":")[2].strip() for line in info.read_text(encoding="utf-8", errors="replace").splitlines()
            if line.startswith("Classifier:")]


def snapshot_root(ref: RepositoryRef, repos_dir: str | Path) -> Path:
    root = Path(repos_dir) / ref.snapshot
    if not root.is_dir():
        raise CetError(f"repository snapshot {ref.snapshot} is not under {repos_dir}: unpack {ref.name} "
                       f"{ref.version} there (cet tasks repo {ref.name}=={ref.version})")
    return root


@lru_cache(maxsize=8)
def _snapshot_files(root: str) -> tuple[tuple[str, bytes], ...]:
    """What a run receives of the snapshot: its Python files and the other files of its test folders, under
    MAX_FILE_BYTES each, with documentation and build folders left out; a src/ layout is flattened."""
    base = Path(root)
    tests_dirs = {p.parent for p in base.rglob("test*.py")} | {p.parent for p in base.rglob("conftest.py")}
    out = []
    for path in sorted(base.rglob("*")):
        relative = path.relative_to(base)
        if not path.is_file() or IGNORED_PARTS & set(relative.parts[:-1]) or path.name.startswith(".cet-"):
            continue
        if path.suffix != ".py" and path.parent not in tests_dirs:
            continue
        if path.suffix in (".cfg", ".ini", ".toml") or path.stat().st_size > MAX_FILE_BYTES:
            continue
        out.append((run_path(str(PurePosixPath(*relative.parts))), path.read_bytes()))
    return tuple(out)


def run_path(relative: str) -> str:
    """Where a snapshot's file (or test id) is in the sandbox: a src/ layout flattened."""
    return relative.removeprefix("src/")


def definition_scope(tree: ast.Module, qualname: str) -> list[ast.stmt] | None:
    """The statements `qualname`'s definition sits among (the module's, or its classes' as Python binds them: the
    last class of a name), or None when a class on the way is not there."""
    scope: list[ast.stmt] = tree.body
    for part in qualname.partition(":")[2].split(".")[:-1]:
        owner = next((n for n in reversed(scope) if isinstance(n, ast.ClassDef) and n.name == part), None)
        if owner is None:
            return None
        scope = owner.body
    return scope


def definition_span(source: str, qualname: str, tree: ast.Module | None = None
                    ) -> tuple[int, int, ast.FunctionDef | ast.AsyncFunctionDef]:
    """The lines (first decorator .. last line, 1-based) and node of `qualname`'s definition in `source` (`tree`:
    `source` already parsed)."""
    scope = definition_scope(tree or ast.parse(source), qualname)
    name = qualname.partition(":")[2].split(".")[-1]
    node = next((n for n in reversed(scope or []) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
                 and n.name == name), None)  # as Python binds
    if node is None:
        raise CetError(f"{qualname} is not defined where its task says")
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return start, node.end_lineno or node.lineno, node


def splice(source: str, ref: RepositoryRef, solution: str) -> str:
    """`source` (the file holding the task's function) with that definition replaced by the candidate's: the
    solution's definition of the same name, re-indented to the original's place, under the original decorators;
    the solution's imports and helper functions move into the function's body, so they stay its own. A solution
    without that definition leaves the function out (its tests then fail, as they should)."""
    lines = source.splitlines(keepends=True)
    start, end, original = definition_span(source, ref.qualname)
    indent = " " * original.col_offset
    decorators = "".join(lines[start - 1: original.lineno - 1])
    name = ref.qualname.rsplit(".", 1)[-1].rsplit(":", 1)[-1]
    candidate = _candidate_definition(solution, name)
    body = decorators + textwrap.indent(candidate, indent) if candidate else f"{indent}pass\n"
    if not body.endswith("\n"):
        body += "\n"
    return "".join(lines[: start - 1]) + body + "".join(lines[end:])


def _candidate_definition(solution: str, name: str) -> str | None:
    """The solution's definition of `name` (top level, or a method of a top-level class), with the solution's other
    top-level statements (imports, helpers, constants, classes) moved into its body; None when it has none or
    cannot be read."""
    try:
        tree = ast.parse(textwrap.dedent(solution))
    except (SyntaxError, ValueError):
        return None
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    found = next((n for n in tree.body if isinstance(n, kinds) and n.name == name), None)
    owner = None
    if found is None:
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                found = next((n for n in node.body if isinstance(n, kinds) and n.name == name), None)
                if found is not None:
                    owner = node
                    break
    if found is None:
        return None
    extras = [n for n in tree.body if n is not found and n is not owner and not (
        isinstance(n, ast.ImportFrom) and n.module == "__future__") and isinstance(
        n, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Assign
        | ast.AnnAssign)]
    found.decorator_list = []
    if extras:
        docstring = found.body[:1] if ast.get_docstring(found, clean=False) is not None else []
        found.body = [*docstring, *extras, *found.body[len(docstring):]]
    try:
        return ast.unparse(found) + "\n"
    except (RecursionError, ValueError):
        return None


def stub(task: CodingTask) -> str:
    """The task's function doing nothing (`return None`): what its tests must reject for the task to mean anything.
    (Not `raise NotImplementedError`: a test that only calls the function would reject that and still judge
    nothing of what it computes.)"""
    header = task.signature or ""
    return f"{header}\n    return None\n"


def repository_files(task: CodingTask, solution: str, repos_dir: str | Path) -> dict[str, bytes | str]:
    """The sandbox's files for a repository task: the snapshot with `solution` spliced in, as one archive, and
    the node ids of the tests to run."""
    ref = task.repository
    if ref is None:
        raise CetError(f"task {task.id} is not a repository task")
    root = snapshot_root(ref, repos_dir)
    target = run_path(ref.path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for relative, data in _snapshot_files(str(root)):
            if relative == target:
                data = splice(data.decode("utf-8"), ref, solution).encode("utf-8")
            archive.writestr(relative, data)
    return {REPOSITORY_ARCHIVE: buffer.getvalue(),
            REPOSITORY_TESTS: "".join(run_path(t) + "\n" for t in ref.test_ids)}
