"""Connectors as one environment sees them: configuration, callback URL, built definition."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.connectors.loader import Connector, DefinitionContext
from authbridge.connectors.models import AuthDefinition
from authbridge.mechanisms import ClientConfig
from authbridge.mechanisms.form import check_fields
from authbridge.services.bridge import Bridge
from authbridge.storage.repositories import ConnectorConfigRepository, ConnectorSettings

MAX_SCOPES = 100


@dataclass(frozen=True)
class ConnectorSetup:
    """A connector ready to run in one environment: definition, client config, callback URL."""

    connector: Connector
    definition: AuthDefinition
    config: ClientConfig
    callback_url: str


def callback_url(bridge: Bridge, connector_key: str, settings: ConnectorSettings | None) -> str:
    """The exact redirect URI: the configuration's override, else ``/auth/{key}/callback``."""
    if settings is not None and settings.redirect_uri:
        return settings.redirect_uri
    return bridge.url(f"/auth/{connector_key}/callback")


def client_config(settings: ConnectorSettings | None) -> ClientConfig:
    if settings is None:
        return ClientConfig()
    return ClientConfig(
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        consumer_key=settings.consumer_key,
        consumer_secret=settings.consumer_secret,
        redirect_uri=settings.redirect_uri,
        scopes=settings.scopes,
        settings={key: str(value) for key, value in settings.settings.items()},
    )


def setup(
    bridge: Bridge,
    session: Session,
    environment_id: str,
    connector_key: str,
    version: str | None = None,
) -> ConnectorSetup:
    """Load ``connector_key`` (newest version unless given) with the environment's configuration."""
    connector = bridge.registry.get(connector_key, version)
    settings = ConnectorConfigRepository(session, bridge.keyring).get(environment_id, connector.key)
    config = client_config(settings)
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
        connector=connector, definition=definition, config=config, callback_url=url
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
) -> ConnectorSettings:
    """Set the whole configuration of a connector in an environment (replacing the old one).

    ``settings`` are checked against the fields the definition declares under ``settings``.
    """
    connector = bridge.registry.get(connector_key)
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
    )


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
