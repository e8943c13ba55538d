"""The `cet` command: one Typer sub-app per area."""

from __future__ import annotations

import typer

from cet.cli.common import app_callback
from cet.cli.context import context_command
from cet.cli.data import data_app
from cet.cli.eval import eval_app
from cet.cli.exec import exec_app
from cet.cli.experiment import experiment_app
from cet.cli.kb import kb_app
from cet.cli.llm import llm_app
from cet.cli.models import models_app
from cet.cli.registry import registry_app
from cet.cli.retrain import retrain_command
from cet.cli.run import run_command
from cet.cli.serve import mcp_command, serve_command
from cet.cli.simulate import simulate_command
from cet.cli.tasks import tasks_app
from cet.cli.train import train_app

app = typer.Typer(
    name="cet", help="Context Engineering Transformers: knowledge base, training phases, evaluation.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
app.callback()(app_callback)
app.add_typer(kb_app, name="kb")
app.add_typer(tasks_app, name="tasks")
app.add_typer(exec_app, name="exec")
app.add_typer(llm_app, name="llm")
app.add_typer(models_app, name="models")
app.add_typer(train_app, name="train")
app.add_typer(data_app, name="data")
app.add_typer(eval_app, name="eval")
app.add_typer(experiment_app, name="experiment")
app.add_typer(registry_app, name="registry")
app.command("run")(run_command)
app.command("context")(context_command)
app.command("serve")(serve_command)
app.command("mcp")(mcp_command)
app.command("simulate")(simulate_command)
app.command("retrain")(retrain_command)


def main() -> None:
    app()
