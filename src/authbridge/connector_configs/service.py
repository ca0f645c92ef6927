"""Connectors as one environment sees them: configuration, callback URL, built definition.

A connector may declare variants (service environments such as production and sandbox, see
:class:`authbridge.connectors.loader.Variant`). Each variant has its own configuration (its own
OAuth app): there is no fallback from one variant's configuration to another's, because an
OAuth client registered for production is not valid at the sandbox's host. The variant's
values are template values of every property (``https://{{login}}.salesforce.com/...``).
Stored names are canonical: ``None`` (and ``""`` for configurations) is the default variant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.connector_configs.repository import ConnectorConfigRepository
from authbridge.connector_configs.repository import ConnectorSettings as ConnectorSettings
from authbridge.connectors.loader import Connector, DefinitionContext
from authbridge.connectors.models import AuthDefinition
from authbridge.mechanisms import ClientConfig, get_mechanism, request_rules
from authbridge.mechanisms.form import check_fields
from authbridge.mechanisms.request_rules import RequestAuth
from authbridge.services.bridge import Bridge
from authbridge.tenancy.repository import AuditRepository

MAX_SCOPES = 100
REQUEST_AUTH_READ = "connector.request_auth_read"


@dataclass(frozen=True)
class ConnectorSetup:
    """A connector ready to run in one environment: definition, client config, callback URL."""

    connector: Connector
    definition: AuthDefinition
    config: ClientConfig
    callback_url: str
    variant: str | None = None
    """The variant as stored on an authentication: ``None`` for the default one."""


def resolve_variant(connector: Connector, variant: str | None) -> str | None:
    """The stored name of ``variant``: ``None`` for the default (or none given).

    An unknown name is an :class:`errors.InvalidInput` naming the connector's variants.
    """
    if not variant:
        return None
    names = list(connector.manifest.variants)
    if variant not in names:
        known = f"variants: {', '.join(names)}" if names else "it declares no variants"
        raise errors.InvalidInput(
            f"connector '{connector.key}' version {connector.version} has no variant "
            f"'{variant}' ({known})",
            field="variant",
        )
    return None if variant == names[0] else variant


def variant_values(connector: Connector, variant: str | None) -> dict[str, str]:
    """The template values of a (resolved) variant; the default variant's when ``None``."""
    name = variant or connector.default_variant
    return dict(connector.manifest.variants[name].values) if name else {}


def import_template(connector: Connector, variant: str | None = None) -> dict[str, Any]:
    """The body of ``POST /v1/authentications`` for this connector version and variant.

    Every value to fill in is a ``<description>`` placeholder; the rest (connector, version,
    variant, the definition's default scopes) is to be sent as it is. Form connectors take
    ``fields``; OAuth ones take ``tokens`` (and, for OAuth 2, ``expires_at`` and ``scopes``).
    """
    chosen = resolve_variant(connector, variant)
    definition = connector.definition()
    template: dict[str, Any] = {
        "connector": connector.key,
        "version": connector.version,
        "variant": chosen or connector.default_variant,
        "external_user_id": "<your id for the end user>",
        "name": f"<a name for this {connector.label} account>",
    }
    template |= get_mechanism(definition.type).import_template(definition)
    return template


def callback_url(bridge: Bridge, connector_key: str, settings: ConnectorSettings | None) -> str:
    """The exact redirect URI: the configuration's override, else ``/auth/{key}/callback``."""
    if settings is not None and settings.redirect_uri:
        return settings.redirect_uri
    return bridge.url(f"/auth/{connector_key}/callback")


def client_config(
    settings: ConnectorSettings | None, variant_values: Mapping[str, str] | None = None
) -> ClientConfig:
    values = dict(variant_values or {})
    if settings is None:
        return ClientConfig(variant_values=values)
    return ClientConfig(
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        consumer_key=settings.consumer_key,
        consumer_secret=settings.consumer_secret,
        redirect_uri=settings.redirect_uri,
        scopes=settings.scopes,
        settings={key: str(value) for key, value in settings.settings.items()},
        variant_values=values,
    )


