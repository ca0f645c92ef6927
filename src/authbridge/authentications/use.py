"""Using an authentication's credentials: its request rules rendered for a caller
(``GET /v1/authentications/{id}/request-auth``, the proxy), and forced refreshes
(``POST …/refresh``).

Reads are served by :class:`~authbridge.authentications.reads.CredentialReader`, so access
rules, freshness and the audit are the same as for ``GET …/credentials``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.authentications.service import (
    get,
    record_audit,
    repository,
    require_active,
)
from authbridge.connector_configs import service as connectors
from authbridge.connector_configs.service import ConnectorSetup
from authbridge.connectors.models import (
    AuthDefinition,
)
from authbridge.mechanisms import get_mechanism, request_rules
from authbridge.mechanisms.request_rules import RequestAuth
from authbridge.services.bridge import Bridge
from authbridge.services.principals import Principal
from authbridge.storage.models import Authentication

if TYPE_CHECKING:
    from authbridge.refresh.service import Outcome


@dataclass(frozen=True)
class RequestCredentials:
    """What rendering an authentication's request rules needs, read in one transaction."""

    auth: Authentication
    credentials: dict[str, Any] = field(repr=False)
    profile: dict[str, Any] | None = field(repr=False)
    setup: ConnectorSetup = field(repr=False)


def read_for_requests(
    bridge: Bridge, session: Session, principal: Principal, auth_id: str
) -> RequestCredentials:
    """The authentication, its credentials (the whole stored document) and profile, with the
    connector's definition and configuration, for :func:`request_auth`.

    Whether the credentials may be served is for the caller to judge (:mod:`freshness`).
    OAuth 1.0a requests are signed with the consumer secret, the host's own secret: a user
    token (an end user's) may not have it, so it is :class:`errors.Forbidden` there.
    """
    auth = get(bridge, session, principal, auth_id)
    connector = connectors.setup(
        bridge,
        session,
        principal.environment_id,
        auth.connector_key,
        auth.connector_version,
        auth.connector_variant,
    )
    mechanism = get_mechanism(connector.definition.type)
    if mechanism.request_auth_needs_master and not principal.is_master:
        raise errors.Forbidden(
            "OAuth 1.0a signing needs the connector's consumer secret, which only a master token"
            " may read"
        )
    repo = repository(bridge, session)
    return RequestCredentials(
        auth=auth, credentials=repo.credentials(auth), profile=repo.profile(auth), setup=connector
    )


async def request_auth(bridge: Bridge, read: RequestCredentials) -> RequestAuth:
    """The connector's request rules rendered with these credentials (no transaction open:
    a callable ``request`` may call out)."""
    return await request_rules.prepare(
        read.setup.definition,
        credentials=read.credentials,
        config=read.setup.config,
        profile=read.profile,
        http=bridge.http,
        now=bridge.now(),
    )


def can_refresh(definition: AuthDefinition, credentials: Mapping[str, Any]) -> bool:
    """Whether the mechanism can renew these credentials (an API key cannot)."""
    return get_mechanism(definition.type).can_refresh(definition, credentials)


def check_refreshable(
    bridge: Bridge, session: Session, principal: Principal, auth_id: str
) -> Authentication:
    """Refuse a forced refresh of someone else's, an inactive or an unrenewable authentication."""
    auth = get(bridge, session, principal, auth_id)
    require_active(auth)
    connector = connectors.setup(
        bridge,
        session,
        principal.environment_id,
        auth.connector_key,
        auth.connector_version,
        auth.connector_variant,
    )
    if not can_refresh(connector.definition, repository(bridge, session).credentials(auth)):
        raise errors.Conflict(
            f"authentication '{auth.id}' cannot be refreshed: its {auth.auth_type} credentials"
            " have no way to be renewed"
        )
    return auth


def record_forced_refresh(
    bridge: Bridge, session: Session, principal: Principal, auth_id: str, outcome: Outcome
) -> Authentication:
    """Audit a forced refresh and its outcome (then :func:`check_refresh_outcome`)."""
    auth = get(bridge, session, principal, auth_id)
    detail = {"outcome": outcome.kind}
    record_audit(session, principal, "authentication.refresh_forced", auth, detail, bridge.now())
    return auth


def check_refresh_outcome(auth: Authentication, outcome: Outcome) -> None:
    """Raise the error a forced refresh's outcome means for the caller.

    ``invalid`` (the provider refused the credentials) is a conflict: the end user must
    reconnect; ``failed`` (transient) is :class:`errors.ProviderUnavailable` with a retry time.
    """
    if outcome.kind == "invalid":
        raise errors.Conflict(
            f"authentication '{auth.id}' is invalid: {outcome.message}; the end user must "
            "reconnect it"
        )
    if outcome.kind == "failed":
        raise errors.ProviderUnavailable(
            f"the credentials could not be refreshed: {outcome.message}",
            retry_after=outcome.retry_after or 30,
        )
    if outcome.kind not in {"refreshed", "shared"}:
        require_active(auth)  # it stopped being active meanwhile
