"""``/v1/authentications``: list, import, read, rename, delete, credentials, request auth,
forced refresh, host JWTs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from authbridge import errors
from authbridge.api.deps import (
    BEARER_SECURITY,
    BridgeDep,
    TokenDep,
    bearer_token,
    caller,
    transaction,
)
from authbridge.api.schemas import PageOut
from authbridge.authentications import imports
from authbridge.authentications import service as authentications
from authbridge.authentications import use as credential_use
from authbridge.authentications.reads import CredentialReader
from authbridge.authentications.schemas import (
    AuthenticationImport,
    AuthenticationOut,
    AuthenticationUpdate,
    CredentialsOut,
    JwtConnect,
    JwtConnected,
    RefreshOut,
    RequestAuthOut,
    timestamp,
)
from authbridge.refresh.service import Outcome, Refresher
from authbridge.storage.models import Authentication, AuthStatus
from authbridge.storage.pagination import MAX_PAGE_SIZE
from authbridge.tenancy import service as tenancy

router = APIRouter(prefix="/v1/authentications", tags=["authentications"])


def views(session: Session, auths: Sequence[Authentication]) -> list[AuthenticationOut]:
    external = tenancy.external_ids(session, (auth.end_user_id for auth in auths))
    return [AuthenticationOut.of(auth, external.get(auth.end_user_id or "")) for auth in auths]


@router.get("", summary="List authentications")
def list_authentications(
    bridge: BridgeDep,
    token: TokenDep,
    external_user_id: Annotated[str | None, Query(max_length=255)] = None,
    connector: Annotated[str | None, Query(max_length=128)] = None,
    status: AuthStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> PageOut[AuthenticationOut]:
    """Oldest first; a user token sees only its own end user's authentications."""
    with transaction(bridge, token) as (session, principal):
        page = authentications.list_page(
            bridge,
            session,
            principal,
            external_user_id=external_user_id,
            connector=connector,
            status=status,
            limit=limit,
            cursor=cursor,
        )
        return PageOut(items=views(session, page.items), next_cursor=page.next_cursor)


@router.post("", status_code=201, summary="Import an authentication")
async def import_authentication(
    body: AuthenticationImport, bridge: BridgeDep, token: TokenDep
) -> AuthenticationOut:
    """Store credentials obtained elsewhere, checked against the connector's definition.

    Form connectors take `fields`; OAuth connectors take `tokens` (and `expires_at`,
    `scopes`). `validate` (default true) runs the definition's check first.
    """
    request = body.to_request()

    def prepare() -> imports.Prepared:
        with transaction(bridge, token) as (session, principal):
            return imports.prepare(bridge, session, principal, request)

    prepared = await run_in_threadpool(prepare)
    result = await imports.connect(bridge, prepared, request)

    def commit() -> AuthenticationOut:
        with transaction(bridge, token) as (session, principal):
            auth = imports.commit(bridge, session, principal, prepared, request, result)
            return views(session, [auth])[0]

    return await run_in_threadpool(commit)


@router.post("/jwt", summary="Connect from a host-signed JWT")
async def connect_with_jwt(body: JwtConnect, bridge: BridgeDep, token: TokenDep) -> JwtConnected:
    """Create (or update) the `sub` end user's authentication from the JWT's `authData`."""

    def prepare() -> imports.JwtPrepared:
        with transaction(bridge, token) as (session, principal):
            return imports.prepare_jwt(bridge, session, principal, body.connector)

    prepared = await run_in_threadpool(prepare)
    subject, result = await imports.connect_jwt(bridge, prepared, body.token)

    def commit() -> JwtConnected:
        with transaction(bridge, token) as (session, principal):
            auth, created = imports.commit_jwt(
                bridge, session, principal, prepared, subject, result
            )
            return JwtConnected(authentication=views(session, [auth])[0], created=created)

    return await run_in_threadpool(commit)


@router.get("/{auth_id}", summary="Get an authentication")
def get_authentication(auth_id: str, bridge: BridgeDep, token: TokenDep) -> AuthenticationOut:
    with transaction(bridge, token) as (session, principal):
        auth = authentications.get(bridge, session, principal, auth_id)
        return views(session, [auth])[0]


