"""``/v1/connect/sessions``: one-time links that open the connect pages."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from authbridge.api.deps import BridgeDep, TokenDep, transaction
from authbridge.connect import service as connect
from authbridge.connect.schemas import ConnectSessionIn, ConnectSessionOut

router = APIRouter(prefix="/v1/connect", tags=["connect"])


@router.post("/sessions", status_code=201, summary="Open a connect link")
def open_connect_session(
    body: ConnectSessionIn, bridge: BridgeDep, token: TokenDep
) -> ConnectSessionOut:
    """A URL valid once, for 10 minutes, for one end user (created on first sight) and connector.

    Open it with `AuthBridge.connect(url)` from `/static/authbridge.js`: the promise resolves
    with `{authId, connector}` once the end user has connected (or picked) an account. With
    `authentication_id` the page edits that authentication in place (same id).
    """
    with transaction(bridge, token, master=True) as (session, principal):
        opened = connect.open_session(
            bridge,
            session,
            principal,
            external_user_id=body.external_user_id,
            connector=body.connector,
            version=body.version,
            variant=body.variant,
            authentication_id=body.authentication_id,
            origin=body.origin,
            options=connect.ConnectOptions(
                skip_title_field=body.skip_title_field,
                skip_auth_settings=body.skip_auth_settings,
                allow_account_change=body.allow_account_change,
                delete_after=None
                if body.delete_after_seconds is None
                else timedelta(seconds=body.delete_after_seconds),
            ),
            user_name=body.user_name,
            user_email=body.user_email,
        )
        return ConnectSessionOut(
            id=opened.record.id, url=opened.url, expires_at=opened.record.expires_at
        )
