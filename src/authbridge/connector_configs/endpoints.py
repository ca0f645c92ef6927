"""``/v1/connectors`` and ``/v1/connector-configs``: what can be connected, and its setup."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from authbridge import errors
from authbridge.api.deps import BridgeDep, TokenDep, transaction
from authbridge.authentications.schemas import RequestAuthOut
from authbridge.connector_configs import service as connectors
from authbridge.connector_configs.schemas import (
    ConnectorConfigIn,
    ConnectorConfigOut,
    ConnectorOut,
    FieldOut,
)
from authbridge.connectors.loader import Connector
from authbridge.mechanisms import get_mechanism

router = APIRouter(prefix="/v1", tags=["connectors"])

VariantQuery = Annotated[
    str | None,
    Query(max_length=64, description="The connector's variant; its default when omitted"),
]


def connector_view(connector: Connector) -> ConnectorOut:
    definition = connector.definition()
    fields = get_mechanism(definition.type).form_fields(definition)
    return ConnectorOut(
        key=connector.key,
        version=connector.version,
        label=connector.label,
        auth_type=connector.auth_type,
        description=connector.manifest.description,
        docs_url=connector.manifest.docs_url,
        fields=[
            FieldOut(
                name=name,
                label=spec.name or name,
                type=spec.type,
                required=spec.required,
                tooltip=spec.tooltip,
                options=[option.value for option in spec.options],
            )
            for name, spec in fields.items()
        ],
        variants=list(connector.manifest.variants),
    )


@router.get("/connectors", summary="List connectors")
def list_connectors(bridge: BridgeDep, token: TokenDep) -> list[ConnectorOut]:
    with transaction(bridge, token):
        return [connector_view(connector) for connector in bridge.registry]


@router.get("/connectors/{key}", summary="Get a connector")
def get_connector(
    key: str, bridge: BridgeDep, token: TokenDep, version: str | None = None
) -> ConnectorOut:
    with transaction(bridge, token):
        return connector_view(bridge.registry.get(key, version))


@router.get("/connectors/{key}/import-template", summary="Get the import body of a connector")
def get_import_template(
    key: str,
    bridge: BridgeDep,
    token: TokenDep,
    version: Annotated[str | None, Query(max_length=32)] = None,
    variant: VariantQuery = None,
) -> dict[str, Any]:
    """The exact JSON to send to `POST /v1/authentications` for this connector, version (the
    newest unless given) and variant: replace each `<...>` placeholder with a value."""
    with transaction(bridge, token):
        return connectors.import_template(bridge.registry.get(key, version), variant)


@router.get(
    "/connectors/{key}/request-auth",
    summary="How to authenticate requests of a connector without per-user auth",
)
async def get_connector_request_auth(
    key: str,
    bridge: BridgeDep,
    token: TokenDep,
    version: Annotated[str | None, Query(max_length=32)] = None,
    variant: VariantQuery = None,
) -> RequestAuthOut:
    """For a `none` connector (no per-user auth): its request rules rendered from the
    environment's configuration of it (settings, variant), with no authentication, as
    `GET /v1/authentications/{id}/request-auth` renders an account's. Master token only;
    audited. 422 for a connector whose end users each connect an account."""

    def read() -> connectors.ConnectorSetup:
        with transaction(bridge, token, master=True) as (session, principal):
            return connectors.setup_for_requests(
                bridge,
                session,
                principal.environment_id,
                key,
                version,
                variant,
                actor=principal.actor,
            )

    rendered = await connectors.request_auth(bridge, await run_in_threadpool(read))
    return RequestAuthOut.model_validate(rendered.to_json() | {"expires_at": None})


@router.get("/connector-configs", summary="List connector configurations")
def list_connector_configs(bridge: BridgeDep, token: TokenDep) -> list[ConnectorConfigOut]:
    with transaction(bridge, token, master=True) as (session, principal):
        return [
            ConnectorConfigOut.of(
                settings, connectors.callback_url(bridge, settings.connector_key, settings)
            )
            for settings in connectors.list_configs(bridge, session, principal.environment_id)
        ]


@router.get("/connector-configs/{key}", summary="Get a connector configuration")
def get_connector_config(
    key: str, bridge: BridgeDep, token: TokenDep, variant: VariantQuery = None
) -> ConnectorConfigOut:
    """Secrets are never returned: only whether they are set."""
    with transaction(bridge, token, master=True) as (session, principal):
        settings = connectors.find_config(bridge, session, principal.environment_id, key, variant)
        if settings is None:
            raise errors.NotFound(f"connector '{key}' has no configuration{_for(variant)}")
        return ConnectorConfigOut.of(settings, connectors.callback_url(bridge, key, settings))


@router.put("/connector-configs/{key}", summary="Set a connector configuration")
def put_connector_config(
    key: str,
    body: ConnectorConfigIn,
    bridge: BridgeDep,
    token: TokenDep,
    variant: VariantQuery = None,
) -> ConnectorConfigOut:
    """Replaces the whole configuration (OAuth client, consumer, redirect URI, scopes, settings)
    of the connector's variant (each variant has its own OAuth app)."""
    with transaction(bridge, token, master=True) as (session, principal):
        settings = connectors.configure(
            bridge,
            session,
            principal.environment_id,
            key,
            client_id=body.client_id,
            client_secret=body.client_secret,
            consumer_key=body.consumer_key,
            consumer_secret=body.consumer_secret,
            redirect_uri=body.redirect_uri,
            scopes=body.scopes,
            settings=body.settings,
            variant=variant,
        )
        url = connectors.callback_url(bridge, settings.connector_key, settings)
        return ConnectorConfigOut.of(settings, url)


@router.delete("/connector-configs/{key}", status_code=204, summary="Remove a configuration")
def delete_connector_config(
    key: str, bridge: BridgeDep, token: TokenDep, variant: VariantQuery = None
) -> Response:
    with transaction(bridge, token, master=True) as (session, principal):
        if not connectors.delete_config(bridge, session, principal.environment_id, key, variant):
            raise errors.NotFound(f"connector '{key}' has no configuration{_for(variant)}")
    return Response(status_code=204)


def _for(variant: str | None) -> str:
    return f" for variant '{variant}'" if variant else ""
