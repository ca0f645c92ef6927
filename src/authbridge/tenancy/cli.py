"""``authbridge tokens`` (create, list and revoke master tokens) and ``authbridge users`` (list
and add end users), over :mod:`authbridge.tenancy.service`.

Like every command, they read the settings from the environment, open what they need, and turn
every expected failure into a one-line message and exit status 1. The service is imported in
each command, so that ``--help`` stays fast.
"""

from __future__ import annotations

import typer

from authbridge import errors
from authbridge.cli.common import (
    EnvOption,
    err,
    find_environment,
    new_table,
    open_keys,
    opened_database,
    out,
    reported_errors,
    settings_from_env,
    when,
    wide,
)
from authbridge.errors import CliError

tokens_app = typer.Typer(help="Create, list and revoke master tokens.", no_args_is_help=True)
users_app = typer.Typer(help="List and add end users.", no_args_is_help=True)


# -- tokens ------------------------------------------------------------------------------------


@tokens_app.command("create")
def tokens_create(
    name: str = typer.Argument(..., help="What the token is for, e.g. 'backend'."),
    env: str = EnvOption,
) -> None:
    """Create a master token and print it once: store it, it cannot be shown again."""
    from authbridge.tenancy import service as tenancy

    with reported_errors():
        if not name.strip():
            raise CliError("the token name must not be empty")
        settings = settings_from_env()
        keyring = open_keys(settings)
        with opened_database(settings) as database, database.session() as session:
            environment = find_environment(session, keyring, env)
            issued = tenancy.create_master_token(session, environment.id, name)
            token_id = issued.record.id
    out.print(f"Created master token '{name.strip()}' ({token_id}) in environment '{env}':")
    out.print(issued.token, markup=False)
    err.print(
        "[yellow]This is the only time the token is shown; store it in a secret manager now.[/]"
    )


@tokens_app.command("list")
def tokens_list(env: str = EnvOption) -> None:
    """List the environment's master tokens, revoked ones included."""
    from authbridge.tenancy import service as tenancy

    with reported_errors():
        settings = settings_from_env()
        keyring = open_keys(settings)
        with opened_database(settings) as database, database.session() as session:
            environment = find_environment(session, keyring, env)
            records = tenancy.list_master_tokens(session, environment.id, include_revoked=True)
    table = new_table("id", "name", "prefix", "created", "last used", "revoked")
    for record in records:
        table.add_row(
            record.id,
            record.name,
            record.prefix + "…",
            when(record.created_at),
            when(record.last_used_at),
            when(record.revoked_at),
        )
    wide.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: str = typer.Argument(..., metavar="ID", help="The token id (see tokens list)."),
    env: str = EnvOption,
) -> None:
    """Revoke a master token: requests made with it are refused from now on."""
    from authbridge.tenancy import service as tenancy

    with reported_errors():
        settings = settings_from_env()
        keyring = open_keys(settings)
        with opened_database(settings) as database, database.session() as session:
            environment = find_environment(session, keyring, env)
            tenancy.revoke_master_token(session, environment.id, token_id)
    out.print(f"Revoked master token {token_id}.", markup=False)


# -- users -------------------------------------------------------------------------------------


@users_app.command("list")
def users_list(env: str = EnvOption) -> None:
    """List the environment's end users, oldest first."""
    from authbridge.tenancy import service as tenancy

    with reported_errors():
        settings = settings_from_env()
        keyring = open_keys(settings)
        with opened_database(settings) as database, database.session() as session:
            environment = find_environment(session, keyring, env)
            users = tenancy.all_end_users(session, environment.id)
    table = new_table(
        "id", "external id", "name", "email", "created", title=f"{len(users)} end users"
    )
    for user in users:
        table.add_row(
            user.id,
            user.external_user_id,
            user.name or "",
            user.email or "",
            when(user.created_at),
        )
    wide.print(table)


@users_app.command("add")
def users_add(
    external_id: str = typer.Argument(..., help="Your application's id for the user."),
    name: str | None = typer.Option(None, "--name", help="Display name."),
    email: str | None = typer.Option(None, "--email", help="Email address."),
    env: str = EnvOption,
) -> None:
    """Add an end user; the external id must be new in the environment."""
    from authbridge.tenancy import service as tenancy

    with reported_errors():
        if not external_id.strip():
            raise CliError("the external id must not be empty")
        settings = settings_from_env()
        keyring = open_keys(settings)
        with opened_database(settings) as database, database.session() as session:
            environment = find_environment(session, keyring, env)
            try:
                user = tenancy.add_end_user(
                    session, environment.id, external_id, name=name, email=email
                )
            except errors.Conflict:
                raise CliError(
                    f"an end user with external id '{external_id}' already exists"
                    f" in environment '{env}'"
                ) from None
    out.print(f"Added end user {user.id} ('{external_id}').", markup=False)
