"""Authentications as the host and end users see them: list, read, rename, delete, store.

Every function takes the caller's :class:`Principal`; a user token only ever reaches its own
end user's authentications (others read as "not found"). Creating, reading credentials (or the
request auth rendered from them), forcing a refresh, changing and deleting are written to the
audit log with the actor, never with a secret value.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.authentications import freshness
from authbridge.authentications.repository import UNSET, AuthenticationRepository
from authbridge.connector_configs.service import ConnectorSetup
from authbridge.connectors.models import AuthDefinition
from authbridge.mechanisms import ConnectResult, get_mechanism
from authbridge.services.bridge import Bridge
from authbridge.services.principals import Principal
from authbridge.storage.models import Authentication, AuthStatus
from authbridge.storage.repositories import Page
from authbridge.tenancy.repository import AuditRepository, EndUserRepository
from authbridge.webhooks import events

TARGET = "authentication"
MAX_NAME_LENGTH = 255


def repository(bridge: Bridge, session: Session) -> AuthenticationRepository:
    return AuthenticationRepository(session, bridge.keyring)


def get(bridge: Bridge, session: Session, principal: Principal, auth_id: str) -> Authentication:
    """Return the authentication, or raise :class:`errors.NotFound` (also for others' auths)."""
    auth = repository(bridge, session).get(principal.environment_id, auth_id, now=bridge.now())
    if auth is None:
        raise errors.NotFound(f"authentication '{auth_id}' not found")
    principal.check_owner(auth.end_user_id, what=f"authentication '{auth_id}'")
    return auth


def list_page(
    bridge: Bridge,
    session: Session,
    principal: Principal,
    *,
    external_user_id: str | None = None,
    connector: str | None = None,
    status: AuthStatus | None = None,
    limit: int,
    cursor: str | None = None,
) -> Page[Authentication]:
    """One page of authentications, oldest first; a user token sees only its own."""
    end_user_id = principal.end_user_id
    if external_user_id is not None:
        end_user = EndUserRepository(session).get_by_external_id(
            principal.environment_id, external_user_id
        )
        if end_user is None or (end_user_id is not None and end_user.id != end_user_id):
            return Page(items=[], next_cursor=None)
        end_user_id = end_user.id
    return repository(bridge, session).list(
        principal.environment_id,
        now=bridge.now(),
        end_user_id=end_user_id,
        connector_key=connector,
        status=status,
        limit=limit,
        cursor=cursor,
    )


def check_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise errors.InvalidInput("the name must not be empty", field="name")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise errors.InvalidInput(
            f"the name is longer than {MAX_NAME_LENGTH} characters", field="name"
        )
    if any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in cleaned):
        raise errors.InvalidInput("the name contains control characters", field="name")
    return cleaned


def update(
    bridge: Bridge,
    session: Session,
    principal: Principal,
    auth_id: str,
    *,
    name: str | None = None,
    delete_at: datetime | None = None,
    clear_delete_at: bool = False,
) -> Authentication:
    """Rename the authentication and/or (re)schedule its deletion."""
    auth = get(bridge, session, principal, auth_id)
    repo = repository(bridge, session)
    changed = []
    now = bridge.now()
    if name is not None:
        auth = repo.rename(auth, check_name(name), now=now)
        changed.append("name")
    if delete_at is not None or clear_delete_at:
        if delete_at is not None and delete_at <= now:
            raise errors.InvalidInput("delete_at must be in the future", field="delete_at")
        auth = repo.schedule_deletion(auth, delete_at, now=now)
        changed.append("delete_at")
    if changed:
        record_audit(session, principal, "authentication.updated", auth, {"fields": changed}, now)
    return auth


def delete(bridge: Bridge, session: Session, principal: Principal, auth_id: str) -> None:
    auth = get(bridge, session, principal, auth_id)
    detail = {"connector": auth.connector_key}
    events.emit(bridge, session, events.DELETED, auth, reason="deleted")
    repository(bridge, session).delete(auth)
    record_audit(session, principal, "authentication.deleted", auth, detail, bridge.now())


def require_active(auth: Authentication) -> None:
    """Refuse an authentication that is not active (409: the end user must reconnect it)."""
    if auth.status is not AuthStatus.ACTIVE:
        raise freshness.unusable(auth)


