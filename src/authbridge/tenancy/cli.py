"""``authbridge tokens`` (create, list and revoke master tokens), ``authbridge users`` (list
and add end users) and ``authbridge jwt`` (the secret and public keys host JWTs are signed with),
over :mod:`authbridge.tenancy.service`.

Like every command, they read the settings from the environment, open what they need, and turn
every expected failure into a one-line message and exit status 1. The service is imported in
each command, so that ``--help`` stays fast.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import typer

from authbridge import errors
from authbridge.cli.common import (
    EnvOption,
    err,
    in_environment,
    new_table,
    out,
    reported_errors,
    when,
    wide,
)
from authbridge.errors import CliError

tokens_app = typer.Typer(help="Create, list and revoke master tokens.", no_args_is_help=True)
users_app = typer.Typer(help="List and add end users.", no_args_is_help=True)
jwt_app = typer.Typer(
    help="The keys of JWTs the host signs (user tokens, jwt connectors' tokens): the "
    "environment's HMAC secret (HS256) and public keys it registers (RS256, ES256, EdDSA).",
    no_args_is_help=True,
)
jwt_secret_app = typer.Typer(
    help="Show or rotate the HMAC secret that signs HS256 JWTs.", no_args_is_help=True
)
jwt_keys_app = typer.Typer(
    help="Register, list and remove the public keys that verify RS256, ES256 and EdDSA JWTs.",
    no_args_is_help=True,
)
jwt_app.add_typer(jwt_secret_app, name="secret")
jwt_app.add_typer(jwt_keys_app, name="keys")

#: Who the audit log says read or changed the JWT keys from the command line.
CLI_ACTOR = "cli"


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
        with in_environment(env) as state:
            issued = tenancy.create_master_token(state.session, state.environment.id, name)
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

    with reported_errors(), in_environment(env) as state:
        records = tenancy.list_master_tokens(
            state.session, state.environment.id, include_revoked=True
        )
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

    with reported_errors(), in_environment(env) as state:
        tenancy.revoke_master_token(state.session, state.environment.id, token_id)
    out.print(f"Revoked master token {token_id}.", markup=False)


# -- users -------------------------------------------------------------------------------------


@users_app.command("list")
def users_list(env: str = EnvOption) -> None:
    """List the environment's end users, oldest first."""
    from authbridge.tenancy import service as tenancy

    with reported_errors(), in_environment(env) as state:
        users = tenancy.all_end_users(state.session, state.environment.id)
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
        with in_environment(env) as state:
            try:
                user = tenancy.add_end_user(
                    state.session, state.environment.id, external_id, name=name, email=email
                )
            except errors.Conflict:
                raise CliError(
                    f"an end user with external id '{external_id}' already exists"
                    f" in environment '{env}'"
                ) from None
    out.print(f"Added end user {user.id} ('{external_id}').", markup=False)


# -- jwt ---------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


@jwt_secret_app.command("show")
def jwt_secret_show(env: str = EnvOption) -> None:
    """Print the environment's HMAC secret, base64url-encoded, alone on stdout.

    Decode it and sign HS256 JWTs with the bytes, e.g. in Python
    jwt.encode(claims, base64.urlsafe_b64decode(secret), algorithm="HS256"). The read is
    audited; keep the secret in the host's secret manager.
    """
    from authbridge.tenancy import service as tenancy

    with reported_errors(), in_environment(env) as state:
        secret = tenancy.jwt_secret(
            state.session, state.keyring, state.environment.id, actor=CLI_ACTOR, now=_now()
        )
    out.print(secret, markup=False)
    err.print(
        f"The HS256 secret of environment '{env}', base64url-encoded: sign with the decoded bytes.",
        markup=False,
    )


@jwt_secret_app.command("rotate")
def jwt_secret_rotate(
    yes: bool = typer.Option(False, "--yes", help="Really replace it."),
    env: str = EnvOption,
) -> None:
    """Replace the HMAC secret with a fresh one and print it as 'show' does.

    Every JWT signed with the old secret is refused from then on (within 5 seconds in running
    servers), user tokens authbridge minted included.
    """
    from authbridge.tenancy import service as tenancy

    with reported_errors():
        if not yes:
            raise CliError(
                "rotating refuses every JWT signed with the current secret, user tokens "
                "included; add --yes to go ahead"
            )
        with in_environment(env) as state:
            secret = tenancy.rotate_jwt_secret(
                state.session, state.keyring, state.environment.id, actor=CLI_ACTOR, now=_now()
            )
    out.print(secret, markup=False)
    err.print(
        f"Rotated the HS256 secret of environment '{env}'; sign with the new one from now on.",
        markup=False,
    )


@jwt_keys_app.command("add")
def jwt_keys_add(
    key_file: str = typer.Argument(
        ...,
        metavar="FILE",
        help="The public key: a PEM file ('-----BEGIN PUBLIC KEY-----') or a JWK as JSON; "
        "'-' reads it from stdin. Never the private key.",
    ),
    kid: str | None = typer.Option(
        None, "--kid", help="The key id JWTs name in their header (the JWK's kid by default)."
    ),
    algorithm: str | None = typer.Option(
        None,
        "--algorithm",
        help="RS256, RS384, RS512, PS256, ES256, ES384 or EdDSA; inferred from the key "
        "(RS256 for RSA) by default.",
    ),
    env: str = EnvOption,
) -> None:
    """Register a public key: JWTs whose header names its kid are verified with it."""
    from pathlib import Path

    from authbridge.tenancy import service as tenancy

    with reported_errors():
        try:
            text = sys.stdin.read() if key_file == "-" else Path(key_file).read_text("utf-8")
        except UnicodeDecodeError:
            raise CliError(f"{key_file} is not text: give a PEM or JWK file") from None
        with in_environment(env) as state:
            record = tenancy.add_jwt_key(
                state.session,
                state.environment.id,
                text,
                kid=kid,
                algorithm=algorithm,
                actor=CLI_ACTOR,
                now=_now(),
            )
            shown = f"'{record.kid}' ({record.algorithm})"
    out.print(f"Registered key {shown} in environment '{env}'.", markup=False)


@jwt_keys_app.command("list")
def jwt_keys_list(env: str = EnvOption) -> None:
    """List the environment's registered public keys, oldest first."""
    from authbridge.tenancy import service as tenancy

    with reported_errors(), in_environment(env) as state:
        keys = tenancy.list_jwt_keys(state.session, state.environment.id)
        rows = [(key.kid, key.algorithm, when(key.created_at)) for key in keys]
    table = new_table("kid", "algorithm", "created", title=f"{len(rows)} public keys")
    for row in rows:
        table.add_row(*row)
    wide.print(table)


@jwt_keys_app.command("remove")
def jwt_keys_remove(
    kid: str = typer.Argument(..., metavar="KID", help="The key id (see jwt keys list)."),
    env: str = EnvOption,
) -> None:
    """Remove a public key: JWTs it signed are refused from now on."""
    from authbridge.tenancy import service as tenancy

    with reported_errors(), in_environment(env) as state:
        tenancy.remove_jwt_key(
            state.session, state.environment.id, kid, actor=CLI_ACTOR, now=_now()
        )
    out.print(f"Removed key '{kid}' from environment '{env}'.", markup=False)
