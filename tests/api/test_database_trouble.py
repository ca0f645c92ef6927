"""Database trouble is a 503 with ``Retry-After`` and one log line; bugs stay a 500.

Each case brings about the trouble for real: a pool whose one connection the test holds, a
PostgreSQL port where nothing listens, a SQLite file another connection holds locked, and
triggers that make PostgreSQL fail an update the way a concurrent transaction or a killed
backend would. After each, the stored authentication is still there, unchanged.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from sqlalchemy import text

from authbridge.api import create_app, problems
from authbridge.connect import service as connect_service
from authbridge.storage import Database
from authbridge.tenancy.repository import EnvironmentRepository, MasterTokenRepository
from authbridge.vault import Keyring
from tests.support import raw_http
from tests.support.api_calls import assert_problem, import_key
from tests.support.app import Api, make_bridge
from tests.support.loopback import serve

on_postgresql = pytest.mark.parametrize(
    "database", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
on_sqlite = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


class ServerLogs:
    """What the app and uvicorn log while a test runs (uvicorn's loggers do not propagate)."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.uvicorn = logging.getLogger("uvicorn")

    def start(self) -> None:
        """Forget what was logged so far; capture uvicorn's lines too (call once it serves)."""
        self.caplog.clear()
        if self.caplog.handler not in self.uvicorn.handlers:
            self.uvicorn.addHandler(self.caplog.handler)

    def stop(self) -> None:
        self.uvicorn.removeHandler(self.caplog.handler)

    @property
    def records(self) -> list[logging.LogRecord]:
        return list(self.caplog.records)

    def assert_one_line(self, kind: str) -> logging.LogRecord:
        """Exactly one warning-or-worse line, naming ``kind``; no traceback anywhere."""
        lines = [record for record in self.records if record.levelno >= logging.WARNING]
        assert len(lines) == 1, [f"{r.name}: {r.getMessage()}" for r in lines]
        (line,) = lines
        assert line.name == "authbridge.api"
        assert kind in line.getMessage()
        self.assert_no_traceback()
        return line

    def assert_no_traceback(self) -> None:
        assert [r.getMessage() for r in self.records if r.exc_info or r.exc_text] == []
        assert "Traceback" not in self.caplog.text


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[ServerLogs]:
    watched = ServerLogs(caplog)
    try:
        yield watched
    finally:
        watched.stop()


@contextmanager
def running(database: Database, connectors: Path, *, with_token: bool = True) -> Iterator[Api]:
    """The app over ``database`` (which the test configured), as the ``api`` fixture runs it."""
    keyring = Keyring.generate()
    bridge = make_bridge(database, keyring, connectors)
    token, environment_id = "abk_no_database_to_check_it", ""
    if with_token:
        with database.session() as session:
            environment = EnvironmentRepository(session, keyring).get_or_create()
            token = MasterTokenRepository(session).create(environment.id, "tests").token
            environment_id = environment.id
    with serve(create_app(bridge), lifespan="on") as url:
        bridge.public_url = url
        yield Api(url=url, bridge=bridge, master_token=token, environment_id=environment_id)


def assert_unavailable(response: httpx.Response, retry_after: int = 1) -> None:
    problem = assert_problem(response, 503, "database_unavailable")
    assert response.headers["retry-after"] == str(retry_after)
    assert problem["retry_after"] == retry_after
    assert "Traceback" not in response.text


def rename(api: Api, auth_id: str, name: str) -> httpx.Response:
    return api.call("PATCH", f"/v1/authentications/{auth_id}", json={"name": name})


def stored_name(api: Api, auth_id: str) -> str:
    response = api.call("GET", f"/v1/authentications/{auth_id}")
    assert response.status_code == 200, response.text
    name: str = response.json()["name"]
    return name


@contextmanager
def one_connection(database: Database) -> Iterator[Database]:
    """The test's PostgreSQL behind a pool of one connection that gives up after 0.3 s."""
    url = database.url.render_as_string(hide_password=False)
    small = Database(url, pool_size=1, max_overflow=0, pool_timeout=0.3)
    try:
        yield small
    finally:
        small.dispose()


@contextmanager
def held(database: Database) -> Iterator[None]:
    """The pool's one connection, taken (and used, so that it is checked out for real)."""
    with database.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        yield


@on_postgresql
def test_an_exhausted_pool_is_a_quick_503(
    database: Database, api_connectors: Path, logs: ServerLogs
) -> None:
    with one_connection(database) as small, running(small, api_connectors) as api:
        created = import_key(api)
        logs.start()
        with held(small):
            response = api.call("GET", f"/v1/authentications/{created['id']}")
        assert_unavailable(response)
        assert response.elapsed.total_seconds() < 3
        line = logs.assert_one_line("pool_exhausted")
        assert line.levelno == logging.WARNING
        assert stored_name(api, created["id"]) == created["name"]


def test_a_refused_connection_is_a_503_that_does_not_show_the_url(
    api_connectors: Path, logs: ServerLogs
) -> None:
    with socket.socket() as closed:  # bound but not listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        password = "pw-never-shown-4242"
        nowhere = Database(f"postgresql://authbridge:{password}@127.0.0.1:{port}/authbridge")
        try:
            with running(nowhere, api_connectors, with_token=False) as api:
                logs.start()
                response = api.call("GET", "/v1/authentications")
                assert api.call("GET", "/healthz").status_code == 200
        finally:
            nowhere.dispose()
    assert_unavailable(response, retry_after=5)
    logs.assert_one_line("unreachable")
    assert password not in response.text
    assert password not in logs.caplog.text
    assert str(port) not in response.text


def test_a_body_whose_token_cannot_be_checked_is_a_503_before_it_is_read(
    api_connectors: Path, logs: ServerLogs
) -> None:
    with socket.socket() as closed:  # bound but not listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        nowhere = Database(f"postgresql://authbridge@127.0.0.1:{port}/authbridge")
        try:
            with running(nowhere, api_connectors, with_token=False) as api:
                logs.start()
                headers = {
                    "Authorization": f"Bearer {api.master_token}",
                    "Content-Type": "application/json",
                    "Content-Length": "1000",
                }
                with raw_http.connect(api.url) as sock:
                    sock.sendall(raw_http.head("POST", "/v1/master-tokens", headers))
                    answer = raw_http.read_response(sock, timeout=10)  # no body is sent
        finally:
            nowhere.dispose()
    assert answer.status == 503, answer.text
    assert answer.headers["retry-after"] == "5"
    assert answer.headers["content-type"] == "application/problem+json"
    logs.assert_one_line("unreachable")


@on_sqlite
def test_a_locked_sqlite_database_is_a_503(
    database: Database, api_connectors: Path, logs: ServerLogs
) -> None:
    impatient = Database(str(database.url), sqlite_busy_timeout_ms=100)
    try:
        with running(impatient, api_connectors) as api:
            created = import_key(api)
            logs.start()
            other = sqlite3.connect(str(database.url.database), isolation_level=None)
            try:
                other.execute("BEGIN EXCLUSIVE")
                other.execute("UPDATE authentications SET name = name")
                response = rename(api, created["id"], "renamed while locked")
                other.execute("ROLLBACK")
            finally:
                other.close()
            assert_unavailable(response)
            logs.assert_one_line("locked")
            assert stored_name(api, created["id"]) == created["name"]
            assert rename(api, created["id"], "renamed").status_code == 200
            assert stored_name(api, created["id"]) == "renamed"
    finally:
        impatient.dispose()


@contextmanager
def failing_updates(database: Database, body: str) -> Iterator[None]:
    """A trigger that runs ``body`` (PL/pgSQL) before every update of an authentication."""
    with database.engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE FUNCTION authbridge_test_fail() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {body}; RETURN NEW; END $$"
        )
        connection.exec_driver_sql(
            "CREATE TRIGGER authbridge_test_fail BEFORE UPDATE ON authentications "
            "FOR EACH ROW EXECUTE FUNCTION authbridge_test_fail()"
        )
    try:
        yield
    finally:
        with database.engine.begin() as connection:
            connection.exec_driver_sql("DROP TRIGGER authbridge_test_fail ON authentications")
            connection.exec_driver_sql("DROP FUNCTION authbridge_test_fail()")