@router.patch("/{auth_id}", summary="Rename or schedule the deletion of an authentication")
def update_authentication(
    auth_id: str, body: AuthenticationUpdate, bridge: BridgeDep, token: TokenDep
) -> AuthenticationOut:
    with transaction(bridge, token) as (session, principal):
        auth = authentications.update(
            bridge,
            session,
            principal,
            auth_id,
            name=body.name,
            delete_at=body.delete_at,
            clear_delete_at=body.clear_delete_at,
        )
        return views(session, [auth])[0]


@router.delete("/{auth_id}", status_code=204, summary="Delete an authentication")
def delete_authentication(auth_id: str, bridge: BridgeDep, token: TokenDep) -> Response:
    with transaction(bridge, token) as (session, principal):
        authentications.delete(bridge, session, principal, auth_id)
    return Response(status_code=204)


@router.get(
    "/{auth_id}/credentials",
    response_model=CredentialsOut,
    summary="Read an authentication's credentials",
    openapi_extra=BEARER_SECURITY,
)
async def read_credentials(auth_id: str, request: Request) -> Response:
    """Fresh credentials: the stored fields and tokens, never the refresh token.

    Credentials due for a refresh are refreshed first (once, however many callers ask at the
    same time, in every process); expired credentials are never served (503 while they cannot
    be refreshed). Every read is audited.
    """
    if "\x00" in auth_id:  # as plain_params does for the other routes
        raise errors.InvalidInput("'auth_id' must not contain NUL characters", field="auth_id")
    reader: CredentialReader = request.app.state.reader
    principal = await caller(reader.bridge, bearer_token(request))
    row, credentials = await reader.credentials(principal, auth_id)
    # The hottest endpoint: the body is built here rather than validated through the model
    # (whose schema the decorator still documents).
    return JSONResponse(
        {
            "authentication_id": row.id,
            "connector": row.connector_key,
            "auth_type": row.auth_type,
            "credentials": credentials,
            "expires_at": timestamp(row.expires_at),
        }
    )


async def credentials_endpoint(request: Request) -> Response:
    """:func:`read_credentials` as a plain Starlette endpoint, routed before every other route
    (see :func:`authbridge.api.app.create_app`): FastAPI's route matching and request handling
    cost more than the read itself. The FastAPI route documents it."""
    return await read_credentials(request.path_params["auth_id"], request)


@router.get("/{auth_id}/request-auth", summary="How to authenticate requests to the provider")
async def read_request_auth(
    auth_id: str, request: Request, bridge: BridgeDep, token: TokenDep
) -> RequestAuthOut:
    """The connector's request rules rendered with fresh credentials: base URL, headers,
    query parameters, HTTP Basic credentials or OAuth 1.0a signing.

    Refreshed and audited like a credentials read; the SDK applies it to its HTTP client.
    """
    reader: CredentialReader = request.app.state.reader
    read = await reader.for_requests(await caller(bridge, token), auth_id)
    rendered = await credential_use.request_auth(bridge, read)
    return RequestAuthOut.model_validate(rendered.to_json() | {"expires_at": read.auth.expires_at})


@router.post("/{auth_id}/refresh", summary="Refresh an authentication's credentials now")
async def force_refresh(
    auth_id: str, request: Request, bridge: BridgeDep, token: TokenDep
) -> RefreshOut:
    """Renew the credentials now, whether due or not (after the provider refused a token).

    Concurrent calls share one refresh. 409 when the credentials cannot be renewed or the
    provider refused them (the end user must reconnect); 503 with `retry_after` when the
    provider could not be reached.
    """
    refresher: Refresher = request.app.state.refresher

    def check() -> None:
        with transaction(bridge, token) as (session, principal):
            credential_use.check_refreshable(bridge, session, principal, auth_id)

    def record(outcome: Outcome) -> Authentication:
        with transaction(bridge, token) as (session, principal):
            return credential_use.record_forced_refresh(
                bridge, session, principal, auth_id, outcome
            )

    await run_in_threadpool(check)
    outcome = await refresher.refresh(auth_id, force=True)
    auth = await run_in_threadpool(record, outcome)  # audited even when it failed
    credential_use.check_refresh_outcome(auth, outcome)
    return RefreshOut(
        outcome="refreshed" if outcome.kind == "refreshed" else "shared", expires_at=auth.expires_at
    )
