"""The LLM team: roles of models, rotation, bounded concurrency, retries, the response cache, usage and a budget.

`Team(cfg)` reads the roles (`llm.roles`: generator, judge, question_writer, each a list of model names) and
opens each model once, the first time it is needed, through `open_model(name, cfg)` (by default
`cet.llm.registry.open_llm`; tests pass their own opener or a dict of models).

- `ask(role, messages, params)`: one request to the role's next model. A role with several models rotates
  through them round-robin in request order, so the same sequence of requests goes to the same models on
  every run. `ask_model(name, ...)` names the model. `messages` is a list of `Message` (chat) or a string
  (plain completion).
- `map(role, requests)`: many requests, answered concurrently, results in input order (`TeamResult`);
  models are assigned in input order before anything runs (and opened, to size the worker pool: the remote
  bound plus every local model's capacity). A failed request is a result with its error, not an exception.
- Concurrency (all threads, all `map`s): calls to remote models (APIs, endpoints) are bounded by `llm.concurrency`
  in flight across the team. Calls to in-process local models (llama.cpp, transformers) go through the local
  gate instead (`LocalGate`): at most `llm.local_concurrency` different local models run at a time (default 1:
  two models on the same cores run far slower side by side than one after the other), and the model that runs
  takes up to its capacity of calls at once: a llama.cpp model its `n_parallel` slots (`llm.n_parallel`, which
  the registry builds it with), so concurrent requests to it decode together in one batch; a transformers model
  `llm.local_concurrency`. Taking turns: once another local model is waiting, the running one admits no more
  calls after `capacity` admissions in its turn, drains, and the model that has waited longest goes next, so
  a role rotating over two local models runs them in alternating batches and neither starves.
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
  `cost_usd` and `latency_s` (of real calls only: a cache hit costs nothing); `max_in_flight` (all calls);
  `local` (the gate: `max_in_flight` per local model, `max_models_at_once`, what is in flight and waiting now);
  the budget's state; the cache's counters.
- Budget (`llm.budget_usd` and/or `llm.budget_tokens`, counted over real model calls): once spent, every
  new request that needs a model call raises `BudgetExceeded`; calls already in flight finish and are
  counted (so the total may pass the cap by what was in flight). `map` then returns what finished, with
  the requests it could not start marked `not_run`.
- Models open on first use and stay open until `unload()` (every model the team opened is closed, the cache
  kept, the next request reopens its model; refused while a request runs) or `close()`.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
LOCAL_PROVIDERS = frozenset({"llamacpp", "transformers"})  # run on this machine's CPU (or GPU): the local gate
MALFORMED = "malformed_output"  # marks a cached reply that was a MalformedOutput
Opener = Callable[[str, "CetConfig"], LLM]


class BudgetExceeded(LLMError):
    """The team's token or dollar budget is spent; no new model calls are made."""


