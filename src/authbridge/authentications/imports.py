"""Authentications that do not come through the connect pages: API import and host JWTs.

An import names the end user (by external id), the connector (its version and variant, newest
and default unless given) and the credentials, checked against that version's definition. Form
connectors' fields are checked against the definition and ``validate`` runs unless the importer
asks to skip it; OAuth connectors take their tokens (and expiry) as they are, checked with
``validate_access_token`` when the definition has one. A ``jwt`` connector's host-signed token
creates the end user's authentication for that connector, or updates the one it has.

Like the connect pages, each import reads (one transaction), calls the provider (no
transaction) and stores (another transaction); the caller runs :func:`prepare` and
:func:`commit` in threads and awaits :func:`connect` between them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.authentications import service as authentications
from authbridge.authentications.repository import AuthenticationRepository
from authbridge.connector_configs.service import ConnectorSetup, setup
from authbridge.connectors.models import JwtDefinition
from authbridge.mechanisms import ConnectResult, Context, get_mechanism
from authbridge.mechanisms.form import check_fields
from authbridge.mechanisms.jwt import JwtMechanism
from authbridge.mechanisms.request_rules import token_values
from authbridge.services.bridge import Bridge
from authbridge.services.principals import (
    MAX_EXTERNAL_ID,
    Principal,
    environment_keys,
    is_external_id,
)
from authbridge.storage.models import Authentication
from authbridge.tenancy.repository import EndUserRepository, EnvironmentRepository

OAUTH_TYPES = frozenset({"oauth1", "oauth2"})
TOKEN_NAMES = {
    "oauth2": ("access_token", "refresh_token", "token_type", "scope"),
    "oauth1": ("access_token", "access_token_secret"),
}


@dataclass(frozen=True)
class ImportRequest:
    """One authentication to import (see ``POST /v1/authentications``)."""

    connector: str
    external_user_id: str | None = None
    version: str | None = None
    variant: str | None = None
    name: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict, repr=False)
    tokens: Mapping[str, Any] = field(default_factory=dict, repr=False)
    scopes: tuple[str, ...] | None = None
    #: The reference's ``data``: the fields of a form connector, or the tokens (and a
    #: ``scopes`` list) of an OAuth one; which, the connector's type says.
    data: Mapping[str, Any] = field(default_factory=dict, repr=False)
    expires_at: datetime | None = None
    hard_expires_at: datetime | None = None
    delete_at: datetime | None = None
    delete_after_seconds: int | None = None
    validate: bool = True


@dataclass(frozen=True)
class Prepared:
    setup: ConnectorSetup
    end_user_id: str | None
    delete_at: datetime | None


def prepare(
    bridge: Bridge, session: Session, principal: Principal, request: ImportRequest
) -> Prepared:
    """Check the request against the connector and find (or add) the end user."""
    connector_setup = setup(
        bridge,
        session,
        principal.environment_id,
        request.connector,
        request.version,
        request.variant,
    )
    external = request.external_user_id
    if principal.end_user_id is not None:
        if external not in (None, principal.external_user_id):
            raise errors.Forbidden("a user token can import authentications only for its own user")
        end_user_id: str | None = principal.end_user_id
    elif external:
        end_user_id = (
            EndUserRepository(session).get_or_create(principal.environment_id, external).id
        )
    else:
        raise errors.InvalidInput("external_user_id is required", field="external_user_id")
    delay = (
        None
        if request.delete_after_seconds is None
        else timedelta(seconds=request.delete_after_seconds)
    )
    delete_at = authentications.deletion_time(bridge.now(), request.delete_at, delay)
    return Prepared(setup=connector_setup, end_user_id=end_user_id, delete_at=delete_at)


async def connect(bridge: Bridge, prepared: Prepared, request: ImportRequest) -> ConnectResult:
    """Check the credentials (and validate them unless skipped); no database work."""
    definition = prepared.setup.definition
    mechanism = get_mechanism(definition.type)
    context = Context(
        http=bridge.http,
        now=bridge.now(),
        config=prepared.setup.config,
        callback_url=prepared.setup.callback_url,
    )
    if request.data:
        request = _with_data(request, oauth=definition.type in OAUTH_TYPES)
    if definition.type in OAUTH_TYPES:
        if request.fields:
            raise errors.InvalidInput(
                f"'{request.connector}' is an OAuth connector: send 'tokens', not 'fields'",
                field="fields",
            )
        tokens = _oauth_tokens(definition.type, request.tokens, token_values(definition))
        if request.validate:
            try:
                await mechanism.check_tokens(definition, context.replace(tokens=tokens))
            except errors.InvalidToken as error:
                # Refused tokens are bad input here (422), not a failed API login (401).
                raise errors.CredentialsRejected(
                    f"the provider refused the access token: {error.message}",
                    status_code=error.status_code,
                ) from None
        return ConnectResult(
            account_name=None,
            credentials=tokens,
            expires_at=request.expires_at,
            scopes=request.scopes,
        )
    if request.tokens:
        raise errors.InvalidInput(
            f"'{request.connector}' takes 'fields', not 'tokens'", field="tokens"
        )
    fields = mechanism.form_fields(definition)
    if request.validate:
        return await mechanism.connect(definition, context.replace(fields=dict(request.fields)))
    checked = check_fields(fields, request.fields)
    return ConnectResult(account_name=None, credentials=checked, expires_at=request.expires_at)


def _with_data(request: ImportRequest, *, oauth: bool) -> ImportRequest:
    """``request`` with its ``data`` read as the connector's type takes it: an OAuth
    connector's tokens (a ``scopes`` list among them gives the scopes), else form fields."""
    data = dict(request.data)
    if not oauth:
        if request.fields:
            raise errors.InvalidInput(
                "give the fields in data or in fields, not both", field="data"
            )
        return replace(request, fields=data, data={})
    if request.tokens:
        raise errors.InvalidInput("give the tokens in data or in tokens, not both", field="data")
    scopes = request.scopes
    if "scopes" in data:
        given = data.pop("scopes")
        if not isinstance(given, list) or not all(isinstance(s, str) for s in given):
            raise errors.InvalidInput("data.scopes must be a list of strings", field="data")
        if scopes is not None and tuple(given) != scopes:
            raise errors.InvalidInput(
                "data.scopes and scopes differ; give the scopes once", field="scopes"
            )
        scopes = tuple(given)
    return replace(request, tokens=data, scopes=scopes, data={})


