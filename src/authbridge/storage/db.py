"""Where the database is and how to open it: the data folder, the URL, engine and sessions.

The embedded default is a SQLite file in the data folder (``AUTHBRIDGE_HOME``, else
``./.authbridge``), opened in WAL mode with foreign keys enforced. ``AUTHBRIDGE_DATABASE_URL``
selects PostgreSQL instead (driven by psycopg 3) for deployments that run several processes.

The request, command or task that does the work owns the transaction: it opens one with
:meth:`Database.session`, hands the :class:`~sqlalchemy.orm.Session` to repositories, and the
block commits when it ends normally or rolls back when it raises.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import anyio.to_thread
import psycopg
from sqlalchemy import Connection, Dialect, Engine, Select, Update, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import SingletonThreadPool

from authbridge.errors import InvalidInput
from authbridge.storage.async_reads import AsyncReaders

HOME_ENV_VAR = "AUTHBRIDGE_HOME"
DATABASE_URL_ENV_VAR = "AUTHBRIDGE_DATABASE_URL"
DEFAULT_HOME = Path(".authbridge")
DATABASE_FILE = "authbridge.db"
SQLITE_BUSY_TIMEOUT_MS = 10_000
#: PostgreSQL connections per process (``AUTHBRIDGE_DATABASE_POOL_SIZE`` replaces it): four
#: processes fit a stock server (max_connections 100, 3 kept for superusers) with room to spare.
POOL_SIZE = 20
#: How long a request waits for a pooled connection before it is answered 503.
POOL_TIMEOUT_SECONDS = 3
POOL_RECYCLE_SECONDS = 1800

_POSTGRES_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg"}
_BEGIN_OPTION = "authbridge_sqlite_begin"
#: For :meth:`Database.reading` on SQLite: no BEGIN at all, one SELECT is consistent by itself.
_NO_BEGIN = "none"


def default_url(home: Path) -> str:
    """Return the URL of the embedded SQLite database inside the data folder ``home``."""
    return f"sqlite:///{(home / DATABASE_FILE).absolute()}"


def normalize_url(url: str) -> str:
    """Check that ``url`` names SQLite or PostgreSQL and point PostgreSQL at psycopg 3.

    ``postgres://`` and ``postgresql://`` (as hosting platforms print them) become
    ``postgresql+psycopg://``. Raises :class:`InvalidInput` for any other kind of URL; the
    message never repeats the URL, which may hold a password.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidInput(
            "the database URL is not valid; expected sqlite:///PATH or postgresql://...",
            field=DATABASE_URL_ENV_VAR,
        ) from None
    if parsed.drivername in _POSTGRES_SCHEMES:
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername not in {"sqlite", "sqlite+pysqlite"}:
        raise InvalidInput(
            f"database '{parsed.drivername}' is not supported; use SQLite or PostgreSQL",
            field=DATABASE_URL_ENV_VAR,
        )
    return parsed.render_as_string(hide_password=False)


def make_engine(
    url: str,
    *,
    sqlite_foreign_keys: bool = True,
    sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    **options: Any,
) -> Engine:
    """Create an engine for ``url`` tuned for authbridge (see :class:`Database`).

    ``sqlite_foreign_keys=False`` is for migrations only: SQLite's batch mode recreates tables,
    and with enforcement on, dropping a parent table would cascade into its children.
    ``sqlite_busy_timeout_ms`` is how long a SQLite writer waits for the lock before "database
    is locked" (tests shorten it). ``options`` go to :func:`sqlalchemy.create_engine`.

    PostgreSQL's pool is a fixed budget per process: :data:`POOL_SIZE` connections, kept open,
    no overflow, so that the processes sharing a server never together exceed its
    ``max_connections``; a request that finds them all busy for :data:`POOL_TIMEOUT_SECONDS`
    fails fast with ``pool_exhausted`` (a 503) instead of queueing for half a minute. Each
    checkout pings the connection first (one round trip, about 60 µs on loopback) so that a
    connection the server dropped while idle (a restart, a killed backend) is replaced instead
    of failing the request.
    """
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **options)
        _tune_sqlite(
            engine, foreign_keys=sqlite_foreign_keys, busy_timeout_ms=sqlite_busy_timeout_ms
        )
        return engine
    defaults: dict[str, Any] = {"pool_pre_ping": True}
    if "poolclass" not in options:
        # Every connection is kept (with overflow connections closed again on return, a busy
        # server opened a new PostgreSQL backend for every fourth request).
        defaults |= {
            "pool_size": POOL_SIZE,
            "max_overflow": 0,
            "pool_timeout": POOL_TIMEOUT_SECONDS,
            "pool_recycle": POOL_RECYCLE_SECONDS,
        }
    return create_engine(parsed, **{**defaults, **options})


