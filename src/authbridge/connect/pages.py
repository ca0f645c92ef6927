"""The connect pages: ``/connect/{code}``, opened in a popup by ``AuthBridge.connect(url)``.

``GET`` shows the page of a valid code: the end user's existing accounts for the connector to
pick one, and the form to add a new one (or, when the link edits an authentication, the form to
reconnect it in place). ``POST`` (form-encoded, to the same URL) connects (``action=connect``)
or picks (``action=pick``); the success page hands ``{authId, connector}`` to
``window.opener``, addressed to the session's exact origin, through a static script.

The work is split so no database transaction stays open while a provider is called: the page is
loaded in one transaction, the mechanism runs with none, and the code is used up and the result
stored in another (both in the threadpool, since the database driver blocks).

OAuth connectors show one button instead of the form; it posts to
:mod:`authbridge.connect.oauth_pages`, which sends the browser to the provider.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from authbridge import errors
from authbridge.api.deps import get_bridge
from authbridge.api.rendering import (
    FIELD_PREFIX,
    FORBIDDEN_ORIGIN,
    PageRoute,
    connect_page,
    expired_page,
    is_expired_link,
    log,
    message_page,
    origin_allowed,
    read_form,
    success_page,
)
from authbridge.authentications.service import check_name
from authbridge.connect import oauth as oauth_connect
from authbridge.connect import oauth_pages
from authbridge.connect import service as connect
from authbridge.services.bridge import Bridge

router = APIRouter(include_in_schema=False, route_class=PageRoute)


# --- routes ------------------------------------------------------------------------------------


@router.get("/connect/{code}", response_class=HTMLResponse)
async def show(code: str, request: Request) -> Response:
    bridge = get_bridge(request)
    page = await bridge.run(lambda session: connect.load_page(bridge, session, code), readonly=True)
    if oauth_connect.is_oauth(page) and page.options.skip_auth_settings:
        return await oauth_pages.start(bridge, code, page)
    return connect_page(bridge, page, code)


@router.post("/connect/{code}", response_class=HTMLResponse)
async def submit(code: str, request: Request) -> Response:
    bridge = get_bridge(request)
    if not origin_allowed(request, bridge):
        return message_page(bridge, title="Not allowed", message=FORBIDDEN_ORIGIN, status_code=403)
    submitted = await read_form(request)
    page = await bridge.run(lambda session: connect.load_page(bridge, session, code), readonly=True)
    action = submitted.get("action")
    if action == "pick":
        return await _pick(bridge, code, page, submitted)
    if action == "connect":
        return await _connect(bridge, code, page, submitted)
    return connect_page(
        bridge,
        page,
        code,
        error=errors.InvalidInput("choose an account or fill in the form"),
        status_code=400,
    )


async def _pick(
    bridge: Bridge, code: str, page: connect.ConnectPage, submitted: Mapping[str, str]
) -> Response:
    auth_id = submitted.get("authentication_id", "")
    try:
        auth = await bridge.run(lambda session: connect.pick(bridge, session, code, page, auth_id))
    except errors.AuthBridgeError as error:
        if is_expired_link(error):
            return expired_page(bridge)
        return connect_page(bridge, page, code, error=error, status_code=error.status)
    return success_page(bridge, page, auth)


async def _connect(
    bridge: Bridge, code: str, page: connect.ConnectPage, submitted: Mapping[str, str]
) -> Response:
    entered = {
        key.removeprefix(FIELD_PREFIX): value
        for key, value in submitted.items()
        if key.startswith(FIELD_PREFIX)
    }
    shown = {
        key: value
        for key, value in entered.items()
        if key in page.fields and not page.fields[key].is_secret
    }
    raw_name = "" if page.options.skip_title_field else submitted.get("name", "")
    try:
        name = check_name(raw_name) if raw_name.strip() else None
        result = await connect.run_form(bridge, page, entered)
        auth = await connect.connected(bridge, code, page, result, name=name)
    except errors.AuthBridgeError as error:
        if is_expired_link(error):
            return expired_page(bridge)
        if error.status >= 500 and not isinstance(
            error, errors.ProviderError | errors.DecryptionFailed
        ):
            log.error("connecting failed: %s (%s)", error.message, error.code)
        return connect_page(
            bridge, page, code, values=shown, name=raw_name, error=error, status_code=error.status
        )
    return success_page(bridge, page, auth)
