"""Embedding throughput of the ONNX embedder (what ingest spends ~99% of its time on) across its settings, in
one run: batch size, truncation length and onnxruntime threads, each against the setting before issue 14 (batch
64, 128 word pieces, min(CPUs, 4) threads; "default" below) measured in the same rounds. Its first run picked
batch 16 (1.24x, the same vectors), now kb.embedding.batch_size's default.

The texts are --n real chunk texts sampled from data/kb.sqlite (the store `make run` builds). Every setting
embeds the same texts once per round; the rounds rotate the order of the settings so the drifting load of a
shared machine falls on all of them alike; the median round gives chunks/s. Vectors are compared with the
default's (mean cosine): batch size and threads must not change them; the truncation length does (the model
was trained on 128 word pieces, so a longer one is a quality question, not a speed one, and is reported apart).

    .venv/bin/python bench/embedding_throughput.py [--n 256] [--rounds 3] [--db data/kb.sqlite] [--json]

Always writes bench/results/embedding_throughput.json; ``--json`` also prints it instead of the table.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from typing import Any

import numpy as np

from cet.knowledge.embedding import OnnxEmbedder
from common import log, ratio, run_and_report
from corpus import DEFAULT_DB, chunk_texts

DEFAULT = (64, 128, None)  # batch size, max tokens, threads (None: min(CPUs, 4))


def settings(cpus: int) -> list[tuple[int, int, int | None]]:
    grid = [DEFAULT]
    grid += [(b, 128, None) for b in (8, 16, 32, 128, 256)]
    grid += [(64, 128, t) for t in sorted({1, 2, cpus, min(cpus, 4)}) if t]
    grid += [(64, m, None) for m in (64, 256)]
    return list(dict.fromkeys(grid))


def label(setting: tuple[int, int, int | None]) -> str:
    batch, tokens, threads = setting
    return f"batch {batch}, {tokens} tokens, {threads or 'default'} threads"


def run(args: argparse.Namespace) -> dict[str, Any]:
    texts = chunk_texts(args.db)
    random.Random(args.seed).shuffle(texts)
    texts = texts[: args.n]
    cpus = os.cpu_count() or 1
    grid = settings(cpus)
    embedders = {s: OnnxEmbedder(batch_size=s[0], max_tokens=s[1], threads=s[2]) for s in grid}
    for embedder in embedders.values():
        embedder.embed(texts[:16])  # warm
    seconds: dict[tuple, list[float]] = {s: [] for s in grid}
    vectors: dict[tuple, np.ndarray] = {}
    for number in range(args.rounds):
        order = grid[number % len(grid):] + grid[: number % len(grid)]
        for setting in order:
            started = time.perf_counter()
            vectors[setting] = embedders[setting].embed(texts)
            seconds[setting].append(time.perf_counter() - started)
        log(f"round {number + 1}/{args.rounds} done")
    base = statistics.median(seconds[DEFAULT])
    rows = {}
    for setting in grid:
        median = statistics.median(seconds[setting])
        cosine = float(np.mean(np.sum(vectors[setting] * vectors[DEFAULT], axis=1)))
        rows[label(setting)] = {"batch_size": setting[0], "max_tokens": setting[1], "threads": setting[2],
                                "chunks_per_s": len(texts) / median, "speedup_vs_default": ratio(base, median),
                                "mean_cosine_to_default": cosine, "seconds": seconds[setting]}
    same_vectors = {k: v for k, v in rows.items() if v["max_tokens"] == DEFAULT[1]}
    best = max(same_vectors, key=lambda k: same_vectors[k]["chunks_per_s"])
    return {"texts": len(texts), "mean_chars": float(np.mean([len(t) for t in texts])), "cpus": cpus,
            "rounds": args.rounds, "default": label(DEFAULT), "settings": rows,
            "best_same_vectors": best, "best_speedup": rows[best]["speedup_vs_default"]}


def print_report(result: dict[str, Any]) -> None:
    print(f"{result['texts']} real chunks (mean {result['mean_chars']:.0f} chars), {result['cpus']} CPUs, "
          f"median of {result['rounds']} rounds; default: {result['default']}")
    print(f"{'setting':44}{'chunks/s':>10}{'vs default':>12}{'cosine':>9}")
    for name, row in result["settings"].items():
        print(f"{name:44}{row['chunks_per_s']:>10.1f}{row['speedup_vs_default']:>11.2f}x"
              f"{row['mean_cosine_to_default']:>9.4f}")
    print(f"fastest with the default's vectors: {result['best_same_vectors']} "
          f"({result['best_speedup']:.2f}x the default)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


def main() -> int:
    return run_and_report("embedding_throughput", parse_args(), run, print_report)


if __name__ == "__main__":
    raise SystemExit(main())
