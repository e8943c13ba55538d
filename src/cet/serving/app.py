"""The context service (FastAPI): what a coding assistant calls to get the CET's context, and where it reports
what came of it.

    GET  /health                      status, the arms and their versions, request and feedback counts (no token)
    POST /v1/context                  {"task", "code"?, "error"?, "tests"?, "user"?} -> the engineered context, its
                                      sections and cited chunk ids, the arm and version that served it, a request
                                      id; in an experiment the user (or session) id picks the arm, stickily
    GET  /v1/experiment               the running experiment's standing: always-valid p-value and interval; a
                                      treatment arm whose guardrail is breached is stopped (every user then gets
                                      the control) and the reason shown
    GET  /v1/guardrails               each arm's guardrails (compile failures, security findings, p95 latency),
                                      the arms stopped and the rollbacks done
    GET  /dashboard                   an HTML page of the above: arms with intervals, the cumulative pass rate,
                                      the experiment, guardrails, drift and the registry's champion history
    GET  /v1/drift?window=N           input drift (PSI of task length, code, language, topic clusters of the task
                                      embeddings when the service has an embedder) between the first N requests and the
                                      last N, and a CUSUM of the recent pass rate against the first window's;
                                      "retrain" says whether either calls for it
    POST /v1/chat/completions         OpenAI-compatible proxy: the last user message is the task; its context is
                                      engineered (the arm as above, by the body's "user"), appended to that
                                      message, and the request answered by the team's generator (the local
                                      llama.cpp model by default, any OpenAI-compatible endpoint the LLM catalog
                                      names otherwise); `stream: true` answers as server-sent events, each piece as
                                      the model writes it; the request is recorded before the answer (its id
                                      in "cet" and the x-cet-request-id header), the reply once complete
    POST /v1/feedback                 {"request_id", "passed"?, "tests"? {"passed", "total"}, "accepted"?}: the
                                      outcome, recorded once (the same again: `duplicate`; different: 409)
    GET  /v1/feedback/{request_id}    what was recorded for a request

Every error is JSON `{"error": "..."}` with its status (401 no or wrong token, 404 unknown request or route,
409 conflicting feedback, 411 no Content-Length, 413 body over `serve.max_body_bytes`, 422 malformed body, 502
the CET wrote no context, 500 anything unexpected, named but not detailed). The token is checked before a body
is read; /health is open (status and counts only). A
request carries text only: nothing in it is ever read as a path. With a token (required by `cet serve` beyond
loopback) every /v1 route, /dashboard and /mcp need `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from cet.errors import CetError
from cet.serving.experiment import Experiment
from cet.serving.feedback import FeedbackConflict, FeedbackStore, UnknownRequest
from cet.serving.guardrails import Limits, evaluate
from cet.serving.strategies import Served, Strategy

MAX_TEXT = 200_000  # characters of any one field


class ContextRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=MAX_TEXT)
    code: str | None = Field(None, max_length=MAX_TEXT)
    error: str | None = Field(None, max_length=MAX_TEXT)
    tests: str | None = Field(None, max_length=MAX_TEXT)
    user: str | None = Field(None, min_length=1, max_length=200)  # a user or session id: sticky arm assignment


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str = Field(min_length=1, max_length=32)
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI's other fields are accepted and not used

    model: str | None = Field(None, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, le=32_768)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    user: str | None = Field(None, min_length=1, max_length=200)


def _text(content: str | list[dict[str, Any]] | None) -> str:
    """A message's text (OpenAI's content parts: the text ones, joined)."""
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if part.get("type") == "text")
    return content or ""


class Counts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    passed: int = Field(ge=0)
    total: int = Field(ge=0)


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=64)
    passed: bool | None = None
    tests: Counts | None = None
    accepted: bool | None = None
    compiled: bool | None = None
    security_findings: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _says_something(self) -> FeedbackRequest:
        if all(v is None for v in (self.passed, self.tests, self.accepted, self.compiled, self.security_findings)):
            raise ValueError("feedback needs an outcome: passed, tests, accepted, compiled or security_findings")
        return self


@dataclass(frozen=True)
class _Engineered:
    """One request's context from its assigned arm, before it is recorded."""

    request_id: str
    arm: str
    version: str
    served: Served
    latency_ms: float  # the time to serve the context (the guardrail's latency)

    @property
    def text(self) -> str:
        return self.served.context.to_text()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(strategies: dict[str, Strategy], store: FeedbackStore, *, default_arm: str | None = None,
               experiment: Experiment | None = None, token: str | None = None,
               max_body_bytes: int = 1_000_000, team: Any | None = None, mcp: Any | None = None,
               host: str = "127.0.0.1", limits: Limits = Limits(), registry: Any | None = None,
               on_breach: Callable[[str, str], tuple[str, Strategy] | None] | None = None,
               embed: Callable[[list[str]], Any] | None = None) -> FastAPI:
    """The service over `strategies` (arm name -> strategy): every request goes to `default_arm` (the first arm
    when not given), or, while `experiment` runs, to the arm it assigns. `team` (an LLM `Team`) answers the
    proxy; without one, /v1/chat/completions says it is not configured. `mcp` (an MCP server, see mcp_server.py)
    is mounted at /mcp over streamable HTTP, its session manager running with the app. `registry` (a `Registry`)
    shows its champion history on the dashboard. When the default arm breaches a guardrail outside an experiment,
    `on_breach(arm, reason)` is called once and may return the arm to serve instead (the registry's rollback).
    `embed` (the knowledge base's embedder) adds the topic clusters of the tasks to the drift signals."""
    if not strategies:
        raise ValueError("the service needs at least one context strategy")
    default_arm = default_arm or next(iter(strategies))
    missing = [a for a in ([default_arm] + ([experiment.control, experiment.treatment] if experiment else []))
               if a not in strategies]
    if missing:
        raise ValueError(f"arm(s) {missing} have no strategy")
    lifespan = None
    if mcp is not None:
        from contextlib import asynccontextmanager

        mcp_app = mcp.streamable_http_app(streamable_http_path="/", host=host)

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> Any:
            async with mcp.session_manager.run():
                yield

    app = FastAPI(title="cet context service", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    stopped: dict[str, str] = {}  # an arm taken out of service -> why
    rollbacks: list[dict[str, Any]] = []  # what on_breach did, in order
    swap = threading.Lock()  # one breach check-and-rollback at a time

    def guardrails() -> dict[str, dict[str, Any]]:
        return {arm: evaluate(store.arm_signals(arm, limits.window), limits) for arm in strategies}

    def breach_of(arm: str) -> str | None:
        breached = [name for name, g in evaluate(store.arm_signals(arm, limits.window), limits).items()
                    if g["breached"]]
        return f"guardrail(s) breached: {', '.join(breached)}" if breached else None

    def assign(unit: str) -> str:
        """The arm for a unit; a breached treatment is stopped (the control serves everyone from then on), a
        breached default arm is rolled back through `on_breach` (runs in a worker thread: it may load a model)."""
        nonlocal default_arm, strategies
        if experiment is not None:
            if experiment.treatment not in stopped and (reason := breach_of(experiment.treatment)):
                stopped[experiment.treatment] = reason
            return experiment.control if experiment.treatment in stopped else experiment.assign(unit)
        with swap:
            arm = default_arm
            if arm not in stopped and (reason := breach_of(arm)):
                stopped[arm] = reason
                replacement = on_breach(arm, reason) if on_breach is not None else None
                if replacement is not None and replacement[0] not in stopped:
                    strategies = {**strategies, replacement[0]: replacement[1]}
                    default_arm = replacement[0]
                rollbacks.append({"at": time.time(), "from": arm, "to": default_arm, "reason": reason})
            return default_arm
    if mcp is not None:
        app.mount("/mcp", mcp_app)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        path = request.scope["path"]
        if token is not None and path.startswith(("/v1", "/mcp", "/dashboard")):  # before anything is read
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
                return _error(401, "missing or wrong bearer token")
        length = request.headers.get("content-length")
        if request.method == "POST" and length is None:
            return _error(411, "a Content-Length header is required (no chunked bodies)")
        if length is not None and (not length.isdigit() or int(length) > max_body_bytes):
            return _error(413, f"request body over {max_body_bytes} bytes")
        return await call_next(request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        return _error(500, f"internal error: {type(exc).__name__}")

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        return _error(422, f"{where or 'body'}: {first.get('msg', 'invalid request')}")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "default_arm": default_arm, "stopped": stopped,
                "arms": {name: strategy.version for name, strategy in strategies.items()},
                "experiment": experiment.name if experiment else None, **store.counts()}

    async def engineer(task: str, code: str | None, error: str | None, user: str | None) -> Any:
        """The assigned arm's context for a request: an `_Engineered`, or the JSON error to answer with."""
        request_id = uuid.uuid4().hex
        arm = await run_in_threadpool(assign, user or request_id)
        started = time.perf_counter()
        try:
            served = await run_in_threadpool(strategies[arm].serve, task, code, error)
        except CetError as e:
            return _error(422, str(e))
        if served.error:
            return _error(502, f"the {arm} arm wrote no context: {served.error}")
        return _Engineered(request_id, arm, strategies[arm].version, served, (time.perf_counter() - started) * 1000)

    async def record(done: _Engineered, task: str, user: str | None) -> None:
        """Store the served context (off the event loop: a durable write waits for the disk)."""
        await run_in_threadpool(store_request, done, task, user)

    def store_request(done: _Engineered, task: str, user: str | None, reply: str | None = None) -> None:
        store.record_request(arm=done.arm, model_version=done.version, task=task, context=done.text,
                             sections=done.served.sections(), chunk_ids=done.served.context.cited_chunk_ids(),
                             unit=user or "", request_id=done.request_id, reply=reply, latency_ms=done.latency_ms,
                             experiment=experiment.name if experiment else None)

    @app.post("/v1/context")
    async def context(body: ContextRequest) -> Any:
        task = body.task if not body.tests else f"{body.task}\n\nVisible tests:\n{body.tests}"  # read back as such
        done = await engineer(task, body.code, body.error, body.user)
        if isinstance(done, JSONResponse):
            return done
        await record(done, task, body.user)
        served = done.served
        return {"request_id": done.request_id, "context": done.text, "sections": served.sections(),
                "chunk_ids": served.context.cited_chunk_ids(), "retrieved": [h.id for h in served.hits],
                "arm": done.arm, "model_version": done.version, "valid": served.valid, "issues": served.issues,
                "nothing_to_add": served.nothing_to_add, "prompt": served.prompt}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest) -> Any:
        from cet.llm.base import LLMError, Message

        if team is None:
            return _error(503, "the proxy has no upstream model configured")
        last = next((i for i in range(len(body.messages) - 1, -1, -1) if body.messages[i].role == "user"), None)
        if last is None or not _text(body.messages[last].content).strip():
            return _error(422, "messages: no user message with text to engineer context for")
        task = _text(body.messages[last].content)
        done = await engineer(task, None, None, body.user)  # its latency: serving the context (the guardrail's)
        if isinstance(done, JSONResponse):
            return done
        rewritten = task if not done.text else \
            f"{task}\n\nEngineered context (use it; it was prepared for this task):\n{done.text}"
        roles = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
        messages = [Message(roles.get(m.role, "user"),  # type: ignore[arg-type]
                            rewritten if i == last else _text(m.content)) for i, m in enumerate(body.messages)]
        # the client may pick one of the team's generators by name; anything else gets the rotation's next
        model = body.model if body.model in team.models_for("generator") else team.next_model("generator")
        changes = {k: v for k, v in (("max_tokens", body.max_tokens), ("temperature", body.temperature))
                   if v is not None}
        params = team.params(**changes)
        await record(done, task, body.user)  # before the answer: feedback may come while it streams
        if body.stream:
            return _stream(team, model, messages, params, done, store)
        try:
            reply = await run_in_threadpool(team.ask_model, model, messages, params)
        except LLMError as e:
            return _error(502, f"the upstream model failed: {e}")
        await run_in_threadpool(store.set_reply, done.request_id, reply.text)
        return _completion(done.request_id, done.arm, model, reply, done.served.sections())

    def standing_now() -> dict[str, Any] | None:
        if experiment is None:
            return None
        return {**experiment.status(store.outcomes(experiment.name)), "stopped": stopped.get(experiment.treatment)}

    @app.get("/v1/experiment")
    def standing() -> Any:
        now = standing_now()
        return now if now is not None else _error(404, "no experiment is running")

    def drift_now(window: int) -> tuple[int, dict[str, Any]]:
        from cet.serving.drift import traffic_drift

        if not 10 <= window <= 100_000:
            return 422, {"error": "window: between 10 and 100000 requests"}
        report = traffic_drift(store, window, embed)
        if report is None:
            return 409, {"error": f"drift needs at least {2 * window} requests (two windows of {window})"}
        return 200, report

    @app.get("/v1/drift")
    def drift(window: int = 200) -> Any:
        status, body = drift_now(window)
        return body if status == 200 else _error(status, body["error"])

    def guards_now() -> dict[str, Any]:
        return {"limits": limits.__dict__, "arms": guardrails(), "stopped": stopped, "rollbacks": rollbacks}

    @app.get("/v1/guardrails")
    def guards() -> Any:
        return guards_now()

    @app.get("/dashboard", response_class=HTMLResponse)
    def dashboard(window: int = 200) -> Any:
        from cet.serving.dashboard import arm_rows, render

        outcomes = store.outcomes(experiment.name if experiment else None)
        state = {"arms": arm_rows(outcomes, store.requests_by_arm()), "outcomes": outcomes,
                 "experiment": standing_now(), "guardrails": guards_now(), "drift": drift_now(window)[1],
                 "registry": registry.read() if registry is not None else None}
        return HTMLResponse(render(state))

    @app.post("/v1/feedback")
    def feedback(body: FeedbackRequest) -> Any:
        try:
            return store.record_feedback(body.request_id, body.passed,
                                         body.tests.model_dump() if body.tests else None, body.accepted,
                                         body.compiled, body.security_findings)
        except UnknownRequest as e:
            return _error(404, str(e))
        except FeedbackConflict as e:
            return _error(409, str(e))

    @app.get("/v1/feedback/{request_id}")
    def recorded(request_id: str) -> Any:
        try:
            return store.feedback(request_id)
        except UnknownRequest as e:
            return _error(404, str(e))

    return app