@on_postgresql
@pytest.mark.parametrize(
    ("sqlstate", "kind"), [("40001", "serialization_failure"), ("40P01", "deadlock")]
)
def test_a_serialization_failure_or_deadlock_is_a_503(
    api: Api, database: Database, logs: ServerLogs, sqlstate: str, kind: str
) -> None:
    created = import_key(api)
    raising = f"RAISE EXCEPTION 'concurrent change' USING ERRCODE = '{sqlstate}'"
    with failing_updates(database, raising):
        logs.start()
        response = rename(api, created["id"], "renamed")
        assert_unavailable(response)
        logs.assert_one_line(kind)
        assert f"SQLSTATE {sqlstate}" in logs.caplog.text
    assert stored_name(api, created["id"]) == created["name"]
    assert rename(api, created["id"], "renamed").status_code == 200


@on_postgresql
def test_a_connection_lost_mid_query_is_a_503(
    api: Api, database: Database, logs: ServerLogs
) -> None:
    created = import_key(api)
    with failing_updates(database, "PERFORM pg_terminate_backend(pg_backend_pid())"):
        logs.start()
        response = rename(api, created["id"], "renamed")
        assert_unavailable(response)
        logs.assert_one_line("connection_lost")
    assert stored_name(api, created["id"]) == created["name"]
    assert rename(api, created["id"], "renamed").status_code == 200


