"""The LLM team: roles of models, rotation, bounded concurrency, retries, the response cache, usage and a budget.

`Team(cfg)` reads the roles (`llm.roles`: generator, judge, question_writer, each a list of model names) and
opens each model once, the first time it is needed, through `open_model(name, cfg)` (by default
`cet.llm.registry.open_llm`; tests pass their own opener or a dict of models).

- `ask(role, messages, params)`: one request to the role's next model. A role with several models rotates
  through them round-robin in request order, so the same sequence of requests goes to the same models on
  every run. `ask_model(name, ...)` names the model. `messages` is a list of `Message` (chat) or a string
  (plain completion).
- `map(role, requests)`: many requests, answered concurrently, results in input order (`TeamResult`);
  models are assigned in input order before anything runs. A failed request is a result with its error,
  not an exception.
- At most `llm.concurrency` model calls are in flight across the whole team (all threads, all `map`s).
- Retries: `RateLimited` (waiting its `retry_after_s` when the provider gave one), `LLMTimeout` and
  `EndpointUnreachable` are retried up to `llm.retries` times with exponential backoff (`llm.backoff_s`
  × 2^attempt); every other error (`ModelUnavailable`, `MalformedOutput`, ...) fails at once. A slot is
  not held while waiting to retry.
- The response cache (`llm.cache_path`, see cache.py) answers a repeated request without a model call;
  cache hits cost nothing and are served even after the budget is spent. A `MalformedOutput` is cached
  too (the same request gets the same reply) and raised again on a hit; other errors are not cached.
- `usage()`: in total, per model and per provider: `requests` (asked of the team, cache hits included),
  `calls` (attempts that reached a model, retries included), `cache_hits`, `retries`, `errors` (requests
  that ended in an error), `refused` (by the budget), `prompt_tokens`, `completion_tokens`, `tokens`,
  `cost_usd` and `latency_s` (of real calls only: a cache hit costs nothing); `max_in_flight`; the budget's
  state; the cache's counters.
- Budget (`llm.budget_usd` and/or `llm.budget_tokens`, counted over real model calls): once spent, every
  new request that needs a model call raises `BudgetExceeded`; calls already in flight finish and are
  counted (so the total may pass the cap by what was in flight). `map` then returns what finished, with
  the requests it could not start marked `not_run`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from cet.llm.base import (
    LLM,
    Completion,
    EndpointUnreachable,
    GenerationParams,
    LLMError,
    LLMTimeout,
    MalformedOutput,
    Message,
    ModelUnavailable,
    RateLimited,
)
from cet.llm.cache import ResponseCache

if TYPE_CHECKING:
    from cet.config import CetConfig

RETRYABLE = (RateLimited, LLMTimeout, EndpointUnreachable)
LOCAL_PROVIDERS = frozenset({"llamacpp", "transformers"})  # run on this machine's CPU (or GPU): llm.local_concurrency
MALFORMED = "malformed_output"  # marks a cached reply that was a MalformedOutput
Opener = Callable[[str, "CetConfig"], LLM]


class BudgetExceeded(LLMError):
    """The team's token or dollar budget is spent; no new model calls are made."""


@dataclass(frozen=True)
class Request:
    """One request for `Team.map`: chat messages (or a prompt string), optional parameters (else the
    team's defaults), an optional model (else the role's rotation) and a tag the caller gets back."""

    input: list[Message] | str
    params: GenerationParams | None = None
    model: str | None = None
    tag: Any = None


RequestLike = Request | list[Message] | str


@dataclass
class TeamResult:
    index: int
    request: Request
    model: str | None
    status: Literal["ok", "error", "not_run"]
    completion: Completion | None = None
    error: str | None = None  # the error's one-line message (for not_run: why it did not run)
    error_type: str | None = None  # e.g. "RateLimited", "BudgetExceeded"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def text(self) -> str | None:
        return self.completion.text if self.completion else None


_COUNTERS = ("requests", "calls", "cache_hits", "retries", "errors", "refused", "prompt_tokens",
             "completion_tokens", "cost_usd", "latency_s")


def _bucket() -> dict[str, float]:
    return {name: 0 for name in _COUNTERS}


