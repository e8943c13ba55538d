"""Static signals with the real tools: compile(), the venv's ruff binary and bandit in-process. No mocks."""

from __future__ import annotations

import time

import pytest

from cet.errors import CetError
from cet.execution.static_checks import (
    DEFAULT_LINT_SELECT,
    check_python_compiles,
    find_ruff,
    lint_python,
    scan_python_security,
    static_signals,
)

CLEAN = '''\
"""Idiomatic solutions of the kind the tasks ask for."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Inventory:
    items: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, count: int = 1) -> None:
        self.items[name] = self.items.get(name, 0) + count

    def total(self) -> int:
        return sum(self.items.values())


def word_count(sentence: str) -> dict[str, int]:
    words = re.findall(r"[a-z0-9]+(?:'[a-z]+)?", sentence.lower())
    return dict(Counter(words))


def transpose(rows: list[list[int]]) -> list[list[int]]:
    return [list(col) for col in zip(*rows)]


def pairs(names: list[str], ages: list[int]) -> list[str]:
    return [f"{name} is {age}" for name, age in zip(names, ages)]


def parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"not a number: {text!r}")


def top(scores: dict[str, int], n: int = 3) -> list[str]:
    ranked = sorted(scores, key=lambda k: (-scores[k], k))
    return ranked[:n]


def read_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\\n") for line in f if line.strip()]


def classify(n: int) -> str:
    if n < 1:
        raise ValueError("Classification is only possible for positive integers.")
    aliquot = sum(d for d in range(1, n // 2 + 1) if n % d == 0)
    if aliquot == n:
        return "perfect"
    return "abundant" if aliquot > n else "deficient"


def squares(limit: int) -> list[int]:
    result = []
    for i, value in enumerate(range(limit)):
        if i % 2 == 0:
            result.append(value * value)
    return result'''  # no final newline, as a model often answers


# --- compile -------------------------------------------------------------------------------------------------


def test_compile_ok():
    check = check_python_compiles(CLEAN, "solution.py")
    assert check.ok and check.error is None and check.line is None


def test_compile_syntax_error_has_message_and_line():
    check = check_python_compiles("def f(x):\n    return x\n\ndef g(:\n    pass\n", "solution.py")
    assert not check.ok
    assert check.line == 4
    assert check.error.startswith("SyntaxError: ") and check.error.endswith("(line 4)")


def test_compile_indentation_error():
    check = check_python_compiles("def f():\nreturn 1\n", "solution.py")
    assert not check.ok and check.line == 2 and check.error.startswith("IndentationError: ")


def test_compile_null_bytes():
    check = check_python_compiles("x = 1\x00\n", "solution.py")
    assert not check.ok and "null bytes" in check.error


def test_compile_does_not_execute(tmp_path):
    marker = tmp_path / "ran"
    check = check_python_compiles(f"open({str(marker)!r}, 'w').write('x')\nraise SystemExit(3)\n", "solution.py")
    assert check.ok and not marker.exists()


@pytest.mark.parametrize(
    "source",
    [
        "x = " + "-" * 200_000 + "1\n",  # MemoryError in the parser
        "x = a" + ".b" * 200_000 + "\n",  # RecursionError during compilation
        "x = " + "+".join(["1"] * 300_000) + "\n",
        "x = " + "(" * 50_000 + ")" * 50_000 + "\n",  # too many nested parentheses
    ],
)
def test_compile_deep_nesting_does_not_crash(source):
    check = check_python_compiles(source, "solution.py")
    assert not check.ok and check.error


# --- ruff ----------------------------------------------------------------------------------------------------


def test_ruff_is_found():
    assert find_ruff() is not None


def test_ruff_finds_unused_import_and_undefined_name():
    source = "import os\nimport sys\n\n\ndef f(x):\n    return sys.argv[x] + missing\n"
    report = lint_python(source, "solution.py")
    assert report.available and report.error is None
    found = {(f.code, f.line) for f in report.findings}
    assert ("F401", 1) in found
    assert ("F821", 6) in found
    assert ("F401", 2) not in found  # sys is used
    undefined = next(f for f in report.findings if f.code == "F821")
    assert "missing" in undefined.message and undefined.column == 26


def test_ruff_clean_idiomatic_code_has_no_findings():
    report = lint_python(CLEAN, "solution.py")
    assert report.available and report.error is None
    assert report.findings == [], report.findings


def test_ruff_default_selection_catches_bugbear_and_pycodestyle():
    source = "def f(x=[]):\n    try:\n        return x == None\n    except:\n        pass\n"
    codes = {f.code for f in lint_python(source, "solution.py").findings}
    assert {"B006", "E711", "E722"} <= codes


def test_ruff_ignores_noqa_comments():
    report = lint_python("import os  # noqa\n# ruff: noqa\n", "solution.py")
    assert [f.code for f in report.findings] == ["F401"]