def _chunk_base(request_id: str, arm: str, model: str, sections: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    import time

    cet = {"request_id": request_id, "arm": arm, "sections": sections}
    return {"id": f"chatcmpl-{request_id}", "created": int(time.time()), "model": model}, cet


def _completion(request_id: str, arm: str, model: str, reply: Any, sections: list[str]) -> Any:
    """An OpenAI chat.completion for the upstream's reply."""
    base, cet = _chunk_base(request_id, arm, model, sections)
    finish = "length" if reply.finish_reason == "length" else "stop"
    return JSONResponse({**base, "object": "chat.completion", "choices": [{
        "index": 0, "message": {"role": "assistant", "content": reply.text}, "finish_reason": finish}],
        "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                  "total_tokens": reply.prompt_tokens + reply.completion_tokens}, "cet": cet},
        headers={"x-cet-request-id": request_id})


def _stream(team: Any, model: str, messages: list[Any], params: Any, done: _Engineered, store: FeedbackStore) -> Any:
    """The upstream's answer as OpenAI server-sent events, each piece sent as the model writes it (the local
    llama.cpp generator streams; a cached reply, or a provider that does not stream, comes as one piece). The reply
    is stored once complete. An upstream failure mid-answer, or a retry after part of an answer went out (its
    pieces would repeat), ends the stream with an error event and stores no reply."""
    import asyncio
    import json

    from fastapi.responses import StreamingResponse

    from cet.llm.base import STREAM_SINK, LLMError

    base, cet = _chunk_base(done.request_id, done.arm, model, done.served.sections())

    def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        chunk = {**base, "object": "chat.completion.chunk",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "cet": cet, **extra}
        return f"data: {json.dumps(chunk)}\n\n"

    async def events() -> Any:
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()

        def work() -> Any:
            token = STREAM_SINK.set(lambda piece: loop.call_soon_threadsafe(pieces.put_nowait, piece))
            try:
                return team.ask_model(model, messages, params)
            finally:
                STREAM_SINK.reset(token)

        job = asyncio.ensure_future(run_in_threadpool(work))
        sent: list[str] = []
        restarted = False
        yield event({"role": "assistant"})
        while not (job.done() and pieces.empty()):
            getter = asyncio.ensure_future(pieces.get())
            await asyncio.wait({getter, job}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                continue
            piece = getter.result()
            if piece is None:  # an attempt starts: after pieces went out, the answer would repeat
                restarted = restarted or bool(sent)
            elif not restarted:
                sent.append(piece)
                yield event({"content": piece})
        try:
            reply = job.result()
            if restarted:
                raise LLMError("it was retried after part of its answer had been sent")
        except LLMError as e:
            failure = {"error": {"message": f"the upstream model failed: {e}", "type": "upstream"}}
            yield f"data: {json.dumps(failure)}\n\n"
            yield "data: [DONE]\n\n"
            return
        streamed = "".join(sent)
        if reply.text.startswith(streamed) and len(reply.text) > len(streamed):
            yield event({"content": reply.text[len(streamed):]})  # what was not streamed (a cached reply)
        await run_in_threadpool(store.set_reply, done.request_id, reply.text)
        finish = "length" if reply.finish_reason == "length" else "stop"
        yield event({}, finish, usage={"prompt_tokens": reply.prompt_tokens,
                                       "completion_tokens": reply.completion_tokens,
                                       "total_tokens": reply.prompt_tokens + reply.completion_tokens})
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"x-cet-request-id": done.request_id})
