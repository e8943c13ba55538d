"""Phase 3's rollouts: candidate contexts for a training task, each given to every generator of the team; the code
runs in the sandbox on the task's HIDDEN tests; verdict, failure pattern and reward recorded.

    candidates of a task  raw (no context: the anchor every reward is read against), the template (the evaluation's
                          rule-based context), the CET's greedy context and `samples` sampled ones, the task's
                          playbook items alone and with the interface; identical contexts rolled out once
    one rollout           (task, candidate, generator) -> the generator's prompt is the evaluation's (the task as
                          given + the context) -> code (extracted as in the evaluation) -> sandbox on the hidden
                          tests -> passed, reward and its terms (execution/reward.py), failure class and pattern
    rollouts file         one JSON line per rollout (Hugging Face `datasets` loads it: `load_dataset("json", ...)`),
                          appended as each batch finishes; a rerun skips the rollouts already in it, and every
                          generation goes through the team's response cache
    robust reward         per (task, candidate): mean - lam * variance of the generators' rewards, the minimum
                          reported (a context that helps one generator and breaks another is not a good context)

Only training tasks are rolled out (phases/phase3.py checks); the generator sees the task as given and the context,
never the hidden tests.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean, pvariance
from typing import Any

from cet.config import CetConfig
from cet.data.playbook import Playbook, view_features
from cet.data.task_input import TaskView
from cet.errors import CetError
from cet.execution.failures import classify_failure, failure_pattern, failure_report
from cet.execution.result import ExecutionResult
from cet.llm.base import Message
from cet.llm.jury import extract_code
from cet.llm.team import Request, Team
from cet.model.context import GENERATOR_SYSTEM, EngineeredContext, render_prompt
from cet.model.prompts import CETInput, approx_tokens
from cet.phases.common import append_jsonl, read_jsonl, sandbox_executor

ROLLOUTS = "rollouts.jsonl"
REPORT_CHARS = 1500  # of the failure report kept with a failed rollout (what a repair attempt reads)


@dataclass(frozen=True)
class Candidate:
    name: str  # raw | template | cet | cet@<seed> | playbook | interface+playbook | repair ...
    context: EngineeredContext = field(default_factory=EngineeredContext)
    items: tuple[str, ...] = ()  # the playbook items its pitfalls hold

    @property
    def text(self) -> str:
        return self.context.to_text()

    @property
    def key(self) -> str:
        return hashlib.sha1(self.text.encode("utf-8")).hexdigest()[:12]


@dataclass
class Work:
    """One task to roll out: its view, what the CET read for it, and its candidates."""

    view: TaskView
    inp: CETInput
    candidates: list[Candidate]

    @property
    def features(self) -> frozenset[str]:
        return view_features(self.view)


def distinct(candidates: Iterable[Candidate]) -> list[Candidate]:
    """The first candidate of each context text: identical contexts make identical prompts (rolled out once)."""
    seen: dict[str, Candidate] = {}
    for c in candidates:
        seen.setdefault(c.key, c)
    return list(seen.values())


def playbook_candidates(inp: CETInput, playbook: Playbook, interface: Sequence[str]) -> list[Candidate]:
    """The task's matching playbook items as a context's pitfalls, alone and with the interface lines."""
    items = [i for i in playbook.active() if i.text in inp.playbook]
    if not items:
        return []
    ids, texts = tuple(i.id for i in items), [i.text for i in items]
    found = [Candidate("playbook", EngineeredContext(pitfalls=texts), ids)]
    if interface:
        found.append(Candidate("interface+playbook", EngineeredContext(interface=list(interface), pitfalls=texts),
                               ids))
    return found


def items_in(context: EngineeredContext, playbook: Playbook) -> tuple[str, ...]:
    """The ids of the playbook items a context's pitfalls carry."""
    texts = set(context.pitfalls)
    return tuple(i.id for i in playbook.items.values() if i.text in texts)


def robust_reward(rewards: Sequence[float], lam: float) -> dict[str, float]:
    """mean - lam * (population) variance across generators, with the mean, variance and minimum."""
    if not rewards:
        return {"mean": 0.0, "variance": 0.0, "robust": 0.0, "min": 0.0}
    mean, var = fmean(rewards), pvariance(rewards) if len(rewards) > 1 else 0.0
    return {"mean": round(mean, 4), "variance": round(var, 4), "robust": round(mean - lam * var, 4),
            "min": round(min(rewards), 4)}


