"""The context service under load, and the proxy's added latency, against baselines measured in the same run.

Load: the real `cet serve` (a subprocess on a loopback port, its own SQLite feedback store) answers clients that
each ask for a context (POST /v1/context) and report its outcome (POST /v1/feedback), round after round.

  baseline     one client: p50/p95 of /v1/context and contexts/s
  concurrent   --clients clients at once: the same, and the ratio of throughput and of p50 to the baseline
  kill -9      --clients clients again; the server is killed with SIGKILL when the first client is halfway and
               started again on the same store; the clients retry what failed; the store is then checked against
               what the clients were told: acknowledged outcomes lost or changed, outcomes stored that no client
               was told of (all must be 0); a request id cannot be stored twice (the primary key)

The strategy served is --strategy (template by default: the rule-based context from the knowledge base's hits,
so a request embeds a query and searches data/kb.sqlite; --no-retrieval leaves the knowledge base out).

Proxy: the same chat request (a generator model, greedy, --max-tokens) answered by the team in this process
(`Team.ask_model`, direct) and through `cet serve --strategy none`'s /v1/chat/completions (proxy: HTTP, arm
assignment, recording the pair; the "none" arm adds no context, so both prompts are the same), alternating,
each prompt made distinct per round (and each side with its own response cache) so no cache answers. The
overhead is the median difference.

    .venv/bin/python bench/serve_load.py [--clients 8] [--rounds 40] [--strategy template] [--no-retrieval]
        [--model smollm2-135m-instruct] [--proxy-rounds 12] [--max-tokens 48] [--json]

Always writes bench/results/serve_load.json; ``--json`` also prints it instead of the table.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from cet.config import load_config
from cet.errors import CetError
from cet.llm.base import Message
from cet.llm.team import Team
from cet.serving.load import check_store, free_port, run_load, start_server
from common import log, ratio, run_and_report, temp_dir

CET = Path(sys.executable).with_name("cet")


def start(args: list[str], port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    try:
        return start_server([str(CET), "serve", *args, "--port", str(port)], port, env, log_path, seconds=120)
    except CetError as e:
        raise SystemExit(str(e)) from None


def environment(where: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CET_")}
    env.update({"CET_SERVE__FEEDBACK_DB": str(where / "feedback.sqlite"),
                "CET_SERVE__REGISTRY_DIR": str(where / "registry"), "CET_LLM__CACHE_PATH": str(where / "cache.sqlite"),
                **extra})
    return env


def load_part(args: argparse.Namespace) -> dict[str, Any]:
    serve_args = ["--strategy", args.strategy] + (["--no-retrieval"] if args.no_retrieval else [])
    out: dict[str, Any] = {"strategy": args.strategy, "retrieval": not args.no_retrieval}
    with temp_dir("cet-serve-load-") as where:
        env, port, log_path = environment(where), free_port(), where / "serve.log"
        server = start(serve_args, port, env, log_path)
        base = f"http://127.0.0.1:{port}"
        try:
            run_load(base, 1, 5)  # warm-up: the embedder loads on the first search
            log("load: one client")
            out["baseline"] = {**run_load(base, 1, args.rounds).summary(), "clients": 1}
            log(f"load: {args.clients} clients")
            out["concurrent"] = {**run_load(base, args.clients, args.rounds).summary(), "clients": args.clients}
        finally:
            server.kill()
            server.wait()
        env = environment(where / "kill")  # a store of its own: what is in it came from this phase alone
        (where / "kill").mkdir()
        servers = [start(serve_args, port, env, log_path)]

        def kill_and_restart(done: int) -> None:
            if done == args.rounds // 2 and len(servers) == 1:
                os.kill(servers[0].pid, signal.SIGKILL)
                servers[0].wait()
                servers.append(start(serve_args, port, env, log_path))

        log(f"load: {args.clients} clients, kill -9 halfway")
        try:
            killed = run_load(base, args.clients, args.rounds, during=kill_and_restart, deadline_s=300)
        finally:
            for server in servers:
                server.kill()
                server.wait()
        out["kill_9"] = {**killed.summary(), "clients": args.clients, "killed": len(servers) == 2,
                         "store": check_store(str(where / "kill" / "feedback.sqlite"), killed.acknowledged)}
    out["throughput_ratio"] = ratio(out["concurrent"]["throughput_per_s"], out["baseline"]["throughput_per_s"])
    out["p50_ratio"] = ratio(out["concurrent"]["p50_ms"], out["baseline"]["p50_ms"])
    return out


def proxy_part(args: argparse.Namespace) -> dict[str, Any]:
    with temp_dir("cet-serve-proxy-") as where:
        generator = f'["{args.model}"]'
        env = environment(where, CET_LLM__ROLES__GENERATOR=generator)
        port, log_path = free_port(), where / "serve.log"
        cfg = load_config(llm={"cache_path": str(where / "direct-cache.sqlite"), "roles": {"generator": [args.model]}})
        server = start(["--strategy", "none", "--no-retrieval"], port, env, log_path)
        direct, proxied = [], []
        try:
            with Team(cfg) as team, httpx.Client(timeout=600) as client:
                params = team.params(max_tokens=args.max_tokens, temperature=0.0)
                for r in range(args.proxy_rounds + 1):  # the first round warms both up and is not counted
                    text = f"Round {r:03d}: write a Python function `add_{r}(a, b)` that returns a + b."
                    started = time.perf_counter()
                    reply = team.ask_model(args.model, [Message("user", text)], params)
                    seconds_direct = time.perf_counter() - started
                    started = time.perf_counter()
                    answer = client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={
                        "model": args.model, "messages": [{"role": "user", "content": text}],
                        "max_tokens": args.max_tokens, "temperature": 0.0})
                    seconds_proxy = time.perf_counter() - started
                    if answer.status_code != 200:
                        raise SystemExit(f"proxy round failed: {answer.status_code} {answer.text[:300]}")
                    tokens = answer.json()["usage"]["completion_tokens"]
                    log(f"proxy round {r}: direct {seconds_direct:.2f} s ({reply.completion_tokens} "
                        f"tokens), proxy {seconds_proxy:.2f} s ({tokens} tokens)")
                    if r:
                        direct.append((seconds_direct, reply.completion_tokens))
                        proxied.append((seconds_proxy, tokens))
        finally:
            server.kill()
            server.wait()
    per_token = [d / max(n, 1) for d, n in direct], [p / max(n, 1) for p, n in proxied]
    median_direct, median_proxy = statistics.median(d for d, _ in direct), statistics.median(p for p, _ in proxied)
    paired = sorted((p - d) * 1000 for (d, _), (p, _) in zip(direct, proxied, strict=True))
    return {"model": args.model, "max_tokens": args.max_tokens, "rounds": len(direct),
            "paired_added_ms": paired, "paired_added_ms_median": statistics.median(paired),
            "direct_median_s": median_direct, "proxy_median_s": median_proxy,
            "added_ms_median": (median_proxy - median_direct) * 1000,
            "ratio": ratio(median_proxy, median_direct),
            "per_token_ratio": ratio(statistics.median(per_token[1]), statistics.median(per_token[0])),
            "tokens_direct": [n for _, n in direct], "tokens_proxy": [n for _, n in proxied]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    return {"load": load_part(args), "proxy": None if args.proxy_rounds == 0 else proxy_part(args)}


def report(result: dict[str, Any]) -> None:
    load = result["load"]
    print(f"/v1/context ({load['strategy']}, retrieval {'on' if load['retrieval'] else 'off'})")
    print(f"{'run':12s} {'clients':>7s} {'p50 ms':>8s} {'p95 ms':>8s} {'ctx/s':>7s} {'retries':>7s}")
    for name in ("baseline", "concurrent", "kill_9"):
        row = load[name]
        print(f"{name:12s} {row['clients']:7d} {row['p50_ms']:8.1f} {row['p95_ms']:8.1f} "
              f"{row['throughput_per_s']:7.1f} {row['retries']:7d}")
    print(f"throughput ratio concurrent/baseline {load['throughput_ratio']:.2f}x; p50 ratio {load['p50_ratio']:.2f}x")
    store = load["kill_9"]["store"]
    print(f"kill -9: acknowledged {store['acknowledged']}, stored {store['stored']}, lost {store['lost']}, "
          f"changed {store['changed']}, unacknowledged {store['unacknowledged']}, contexts without an outcome "
          f"{store['contexts_without_outcome']}; reports answered as duplicates "
          f"{load['kill_9']['duplicates_reported']}")
    proxy = result["proxy"]
    if proxy:
        print(f"proxy ({proxy['model']}, {proxy['rounds']} rounds): direct {proxy['direct_median_s']:.2f} s, proxy "
              f"{proxy['proxy_median_s']:.2f} s, added {proxy['added_ms_median']:.0f} ms ({proxy['ratio']:.3f}x; per "
              f"token {proxy['per_token_ratio']:.3f}x); paired differences {proxy['paired_added_ms'][0]:.0f} to "
              f"{proxy['paired_added_ms'][-1]:.0f} ms, median {proxy['paired_added_ms_median']:.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--strategy", default="template", choices=["template", "naive_rag", "none"])
    parser.add_argument("--no-retrieval", action="store_true")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--proxy-rounds", type=int, default=12)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--json", action="store_true")
    return run_and_report("serve_load", parser.parse_args(), run, report)


if __name__ == "__main__":
    sys.exit(main())
