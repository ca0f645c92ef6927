"""The OAuth part of the connect pages: to the provider, and back to ``/auth/{key}/callback``.

``POST /connect/{code}/oauth`` (the connect page's button, or ``GET /connect/{code}`` itself
with the session option ``skip_auth_settings``) stores a single-use state and redirects to the
provider, setting a cookie that binds the flow to this browser. The callback uses the state up
(only with that cookie), trades the code or verifier for tokens, stores the account and ends on
the same success page as the forms, or on a failure page with the provider's reason. Callback
pages send no referrer at all: their URL holds the authorization code.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from authbridge import errors
from authbridge.api.deps import get_bridge
from authbridge.api.rendering import (
    CONNECT_FAILED,
    FORBIDDEN_ORIGIN,
    SECURITY_HEADERS,
    PageRoute,
    connect_page,
    error_page,
    expired_page,
    is_expired_link,
    log,
    message_page,
    origin_allowed,
    page_message,
    success_page,
)
from authbridge.connect import oauth as oauth_connect
from authbridge.connect import service as connect
from authbridge.services.bridge import Bridge

router = APIRouter(include_in_schema=False, route_class=PageRoute)

STATE_MAX_AGE = 600
CALLBACK_REFERRER = "no-referrer"


def cookie_path(bridge: Bridge) -> str:
    return urlsplit(bridge.public_url).path.rstrip("/") + "/auth/"


async def start(bridge: Bridge, code: str, page: connect.ConnectPage) -> Response:
    """Send the browser to the provider, remembering the flow for the callback."""
    try:
        authorization = await oauth_connect.authorize(bridge, page)
        issued = await bridge.run(
            lambda session: oauth_connect.remember(bridge, session, page, authorization)
        )
    except errors.AuthBridgeError as error:
        if error.status >= 500 and not isinstance(
            error, errors.ProviderError | errors.DecryptionFailed
        ):
            log.error("starting OAuth failed: %s (%s)", error.message, error.code)
        return connect_page(bridge, page, code, error=error, status_code=error.status)
    response = RedirectResponse(authorization.url, status_code=303, headers=SECURITY_HEADERS)
    response.set_cookie(
        oauth_connect.cookie_name(authorization.lookup),
        issued.binding,
        max_age=STATE_MAX_AGE,
        path=cookie_path(bridge),
        secure=bridge.public_url.startswith("https://"),
        httponly=True,
        samesite="lax",
    )
    return response


@router.post("/connect/{code}/oauth")
async def start_oauth(code: str, request: Request) -> Response:
    bridge = get_bridge(request)
    if not origin_allowed(request, bridge):
        return message_page(bridge, title="Not allowed", message=FORBIDDEN_ORIGIN, status_code=403)
    page = await bridge.run(lambda session: connect.load_page(bridge, session, code), readonly=True)
    if not oauth_connect.is_oauth(page):
        return connect_page(
            bridge, page, code, error=errors.InvalidInput("fill in the form"), status_code=400
        )
    return await start(bridge, code, page)


def failed_here(error: errors.AuthBridgeError) -> bool:
    """Whether the flow itself failed (the provider refused, the state was lost), not us."""
    return isinstance(error, errors.ProviderError) or error.status < 500


@router.get("/auth/{connector}/callback")
async def callback(connector: str, request: Request) -> Response:
    """The provider's redirect back: the redirect URI registered for ``connector`` (its key,
    or the key but for case, ``-`` and ``_``: ``/auth/myService/callback`` for ``my-service``)."""
    bridge = get_bridge(request)
    query = {key: value for key, value in request.query_params.items()}
    cookie = None
    try:
        connector = oauth_connect.callback_connector(bridge, connector)
        lookup = oauth_connect.lookup_of(bridge, connector, query)
        cookie = oauth_connect.cookie_name(lookup)
        claimed = await bridge.run(
            lambda session: oauth_connect.claim(
                bridge, session, connector, lookup, request.cookies.get(cookie)
            ),
        )
        result = await oauth_connect.complete(bridge, claimed, query)
        auth = await connect.connected(bridge, None, claimed.page, result)
        response: Response = success_page(
            bridge, claimed.page, auth, referrer_policy=CALLBACK_REFERRER
        )
    except errors.AuthBridgeError as error:
        if is_expired_link(error):
            response = expired_page(bridge, referrer_policy=CALLBACK_REFERRER)
        else:
            if error.status >= 500 and not isinstance(
                error, errors.ProviderError | errors.DecryptionFailed
            ):
                log.error("OAuth callback failed: %s (%s)", error.message, error.code)
            response = message_page(
                bridge,
                title=CONNECT_FAILED,
                message=page_message(error),
                status_code=400 if failed_here(error) else error.status,
                referrer_policy=CALLBACK_REFERRER,
            )
    except Exception as exc:
        response = error_page(bridge, exc, referrer_policy=CALLBACK_REFERRER)
    if cookie is not None:
        response.delete_cookie(cookie, path=cookie_path(bridge))
    return response
