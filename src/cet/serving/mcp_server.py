"""The CET as an MCP server (the official `mcp` SDK), so Claude Code, Continue or any MCP client can use it:

    engineer_context(task, code?, error?)      the served strategy's context for the task (recorded; its id comes
                                               back for report_outcome)
    search_knowledge(query, k?)                what the knowledge base retrieves for a query
    run_tests(code, tests, language?, module?) the code run against the tests in the sandbox: passed, counts, why
    report_outcome(request_id, passed?, tests_passed?, tests_total?, accepted?)
                                               what came of a context, recorded once (as POST /v1/feedback)

`cet mcp` serves it over stdio; `cet serve` mounts it over streamable HTTP at /mcp. Tool arguments are text: no
path in them is ever opened.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

from cet.config import CetConfig
from cet.errors import CetError
from cet.serving.feedback import FeedbackConflict, FeedbackStore, UnknownRequest
from cet.serving.strategies import Strategy

MAX_HITS = 20
HIT_CHARS = 1200


def python_test_names(tests: str) -> list[str]:
    """The `test*` functions a pytest file defines at its top level (what the sandbox expects to see run)."""
    try:
        tree = ast.parse(tests)
    except SyntaxError as e:
        raise CetError(f"the tests do not parse: {e.msg} (line {e.lineno})") from None
    return [node.name for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")]


def build_mcp(cfg: CetConfig, strategy: Strategy, store: FeedbackStore, retriever: Any | None = None,
              arm: str = "cet", current: Callable[[], tuple[str, Strategy]] | None = None) -> Any:
    """The MCP server over these parts; a tool's user error (bad input, unknown request) is a `ToolError` the
    client reads as the tool's failure, with its message. `current()`, when given, names the arm and strategy in
    service at each call (after a rollback, the predecessor), instead of the fixed `arm` and `strategy`."""
    in_service = current or (lambda: (arm, strategy))
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer("cet", instructions=(
        "Context Engineering Transformer: call engineer_context with the coding task (and the code so far or the "
        "error) before writing code; use the context it returns; report_outcome when you know whether the code "
        "passed."))

    # code from a client runs only fully isolated (no network, its own namespaces): never in the weak fallback
    from cet.execution.executor import Executor

    sandbox, why_not = None, ""
    try:
        sandbox = Executor(cfg.exec.model_copy(update={"isolation": "bubblewrap"}))
    except CetError as e:  # bubblewrap cannot run here: the tool says so when called
        why_not = str(e).splitlines()[0][:200]

    @server.tool()
    def engineer_context(task: str, code: str | None = None, error: str | None = None) -> dict[str, Any]:
        """Engineer the context a code-writing model needs for this task: interface, examples, constraints,
        knowledge from the knowledge base, pitfalls; for a bug report, the failure, suspects and what to check."""
        name, serving = in_service()
        served = serving.serve(task, code, error)  # its own lock (engine.SERIAL)
        if served.error:
            raise ToolError(f"the {name} arm wrote no context: {served.error}")
        text = served.context.to_text()
        request_id = store.record_request(arm=name, model_version=serving.version, task=task, context=text,
                                          sections=served.sections(), chunk_ids=served.context.cited_chunk_ids())
        return {"request_id": request_id, "context": text, "sections": served.sections(),
                "chunk_ids": served.context.cited_chunk_ids(), "nothing_to_add": served.nothing_to_add}

    @server.tool()
    def search_knowledge(query: str, k: int = 5) -> list[dict[str, Any]]:
        """Search the knowledge base (Exercism, LeetCode, docs, Stack Exchange, freeCodeCamp, repositories)."""
        if retriever is None:
            raise ToolError("this server has no knowledge base (it was started without retrieval)")
        if not query.strip():
            raise ToolError("the query is empty")
        from cet.serving.engine import SERIAL

        with SERIAL:
            hits = retriever.search(query, k=max(1, min(k, MAX_HITS)))
        return [{"id": h.id, "title": h.title, "source": h.source, "score": round(h.score, 4),
                 "text": h.text[:HIT_CHARS]} for h in hits]

    @server.tool()
    def run_tests(code: str, tests: str, language: str = "python", module: str = "solution") -> dict[str, Any]:
        """Run the code against the tests in the sandbox (pytest for Python, node:test for JavaScript; the tests
        import the code as `module`): passed or not, the test counts, why it ended, stderr's tail."""
        from cet.execution.tasks import CodingTask, TaskMetadata

        if language not in ("python", "javascript"):
            raise ToolError("language must be python or javascript")
        if sandbox is None:
            raise ToolError(f"run_tests needs the bubblewrap sandbox, which is not available here ({why_not})")
        try:
            names = python_test_names(tests) if language == "python" else []
            task = CodingTask(id="mcp/run", language=language, statement="", module=module, tests=tests,
                              test_names=names, metadata=TaskMetadata(source="mcp", split="eval"))
        except CetError as e:
            raise ToolError(str(e)) from None
        except ValueError as e:
            raise ToolError(f"bad run_tests input: {str(e).splitlines()[0]}") from None
        result = sandbox.run(task, code)
        return {"passed": result.passed, "exit_reason": str(result.exit_reason), "tests": result.tests.model_dump(),
                "detail": result.detail, "stderr_tail": result.stderr_tail[-2000:]}

    @server.tool()
    def report_outcome(request_id: str, passed: bool | None = None, tests_passed: int | None = None,
                       tests_total: int | None = None, accepted: bool | None = None) -> dict[str, Any]:
        """Record what came of a context engineer_context returned (once; the same report again is a no-op)."""
        if any(v is not None and v < 0 for v in (tests_passed, tests_total)):
            raise ToolError("test counts cannot be negative")
        if passed is None and tests_total is None and accepted is None:
            raise ToolError("report an outcome: passed, tests_passed/tests_total or accepted")
        counts = {"passed": tests_passed, "total": tests_total} if tests_total is not None else None
        try:
            return store.record_feedback(request_id, passed, counts, accepted)
        except (UnknownRequest, FeedbackConflict) as e:
            raise ToolError(str(e)) from None

    return server
