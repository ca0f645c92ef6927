"""End users, user tokens, master tokens, the keys of host JWTs and the audit log (master
token only)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from authbridge import errors
from authbridge.api.deps import BridgeDep, TokenDep, transaction
from authbridge.api.schemas import PageOut
from authbridge.authentications.reads import CredentialReader
from authbridge.services.bridge import Bridge
from authbridge.storage.pagination import MAX_PAGE_SIZE
from authbridge.tenancy import service as tenancy
from authbridge.tenancy.schemas import (
    AuditEventOut,
    EndUserIn,
    EndUserOut,
    IssuedMasterTokenOut,
    JwtKeyIn,
    JwtKeyOut,
    JwtSecretOut,
    MasterTokenIn,
    MasterTokenOut,
    UserTokenIn,
    UserTokenOut,
)

router = APIRouter(prefix="/v1", tags=["tenancy"])

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Cursor = Annotated[str | None, Query(max_length=512)]


@router.put("/end-users/{external_user_id}", summary="Create or update an end user")
def put_end_user(
    external_user_id: str, body: EndUserIn, bridge: BridgeDep, token: TokenDep
) -> EndUserOut:
    if body.external_user_id != external_user_id:
        raise errors.InvalidInput(
            "external_user_id in the body must match the path", field="external_user_id"
        )
    with transaction(bridge, token, master=True) as (session, principal):
        end_user = tenancy.put_end_user(
            session, principal.environment_id, external_user_id, name=body.name, email=body.email
        )
        return EndUserOut.of(end_user)


@router.get("/end-users", summary="List end users")
def list_end_users(
    bridge: BridgeDep, token: TokenDep, limit: Limit = 50, cursor: Cursor = None
) -> PageOut[EndUserOut]:
    with transaction(bridge, token, master=True) as (session, principal):
        page = tenancy.end_users_page(session, principal.environment_id, limit=limit, cursor=cursor)
        return PageOut(items=[EndUserOut.of(u) for u in page.items], next_cursor=page.next_cursor)


@router.get("/end-users/{external_user_id}", summary="Get an end user")
def get_end_user(external_user_id: str, bridge: BridgeDep, token: TokenDep) -> EndUserOut:
    with transaction(bridge, token) as (session, principal):
        return EndUserOut.of(tenancy.end_user(session, principal, external_user_id))


@router.post("/user-tokens", status_code=201, summary="Mint a user token")
def create_user_token(body: UserTokenIn, bridge: BridgeDep, token: TokenDep) -> UserTokenOut:
    """A short-lived token that sees and changes only this end user's data (created if new)."""
    with transaction(bridge, token, master=True) as (session, principal):
        end_user = tenancy.seen_end_user(session, principal.environment_id, body.external_user_id)
        minted, expires_at = tenancy.issue_user_token(
            bridge,
            session,
            principal.environment_id,
            end_user,
            ttl=timedelta(seconds=body.ttl_seconds),
        )
        return UserTokenOut(token=minted, expires_at=expires_at)


@router.post("/master-tokens", status_code=201, summary="Create a master token")
def create_master_token(
    body: MasterTokenIn, bridge: BridgeDep, token: TokenDep
) -> IssuedMasterTokenOut:
    """The token is in this answer only; store it safely."""
    with transaction(bridge, token, master=True) as (session, principal):
        issued = tenancy.create_master_token(session, principal.environment_id, body.name)
        shown = MasterTokenOut.of(issued.record).model_dump()
        return IssuedMasterTokenOut(**shown, token=issued.token)


@router.get("/master-tokens", summary="List master tokens")
def list_master_tokens(
    bridge: BridgeDep, token: TokenDep, include_revoked: bool = False
) -> list[MasterTokenOut]:
    with transaction(bridge, token, master=True) as (session, principal):
        records = tenancy.list_master_tokens(
            session, principal.environment_id, include_revoked=include_revoked
        )
        return [MasterTokenOut.of(record) for record in records]


@router.delete("/master-tokens/{token_id}", status_code=204, summary="Revoke a master token")
def revoke_master_token(token_id: str, bridge: BridgeDep, token: TokenDep) -> Response:
    with transaction(bridge, token, master=True) as (session, principal):
        tenancy.revoke_master_token(session, principal.environment_id, token_id)
    # This process stops trusting it at once; the others within the cache's bound.
    bridge.principals.clear()
    return Response(status_code=204)


