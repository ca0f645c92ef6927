"""``/v1/authorization-codes``: one-time codes that open the configuration wizard and edit links."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from authbridge import errors
from authbridge.api.deps import BridgeDep, TokenDep, transaction
from authbridge.api.schemas import MAX_TEXT, Request
from authbridge.tenancy import service as tenancy
from authbridge.wizard import service as wizard

router = APIRouter(prefix="/v1", tags=["wizard"])


class AuthorizationCodeIn(Request):
    external_user_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TEXT,
        description="The end user (required with a master token; a user token's own by default)",
    )
    origin: str | None = Field(
        default=None,
        max_length=512,
        description="The host page's origin; the finished wizard posts its result to it alone",
    )


class AuthorizationCodeOut(BaseModel):
    code: str = Field(
        description="Valid once, for 10 minutes: add it as ?code= to a wizard or edit link"
    )
    expires_at: datetime


@router.post("/authorization-codes", status_code=201, summary="Mint a wizard code")
def create_authorization_code(
    body: AuthorizationCodeIn, bridge: BridgeDep, token: TokenDep
) -> AuthorizationCodeOut:
    """A code for `/external/solutions/{theme}/{solutionId}?code=…`,
    `/external/solutions/{theme}/instances/{instanceId}?code=…` or
    `/external/auth/edit/{theme}/{authId}?code=…`. It is used up when that flow finishes.
    With a master token the end user is created on first sight."""
    with transaction(bridge, token) as (session, principal):
        if principal.end_user_id is not None:
            if body.external_user_id not in (None, principal.external_user_id):
                raise errors.NotFound(f"end user '{body.external_user_id}' not found")
            end_user_id = principal.end_user_id
        elif body.external_user_id is None:
            raise errors.InvalidInput(
                "external_user_id is required with a master token", field="external_user_id"
            )
        else:
            end_user_id = tenancy.seen_end_user(
                session, principal.environment_id, body.external_user_id
            ).id
        code, expires_at = wizard.create_authorization_code(
            bridge, session, principal, end_user_id=end_user_id, origin=body.origin
        )
        return AuthorizationCodeOut(code=code, expires_at=expires_at)