def generator_prompt(view: TaskView, context: EngineeredContext) -> str:
    """The evaluation's generator prompt: the task as given, then the context when it is not empty."""
    return render_prompt(view.raw_text(), context if not context.is_empty() else None, language=view.task.language)


@dataclass
class RolloutStats:
    rollouts: int = 0
    generated: int = 0
    cached: int = 0
    seconds: float = 0.0
    skipped_lines: int = 0
    failed_requests: int = 0  # generator requests that failed: nothing recorded, retried by the next run

    def to_dict(self) -> dict[str, Any]:
        per_hour = round(self.rollouts / self.seconds * 3600, 1) if self.seconds and self.rollouts else None
        return {"rollouts": self.rollouts, "generated": self.generated, "cached": self.cached,
                "seconds": round(self.seconds, 1), "rollouts_per_hour": per_hour,
                "skipped_lines": self.skipped_lines, "failed_requests": self.failed_requests}


def roll_out(cfg: CetConfig, works: Sequence[Work], generators: Sequence[str], path: Path, *, round_: int,
             max_tokens: int = 320, batch: int = 8, on_step: Callable[[str], None] = lambda _: None
             ) -> tuple[list[dict[str, Any]], RolloutStats]:
    """Every (task, candidate, generator) not yet in `path`, rolled out and appended (`batch` prompts at a time, one
    generator at a time); returns every record of `path` for these tasks and the run's stats. With
    `cet.phase3.ray_address` the batches run as Ray tasks on that cluster ("local": a cluster started here), each
    with its own team and sandbox; else in this process."""
    skipped: list[str] = []
    done = {(r["task_id"], r["key"], r["generator"]) for r in read_jsonl(path, skipped)}
    stats = RolloutStats(skipped_lines=len(skipped))
    todo = [(w, c, g) for g in generators for w in works for c in w.candidates
            if (w.view.task.id, c.key, g) not in done]
    # batches never mix generators, so one generator's model is in memory at a time (the 1.5B is 1.8 GB)
    parts = [part for g in generators for part in batched([t for t in todo if t[2] == g], batch)]
    started = time.perf_counter()

    def keep(records: list[dict[str, Any]], asked: int) -> None:
        for record in records:
            append_jsonl(path, record)
            stats.rollouts += 1
            stats.cached += int(record.get("cached") is True)
            stats.generated += int(record.get("cached") is False)
        stats.failed_requests += asked - len(records)
        on_step(f"phase 3: rollouts {stats.rollouts}/{len(todo)}")

    if parts and cfg.cet.phase3.ray_address:
        for part, records in ray_parts(cfg, parts, round_, max_tokens):
            keep(records, len(part))
    elif parts:
        with Team(cfg) as team, sandbox_executor(cfg) as executor:
            for i, part in enumerate(parts):
                if i and part[0][2] != parts[i - 1][0][2]:
                    team.unload()  # the previous generator's model is done with
                keep(roll_part(team, executor, part, round_, max_tokens), len(part))
    stats.seconds = time.perf_counter() - started
    ids = {w.view.task.id for w in works}
    return [r for r in read_jsonl(path) if r["task_id"] in ids], stats


def batched(items: Sequence[Any], size: int) -> list[list[Any]]:
    """`items` in consecutive lists of at most `size`."""
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def roll_part(team: Team, executor: Any, part: Sequence[tuple[Work, Candidate, str]], round_: int,
              max_tokens: int) -> list[dict[str, Any]]:
    """One batch: the generators' replies (one team map), the code run in the sandbox, the records."""
    params = team.params(max_tokens=max_tokens, temperature=0.0)
    requests = [Request([Message("system", GENERATOR_SYSTEM), Message("user", generator_prompt(w.view, c.context))],
                        params, model=g) for w, c, g in part]
    replies = team.map("generator", requests)
    codes = [extract_code(r.text or "", w.view.task.entry_point, w.view.task.language)
             for r, (w, _, _) in zip(replies, part, strict=True)]
    runs = iter(list(executor.run_many([(w.view.hidden, code) for (w, _, _), code in zip(part, codes, strict=True)
                                        if code])))
    records = []
    for (w, c, g), reply, code in zip(part, replies, codes, strict=True):
        result = next(runs) if code else None
        if not reply.ok:
            continue  # the request itself failed (model, budget, interrupt): no verdict, retried on the next run
        record = rollout_record(w, c, g, reply.error, code, result, round_)
        record["cached"] = reply.completion.cached if reply.completion is not None else None
        records.append(record)
    return records