def test_ruff_custom_selection():
    source = "import os\n\ny = 1\nz = y == None\n"
    codes = {f.code for f in lint_python(source, "solution.py", select=["E7"]).findings}
    assert codes == {"E711"}


def test_ruff_missing_binary(tmp_path):
    report = lint_python("x = 1\n", "solution.py", ruff=tmp_path / "no-such-ruff")
    assert not report.available and report.error == "ruff not found" and report.findings == []


def test_ruff_error_is_reported_not_raised():
    report = lint_python("x = 1\n", "solution.py", select=["NOT-A-RULE"])
    assert report.available and report.findings == []
    assert "exit status 2" in report.error


def test_ruff_crash_on_deep_nesting_is_reported():
    report = lint_python("x = " + "-" * 200_000 + "1\n", "solution.py")
    assert report.available and report.findings == [] and report.error


def test_default_selection_is_stable_rules_only():
    assert "SIM" not in DEFAULT_LINT_SELECT and "F" in DEFAULT_LINT_SELECT


# --- bandit --------------------------------------------------------------------------------------------------

DANGEROUS = """\
import pickle
import subprocess


def run(cmd):
    return subprocess.call(cmd, shell=True)


def calc():
    return eval(input())


def load(blob):
    return pickle.loads(blob)
"""


def test_bandit_finds_shell_eval_and_pickle():
    report = scan_python_security(DANGEROUS, "solution.py")
    assert report.available and report.error is None
    by_id = {f.test_id: f for f in report.findings}
    assert by_id["B602"].severity == "HIGH" and by_id["B602"].line == 6
    assert by_id["B602"].name == "subprocess_popen_with_shell_equals_true"
    assert by_id["B307"].severity == "MEDIUM" and by_id["B307"].line == 10
    assert by_id["B301"].severity == "MEDIUM" and by_id["B301"].line == 14
    assert by_id["B403"].severity == "LOW" and by_id["B403"].line == 1
    assert report.count("HIGH") == 1
    assert all(f.message for f in report.findings)


def test_bandit_clean_code_has_no_findings():
    report = scan_python_security(CLEAN, "solution.py")
    assert report.available and report.error is None and report.findings == []


def test_bandit_ignores_nosec():
    report = scan_python_security("import subprocess\nsubprocess.call('ls', shell=True)  # nosec\n", "s.py")
    assert "B602" in {f.test_id for f in report.findings}


def test_bandit_syntax_error_sets_error():
    report = scan_python_security("def f(:\n", "solution.py")
    assert report.available and report.findings == [] and "syntax error" in report.error


def test_bandit_is_quiet(capfd):
    scan_python_security("def f(:\n", "solution.py")
    scan_python_security("x = a" + ".b" * 200_000 + "\n", "solution.py")
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_bandit_is_fast_in_process():
    scan_python_security(DANGEROUS, "solution.py")  # warm: imports and plugin loading
    start = time.perf_counter()
    for _ in range(20):
        scan_python_security(CLEAN, "solution.py")
    per_file = (time.perf_counter() - start) / 20
    assert per_file < 0.1, per_file


# --- static_signals ------------------------------------------------------------------------------------------


def test_static_signals_python():
    check, lint, security = static_signals("python", DANGEROUS, "solution.py", lint=True, security=True)
    assert check.ok
    assert lint.tool == "ruff" and lint.available
    assert security.tool == "bandit" and "B602" in {f.test_id for f in security.findings}


def test_static_signals_python_without_lint_or_security():
    check, lint, security = static_signals("python", "def f(:\n", "solution.py", lint=False, security=False)
    assert not check.ok and lint is None and security is None


def test_static_signals_javascript():
    check, lint, security = static_signals("javascript", "let x = 1;\n", "solution.js", lint=True, security=True)
    assert check is None
    assert lint.tool == "none" and not lint.available and "JavaScript" in lint.error
    assert security.tool == "none" and not security.available and "JavaScript" in security.error


def test_static_signals_unknown_language():
    with pytest.raises(CetError, match="cobol"):
        static_signals("cobol", "", "x.cob", lint=True, security=True)


def test_bandit_gives_the_same_findings_from_concurrent_threads():
    from concurrent.futures import ThreadPoolExecutor

    expected = sorted((f.test_id, f.line) for f in scan_python_security(DANGEROUS, "solution.py").findings)
    with ThreadPoolExecutor(max_workers=4) as pool:
        reports = list(pool.map(lambda s: scan_python_security(s, "solution.py"), [DANGEROUS, CLEAN] * 10))
    for i, report in enumerate(reports):
        got = sorted((f.test_id, f.line) for f in report.findings)
        assert got == (expected if i % 2 == 0 else []), i
