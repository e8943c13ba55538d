"""Choosing repository-task candidates (`execution/importers/repository.candidates`) on a real snapshot: this
checkout against a baseline revision of the project, measured in the same run, each in its own process.

The candidates step reads the snapshot's Python files, checks every function (docstring, size, tested, defined
once) and cuts each chosen one out of its file. The timing covers the static map (no test runs) and the candidates
step together, since the map's parse is what the step now reuses.

    .venv/bin/python bench/repository_candidates.py [--baseline REV] [--repo more-itertools==11.2.1] [--json]

REV defaults to the revision before candidates reused the map's parsed repository (a6f0f6a); it is checked out
into a temporary git worktree. Writes bench/results/repository_candidates.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "repository_candidates.json"

# run in a child process with the source tree under test first on sys.path
CHILD = r"""
import hashlib, json, sys, time
from pathlib import Path
from cet.config import CetConfig
from cet.execution.importers.repository import RepositoryTaskOptions, candidates
from cet.execution.repository import fetch_sdist, unpack
from cet.knowledge.function_map import map_repository

cfg = CetConfig()
repos = Path(cfg.exec.repos_dir)
archive = fetch_sdist(sys.argv[1], repos / "archives", cfg.exec.package_index)
snapshot = unpack(archive, repos)
root = snapshot.root
times = []
for _ in range(int(sys.argv[2])):
    started = time.perf_counter()
    fmap = map_repository(root, "static")
    found = list(candidates(snapshot, fmap, RepositoryTaskOptions()))
    times.append(time.perf_counter() - started)
    tasks = sorted(f[0].model_dump_json() for f in found if isinstance(f, tuple))
print(json.dumps({"seconds": sorted(times)[len(times) // 2], "candidates": len(tasks), "checked": len(found),
                  "tasks_sha256": hashlib.sha256("\n".join(tasks).encode()).hexdigest()}))
"""


def measure(src: Path, spec: str, repeats: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, spec, str(repeats)], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(src)}, check=False)
    if out.returncode != 0:
        raise SystemExit(f"measuring {src} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="a6f0f6a")
    parser.add_argument("--repo", default="more-itertools==11.2.1")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cet-bench-") as scratch:
        old = Path(scratch) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.baseline], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            baseline = measure(old / "src", args.repo, args.repeats)
            current = measure(ROOT / "src", args.repo, args.repeats)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False,
                           capture_output=True)
    result = {"repository": args.repo, "baseline_rev": args.baseline, "repeats": args.repeats,
              "baseline": baseline, "current": current,
              "speedup": round(baseline["seconds"] / current["seconds"], 2) if current["seconds"] else None,
              "same_tasks": baseline["tasks_sha256"] == current["tasks_sha256"]}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.repo}: candidates step (static map, median of {args.repeats}) baseline {args.baseline} "
          f"{baseline['seconds']:.2f} s, this checkout {current['seconds']:.2f} s: ratio {result['speedup']}x; "
          f"{current['candidates']} candidates of {current['checked']} functions "
          f"({'byte-identical to' if result['same_tasks'] else 'DIFFERENT from'} the baseline's tasks)")


if __name__ == "__main__":
    main()
