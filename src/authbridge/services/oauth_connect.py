"""The OAuth connect flow: from the connect page to the provider and back to the callback.

1. :func:`authorize` (no database) asks the mechanism where to send the end user: for OAuth 2 a
   fresh ``state`` and PKCE verifier, for OAuth 1.0a a request token.
2. :func:`remember` stores what the callback needs (encrypted) in an OAuth state, single use,
   valid 10 minutes, bound to the browser by a random value the caller sets as a cookie.
3. The callback: :func:`claim` uses the state up, only for the browser that started it, before
   anything else happens; :func:`complete` (no database) checks the redirect (``error``,
   RFC 9207 ``iss``) and trades the code or verifier for tokens with the exact redirect URI of
   step 1; the caller then stores the account with :func:`authbridge.services.connect.finish`.

The scopes come from the connector (or its configuration), never from the browser.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.connectors.models import OAuth1Definition, OAuth2Definition
from authbridge.mechanisms import ConnectResult, Context, get_mechanism
from authbridge.mechanisms.oauth1 import OAuth1Mechanism
from authbridge.mechanisms.oauth2 import OAuth2Mechanism, check_callback
from authbridge.mechanisms.oauth2_tokens import requested_scopes
from authbridge.services.bridge import Bridge
from authbridge.services.connect import EXPIRED_LINK, ConnectPage, page_for
from authbridge.storage.repositories import (
    ConnectSessionRepository,
    IssuedOAuthState,
    OAuthStateRepository,
)

COOKIE_PREFIX = "ab_oauth_"
STATE_LOST = (
    "This sign-in was already completed, has expired, or was started in another browser. "
    "Close this window and connect again."
)
DENIED = "The authorization was denied."


@dataclass(frozen=True)
class Authorization:
    """Where to send the end user, and what to keep for the callback (``secrets`` encrypted)."""

    url: str = field(repr=False)
    lookup: str = field(repr=False)
    redirect_uri: str
    scopes: tuple[str, ...]
    secrets: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Claimed:
    """A used-up state and the connect page it belongs to."""

    page: ConnectPage
    redirect_uri: str
    scopes: tuple[str, ...]
    secrets: Mapping[str, Any] = field(repr=False)


def cookie_name(lookup: str) -> str:
    """The cookie that binds one flow to the browser, named after its state.

    Naming it per state lets one browser run several flows at once; the name reveals nothing
    (a hash prefix of a one-time value).
    """
    return COOKIE_PREFIX + hashlib.sha256(lookup.encode()).hexdigest()[:16]


def is_oauth(page: ConnectPage) -> bool:
    return page.signs_in_at_provider


def _context(bridge: Bridge, page: ConnectPage) -> Context:
    return Context(
        http=bridge.http,
        now=bridge.now(),
        config=page.setup.config,
        callback_url=page.setup.callback_url,
    )


async def authorize(bridge: Bridge, page: ConnectPage) -> Authorization:
    """Prepare the redirect to the provider (OAuth 1.0a asks it for a request token)."""
    definition = page.setup.definition
    context = _context(bridge, page)
    _check_configured(page)
    if isinstance(definition, OAuth2Definition):
        if definition.grant_type == "client_credentials":
            raise errors.InvalidInput(
                f"'{page.setup.connector.label}' connects without a sign-in page"
            )
        mechanism = get_mechanism("oauth2")
        assert isinstance(mechanism, OAuth2Mechanism)
        state = secrets.token_urlsafe(32)
        scopes = requested_scopes(definition, context, page.options.scopes)
        request = await mechanism.authorization_request(
            definition, context, state=state, scopes=scopes
        )
        return Authorization(
            url=request.url,
            lookup=state,
            redirect_uri=request.redirect_uri,
            scopes=scopes,
            secrets={"code_verifier": request.code_verifier},
        )
    if isinstance(definition, OAuth1Definition):
        mechanism1 = get_mechanism("oauth1")
        assert isinstance(mechanism1, OAuth1Mechanism)
        started = await mechanism1.start(definition, context)
        return Authorization(
            url=started.url,
            lookup=started.request_token,
            redirect_uri=page.setup.callback_url,
            scopes=(),
            secrets={
                "request_token": started.request_token,
                "request_token_secret": started.request_token_secret,
            },
        )
    raise errors.InvalidInput(f"'{page.setup.connector.label}' does not connect through OAuth")


def _check_configured(page: ConnectPage) -> None:
    config = page.setup.config
    oauth1 = page.setup.definition.type == "oauth1"
    present = config.consumer_key if oauth1 else config.client_id
    if not present:
        what = "consumer key" if oauth1 else "client id"
        raise errors.NotConfigured(
            f"{page.setup.connector.label} is not set up yet: its OAuth {what} is missing. "
            "Please tell the application's support."
        )


def remember(
    bridge: Bridge, session: Session, page: ConnectPage, authorization: Authorization
) -> IssuedOAuthState:
    """Store the pending redirect; set ``binding`` as cookie :func:`cookie_name` (lookup)."""
    return OAuthStateRepository(session, bridge.keyring).create(
        environment_id=page.record.environment_id,
        connect_session_id=page.record.id,
        redirect_uri=authorization.redirect_uri,
        scopes=authorization.scopes,
        secrets_=authorization.secrets,
        lookup=authorization.lookup,
        now=bridge.now(),
    )


def lookup_of(auth_type: str, query: Mapping[str, str]) -> str:
    """What finds the state in a callback: ``state`` (OAuth 2) or ``oauth_token`` (OAuth 1.0a).

    An OAuth 1.0a provider whose user denied access may send the request token as ``denied``
    instead (Twitter does).
    """
    if auth_type == "oauth2":
        value = query.get("state", "")
    else:
        value = query.get("oauth_token", "") or query.get("denied", "")
    if not value:
        raise errors.Conflict(STATE_LOST)
    return value


def claim(
    bridge: Bridge, session: Session, connector_key: str, lookup: str, binding: str | None
) -> Claimed:
    """Use up the state of a callback, if this browser started it; find its connect page."""
    now = bridge.now()
    claimed = (
        OAuthStateRepository(session, bridge.keyring).claim(lookup, binding, now=now)
        if binding
        else None
    )
    if claimed is None:
        raise errors.Conflict(STATE_LOST)
    record = ConnectSessionRepository(session).get(
        claimed.record.environment_id, claimed.record.connect_session_id
    )
    if record is None or record.used_at is not None or record.expires_at <= now:
        raise errors.Conflict(EXPIRED_LINK)
    if record.connector_key != connector_key:
        raise errors.Conflict(STATE_LOST)
    return Claimed(
        page=page_for(bridge, session, record),
        redirect_uri=claimed.record.redirect_uri,
        scopes=tuple(claimed.record.scopes or ()),
        secrets=claimed.secrets,
    )


async def complete(bridge: Bridge, claimed: Claimed, query: Mapping[str, str]) -> ConnectResult:
    """Check the provider's redirect and trade it for tokens (no database)."""
    page = claimed.page
    definition = page.setup.definition
    context = _context(bridge, page)
    if isinstance(definition, OAuth2Definition):
        mechanism = get_mechanism("oauth2")
        assert isinstance(mechanism, OAuth2Mechanism)
        code = check_callback(
            query,
            expected_issuer=definition.issuer,
            issuer_required=definition.issuer_required,
        )
        return await mechanism.exchange_code(
            definition,
            context,
            code=code,
            code_verifier=claimed.secrets.get("code_verifier"),
            redirect_uri=claimed.redirect_uri,
            scopes=claimed.scopes,
        )
    assert isinstance(definition, OAuth1Definition)
    mechanism1 = get_mechanism("oauth1")
    assert isinstance(mechanism1, OAuth1Mechanism)
    verifier = query.get("oauth_verifier", "")
    if query.get("denied") or not verifier:
        raise errors.ProviderError(DENIED)
    return await mechanism1.complete(
        definition,
        context,
        request_token=str(claimed.secrets["request_token"]),
        request_token_secret=str(claimed.secrets["request_token_secret"]),
        oauth_token=query.get("oauth_token", ""),
        oauth_verifier=verifier,
    )
