"""The OAuth connect flow: from the connect page to the provider and back to the callback.

1. :func:`authorize` (no database) asks the mechanism where to send the end user: for OAuth 2 a
   fresh ``state`` and PKCE verifier, for OAuth 1.0a a request token.
2. :func:`remember` stores what the callback needs (encrypted) in an OAuth state, single use,
   valid 10 minutes, bound to the browser by a random value the caller sets as a cookie.
3. The callback: :func:`claim` uses the state up, only for the browser that started it, before
   anything else happens; :func:`complete` (no database) checks the redirect (``error``,
   RFC 9207 ``iss``) and trades the code or verifier for tokens with the exact redirect URI of
   step 1; the caller then stores the account with :func:`authbridge.connect.service.finish`.

The scopes come from the connector (or its configuration), never from the browser.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.connect.repository import (
    ConnectSessionRepository,
    IssuedOAuthState,
    OAuthStateRepository,
)
from authbridge.connect.service import EXPIRED_LINK, ConnectPage, page_for
from authbridge.mechanisms import ConnectResult, Context, RedirectMechanism, SignIn, get_mechanism
from authbridge.services.bridge import Bridge

COOKIE_PREFIX = "ab_oauth_"
STATE_LOST = (
    "This sign-in was already completed, has expired, or was started in another browser. "
    "Close this window and connect again."
)


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


def _mechanism(page: ConnectPage) -> RedirectMechanism:
    mechanism = get_mechanism(page.setup.definition.type)
    if not isinstance(mechanism, RedirectMechanism):
        raise errors.InvalidInput(f"'{page.setup.connector.label}' does not connect through OAuth")
    return mechanism


def _context(bridge: Bridge, page: ConnectPage) -> Context:
    return Context(
        http=bridge.http,
        now=bridge.now(),
        config=page.setup.config,
        callback_url=page.setup.callback_url,
    )


async def authorize(bridge: Bridge, page: ConnectPage) -> SignIn:
    """Prepare the redirect to the provider (OAuth 1.0a asks it for a request token)."""
    mechanism = _mechanism(page)
    missing = mechanism.missing_configuration(page.setup.config)
    if missing:
        raise errors.NotConfigured(
            f"{page.setup.connector.label} is not set up yet: its OAuth {missing} is missing. "
            "Please tell the application's support."
        )
    if not page.signs_in_at_provider:
        raise errors.InvalidInput(f"'{page.setup.connector.label}' connects without a sign-in page")
    return await mechanism.sign_in(
        page.setup.definition, _context(bridge, page), scopes=page.options.scopes
    )


def remember(
    bridge: Bridge, session: Session, page: ConnectPage, authorization: SignIn
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


def callback_connector(bridge: Bridge, name: str) -> str:
    """The key of the connector a callback path names: exactly, or but for case, ``-`` and
    ``_`` as the redirect URI may have been registered (:meth:`Registry.callback_key`)."""
    return bridge.registry.callback_key(name)


def lookup_of(bridge: Bridge, connector_key: str, query: Mapping[str, str]) -> str:
    """What finds the state in a callback for ``connector_key`` (the mechanism's say: OAuth 2's
    ``state``, OAuth 1.0a's ``oauth_token``); a lost sign-in when there is none."""
    mechanism = get_mechanism(bridge.registry.get(connector_key).auth_type)
    value = mechanism.callback_lookup(query) if isinstance(mechanism, RedirectMechanism) else ""
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
        raise errors.ExpiredLink(EXPIRED_LINK)
    if record.connector_key != connector_key:
        raise errors.Conflict(STATE_LOST)
    return Claimed(
        page=page_for(bridge, session, record),
        redirect_uri=claimed.record.redirect_uri,
        scopes=tuple(claimed.record.scopes or ()),
        secrets=claimed.secrets,
    )


async def complete(bridge: Bridge, claimed: Claimed, query: Mapping[str, str]) -> ConnectResult:
    """Check the provider's redirect and trade it for credentials (no database)."""
    page = claimed.page
    return await _mechanism(page).signed_in(
        page.setup.definition,
        _context(bridge, page),
        query,
        redirect_uri=claimed.redirect_uri,
        scopes=claimed.scopes,
        secrets=claimed.secrets,
    )
