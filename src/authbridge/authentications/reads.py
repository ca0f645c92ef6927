"""Reading fresh credentials: ``GET /v1/authentications/{id}/credentials`` and
``…/request-auth``, the calls every host makes on every job.

A read that is not due costs: the caller's token from the process's principal cache
(:class:`~authbridge.services.principals.PrincipalCache`), one indexed Core SELECT
(:func:`~authbridge.authentications.repository.read_credential_row`), one AES-GCM
decryption and the response. The SELECT runs on the event loop's thread, never in a worker
thread (a thread hop cost more than the read): on SQLite straight (a WAL read never waits for
a writer), on PostgreSQL on the loop's own asynchronous connections. The audit row (who read
what) is queued for the :class:`~authbridge.services.audit_trail.AuditTrail`, written in
batches off the request's path.

What to do when the credentials are due or expired is :mod:`freshness`'s to say.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from authbridge import errors
from authbridge.authentications import freshness
from authbridge.authentications import use as credential_use
from authbridge.authentications.rows import CredentialRow, read_credential_row
from authbridge.authentications.service import TARGET
from authbridge.authentications.use import RequestCredentials
from authbridge.mechanisms.base import PRIVATE_CREDENTIALS
from authbridge.refresh.service import Refresher
from authbridge.services import metrics
from authbridge.services.audit_trail import AuditTrail
from authbridge.services.bridge import Bridge
from authbridge.services.principals import Principal
from authbridge.tenancy.repository import AuditEntry

CREDENTIALS_READ = "authentication.credentials_read"
REQUEST_AUTH_READ = "authentication.request_auth_read"


def public_credentials(credentials: Mapping[str, Any]) -> dict[str, Any]:
    """The credentials a caller gets: never the refresh token (authbridge renews it)."""
    return {key: value for key, value in credentials.items() if key not in PRIVATE_CREDENTIALS}


class CredentialReader:
    """Serves fresh credentials; one per process (it shares the refresher and audit trail)."""

    def __init__(self, bridge: Bridge, refresher: Refresher, trail: AuditTrail) -> None:
        self.bridge = bridge
        self.refresher = refresher
        self.trail = trail

    async def credentials(
        self, principal: Principal, auth_id: str
    ) -> tuple[CredentialRow, dict[str, Any]]:
        """The authentication's row and its public credentials, refreshed first when due;
        audited as ``authentication.credentials_read``."""
        row = await freshness.read_fresh(
            self.refresher, lambda: self._row(principal, auth_id), lambda row: row
        )
        credentials = public_credentials(row.credentials(self.bridge.keyring))
        metrics.credential_reads(row.auth_type).inc()
        await self._audit(principal, CREDENTIALS_READ, row.id)
        return row, credentials

    async def for_requests(self, principal: Principal, auth_id: str) -> RequestCredentials:
        """What rendering the request rules needs (:func:`credential_use.read_for_requests`),
        refreshed first when due; audited as ``authentication.request_auth_read``."""

        async def read_async() -> RequestCredentials:
            return await self.bridge.run(
                lambda session: credential_use.read_for_requests(
                    self.bridge, session, principal, auth_id
                ),
                readonly=True,
            )

        found = await freshness.read_fresh(self.refresher, read_async, lambda found: found.auth)
        found = RequestCredentials(
            auth=found.auth,
            credentials=public_credentials(found.credentials),
            profile=found.profile,
            setup=found.setup,
        )
        metrics.credential_reads(found.auth.auth_type).inc()
        await self._audit(principal, REQUEST_AUTH_READ, found.auth.id)
        return found

    async def _row(self, principal: Principal, auth_id: str) -> CredentialRow:
        row = await read_credential_row(
            self.bridge.database, principal.environment_id, auth_id, now=self.bridge.now()
        )
        if row is None:
            raise errors.NotFound(f"authentication '{auth_id}' not found")
        principal.check_owner(row.end_user_id, what=f"authentication '{auth_id}'")
        return row

    async def _audit(self, principal: Principal, action: str, auth_id: str) -> None:
        entry = AuditEntry(
            environment_id=principal.environment_id,
            actor=principal.actor,
            action=action,
            target_type=TARGET,
            target_id=auth_id,
            at=self.bridge.now(),
        )
        await self.trail.add(entry)
