"""`cet serve`: the context service over HTTP (uvicorn), loopback by default; beyond loopback a bearer token is
required (from the variable `serve.token_env` names)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import typer

from cet.cli.common import console, get_config, user_errors
from cet.errors import CetError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@user_errors
def serve_command(
    host: str = typer.Option(None, "--host", help="Address to bind (default: config serve.host, 127.0.0.1)."),
    port: int = typer.Option(None, "--port", help="Port (default: config serve.port, 8080)."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="A CET checkpoint (default: the latest phase)."),
    base: bool = typer.Option(False, "--base", help="Serve the untrained base model (no checkpoint needed)."),
    no_retrieval: bool = typer.Option(False, "--no-retrieval", help="Do not search the knowledge base."),
    against: str = typer.Option(None, "--ab", help="Run an A/B experiment of the CET against this strategy "
                                                   "(template, naive_rag or none); users are assigned stickily."),
    experiment_name: str = typer.Option("cet-ab", "--experiment", help="The experiment's name (its hash seed)."),
) -> None:
    """Serve the CET's contexts (POST /v1/context) and record outcomes (POST /v1/feedback); with --ab, compare
    the CET with another strategy on live traffic (GET /v1/experiment)."""
    cfg = get_config()
    host, port = host or cfg.serve.host, port or cfg.serve.port
    token = os.environ.get(cfg.serve.token_env) or None
    if not is_loopback(host) and token is None:
        raise CetError(f"binding {host} (beyond loopback) needs a bearer token: set {cfg.serve.token_env}")
    from cet.serving.strategies import STRATEGIES

    if against is not None and (against not in STRATEGIES or against == "cet"):
        raise CetError(f"--ab takes another strategy: {', '.join(s for s in STRATEGIES if s != 'cet')}")
    import uvicorn

    from cet.serving.app import create_app
    from cet.serving.experiment import Experiment
    from cet.serving.feedback import FeedbackStore
    from cet.serving.strategies import CETStrategy, make_strategy

    if checkpoint is None and not base:  # the registry's champion, when there is one
        from cet.serving.registry import Registry

        champion = Registry(cfg.serve.registry_dir).champion()
        checkpoint = Path(champion["path"]) if champion else None
    cet = make_strategy("cet", cfg, checkpoint=str(checkpoint) if checkpoint else None, base=base,
                        retrieval=not no_retrieval)
    strategies = {"cet": cet}
    experiment = None
    if against is not None:
        strategies[against] = make_strategy(
            against, cfg, retriever=cet.engine.retriever if isinstance(cet, CETStrategy) else None)
        experiment = Experiment(experiment_name, control=against, treatment="cet")
    from cet.llm.team import Team

    store = FeedbackStore(cfg.serve.feedback_db)
    team = Team(cfg)  # the proxy's upstream: llm.roles.generator (a local GGUF or an OpenAI-compatible endpoint)
    from cet.serving.mcp_server import build_mcp

    mcp = build_mcp(cfg, cet, store, cet.engine.retriever if isinstance(cet, CETStrategy) else None)
    app = create_app(strategies, store, experiment=experiment, token=token, max_body_bytes=cfg.serve.max_body_bytes,
                     team=team, mcp=mcp, host=host)  # the MCP tools over streamable HTTP at /mcp (same token)
    arms = ", ".join(f"{name}: {s.version}" for name, s in strategies.items())
    console.print(f"serving {arms} on http://{host}:{port} (feedback in {cfg.serve.feedback_db}; proxy upstream "
                  f"{', '.join(cfg.llm.roles.generator)})", highlight=False)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        if isinstance(cet, CETStrategy):
            cet.engine.close()
        team.close()
        store.close()


@user_errors
def mcp_command(
    checkpoint: Path = typer.Option(None, "--checkpoint", help="A CET checkpoint (default: the latest phase)."),
    base: bool = typer.Option(False, "--base", help="Serve the untrained base model (no checkpoint needed)."),
    no_retrieval: bool = typer.Option(False, "--no-retrieval", help="Do not search the knowledge base."),
) -> None:
    """The CET as an MCP server over stdio (tools: engineer_context, search_knowledge, run_tests,
    report_outcome). Client configuration: {"command": "cet", "args": ["mcp"]}."""
    cfg = get_config()
    from cet.serving.feedback import FeedbackStore
    from cet.serving.mcp_server import build_mcp
    from cet.serving.strategies import CETStrategy, make_strategy

    cet = make_strategy("cet", cfg, checkpoint=str(checkpoint) if checkpoint else None, base=base,
                        retrieval=not no_retrieval)
    store = FeedbackStore(cfg.serve.feedback_db)
    try:
        build_mcp(cfg, cet, store, cet.engine.retriever if isinstance(cet, CETStrategy) else None).run()
    finally:
        store.close()
