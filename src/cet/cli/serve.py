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
    strategy: str = typer.Option("cet", "--strategy", help="What to serve: the CET, or (no model loaded) the "
                                                            "template, naive_rag or none baseline."),
    against: str = typer.Option(None, "--ab", help="Run an A/B experiment: the served CET against a strategy "
                                                   "(template, naive_rag or none), or the registry's champion "
                                                   "against a candidate version (e.g. v2); users are assigned "
                                                   "stickily."),
    experiment_name: str = typer.Option("cet-ab", "--experiment", help="The experiment's name (its hash seed)."),
) -> None:
    """Serve the CET's contexts (POST /v1/context) and record outcomes (POST /v1/feedback); with --ab, compare
    on live traffic (GET /v1/experiment, GET /dashboard). The registry's champion is served when no checkpoint is
    named, as the arm named by its version; if it breaches a guardrail, the registry rolls back and the previous
    champion is served."""
    cfg = get_config()
    host, port = host or cfg.serve.host, port or cfg.serve.port
    token = os.environ.get(cfg.serve.token_env) or None
    if not is_loopback(host) and token is None:
        raise CetError(f"binding {host} (beyond loopback) needs a bearer token: set {cfg.serve.token_env}")
    from cet.serving.registry import Registry
    from cet.serving.strategies import STRATEGIES

    registry = Registry(cfg.serve.registry_dir)
    versions = {v["id"]: v for v in registry.read()["versions"]}
    known = against in STRATEGIES or against in versions
    if against is not None and (against in ("cet", strategy) or not known):
        raise CetError(f"--ab takes another strategy ({', '.join(s for s in STRATEGIES if s != 'cet')}) or a "
                       f"registry version ({', '.join(versions) or 'none registered'})")
    import uvicorn

    from cet.serving.app import create_app
    from cet.serving.drift import embed_with
    from cet.serving.experiment import Experiment
    from cet.serving.feedback import open_feedback_store
    from cet.serving.registry import rollback_on_breach
    from cet.serving.strategies import CETStrategy, make_strategy

    loaded: list[CETStrategy] = []  # every engine this command loads (a rollback loads one while serving)

    def load(version: dict) -> CETStrategy:
        engine = make_strategy("cet", cfg, checkpoint=version["path"], retrieval=not no_retrieval)
        loaded.append(engine)  # type: ignore[arg-type]
        return loaded[-1]

    if strategy not in STRATEGIES:
        raise CetError(f"--strategy: one of {', '.join(STRATEGIES)}, not {strategy!r}")
    baseline_retriever = None
    champion = registry.champion() if checkpoint is None and not base and strategy == "cet" else None
    name = champion["id"] if champion else strategy
    if champion:
        cet = load(champion)
    elif strategy == "cet":
        cet = make_strategy("cet", cfg, checkpoint=str(checkpoint) if checkpoint else None, base=base,
                            retrieval=not no_retrieval)
    else:  # a baseline served alone or against another: one retriever for whichever arm searches
        from cet.knowledge.pipeline import open_retriever

        searches = {strategy, against} & {"template", "naive_rag"}
        baseline_retriever = open_retriever(cfg) if searches and not no_retrieval else None
        cet = make_strategy(strategy, cfg, retriever=baseline_retriever)
    strategies = {name: cet}
    experiment = None
    if against in versions:
        if champion is None or against == name:
            raise CetError(f"--ab {against}: a candidate version is compared with the registry's champion "
                           f"({champion['id'] if champion else 'none'}); serve without --checkpoint/--base")
        strategies[against] = load(versions[against])
        experiment = Experiment(experiment_name, control=name, treatment=against)
    elif against is not None:
        shared = cet.engine.retriever if isinstance(cet, CETStrategy) else baseline_retriever
        strategies[against] = make_strategy(against, cfg, retriever=shared)
        experiment = Experiment(experiment_name, control=against, treatment=name)
    from cet.llm.team import Team

    store = open_feedback_store(cfg.serve.feedback_db)
    team = Team(cfg)  # the proxy's upstream: llm.roles.generator (a local GGUF or an OpenAI-compatible endpoint)
    from cet.serving.mcp_server import build_mcp

    in_service = {"arm": name, "strategy": cet}  # what the MCP tools serve: the champion, or after a rollback
    rollback = rollback_on_breach(registry, load)

    def on_breach(arm: str, reason: str) -> tuple[str, CETStrategy] | None:
        replacement = rollback(arm, reason)
        if replacement is not None:
            in_service.update(arm=replacement[0], strategy=replacement[1])
        return replacement

    mcp = build_mcp(cfg, cet, store, cet.engine.retriever if isinstance(cet, CETStrategy) else None, arm=name,
                    current=lambda: (in_service["arm"], in_service["strategy"]))
    searcher = cet.engine.retriever if isinstance(cet, CETStrategy) else baseline_retriever
    app = create_app(strategies, store, default_arm=name, experiment=experiment, token=token,
                     embed=embed_with(searcher),
                     max_body_bytes=cfg.serve.max_body_bytes, team=team, mcp=mcp, host=host, registry=registry,
                     on_breach=on_breach if champion and experiment is None else None)
    arms = ", ".join(f"{arm}: {s.version}" for arm, s in strategies.items())
    console.print(f"serving {arms} on http://{host}:{port} (feedback in {store.path}; proxy upstream "
                  f"{', '.join(cfg.llm.roles.generator)}; dashboard at /dashboard)", highlight=False)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        for strategy in {id(s): s for s in [*strategies.values(), *loaded]}.values():
            if isinstance(strategy, CETStrategy):
                strategy.engine.close()
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
    from cet.serving.feedback import open_feedback_store
    from cet.serving.mcp_server import build_mcp
    from cet.serving.strategies import CETStrategy, make_strategy

    cet = make_strategy("cet", cfg, checkpoint=str(checkpoint) if checkpoint else None, base=base,
                        retrieval=not no_retrieval)
    store = open_feedback_store(cfg.serve.feedback_db)
    try:
        build_mcp(cfg, cet, store, cet.engine.retriever if isinstance(cet, CETStrategy) else None).run()
    finally:
        store.close()
