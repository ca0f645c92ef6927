"""``faults.classify`` on exceptions that real drivers raised, trouble and not trouble."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy import exc as sa_exc

from authbridge.errors import DatabaseUnavailable
from authbridge.storage import Database, default_url, faults

TABLE = "faults_probe"


def raised(action: Callable[[], object]) -> BaseException:
    try:
        action()
    except Exception as error:
        return error
    raise AssertionError("nothing was raised")


@pytest.fixture(scope="module")
def postgres_url(postgres_database: Database) -> Iterator[str]:
    """The session's PostgreSQL database, with a two-row table of this module's own."""
    url = postgres_database.url.render_as_string(hide_password=False)
    with postgres_database.engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE TABLE {TABLE} (id int PRIMARY KEY, n int)")
        connection.exec_driver_sql(f"INSERT INTO {TABLE} VALUES (1, 0), (2, 0)")
    try:
        yield url
    finally:
        with postgres_database.engine.begin() as connection:
            connection.exec_driver_sql(f"DROP TABLE {TABLE}")


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = create_engine(postgres_url, pool_size=2, max_overflow=0)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound on loopback where nothing listens: connecting to it is refused."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        yield closed.getsockname()[1]


class CuttableProxy:
    """A TCP relay to PostgreSQL whose connections the test can cut, as a network failure."""

    def __init__(self, port: int = 5432) -> None:
        self.target = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._relay, args=(source, sink), daemon=True).start()

    @staticmethod
    def _relay(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass

    def cut(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()
        self.cut()


@pytest.mark.postgres
def test_an_exhausted_pool_is_pool_exhausted(postgres_url: str) -> None:
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0, pool_timeout=0.05)
    try:
        with engine.connect():
            error = raised(engine.connect)
    finally:
        engine.dispose()
    assert isinstance(error, sa_exc.TimeoutError)
    assert faults.classify(error) == faults.POOL_EXHAUSTED


def test_an_exhausted_sqlite_pool_is_pool_exhausted(tmp_path: Path) -> None:
    engine = create_engine(default_url(tmp_path), pool_size=1, max_overflow=0, pool_timeout=0.05)
    try:
        with engine.connect():
            error = raised(engine.connect)
    finally:
        engine.dispose()
    assert faults.classify(error) == faults.POOL_EXHAUSTED


def test_a_refused_connection_is_unreachable(closed_port: int) -> None:
    engine = create_engine(f"postgresql+psycopg://someone:pw@127.0.0.1:{closed_port}/nothing")
    try:
        error = raised(engine.connect)
    finally:
        engine.dispose()
    assert isinstance(error, sa_exc.OperationalError)
    assert faults.classify(error) == faults.UNREACHABLE
    direct = raised(lambda: psycopg.connect(f"postgresql://127.0.0.1:{closed_port}/nothing"))
    assert faults.classify(direct) == faults.UNREACHABLE


@pytest.mark.postgres
def test_a_connection_cut_mid_query_is_connection_lost(postgres_url: str) -> None:
    proxy = CuttableProxy()
    engine = create_engine(postgres_url.replace(":5432/", f":{proxy.port}/"))
    try:
        with engine.connect() as connection:
            threading.Timer(0.2, proxy.cut).start()
            error = raised(lambda: connection.execute(text("SELECT pg_sleep(5)")))
    finally:
        engine.dispose()
        proxy.close()
    assert isinstance(error, sa_exc.OperationalError)
    assert isinstance(error.orig, psycopg.OperationalError)
    assert error.orig.sqlstate is None  # no answer from the server: libpq saw the socket close
    assert faults.classify(error) == faults.CONNECTION_LOST
    assert faults.classify(error.orig) == faults.CONNECTION_LOST


@pytest.mark.postgres
def test_a_terminated_backend_is_connection_lost(engine: Engine, postgres_url: str) -> None:
    with engine.connect() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        connection.commit()
        with psycopg.connect(postgres_url.replace("+psycopg", ""), autocommit=True) as outsider:
            outsider.execute("SELECT pg_terminate_backend(%s)", (pid,))
        time.sleep(0.1)
        error = raised(lambda: connection.execute(text("SELECT 1")))
    assert faults.classify(error) == faults.CONNECTION_LOST


def two_transactions(engine: Engine, isolation: str) -> tuple[Connection, Connection]:
    first = engine.connect().execution_options(isolation_level=isolation)
    second = engine.connect().execution_options(isolation_level=isolation)
    return first, second


@pytest.mark.postgres
def test_a_concurrent_update_is_a_serialization_failure(engine: Engine) -> None:
    first, second = two_transactions(engine, "REPEATABLE READ")
    try:
        first.execute(text(f"SELECT n FROM {TABLE}"))
        second.execute(text(f"SELECT n FROM {TABLE}"))
        first.execute(text(f"UPDATE {TABLE} SET n = n + 1 WHERE id = 1"))
        first.commit()
        error = raised(lambda: second.execute(text(f"UPDATE {TABLE} SET n = n + 1 WHERE id = 1")))
    finally:
        first.close()
        second.close()
    assert isinstance(error, sa_exc.OperationalError)
    assert isinstance(error.orig, psycopg.errors.SerializationFailure)
    assert faults.classify(error) == faults.SERIALIZATION_FAILURE
    assert faults.classify(error.orig) == faults.SERIALIZATION_FAILURE


@pytest.mark.postgres
def test_two_transactions_locking_in_opposite_orders_are_a_deadlock(engine: Engine) -> None:
    first, second = two_transactions(engine, "READ COMMITTED")
    errors: list[BaseException] = []

    def update(connection: Connection, row: int) -> None:
        try:
            connection.execute(text(f"UPDATE {TABLE} SET n = n + 1 WHERE id = {row}"))
        except sa_exc.DBAPIError as error:
            errors.append(error)

    try:
        update(first, 1)
        update(second, 2)
        crossing = threading.Thread(target=update, args=(second, 1))
        crossing.start()
        time.sleep(0.2)
        update(first, 2)
        crossing.join()
    finally:
        first.close()
        second.close()
    assert len(errors) == 1, errors  # PostgreSQL chose one victim; the other went through
    assert faults.classify(errors[0]) == faults.DEADLOCK


@pytest.mark.postgres
def test_a_statement_timeout_is_timed_out(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SET LOCAL statement_timeout = 20"))
        error = raised(lambda: connection.execute(text("SELECT pg_sleep(2)")))
    assert faults.classify(error) == faults.TIMED_OUT


@pytest.mark.postgres
def test_constraint_and_programming_errors_are_not_trouble(engine: Engine) -> None:
    with engine.connect() as connection:
        duplicate = raised(lambda: connection.execute(text(f"INSERT INTO {TABLE} VALUES (1, 0)")))
        connection.rollback()
        missing = raised(lambda: connection.execute(text("SELECT * FROM no_such_table")))
        connection.rollback()
        bad_value = raised(lambda: connection.execute(text("SELECT 'x'::int")))
        connection.rollback()
    assert isinstance(duplicate, sa_exc.IntegrityError)
    assert isinstance(missing, sa_exc.ProgrammingError)
    assert isinstance(bad_value, sa_exc.DataError)
    for error in (duplicate, missing, bad_value):
        assert faults.classify(error) is None
        assert faults.unavailable(error) is None
    assert "already exists" not in faults.describe(duplicate)  # the text may quote values
    assert faults.describe(duplicate) == (
        "IntegrityError / psycopg.errors.UniqueViolation / SQLSTATE 23505"
    )


def test_a_locked_sqlite_database_is_locked(tmp_path: Path) -> None:
    database = Database(default_url(tmp_path), sqlite_busy_timeout_ms=50)
    with database.session() as session:  # the file is made in WAL mode, as authbridge runs it
        session.execute(text("CREATE TABLE t (n int)"))
    other = sqlite3.connect(tmp_path / "authbridge.db", isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        other.execute("INSERT INTO t VALUES (1)")

        def write() -> None:
            with database.session() as session:
                session.execute(text("INSERT INTO t VALUES (2)"))

        error = raised(write)
    finally:
        other.close()
        database.dispose()
    assert isinstance(error, sa_exc.OperationalError)
    assert faults.classify(error) == faults.LOCKED
    assert faults.describe(error) == "OperationalError / sqlite3.OperationalError / SQLITE_BUSY"


def test_sqlite_errors_that_are_bugs_are_not_trouble(tmp_path: Path) -> None:
    database = Database(default_url(tmp_path))
    try:
        with database.session() as session:
            missing = raised(lambda: session.execute(text("SELECT * FROM no_such_table")))
    finally:
        database.dispose()
    assert isinstance(missing, sa_exc.OperationalError)  # sqlite3 calls this operational too
    assert faults.classify(missing) is None
    closed = sqlite3.connect(":memory:")
    closed.close()
    assert faults.classify(raised(lambda: closed.execute("SELECT 1"))) is None
    assert faults.classify(ValueError("not a database error")) is None


def test_unavailable_says_what_to_show_and_how_long_to_wait(tmp_path: Path) -> None:
    engine = create_engine(default_url(tmp_path), pool_size=1, max_overflow=0, pool_timeout=0.05)
    try:
        with engine.connect():
            error = faults.unavailable(raised(engine.connect))
    finally:
        engine.dispose()
    assert isinstance(error, DatabaseUnavailable)
    assert (error.status, error.code, error.kind, error.retry_after) == (
        503,
        "database_unavailable",
        "pool_exhausted",
        1,
    )
    assert error.message == "every database connection of this server is in use; try again in 1 s"
    assert error.cause == "TimeoutError"