def ray_parts(cfg: CetConfig, parts: Sequence[Sequence[tuple[Work, Candidate, str]]], round_: int,
              max_tokens: int) -> Iterator[tuple[Sequence[Any], list[dict[str, Any]]]]:
    """The batches as Ray tasks (`cet.phase3.ray_cpus_per_task` CPUs each, as many at once as the cluster holds);
    the records of each as it ends."""
    import ray
    from ray.exceptions import RayError

    address = cfg.cet.phase3.ray_address
    started = not ray.is_initialized()
    try:
        if started:
            ray.init(address=None if address == "local" else address, include_dashboard=False, log_to_driver=False)
        task = ray.remote(num_cpus=cfg.cet.phase3.ray_cpus_per_task)(_ray_part)
        pending = {task.remote(cfg.model_dump(mode="json"), list(part), round_, max_tokens): part for part in parts}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            yield pending.pop(ready[0]), ray.get(ready[0])
    except (RayError, ConnectionError) as e:
        cause = getattr(e, "cause", None) or e  # a task's own exception, not Ray's "ray::_ray_part() (pid=…)" banner
        reason = next((line for line in str(cause).splitlines() if line.strip()), type(cause).__name__)
        raise CetError(f"rollouts on the Ray cluster {address!r} failed: {type(cause).__name__}: {reason}") from None
    finally:
        if started:
            ray.shutdown()  # a cluster this run started (or joined) is left as it was found


def _ray_part(cfg_data: dict[str, Any], part: list[tuple[Work, Candidate, str]], round_: int,
              max_tokens: int) -> list[dict[str, Any]]:
    """A Ray worker's batch: its own team and sandbox from the driver's config."""
    cfg = CetConfig.model_validate(cfg_data)
    with Team(cfg) as team, sandbox_executor(cfg) as executor:
        return roll_part(team, executor, part, round_, max_tokens)


def rollout_record(work: Work, candidate: Candidate, generator: str, generator_error: str | None, code: str | None,
                   result: ExecutionResult | None, round_: int) -> dict[str, Any]:
    task, view = work.view.task, work.view
    passed = bool(result and result.passed)
    return {
        "round": round_, "task_id": task.id, "source": task.metadata.source, "split": task.metadata.split,
        "candidate": candidate.name, "key": candidate.key, "context": candidate.text, "items": list(candidate.items),
        "features": sorted(work.features), "context_tokens": approx_tokens(candidate.text), "generator": generator,
        "generator_error": generator_error, "code": code, "passed": passed,
        "reward": round(result.reward or 0.0, 4) if result else 0.0,
        "terms": dict(result.reward_terms) if result else {},
        "tests": f"{result.tests.passed}/{result.tests.total}" if result else None,
        "failure_class": classify_failure(result, code, task.entry_point),
        "pattern": failure_pattern(result, code, task.entry_point, view.interface or task.signature or ""),
        "report": failure_report(result)[:REPORT_CHARS] if result and not passed else None,
    }


def by_candidate(records: Sequence[dict[str, Any]], generators: Sequence[str], lam: float
                 ) -> dict[str, list[dict[str, Any]]]:
    """Per task, one entry per candidate context that every generator has rolled out: its name, key, context,
    items, tokens, per-generator pass and reward, and the robust reward."""
    grouped: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        grouped[(r["task_id"], r["key"])][r["generator"]] = r
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (task_id, key), per in grouped.items():
        if not all(g in per for g in generators):
            continue
        first = per[generators[0]]
        rewards = [per[g]["reward"] for g in generators]
        out[task_id].append({"task_id": task_id, "key": key, "candidate": first["candidate"],
                             "context": first["context"], "items": first["items"],
                             "context_tokens": first["context_tokens"],
                             "passed": {g: per[g]["passed"] for g in generators},
                             "rewards": {g: per[g]["reward"] for g in generators},
                             **robust_reward(rewards, lam)})
    return dict(out)
