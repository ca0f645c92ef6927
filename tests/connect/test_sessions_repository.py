from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlalchemy import select

from authbridge.connect.repository import ConnectSessionRepository
from authbridge.connect.repository.sessions import IssuedConnectSession
from authbridge.storage import Database
from authbridge.storage.models import ConnectSession, EndUser, Environment, utcnow


def open_session(
    database: Database, environment: Environment, end_user: EndUser, **options: object
) -> IssuedConnectSession:
    with database.session() as session:
        return ConnectSessionRepository(session).create(
            environment_id=environment.id,
            end_user_id=end_user.id,
            connector_key="freshdesk",
            connector_version="1.0.0",
            origin="https://host.example",
            options={"skip_title_field": True, "skip_auth_settings": False},
            **options,  # type: ignore[arg-type]
        )


def consume(database: Database, code: str) -> ConnectSession | None:
    with database.session() as session:
        return ConnectSessionRepository(session).consume(code, now=utcnow())


def test_only_the_hash_of_the_code_is_stored(
    database: Database, environment: Environment, end_user: EndUser
) -> None:
    issued = open_session(database, environment, end_user)

    with database.session() as session:
        row = session.execute(select(ConnectSession.__table__)).one()

    assert len(issued.code) >= 43
    assert issued.code not in " ".join(str(value) for value in row)
    assert issued.code not in repr(issued)
    assert row.expires_at - row.created_at == timedelta(minutes=10)
    assert row.options == {"skip_title_field": True, "skip_auth_settings": False}


def test_a_code_is_used_once(
    database: Database, environment: Environment, end_user: EndUser
) -> None:
    issued = open_session(database, environment, end_user)

    with database.session() as session:
        assert ConnectSessionRepository(session).get_valid(issued.code, now=utcnow())
    first = consume(database, issued.code)
    second = consume(database, issued.code)

    assert first is not None
    assert first.id == issued.record.id
    assert first.used_at is not None
    assert second is None
    with database.session() as session:
        assert ConnectSessionRepository(session).get_valid(issued.code, now=utcnow()) is None


def test_an_expired_or_unknown_code_is_refused(
    database: Database, environment: Environment, end_user: EndUser
) -> None:
    issued = open_session(database, environment, end_user, ttl=timedelta(minutes=10))

    with database.session() as session:
        sessions = ConnectSessionRepository(session)
        later = utcnow() + timedelta(minutes=10, seconds=1)
        assert sessions.consume(issued.code, now=later) is None
        assert sessions.consume("not-a-code", now=utcnow()) is None
        assert sessions.delete_expired(later) == 1


def test_of_two_racing_consumers_exactly_one_wins(
    database: Database, environment: Environment, end_user: EndUser
) -> None:
    codes = [open_session(database, environment, end_user).code for _ in range(5)]
    for code in codes:
        start = threading.Barrier(2)
        results: list[ConnectSession | None] = []

        def racer(
            code: str = code,
            start: threading.Barrier = start,
            results: list[ConnectSession | None] = results,
        ) -> None:
            start.wait()
            results.append(consume(database, code))

        threads = [threading.Thread(target=racer) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sorted(result is None for result in results) == [False, True]


def test_a_consumer_waits_for_an_open_transaction_that_used_the_code(
    database: Database, environment: Environment, end_user: EndUser
) -> None:
    code = open_session(database, environment, end_user).code
    used = threading.Event()
    results: list[ConnectSession | None] = []

    def second_consumer() -> None:
        used.wait()
        results.append(consume(database, code))

    thread = threading.Thread(target=second_consumer)
    thread.start()
    with database.session() as session:
        first = ConnectSessionRepository(session).consume(code, now=utcnow())
        used.set()
        time.sleep(0.2)  # the second consumer is now blocked on our uncommitted use
    thread.join()

    assert first is not None
    assert results == [None]