def refresh_due_at(
    definition: AuthDefinition, expires_at: datetime | None, now: datetime
) -> datetime | None:
    """When to refresh credentials expiring at ``expires_at`` (``None``: never): the
    mechanism's say (:meth:`~authbridge.mechanisms.Mechanism.refresh_due_at`)."""
    return get_mechanism(definition.type).refresh_due_at(definition, expires_at, now)


def store(
    bridge: Bridge,
    session: Session,
    principal: Principal,
    *,
    end_user_id: str | None,
    setup: ConnectorSetup,
    result: ConnectResult,
    name: str | None = None,
    existing: Authentication | None = None,
    delete_at: datetime | None = None,
    hard_expires_at: datetime | None = None,
    via: str,
) -> Authentication:
    """Store a connected account: a new authentication, or ``existing`` updated in place.

    The name is ``name`` when given, else the account name the mechanism found, else the
    connector's label. ``via`` (``connect_page``, ``import``, ``jwt``) goes into the audit log.
    ``delete_at`` schedules the deletion, of ``existing`` too.
    """
    now = bridge.now()
    repo = repository(bridge, session)
    connector = setup.connector
    scopes = list(result.scopes or ())
    due = refresh_due_at(setup.definition, result.expires_at, now)
    if hard_expires_at is None:
        mechanism = get_mechanism(setup.definition.type)
        hard_expires_at = mechanism.hard_expires_at(setup.definition, result.expires_at)
    chosen = check_name(name) if name else None
    detail: dict[str, Any] = {"connector": connector.key, "via": via}
    if existing is not None:
        auth = repo.update_credentials(
            existing,
            result.credentials,
            expected_version=existing.version,
            profile=result.profile,
            name=chosen or UNSET,
            email=result.email,
            scopes=scopes,
            connector_version=connector.version,
            expires_at=result.expires_at,
            refresh_due_at=due,
            hard_expires_at=hard_expires_at,
            now=now,
        )
        if delete_at is not None:
            auth = repo.schedule_deletion(auth, delete_at, now=now)
        record_audit(
            session,
            principal,
            "authentication.updated",
            auth,
            detail | {"fields": ["credentials"]},
            now,
        )
        events.emit(bridge, session, events.UPDATED, auth, now=now)
        return auth
    auth = repo.create(
        environment_id=principal.environment_id,
        end_user_id=end_user_id,
        connector_key=connector.key,
        connector_version=connector.version,
        connector_variant=setup.variant,
        auth_type=connector.auth_type,
        name=chosen or _default_name(result, connector.label),
        credentials=result.credentials,
        profile=result.profile,
        email=result.email,
        scopes=scopes,
        expires_at=result.expires_at,
        refresh_due_at=due,
        hard_expires_at=hard_expires_at,
        delete_at=delete_at,
        now=now,
    )
    record_audit(session, principal, "authentication.created", auth, detail, now)
    events.emit(bridge, session, events.CREATED, auth, now=now)
    return auth


def _default_name(result: ConnectResult, label: str) -> str:
    if result.account_name:
        return check_name(result.account_name[:MAX_NAME_LENGTH])
    return label


def deletion_time(
    now: datetime, delete_at: datetime | None, delete_after: timedelta | None
) -> datetime | None:
    """The ``delete_at`` of a new authentication from an absolute time or a delay."""
    if delete_at is not None and delete_after is not None:
        raise errors.InvalidInput("give delete_at or delete_after, not both", field="delete_at")
    if delete_after is not None:
        if delete_after <= timedelta(0):
            raise errors.InvalidInput("delete_after must be positive", field="delete_after")
        return now + delete_after
    if delete_at is not None and delete_at <= now:
        raise errors.InvalidInput("delete_at must be in the future", field="delete_at")
    return delete_at


def record_audit(
    session: Session,
    principal: Principal,
    action: str,
    auth: Authentication,
    detail: Mapping[str, Any] | None,
    now: datetime,
) -> None:
    AuditRepository(session).record(
        environment_id=principal.environment_id,
        actor=principal.actor,
        action=action,
        target_type=TARGET,
        target_id=auth.id,
        detail=detail,
        now=now,
    )
