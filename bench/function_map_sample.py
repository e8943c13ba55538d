"""Draw the blind labelling sample that bench/data/function_map_labels/ holds (how those files were made).

For a repository (an unpacked source distribution): 40 library functions at random (seed 13); for each, the
candidate tests are those the traced map or the static map links to it, or whose source names it; at most 10 are
kept at random; all pairs are shuffled, so a labeller cannot tell which map proposed a pair. Each pair is then
labelled by reading the code only: does running the test execute a line of the function's body (setup and call;
import time excluded)? The labels in the repository were written this way by LLM agents reading the code (two per
repository, each half the pairs), not by people, and no code was run to decide them.

Recall measured on these pairs is recall within the candidate pool: a pair that no map proposed and whose test does
not name the function is not in the sample.

    .venv/bin/python bench/function_map_sample.py data/repos/toolz-1.2.0 out.json [--functions 40]
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import re
import sys
from pathlib import Path

from cet.knowledge.function_map import PythonRepo, read_python_files, static_map, test_files, traced_map


def draw(root: Path, n_functions: int, cap: int = 10, seed: int = 13) -> dict:
    files, _ = read_python_files(root)
    repo = PythonRepo(files)
    traced = traced_map(root, files, test_files(files))
    static = static_map(files)
    tests = dict(repo.tests())
    library = sorted(q for q, f in repo.functions.items() if not f.test)
    rng = random.Random(seed)
    pairs = []
    for function in rng.sample(library, min(n_functions, len(library))):
        name = function.split(":")[1].split(".")[-1]
        candidates = {t for t in tests if function in traced.get(t, ()) or function in static.get(t, ())}
        candidates |= {t for t, f in tests.items() if re.search(rf"\b{re.escape(name)}\b", ast.unparse(f.node))}
        for test in rng.sample(sorted(candidates), min(cap, len(candidates))):
            pairs.append({"function": function, "test": test, "label": None, "reason": None})
    rng.shuffle(pairs)
    return {"repository": root.name, "seed": seed, "functions_drawn": n_functions, "cap_per_function": cap,
            "pairs": pairs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--functions", type=int, default=40)
    args = parser.parse_args()
    sample = draw(args.root, args.functions)
    args.out.write_text(json.dumps(sample, indent=1) + "\n", encoding="utf-8")
    print(f"{len(sample['pairs'])} pairs of {args.functions} functions -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
