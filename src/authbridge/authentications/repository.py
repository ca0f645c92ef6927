"""Authentications: connected accounts with encrypted credentials and profile.

Every change goes through one ``UPDATE … RETURNING`` that also bumps ``version`` and returns
the row as now stored (use it rather than the object passed in, which may be from an earlier
session); a writer that passes ``expected_version`` changes the row only if nobody else changed
it since it was read.
An authentication past its ``delete_at`` is no longer served: :meth:`get` and :meth:`list`
leave it out, and only :meth:`get_any` (for maintenance work) still returns it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Table,
    Update,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from authbridge.errors import StaleAuthentication
from authbridge.storage.crypto import associated_data, seal_json, unseal_json
from authbridge.storage.db import first_in
from authbridge.storage.models import (
    Authentication,
    AuthStatus,
    new_id,
    utcnow,
)
from authbridge.storage.pagination import DEFAULT_PAGE_SIZE, Page, fetch_page
from authbridge.storage.repositories._dml import affected_rows
from authbridge.vault import AssociatedData, Keyring

_CREDENTIALS = "credentials_ct"
_PROFILE = "profile_ct"


class _Unset(Enum):
    UNSET = "unset"


UNSET: Final = _Unset.UNSET
"""Passed for a field that an update leaves as it is."""


def served_at(now: datetime) -> ColumnElement[bool]:
    """The SQL condition of an authentication still served at ``now`` (not past ``delete_at``)."""
    return or_(Authentication.delete_at.is_(None), Authentication.delete_at > now)


def _credentials_aad(auth_id: str) -> AssociatedData:
    """Where an authentication's credentials are sealed (as :func:`seal_json` seals them)."""
    return associated_data(Authentication.__tablename__, _CREDENTIALS, auth_id)


def decrypt_credentials(keyring: Keyring, auth_id: str, token: bytes) -> dict[str, Any]:
    """The credentials sealed in ``token`` for authentication ``auth_id`` (read as a row of
    its own, without an ORM object)."""
    value: dict[str, Any] = keyring.decrypt_json(token, aad=_credentials_aad(auth_id))
    return value