class LocalGate:
    """Admission to the in-process local models (see the module docstring): at most `max_models` different models
    have calls in flight at once; a model takes up to its `capacity` calls at once; once another model waits for
    a turn, the running one stops admitting after `capacity` admissions in its turn, and when a model drains the
    one that has waited longest goes next (first come, first served between models)."""

    def __init__(self, max_models: int = 1) -> None:
        self.max_models = max(1, max_models)
        self._cond = threading.Condition()
        self._active: dict[str, int] = {}  # model -> calls in flight
        self._turn: dict[str, int] = {}  # active model -> calls admitted in its current turn
        self._waiting: dict[str, int] = {}  # model -> calls waiting to enter
        self._queued: dict[str, int] = {}  # model not active, with calls waiting -> its ticket (lower: first)
        self._tickets = itertools.count()
        self._max_in_flight: dict[str, int] = {}
        self._max_models_at_once = 0

    @contextlib.contextmanager
    def hold(self, name: str, capacity: int) -> Iterator[None]:
        """Hold one of `name`'s places for the duration of the block (waiting for it as long as it takes)."""
        capacity = max(1, capacity)
        with self._cond:
            self._waiting[name] = self._waiting.get(name, 0) + 1
            if name not in self._active and name not in self._queued:
                self._queued[name] = next(self._tickets)
            try:
                self._cond.wait_for(lambda: self._may_enter(name, capacity))
            except BaseException:  # an interrupt while waiting: leave no trace
                self._leave_queue(name)
                self._cond.notify_all()
                raise
            self._leave_queue(name)
            if name not in self._active:
                self._active[name], self._turn[name] = 0, 0
            self._active[name] += 1
            self._turn[name] += 1
            self._max_in_flight[name] = max(self._max_in_flight.get(name, 0), self._active[name])
            self._max_models_at_once = max(self._max_models_at_once, len(self._active))
            self._cond.notify_all()  # the model may have just become active: its other waiters may enter too
        try:
            yield
        finally:
            with self._cond:
                self._active[name] -= 1
                if self._active[name] == 0:
                    del self._active[name], self._turn[name]
                    if self._waiting.get(name):  # its late comers go to the back of the queue
                        self._queued[name] = next(self._tickets)
                self._cond.notify_all()

    def _leave_queue(self, name: str) -> None:
        self._waiting[name] -= 1
        if not self._waiting[name]:
            del self._waiting[name]
            self._queued.pop(name, None)

    def _may_enter(self, name: str, capacity: int) -> bool:
        queue = sorted(self._queued, key=self._queued.__getitem__)
        if name in self._active:
            if self._active[name] >= capacity:
                return False
            return not queue or self._turn[name] < capacity  # another model waits: this turn ends at `capacity`
        free = self.max_models - len(self._active)
        return free > 0 and name in queue[:free]

    def stats(self) -> dict[str, Any]:
        """`max_in_flight` per model and `max_models_at_once` so far; `in_flight` and `waiting` per model now."""
        with self._cond:
            return {"max_in_flight": dict(sorted(self._max_in_flight.items())),
                    "max_models_at_once": self._max_models_at_once, "in_flight": dict(self._active),
                    "waiting": dict(self._waiting)}


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
        self._slots = threading.BoundedSemaphore(cfg.llm.concurrency)  # remote calls
        self._local = LocalGate(cfg.llm.local_concurrency)  # local calls
        self._lock = threading.Lock()  # usage, budget, rotation, the model table
        self._models: dict[str, LLM] = {}
        self._open_failed: dict[str, LLMError] = {}
        self._open_locks: dict[str, threading.Lock] = {}
        self._call_locks: dict[str, threading.Lock | None] = {}
        self._capacity: dict[str, int] = {}  # local model -> calls it takes at once (see LocalGate)
        self._rotation: dict[str, int] = {}
        self._usage = _Usage()
        self._spent_tokens = 0
        self._spent_usd = 0.0
        self._in_flight = 0
        self._max_in_flight = 0
        self._running = 0  # requests between their start and their reply, cache hits included

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
        """Answer `requests` concurrently (remote models at most `llm.concurrency` at a time across the team, local
        ones through the local gate); results in input order. Requests without a model get the role's rotation,
        assigned in input order. `on_result` is called with each result as it is collected, in order. Once the
        budget is spent the remaining requests come back `not_run`; on an interrupt, the requests not started are
        cancelled, those in flight finish (and are cached), and the interrupt propagates."""
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

        pool = ThreadPoolExecutor(max_workers=self._workers(assigned), thread_name_prefix="cet-team")
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

    def _workers(self, assigned: list[str]) -> int:
        """Threads for a map over `assigned`: enough to keep every model at its bound (`llm.concurrency` for the
        remote ones together, its capacity for each local one), no more than there are requests. The models are
        opened here (one that cannot be opened, or a spent budget, counts as remote: its requests end at once)."""
        remote, local = False, 0
        for name in dict.fromkeys(assigned):
            capacity = self._local_capacity_of(name)
            if capacity is None:
                remote = True
            else:
                local += capacity
        workers = (self.llm_cfg.concurrency if remote else 0) + local
        return max(1, min(workers, len(assigned)))

    def _local_capacity_of(self, name: str) -> int | None:
        """The capacity of `name` if it is a local model (opening it unless the budget is spent), else None."""
        with self._lock:
            loaded = name in self._models
        if not loaded and (name in self._open_failed or self._budget_spent()):
            return None
        try:
            self.model(name)
        except LLMError:
            return None
        with self._lock:
            return self._capacity.get(name)

    def local_capacity(self, llm: LLM) -> int:
        """How many calls the local model `llm` takes at once: a llama.cpp model its slots (the model's own
        `n_parallel` when it reports one, else `llm.n_parallel`, which the registry builds it with); any other
        `llm.local_concurrency`."""
        if llm.provider == "llamacpp":
            for source in (llm, getattr(llm, "engine", None)):
                slots = getattr(source, "n_parallel", None)
                if isinstance(slots, int) and slots >= 1:
                    return slots
            return self.llm_cfg.n_parallel
        return self.llm_cfg.local_concurrency

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
                if llm.provider in LOCAL_PROVIDERS:
                    self._capacity[name] = self.local_capacity(llm)
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
            self._running += 1  # from before its model is looked up to its reply: `unload` waits for none
        try:
            return self._run_request(name, request, params)
        finally:
            with self._lock:
                self._running -= 1

    def _run_request(self, name: str, request: list[Message] | str, params: GenerationParams) -> Completion:
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
            # before taking a slot, so it does not hold slots other models could use. A local model's call goes
            # through the local gate, a remote one takes one of the team's `llm.concurrency` slots.
            capacity = self._capacity.get(name)
            slot = self._slots if capacity is None else self._local.hold(name, capacity)
            with self._call_locks.get(name) or contextlib.nullcontext(), slot:
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
                "local": self._local.stats(),
                "budget": {"tokens": c.budget_tokens, "usd": c.budget_usd, "spent_tokens": self._spent_tokens,
                           "spent_usd": round(self._spent_usd, 6)},
            }
        report["budget"]["exceeded"] = self._budget_spent()
        report["cache"] = self.cache.stats()
        return report

    # ---- lifetime

    def unload(self) -> list[str]:
        """Close every model the team opened (their memory is freed; the next request opens its model again) and
        keep the cache: what a job calls between steps, before one that needs the memory (training) or other
        models. Only with no request running (raises LLMError otherwise: a running call would lose its model).
        Models handed to the team as a mapping are the caller's: forgotten, not closed. Returns the names."""
        with self._lock:
            if self._running:
                raise LLMError(f"cannot unload the team's models while {self._running} requests are running")
            models, self._models = dict(self._models), {}
            for name in models:
                self._call_locks.pop(name, None)
                self._capacity.pop(name, None)
        if isinstance(self._open_model, Mapping):
            return list(models)
        for llm in models.values():
            try:
                llm.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        return list(models)

    def close(self) -> None:
        self.unload()
        self.cache.close()

    def __enter__(self) -> Team:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def as_requests(items: Sequence[RequestLike]) -> list[Request]:
    return [r if isinstance(r, Request) else Request(r) for r in items]
