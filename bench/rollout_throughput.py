"""Phase 3 rollouts per hour: one at a time against batched, measured in one run on the same rollouts.

  rollouts    the first --tasks training tasks Phase 3 would draw, each with the raw and the template candidate,
              through `phases.rollouts.roll_out` (generator prompt, code extraction, the sandbox on the hidden tests,
              failure pattern, reward), a fresh empty response cache and rollouts file per setting
  sequential  llm.n_parallel = 1, one prompt handed to the team at a time (batch 1): the baseline
  batched     llm.n_parallel = --parallel slots and --batch prompts handed to the team at once (llama.cpp decodes
              the requests in its slots together); the sandbox runs exec.workers solutions at a time
  reported    rollouts/hour of each, the ratio batched / sequential, and how many verdicts agree (batched greedy
              decoding may sum in another order)

    .venv/bin/python bench/rollout_throughput.py [--tasks 4] [--generator qwen2.5-coder-0.5b-instruct]
        [--parallel 4] [--batch 8] [--json]

Writes bench/results/rollout_throughput.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from cet.config import load_config
from cet.data.baselines import rule_based_context
from cet.data.playbook import Playbook
from cet.knowledge.pipeline import open_retriever
from cet.phases.phase3 import Phase3Options, setups
from cet.phases.rollouts import Candidate, Work, roll_out
from common import log, ratio, run_and_report


def measure(works: list[Work], generator: str, slots: int, batch: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cet-rollouts-") as scratch:
        # a fresh, empty response cache per setting (an override of None would keep the configured one)
        cfg = load_config(llm={"n_parallel": slots, "cache_path": str(Path(scratch) / "cache.sqlite")})
        records, stats = roll_out(cfg, works, [generator], Path(scratch) / "rollouts.jsonl", round_=1, batch=batch)
    if stats.cached:
        raise SystemExit(f"{stats.cached} replies came from a cache: the measurement would be void")
    load = os.getloadavg()[0]
    return {"n_parallel": slots, "batch": batch, **stats.to_dict(), "load": round(load, 2),
            "verdicts": {f"{r['task_id']}|{r['candidate']}": r["passed"] for r in records}}


def run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = load_config()
    train, _ = setups(cfg, Phase3Options(tasks=args.tasks, dev_tasks=0), open_retriever(cfg))
    works = []
    for setup in train:
        inp = setup.input(cfg, Playbook())
        works.append(Work(setup.view, inp, [Candidate("raw"), Candidate("template", rule_based_context(inp))]))
    sequential = measure(works, args.generator, 1, 1)
    log(f"sequential: {sequential['rollouts']} rollouts in {sequential['seconds']} s")
    batched = measure(works, args.generator, args.parallel, args.batch)
    log(f"batched: {batched['rollouts']} rollouts in {batched['seconds']} s")
    same = sum(batched["verdicts"][k] == v for k, v in sequential["verdicts"].items())
    return {"generator": args.generator, "tasks": len(works), "sequential": sequential, "batched": batched,
            "ratio": round(ratio(batched["rollouts_per_hour"] or 0, sequential["rollouts_per_hour"] or 1), 3),
            "same_verdicts": f"{same}/{len(sequential['verdicts'])}",
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}


def print_report(result: dict[str, Any]) -> None:
    print(f"Phase 3 rollouts on {result['generator']}, {result['tasks']} training tasks x (raw, template), "
          "a fresh cache each")
    for name in ("sequential", "batched"):
        s = result[name]
        print(f"{name:>10}: n_parallel {s['n_parallel']}, batch {s['batch']}: {s['rollouts']} rollouts in "
              f"{s['seconds']} s = {s['rollouts_per_hour']} rollouts/hour (load {s['load']})")
    print(f"ratio batched / sequential: {result['ratio']}; verdicts the same: {result['same_verdicts']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--generator", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    return run_and_report("rollout_throughput", args, run, print_report)


if __name__ == "__main__":
    sys.exit(main())
