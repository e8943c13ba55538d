"""The context service with real parts: the tiny CET base behind it (llama.cpp engine or transformers, as
configured), a real SQLite feedback store, FastAPI's test client; errors as JSON; feedback idempotent; auth."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cet.config import load_config
from cet.serving.app import create_app
from cet.serving.engine import ContextEngine
from cet.serving.experiment import Experiment
from cet.serving.feedback import FeedbackStore
from cet.serving.strategies import CETStrategy, NoContextStrategy, TemplateStrategy


@pytest.fixture(scope="module")
def engine(tiny_base: Path) -> ContextEngine:
    cfg = load_config(cet={"base_model": str(tiny_base), "device": "cpu", "max_new_tokens": 24})
    return ContextEngine(cfg, base=True, retrieval=False)


@pytest.fixture
def client(engine: ContextEngine, tmp_path: Path) -> Iterator[TestClient]:
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    with TestClient(create_app({"cet": CETStrategy(engine)}, store, max_body_bytes=4096)) as c:
        yield c
    store.close()


def test_a_context_is_served_and_its_outcome_recorded_once(client: TestClient) -> None:
    served = client.post("/v1/context", json={"task": "Write add(a, b) returning the sum.", "tests": "add(1, 2) == 3"})
    assert served.status_code == 200, served.text  # constrained decoding: even the untrained base writes sections
    body = served.json()
    assert body["arm"] == "cet" and body["model_version"] == "base" and len(body["request_id"]) == 32
    assert isinstance(body["sections"], list) and isinstance(body["chunk_ids"], list)
    outcome = {"request_id": body["request_id"], "passed": True, "tests": {"passed": 3, "total": 3}}
    first = client.post("/v1/feedback", json=outcome)
    again = client.post("/v1/feedback", json=outcome)
    assert first.status_code == again.status_code == 200
    assert first.json()["duplicate"] is False and again.json()["duplicate"] is True
    conflict = client.post("/v1/feedback", json={**outcome, "passed": False})
    assert conflict.status_code == 409 and "different feedback" in conflict.json()["error"]
    recorded = client.get(f"/v1/feedback/{body['request_id']}").json()
    assert recorded["feedback"]["passed"] is True and recorded["feedback"]["tests"] == {"passed": 3, "total": 3}
    assert client.get("/health").json()["feedback"] == 1


def test_bad_requests_get_one_json_error(client: TestClient) -> None:
    assert client.post("/v1/context", json={"task": ""}).status_code == 422
    wrong = client.post("/v1/context", json={"task": "x", "path": "/etc/passwd"})  # unknown fields are refused
    assert wrong.status_code == 422 and "path" in wrong.json()["error"]
    big = client.post("/v1/context", json={"task": "x" * 5000})
    assert big.status_code == 413 and "over 4096 bytes" in big.json()["error"]
    unknown = client.post("/v1/feedback", json={"request_id": "nope", "passed": True})
    assert unknown.status_code == 404 and client.get("/v1/feedback/nope").status_code == 404
    assert client.post("/v1/feedback", json={"request_id": "x", "tests": {"passed": -1, "total": 1}}).status_code == 422
    empty = client.post("/v1/feedback", json={"request_id": "x"})  # no outcome at all: it would lock the request
    assert empty.status_code == 422 and "needs an outcome" in empty.json()["error"]
    assert client.get("/nowhere").json() == {"error": "Not Found"}  # JSON for every error
    chunked = client.post("/v1/context", content=iter([b'{"task": "x"}']),
                          headers={"content-type": "application/json"})
    assert chunked.status_code == 411


def test_a_token_guards_every_v1_route(engine: ContextEngine, tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    try:
        with TestClient(create_app({"cet": CETStrategy(engine)}, store, token="s3cret")) as c:
            assert c.get("/health").status_code == 200
            assert c.get("/v1/feedback/x").status_code == 401
            assert c.get("/v1/feedback/x", headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert c.get("/v1/feedback/x", headers={"Authorization": "Bearer s3cret"}).status_code == 404
            assert c.get("/v1/feedback/x", headers={"Authorization": "bearer s3cret"}).status_code == 404
            post = c.post("/v1/context", json={"task": "x"})  # refused before the body is read
            assert post.status_code == 401 and post.json() == {"error": "missing or wrong bearer token"}
            assert c.get("/docs").status_code == 404 and c.get("/openapi.json").status_code == 404
            assert c.get("/dashboard").status_code == 401
            assert c.get("/dashboard", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    finally:
        store.close()


class RetriedUpstream:
    """An upstream whose first attempt streams two pieces and fails, and whose retry streams the whole answer: what
    the llama.cpp provider hands STREAM_SINK when the team retries a timed-out request."""

    def models_for(self, role: str) -> list[str]:
        return ["m"]

    def next_model(self, role: str) -> str:
        return "m"

    def params(self, **changes):  # type: ignore[no-untyped-def]
        from cet.llm.base import GenerationParams

        return GenerationParams(**changes)

    def ask_model(self, model, messages, params):  # type: ignore[no-untyped-def]
        from cet.llm.base import STREAM_SINK, Completion

        sink = STREAM_SINK.get()
        for piece in (None, "def f(x):", " return", None, "def f(x):\n    return x\n"):
            sink(piece)
        return Completion(text="def f(x):\n    return x\n", model="m", provider="test", prompt_tokens=3,
                          completion_tokens=9, latency_s=0.1)


def test_a_stream_retried_after_pieces_went_out_ends_with_an_error_not_a_repeat(tmp_path: Path) -> None:
    import json

    store = FeedbackStore(tmp_path / "feedback.sqlite")
    try:
        with TestClient(create_app({"none": NoContextStrategy()}, store, team=RetriedUpstream())) as c:
            answer = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Write f."}],
                                                          "stream": True})
            events = [json.loads(line.removeprefix("data: ")) for line in answer.text.splitlines()
                      if line.startswith("data: {")]
            text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if "choices" in e)
            assert text == "def f(x): return"  # the first attempt's pieces, never followed by the retry's
            assert "retried after part of its answer" in events[-1]["error"]["message"]
            recorded = c.get(f"/v1/feedback/{answer.headers['x-cet-request-id']}")
            assert recorded.status_code == 200  # the request was recorded before the answer
            assert store._conn.execute("SELECT reply FROM requests").fetchone()[0] is None  # no partial reply kept
    finally:
        store.close()


def test_an_experiment_assigns_users_stickily_and_reads_its_standing(engine: ContextEngine, tmp_path: Path) -> None:
    cfg = load_config()
    experiment = Experiment("t", control="none", treatment="template", min_per_arm=5)
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    app = create_app({"template": TemplateStrategy(cfg, None), "none": NoContextStrategy()}, store,
                     experiment=experiment)
    try:
        with TestClient(app) as c:
            arms: dict[str, set[str]] = {}
            for n in range(40):
                user = f"user-{n % 10}"
                body = c.post("/v1/context", json={"task": "Write `add(a, b)` returning a + b.", "user": user}).json()
                arms.setdefault(user, set()).add(body["arm"])
                assert body["arm"] == experiment.assign(user)
                if body["arm"] == "template":
                    assert "add" in body["context"] and body["sections"]
                else:
                    assert body["context"] == "" and body["nothing_to_add"]
                # the template's users pass, the raw task's fail: a difference the test must find
                c.post("/v1/feedback", json={"request_id": body["request_id"], "passed": body["arm"] == "template"})
            assert all(len(seen) == 1 for seen in arms.values())  # sticky: one arm per user
            assert {a for seen in arms.values() for a in seen} == {"template", "none"}  # both arms get users
            standing = c.get("/v1/experiment").json()
            assert standing["n_a"] + standing["n_b"] == 40 and standing["difference"] == 1.0
            assert standing["decided"] and standing["winner"] == "template" and standing["p_value"] <= 0.05
            assert c.get("/health").json()["arms"] == {"template": "rule-based", "none": "raw task"}
    finally:
        store.close()
    with pytest.raises(ValueError, match="two different arms"):
        Experiment("x", control="cet", treatment="cet")


def test_the_proxy_engineers_context_forwards_and_records_the_pair(tmp_path: Path) -> None:
    import json

    from cet.llm.team import Team

    cfg = load_config(llm={"cache_path": str(tmp_path / "cache.sqlite"), "max_tokens": 24, "n_threads": 1,
                           "roles": {"generator": ["smollm2-135m-instruct"]}})
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    with Team(cfg) as team, TestClient(create_app({"template": TemplateStrategy(cfg, None)}, store,
                                                  team=team)) as c:
        ask = {"model": "anything", "messages": [{"role": "system", "content": "Be brief."},
                                                 {"role": "user", "content": "Write `add(a, b)` returning a + b."}]}
        done = c.post("/v1/chat/completions", json=ask)
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["object"] == "chat.completion" and body["model"] == "smollm2-135m-instruct"
        assert body["choices"][0]["message"]["role"] == "assistant" and body["choices"][0]["message"]["content"]
        assert body["usage"]["completion_tokens"] >= 1 and done.headers["x-cet-request-id"] == body["cet"]["request_id"]
        recorded = store._conn.execute("SELECT task, context, reply FROM requests WHERE request_id=?",
                                       (body["cet"]["request_id"],)).fetchone()
        assert recorded[0] == "Write `add(a, b)` returning a + b." and "add" in recorded[1]  # the template's context
        assert recorded[2] == body["choices"][0]["message"]["content"]  # the pair is kept
        streamed = c.post("/v1/chat/completions", json={**ask, "stream": True})
        events = [line.removeprefix("data: ") for line in streamed.text.splitlines() if line.startswith("data: ")]
        assert streamed.headers["content-type"].startswith("text/event-stream") and events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks) == \
            body["choices"][0]["message"]["content"]  # greedy and cached: the same reply, as events
        assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
        fresh = {**ask, "messages": [{"role": "user", "content": "Write `sub(a, b)` returning a - b."}],
                 "stream": True}
        live = c.post("/v1/chat/completions", json=fresh)  # not cached: the pieces come as the model writes them
        pieces = [json.loads(line.removeprefix("data: "))["choices"][0]["delta"].get("content")
                  for line in live.text.splitlines() if line.startswith("data: {")]
        pieces = [p for p in pieces if p]
        assert len(pieces) > 3  # many pieces, not one
        later = c.post("/v1/chat/completions", json={**fresh, "stream": False}).json()  # now cached
        assert "".join(pieces) == later["choices"][0]["message"]["content"]
        kept = store._conn.execute("SELECT reply FROM requests WHERE request_id=?",
                                   (live.headers["x-cet-request-id"],)).fetchone()
        assert kept[0] == "".join(pieces)  # the streamed pair is recorded once complete
        no_user = c.post("/v1/chat/completions", json={"messages": [{"role": "system", "content": "x"}]})
        assert no_user.status_code == 422 and "no user message" in no_user.json()["error"]
    store.close()


def test_the_mcp_tools_engineer_run_tests_and_record(engine: ContextEngine, tmp_path: Path) -> None:
    import asyncio

    from tests.sandbox_helpers import bwrap_or_skip

    from cet.serving.mcp_server import build_mcp

    bwrap_or_skip()
    cfg = load_config(exec={"isolation": "bubblewrap"})
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    server = build_mcp(cfg, TemplateStrategy(cfg, None), store, arm="template")

    async def call(name: str, **args: object) -> dict:
        result = await server.call_tool(name, args)
        assert not result.is_error, result
        return result.structured_content

    tools = {t.name for t in asyncio.run(server.list_tools())}
    assert tools == {"engineer_context", "search_knowledge", "run_tests", "report_outcome"}
    made = asyncio.run(call("engineer_context", task="Write `add(a, b)` returning a + b."))
    assert made["request_id"] and "add" in made["context"]
    tests = "from solution import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    good = asyncio.run(call("run_tests", code="def add(a, b):\n    return a + b\n", tests=tests))
    bad = asyncio.run(call("run_tests", code="def add(a, b):\n    return a - b\n", tests=tests))
    assert good["passed"] is True and bad["passed"] is False and good["tests"]["passed"] == 1
    recorded = asyncio.run(call("report_outcome", request_id=made["request_id"], passed=True, tests_passed=1,
                                tests_total=1))
    assert recorded["feedback"]["passed"] is True and recorded["duplicate"] is False
    from mcp.server.mcpserver.exceptions import ToolError

    with pytest.raises(ToolError, match="no request 'nope'"):  # the client is told; nothing is stored
        asyncio.run(server.call_tool("report_outcome", {"request_id": "nope", "passed": True}))
    with pytest.raises(ToolError, match="no knowledge base"):
        asyncio.run(server.call_tool("search_knowledge", {"query": "x"}))
    with pytest.raises(ToolError, match="do not parse"):
        asyncio.run(server.call_tool("run_tests", {"code": "x = 1", "tests": "def test_(:"}))
    assert store.counts() == {"requests": 1, "feedback": 1}
    store.close()


def test_mcp_is_served_over_http_and_stdio(engine: ContextEngine, tmp_path: Path, cet_bin: Path) -> None:
    import asyncio
    import os

    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    from cet.serving.mcp_server import build_mcp

    cfg = load_config()
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    mcp = build_mcp(cfg, TemplateStrategy(cfg, None), store, arm="template")
    app = create_app({"template": TemplateStrategy(cfg, None)}, store, mcp=mcp, token="t0k")
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}}
    headers = {"accept": "application/json, text/event-stream", "authorization": "Bearer t0k"}
    with TestClient(app, base_url="http://127.0.0.1:8080") as c:  # the host MCP's rebinding guard expects
        assert c.post("/mcp/", json=init, headers={"accept": headers["accept"]}).status_code == 401
        done = c.post("/mcp/", json=init, headers=headers)
        assert done.status_code == 200 and '"serverInfo"' in done.text and '"name":"cet"' in done.text
    store.close()

    env = {**os.environ, "CET_SERVE__FEEDBACK_DB": str(tmp_path / "stdio.sqlite"),
           "CET_CET__BASE_MODEL": str(engine.cfg.cet.base_model), "CET_CET__DEVICE": "cpu",
           "CET_CET__MAX_NEW_TOKENS": "24"}
    params = StdioServerParameters(command=str(cet_bin), args=["mcp", "--base", "--no-retrieval"], env=env)

    async def session() -> tuple[set[str], dict]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            tools = {t.name for t in (await client.list_tools()).tools}
            made = await client.call_tool("engineer_context", {"task": "Write `add(a, b)` returning a + b."})
            return tools, made.structured_content

    tools, made = asyncio.run(session())
    assert tools == {"engineer_context", "search_knowledge", "run_tests", "report_outcome"}
    assert made["request_id"] and isinstance(made["sections"], list)


def test_a_breached_guardrail_takes_the_treatment_out_of_service(tmp_path: Path) -> None:
    from cet.serving.guardrails import Limits, evaluate

    limits = Limits(compile_failure_rate=0.2, min_samples=10)
    assert not evaluate({"compiled": [False] * 9, "security_findings": [], "latency_ms": [1.0]}, limits)[
        "compile_failure_rate"]["breached"]  # nine failures: not yet the evidence the limit needs
    judged = evaluate({"compiled": [False] * 10, "security_findings": [0, 2] * 10, "latency_ms": [5.0] * 30}, limits)
    assert judged["compile_failure_rate"]["breached"] and judged["security_rate"]["value"] == 0.5
    assert not judged["p95_latency_ms"]["breached"]

    cfg = load_config()
    experiment = Experiment("g", control="none", treatment="template", min_per_arm=5)
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    app = create_app({"template": TemplateStrategy(cfg, None), "none": NoContextStrategy()}, store,
                     experiment=experiment, limits=limits)
    try:
        with TestClient(app) as c:
            served = []
            for n in range(60):
                body = c.post("/v1/context", json={"task": "Write `f(x)` returning x.", "user": f"u{n}"}).json()
                served.append(body["arm"])
                c.post("/v1/feedback", json={"request_id": body["request_id"], "passed": False,
                                             "compiled": body["arm"] != "template"})  # the template's code fails
            # the guardrail has its evidence once the template has served min_samples failing outcomes
            tenth = [i for i, arm in enumerate(served) if arm == "template"][limits.min_samples - 1]
            assert served.count("template") == limits.min_samples and all(a == "none" for a in served[tenth + 1:])
            standing = c.get("/v1/experiment").json()
            assert standing["stopped"] == "guardrail(s) breached: compile_failure_rate"
            assert c.get("/v1/guardrails").json()["arms"]["template"]["compile_failure_rate"]["breached"]
    finally:
        store.close()


def test_serving_with_the_knowledge_base_from_worker_threads(tmp_path: Path, embedder, core_exercism: Path) -> None:  # type: ignore[no-untyped-def]
    from cet.knowledge.pipeline import ingest_source, open_retriever
    from cet.serving.strategies import NaiveRagStrategy

    cfg = load_config(kb={"db": str(tmp_path / "kb.sqlite")})
    ingest_source(cfg, "exercism", str(core_exercism), embedder=embedder)
    retriever = open_retriever(cfg)  # opened here, searched from the app's worker threads
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    app = create_app({"template": TemplateStrategy(cfg, retriever), "naive_rag": NaiveRagStrategy(cfg, retriever)},
                     store, experiment=Experiment("kb", control="template", treatment="naive_rag"))
    try:
        with TestClient(app) as c:
            for n in range(4):
                body = c.post("/v1/context", json={"task": "relay a lantern signal", "user": f"u{n}"})
                assert body.status_code == 200, body.text
                assert body.json()["retrieved"]  # the knowledge base answered from a worker thread
    finally:
        store.close()


def test_drift_is_read_from_the_served_traffic(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    app = create_app({"none": NoContextStrategy()}, store)
    try:
        with TestClient(app) as c:
            assert c.get("/v1/drift?window=10").status_code == 409  # not yet two windows of traffic
            for n in range(40):  # short tasks that pass, then long ones that fail: both signals
                task = "Write f(x)." + (" detail" * 200 if n >= 20 else "")
                body = c.post("/v1/context", json={"task": task}).json()
                c.post("/v1/feedback", json={"request_id": body["request_id"], "passed": n < 20})
            report = c.get("/v1/drift?window=20").json()
            assert report["reference_pass_rate"] == 1.0 and report["shifted"] == ["length"]
            assert report["retrain"] and report["cusum"]["alarm"]
            assert c.get("/v1/drift?window=3").status_code == 422
    finally:
        store.close()
