"""The refresh slice's statements on the ``authentications`` table: the refresh leases and the
worker's scans.

A refresh of an authentication runs under a lease (``lease_owner``/``lease_until``):
:meth:`RefreshRepository.acquire_lease` takes it with one conditional UPDATE,
:meth:`~RefreshRepository.store_refresh` stores the refreshed credentials and releases it, only
while its owner still holds it. The worker finds work (refreshes due, expiry warnings, hard
expiry, scheduled deletion) with short id-only queries and changes each row with one conditional
statement. The create, read and change of authentications are
:class:`~authbridge.authentications.repository.AuthenticationRepository`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Table,
    Update,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from authbridge.authentications.repository import (
    _credentials_aad,
    decrypt_credentials,
    served_at,
)
from authbridge.errors import StaleAuthentication
from authbridge.storage.db import first_in
from authbridge.storage.models import Authentication, AuthStatus, UtcDateTime
from authbridge.storage.repositories._dml import affected_rows
from authbridge.vault import Keyring


@dataclass(frozen=True)
class WarningWindows:
    """How long before its hard expiry an authentication is warned about: its connector
    version's window (``connectors``, by key and version) or ``default``, widened to the widest
    window an endpoint of its environment asks for (``environments``)."""

    default: timedelta
    connectors: Mapping[tuple[str, str], timedelta] = field(default_factory=dict)
    environments: Mapping[str, timedelta] = field(default_factory=dict)

    def of(self, auth: Authentication) -> timedelta:
        """The window of ``auth``'s connector version (``default`` when it sets none)."""
        return self.connectors.get((auth.connector_key, auth.connector_version), self.default)

    def within(self, now: datetime) -> ColumnElement[bool]:
        """The SQL condition of a ``hard_expires_at`` within the window that applies."""

        def at(window: timedelta) -> ColumnElement[datetime]:
            return literal(now + window, UtcDateTime())

        expiry = Authentication.hard_expires_at
        own = case(
            *(
                (
                    and_(
                        Authentication.connector_key == key,
                        Authentication.connector_version == version,
                    ),
                    at(window),
                )
                for (key, version), window in self.connectors.items()
            ),
            else_=at(self.default),
        )
        wider: dict[timedelta, list[str]] = {}
        for environment_id, window in self.environments.items():
            wider.setdefault(window, []).append(environment_id)
        widest = max([self.default, *self.connectors.values(), *wider])
        return and_(
            expiry <= at(widest),
            or_(
                expiry <= (own if self.connectors else at(self.default)),
                *(
                    and_(Authentication.environment_id.in_(ids), expiry <= at(window))
                    for window, ids in wider.items()
                ),
            ),
        )


@dataclass(frozen=True, slots=True)
class LeasedAuthentication:
    """An authentication as :meth:`RefreshRepository.acquire_lease` took its lease:
    what a refresh needs of it, without an ORM object."""

    id: str
    environment_id: str
    connector_key: str
    connector_version: str
    connector_variant: str | None
    refresh_due_at: datetime | None
    refresh_failures: int
    lease_owner: str | None
    #: The refresher whose lease ran out and was taken over (its refresh was interrupted).
    lease_taken_from: str | None
    credentials_ct: bytes = field(repr=False)

    def credentials(self, keyring: Keyring) -> dict[str, Any]:
        """Decrypt the credentials (the whole stored document, refresh token included)."""
        return decrypt_credentials(keyring, self.id, self.credentials_ct)


_LEASED_COLUMNS = tuple(column.name for column in fields(LeasedAuthentication))


def _lease_statements() -> tuple[Update, Update, Update]:
    """The refresher's statements, built once (no statement building or cache key per call):
    take the lease (any time, or only when due by ``:due_by``), returning what a refresh needs
    (:class:`LeasedAuthentication`), and store a refresh, returning the id alone. Core
    statements, no ORM objects: loading the rows as ORM objects was a third of a refresh
    storm's CPU."""
    table = Authentication.__table__
    assert isinstance(table, Table)
    c = table.c
    take = (
        update(table)
        .where(
            c.id == bindparam("b_id"),
            c.status == AuthStatus.ACTIVE,
            or_(c.delete_at.is_(None), c.delete_at > bindparam("b_now", type_=c.delete_at.type)),
            or_(c.lease_until.is_(None), c.lease_until <= bindparam("b_now")),
        )
        # The holder of a lease that ran out (a released lease has none) is kept in
        # ``lease_taken_from``: its refresh was interrupted.
        .values(
            lease_owner=bindparam("b_owner"),
            lease_until=bindparam("b_until"),
            lease_taken_from=c.lease_owner,
        )
        .returning(*(c[name] for name in _LEASED_COLUMNS))
    )
    take_due = take.where(c.refresh_due_at <= bindparam("b_due_by", type_=c.refresh_due_at.type))
    store = (
        update(table)
        .where(c.id == bindparam("b_id"), c.lease_owner == bindparam("b_owner"))
        .values(
            credentials_ct=bindparam("b_credentials_ct"),
            expires_at=bindparam("b_expires_at"),
            refresh_due_at=bindparam("b_refresh_due_at"),
            status=AuthStatus.ACTIVE,
            last_error=None,
            refresh_failures=0,
            lease_owner=None,
            lease_until=None,
            lease_taken_from=None,
            version=c.version + 1,
            updated_at=bindparam("b_updated_at"),
        )
        .returning(c.id)
    )

    return take, take_due, store