@dataclass
class _Usage:
    """Counters per model (the name the team was asked for); totals and per-provider sums are derived."""

    by_model: dict[str, dict[str, float]] = field(default_factory=dict)
    providers: dict[str, str] = field(default_factory=dict)  # model name -> provider, once opened

    def add(self, model: str, **counts: float) -> None:
        bucket = self.by_model.setdefault(model, _bucket())
        for name, value in counts.items():
            bucket[name] += value


class Team:
    def __init__(self, cfg: CetConfig, open_model: Opener | Mapping[str, LLM] | None = None, *,
                 cache: ResponseCache | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.cfg = cfg
        self.llm_cfg = cfg.llm
        self._open_model = open_model
        self.roles: dict[str, list[str]] = {role: list(names) for role, names in cfg.llm.roles.model_dump().items()}
        self.cache = cache if cache is not None else ResponseCache(cfg.llm.cache_path)
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(cfg.llm.concurrency)
        self._local_slots = threading.BoundedSemaphore(cfg.llm.local_concurrency)
        self._lock = threading.Lock()  # usage, budget, rotation, the model table
        self._models: dict[str, LLM] = {}
        self._open_failed: dict[str, LLMError] = {}
        self._open_locks: dict[str, threading.Lock] = {}
        self._call_locks: dict[str, threading.Lock | None] = {}
        self._rotation: dict[str, int] = {}
        self._usage = _Usage()
        self._spent_tokens = 0
        self._spent_usd = 0.0
        self._in_flight = 0
        self._max_in_flight = 0

    # ---- requests

    def params(self, **changes: Any) -> GenerationParams:
        """The team's default generation parameters (from `llm`), with `changes` applied."""
        c = self.llm_cfg
        base = {"max_tokens": c.max_tokens, "temperature": c.temperature, "seed": c.seed, "timeout_s": c.timeout_s}
        return GenerationParams(**{**base, **changes})

    def ask(self, role: str, messages: list[Message] | str, params: GenerationParams | None = None) -> Completion:
        """One request to the role's next model (round-robin). Raises the `LLMError` the request ended with."""
        return self.ask_model(self.next_model(role), messages, params)

    def ask_model(self, name: str, messages: list[Message] | str,
                  params: GenerationParams | None = None) -> Completion:
        return self._run(name, messages, params or self.params())

    def map(self, role: str | None, requests: Iterable[RequestLike],
            on_result: Callable[[TeamResult], None] | None = None) -> list[TeamResult]:
        """Answer `requests` concurrently (at most `llm.concurrency` at a time across the team); results in
        input order. Requests without a model get the role's rotation, assigned in input order. `on_result`
        is called with each result as it is collected, in order. Once the budget is spent the remaining
        requests come back `not_run`; on an interrupt, the requests not started are cancelled, those in
        flight finish (and are cached), and the interrupt propagates."""
        reqs = as_requests(list(requests))
        if not reqs:
            return []
        assigned = []
        for r in reqs:
            if r.model is None and role is None:
                raise LLMError("a request without a model needs a role")
            assigned.append(r.model or self.next_model(role))  # type: ignore[arg-type]
        cancelled = threading.Event()

        def work(i: int) -> TeamResult:
            req, name = reqs[i], assigned[i]
            if cancelled.is_set():
                return TeamResult(i, req, name, "not_run", error="cancelled", error_type="Cancelled")
            try:
                completion = self._run(name, req.input, req.params or self.params())
            except BudgetExceeded as e:
                return TeamResult(i, req, name, "not_run", error=str(e), error_type="BudgetExceeded")
            except LLMError as e:
                return TeamResult(i, req, name, "error", error=str(e), error_type=type(e).__name__)
            return TeamResult(i, req, name, "ok", completion=completion)

        pool = ThreadPoolExecutor(max_workers=min(self.llm_cfg.concurrency, len(reqs)), thread_name_prefix="cet-team")
        futures: list[Future[TeamResult]] = [pool.submit(work, i) for i in range(len(reqs))]
        results: list[TeamResult] = []
        try:
            for future in futures:
                result = future.result()
                results.append(result)
                if on_result:
                    on_result(result)
        except BaseException:
            cancelled.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return results

    def next_model(self, role: str) -> str:
        """The role's next model in the rotation (advances it)."""
        names = self.models_for(role)
        with self._lock:
            turn = self._rotation.get(role, 0)
            self._rotation[role] = turn + 1
        return names[turn % len(names)]

    def models_for(self, role: str) -> list[str]:
        if role not in self.roles:
            raise LLMError(f"unknown team role {role!r}; the roles are {', '.join(sorted(self.roles))}")
        if not self.roles[role]:
            raise LLMError(f"the team role {role!r} has no models (set llm.roles.{role})")
        return list(self.roles[role])

    # ---- models

    def model(self, name: str) -> LLM:
        """The model `name`, opened on first use (once, even under concurrent first requests)."""
        with self._lock:
            if name in self._models:
                return self._models[name]
            lock = self._open_locks.setdefault(name, threading.Lock())
        with lock:
            with self._lock:
                if name in self._models:
                    return self._models[name]
                if name in self._open_failed:
                    raise self._open_failed[name]
            try:
                llm = self._open(name)
            except LLMError as e:
                with self._lock:
                    self._open_failed[name] = e
                raise
            with self._lock:
                self._models[name] = llm
                self._usage.providers[name] = llm.provider
                self._call_locks[name] = None if getattr(llm, "thread_safe", False) else threading.Lock()
            return llm

    def _open(self, name: str) -> LLM:
        opener = self._open_model
        if isinstance(opener, Mapping):
            if name not in opener:
                raise ModelUnavailable(f"model {name!r} is not in this team's models")
            return opener[name]
        if opener is None:
            from cet.llm.registry import open_llm  # heavy (providers import their libraries): only when needed

            opener = open_llm
        try:
            return opener(name, self.cfg)
        except LLMError:
            raise
        except Exception as e:  # an opener's own failure is still a model that cannot be used
            raise ModelUnavailable(f"cannot open model {name!r}: {type(e).__name__}: {e}") from e

    def loaded_models(self) -> list[str]:
        with self._lock:
            return list(self._models)

    # ---- the call

    def _run(self, name: str, request: list[Message] | str, params: GenerationParams) -> Completion:
        with self._lock:
            self._usage.add(name, requests=1)
            loaded = name in self._models
        if not loaded and self._budget_spent():
            # not opening a model (possibly expensive) only to refuse its request
            self._refuse(name)
        try:
            llm = self.model(name)
        except LLMError:
            with self._lock:
                self._usage.add(name, errors=1)
            raise
        key, hit = self.cache.lookup(llm.name, llm.provider, params, request)
        if hit is not None:
            with self._lock:
                self._usage.add(name, cache_hits=1)
            if MALFORMED in hit.extra:  # the model's reply to this request was not the JSON asked for
                with self._lock:
                    self._usage.add(name, errors=1)
                raise MalformedOutput(str(hit.extra[MALFORMED]), hit.text)
            return hit
        try:
            completion = self._call_with_retries(name, llm, request, params)
        except MalformedOutput as e:
            # as much an answer as a good one (the same request gets the same reply): cached, so a rerun does
            # not pay for it again
            self.cache.put(key, Completion(text=e.text, model=llm.name, provider=llm.provider, prompt_tokens=0,
                                           completion_tokens=0, latency_s=0.0, extra={MALFORMED: str(e)}))
            raise
        self.cache.put(key, completion)
        return completion

    def _call_with_retries(self, name: str, llm: LLM, request: list[Message] | str,
                           params: GenerationParams) -> Completion:
        retries, attempt = self.llm_cfg.retries, 0
        while True:
            # a model that is not known to be thread-safe is called one request at a time; its queue waits
            # before taking a slot, so it does not hold slots other models could use
            local = self._local_slots if llm.provider in LOCAL_PROVIDERS else contextlib.nullcontext()
            with self._call_locks.get(name) or contextlib.nullcontext(), local, self._slots:
                if attempt == 0 and self._budget_spent():
                    self._refuse(name)
                with self._lock:
                    self._in_flight += 1
                    self._max_in_flight = max(self._max_in_flight, self._in_flight)
                    self._usage.add(name, calls=1)
                try:
                    completion = self._call(llm, request, params)
                except RETRYABLE as e:
                    error: LLMError = e
                except LLMError:
                    self._count_error(name, llm)
                    raise
                except Exception as e:  # a provider bug must not take the whole run down: an error of this request
                    self._count_error(name, llm)
                    raise LLMError(f"{name}: unexpected {type(e).__name__}: {e}") from e
                else:
                    with self._lock:
                        self._usage.add(name, prompt_tokens=completion.prompt_tokens,
                                        completion_tokens=completion.completion_tokens,
                                        cost_usd=completion.cost_usd or 0.0, latency_s=completion.latency_s)
                        self._spent_tokens += completion.prompt_tokens + completion.completion_tokens
                        self._spent_usd += completion.cost_usd or 0.0
                    return completion
                finally:
                    with self._lock:
                        self._in_flight -= 1
            if attempt >= retries:
                self._count_error(name, llm)
                raise error
            retry_after = getattr(error, "retry_after_s", None)
            delay = retry_after if retry_after is not None else self.llm_cfg.backoff_s * (2 ** attempt)
            with self._lock:
                self._usage.add(name, retries=1)
            attempt += 1
            self._sleep(max(0.0, float(delay)))

    @staticmethod
    def _call(llm: LLM, request: list[Message] | str, params: GenerationParams) -> Completion:
        return llm.complete(request, params) if isinstance(request, str) else llm.chat(request, params)

    def _count_error(self, name: str, llm: LLM) -> None:
        with self._lock:
            self._usage.add(name, errors=1)

    # ---- budget and usage

    def _budget_spent(self) -> bool:
        c = self.llm_cfg
        with self._lock:
            return bool((c.budget_tokens is not None and self._spent_tokens >= c.budget_tokens)
                        or (c.budget_usd is not None and self._spent_usd >= c.budget_usd))

    def _refuse(self, name: str) -> None:
        with self._lock:
            self._usage.add(name, refused=1)
        raise BudgetExceeded(self.budget_message())

    def budget_message(self) -> str:
        c, parts = self.llm_cfg, []
        with self._lock:
            if c.budget_tokens is not None:
                parts.append(f"{self._spent_tokens:,} tokens of the {c.budget_tokens:,}-token budget")
            if c.budget_usd is not None:
                parts.append(f"${self._spent_usd:.4f} of the ${c.budget_usd:.4f} budget")
        return "LLM budget spent: " + " and ".join(parts) + "; no new model calls are made"

    @property
    def budget_exceeded(self) -> bool:
        return self._budget_spent()

    def usage(self) -> dict[str, Any]:
        """Counters in total, per model and per provider, the budget's state, and the cache's counters."""
        c = self.llm_cfg

        def clean(bucket: dict[str, float]) -> dict[str, Any]:
            out: dict[str, Any] = {k: (round(v, 6) if k in ("cost_usd", "latency_s") else int(v))
                                   for k, v in bucket.items()}
            out["tokens"] = out["prompt_tokens"] + out["completion_tokens"]
            return out

        with self._lock:
            total, by_provider, by_model = _bucket(), {}, {}
            for name, bucket in sorted(self._usage.by_model.items()):
                provider = self._usage.providers.get(name, "unknown")
                by_model[name] = {"provider": provider, **clean(bucket)}
                for target in (total, by_provider.setdefault(provider, _bucket())):
                    for counter, value in bucket.items():
                        target[counter] += value
            report = {
                **clean(total),
                "by_model": by_model,
                "by_provider": {p: clean(b) for p, b in sorted(by_provider.items())},
                "max_in_flight": self._max_in_flight,
                "budget": {"tokens": c.budget_tokens, "usd": c.budget_usd, "spent_tokens": self._spent_tokens,
                           "spent_usd": round(self._spent_usd, 6)},
            }
        report["budget"]["exceeded"] = self._budget_spent()
        report["cache"] = self.cache.stats()
        return report

    # ---- lifetime

    def close(self) -> None:
        with self._lock:
            models, self._models = list(self._models.values()), {}
        for llm in models:
            try:
                llm.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self.cache.close()

    def __enter__(self) -> Team:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def as_requests(items: Sequence[RequestLike]) -> list[Request]:
    return [r if isinstance(r, Request) else Request(r) for r in items]