def setup(
    bridge: Bridge,
    session: Session,
    environment_id: str,
    connector_key: str,
    version: str | None = None,
    variant: str | None = None,
) -> ConnectorSetup:
    """Load ``connector_key`` (newest version unless given; default variant unless given) with
    the environment's configuration of that variant."""
    connector = bridge.registry.get(connector_key, version)
    chosen = resolve_variant(connector, variant)
    settings = ConnectorConfigRepository(session, bridge.keyring).get(
        environment_id, connector.key, chosen or ""
    )
    config = client_config(settings, variant_values(connector, chosen))
    url = callback_url(bridge, connector.key, settings)
    definition = connector.definition(
        DefinitionContext(
            callback_url=url,
            client_id=config.client_id or "",
            client_secret=config.client_secret or "",
            consumer_key=config.consumer_key or "",
            consumer_secret=config.consumer_secret or "",
        )
    )
    return ConnectorSetup(
        connector=connector,
        definition=definition,
        config=config,
        callback_url=url,
        variant=chosen,
    )


def setup_for_requests(
    bridge: Bridge,
    session: Session,
    environment_id: str,
    connector_key: str,
    version: str | None = None,
    variant: str | None = None,
    *,
    actor: str,
) -> ConnectorSetup:
    """The setup of a connector without per-user auth (``none``), whose request rules take
    only what the host configured: integration code uses it with no authentication. Audited
    as ``connector.request_auth_read``; only the host (a master token) may read it, since the
    rules may carry its settings. :class:`errors.InvalidInput` for a connector whose end users
    each connect an account."""
    connector_setup = setup(bridge, session, environment_id, connector_key, version, variant)
    definition = connector_setup.definition
    if get_mechanism(definition.type).per_user:
        raise errors.InvalidInput(
            f"connector '{connector_setup.connector.key}' is a {definition.type} connector: "
            "each end user connects an account, so use that authentication's request-auth",
            field="key",
        )
    AuditRepository(session).record(
        environment_id=environment_id,
        actor=actor,
        action=REQUEST_AUTH_READ,
        target_type="connector",
        target_id=connector_setup.connector.key,
        detail={
            "version": connector_setup.connector.version,
            "variant": connector_setup.variant or connector_setup.connector.default_variant,
        },
        now=bridge.now(),
    )
    return connector_setup


async def request_auth(bridge: Bridge, connector_setup: ConnectorSetup) -> RequestAuth:
    """The request rules of a connector without per-user auth, rendered from its
    configuration and variant (no transaction open: a callable ``request`` may call out)."""
    return await request_rules.prepare(
        connector_setup.definition,
        credentials={},
        config=connector_setup.config,
        http=bridge.http,
        now=bridge.now(),
    )


def configure(
    bridge: Bridge,
    session: Session,
    environment_id: str,
    connector_key: str,
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    consumer_key: str | None = None,
    consumer_secret: str | None = None,
    redirect_uri: str | None = None,
    scopes: Sequence[str] | None = None,
    settings: Mapping[str, Any] | None = None,
    variant: str | None = None,
) -> ConnectorSettings:
    """Set the whole configuration of a connector (one variant of it) in an environment,
    replacing the old one.

    ``settings`` are checked against the fields the definition declares under ``settings``.
    """
    connector = bridge.registry.get(connector_key)
    chosen = resolve_variant(connector, variant)
    declared = connector.definition().settings
    checked = check_fields(declared, dict(settings or {})) if declared or settings else {}
    if redirect_uri:
        _check_redirect_uri(redirect_uri)
    if scopes is not None:
        scopes = _check_scopes(scopes)
    return ConnectorConfigRepository(session, bridge.keyring).upsert(
        environment_id,
        connector.key,
        client_id=client_id or None,
        client_secret=client_secret or None,
        consumer_key=consumer_key or None,
        consumer_secret=consumer_secret or None,
        redirect_uri=redirect_uri or None,
        scopes=scopes,
        settings=checked,
        variant=chosen or "",
    )


def stored_variant(bridge: Bridge, connector_key: str, variant: str | None) -> str:
    """The stored name of a configuration's variant (``""``: the default), checked by the
    registry when one is named."""
    if not variant:
        return ""
    return resolve_variant(bridge.registry.get(connector_key), variant) or ""


def find_config(
    bridge: Bridge,
    session: Session,
    environment_id: str,
    connector_key: str,
    variant: str | None = None,
) -> ConnectorSettings | None:
    """The configuration of a connector's variant (its default when ``None``), or ``None``."""
    return ConnectorConfigRepository(session, bridge.keyring).get(
        environment_id, connector_key, stored_variant(bridge, connector_key, variant)
    )


