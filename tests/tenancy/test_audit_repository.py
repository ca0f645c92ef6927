from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from authbridge.authentications.repository import AuthenticationRepository
from authbridge.storage import Database
from authbridge.storage.models import AuditEvent, Environment, MasterToken
from authbridge.tenancy.repository import (
    AuditEntry,
    AuditRepository,
    EnvironmentRepository,
    MasterTokenRepository,
)
from authbridge.vault import Keyring

API_KEY = "fd-live-9c1e5b2d7f3a"
#: Characters COPY's text format escapes.
NOTE = "tab\there, a new\nline, quote ' and \\ backslash, \\N"


def test_events_are_recorded_and_listed_per_environment_and_target(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    with database.session() as session:
        other = EnvironmentRepository(session, keyring).create("other")
        audit = AuditRepository(session)
        audit.record(
            environment_id=environment.id,
            actor="cli",
            action="authentication.created",
            target_type="authentication",
            target_id="a-1",
            detail={"connector": "freshdesk"},
        )
        audit.record(
            environment_id=environment.id,
            actor="user:u-1",
            action="authentication.credentials_read",
            target_type="authentication",
            target_id="a-2",
        )
        audit.record(
            environment_id=other.id,
            actor="cli",
            action="authentication.deleted",
            target_type="authentication",
            target_id="a-1",
        )

    with database.session() as session:
        audit = AuditRepository(session)
        everything = audit.list(environment.id).items
        about_a1 = audit.list(environment.id, target_type="authentication", target_id="a-1")
        reads = audit.list(environment.id, action="authentication.credentials_read")

    assert [event.action for event in everything] == [
        "authentication.created",
        "authentication.credentials_read",
    ]
    assert everything[0].detail == {"connector": "freshdesk"}
    assert [event.target_id for event in about_a1.items] == ["a-1"]
    assert [event.actor for event in reads.items] == ["user:u-1"]


@pytest.mark.parametrize(
    "detail",
    [
        {"password": "x"},
        {"changes": {"access_token": "x"}},
        {"items": [{"apiKey": "x"}]},
        {"client_secret": "x"},
        {"credentials": {"a": 1}},
    ],
)
def test_a_detail_named_like_a_secret_is_refused(
    database: Database, environment: Environment, detail: dict[str, object]
) -> None:
    with pytest.raises(ValueError, match="looks like a secret"), database.session() as session:
        AuditRepository(session).record(
            environment_id=environment.id,
            actor="cli",
            action="authentication.updated",
            target_type="authentication",
            target_id="a-1",
            detail=detail,
        )


def test_an_audited_credential_lifecycle_leaves_no_secret_in_the_log(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    with database.session() as session:
        issued = MasterTokenRepository(session).create(environment.id, "ops")
        actor = f"master:{issued.record.id}"
        auths, audit = AuthenticationRepository(session, keyring), AuditRepository(session)
        auth = auths.create(
            environment_id=environment.id,
            end_user_id=None,
            connector_key="freshdesk",
            connector_version="1",
            auth_type="api_key",
            name="desk",
            credentials={"apiKey": API_KEY},
        )
        for action, detail in [
            ("authentication.created", {"connector": "freshdesk", "fields": ["apiKey"]}),
            ("authentication.credentials_read", {"fields": list(auths.credentials(auth))}),
            ("authentication.updated", {"changed": ["credentials", "name"]}),
            ("authentication.deleted", {}),
        ]:
            audit.record(
                environment_id=environment.id,
                actor=actor,
                action=action,
                target_type="authentication",
                target_id=auth.id,
                detail=detail,
            )

    with database.session() as session:
        rows = session.execute(select(AuditEvent.__table__)).all()
        token_hash = session.scalars(select(MasterToken.token_hash)).one()

    assert len(rows) == 4
    logged = json.dumps([[str(value) for value in row] for row in rows])
    assert API_KEY not in logged
    assert issued.token not in logged
    assert token_hash not in logged
    assert actor in logged


def test_a_batch_is_stored_as_each_row_would_be(
    database: Database, environment: Environment
) -> None:
    # record_many writes a batch with one COPY on PostgreSQL and one INSERT on SQLite: the rows
    # must read back alike (aware UTC times, the detail as JSON, NULLs), and a rolled-back
    # transaction keeps none of them.
    at = datetime(2026, 12, 3, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    entries = [
        AuditEntry(
            environment_id=environment.id,
            actor="master:t-1",
            action="authentication.credentials_read",
            target_type="authentication",
            target_id=f"a-{number}" if number else None,
            at=at + timedelta(seconds=number),
            detail={"note": NOTE, "n": number} if number else None,
        )
        for number in range(3)
    ]
    with database.session() as session:
        assert AuditRepository(session).record_many(entries) == 3

    def rolled_back() -> None:
        with database.session() as session:
            AuditRepository(session).record_many(entries[:1])
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        rolled_back()

    with database.session() as session:
        rows = session.scalars(select(AuditEvent).order_by(AuditEvent.created_at)).all()
    assert [row.target_id for row in rows] == [None, "a-1", "a-2"]
    assert [row.created_at for row in rows] == [entry.at for entry in entries]
    assert all(row.created_at.utcoffset() == timedelta(0) for row in rows)
    assert rows[0].detail == {}
    assert rows[2].detail == {"note": NOTE, "n": 2}


def test_a_large_batch_is_stored_whole_with_ids_in_the_order_of_writing(
    database: Database, environment: Environment
) -> None:
    # More rows than one SQLite INSERT takes; the ids are time-ordered (UUIDv7), so that
    # appending events appends to the primary key's index.
    at = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    entries = [
        AuditEntry(
            environment_id=environment.id,
            actor="master:t-1",
            action="authentication.credentials_read",
            target_type="authentication",
            target_id=f"a-{number:04d}",
            at=at + timedelta(microseconds=number),
        )
        for number in range(1_201)
    ]
    with database.session() as session:
        assert AuditRepository(session).record_many(entries) == 1_201
    with database.session() as session:
        rows = session.execute(
            select(AuditEvent.id, AuditEvent.target_id).order_by(AuditEvent.created_at)
        ).all()
    assert [target for _, target in rows] == [entry.target_id for entry in entries]
    ids = [event_id for event_id, _ in rows]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(event_id[14] == "7" for event_id in ids)  # the UUID version
