"""The function-level code-to-test map against labelled pairs of real repositories, with the per-file map it
replaces as the baseline measured in the same run.

Labels: bench/data/function_map_labels/<sdist>.json, one file per repository: (function, test, label) pairs drawn by
bench/function_map_sample.py (40 functions at random, seed 13; candidate tests from the traced map, the static map
and tests naming the function; at most 10 per function), labelled blind by LLM agents reading the code only (not
people; the labeller never saw which map proposed a pair): does running the test execute a line of the function's
body? Recall here is recall within that candidate pool. The repositories are fetched as source distributions from
the package index (cached under exec.repos_dir) and never copied into the project.

For each repository and map (traced, static, per-file) it prints precision and recall on the labelled pairs with
95% Wilson intervals, the maps' run times, and the traced/static agreement over every test; the per-file baseline
says a test exercises every function defined in a file the test file is mapped to (knowledge/test_mapping.py).

    .venv/bin/python bench/function_map_labels.py [--json]

Always writes bench/results/function_map_labels.json; ``--json`` also prints it instead of the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from cet.config import CetConfig
from cet.evaluation.significance import wilson_interval
from cet.execution.repository import fetch_sdist, unpack
from cet.knowledge.code_chunking import detect_language
from cet.knowledge.function_map import PythonRepo, compare, read_python_files, static_map, test_files, traced_map
from cet.knowledge.test_mapping import map_tests_to_sources

LABELS = Path(__file__).parent / "data" / "function_map_labels"
RESULTS = Path(__file__).parent / "results" / "function_map_labels.json"


def per_file_map(files: dict[str, str], tests: list[str]) -> dict[str, set[str]]:
    """The baseline: a test reaches every library function of every source file its test file is mapped to."""
    repo = PythonRepo(files)
    by_file: dict[str, set[str]] = {}
    for function in repo.functions.values():
        if not function.test:
            by_file.setdefault(function.path, set()).add(function.qualname)
    mapped = map_tests_to_sources(files, detect_language)
    reached: dict[str, set[str]] = {}
    for source, test_paths in mapped.items():
        for test_path in test_paths:
            reached.setdefault(test_path, set()).update(by_file.get(source, set()))
    return {node: reached.get(node.split("::", 1)[0], set()) for node in tests}


def score(pairs: list[dict[str, Any]], found: dict[str, set[str]]) -> dict[str, Any]:
    predicted = [p["function"] in found.get(p["test"], ()) for p in pairs]
    tp = sum(1 for guess, p in zip(predicted, pairs, strict=True) if guess and p["label"])
    fp = sum(1 for guess, p in zip(predicted, pairs, strict=True) if guess and not p["label"])
    fn = sum(1 for guess, p in zip(predicted, pairs, strict=True) if not guess and p["label"])
    return {"precision": tp / (tp + fp) if tp + fp else None, "precision_ci95": wilson_interval(tp, tp + fp),
            "recall": tp / (tp + fn) if tp + fn else None, "recall_ci95": wilson_interval(tp, tp + fn),
            "true_positive": tp, "false_positive": fp, "false_negative": fn}


def measure(label_file: Path, repos_dir: Path, index_url: str) -> dict[str, Any]:
    data = json.loads(label_file.read_text(encoding="utf-8"))
    name, _, version = data["repository"].rpartition("-")
    snapshot = unpack(fetch_sdist(f"{name}=={version}", repos_dir / "archives", index_url), repos_dir)
    files, _ = read_python_files(snapshot.root)
    started = time.perf_counter()
    traced = traced_map(snapshot.root, files, test_files(files))
    traced_s = time.perf_counter() - started
    started = time.perf_counter()
    static = static_map(files)
    static_s = time.perf_counter() - started
    per_file = per_file_map(files, sorted(static))
    pairs = data["pairs"]
    return {"repository": data["repository"], "archive_sha256": snapshot.archive_sha256, "pairs": len(pairs),
            "true_pairs": sum(1 for p in pairs if p["label"]), "functions_drawn": data["functions_drawn"],
            "traced": {**score(pairs, traced), "seconds": round(traced_s, 2)},
            "static": {**score(pairs, static), "seconds": round(static_s, 2)},
            "per_file": score(pairs, per_file),
            "static_vs_traced_all_tests": compare(static, traced)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cfg = CetConfig()
    results = {"repositories": [measure(f, Path(cfg.exec.repos_dir), cfg.exec.package_index)
                                for f in sorted(LABELS.glob("*.json"))]}
    pooled: dict[str, dict[str, int]] = {}
    for repo in results["repositories"]:
        for method in ("traced", "static", "per_file"):
            total = pooled.setdefault(method, {"true_positive": 0, "false_positive": 0, "false_negative": 0})
            for key in total:
                total[key] += repo[method][key]
    results["pooled"] = {m: {"precision": t["true_positive"] / max(1, t["true_positive"] + t["false_positive"]),
                             "recall": t["true_positive"] / max(1, t["true_positive"] + t["false_negative"]), **t}
                         for m, t in pooled.items()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print(f"{'repository':24} {'map':9} {'precision':>22} {'recall':>22} {'time':>8}")
    for repo in results["repositories"]:
        for method in ("traced", "static", "per_file"):
            r = repo[method]
            p = f"{r['precision']:.3f} [{r['precision_ci95'][0]:.2f}, {r['precision_ci95'][1]:.2f}]"
            c = f"{r['recall']:.3f} [{r['recall_ci95'][0]:.2f}, {r['recall_ci95'][1]:.2f}]"
            seconds = f"{r['seconds']:.1f} s" if "seconds" in r else "-"
            print(f"{repo['repository']:24} {method:9} {p:>22} {c:>22} {seconds:>8}")
        print(f"{'':24} ({repo['pairs']} labelled pairs, {repo['true_pairs']} true)")
    for method, r in results["pooled"].items():
        print(f"pooled {method:9} precision {r['precision']:.3f} recall {r['recall']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
