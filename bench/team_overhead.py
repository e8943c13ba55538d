"""Team overhead: generation tokens/s through the team interface against xllamacpp called directly, on the
same model, prompts and parameters, alternating in one run; then throughput with concurrent requests.

  direct   xllamacpp.Server(CommonParams).handle_chat_completions(request) (non-streamed), its own copy of
           the model loaded with the same threads and context
  team     Team.ask_model(...) with the response cache off: cet's LlamaCppLLM (streamed, so it can cancel
           at a timeout), rotation, retries, accounting, the concurrency semaphore
  ratio    team tokens/s / direct tokens/s (goal >= 0.9)

Concurrency: --requests distinct prompts through `Team.map` with llm.concurrency 1 and 2 (requests/s).
One llama.cpp model answers one request at a time here, so two in flight only overlap the Python side.

    .venv/bin/python bench/team_overhead.py [--model smollm2-135m-instruct] [--prompts 8] [--max-tokens 64]
        [--rounds 2] [--json]

Always writes bench/results/team_overhead.json; ``--json`` also prints it instead of the table.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from cet.config import load_config
from cet.llm.base import Message
from cet.llm.cache import ResponseCache
from cet.llm.catalog import model_path
from cet.llm.team import Request, Team
from common import log, ratio, run_and_report

TOPICS = ["reverse a string", "check whether a number is prime", "flatten a nested list", "count vowels",
          "merge two sorted lists", "compute a factorial iteratively", "find the longest word", "rotate a list",
          "remove duplicates keeping order", "parse an ISO date", "sum the digits of a number", "transpose a matrix"]


def prompts(n: int) -> list[list[Message]]:
    return [[Message("user", f"Write a short Python function to {TOPICS[i % len(TOPICS)]}. Variant {i}.")]
            for i in range(n)]


def direct_server(path: str, n_threads: int, n_ctx: int):  # noqa: ANN201
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = path
    params.n_ctx = n_ctx
    params.n_parallel = 1
    params.cpuparams.n_threads = n_threads
    params.cpuparams_batch.n_threads = n_threads
    params.warmup = False
    params.verbosity = 0
    return xllamacpp.Server(params)


def run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = load_config(llm={"concurrency": 1})
    path = str(model_path(args.model, cfg.llm))
    server = direct_server(path, cfg.llm.n_threads, cfg.llm.n_ctx)
    team = Team(cfg, cache=ResponseCache(None))  # no response cache: every request reaches the model
    params = team.params(max_tokens=args.max_tokens, temperature=0.0, seed=0)
    batch = prompts(args.prompts)
    team.ask_model(args.model, batch[0], params)  # load + warm both before timing
    server.handle_chat_completions({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    totals = {"direct": [0, 0.0], "team": [0, 0.0]}
    for r in range(args.rounds):
        for i, messages in enumerate(batch):
            order = ["direct", "team"] if (i + r) % 2 == 0 else ["team", "direct"]
            for name in order:
                started = time.perf_counter()
                if name == "direct":
                    reply = server.handle_chat_completions({
                        "messages": [{"role": m.role, "content": m.content} for m in messages],
                        "max_tokens": args.max_tokens, "temperature": 0.0, "seed": 0})
                    tokens = reply["usage"]["completion_tokens"]
                else:
                    tokens = team.ask_model(args.model, messages, params).completion_tokens
                totals[name][0] += tokens
                totals[name][1] += time.perf_counter() - started
        log(f"round {r + 1}: direct {totals['direct'][0] / totals['direct'][1]:.1f} tok/s, "
            f"team {totals['team'][0] / totals['team'][1]:.1f} tok/s")
    rates = {name: tokens / seconds for name, (tokens, seconds) in totals.items()}
    concurrency = {}
    for level in (1, 2):
        level_team = Team(load_config(llm={"concurrency": level}), open_model={args.model: team.model(args.model)},
                          cache=ResponseCache(None))
        started = time.perf_counter()
        results = level_team.map(None, [Request(m, params, model=args.model) for m in batch])
        seconds = time.perf_counter() - started
        concurrency[str(level)] = {"requests_per_s": round(len(batch) / seconds, 3),
                                   "tokens_per_s": round(sum(r.completion.completion_tokens for r in results
                                                             if r.ok) / seconds, 2),
                                   "ok": sum(r.ok for r in results)}
    team.close()
    return {"model": args.model, "prompts": args.prompts, "rounds": args.rounds, "max_tokens": args.max_tokens,
            "direct_tokens_per_s": round(rates["direct"], 2), "team_tokens_per_s": round(rates["team"], 2),
            "ratio_team_vs_direct": round(ratio(rates["team"], rates["direct"]), 3),
            "tokens": {name: t for name, (t, _) in totals.items()}, "concurrency": concurrency}


def print_report(result: dict[str, Any]) -> None:
    print(f"Team overhead on {result['model']}: {result['prompts']} prompts x {result['rounds']} rounds, "
          f"max {result['max_tokens']} tokens\n")
    print(f"direct xllamacpp  {result['direct_tokens_per_s']:8.2f} tokens/s")
    print(f"through the team  {result['team_tokens_per_s']:8.2f} tokens/s")
    print(f"ratio             {result['ratio_team_vs_direct']:8.3f}  (goal >= 0.9)")
    for level, c in result["concurrency"].items():
        print(f"concurrency {level}: {c['requests_per_s']:.2f} requests/s, {c['tokens_per_s']:.1f} tokens/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    name = "team_overhead" if args.model == "smollm2-135m-instruct" else f"team_overhead-{args.model}"
    return run_and_report(name, args, run, print_report)


if __name__ == "__main__":
    sys.exit(main())
