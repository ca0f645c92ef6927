"""``authbridge connector-config``: set, show, list and delete connector configurations, over
:mod:`authbridge.connector_configs.service`.

It sets up a connector in an environment (OAuth client or consumer, redirect URI, scopes,
declared settings) without the REST API; its secrets are read from standard input or a hidden
prompt when given as ``-``, are stored encrypted and are never printed. The service is imported
in each command, so that ``--help`` stays fast.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from authbridge import errors
from authbridge.cli.common import (
    PUBLIC_URL_ENV_VAR,
    ConnectorsOption,
    EnvOption,
    Opened,
    VariantOption,
    err,
    needs_hint,
    new_table,
    opened,
    out,
    public_url_hint,
    reported_errors,
    when,
    wide,
)
from authbridge.errors import CliError

if TYPE_CHECKING:
    from authbridge.connector_configs.service import ConnectorSettings
    from authbridge.connectors.loader import Connector
    from authbridge.connectors.models import Fields

config_app = typer.Typer(
    help="Set up connectors per environment: OAuth client or consumer, redirect URI, scopes and "
    "the settings a connector declares. Secrets are stored encrypted and never shown.",
    no_args_is_help=True,
)

STDIN = "-"
#: Longest values accepted (the columns' sizes, and the REST API's limits for secrets).
MAX_IDENTIFIER = 512
MAX_REDIRECT_URI = 2048
MAX_CLIENT_SECRET = 4096
MAX_CONSUMER_SECRET = 8192

_SECRET_HELP = (
    "Use '-' to read it from standard input (or to be asked for it, hidden, on a terminal) "
    "rather than leaving it in your shell history. An empty value removes it."
)


# -- reading secrets ---------------------------------------------------------------------------


def _stdin_is_terminal() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


class SecretReader:
    """Resolves ``-`` values: a hidden prompt on a terminal, else standard input (once)."""

    def __init__(self) -> None:
        self._stdin_used_for: str | None = None

    def resolve(self, value: str | None, option: str, label: str) -> str | None:
        if value != STDIN:
            return value
        if _stdin_is_terminal():
            answer: str = typer.prompt(label, hide_input=True, err=True)
            return answer
        if self._stdin_used_for is not None:
            raise CliError(
                f"{option} and {self._stdin_used_for} both ask for standard input, which holds "
                "one value; run the command in a terminal to be asked for each, or set them "
                "one at a time"
            )
        self._stdin_used_for = option
        text = sys.stdin.read() if sys.stdin is not None else ""
        text = text.rstrip("\r\n")
        if not text:
            raise CliError(f"standard input is empty: there is no value for {option}")
        return text


# -- connector-config --------------------------------------------------------------------------


def _check_length(value: str | None, option: str, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise CliError(f"{option} is longer than {limit} characters")


def _parse_settings(pairs: list[str], declared: Fields, connector: Connector) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CliError(f"--setting takes NAME=VALUE, got '{name or pair}'")
        if name not in declared:
            known = ", ".join(sorted(declared)) if declared else "it declares none"
            raise CliError(f"connector '{connector.key}' has no setting '{name}' ({known})")
        parsed[name] = value
    return parsed


def _redirect_note(connector_key: str, settings: ConnectorSettings | None) -> str:
    if settings is not None and settings.redirect_uri:
        return "(set with --redirect-uri)"
    return f"(the default: /auth/{connector_key}/callback on {PUBLIC_URL_ENV_VAR})"


def _describe(state: Opened, connector: Connector, settings: ConnectorSettings | None) -> bool:
    """Print a configuration: identifiers and URLs, and only whether each secret is set.

    Return whether it showed the default redirect URI (which depends on the public URL).
    """
    from authbridge.connector_configs import service as connectors

    definition = connector.definition()
    kind = definition.type
    oauth1 = kind == "oauth1"
    oauth2 = kind == "oauth2"

    def line(label: str, value: str) -> None:
        out.print(f"  {label:<16} {value}", markup=False)

    def is_set(value: object) -> str:
        return "set" if value else "not set"

    variant = f", variant {settings.variant}" if settings is not None and settings.variant else ""
    out.print(
        f"{connector.label} ({connector.key}{variant}, {kind}) in environment "
        f"'{state.environment.name}'" + ("" if settings is not None else ": not configured yet"),
        markup=False,
    )
    client_id = settings.client_id if settings else None
    client_secret = settings.client_secret if settings else None
    consumer_key = settings.consumer_key if settings else None
    consumer_secret = settings.consumer_secret if settings else None
    if oauth2 or client_id or client_secret:
        line("client id", client_id or "not set")
        line("client secret", is_set(client_secret))
    if oauth1 or consumer_key or consumer_secret:
        line("consumer key", consumer_key or "not set")
        line("consumer secret", is_set(consumer_secret))
    overridden = settings is not None and bool(settings.redirect_uri)
    if oauth1 or oauth2 or overridden:
        line("redirect URI", connectors.callback_url(state.bridge, connector.key, settings))
        line("", _redirect_note(connector.key, settings))
    if oauth2 or (settings is not None and settings.scopes is not None):
        if settings is not None and settings.scopes is not None:
            line("scopes", " ".join(settings.scopes) or "(none)")
        else:
            default = getattr(definition, "scope", ())
            line("scopes", f"{' '.join(default) or '(none)'} (the connector's default)")
    stored = settings.settings if settings else {}
    names = [f"{name} ({is_set(stored.get(name))})" for name in definition.settings]
    names += [
        f"{name} (set, no longer declared)" for name in stored if name not in definition.settings
    ]
    line("settings", ", ".join(names) if names else "none declared")
    if settings is not None:
        line("updated", when(settings.updated_at))
    return (oauth1 or oauth2) and not overridden


@config_app.command("set")
def config_set(
    connector_key: str = typer.Argument(
        ..., metavar="CONNECTOR", help="The connector key, e.g. github (see connectors list)."
    ),
    client_id: str | None = typer.Option(None, "--client-id", help="OAuth 2 client id."),
    client_secret: str | None = typer.Option(
        None, "--client-secret", help=f"OAuth 2 client secret. {_SECRET_HELP}"
    ),
    consumer_key: str | None = typer.Option(None, "--consumer-key", help="OAuth 1 consumer key."),
    consumer_secret: str | None = typer.Option(
        None,
        "--consumer-secret",
        help=f"OAuth 1 consumer secret (the PEM private key for RSA-SHA1). {_SECRET_HELP}",
    ),
    redirect_uri: str | None = typer.Option(
        None,
        "--redirect-uri",
        help="Send this redirect URI to the provider instead of the default "
        "(/auth/CONNECTOR/callback on AUTHBRIDGE_PUBLIC_URL). An empty value goes back to it.",
    ),
    scopes: Annotated[
        list[str] | None,
        typer.Option("--scope", help="A scope to request (repeatable); replaces the stored list."),
    ] = None,
    default_scopes: bool = typer.Option(
        False, "--default-scopes", help="Forget stored scopes: request the connector's default."
    ),
    setting_pairs: Annotated[
        list[str] | None,
        typer.Option(
            "--setting",
            metavar="NAME=VALUE",
            help="A setting the connector declares (repeatable). VALUE '-' reads it like a "
            "secret; an empty VALUE removes it.",
        ),
    ] = None,
    variant: str | None = VariantOption,
    env: str = EnvOption,
    folders: ConnectorsOption = None,
) -> None:
    """Set a connector's configuration (of one variant) in an environment.

    Only the values given change; the others keep what is stored.

    Secrets are stored encrypted and never printed. For example:

        authbridge connector-config set github --client-id ID --client-secret -

    A connector with variants (production, sandbox ...) has one configuration per variant:

        authbridge connector-config set salesforce --variant sandbox --client-id ID
    """
    from authbridge.connector_configs import service as connectors

    with reported_errors():
        given_scopes = list(scopes or [])
        pairs = list(setting_pairs or [])
        if given_scopes and default_scopes:
            raise CliError("use either --scope or --default-scopes, not both")
        given = (client_id, client_secret, consumer_key, consumer_secret, redirect_uri)
        if all(value is None for value in given) and not (given_scopes or default_scopes or pairs):
            raise CliError("nothing to set: give at least one option (see --help)")
        _check_length(client_id, "--client-id", MAX_IDENTIFIER)
        _check_length(consumer_key, "--consumer-key", MAX_IDENTIFIER)
        _check_length(redirect_uri, "--redirect-uri", MAX_REDIRECT_URI)
        with opened(env, folders) as state:
            connector = state.bridge.registry.get(connector_key)
            stored_variant = connectors.resolve_variant(connector, variant) or ""
            declared = connector.definition().settings
            given_settings = _parse_settings(pairs, declared, connector)
            reader = SecretReader()
            client_secret = reader.resolve(client_secret, "--client-secret", "Client secret")
            consumer_secret = reader.resolve(
                consumer_secret, "--consumer-secret", "Consumer secret"
            )
            for name, value in given_settings.items():
                label = declared[name].name or name
                given_settings[name] = reader.resolve(value, f"--setting {name}", label) or ""
            _check_length(client_secret, "--client-secret", MAX_CLIENT_SECRET)
            _check_length(consumer_secret, "--consumer-secret", MAX_CONSUMER_SECRET)
            try:
                update = connectors.update_config(
                    state.bridge,
                    state.session,
                    state.environment.id,
                    connector.key,
                    client_id=client_id,
                    client_secret=client_secret,
                    consumer_key=consumer_key,
                    consumer_secret=consumer_secret,
                    redirect_uri=redirect_uri,
                    scopes=given_scopes,
                    default_scopes=default_scopes,
                    settings=given_settings,
                    variant=stored_variant,
                )
            except errors.InvalidInput as error:
                raise CliError(_option_message(error, declared)) from None
            saved = update.saved
            if update.dropped_settings:
                err.print(
                    f"Dropping setting(s) {', '.join(update.dropped_settings)}: connector "
                    f"'{connector.key}' no longer declares them.",
                    markup=False,
                )
        # Committed: only now say so.
        of_variant = f" (variant {stored_variant})" if stored_variant else ""
        out.print(
            f"Saved the configuration of '{connector.key}'{of_variant} in environment '{env}'.",
            markup=False,
        )
        default_redirect = _describe(state, connector, saved)
        hint = needs_hint(connector, saved)
        if hint:
            err.print(f"[yellow]{hint}[/yellow]", markup=True)
        if default_redirect:
            public_url_hint(state)


def _option_message(error: errors.InvalidInput, declared: Fields) -> str:
    """Name the command-line option at fault rather than the API field."""
    if error.field == "redirect_uri":
        return "--redirect-uri must be an absolute http(s) URL without a fragment"
    if error.field == "scopes":
        return "each --scope must be non-empty text without spaces (at most 100 scopes)"
    if error.field in declared:
        return f"--setting {error.field}: {error.message}"
    return error.message


@config_app.command("show")
def config_show(
    connector_key: str = typer.Argument(..., metavar="CONNECTOR", help="The connector key."),
    variant: str | None = VariantOption,
    env: str = EnvOption,
    folders: ConnectorsOption = None,
) -> None:
    """Show a connector's configuration and the exact redirect URI to register with the provider.

    Secrets are shown only as "set" or "not set", settings by name only.
    """
    from authbridge.connector_configs import service as connectors

    with reported_errors(), opened(env, folders) as state:
        connector = state.bridge.registry.get(connector_key)
        settings = connectors.find_config(
            state.bridge, state.session, state.environment.id, connector.key, variant
        )
        if _describe(state, connector, settings):
            public_url_hint(state)


@config_app.command("list")
def config_list(env: str = EnvOption, folders: ConnectorsOption = None) -> None:
    """List the environment's connector configurations (secrets only as set / not set)."""
    from authbridge.connector_configs import service as connectors

    with reported_errors(), opened(env, folders) as state:
        rows = connectors.list_configs(state.bridge, state.session, state.environment.id)
        urls = {
            row.id: connectors.callback_url(state.bridge, row.connector_key, row) for row in rows
        }
    table = new_table(
        "connector",
        "variant",
        "client id",
        "client secret",
        "consumer key",
        "consumer secret",
        "redirect URI",
        "scopes",
        "settings",
        "updated",
        title=f"{len(rows)} connector configurations in environment '{env}'",
    )
    for row in rows:
        table.add_row(
            row.connector_key,
            row.variant or "default",
            row.client_id or "-",
            "set" if row.client_secret else "not set",
            row.consumer_key or "-",
            "set" if row.consumer_secret else "not set",
            urls[row.id],
            "default" if row.scopes is None else " ".join(row.scopes) or "(none)",
            ", ".join(sorted(row.settings)) or "-",
            when(row.updated_at),
        )
    wide.print(table)


@config_app.command("delete")
def config_delete(
    connector_key: str = typer.Argument(..., metavar="CONNECTOR", help="The connector key."),
    variant: str | None = VariantOption,
    env: str = EnvOption,
    folders: ConnectorsOption = None,
) -> None:
    """Delete a connector's configuration (its OAuth client and settings) from an environment.

    Stored authentications are kept; OAuth ones cannot be refreshed until it is set again.
    """
    from authbridge.connector_configs import service as connectors

    with reported_errors():
        with opened(env, folders) as state:
            stored_variant = connectors.stored_variant(state.bridge, connector_key, variant)
            deleted = connectors.delete_config(
                state.bridge, state.session, state.environment.id, connector_key, variant
            )
            if not deleted:
                connector = state.bridge.registry.get(connector_key)
                of_variant = f" (variant {stored_variant})" if stored_variant else ""
                raise CliError(
                    f"connector '{connector.key}'{of_variant} has no configuration in "
                    f"environment '{env}'"
                )
        out.print(
            f"Deleted the configuration of '{connector_key}' in environment '{env}'.",
            markup=False,
        )
