from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, InvalidRequestError

from authbridge.authentications.repository import AuthenticationRepository
from authbridge.authentications.rows import _READ_ROW, CredentialRow, read_credential_row
from authbridge.connect.repository import ConnectSessionRepository
from authbridge.errors import StaleAuthentication
from authbridge.refresh.repository import RefreshRepository
from authbridge.storage import Database
from authbridge.storage.models import (
    Authentication,
    AuthStatus,
    ConnectSession,
    EndUser,
    Environment,
    utcnow,
)
from authbridge.tenancy.repository import EndUserRepository, EnvironmentRepository
from authbridge.vault import Keyring
from tests.support.rows import set_status


def create(
    database: Database, keyring: Keyring, environment: Environment, **overrides: Any
) -> Authentication:
    fields: dict[str, Any] = {
        "environment_id": environment.id,
        "end_user_id": None,
        "connector_key": "freshdesk",
        "connector_version": "1.0.0",
        "auth_type": "api_key",
        "name": "Support desk",
        "credentials": {"apiKey": "fd-key-1"},
    } | overrides
    with database.session() as session:
        return AuthenticationRepository(session, keyring).create(**fields)


def test_create_then_get_returns_credentials_and_profile(
    database: Database, keyring: Keyring, environment: Environment, end_user: EndUser
) -> None:
    expires = utcnow() + timedelta(hours=1)
    auth = create(
        database,
        keyring,
        environment,
        end_user_id=end_user.id,
        profile={"email": "ada@example.com"},
        scopes=["read"],
        expires_at=expires,
    )

    with database.session() as session:
        repository = AuthenticationRepository(session, keyring)
        read = repository.get(environment.id, auth.id, now=utcnow())
        assert read is not None
        assert repository.credentials(read) == {"apiKey": "fd-key-1"}
        assert repository.profile(read) == {"email": "ada@example.com"}

    assert len(read.id) == 36
    assert (read.status, read.version, read.scopes) == (AuthStatus.ACTIVE, 1, ["read"])
    assert read.expires_at == expires
    assert read.end_user_id == end_user.id
    assert "fd-key-1" not in repr(read)


