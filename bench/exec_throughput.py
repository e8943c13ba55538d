"""Execution throughput (runs/s) on trivial tasks: the warm fork-server pool against a plain subprocess +
pytest per task, side by side in one run, on both cores, with the verdicts compared task by task.

Workload `trivial` (default): --n tasks, each a function with three tests; every other solution is wrong,
so half the verdicts are passes. Workload `humaneval`: the first --n packaged HumanEval tasks with their
reference solutions (all must pass; running them checks the harness, nothing trains on them).
Cases, each on --workers concurrent slots:

  baseline   a plain `subprocess` running pytest per task in a temp dir (no sandbox): the same interpreter
             and pytest the sandbox uses (`python -I -S`, pytest on sys.path), verdict = exit status 0
  one-shot   cet's Executor, a fresh bubblewrap sandbox per run
  warm-pool  cet's Executor on the WarmPool (fork server, pytest pre-imported, one sandbox per worker)
  warm-pool+signals   the same with ruff and bandit on (the default; the others have them off so
             that all cases do the same work: run the tests)

Each case runs --rounds times, the cases' order rotating between rounds; the best round counts.

    .venv/bin/python bench/exec_throughput.py [--n 60] [--workload trivial|humaneval] [--workers 2]
        [--rounds 2] [--json]

Always writes bench/results/exec_throughput.json; ``--json`` also prints it instead of the table.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cet.config import ExecConfig
from cet.execution.executor import Executor
from cet.execution.pool import WarmPool
from cet.execution.sandbox import Sandbox
from cet.execution.tasks import CodingTask, TaskMetadata
from common import log, ratio, run_and_report


def trivial_tasks(n: int) -> list[tuple[CodingTask, str]]:
    pairs = []
    for i in range(n):
        tests = (f"from solution import shift\n\n\ndef test_zero():\n    assert shift(0) == {i}\n\n\n"
                 f"def test_one():\n    assert shift(1) == {i + 1}\n\n\n"
                 f"def test_neg():\n    assert shift(-5) == {i - 5}\n")
        task = CodingTask(id=f"bench/{i}", language="python", statement=f"return x + {i}", tests=tests,
                          test_names=["test_zero", "test_one", "test_neg"],
                          metadata=TaskMetadata(source="bench", split="train"))
        solution = f"def shift(x):\n    return x + {i if i % 2 == 0 else i + 1}\n"
        pairs.append((task, solution))
    return pairs


def humaneval_tasks(n: int) -> list[tuple[CodingTask, str]]:
    from cet.execution.importers import import_tasks

    tasks, _ = import_tasks("humaneval", "packaged")
    return [(task, task.reference_solution or "") for task in itertools.islice(tasks, n)]


def baseline_runner(sandbox: Sandbox):  # noqa: ANN201
    """A plain subprocess + pytest per task, with the sandbox's interpreter and pytest, no isolation."""
    paths = sandbox.paths()
    site = paths.site if sandbox.isolation == "weak" else ":".join(
        str(Path(p).parent) for p in sandbox._site_sources.values())
    site_dirs = sorted(set(site.split(":")))

    def run(pair: tuple[CodingTask, str]) -> bool:
        task, solution = pair
        with tempfile.TemporaryDirectory(prefix="cet-bench-") as work:
            Path(work, task.solution_filename).write_text(solution)
            Path(work, task.test_filename).write_text(task.tests)
            code = (f"import sys; sys.path[:0] = {[work, *site_dirs]!r}; import pytest; "
                    f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', {task.test_filename!r}]))")
            done = subprocess.run([paths.python, "-I", "-S", "-B", "-c", code], cwd=work, capture_output=True,
                                  timeout=60)
            return done.returncode == 0

    return run


def measure(name: str, pairs: list, run_one, workers: int) -> dict[str, Any]:  # noqa: ANN001
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        verdicts = list(pool.map(run_one, pairs))
    seconds = time.perf_counter() - started
    log(f"  {name}: {len(pairs) / seconds:.2f} runs/s")
    return {"seconds": seconds, "runs_per_s": len(pairs) / seconds, "verdicts": verdicts}


def run(args: argparse.Namespace) -> dict[str, Any]:
    pairs = trivial_tasks(args.n) if args.workload == "trivial" else humaneval_tasks(args.n)
    quiet = ExecConfig(workers=args.workers, lint=False, security=False, performance=False)
    loud = quiet.model_copy(update={"lint": True, "security": True})
    one_shot = Executor(quiet)
    sandbox = one_shot.backend.sandbox
    log(f"isolation: {sandbox.isolation} {sandbox.warning or ''}; {args.n} tasks, {args.workers} workers, "
        f"{args.rounds} rounds")
    with WarmPool(quiet, sandbox) as pool:
        warm, warm_signals = Executor(quiet, backend=pool), Executor(loud, backend=pool)
        cases = {
            "baseline": baseline_runner(sandbox),
            "one-shot": lambda pair: one_shot.run(*pair).passed,
            "warm-pool": lambda pair: warm.run(*pair).passed,
            "warm-pool+signals": lambda pair: warm_signals.run(*pair).passed,
        }
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
        names = list(cases)
        for r in range(args.rounds):
            log(f"round {r + 1}")
            for name in names[r % len(names):] + names[: r % len(names)]:
                rounds[name].append(measure(name, pairs, cases[name], args.workers))
    best = {name: max(results, key=lambda m: m["runs_per_s"]) for name, results in rounds.items()}
    trivial = args.workload == "trivial"
    expected = [i % 2 == 0 if trivial else True for i in range(len(pairs))]
    base = best["baseline"]["runs_per_s"]
    return {
        "n": len(pairs), "workload": args.workload, "workers": args.workers, "rounds": args.rounds,
        "isolation": sandbox.isolation,
        "cases": {name: {"runs_per_s": round(m["runs_per_s"], 3),
                         "ratio_vs_baseline": round(ratio(m["runs_per_s"], base), 3),
                         "same_verdicts_as_baseline": m["verdicts"] == best["baseline"]["verdicts"],
                         "verdicts_correct": m["verdicts"] == expected,
                         "all_rounds_runs_per_s": [round(x["runs_per_s"], 3) for x in rounds[name]]}
                  for name, m in best.items()},
    }


def print_report(result: dict[str, Any]) -> None:
    print(f"Execution throughput: {result['n']} {result['workload']} tasks, {result['workers']} workers, "
          f"isolation {result['isolation']}, best of {result['rounds']} rounds\n")
    print(f"{'case':<20} {'runs/s':>8} {'x baseline':>11} {'same verdicts':>14} {'correct':>8}")
    for name, case in result["cases"].items():
        print(f"{name:<20} {case['runs_per_s']:>8.2f} {case['ratio_vs_baseline']:>11.2f} "
              f"{str(case['same_verdicts_as_baseline']):>14} {str(case['verdicts_correct']):>8}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--workload", choices=["trivial", "humaneval"], default="trivial")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    name = "exec_throughput" if args.workload == "trivial" else f"exec_throughput_{args.workload}"
    return run_and_report(name, args, run, print_report)


if __name__ == "__main__":
    sys.exit(main())
