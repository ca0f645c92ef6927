"""The lean rows of the hottest reads: a credentials read (:func:`read_credential_row`) and the
proxy's check of whether its rendered rules are still current (:func:`read_stamp_row`).

Each is one indexed Core SELECT of the columns it needs, built once and compiled once per
process, and run straight on a driver connection (:meth:`Database.first`,
:meth:`Database.first_async`): no ORM identity map, no unit of work.
The ORM repository, with every change and the worker's statements, is :mod:`.repository`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select

from authbridge.authentications.repository import decrypt_credentials
from authbridge.storage.db import Database
from authbridge.storage.models import Authentication, AuthStatus, ConnectorConfig
from authbridge.vault import Keyring

# -- the lean read ---------------------------------------------------------------------------
# A credentials read is the hottest statement of all: one indexed SELECT of the columns it
# needs, on a Core connection (no ORM identity map or unit of work), built once, so its
# compiled form comes from the statement cache.

_table = Authentication.__table__
_READ_ROW = select(
    _table.c.id,
    _table.c.end_user_id,
    _table.c.connector_key,
    _table.c.auth_type,
    _table.c.status,
    _table.c.expires_at,
    _table.c.refresh_due_at,
    _table.c.last_error,
    _table.c.credentials_ct,
    _table.c.delete_at,  # compared in Python: a bound timestamp costs each read its conversion
).where(
    _table.c.id == bindparam("auth_id"),
    _table.c.environment_id == bindparam("environment_id"),
)


@dataclass(frozen=True, slots=True)
class CredentialRow:
    """An authentication as a credentials read sees it (see :func:`read_credential_row`)."""

    id: str
    end_user_id: str | None
    connector_key: str
    auth_type: str
    status: AuthStatus
    expires_at: datetime | None
    refresh_due_at: datetime | None
    last_error: str | None
    credentials_ct: bytes = field(repr=False)

    def credentials(self, keyring: Keyring) -> dict[str, Any]:
        """Decrypt the credentials (the whole stored document, refresh token included)."""
        return decrypt_credentials(keyring, self.id, self.credentials_ct)


async def read_credential_row(
    database: Database, environment_id: str, auth_id: str, *, now: datetime
) -> CredentialRow | None:
    """The environment's authentication ``auth_id`` if it is still served at ``now``, read on
    the event loop (:meth:`Database.first_async`)."""
    params = {"auth_id": auth_id, "environment_id": environment_id}
    row = await database.first_async(_READ_ROW, params)
    if row is None:
        return None
    *served, delete_at = row
    return CredentialRow(*served) if delete_at is None or delete_at > now else None


_configs = ConnectorConfig.__table__
_SERVED_ROW = (
    _table.c.id == bindparam("auth_id"),
    _table.c.environment_id == bindparam("environment_id"),
    or_(_table.c.delete_at.is_(None), _table.c.delete_at > bindparam("now")),
)
_READ_STAMP = (
    select(
        _table.c.id,
        _table.c.end_user_id,
        _table.c.status,
        _table.c.expires_at,
        _table.c.refresh_due_at,
        _table.c.last_error,
        _table.c.version,
        _table.c.connector_key,
        _table.c.connector_version,
        _table.c.connector_variant,
        _configs.c.updated_at,
    )
    .select_from(
        _table.outerjoin(
            _configs,
            and_(
                _configs.c.environment_id == _table.c.environment_id,
                _configs.c.connector_key == _table.c.connector_key,
                _configs.c.variant == func.coalesce(_table.c.connector_variant, ""),
            ),
        )
    )
    .where(*_SERVED_ROW)
)


@dataclass(frozen=True, slots=True)
class StampRow:
    """An authentication's status and what its rendered request rules depend on (see
    :func:`read_stamp_row`), with no secret."""

    id: str
    end_user_id: str | None
    status: AuthStatus
    expires_at: datetime | None
    refresh_due_at: datetime | None
    last_error: str | None
    version: int
    connector_key: str
    connector_version: str
    connector_variant: str | None
    config_updated_at: datetime | None

    @property
    def stamp(self) -> tuple[Any, ...]:
        """The row's version, its connector and the configuration's last change."""
        return (
            self.version,
            self.connector_key,
            self.connector_version,
            self.connector_variant,
            self.config_updated_at,
        )


def read_stamp_row(
    database: Database, environment_id: str, auth_id: str, *, now: datetime
) -> StampRow | None:
    """The environment's authentication ``auth_id`` if it is still served at ``now``, with the
    last change of its connector's configuration (one SELECT, as :func:`read_credential_row`)."""
    row = database.first(
        _READ_STAMP, {"auth_id": auth_id, "environment_id": environment_id, "now": now}
    )
    return None if row is None else StampRow(*row)