@dataclass(frozen=True, slots=True)
class LeasedAuthentication:
    """An authentication as :meth:`AuthenticationRepository.acquire_lease` took its lease:
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


class AuthenticationRepository:
    """Queries and changes of the ``authentications`` table."""

    def __init__(self, session: Session, keyring: Keyring) -> None:
        self.session = session
        self.keyring = keyring

    def create(
        self,
        *,
        environment_id: str,
        end_user_id: str | None,
        connector_key: str,
        connector_version: str,
        auth_type: str,
        name: str,
        credentials: Mapping[str, Any],
        connector_variant: str | None = None,
        profile: Mapping[str, Any] | None = None,
        email: str | None = None,
        scopes: Sequence[str] = (),
        status: AuthStatus = AuthStatus.ACTIVE,
        expires_at: datetime | None = None,
        refresh_due_at: datetime | None = None,
        hard_expires_at: datetime | None = None,
        delete_at: datetime | None = None,
        now: datetime | None = None,
    ) -> Authentication:
        """Store a new authentication; ``end_user_id=None`` makes a shared one."""
        now = now or utcnow()
        auth = Authentication(
            id=new_id(),
            environment_id=environment_id,
            end_user_id=end_user_id,
            connector_key=connector_key,
            connector_version=connector_version,
            connector_variant=connector_variant,
            auth_type=auth_type,
            name=name,
            email=email,
            scopes=list(scopes),
            status=status,
            expires_at=expires_at,
            refresh_due_at=refresh_due_at,
            hard_expires_at=hard_expires_at,
            delete_at=delete_at,
            created_at=now,
            updated_at=now,
            version=1,
        )
        auth.credentials_ct = seal_json(self.keyring, auth, _CREDENTIALS, dict(credentials))
        if profile is not None:
            auth.profile_ct = seal_json(self.keyring, auth, _PROFILE, dict(profile))
        self.session.add(auth)
        self.session.flush()
        return auth

    def get(self, environment_id: str, auth_id: str, *, now: datetime) -> Authentication | None:
        """Return the environment's authentication ``auth_id`` if it is still served at ``now``."""
        statement = select(Authentication).where(
            Authentication.environment_id == environment_id,
            Authentication.id == auth_id,
            served_at(now),
        )
        return self.session.scalars(statement).first()

    def get_any(self, auth_id: str, *, reload: bool = False) -> Authentication | None:
        """Return authentication ``auth_id`` in any environment, even past ``delete_at``;
        ``reload=True`` reads it from the database even when the session holds it (after a
        Core statement changed it)."""
        return self.session.get(Authentication, auth_id, populate_existing=reload)

    def credentials(self, auth: Authentication) -> dict[str, Any]:
        """Decrypt the credentials (the whole stored document, refresh token included)."""
        value: dict[str, Any] = unseal_json(self.keyring, auth, _CREDENTIALS)
        return value

    def profile(self, auth: Authentication) -> dict[str, Any] | None:
        """Decrypt the provider profile, or ``None`` when none was stored."""
        if auth.profile_ct is None:
            return None
        value: dict[str, Any] = unseal_json(self.keyring, auth, _PROFILE)
        return value

    def list(
        self,
        environment_id: str,
        *,
        now: datetime,
        end_user_id: str | None = None,
        connector_key: str | None = None,
        status: AuthStatus | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[Authentication]:
        """Return one page of the authentications served at ``now``, oldest first."""
        statement = select(Authentication).where(
            Authentication.environment_id == environment_id, served_at(now)
        )
        if end_user_id is not None:
            statement = statement.where(Authentication.end_user_id == end_user_id)
        if connector_key is not None:
            statement = statement.where(Authentication.connector_key == connector_key)
        if status is not None:
            statement = statement.where(Authentication.status == status)
        return fetch_page(
            self.session,
            statement,
            Authentication.created_at,
            Authentication.id,
            limit=limit,
            cursor=cursor,
        )

    def rename(
        self, auth: Authentication, name: str, *, now: datetime | None = None
    ) -> Authentication:
        return self._update(auth, {"name": name}, now=now)

    def update_credentials(
        self,
        auth: Authentication,
        credentials: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        profile: Mapping[str, Any] | _Unset | None = UNSET,
        name: str | _Unset = UNSET,
        email: str | _Unset | None = UNSET,
        scopes: Sequence[str] | _Unset = UNSET,
        connector_version: str | _Unset = UNSET,
        expires_at: datetime | _Unset | None = UNSET,
        refresh_due_at: datetime | _Unset | None = UNSET,
        hard_expires_at: datetime | _Unset | None = UNSET,
        now: datetime | None = None,
    ) -> Authentication:
        """Replace the credentials in place (same id): after a refresh, reconnect or JWT update.

        The authentication becomes ``active`` and its last error is cleared. Fields left
        :data:`UNSET` keep their value. Raises :class:`StaleAuthentication` when
        ``expected_version`` is given and the row has moved on.
        """
        values: dict[str, Any] = {
            "credentials_ct": seal_json(self.keyring, auth, _CREDENTIALS, dict(credentials)),
            "status": AuthStatus.ACTIVE,
            "last_error": None,
        }
        if not isinstance(profile, _Unset):
            values["profile_ct"] = (
                None if profile is None else seal_json(self.keyring, auth, _PROFILE, dict(profile))
            )
        if not isinstance(scopes, _Unset):
            values["scopes"] = list(scopes)
        optional = {
            "name": name,
            "email": email,
            "connector_version": connector_version,
            "expires_at": expires_at,
            "refresh_due_at": refresh_due_at,
            "hard_expires_at": hard_expires_at,
        }
        values.update({key: value for key, value in optional.items() if value is not UNSET})
        return self._update(auth, values, now=now, expected_version=expected_version)

    def schedule_deletion(
        self, auth: Authentication, delete_at: datetime | None, *, now: datetime | None = None
    ) -> Authentication:
        """Set (or with ``None`` clear) the time after which the authentication is not served."""
        return self._update(auth, {"delete_at": delete_at}, now=now)

    def delete(self, auth: Authentication) -> bool:
        """Delete the authentication (and any connect session editing it); return if it existed."""
        statement = delete(Authentication).where(Authentication.id == auth.id)
        deleted = affected_rows(self.session, statement) == 1
        if auth in self.session:
            self.session.expunge(auth)
        return deleted

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

    def _expiry_warning_due(self, now: datetime, until: datetime) -> Sequence[ColumnElement[bool]]:
        return [
            Authentication.status == AuthStatus.ACTIVE,
            Authentication.hard_expires_at > now,
            Authentication.hard_expires_at <= until,
            or_(
                Authentication.expiry_warned_for.is_(None),
                Authentication.expiry_warned_for != Authentication.hard_expires_at,
            ),
            served_at(now),
        ]

    def due_ids_for_expiry_warning(
        self, now: datetime, until: datetime, *, limit: int
    ) -> Sequence[str]:
        """Ids of active authentications that hard-expire in ``(now, until]`` and were not
        warned about that date yet."""
        statement = (
            select(Authentication.id)
            .where(*self._expiry_warning_due(now, until))
            .order_by(Authentication.hard_expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(self.session.scalars(statement))

    def mark_expiry_warned(
        self, auth_id: str, *, now: datetime, until: datetime
    ) -> Authentication | None:
        """Record that the warning for the current ``hard_expires_at`` is sent, if it still has
        to be; return the row, or ``None`` when someone else sent it (or it is not due)."""
        statement = (
            update(Authentication)
            .where(Authentication.id == auth_id, *self._expiry_warning_due(now, until))
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
        refresh storm's CPU, and the refresher seldom needs it (:meth:`get_any` reads it).
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

    def _update(
        self,
        auth: Authentication,
        values: dict[str, Any],
        *,
        now: datetime | None,
        expected_version: int | None = None,
    ) -> Authentication:
        statement = update(Authentication).where(Authentication.id == auth.id)
        if expected_version is not None:
            statement = statement.where(Authentication.version == expected_version)
        statement = statement.values(
            **values, version=Authentication.version + 1, updated_at=now or utcnow()
        ).returning(Authentication)
        updated = self.session.scalars(
            statement, execution_options={"populate_existing": True}
        ).first()
        if updated is None:
            raise StaleAuthentication(
                f"authentication '{auth.id}' was changed or deleted meanwhile; read it again"
            )
        return updated