def _oauth_tokens(
    auth_type: str, given: Mapping[str, Any], provider_values: frozenset[str]
) -> dict[str, Any]:
    """The tokens to store: the type's token names, plus the provider values the connector's
    request rules read (``instance_url``); anything else is a mistake worth reporting."""
    names = TOKEN_NAMES[auth_type]
    unknown = sorted(set(given) - set(names) - provider_values)
    if unknown:
        takes = ", ".join([*names, *sorted(provider_values)])
        raise errors.InvalidInput(
            f"unknown token '{unknown[0]}'; {auth_type} takes {takes}", field="tokens"
        )
    required = names[:1] if auth_type == "oauth2" else names
    for name in required:
        value = given.get(name)
        if not isinstance(value, str) or not value.strip():
            raise errors.InvalidInput(f"tokens.{name} is required", field="tokens")
    tokens = {name: value for name, value in given.items() if value not in (None, "")}
    for name, value in tokens.items():
        if not isinstance(value, str):
            raise errors.InvalidInput(f"tokens.{name} must be text", field="tokens")
    if auth_type == "oauth2":
        tokens.setdefault("token_type", "Bearer")
    return tokens


def commit(
    bridge: Bridge,
    session: Session,
    principal: Principal,
    prepared: Prepared,
    request: ImportRequest,
    result: ConnectResult,
) -> Authentication:
    return authentications.store(
        bridge,
        session,
        principal,
        end_user_id=prepared.end_user_id,
        setup=prepared.setup,
        result=result,
        name=request.name,
        delete_at=prepared.delete_at,
        hard_expires_at=request.hard_expires_at,
        via="import",
    )


@dataclass(frozen=True)
class JwtPrepared:
    setup: ConnectorSetup
    keys: list[Any] = field(repr=False)


def prepare_jwt(
    bridge: Bridge, session: Session, principal: Principal, connector: str
) -> JwtPrepared:
    connector_setup = setup(bridge, session, principal.environment_id, connector)
    if not isinstance(connector_setup.definition, JwtDefinition):
        raise errors.InvalidInput(f"'{connector}' is not a jwt connector", field="connector")
    environment = EnvironmentRepository(session, bridge.keyring).get(principal.environment_id)
    assert environment is not None
    return JwtPrepared(
        setup=connector_setup, keys=environment_keys(session, bridge.keyring, environment)
    )


async def connect_jwt(
    bridge: Bridge, prepared: JwtPrepared, token: str
) -> tuple[str, ConnectResult]:
    """Verify the host's JWT and connect its ``authData``; return the ``sub`` and the result."""
    mechanism = get_mechanism("jwt")
    assert isinstance(mechanism, JwtMechanism)
    context = Context(
        http=bridge.http,
        now=bridge.now(),
        config=prepared.setup.config,
        callback_url=prepared.setup.callback_url,
    )
    try:
        claims, result = await mechanism.connect_with_token(
            prepared.setup.definition, token, prepared.keys, context
        )
    except errors.JwtError as error:
        # The token in the body is bad input (422); a 401 would say the API token was refused.
        raise errors.InvalidInput(
            f"the token was refused: {error.message}", field="token"
        ) from None
    subject = claims.get("sub")
    if not is_external_id(subject):
        raise errors.InvalidInput(
            "the token's 'sub' claim must be the end user's external id "
            f"(1 to {MAX_EXTERNAL_ID} characters)",
            field="token",
        )
    return subject, result


def commit_jwt(
    bridge: Bridge,
    session: Session,
    principal: Principal,
    prepared: JwtPrepared,
    subject: str,
    result: ConnectResult,
) -> tuple[Authentication, bool]:
    """Create the end user's authentication for the connector, or update the one it has."""
    if principal.end_user_id is not None and subject != principal.external_user_id:
        raise errors.Forbidden("a user token can connect only its own user")
    end_user = EndUserRepository(session).get_or_create(principal.environment_id, subject)
    connector = prepared.setup.connector
    current = (
        AuthenticationRepository(session, bridge.keyring)
        .list(
            principal.environment_id,
            now=bridge.now(),
            end_user_id=end_user.id,
            connector_key=connector.key,
            limit=1,
        )
        .items
    )
    existing = current[0] if current else None
    auth = authentications.store(
        bridge,
        session,
        principal,
        end_user_id=end_user.id,
        setup=prepared.setup,
        result=result,
        existing=existing,
        via="jwt",
    )
    return auth, existing is None
