"""``authbridge connect-link``: open a one-time connect link for an end user, over
:mod:`authbridge.connect.service`.

The link is printed alone on standard output, so that ``$(authbridge connect-link ...)``
captures it; its expiry, and what the connector's configuration still lacks, go to standard
error. The services are imported in the command, so that ``--help`` stays fast.
"""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from authbridge import errors
from authbridge.cli.common import (
    CLI_ACTOR,
    ConnectorsOption,
    EnvOption,
    VariantOption,
    err,
    needs_hint,
    opened,
    parse_duration,
    public_url_hint,
    reported_errors,
)
from authbridge.errors import CliError

MAX_EXTERNAL_ID = 255


def _utc(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def connect_link_command(
    external_user_id: str = typer.Argument(
        ...,
        metavar="EXTERNAL_USER_ID",
        help="Your application's id for the end user (created on first use).",
    ),
    connector_key: str = typer.Argument(
        ..., metavar="CONNECTOR", help="The connector key, e.g. freshdesk."
    ),
    origin: str | None = typer.Option(
        None,
        "--origin",
        metavar="URL",
        help="Your page's web origin (https://app.example.com); the result is posted to it alone.",
    ),
    edit: str | None = typer.Option(
        None,
        "--edit",
        metavar="AUTH_ID",
        help="Reconnect or edit this authentication of the end user in place (same id).",
    ),
    skip_title_field: bool = typer.Option(
        False, "--skip-title-field", help="Do not ask the end user to name the account."
    ),
    skip_auth_settings: bool = typer.Option(
        False,
        "--skip-auth-settings",
        help="For an OAuth connector, go straight to the provider's sign-in (no page first).",
    ),
    delete_after: str | None = typer.Option(
        None,
        "--delete-after",
        metavar="DURATION",
        help="Delete the account this long after it is connected: 90s, 30m, 12h, 7d or seconds.",
    ),
    name: str | None = typer.Option(None, "--name", help="The end user's name, if new."),
    email: str | None = typer.Option(None, "--email", help="The end user's email, if new."),
    variant: str | None = VariantOption,
    env: str = EnvOption,
    folders: ConnectorsOption = None,
) -> None:
    """Print a one-time link (valid 10 minutes) where an end user connects an account.

    Only the URL goes to standard output, so that it can be captured:

        url=$(authbridge connect-link user-42 freshdesk)

    The URL starts with AUTHBRIDGE_PUBLIC_URL; the expiry is printed on standard error.
    """
    from authbridge.connect import service as connect
    from authbridge.connector_configs import service as connectors
    from authbridge.services.principals import Principal

    with reported_errors():
        if not external_user_id.strip():
            raise CliError("the external user id must not be empty")
        if len(external_user_id) > MAX_EXTERNAL_ID:
            raise CliError(f"the external user id is longer than {MAX_EXTERNAL_ID} characters")
        lifetime = None if delete_after is None else parse_duration(delete_after, "--delete-after")
        with opened(env, folders) as state:
            principal = Principal(environment_id=state.environment.id, actor=CLI_ACTOR)
            try:
                opened_session = connect.open_session(
                    state.bridge,
                    state.session,
                    principal,
                    external_user_id=external_user_id,
                    connector=connector_key,
                    variant=variant,
                    authentication_id=edit,
                    origin=origin,
                    options=connect.ConnectOptions(
                        skip_title_field=skip_title_field,
                        skip_auth_settings=skip_auth_settings,
                        delete_after=lifetime,
                    ),
                    user_name=name,
                    user_email=email,
                )
            except errors.InvalidInput as error:
                if error.field == "origin":
                    raise CliError(
                        "--origin must be a web origin such as https://app.example.com "
                        "(scheme, host and port only)"
                    ) from None
                raise
            except errors.NotFound as error:
                if edit is None:
                    raise
                raise CliError(
                    f"--edit: there is no authentication '{edit}' in environment '{env}'"
                ) from error
            connector = state.bridge.registry.get(connector_key)
            stored = connectors.find_config(
                state.bridge, state.session, state.environment.id, connector.key, variant
            )
            hint = None if stored is None else needs_hint(connector, stored)
            if stored is None and connector.auth_type in {"oauth1", "oauth2"}:
                hint = (
                    f"'{connector.key}' is not configured in environment '{env}': run "
                    f"authbridge connector-config set {connector.key} before sending this link."
                )
            expires = opened_session.record.expires_at
            minutes = round((expires - opened_session.record.created_at).total_seconds() / 60)
        typer.echo(opened_session.url)
        action = "reconnect" if edit else "connect"
        err.print(
            f"One-time link for end user '{external_user_id}' to {action} {connector.label}; "
            f"valid until {_utc(expires)} ({minutes} minutes), used up once an account is saved.",
            markup=False,
        )
        if hint:
            err.print(f"[yellow]{hint}[/yellow]", markup=True)
        public_url_hint(state)
