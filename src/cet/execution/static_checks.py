"""Static signals on a solution's source text: does it compile, what does ruff say, what does bandit say.

Nothing here executes the solution: `compile()` only builds a code object, ruff reads the text on stdin and
bandit parses it into an AST. So these run on the host, outside the sandbox.

Lint rules (DEFAULT_LINT_SELECT / DEFAULT_LINT_IGNORE) judge generated solutions, not a house style, so only
ruff's stable rules that point at bugs or clear quality problems are on, and none fire on clean idiomatic code:

* ``F`` pyflakes: unused imports and variables, undefined names, bad format strings, redefinitions.
* ``E4``, ``E7``, ``E9`` pycodestyle's stable error rules (imports, statements, comparisons to None/True, bare
  except, ambiguous names like ``l``, lambda assignment) and ``E501`` at 120 characters. The whitespace rules
  E1/E2/E3 are preview-only in ruff 0.17, so selecting ``E`` would not turn them on anyway.
* ``W`` pycodestyle warnings (tabs, trailing whitespace, invalid escape sequences), except ``W292`` (no newline
  at the end of the file): a model's output often ends without one and that says nothing about the code.
* ``B`` flake8-bugbear (mutable defaults, loop-variable closures, useless expressions, ...), except ``B904``
  (``raise`` without ``from`` in ``except``), ``B905``/``B912`` (``zip``/``map`` without ``strict=``): opinions
  that fire on ordinary, correct solutions.
* ``PLE`` pylint's error rules (wrong special-method signatures, misplaced bare raise, bad logging args, ...).

``SIM``, ``C4``, ``UP`` and ``RUF`` are left out: they are refactoring preferences (a ternary instead of an if,
a newer syntax) that would penalise correct, readable code. ``# noqa`` and ``# nosec`` comments are ignored, so
a solution cannot switch its own findings off.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from cet.errors import CetError
from cet.execution.result import CompileCheck, LintFinding, LintReport, SecurityFinding, SecurityReport

DEFAULT_LINT_SELECT: list[str] = ["F", "E4", "E7", "E9", "E501", "W", "B", "PLE"]
DEFAULT_LINT_IGNORE: list[str] = ["W292", "B904", "B905", "B912"]
LINT_LINE_LENGTH = 120
LINT_TIMEOUT_S = 10.0
_SEVERITIES = {"LOW", "MEDIUM", "HIGH"}


def check_python_compiles(source: str, filename: str) -> CompileCheck:
    """Compile (never run) the source; a syntax error gives ok=False, the message and its line."""
    try:
        compile(source, filename, "exec", dont_inherit=True)
    except SyntaxError as e:  # IndentationError and TabError too; null bytes are a SyntaxError in 3.11
        where = f" (line {e.lineno})" if e.lineno else ""
        return CompileCheck(ok=False, error=f"{type(e).__name__}: {e.msg}{where}", line=e.lineno)
    except ValueError as e:  # null bytes on older Pythons; lone surrogates (UnicodeEncodeError)
        return CompileCheck(ok=False, error=f"{type(e).__name__}: {e}")
    except (RecursionError, MemoryError) as e:
        return CompileCheck(ok=False, error=f"{type(e).__name__}: the source is too deeply nested to compile")
    return CompileCheck(ok=True)


def find_ruff() -> Path | None:
    """The ruff next to this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "ruff"
    if beside.is_file():
        return beside
    found = shutil.which("ruff")
    return Path(found) if found else None