def test_a_shared_authentication_has_no_end_user_and_no_profile(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    auth = create(database, keyring, environment)

    with database.session() as session:
        assert AuthenticationRepository(session, keyring).profile(auth) is None
    assert auth.end_user_id is None


def test_get_is_scoped_to_the_environment(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    auth = create(database, keyring, environment)
    with database.session() as session:
        other = EnvironmentRepository(session, keyring).create("other")
        repository = AuthenticationRepository(session, keyring)

        assert repository.get(other.id, auth.id, now=utcnow()) is None
        assert repository.get(environment.id, auth.id, now=utcnow()) is not None


def test_update_credentials_keeps_the_id_and_bumps_the_version(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    auth = create(database, keyring, environment)
    with database.session() as session:
        repository = AuthenticationRepository(session, keyring)
        set_status(session, auth, AuthStatus.INVALID, last_error="401 from provider")
    due = utcnow() + timedelta(minutes=55)

    with database.session() as session:
        repository = AuthenticationRepository(session, keyring)
        updated = repository.update_credentials(
            auth, {"apiKey": "fd-key-2"}, refresh_due_at=due, profile={"name": "Desk"}
        )
    with database.session() as session:
        repository = AuthenticationRepository(session, keyring)
        read = repository.get(environment.id, auth.id, now=utcnow())
        assert read is not None
        assert repository.credentials(read) == {"apiKey": "fd-key-2"}
        assert repository.profile(read) == {"name": "Desk"}

    assert updated.id == auth.id
    assert (read.version, read.status, read.last_error) == (3, AuthStatus.ACTIVE, None)
    assert (read.name, read.refresh_due_at, read.expires_at) == ("Support desk", due, None)
    assert read.updated_at >= read.created_at


def test_update_with_a_stale_version_is_refused(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    auth = create(database, keyring, environment)
    with database.session() as session:
        AuthenticationRepository(session, keyring).rename(auth, "Renamed")

    with pytest.raises(StaleAuthentication), database.session() as session:
        AuthenticationRepository(session, keyring).update_credentials(
            auth, {"apiKey": "lost"}, expected_version=1
        )
    with database.session() as session:
        repository = AuthenticationRepository(session, keyring)
        updated = repository.update_credentials(auth, {"apiKey": "won"}, expected_version=2)
        assert repository.credentials(updated) == {"apiKey": "won"}
        assert updated.version == 3


def test_rename_and_a_status_change_bump_the_version(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    auth = create(database, keyring, environment)
    with database.session() as session:
        repository = AuthenticationRepository(session, keyring)
        repository.rename(auth, "New name")
        set_status(session, auth, AuthStatus.EXPIRED, last_error="token expired")

    with database.session() as session:
        read = session.get(Authentication, auth.id)
    assert read is not None
    assert (read.name, read.status, read.last_error, read.version) == (
        "New name",
        AuthStatus.EXPIRED,
        "token expired",
        3,
    )


def test_an_authentication_past_delete_at_is_no_longer_served(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    now = utcnow()
    auth = create(database, keyring, environment, delete_at=now + timedelta(minutes=5))

    with database.session() as session:
        repository = AuthenticationRepository(session, keyring)
        assert repository.get(environment.id, auth.id, now=now) is not None
        later = now + timedelta(minutes=5)
        assert repository.get(environment.id, auth.id, now=later) is None
        assert repository.list(environment.id, now=later).items == []
        assert repository.get_any(auth.id) is not None
        scans = RefreshRepository(session, keyring)
        assert scans.due_ids_for_deletion(later, limit=10) == [auth.id]


def test_due_for_refresh_lists_active_authentications_whose_refresh_is_due(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    now = utcnow()
    due = create(database, keyring, environment, refresh_due_at=now - timedelta(seconds=1))
    create(database, keyring, environment, refresh_due_at=now + timedelta(minutes=1))
    create(
        database,
        keyring,
        environment,
        refresh_due_at=now - timedelta(seconds=1),
        status=AuthStatus.INVALID,
    )

    with database.session() as session:
        found = RefreshRepository(session, keyring).due_ids_for_refresh(now, limit=10)

    assert found == [due.id]


def test_delete_removes_the_authentication_and_its_connect_sessions(
    database: Database, keyring: Keyring, environment: Environment, end_user: EndUser
) -> None:
    auth = create(database, keyring, environment, end_user_id=end_user.id)
    with database.session() as session:
        ConnectSessionRepository(session).create(
            environment_id=environment.id,
            end_user_id=end_user.id,
            connector_key="freshdesk",
            connector_version="1.0.0",
            authentication_id=auth.id,
        )

    with database.session() as session:
        assert AuthenticationRepository(session, keyring).delete(auth)
        assert not AuthenticationRepository(session, keyring).delete(auth)
    with database.session() as session:
        assert session.scalars(select(Authentication)).all() == []
        assert session.scalars(select(ConnectSession)).all() == []


def test_list_filters_by_end_user_connector_and_status(
    database: Database, keyring: Keyring, environment: Environment, end_user: EndUser
) -> None:
    with database.session() as session:
        bob = EndUserRepository(session).create(environment.id, "bob")
    mine = create(database, keyring, environment, end_user_id=end_user.id)
    mine_asana = create(
        database, keyring, environment, end_user_id=end_user.id, connector_key="asana"
    )
    bobs = create(database, keyring, environment, end_user_id=bob.id)
    invalid = create(database, keyring, environment, end_user_id=bob.id, status=AuthStatus.INVALID)

    def ids(**filters: Any) -> list[str]:
        with database.session() as session:
            page = AuthenticationRepository(session, keyring).list(
                environment.id, now=utcnow(), **filters
            )
        return [auth.id for auth in page.items]

    assert ids() == [mine.id, mine_asana.id, bobs.id, invalid.id]
    assert ids(end_user_id=end_user.id) == [mine.id, mine_asana.id]
    assert ids(connector_key="freshdesk") == [mine.id, bobs.id, invalid.id]
    assert ids(end_user_id=bob.id, status=AuthStatus.ACTIVE) == [bobs.id]
    assert ids(status=AuthStatus.INVALID) == [invalid.id]


def test_the_database_refuses_a_status_outside_the_allowed_values(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    auth = create(database, keyring, environment)

    with pytest.raises(IntegrityError), database.session() as session:
        session.execute(
            text("UPDATE authentications SET status = 'paused' WHERE id = :id"), {"id": auth.id}
        )


def test_relationships_are_never_loaded_behind_the_callers_back(
    database: Database, keyring: Keyring, environment: Environment, end_user: EndUser
) -> None:
    auth = create(database, keyring, environment, end_user_id=end_user.id)

    with database.session() as session:
        loaded = session.get(Authentication, auth.id)
        assert loaded is not None
        with pytest.raises(InvalidRequestError, match="lazy='raise'"):
            _ = loaded.end_user


@pytest.mark.parametrize("shape", ["full", "sparse"])
def test_the_lean_read_returns_what_a_core_execution_returns(
    database: Database, keyring: Keyring, environment: Environment, end_user: EndUser, shape: str
) -> None:
    # Database.first compiles the statement once and runs it on a raw sqlite3 connection: its
    # values (UTC datetimes, the status enum, NULLs, bytes) must be those SQLAlchemy returns.
    now = utcnow()
    if shape == "full":
        fields: dict[str, Any] = {
            "end_user_id": end_user.id,
            "status": AuthStatus.EXPIRED,
            "expires_at": now + timedelta(minutes=5),
            "refresh_due_at": now + timedelta(minutes=1),
            "delete_at": now + timedelta(days=1),
        }
    else:
        fields = {}
    auth = create(database, keyring, environment, **fields)
    params = {"auth_id": auth.id, "environment_id": environment.id}

    lean = database.first(_READ_ROW, params)
    with database.session(readonly=True) as session:
        core = session.execute(_READ_ROW, params).one()

    assert lean is not None
    assert tuple(lean) == tuple(core)
    assert [type(value) for value in lean] == [type(value) for value in core]

    # (each asyncio.run is a new event loop: on PostgreSQL, new connections for it)
    def served(environment_id: str, at: datetime) -> CredentialRow | None:
        return asyncio.run(read_credential_row(database, environment_id, auth.id, now=at))

    row = served(environment.id, now)
    assert row is not None
    assert row.credentials(keyring) == {"apiKey": "fd-key-1"}
    if shape == "full":
        assert row.status is AuthStatus.EXPIRED
        assert row.expires_at == fields["expires_at"]
        assert row.expires_at.utcoffset() == timedelta(0)
        later = now + timedelta(days=2)  # past delete_at: no longer served
        assert (
            asyncio.run(read_credential_row(database, environment.id, auth.id, now=later)) is None
        )
    assert asyncio.run(read_credential_row(database, "other-environment", auth.id, now=now)) is None
