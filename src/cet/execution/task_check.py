"""The main job's execution step: import the default task sets, then check the sandbox end to end by
running the tasks' reference solutions (HumanEval's canonical solutions: every one must pass).

Running HumanEval's references is a check of the harness, not training: nothing here learns from them.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cet.config import CetConfig
from cet.errors import CetError
from cet.execution.executor import Executor
from cet.execution.importers import import_tasks
from cet.execution.pool import WarmPool
from cet.execution.tasks import iter_tasks, write_tasks


def default_task_sets(cfg: CetConfig) -> list[tuple[str, str]]:
    sets = [("exercism", cfg.sources.exercism), ("humaneval", "packaged"), ("leetcode", cfg.sources.leetcode)]
    return [(name, path) for name, path in sets if path]


def import_default_tasks(cfg: CetConfig) -> list[dict[str, Any]]:
    """Write `<exec.tasks_dir>/<set>.jsonl` for each default set; a set whose data is missing is reported."""
    out_dir = Path(cfg.exec.tasks_dir)
    imports = []
    for name, path in default_task_sets(cfg):
        try:
            tasks, skipped = import_tasks(name, path)
            count = write_tasks(tasks, out_dir / f"{name}.jsonl")
        except CetError as e:
            imports.append({"set": name, "status": f"skipped: {e}"})
            continue
        imports.append({"set": name, "status": "ok", "tasks": count, "skipped": len(skipped),
                        "file": str(out_dir / f"{name}.jsonl"),
                        "skipped_reasons": dict(Counter(s.reason for s in skipped).most_common())})
    return imports


def check_references(cfg: CetConfig, tasks_file: Path, limit: int | None = None,
                     on_result: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Run every task's reference solution in the sandbox (warm pool when bubblewrap runs)."""
    tasks = [t for t in iter_tasks(tasks_file) if t.reference_solution]
    if limit is not None:
        tasks = list(itertools.islice(tasks, limit))
    one_shot = Executor(cfg.exec)
    use_pool = one_shot.backend.isolation == "bubblewrap"
    started = time.perf_counter()
    if use_pool:
        with WarmPool(cfg.exec, one_shot.backend.sandbox) as pool:
            results = list(Executor(cfg.exec, backend=pool).run_many(((t, t.reference_solution) for t in tasks),
                                                                     on_result=on_result))
    else:
        results = list(one_shot.run_many(((t, t.reference_solution) for t in tasks), on_result=on_result))
    seconds = time.perf_counter() - started
    failures = [{"task_id": r.task_id, "exit_reason": r.exit_reason, "detail": r.detail}
                for r in results if not r.passed]
    return {"tasks_file": str(tasks_file), "runs": len(results), "passed": sum(r.passed for r in results),
            "exit_reasons": dict(Counter(r.exit_reason for r in results).most_common()),
            "isolation": one_shot.backend.isolation, "isolation_warning": one_shot.backend.warning,
            "backend": "warm-pool" if use_pool else "one-shot", "seconds": round(seconds, 1),
            "runs_per_s": round(len(results) / seconds, 2) if seconds else None,
            "mean_reward": round(sum(r.reward or 0 for r in results) / len(results), 4) if results else None,
            "failures": failures[:20]}
