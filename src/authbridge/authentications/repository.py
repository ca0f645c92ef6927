"""Authentications: connected accounts with encrypted credentials and profile.

Every change goes through one ``UPDATE … RETURNING`` that also bumps ``version`` and returns
the row as now stored (use it rather than the object passed in, which may be from an earlier
session); a writer that passes ``expected_version`` changes the row only if nobody else changed
it since it was read.
An authentication past its ``delete_at`` is no longer served: :meth:`get` and :meth:`list`
leave it out, and only :meth:`get_any` (for maintenance work) still returns it.

The refresh slice's statements on this table (the refresh leases, the worker's scans) are in
:mod:`authbridge.refresh.repository`; :func:`served_at` and :func:`decrypt_credentials` serve
both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any, Final

from sqlalchemy import ColumnElement, delete, or_, select, update
from sqlalchemy.orm import Session

from authbridge.errors import StaleAuthentication
from authbridge.storage.crypto import associated_data, seal_json, unseal_json
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