def _tune_sqlite(engine: Engine, *, foreign_keys: bool, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 module (see _on_begin) and set per-connection pragmas.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A transaction that reads and then writes would fail at once with "database is locked"
        # when another connection wrote in between; BEGIN IMMEDIATE takes the write lock up
        # front, so concurrent writers wait (up to busy_timeout) instead.
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
        if mode != _NO_BEGIN:
            connection.exec_driver_sql(f"BEGIN {mode}")


#: PostgreSQL connections :meth:`Database.first` keeps out of the pool, at most.
DIRECT_READ_CONNECTIONS = 4
#: PostgreSQL connections of the event loop for :meth:`Database.first_async`, at most (and a
#: third of the process's budget at most); the pool keeps the rest of the budget. Measured
#: (bench/credentials.py, 32 connections): 4 served 3,185 reads/s, 6 3,620, 8 3,806 with
#: twice the p99 of 6 (more backends at once than the cores can run).
ASYNC_READ_CONNECTIONS = 6


class Database:
    """An engine and the sessions made from it; one per process and database.

    Sessions keep loaded objects usable after commit (``expire_on_commit=False``), so a request
    can render what it wrote without another query.
    """

    def __init__(self, url: str, **engine_options: Any) -> None:
        self._async_readers: AsyncReaders | None = None
        parsed = make_url(normalize_url(url))
        if parsed.get_backend_name() != "sqlite" and "poolclass" not in engine_options:
            # The event loop's own connections for first_async come out of the process's
            # budget: the pool keeps the rest.
            budget = int(engine_options.get("pool_size", POOL_SIZE))
            readers = min(ASYNC_READ_CONNECTIONS, budget // 3)
            if readers:
                engine_options = {**engine_options, "pool_size": budget - readers}
                self._async_readers = AsyncReaders(
                    parsed.set(drivername="postgresql").render_as_string(hide_password=False),
                    readers,
                    timeout=float(engine_options.get("pool_timeout", POOL_TIMEOUT_SECONDS)),
                )
        self.engine = make_engine(url, **engine_options)
        self.url: URL = self.engine.url
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if self.is_sqlite:
            reading = self.engine.execution_options(**{_BEGIN_OPTION: "DEFERRED"})
        else:
            reading = self.engine.execution_options(postgresql_readonly=True)
        # Core reads (:meth:`reading`) on SQLite keep one connection per thread (the event
        # loop's thread reads on its own connection and never waits for a pooled one), in
        # autocommit mode: no BEGIN, no rollback on return.
        self._reading = (
            make_engine(
                url,
                **{
                    **engine_options,
                    "poolclass": SingletonThreadPool,
                    "pool_reset_on_return": None,
                },
            ).execution_options(**{_BEGIN_OPTION: _NO_BEGIN})
            if self.is_sqlite
            else reading
        )
        self._read_sessions = sessionmaker(reading, expire_on_commit=False)
        # SQLite lets one transaction write at a time (BEGIN IMMEDIATE, see _tune_sqlite). This
        # process's writers take turns on a lock first: SQLite's busy handler polls with sleeps
        # of up to 100 ms, so under load the database sat idle while the waiting writers slept.
        self._sqlite_writers = threading.RLock() if self.is_sqlite else None
        # For first(): on SQLite each thread's own connection, on PostgreSQL a few pooled
        # connections kept out of the pool, in autocommit mode (statements compiled once:
        # _compiled).
        self._on_sqlite = self.is_sqlite
        self._sqlite_connection = threading.local()
        self._generation = 0
        self._pg_idle: list[Any] = []
        self._pg_held = 0
        self._pg_lock = threading.Lock()

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """Open a session whose transaction commits when the block ends, or rolls back on error.

        ``readonly=True`` is for work that only reads: on SQLite it does not take the write lock
        (so it runs beside a writer), on PostgreSQL the transaction refuses writes.
        """
        factory = self._read_sessions if readonly else self._sessions
        with self._writer_turn(readonly), factory() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def first(self, statement: Select[Any], params: Mapping[str, Any]) -> Sequence[Any] | None:
        """The first row of the Core ``statement``, read on its own (no transaction, no ORM).

        The hottest read of all (a credential read) goes here. The statement is compiled once
        (:class:`_DirectRead`, with the column types' own bind and result processing) and runs
        straight on a driver connection in autocommit mode (one statement is consistent by
        itself): no pool checkout, no BEGIN or ROLLBACK, no ping. On SQLite, on a connection
        the calling thread keeps (a few microseconds). On PostgreSQL, on one of at most
        :data:`DIRECT_READ_CONNECTIONS` connections taken from the pool and kept out of it
        (one round trip, the statement prepared by the server after a few runs); a
        connection found broken is dropped and the read tried once more on a fresh one
        (what the pool's ping does for a checkout); beyond that many at once, a pooled read.
        """
        read = self._direct_read(statement)
        if not self._on_sqlite:
            return self._first_on_postgres(read, statement, params)
        kept = self._sqlite_connection
        if getattr(kept, "generation", None) != self._generation:
            kept.value = self._reading.engine.raw_connection()  # held: never checked in
            kept.generation = self._generation
        return read.first(kept.value.driver_connection, params)

    async def first_async(
        self, statement: Select[Any], params: Mapping[str, Any]
    ) -> Sequence[Any] | None:
        """:meth:`first` for the event loop: on SQLite the same read, on the loop's thread; on
        PostgreSQL on one of the loop's own asynchronous connections
        (:class:`~authbridge.storage.async_reads.AsyncReaders`), with no thread hop; in a
        worker thread when the database was made without them (a pool class of its own) or
        they belong to another loop still running."""
        if self._on_sqlite:
            return self.first(statement, params)
        readers = self._async_readers
        if readers is None or not readers.serves_running_loop():
            return await anyio.to_thread.run_sync(self.first, statement, params)
        return await readers.first(self._direct_read(statement), params)

    def _direct_read(self, statement: Select[Any]) -> _DirectRead:
        return _compiled(statement, self.engine.dialect)

    def _first_on_postgres(
        self, read: _DirectRead, statement: Select[Any], params: Mapping[str, Any]
    ) -> Sequence[Any] | None:
        for attempt in (1, 2):
            with self._pg_lock:
                if self._pg_idle:
                    connection, generation = self._pg_idle.pop()
                elif self._pg_held < DIRECT_READ_CONNECTIONS:
                    self._pg_held += 1
                    connection, generation = None, self._generation
                else:
                    connection = generation = None
                    break
            try:
                if connection is None:
                    connection = self.engine.raw_connection()  # pinged; never checked in
                    driver: Any = connection.driver_connection
                    driver.autocommit = True
                row = read.first(connection.driver_connection, params)
            except psycopg.OperationalError:
                self._drop(connection)
                if attempt == 2:
                    raise
                # A connection the server dropped while idle (a restart, a killed backend):
                # the others kept likely were too. Once more, on a fresh (pinged) connection.
                self._drop_idle()
                continue
            except BaseException:
                self._drop(connection)
                raise
            with self._pg_lock:
                if generation == self._generation:
                    self._pg_idle.append((connection, generation))
                    return row
            self._drop(connection)  # the pool was disposed meanwhile
            return row
        with self._reading.connect() as pooled:
            return pooled.execute(statement, params).first()

    def _drop(self, connection: Any) -> None:
        with self._pg_lock:
            self._pg_held -= 1
        if connection is not None:
            with suppress(Exception):
                connection.invalidate()

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A Core connection for one read (rolled back at the end of the block).

        For the hottest reads, one statement with no ORM: on SQLite in autocommit mode (a
        single SELECT is consistent by itself, and WAL readers never wait for a writer), on
        PostgreSQL in a transaction that refuses writes.
        """
        with self._reading.connect() as connection:
            yield connection

    @contextmanager
    def _writer_turn(self, readonly: bool) -> Iterator[None]:
        if readonly or self._sqlite_writers is None:
            yield
            return
        # After the busy timeout, go on without a turn and let SQLite's busy handling decide, as
        # it did before (say, for a session held across an await on the event loop's thread).
        turn = self._sqlite_writers.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        try:
            yield
        finally:
            if turn:
                self._sqlite_writers.release()

    def _drop_idle(self) -> None:
        """Close the kept PostgreSQL connections not in use; those in use are dropped when
        their read ends."""
        with self._pg_lock:
            kept, self._pg_idle = self._pg_idle, []
            self._pg_held -= len(kept)
            self._generation += 1
        for connection, _ in kept:
            with suppress(Exception):
                connection.invalidate()

    def dispose(self) -> None:
        """Close every pooled connection (at shutdown, or after a fork)."""
        if self._async_readers is not None:
            self._async_readers.close()
        self._drop_idle()
        self.engine.dispose()
        if self._reading.engine is not self.engine:
            # the threads' kept connections are closed with the pool
            self._reading.engine.dispose()


def first_in(
    session: Session, statement: Select[Any] | Update, params: Mapping[str, Any]
) -> Sequence[Any] | None:
    """The first row of ``statement`` (a Core SELECT or ``UPDATE … RETURNING`` built once, at
    import) in ``session``'s transaction, compiled once per dialect and run on the session's
    driver connection as :meth:`Database.first` runs its reads: for the refresher's lease
    statements, where SQLAlchemy's execution of a compiled statement cost more than the round
    trip. Errors are the driver's own, which :mod:`~authbridge.storage.faults` classifies as it
    does SQLAlchemy's."""
    connection = session.connection()
    read = _compiled(statement, connection.dialect)
    return read.first(connection.connection.driver_connection, params)


def _compiled(statement: Select[Any] | Update, dialect: Dialect) -> _DirectRead:
    """``statement`` compiled for ``dialect``, once per process."""
    key = (statement, dialect.name)
    read = _COMPILED.get(key)
    if read is None:
        read = _COMPILED[key] = _DirectRead(statement, dialect)
    return read


class _DirectRead:
    """A Core SELECT (or ``UPDATE … RETURNING``) compiled once, run straight on a driver
    connection (``sqlite3`` or ``psycopg``).

    Parameters and values go through the column types' own bind and result processors (UTC
    datetimes, enums), so rows come back as the same values a Core execution would return.
    """

    def __init__(self, statement: Select[Any] | Update, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        # sqlite3 takes parameters by position (qmark), psycopg by name (pyformat).
        self.positional = compiled.positiontup is not None
        binds = compiled.binds  # by the names the SQL uses (anonymous literals included)
        names = list(compiled.positiontup or []) if self.positional else list(binds)
        # (name, the statement's own value for a literal it holds, processor)
        self.params = [
            (
                name,
                binds[name].effective_value,
                binds[name].type.dialect_impl(dialect).bind_processor(dialect),
            )
            for name in names
        ]
        self._names = [name for name, _, _ in self.params]
        if isinstance(statement, Update):
            types = [column["type"] for column in statement.returning_column_descriptions]
        else:
            types = [column.type for column in statement.selected_columns]
        self.results = [
            column_type.dialect_impl(dialect).result_processor(dialect, None)
            for column_type in types
        ]

    def first(self, connection: Any, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """On a ``sqlite3`` or synchronous ``psycopg`` connection."""
        return self._row(connection.execute(self.sql, self._bind(params)).fetchone())

    async def first_async(
        self, connection: psycopg.AsyncConnection[Any], params: Mapping[str, Any]
    ) -> tuple[Any, ...] | None:
        """On an asynchronous ``psycopg`` connection."""
        cursor = await connection.execute(self.sql, self._bind(params))
        return self._row(await cursor.fetchone())

    def _bind(self, params: Mapping[str, Any]) -> Any:
        values = []
        for name, literal, process in self.params:
            value = params.get(name, literal)
            values.append(value if process is None else process(value))
        return values if self.positional else dict(zip(self._names, values, strict=True))

    def _row(self, row: Sequence[Any] | None) -> tuple[Any, ...] | None:
        if row is None:
            return None
        return tuple(
            value if process is None or value is None else process(value)
            for value, process in zip(row, self.results, strict=True)
        )


#: The statements :meth:`Database.first` and :func:`first_in` ran, compiled, by statement and
#: dialect name.
_COMPILED: dict[tuple[Select[Any] | Update, str], _DirectRead] = {}
