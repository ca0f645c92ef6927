"""Database faults injected from the database's side, with no hook in authbridge's code.

:func:`failing_refresh_stores` makes the database refuse the statement that stores a refresh
result (an UPDATE of ``authentications`` that releases the lease and changes the credentials)
a given number of times (:func:`failing_refresh_failures`, the one recording a failed
refresh), as a database in trouble would: on PostgreSQL a trigger raises a
serialization failure (SQLSTATE 40001, counted by a sequence, which no rollback undoes); on
SQLite a trigger calls a function registered on every new connection of the database's
engines, which says whether to fail. :func:`failing_audit_batches` makes writes of audit rows
fail the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, text

from authbridge.storage import Database

_STORE = (
    "OLD.lease_owner IS NOT NULL AND NEW.lease_owner IS NULL"
    " AND NEW.credentials_ct IS NOT OLD.credentials_ct"
)
#: The statement recording a failed refresh: it releases the lease, keeps the credentials and
#: sets ``last_error``.
_FAILURE = (
    "OLD.lease_owner IS NOT NULL AND NEW.lease_owner IS NULL"
    " AND NEW.credentials_ct IS OLD.credentials_ct AND NEW.last_error IS NOT NULL"
)


@dataclass
class Faults:
    """How many store failures are left to inject, and how many were."""

    left: int
    injected: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> int:
        with self._lock:
            if self.left <= 0:
                return 0
            self.left -= 1
            self.injected += 1
            return 1


@contextmanager
def failing_refresh_stores(database: Database, times: int) -> Iterator[Faults]:
    """Make the next ``times`` refresh stores fail; yields the counts."""
    with _failing(database, times, _STORE) as faults:
        yield faults


@contextmanager
def failing_refresh_failures(database: Database, times: int) -> Iterator[Faults]:
    """Make the next ``times`` statements recording a failed refresh fail; yields the counts."""
    with _failing(database, times, _FAILURE) as faults:
        yield faults


@contextmanager
def failing_audit_batches(database: Database, times: int) -> Iterator[Faults]:
    """Make the next ``times`` writes of audit rows fail (a whole batch each: on SQLite its
    first row fails, on PostgreSQL its ``COPY`` or ``INSERT`` statement); yields the counts."""
    with _failing(database, times, "1 = 1", on="INSERT ON audit_events", each="STATEMENT") as f:
        yield f


@contextmanager
def _failing(
    database: Database,
    times: int,
    condition: str,
    *,
    on: str = "UPDATE ON authentications",
    each: str = "ROW",
) -> Iterator[Faults]:
    if database.is_sqlite:
        with _sqlite(database, times, condition, on) as faults:
            yield faults
    else:
        postgres = condition.replace(" IS NOT OLD", " IS DISTINCT FROM OLD")
        postgres = postgres.replace(" IS OLD", " IS NOT DISTINCT FROM OLD")
        with _postgres(database, times, postgres, on, each) as faults:
            yield faults


@contextmanager
def _sqlite(database: Database, times: int, condition: str, on: str) -> Iterator[Faults]:
    faults = Faults(times)

    def register(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.create_function("injected_fault", 0, faults.take)

    event.listen(database.engine, "connect", register)
    database.engine.dispose()  # connections opened from now on have the function
    with database.session() as session:
        session.execute(
            text(
                f"CREATE TRIGGER injected_fault BEFORE {on}"
                f" WHEN CASE WHEN {condition} THEN injected_fault() ELSE 0 END = 1"
                " BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            )
        )
    try:
        yield faults
    finally:
        with database.session() as session:
            session.execute(text("DROP TRIGGER injected_fault"))
        event.remove(database.engine, "connect", register)
        database.engine.dispose()


@contextmanager
def _postgres(
    database: Database, times: int, condition: str, on: str, each: str
) -> Iterator[Faults]:
    table = on.split(" ON ")[1]
    with database.session() as session:
        session.execute(text("CREATE SEQUENCE injected_faults"))
        session.execute(
            text(
                "CREATE FUNCTION injected_fault() RETURNS trigger AS $$ BEGIN"
                f" IF {condition} THEN"
                f" IF nextval('injected_faults') <= {int(times)} THEN"
                " RAISE EXCEPTION 'injected failure' USING ERRCODE = '40001';"
                " END IF; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        session.execute(
            text(
                f"CREATE TRIGGER injected_fault BEFORE {on}"
                f" FOR EACH {each} EXECUTE FUNCTION injected_fault()"
            )
        )
    faults = Faults(times)
    try:
        yield faults
    finally:
        with database.session() as session:
            used = session.execute(text("SELECT last_value, is_called FROM injected_faults"))
            last, called = used.one()
            faults.injected = min(int(last), times) if called else 0
            faults.left = times - faults.injected
            session.execute(text(f"DROP TRIGGER injected_fault ON {table}"))
            session.execute(text("DROP FUNCTION injected_fault()"))
            session.execute(text("DROP SEQUENCE injected_faults"))
