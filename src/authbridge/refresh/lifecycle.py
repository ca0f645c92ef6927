"""Hard expiry and scheduled deletion: what the worker does to authentications besides refreshing.

* **Expiry warning.** An active authentication whose ``hard_expires_at`` falls within the warning
  window gets one ``authentication.expiring`` per expiry date: the event and
  ``expiry_warned_for = hard_expires_at`` are written in one transaction by one conditional
  UPDATE, so two workers never both send it, and a new expiry date warns again. The window is
  the connector's (``expiry_warning_days`` in its manifest), else the worker's ``warn_before``;
  an endpoint may set its own (``expiry_warning_days``): the event is written when the widest
  window of the authentication and its environment's endpoints opens, and each endpoint's
  delivery waits until its own window opens.
* **Expiry.** Past ``hard_expires_at`` an active authentication becomes ``expired`` and
  ``authentication.expired`` is sent (again one conditional UPDATE; a refresh in progress is
  waited for).
* **Scheduled deletion.** Past ``delete_at`` a deleter takes the authentication's lease, revokes
  its token where the definition declares a ``revocation`` (an RFC 7009 ``revoke_url``, or the
  provider's own request spec or code; best effort: a failure is logged with its reason and the
  deletion goes on), then sends ``authentication.deleted`` and deletes the row in one
  transaction, only while it still holds the lease. No transaction is open during the
  revocation request.

Every function reads the time from ``bridge.now()`` once and works in short transactions run in
worker threads (the event loop may be the API server's).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.authentications.repository import AuthenticationRepository
from authbridge.connector_configs.service import ConnectorSetup, setup
from authbridge.mechanisms import Context, TokenRevocation, get_mechanism
from authbridge.redaction import redact
from authbridge.refresh.repository import RefreshRepository, WarningWindows
from authbridge.services import metrics
from authbridge.services.bridge import Bridge
from authbridge.storage.models import Authentication, WebhookEndpoint
from authbridge.tenancy.repository import AuditRepository
from authbridge.webhooks import events

log = logging.getLogger("authbridge.lifecycle")

T = TypeVar("T")

ACTOR = "worker"
TARGET = "authentication"
DELETION_LEASE = timedelta(seconds=60)
REVOCATION_TIMEOUT = 10.0


async def find_ids(
    bridge: Bridge, query: Callable[[RefreshRepository], Sequence[str]]
) -> Sequence[str]:
    """Run an id query in a short transaction of its own.

    On PostgreSQL it is a read-write transaction, for ``FOR UPDATE SKIP LOCKED``; on SQLite a
    read-only one, so an idle worker never takes SQLite's write lock.
    """
    return await bridge.run(
        lambda session: query(RefreshRepository(session, bridge.keyring)),
        readonly=bridge.database.is_sqlite,
    )


async def count_due(bridge: Bridge, now: datetime) -> int:
    """How many active auths are due for refresh at ``now`` (read-only)."""
    return await bridge.run(
        lambda session: RefreshRepository(session, bridge.keyring).count_due_for_refresh(now),
        readonly=True,
    )


def _audit(
    session: Session, auth: Authentication, action: str, now: datetime, **detail: str
) -> None:
    AuditRepository(session).record(
        environment_id=auth.environment_id,
        actor=ACTOR,
        action=action,
        target_type=TARGET,
        target_id=auth.id,
        detail={"connector": auth.connector_key, **detail},
        now=now,
    )


# -- hard expiry ------------------------------------------------------------------------------


def connector_warning_windows(bridge: Bridge) -> dict[tuple[str, str], timedelta]:
    """The warning windows the connectors' manifests set (``expiry_warning_days``), by key and
    version."""
    return {
        (connector.key, connector.version): timedelta(days=days)
        for latest in bridge.registry
        for connector in bridge.registry.versions(latest.key)
        if (days := connector.manifest.expiry_warning_days) is not None
    }


async def warn_expiring(bridge: Bridge, *, warn_before: timedelta, limit: int = 500) -> int:
    """Send ``authentication.expiring`` for auths hard-expiring within their warning window
    (their connector's, else ``warn_before``, or wider when an endpoint asks for it), once per
    auth and expiry date; return how many were sent."""
    now = bridge.now()
    by_connector = connector_warning_windows(bridge)

    def find(session: Session) -> tuple[WarningWindows, Sequence[str]]:
        widest = events.warning_days_by_environment(bridge, session)
        windows = WarningWindows(
            default=warn_before,
            connectors=by_connector,
            environments={env: timedelta(days=days) for env, days in widest.items()},
        )
        repo = RefreshRepository(session, bridge.keyring)
        return windows, repo.due_ids_for_expiry_warning(now, windows, limit=limit)

    windows, ids = await bridge.run(find, readonly=bridge.database.is_sqlite)
    if not ids:
        return 0

    def work(session: Session) -> int:
        repo = RefreshRepository(session, bridge.keyring)
        sent = 0
        for auth_id in sorted(ids):  # one lock order for every worker: no deadlock
            auth = repo.mark_expiry_warned(auth_id, now=now, windows=windows)
            if auth is None or auth.hard_expires_at is None:
                continue
            expires, own = auth.hard_expires_at, windows.of(auth)

            def deliver_at(
                endpoint: WebhookEndpoint, expires: datetime = expires, own: timedelta = own
            ) -> datetime:
                days = endpoint.expiry_warning_days
                return expires - (own if days is None else timedelta(days=days))

            events.emit(
                bridge,
                session,
                events.EXPIRING,
                auth,
                now=now,
                deliver_at=deliver_at,
                hard_expires_at=expires.isoformat(),
            )
            sent += 1
        return sent

    sent = await bridge.run(work)
    metrics.LIFECYCLE.labels("warned").inc(sent)
    return sent


def expired_message(hard_expires_at: datetime) -> str:
    return (
        f"the authorization expired at {hard_expires_at.isoformat()} and cannot be extended; "
        "connect the account again"
    )


async def expire_due(bridge: Bridge, *, limit: int = 500) -> int:
    """Set status ``expired`` on active auths past ``hard_expires_at`` and send
    ``authentication.expired``; return how many expired."""
    now = bridge.now()
    ids = await find_ids(bridge, lambda repo: repo.due_ids_for_expiry(now, limit=limit))
    if not ids:
        return 0

    def work(session: Session) -> list[tuple[str, str, str]]:
        auths = AuthenticationRepository(session, bridge.keyring)
        repo = RefreshRepository(session, bridge.keyring)
        expired = []
        for auth_id in sorted(ids):
            current = auths.get_any(auth_id)
            if current is None or current.hard_expires_at is None:
                continue
            message = expired_message(current.hard_expires_at)
            auth = repo.expire(auth_id, message=message, now=now)
            if auth is None or auth.hard_expires_at is None:
                continue
            events.emit(
                bridge,
                session,
                events.EXPIRED,
                auth,
                now=now,
                hard_expires_at=auth.hard_expires_at.isoformat(),
                message=message,
            )
            _audit(session, auth, "authentication.expired", now)
            expired.append((auth.id, auth.connector_key, message))
        return expired

    expired = await bridge.run(work)
    # Once committed: a log line for a change that was rolled back would be false.
    for auth_id, connector_key, message in expired:
        log.warning("authentication %s (%s) is now expired: %s", auth_id, connector_key, message)
    metrics.LIFECYCLE.labels("expired").inc(len(expired))
    return len(expired)


# -- scheduled deletion -----------------------------------------------------------------------


@dataclass(frozen=True)
class DeletionReport:
    deleted: int = 0
    revoked: int = 0
    revocation_failed: int = 0


def _connector_setup(bridge: Bridge, session: Session, auth: Authentication) -> ConnectorSetup:
    try:
        return setup(
            bridge,
            session,
            auth.environment_id,
            auth.connector_key,
            auth.connector_version,
            auth.connector_variant,
        )
    except errors.ConnectorNotFound:
        # The stored version is gone from the registry: the newest one knows the endpoint too.
        return setup(
            bridge, session, auth.environment_id, auth.connector_key, None, auth.connector_variant
        )


def revocation_for(
    bridge: Bridge, session: Session, auth: Authentication, *, now: datetime
) -> TokenRevocation | None:
    """The revocation request for ``auth``, or ``None`` when there is none to send (no
    ``revocation``, no token, no client id, an unknown connector)."""
    try:
        connector_setup = _connector_setup(bridge, session, auth)
    except errors.AuthBridgeError as exc:
        log.warning("no revocation auth_id=%s reason=%s", auth.id, exc.message)
        return None
    definition = connector_setup.definition
    context = Context(
        http=bridge.http,
        now=now,
        config=connector_setup.config,
        callback_url=connector_setup.callback_url,
        tokens=AuthenticationRepository(session, bridge.keyring).credentials(auth),
    )
    try:
        return get_mechanism(definition.type).revocation(definition, context)
    except (ValueError, errors.AuthBridgeError) as exc:  # an AuthBridgeError's str is its message
        log.warning(
            "no revocation auth_id=%s reason=%s", auth.id, redact(str(exc), context.secrets())
        )
        return None


async def revoke(bridge: Bridge, auth_id: str, revocation: TokenRevocation) -> bool:
    """Send the revocation request; log and swallow any failure (best effort)."""
    try:
        response = await revocation.send(bridge.http, wait_seconds=REVOCATION_TIMEOUT)
    except Exception as exc:
        reason = redact(f"{type(exc).__name__}: {exc}", revocation.secrets)
        status = getattr(exc, "status_code", None)  # a request spec's refusal, with its status
        if status is not None:
            reason = f"status {status}, {reason}"
        log.warning("revocation failed auth_id=%s reason=%s", auth_id, reason)
        metrics.REVOCATIONS.labels("failed").inc()
        return False
    if response is not None and not response.is_success:
        log.warning("revocation refused auth_id=%s status=%s", auth_id, response.status_code)
        metrics.REVOCATIONS.labels("failed").inc()
        return False
    metrics.REVOCATIONS.labels("revoked").inc()
    return True


class _LeaseLost(Exception):
    """The deletion lease expired and someone else took it: roll the event back."""


async def delete_one(bridge: Bridge, owner: str, auth_id: str) -> tuple[bool, bool | None]:
    """Revoke and delete one authentication past its ``delete_at``.

    Returns ``(deleted, revoked)``; ``revoked`` is ``None`` when no revocation was attempted.
    """
    now = bridge.now()

    def claim(session: Session) -> tuple[Authentication, TokenRevocation | None] | None:
        repo = RefreshRepository(session, bridge.keyring)
        auth = repo.claim_for_deletion(auth_id, owner, now=now, duration=DELETION_LEASE)
        if auth is None:
            return None
        try:
            revocation = revocation_for(bridge, session, auth, now=now)
        except Exception as exc:  # unreadable credentials, a broken definition: delete anyway
            log.warning("no revocation auth_id=%s reason=%s", auth_id, type(exc).__name__)
            revocation = None
        return auth, revocation

    claimed = await bridge.run(claim)
    if claimed is None:
        return False, None
    _, revocation = claimed
    revoked = None if revocation is None else await revoke(bridge, auth_id, revocation)

    def finish(session: Session) -> bool:
        auth = AuthenticationRepository(session, bridge.keyring).get_any(auth_id)
        if auth is None or auth.lease_owner != owner:
            return False
        finished_at = bridge.now()
        delete_at = auth.delete_at.isoformat() if auth.delete_at is not None else None
        events.emit(
            bridge,
            session,
            events.DELETED,
            auth,
            now=finished_at,
            reason="scheduled",
            delete_at=delete_at,
        )
        _audit(session, auth, "authentication.deleted", finished_at, reason="scheduled")
        if not RefreshRepository(session, bridge.keyring).delete_claimed(auth_id, owner):
            raise _LeaseLost
        return True

    try:
        deleted = await bridge.run(finish)
    except _LeaseLost:
        deleted = False
    if deleted:
        metrics.LIFECYCLE.labels("deleted").inc()
        log.info("deleted auth_id=%s reason=scheduled revoked=%s", auth_id, revoked)
    return deleted, revoked


async def delete_due(
    bridge: Bridge, owner: str, *, limit: int = 100, concurrency: int = 8
) -> DeletionReport:
    """Revoke and delete authentications past their ``delete_at``, ``concurrency`` at a time."""
    now = bridge.now()
    ids = await find_ids(bridge, lambda repo: repo.due_ids_for_deletion(now, limit=limit))
    if not ids:
        return DeletionReport()
    slots = asyncio.Semaphore(concurrency)

    async def one(auth_id: str) -> tuple[bool, bool | None]:
        async with slots:
            return await delete_one(bridge, owner, auth_id)

    results = await asyncio.gather(*(one(auth_id) for auth_id in ids))
    return DeletionReport(
        deleted=sum(1 for deleted, _ in results if deleted),
        revoked=sum(1 for _, revoked in results if revoked is True),
        revocation_failed=sum(1 for _, revoked in results if revoked is False),
    )