def list_configs(bridge: Bridge, session: Session, environment_id: str) -> list[ConnectorSettings]:
    """Every connector configuration of the environment."""
    repository = ConnectorConfigRepository(session, bridge.keyring)
    found = []
    for record in repository.list(environment_id):
        settings = repository.get(environment_id, record.connector_key, record.variant)
        if settings is not None:
            found.append(settings)
    return found


def delete_config(
    bridge: Bridge,
    session: Session,
    environment_id: str,
    connector_key: str,
    variant: str | None = None,
) -> bool:
    """Remove the configuration of a connector's variant; whether there was one. Stored
    authentications are kept (OAuth ones cannot be refreshed until it is set again)."""
    return ConnectorConfigRepository(session, bridge.keyring).delete(
        environment_id, connector_key, stored_variant(bridge, connector_key, variant)
    )


@dataclass(frozen=True)
class ConfigUpdate:
    """What :func:`update_config` saved, and the stored settings it dropped because the
    connector no longer declares them."""

    saved: ConnectorSettings
    dropped_settings: tuple[str, ...]


def update_config(
    bridge: Bridge,
    session: Session,
    environment_id: str,
    connector_key: str,
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    consumer_key: str | None = None,
    consumer_secret: str | None = None,
    redirect_uri: str | None = None,
    scopes: Sequence[str] | None = None,
    default_scopes: bool = False,
    settings: Mapping[str, str] | None = None,
    variant: str | None = None,
) -> ConfigUpdate:
    """Change only what is given in a connector's configuration (creating it when there is
    none), as :func:`configure` checks it.

    A value left ``None`` keeps what is stored and ``""`` clears it; ``scopes`` replace the
    stored ones and ``default_scopes`` goes back to the definition's; a setting given as ``""``
    is removed. Stored settings the connector no longer declares are dropped (and named in
    the result).
    """
    connector = bridge.registry.get(connector_key)
    chosen = resolve_variant(connector, variant) or ""
    current = ConnectorConfigRepository(session, bridge.keyring).get(
        environment_id, connector.key, chosen
    )
    if scopes:
        new_scopes: list[str] | None = list(scopes)
    elif default_scopes or current is None or current.scopes is None:
        new_scopes = None
    else:
        new_scopes = list(current.scopes)
    declared = connector.definition().settings
    merged = dict(current.settings) if current is not None else {}
    dropped = tuple(sorted(name for name in merged if name not in declared))
    for name in dropped:
        del merged[name]
    for name, value in (settings or {}).items():
        if value == "":
            merged.pop(name, None)
        else:
            merged[name] = value

    def keep(given: str | None, stored: str | None) -> str | None:
        return stored if given is None else given or None

    saved = configure(
        bridge,
        session,
        environment_id,
        connector.key,
        client_id=keep(client_id, current.client_id if current else None),
        client_secret=keep(client_secret, current.client_secret if current else None),
        consumer_key=keep(consumer_key, current.consumer_key if current else None),
        consumer_secret=keep(consumer_secret, current.consumer_secret if current else None),
        redirect_uri=keep(redirect_uri, current.redirect_uri if current else None),
        scopes=new_scopes,
        settings=merged,
        variant=chosen,
    )
    return ConfigUpdate(saved=saved, dropped_settings=dropped)


def _check_redirect_uri(value: str) -> None:
    try:
        parts = urlsplit(value)
        valid = parts.scheme in {"https", "http"} and bool(parts.hostname) and not parts.fragment
    except ValueError:  # e.g. an unclosed IPv6 bracket
        valid = False
    if not valid:
        raise errors.InvalidInput(
            "redirect_uri must be an absolute http(s) URL without a fragment",
            field="redirect_uri",
        )


def _check_scopes(scopes: Sequence[str]) -> list[str]:
    if isinstance(scopes, str) or len(scopes) > MAX_SCOPES:
        raise errors.InvalidInput(f"scopes must be a list of at most {MAX_SCOPES}", field="scopes")
    cleaned = []
    for scope in scopes:
        if not isinstance(scope, str) or not scope.strip() or any(c.isspace() for c in scope):
            raise errors.InvalidInput(
                "each scope must be non-empty text without spaces", field="scopes"
            )
        cleaned.append(scope)
    return cleaned