@router.get("/jwt-secret", summary="Get the secret that signs HS256 host JWTs")
def get_jwt_secret(bridge: BridgeDep, token: TokenDep, response: Response) -> JwtSecretOut:
    """The environment's HMAC secret, base64url-encoded: the host decodes it and signs user
    tokens and `jwt` connectors' tokens with the bytes (HS256). Audited; never cached."""
    response.headers["Cache-Control"] = "no-store"
    with transaction(bridge, token, master=True) as (session, principal):
        secret = tenancy.jwt_secret(
            session,
            bridge.keyring,
            principal.environment_id,
            actor=principal.actor,
            now=bridge.now(),
        )
    return JwtSecretOut(secret=secret)


@router.post("/jwt-secret/rotate", summary="Replace the secret that signs HS256 host JWTs")
def rotate_jwt_secret(bridge: BridgeDep, token: TokenDep, response: Response) -> JwtSecretOut:
    """A fresh secret, in this answer: every JWT signed with the old one (user tokens
    authbridge minted included) is refused from now on."""
    response.headers["Cache-Control"] = "no-store"
    with transaction(bridge, token, master=True) as (session, principal):
        secret = tenancy.rotate_jwt_secret(
            session,
            bridge.keyring,
            principal.environment_id,
            actor=principal.actor,
            now=bridge.now(),
        )
    bridge.principals.clear()  # this process stops trusting old tokens at once
    return JwtSecretOut(secret=secret)


@router.get("/jwt-keys", summary="List the public keys of host JWTs")
def list_jwt_keys(bridge: BridgeDep, token: TokenDep) -> list[JwtKeyOut]:
    with transaction(bridge, token, master=True) as (session, principal):
        return [
            JwtKeyOut.of(key) for key in tenancy.list_jwt_keys(session, principal.environment_id)
        ]


@router.post("/jwt-keys", status_code=201, summary="Register a public key of host JWTs")
def add_jwt_key(body: JwtKeyIn, bridge: BridgeDep, token: TokenDep) -> JwtKeyOut:
    """JWTs whose header names this `kid` (RS256, ES256, EdDSA …) are verified with it."""
    key = body.key if isinstance(body.key, str) else json.dumps(body.key)
    with transaction(bridge, token, master=True) as (session, principal):
        record = tenancy.add_jwt_key(
            session,
            principal.environment_id,
            key,
            kid=body.kid,
            algorithm=body.algorithm,
            actor=principal.actor,
            now=bridge.now(),
        )
        return JwtKeyOut.of(record)


@router.delete("/jwt-keys/{kid}", status_code=204, summary="Remove a public key of host JWTs")
def remove_jwt_key(
    kid: Annotated[str, Path(max_length=64)], bridge: BridgeDep, token: TokenDep
) -> Response:
    """JWTs signed with it are refused from now on."""
    with transaction(bridge, token, master=True) as (session, principal):
        tenancy.remove_jwt_key(
            session, principal.environment_id, kid, actor=principal.actor, now=bridge.now()
        )
    bridge.principals.clear()
    return Response(status_code=204)


@router.get("/audit-events", summary="List audit events")
async def list_audit_events(
    request: Request,
    bridge: BridgeDep,
    token: TokenDep,
    target_id: Annotated[str | None, Query(max_length=255)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> PageOut[AuditEventOut]:
    """Who created, read the credentials of, changed or deleted what, oldest first.

    Reads and proxied requests are written in batches, a fraction of a second after they
    were answered; those this server answered are written before it lists.
    """
    reader: CredentialReader = request.app.state.reader
    await reader.trail.flush()
    return await run_in_threadpool(_audit_page, bridge, token, target_id, action, limit, cursor)


def _audit_page(
    bridge: Bridge,
    token: str,
    target_id: str | None,
    action: str | None,
    limit: int,
    cursor: str | None,
) -> PageOut[AuditEventOut]:
    with transaction(bridge, token, master=True) as (session, principal):
        page = tenancy.audit_page(
            session,
            principal.environment_id,
            target_id=target_id,
            action=action,
            limit=limit,
            cursor=cursor,
        )
        return PageOut(
            items=[AuditEventOut.of(event) for event in page.items], next_cursor=page.next_cursor
        )