_TAKE_LEASE, _TAKE_LEASE_IF_DUE, _STORE_REFRESH = _lease_statements()


def _lease_free(now: datetime) -> ColumnElement[bool]:
    """The SQL condition of an authentication no refresher or deleter holds at ``now``."""
    return or_(Authentication.lease_until.is_(None), Authentication.lease_until <= now)


class RefreshRepository:
    """The refresh leases and the worker's scans of the ``authentications`` table."""

    def __init__(self, session: Session, keyring: Keyring) -> None:
        self.session = session
        self.keyring = keyring

    # -- worker queries ----------------------------------------------------------------------
    # The worker finds work with short id-only queries (``FOR UPDATE SKIP LOCKED`` on
    # PostgreSQL, so workers claiming at the same moment split the rows; SQLite ignores it),
    # then changes each row with one conditional statement, so two workers that found the same
    # row never both act on it. Rows under a live lease (a refresh or a deletion in progress)
    # are left alone.

    def due_ids_for_refresh(self, now: datetime, *, limit: int) -> Sequence[str]:
        """Ids of active, served authentications due for refresh and not leased, soonest first."""
        statement = (
            select(Authentication.id)
            .where(
                Authentication.status == AuthStatus.ACTIVE,
                Authentication.refresh_due_at <= now,
                served_at(now),
                _lease_free(now),
            )
            .order_by(Authentication.refresh_due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(self.session.scalars(statement))

    def count_due_for_refresh(self, now: datetime) -> int:
        """How many active, served authentications are due for refresh at ``now``."""
        statement = select(func.count()).where(
            Authentication.status == AuthStatus.ACTIVE,
            Authentication.refresh_due_at <= now,
            served_at(now),
        )
        return int(self.session.scalar(statement) or 0)

    def _expiry_warning_due(
        self, now: datetime, windows: WarningWindows
    ) -> Sequence[ColumnElement[bool]]:
        return [
            Authentication.status == AuthStatus.ACTIVE,
            Authentication.hard_expires_at > now,
            windows.within(now),
            or_(
                Authentication.expiry_warned_for.is_(None),
                Authentication.expiry_warned_for != Authentication.hard_expires_at,
            ),
            served_at(now),
        ]

    def due_ids_for_expiry_warning(
        self, now: datetime, windows: WarningWindows, *, limit: int
    ) -> Sequence[str]:
        """Ids of active authentications that hard-expire after ``now`` within their warning
        window and were not warned about that date yet."""
        statement = (
            select(Authentication.id)
            .where(*self._expiry_warning_due(now, windows))
            .order_by(Authentication.hard_expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(self.session.scalars(statement))

    def mark_expiry_warned(
        self, auth_id: str, *, now: datetime, windows: WarningWindows
    ) -> Authentication | None:
        """Record that the warning for the current ``hard_expires_at`` is sent, if it still has
        to be; return the row, or ``None`` when someone else sent it (or it is not due)."""
        statement = (
            update(Authentication)
            .where(Authentication.id == auth_id, *self._expiry_warning_due(now, windows))
            .values(expiry_warned_for=Authentication.hard_expires_at)
            .returning(Authentication)
        )
        return self.session.scalars(
            statement, execution_options={"populate_existing": True}
        ).first()

    def _expiry_due(self, now: datetime) -> Sequence[ColumnElement[bool]]:
        return [
            Authentication.status == AuthStatus.ACTIVE,
            Authentication.hard_expires_at <= now,
            served_at(now),
            _lease_free(now),
        ]

    def due_ids_for_expiry(self, now: datetime, *, limit: int) -> Sequence[str]:
        """Ids of active authentications past their ``hard_expires_at`` and not leased."""
        statement = (
            select(Authentication.id)
            .where(*self._expiry_due(now))
            .order_by(Authentication.hard_expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(self.session.scalars(statement))

    def expire(self, auth_id: str, *, message: str, now: datetime) -> Authentication | None:
        """Set status ``expired`` if the authentication is still active, past its hard expiry
        and not leased; return the row, or ``None`` when there was nothing to do."""
        statement = (
            update(Authentication)
            .where(Authentication.id == auth_id, *self._expiry_due(now))
            .values(
                status=AuthStatus.EXPIRED,
                last_error=message,
                version=Authentication.version + 1,
                updated_at=now,
            )
            .returning(Authentication)
        )
        return self.session.scalars(
            statement, execution_options={"populate_existing": True}
        ).first()

    def due_ids_for_deletion(self, now: datetime, *, limit: int) -> Sequence[str]:
        """Ids of authentications past their ``delete_at`` and not leased, earliest first."""
        statement = (
            select(Authentication.id)
            .where(Authentication.delete_at <= now, _lease_free(now))
            .order_by(Authentication.delete_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(self.session.scalars(statement))

    def claim_for_deletion(
        self, auth_id: str, owner: str, *, now: datetime, duration: timedelta
    ) -> Authentication | None:
        """Take the lease of an authentication past its ``delete_at`` (any status), so that one
        deleter revokes and deletes it; ``None`` when it is gone, not due or leased."""
        statement = (
            update(Authentication)
            .where(
                Authentication.id == auth_id,
                Authentication.delete_at <= now,
                _lease_free(now),
            )
            .values(lease_owner=owner, lease_until=now + duration)
            .returning(Authentication)
        )
        return self.session.scalars(
            statement, execution_options={"populate_existing": True}
        ).first()

    def delete_claimed(self, auth_id: str, owner: str) -> bool:
        """Delete the authentication if ``owner`` still holds its lease; return if it did."""
        statement = delete(Authentication).where(
            Authentication.id == auth_id, Authentication.lease_owner == owner
        )
        deleted = affected_rows(self.session, statement) == 1
        for instance in list(self.session.identity_map.values()):
            if isinstance(instance, Authentication) and instance.id == auth_id:
                self.session.expunge(instance)
        return deleted

    # -- refresh leases ---------------------------------------------------------------------
    # One refresh of an authentication runs at a time across every process: a refresher first
    # takes the lease with one conditional UPDATE (committed at once), then calls the provider
    # outside any transaction, then stores the result only while it still holds the lease.
    # Taking or releasing a lease does not bump ``version``: it changes no data.

    def acquire_lease(
        self,
        auth_id: str,
        owner: str,
        *,
        now: datetime,
        duration: timedelta,
        due_by: datetime | None = None,
    ) -> LeasedAuthentication | None:
        """Take the refresh lease of an active authentication unless someone holds it; what a
        refresh needs of it, as the lease was taken.

        With ``due_by``, only while its refresh is due by then: a refresher that read the row
        as due just before another one stored its refresh (and freed the lease) must not take
        the lease and refresh a second time, which the due check of its earlier read cannot
        prevent on PostgreSQL (each statement sees the newest commit).
        """
        params = {"b_id": auth_id, "b_now": now, "b_owner": owner, "b_until": now + duration}
        if due_by is None:
            statement = _TAKE_LEASE
        else:
            statement, params["b_due_by"] = _TAKE_LEASE_IF_DUE, due_by
        row = first_in(self.session, statement, params)
        return None if row is None else LeasedAuthentication(*row)

    def store_refresh(
        self,
        auth: LeasedAuthentication,
        owner: str,
        credentials: Mapping[str, Any],
        *,
        expires_at: datetime | None,
        refresh_due_at: datetime | None,
        now: datetime,
    ) -> None:
        """Store refreshed credentials and release the lease, if ``owner`` still holds it.

        Raises :class:`StaleAuthentication` when the lease was lost (it expired and another
        refresher took it), so the caller knows its result was not stored. One Core
        ``UPDATE … RETURNING id``: loading the stored row as an ORM object was a sixth of a
        refresh storm's CPU, and the refresher seldom needs it
        (:meth:`AuthenticationRepository.get_any` reads it).
        """
        params = {
            "b_id": auth.id,
            "b_owner": owner,
            "b_credentials_ct": self.keyring.encrypt_json(
                dict(credentials), aad=_credentials_aad(auth.id)
            ),
            "b_expires_at": expires_at,
            "b_refresh_due_at": refresh_due_at,
            "b_updated_at": now,
        }
        stored = first_in(self.session, _STORE_REFRESH, params)
        if stored is None:
            raise StaleAuthentication(
                f"the refresh lease of authentication '{auth.id}' was lost; result not stored"
            )

    def extend_lease(self, auth_id: str, owner: str, *, until: datetime) -> bool:
        """Push the end of ``owner``'s lease to ``until``; ``False`` when it no longer holds it."""
        statement = (
            update(Authentication)
            .where(Authentication.id == auth_id, Authentication.lease_owner == owner)
            .values(lease_until=until)
        )
        return affected_rows(self.session, statement) == 1

    def fail_refresh(
        self,
        auth: Authentication | LeasedAuthentication,
        owner: str,
        *,
        message: str,
        retry_at: datetime | None,
        now: datetime,
    ) -> Authentication | None:
        """Record a failed refresh and release the lease (``None`` if the lease was lost).

        With ``retry_at`` the failure was transient: the status stays, the refresh is due again
        then. Without it the credentials are no longer accepted: the status becomes ``invalid``.
        """
        values: dict[str, Any] = {
            "last_error": message,
            "lease_owner": None,
            "lease_until": None,
            "lease_taken_from": None,
            "updated_at": now,
        }
        if retry_at is None:
            values |= {"status": AuthStatus.INVALID, "version": Authentication.version + 1}
        else:
            values |= {
                "refresh_due_at": retry_at,
                "refresh_failures": Authentication.refresh_failures + 1,
            }
        statement = (
            update(Authentication)
            .where(Authentication.id == auth.id, Authentication.lease_owner == owner)
            .values(**values)
            .returning(Authentication)
        )
        return self.session.scalars(
            statement, execution_options={"populate_existing": True}
        ).first()