def lint_python(
    source: str,
    filename: str,
    select: list[str] | None = None,
    ignore: list[str] | None = None,
    ruff: str | Path | None = None,
    timeout_s: float = LINT_TIMEOUT_S,
) -> LintReport:
    """Run ``ruff check`` on the source (on stdin, no config files read) and collect its findings.

    ``ruff`` is the binary to use (default: find_ruff()); a missing one gives available=False. A ruff that
    crashes, times out or prints something that is not its JSON gives available=True, error set, no findings.
    """
    binary = Path(ruff) if ruff is not None else find_ruff()
    if binary is None or not binary.is_file():
        return LintReport(available=False, error="ruff not found")
    cmd = [
        str(binary), "check", "--no-cache", "--isolated", "--ignore-noqa", "--output-format", "json",
        "--line-length", str(LINT_LINE_LENGTH), "--target-version", f"py{sys.version_info[0]}{sys.version_info[1]}",
        "--select", ",".join(select if select is not None else DEFAULT_LINT_SELECT),
        "--stdin-filename", filename, "-",
    ]  # fmt: skip
    ignored = DEFAULT_LINT_IGNORE if ignore is None else ignore
    if ignored:
        cmd[-3:-3] = ["--ignore", ",".join(ignored)]
    try:
        proc = subprocess.run(
            cmd, input=source.encode("utf-8", "replace"), capture_output=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return LintReport(error=f"ruff timed out after {timeout_s:g} s")
    except OSError as e:
        return LintReport(available=False, error=f"ruff could not be started: {e}")
    if proc.returncode not in (0, 1):  # 1: findings; 2: bad arguments or an internal error; < 0: a signal
        return LintReport(error=f"ruff failed (exit status {proc.returncode}): {_last_line(proc.stderr)}")
    try:
        items = json.loads(proc.stdout)
        findings = [
            LintFinding(
                code=str(item.get("code") or item.get("name") or "unknown"),
                message=str(item.get("message", "")),
                line=(item.get("location") or {}).get("row"),
                column=(item.get("location") or {}).get("column"),
            )
            for item in items
        ]
    except (ValueError, TypeError, AttributeError) as e:
        return LintReport(error=f"ruff printed output that is not its JSON report: {e}")
    return LintReport(findings=findings)


def scan_python_security(source: str, filename: str) -> SecurityReport:
    """Run bandit's default tests in-process on the source (written to a private temp file, never run).

    A file bandit cannot parse (a syntax error, or an AST too deep for its visitor) gives error set and no
    findings.
    """
    try:
        with warnings.catch_warnings():  # bandit 1.9 passes stevedore a deprecated no-op argument on import
            warnings.filterwarnings("ignore", message=".*verify_requirements", category=DeprecationWarning)
            from bandit.core import config as b_config
            from bandit.core import manager as b_manager
    except ImportError:
        return SecurityReport(available=False, error="bandit not installed")
    logging.getLogger("bandit").setLevel(logging.CRITICAL + 1)  # it logs scan problems to stderr; we report them
    name = Path(filename).name if filename.endswith(".py") else "solution.py"
    with tempfile.TemporaryDirectory(prefix="cet-bandit-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(source.encode("utf-8", "replace"))
        mgr = b_manager.BanditManager(b_config.BanditConfig(), "file", quiet=True, ignore_nosec=True)
        try:
            mgr.discover_files([str(path)])
            mgr.run_tests()
        except Exception as e:  # bandit catches per-file problems itself; this is a last line of defence
            return SecurityReport(error=f"bandit failed: {type(e).__name__}: {e}")
        skipped = mgr.get_skipped()
        if skipped:
            return SecurityReport(error=f"bandit could not scan the file: {skipped[0][1]}")
        issues = mgr.get_issue_list()
    return SecurityReport(
        findings=[
            SecurityFinding(
                test_id=str(i.test_id),
                name=str(i.test),
                severity=i.severity if i.severity in _SEVERITIES else "UNDEFINED",
                confidence=i.confidence if i.confidence in _SEVERITIES else "UNDEFINED",
                message=str(i.text),
                line=i.lineno if isinstance(i.lineno, int) else None,
            )
            for i in issues
        ]
    )


def static_signals(
    language: str, source: str, filename: str, lint: bool = True, security: bool = True
) -> tuple[CompileCheck | None, LintReport | None, SecurityReport | None]:
    """(compile check, lint report, security report) for one solution; None where not asked for.

    For JavaScript the compile check is None (the sandbox runs ``node --check``) and there is no linter or
    scanner: the reports say so with available=False, so the reward drops those terms.
    """
    if language == "python":
        return (
            check_python_compiles(source, filename),
            lint_python(source, filename) if lint else None,
            scan_python_security(source, filename) if security else None,
        )
    if language == "javascript":
        return (
            None,
            LintReport(tool="none", available=False, error="no JavaScript linter configured") if lint else None,
            SecurityReport(tool="none", available=False, error="no JavaScript security scanner configured")
            if security
            else None,
        )
    raise CetError(f"no static checks for language {language!r} (python or javascript)")


def _last_line(data: bytes) -> str:
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"
