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
) -> None:
    """Serve the CET's contexts (POST /v1/context) and record outcomes (POST /v1/feedback)."""
    cfg = get_config()
    host, port = host or cfg.serve.host, port or cfg.serve.port
    token = os.environ.get(cfg.serve.token_env) or None
    if not is_loopback(host) and token is None:
        raise CetError(f"binding {host} (beyond loopback) needs a bearer token: set {cfg.serve.token_env}")
    import uvicorn

    from cet.serving.app import create_app
    from cet.serving.engine import ContextEngine
    from cet.serving.feedback import FeedbackStore

    engine = ContextEngine(cfg, checkpoint, base=base, retrieval=not no_retrieval)
    store = FeedbackStore(cfg.serve.feedback_db)
    app = create_app(engine, store, arm=cfg.serve.arm, token=token, max_body_bytes=cfg.serve.max_body_bytes)
    console.print(f"serving {engine.version} on http://{host}:{port} (feedback in {cfg.serve.feedback_db})",
                  highlight=False)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        store.close()
