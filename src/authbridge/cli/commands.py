"""The ``authbridge`` command line, assembled from the commands of every slice."""

from __future__ import annotations

import typer

from authbridge import __version__
from authbridge.authentications.cli import import_command
from authbridge.cli.admin import db_app, keys_app
from authbridge.cli.connectors import app as connectors_app
from authbridge.cli.sandbox import sandbox_command
from authbridge.cli.serve import serve_command
from authbridge.connect.cli import connect_link_command
from authbridge.connector_configs.cli import config_app
from authbridge.refresh.cli import worker_command
from authbridge.solutions.cli import app as solutions_app
from authbridge.tenancy.cli import jwt_app, tokens_app, users_app
from authbridge.webhooks.cli import app as webhooks_app

app = typer.Typer(
    name="authbridge",
    help="authbridge: connect, store, refresh and serve third-party credentials.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(connectors_app, name="connectors")
app.add_typer(config_app, name="connector-config")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(tokens_app, name="tokens")
app.add_typer(users_app, name="users")
app.add_typer(jwt_app, name="jwt")
app.add_typer(solutions_app, name="solutions")
app.add_typer(webhooks_app, name="webhooks")
app.command("serve")(serve_command)
app.command("worker")(worker_command)
app.command("sandbox")(sandbox_command)
app.command("connect-link")(connect_link_command)
app.command("import")(import_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"authbridge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", callback=_version, is_eager=True
    ),
) -> None:
    """authbridge: the self-hosted auth layer for integrations."""


def main() -> None:
    app()
