"""The audit log: who created, read the credentials of, changed or deleted what."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import uuid_utils
from psycopg.types.json import Json
from sqlalchemy import Dialect, Table, select
from sqlalchemy.orm import Session

from authbridge.storage.models import AuditEvent, utcnow
from authbridge.storage.pagination import DEFAULT_PAGE_SIZE, Page, fetch_page

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


_COLUMNS = (
    "id",
    "environment_id",
    "actor",
    "action",
    "target_type",
    "target_id",
    "detail",
    "created_at",
)
_INSERT = f"INSERT INTO {AuditEvent.__tablename__} ({', '.join(_COLUMNS)}) VALUES "  # noqa: S608 (constants)
_VALUES = f"({', '.join('?' * len(_COLUMNS))})"
#: Rows per SQLite ``INSERT`` at most (8 parameters each, well within SQLite's 32,766).
_ROWS_PER_INSERT = 500
_COPY = f"COPY {AuditEvent.__tablename__} ({', '.join(_COLUMNS)}) FROM STDIN"


def new_event_id() -> str:
    """An audit event's id: a UUIDv7, ordered by time, so that appending events appends to the
    primary key's index (random ids landed on as many of its pages as a batch had rows, and
    SQLite rewrites every page a commit touched)."""
    return str(uuid_utils.uuid7())


def _bind_processor(column: str, dialect: Dialect) -> Callable[[Any], Any]:
    """The conversion an ``INSERT`` applies to ``column``'s values on ``dialect``."""
    column_type = cast(Table, AuditEvent.__table__).c[column].type
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else _same


def _same(value: Any) -> Any:
    return value


#: An event as the driver takes it (:meth:`AuditRows.row`), in the order of ``_COLUMNS``.
AuditRow = tuple[Any, ...]


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


class AuditRows:
    """Turns events into :data:`AuditRow` tuples for one database dialect: a new id and the
    column types' own conversions, as an ``INSERT`` applies them (timestamps aware and in UTC;
    the detail as JSON). The audit trail makes each row when the request queues it, so that
    its writer thread has next to no Python work left (see :meth:`AuditRepository.record_rows`).
    """

    def __init__(self, dialect: Dialect) -> None:
        self._created_at = _bind_processor("created_at", dialect)
        self._detail = Json if dialect.name == "postgresql" else _bind_processor("detail", dialect)
        self._no_detail = self._detail({})

    def row(self, entry: AuditEntry) -> AuditRow:
        """``entry`` as a row; :class:`ValueError` for a ``detail`` key named like a secret."""
        detail = self._no_detail
        if entry.detail:
            _check_detail(entry.detail)
            detail = self._detail(dict(entry.detail))
        return (
            new_event_id(),
            entry.environment_id,
            entry.actor,
            entry.action,
            entry.target_type,
            entry.target_id,
            detail,
            self._created_at(entry.at),
        )


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
            id=new_event_id(),
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
        """Append many events in the session's transaction (see :meth:`record_rows`); return
        how many. Like :meth:`record`, refuses a ``detail`` key named like a secret
        (:class:`ValueError`)."""
        rows = AuditRows(self.session.connection().dialect)
        return self.record_rows([rows.row(entry) for entry in entries])

    def record_rows(self, rows: Sequence[AuditRow]) -> int:
        """Append events made by :meth:`AuditRows.row` in the session's transaction, on SQLite
        with a few multi-row ``INSERT`` statements, on PostgreSQL with one ``COPY`` (the audit
        trail's batches); return how many. No ORM objects, no SQLAlchemy parameter processing
        per row: an executemany had cost a credential read as much CPU as the read itself."""
        if not rows:
            return 0
        connection = self.session.connection()
        driver_connection: Any = connection.connection.driver_connection
        if connection.dialect.name == "postgresql":
            with driver_connection.cursor() as cursor, cursor.copy(_COPY) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            # Many rows per statement, not an executemany: the sqlite3 module lets go of the
            # GIL around every statement it steps, and a writer thread taking it back a row at
            # a time stalled the event loop serving reads at each row (a convoy).
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                chunk = rows[start : start + _ROWS_PER_INSERT]
                values = [value for row in chunk for value in row]
                driver_connection.execute(_INSERT + ", ".join([_VALUES] * len(chunk)), values)
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
