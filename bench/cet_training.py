"""CET training and generation throughput: TRL's SFTTrainer against a plain transformers step, and llama.cpp
with the exported LoRA adapter against transformers generation, on the real SmolLM2-135M base, in one run.

  training   the same examples (Phase 2 style prompts and contexts): TRL SFTTrainer tokens/s over --steps
             optimizer steps (4 sequences each, one per forward pass, activation checkpointing: cet.train's
             defaults) against a plain forward/backward/AdamW loop with the same loss on the same micro-batches,
             measured after it (both warm); and the process's peak resident memory after each part
  generation the same prompts, greedy, --max-tokens each: transformers `generate` (batch 1 and batch 4) against
             llama.cpp (the 4-bit GGUF base + the adapter exported as a GGUF LoRA)

    .venv/bin/python bench/cet_training.py [--examples 16] [--steps 4] [--prompts 4] [--max-tokens 96] [--json]

Always writes bench/results/cet_training.json; ``--json`` also prints it instead of the table.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from typing import Any

import torch

from cet.config import load_config
from cet.data.gold_context import gold_context
from cet.data.task_input import cet_input, hidden_strings, task_view
from cet.execution.tasks import iter_tasks
from cet.model.cet import CETModel
from cet.model.prompts import input_messages
from cet.model.training import plain_step_throughput, sft_example, train_sft
from common import log, ratio, run_and_report


def training_tasks(n: int) -> list[Any]:
    return [t for t in iter_tasks("data/tasks/exercism.jsonl") if t.metadata.split == "train"][:n]


def training_pairs(tasks: list[Any], cfg: Any) -> list[tuple[list[dict[str, str]], str]]:
    """(prompt, target) as Phase 2 builds its requirement pairs, without retrieval."""
    pairs = []
    for task in tasks:
        view = task_view(task, cfg.exec.visible_tests)
        inp = cet_input(view, budget=cfg.cet.input_tokens)
        pairs.append((input_messages(inp), gold_context(inp, hidden_strings(view)).to_text()))
    return pairs


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = load_config(cet={"train": {"batch_size": 4, "epochs": 1.0, "save_steps": 1000}})
    tasks = training_tasks(min(args.examples, args.steps * 4))
    pairs = training_pairs(tasks, cfg)
    data = [sft_example(prompt, target) for prompt, target in pairs]
    cet = CETModel.from_base(cfg)
    memory = {"loaded": peak_rss_mb()}
    log("warm-up: one plain micro-step (not counted) ...")
    plain_step_throughput(cet, data, cfg.cet.train.model_copy(update={"batch_size": 1}), steps=1)
    log("TRL SFTTrainer ...")
    with tempfile.TemporaryDirectory() as out:
        trained = train_sft(cet, data, cfg.cet.train, out, quiet=True)
    memory["trained"] = peak_rss_mb()
    log(f"trainer {trained.tokens_per_s} tokens/s; plain transformers steps ...")
    plain = plain_step_throughput(cet, data, cfg.cet.train, steps=args.steps)
    memory["plain"] = peak_rss_mb()
    log(f"plain {plain['tokens_per_s']} tokens/s")
    prompts = [prompt for prompt, _ in pairs[: args.prompts]]
    gen: dict[str, Any] = {}
    cet.cfg = load_config(cet={"inference": "transformers"})
    for batch in (1, 4):
        started = time.perf_counter()
        replies = cet.generate(prompts, max_new_tokens=args.max_tokens, batch_size=batch)
        seconds = time.perf_counter() - started
        tokens = sum(len(cet.tokenizer(r)["input_ids"]) for r in replies)
        gen[f"transformers_batch{batch}"] = {"tokens": tokens, "seconds": round(seconds, 2),
                                             "tokens_per_s": round(tokens / seconds, 2)}
        log(f"transformers batch {batch}: {gen[f'transformers_batch{batch}']['tokens_per_s']} tokens/s")
    cet.cfg = load_config(cet={"inference": "llamacpp"})
    cet.generate(prompts[:1], max_new_tokens=4)  # export + load, not timed
    started = time.perf_counter()
    replies = cet.generate(prompts, max_new_tokens=args.max_tokens)
    seconds = time.perf_counter() - started
    tokens = sum(len(cet.tokenizer(r)["input_ids"]) for r in replies)
    gen["llamacpp_adapter"] = {"tokens": tokens, "seconds": round(seconds, 2),
                               "tokens_per_s": round(tokens / seconds, 2)}
    cet.close_engine()
    memory["generated"] = peak_rss_mb()
    best_hf = max(gen["transformers_batch1"]["tokens_per_s"], gen["transformers_batch4"]["tokens_per_s"])
    return {"examples": len(data), "threads": torch.get_num_threads(),
            "training": {"trainer": trained.to_dict(), "plain": plain,
                         "ratio_trainer_vs_plain": round(ratio(trained.tokens_per_s, plain["tokens_per_s"]), 3),
                         "settings": cfg.cet.train.model_dump()},
            "peak_rss_mb_after": memory,
            "generation": gen,
            "ratio_llamacpp_vs_best_transformers": round(ratio(gen["llamacpp_adapter"]["tokens_per_s"], best_hf), 2)}


def print_report(result: dict[str, Any]) -> None:
    t = result["training"]
    print(f"CET training on {result['examples']} examples, {result['threads']} threads\n")
    print(f"TRL SFTTrainer         {t['trainer']['tokens_per_s']:8.1f} tokens/s ({t['trainer']['steps']} steps)")
    print(f"plain transformers     {t['plain']['tokens_per_s']:8.1f} tokens/s ({t['plain']['steps']} steps)")
    print(f"ratio                  {t['ratio_trainer_vs_plain']:8.3f}")
    print("peak RSS (MB) after     " + ", ".join(f"{k} {v:.0f}" for k, v in result["peak_rss_mb_after"].items())
          + "\n")
    for name, g in result["generation"].items():
        print(f"{name:22s} {g['tokens_per_s']:8.1f} tokens/s")
    print(f"ratio llama.cpp / best transformers {result['ratio_llamacpp_vs_best_transformers']:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--json", action="store_true")
    return run_and_report("cet_training", parser.parse_args(), run, print_report)


if __name__ == "__main__":
    sys.exit(main())
