"""The audit log: who created, read the credentials of, changed or deleted what."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from psycopg.types.json import Json
from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from authbridge.storage.models import AuditEvent, new_id, utcnow
from authbridge.storage.repositories.pagination import DEFAULT_PAGE_SIZE, Page, fetch_page

_SECRET_NAME = re.compile(
    r"(secret|password|passwd|token|credentials?|api_?key|authorization|cookie|private_?key)$",
    re.IGNORECASE,
)


def _check_detail(value: Any, path: str = "detail") -> None:
    """Refuse detail entries whose names suggest a secret value: the log must hold none."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if _SECRET_NAME.search(str(key)):
                raise ValueError(f"{path}.{key} looks like a secret; audit details hold none")
            _check_detail(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_detail(item, f"{path}[{index}]")


_COPY_COLUMNS = (
    "id",
    "environment_id",
    "actor",
    "action",
    "target_type",
    "target_id",
    "detail",
    "created_at",
)


def _copy(driver_connection: Any, rows: list[dict[str, Any]]) -> None:
    """``COPY`` the rows into ``audit_events`` in the session's transaction (psycopg adapts
    each value: ``Json`` for the detail, aware datetimes as ``timestamptz``)."""
    statement = f"COPY {AuditEvent.__tablename__} ({', '.join(_COPY_COLUMNS)}) FROM STDIN"
    with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(
                [Json(row[name]) if name == "detail" else row[name] for name in _COPY_COLUMNS]
            )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An event to append (see :meth:`AuditRepository.record_many`)."""

    environment_id: str
    actor: str
    action: str
    target_type: str
    target_id: str | None
    at: datetime
    detail: Mapping[str, Any] | None = None


class AuditRepository:
    """Queries and changes of the ``audit_events`` table."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def record(
        self,
        *,
        environment_id: str,
        actor: str,
        action: str,
        target_type: str,
        target_id: str | None,
        detail: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> AuditEvent:
        """Append an event. ``detail`` names what changed (field names, connector, status).

        Raises :class:`ValueError` when a ``detail`` key is named like a secret (``token``,
        ``password``, ``credentials`` …): pass the names of changed fields, never values.
        """
        detail = dict(detail or {})
        _check_detail(detail)
        event = AuditEvent(
            id=new_id(),
            environment_id=environment_id,
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            detail=detail,
            created_at=now or utcnow(),
        )
        self.session.add(event)
        self.session.flush()
        return event

    def record_many(self, entries: Iterable[AuditEntry]) -> int:
        """Append many events in one Core ``INSERT`` (no ORM objects), on PostgreSQL with one
        ``COPY`` (the audit trail's batches: an ``executemany`` sent a statement per row, a
        seventh of a credential read's CPU); return how many.

        Like :meth:`record`, refuses a ``detail`` key named like a secret (:class:`ValueError`).
        """
        rows = []
        for entry in entries:
            detail = dict(entry.detail or {})
            _check_detail(detail)
            rows.append(
                {
                    "id": new_id(),
                    "environment_id": entry.environment_id,
                    "actor": entry.actor,
                    "action": entry.action,
                    "target_type": entry.target_type,
                    "target_id": entry.target_id,
                    "detail": detail,
                    "created_at": entry.at,
                }
            )
        if not rows:
            return 0
        connection = self.session.connection()
        if connection.dialect.name == "postgresql":
            # The column type's own check and conversion (aware, in UTC), as an INSERT does.
            created_at = cast(Table, AuditEvent.__table__).c.created_at.type
            process = created_at.dialect_impl(connection.dialect).bind_processor(connection.dialect)
            if process is not None:
                for row in rows:
                    row["created_at"] = process(row["created_at"])
            _copy(connection.connection.driver_connection, rows)
        else:
            self.session.execute(insert(cast(Table, AuditEvent.__table__)), rows)
        return len(rows)

    def list(
        self,
        environment_id: str,
        *,
        target_type: str | None = None,
        target_id: str | None = None,
        action: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[AuditEvent]:
        """Return one page of the environment's events, oldest first."""
        statement = select(AuditEvent).where(AuditEvent.environment_id == environment_id)
        if target_type is not None:
            statement = statement.where(AuditEvent.target_type == target_type)
        if target_id is not None:
            statement = statement.where(AuditEvent.target_id == target_id)
        if action is not None:
            statement = statement.where(AuditEvent.action == action)
        return fetch_page(
            self.session,
            statement,
            AuditEvent.created_at,
            AuditEvent.id,
            limit=limit,
            cursor=cursor,
        )
