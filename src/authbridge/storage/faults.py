"""Which database errors are *trouble* (transient, worth a retry) and which are bugs.

:func:`classify` names the kind of trouble behind a SQLAlchemy or driver exception, or returns
``None`` when the exception is not trouble: a constraint violation, a syntax error, a missing
table or a value the column refuses stay what they were (a bug, or a 4xx the service maps).
:func:`unavailable` turns trouble into :class:`~authbridge.errors.DatabaseUnavailable`, which
the API answers with 503 and ``Retry-After``.

The kinds, with the seconds a client is asked to wait before trying again:

* ``pool_exhausted`` (1): every pooled connection stayed in use for ``pool_timeout``.
* ``unreachable`` (5): a new connection failed (refused, unknown host, too many clients,
  the server starting up or shutting down).
* ``connection_lost`` (1): the server closed a connection in use (restart, a killed backend,
  an idle timeout, the network cut).
* ``serialization_failure`` (1) and ``deadlock`` (1): PostgreSQL SQLSTATE 40001 and 40P01.
* ``timed_out`` (1): ``statement_timeout`` or ``lock_timeout`` (SQLSTATE 57014, 55P03).
* ``overloaded`` (5): out of memory, disk full, too many connections (SQLSTATE class 53).
* ``locked`` (1): SQLite stayed busy or locked for all of ``busy_timeout``.

Nothing here reads an error's text: a driver's message may quote the statement's values.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import psycopg
from sqlalchemy import exc as sa_exc

from authbridge.errors import DatabaseUnavailable

POOL_EXHAUSTED = "pool_exhausted"
UNREACHABLE = "unreachable"
CONNECTION_LOST = "connection_lost"
SERIALIZATION_FAILURE = "serialization_failure"
DEADLOCK = "deadlock"
TIMED_OUT = "timed_out"
OVERLOADED = "overloaded"
LOCKED = "locked"


@dataclass(frozen=True)
class _Kind:
    retry_after: int
    message: str


KINDS: dict[str, _Kind] = {
    POOL_EXHAUSTED: _Kind(1, "every database connection of this server is in use"),
    UNREACHABLE: _Kind(5, "the database cannot be reached"),
    CONNECTION_LOST: _Kind(1, "the connection to the database was lost"),
    SERIALIZATION_FAILURE: _Kind(1, "the change clashed with a concurrent one"),
    DEADLOCK: _Kind(1, "the change deadlocked with a concurrent one"),
    TIMED_OUT: _Kind(1, "the database took too long to answer"),
    OVERLOADED: _Kind(5, "the database is out of resources"),
    LOCKED: _Kind(1, "the database is busy with another writer"),
}

# PostgreSQL error codes (Appendix A of its manual) that are trouble; class 53 as a whole too.
_SQLSTATES = {
    "40001": SERIALIZATION_FAILURE,
    "40P01": DEADLOCK,
    "57014": TIMED_OUT,  # query_canceled: statement_timeout
    "55P03": TIMED_OUT,  # lock_not_available: lock_timeout, NOWAIT
    "57P01": CONNECTION_LOST,  # admin_shutdown: server stopping, pg_terminate_backend
    "57P02": CONNECTION_LOST,  # crash_shutdown: another backend crashed
    "57P05": CONNECTION_LOST,  # idle_session_timeout
    "25P03": CONNECTION_LOST,  # idle_in_transaction_session_timeout
    "57P03": UNREACHABLE,  # cannot_connect_now: starting up or shutting down
}

# SQLite primary result codes (the low byte of an extended code).
_SQLITE_CODES = {
    sqlite3.SQLITE_BUSY: LOCKED,
    sqlite3.SQLITE_LOCKED: LOCKED,
    sqlite3.SQLITE_PROTOCOL: LOCKED,  # a WAL lock race that outlasted the retries
    sqlite3.SQLITE_NOMEM: OVERLOADED,
    sqlite3.SQLITE_FULL: OVERLOADED,
    sqlite3.SQLITE_IOERR: UNREACHABLE,
    sqlite3.SQLITE_CANTOPEN: UNREACHABLE,
}


def classify(exc: BaseException) -> str | None:
    """The kind of database trouble ``exc`` is (see the list above), or ``None``.

    ``exc`` is a SQLAlchemy exception (:class:`sqlalchemy.exc.DBAPIError` wraps the driver's
    error as ``orig``) or a psycopg or sqlite3 error raised directly.
    """
    if isinstance(exc, sa_exc.TimeoutError):  # QueuePool: no connection within pool_timeout
        return POOL_EXHAUSTED
    if isinstance(exc, sa_exc.DBAPIError):
        kind = _classify_driver_error(exc.orig)
        if kind is None and exc.connection_invalidated:
            return CONNECTION_LOST
        return kind
    return _classify_driver_error(exc)


def unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """``exc`` as :class:`DatabaseUnavailable` when it is trouble, else ``None``."""
    kind = classify(exc)
    if kind is None:
        return None
    details = KINDS[kind]
    return DatabaseUnavailable(
        f"{details.message}; try again in {details.retry_after} s",
        kind=kind,
        retry_after=details.retry_after,
        cause=describe(exc),
    )


def describe(exc: BaseException) -> str:
    """Name ``exc`` for a log line: its class and the driver error's class and code, no text."""
    names = [type(exc).__name__]
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else None
    if isinstance(orig, BaseException):
        names.append(f"{type(orig).__module__}.{type(orig).__qualname__}")
    driver_error = orig if orig is not None else exc
    if isinstance(driver_error, psycopg.Error) and driver_error.sqlstate:
        names.append(f"SQLSTATE {driver_error.sqlstate}")
    if isinstance(driver_error, sqlite3.Error) and getattr(driver_error, "sqlite_errorname", None):
        names.append(driver_error.sqlite_errorname)
    return " / ".join(names)


def _classify_driver_error(error: object) -> str | None:
    if isinstance(error, psycopg.Error):
        return _classify_postgres(error)
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)  # absent when sqlite3 itself refused
        return None if code is None else _SQLITE_CODES.get(code & 0xFF)
    return None


def _classify_postgres(error: psycopg.Error) -> str | None:
    state = error.sqlstate
    if state:
        return OVERLOADED if state.startswith("53") else _SQLSTATES.get(state)
    if not isinstance(error, psycopg.OperationalError):
        return None
    # No SQLSTATE: libpq failed without an answer from the server. psycopg attaches the
    # connection to an error raised by a connection attempt; a connection that broke while in
    # use (the server gone, the network cut) has none.
    if isinstance(error, psycopg.errors.ConnectionTimeout) or error.pgconn is not None:
        return UNREACHABLE
    return CONNECTION_LOST