@on_postgresql
def test_connections_the_server_dropped_while_idle_are_replaced(
    api: Api, database: Database, logs: ServerLogs
) -> None:
    created = import_key(api)
    url = database.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as outsider:
        killed = outsider.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert killed is not None
    (killed,) = killed
    assert killed >= 1
    logs.start()
    assert stored_name(api, created["id"]) == created["name"]  # pool_pre_ping reconnects
    assert [r for r in logs.records if r.levelno >= logging.WARNING] == []


@on_postgresql
def test_other_database_errors_are_a_500_logged_once_with_a_traceback(
    api: Api, database: Database, logs: ServerLogs
) -> None:
    created = import_key(api)
    raising = "RAISE EXCEPTION 'secret-ish value 4242' USING ERRCODE = '22023'"
    with failing_updates(database, raising):
        logs.start()
        response = rename(api, created["id"], "renamed")
    problem = assert_problem(response, 500, "internal_error")
    assert "4242" not in response.text
    assert "Traceback" not in problem["detail"]
    failures = [record for record in logs.records if record.exc_info]
    assert [(r.name, r.getMessage()) for r in failures] == [("authbridge.api", "unexpected error")]
    assert [r for r in logs.records if r.name.startswith("uvicorn")] == []


def test_an_unexpected_error_is_logged_once(api: Api, logs: ServerLogs) -> None:
    class Broken:
        def __iter__(self) -> Iterator[object]:
            raise RuntimeError("a bug")

    api.bridge.registry = Broken()  # type: ignore[assignment]
    logs.start()
    assert_problem(api.call("GET", "/v1/connectors"), 500, "internal_error")
    failures = [record for record in logs.records if record.exc_info]
    assert [(r.name, r.getMessage()) for r in failures] == [("authbridge.api", "unexpected error")]
    assert [r for r in logs.records if r.name.startswith("uvicorn")] == []


def test_an_error_after_the_response_started_is_logged_once_and_cuts_the_response(
    logs: ServerLogs,
) -> None:
    app = FastAPI()
    problems.install(app)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"first part"
        raise RuntimeError("a bug halfway")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(chunks())

    with serve(app) as url:
        logs.start()
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(f"{url}/stream", timeout=10)
    failures = [record for record in logs.records if record.exc_info]
    assert [(r.name, r.getMessage()) for r in failures] == [("authbridge.api", "unexpected error")]
    # uvicorn says, without a traceback, why it closed the connection
    assert [r.getMessage() for r in logs.records if r.name.startswith("uvicorn")] == [
        "ASGI callable returned without completing response."
    ]


def open_connect_page(api: Api) -> str:
    body = {"external_user_id": "user-1", "connector": "sandbox-apikey"}
    response = api.call("POST", "/v1/connect/sessions", json=body)
    assert response.status_code == 201, response.text
    url: str = response.json()["url"]
    return url


@on_postgresql
def test_a_page_in_database_trouble_is_a_503_page_with_retry_after(
    database: Database, api_connectors: Path, logs: ServerLogs
) -> None:
    with one_connection(database) as small, running(small, api_connectors) as api:
        page = open_connect_page(api)
        logs.start()
        with held(small):
            response = httpx.get(page)
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.headers["content-type"].startswith("text/html")
        assert "Traceback" not in response.text
        lines = [r for r in logs.records if r.levelno >= logging.WARNING]
        assert [(r.name, r.levelno) for r in lines] == [
            ("authbridge.connect.pages", logging.WARNING)
        ]
        assert "pool_exhausted" in lines[0].getMessage()
        logs.assert_no_traceback()
        assert httpx.get(page).status_code == 200  # the link is still good


def test_a_bug_behind_a_page_is_a_500_page_logged_once(
    api: Api, logs: ServerLogs, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = open_connect_page(api)

    def broken(*_args: object) -> None:
        raise RuntimeError("a bug 4242")

    monkeypatch.setattr(connect_service, "load_page", broken)
    logs.start()
    response = httpx.get(page)
    assert response.status_code == 500, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "4242" not in response.text
    assert "Traceback" not in response.text
    failures = [record for record in logs.records if record.exc_info]
    assert [(r.name, r.getMessage()) for r in failures] == [
        ("authbridge.connect.pages", "page failed unexpectedly")
    ]
    assert [r for r in logs.records if r.name.startswith("uvicorn")] == []
