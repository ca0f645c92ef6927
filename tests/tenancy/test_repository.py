from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from authbridge import errors
from authbridge.storage import Database
from authbridge.storage.models import EndUser, Environment, MasterToken, utcnow
from authbridge.tenancy.repository import (
    EndUserRepository,
    EnvironmentRepository,
    JwtKeyRepository,
    MasterTokenRepository,
)
from authbridge.vault import Keyring


def test_get_or_create_returns_one_default_environment(
    database: Database, keyring: Keyring
) -> None:
    with database.session() as session:
        first = EnvironmentRepository(session, keyring).get_or_create()
    with database.session() as session:
        second = EnvironmentRepository(session, keyring).get_or_create()
        names = session.scalars(select(Environment.name)).all()

    assert first.id == second.id
    assert first.name == "default"
    assert names == ["default"]


def test_environment_names_are_unique(database: Database, keyring: Keyring) -> None:
    with database.session() as session:
        EnvironmentRepository(session, keyring).create("prod")

    with pytest.raises(IntegrityError), database.session() as session:
        EnvironmentRepository(session, keyring).create("prod")


def test_environment_jwt_secret_is_random_and_encrypted(
    database: Database, keyring: Keyring
) -> None:
    with database.session() as session:
        repository = EnvironmentRepository(session, keyring)
        dev, prod = repository.create("dev"), repository.create("prod")
        dev_secret, prod_secret = repository.jwt_secret(dev), repository.jwt_secret(prod)

    assert len(dev_secret) == 32
    assert dev_secret != prod_secret
    assert dev_secret not in dev.jwt_secret_ct
    assert keyring.key_id_of(dev.jwt_secret_ct) == keyring.primary


def test_external_user_id_is_unique_per_environment_only(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    with database.session() as session:
        other = EnvironmentRepository(session, keyring).create("other")
        users = EndUserRepository(session)
        users.create(environment.id, "u-1")
        users.create(other.id, "u-1")

    with (
        pytest.raises(errors.Conflict, match="'u-1' already exists"),
        database.session() as session,
    ):
        EndUserRepository(session).create(environment.id, "u-1")


def test_end_user_get_or_create_creates_on_first_sight_only(
    database: Database, environment: Environment
) -> None:
    with database.session() as session:
        created = EndUserRepository(session).get_or_create(environment.id, "u-9", name="Grace")
    with database.session() as session:
        users = EndUserRepository(session)
        again = users.get_or_create(environment.id, "u-9", name="ignored")
        found = users.get_by_external_id(environment.id, "u-9")
        count = len(session.scalars(select(EndUser)).all())

    assert again.id == created.id == (found.id if found else None)
    assert again.name == "Grace"
    assert count == 1


def test_end_users_are_scoped_to_their_environment(
    database: Database, keyring: Keyring, environment: Environment, end_user: EndUser
) -> None:
    with database.session() as session:
        other = EnvironmentRepository(session, keyring).create("other")
        users = EndUserRepository(session)

        assert users.get(environment.id, end_user.id) is not None
        assert users.get(other.id, end_user.id) is None
        assert users.get_by_external_id(other.id, end_user.external_user_id) is None


def test_end_users_list_in_pages(database: Database, environment: Environment) -> None:
    with database.session() as session:
        users = EndUserRepository(session)
        created = [users.create(environment.id, f"u-{n}").id for n in range(5)]

    seen: list[str] = []
    cursor = None
    with database.session() as session:
        while True:
            page = EndUserRepository(session).list(environment.id, limit=2, cursor=cursor)
            seen += [user.id for user in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor

    assert seen == created


def test_master_token_is_shown_once_and_stored_only_as_a_hash(
    database: Database, environment: Environment
) -> None:
    with database.session() as session:
        issued = MasterTokenRepository(session).create(environment.id, "ci")

    assert re.fullmatch(r"abk_[A-Za-z0-9_-]{43}", issued.token)
    assert issued.token not in repr(issued)
    with database.session() as session:
        row = session.execute(select(MasterToken.__table__)).one()
    stored = " ".join(str(value) for value in row)
    assert issued.token not in stored
    assert issued.token[4:] not in stored
    assert row.prefix == issued.token[:8]
    assert len(row.token_hash) == 64


def test_master_token_verifies_until_revoked(database: Database, environment: Environment) -> None:
    with database.session() as session:
        issued = MasterTokenRepository(session).create(environment.id, "ci")

    with database.session() as session:
        tokens = MasterTokenRepository(session)
        verified = tokens.verify(issued.token)
        assert verified is not None
        assert verified.id == issued.record.id
        assert tokens.verify(issued.token + "x") is None
        assert tokens.verify(issued.token[:-1]) is None
        assert tokens.verify(issued.token.replace("abk_", "xyz_")) is None
        assert tokens.revoke(environment.id, issued.record.id)
        assert not tokens.revoke(environment.id, issued.record.id)

    with database.session() as session:
        tokens = MasterTokenRepository(session)
        assert tokens.verify(issued.token) is None
        assert tokens.list(environment.id) == []
        assert [t.id for t in tokens.list(environment.id, include_revoked=True)] == [
            issued.record.id
        ]


def test_master_token_revocation_is_scoped_to_its_environment(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    with database.session() as session:
        other = EnvironmentRepository(session, keyring).create("other")
        issued = MasterTokenRepository(session).create(environment.id, "ci")

    with database.session() as session:
        assert not MasterTokenRepository(session).revoke(other.id, issued.record.id)
        assert MasterTokenRepository(session).verify(issued.token) is not None


def test_master_token_last_use_is_written_at_most_once_a_minute(
    database: Database, environment: Environment
) -> None:
    now = utcnow()
    with database.session() as session:
        issued = MasterTokenRepository(session).create(environment.id, "ci")

    with database.session() as session:
        tokens = MasterTokenRepository(session)
        token = tokens.verify(issued.token)
        assert token is not None
        tokens.record_use(token, now)
        tokens.record_use(token, now + timedelta(seconds=30))
    with database.session() as session:
        assert session.scalars(select(MasterToken.last_used_at)).one() == now

    with database.session() as session:
        tokens = MasterTokenRepository(session)
        token = tokens.verify(issued.token)
        assert token is not None
        tokens.record_use(token, now + timedelta(minutes=2))
    with database.session() as session:
        assert session.scalars(select(MasterToken.last_used_at)).one() == now + timedelta(minutes=2)


def test_jwt_key_ids_are_unique_per_environment(
    database: Database, environment: Environment
) -> None:
    pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"
    with database.session() as session:
        keys = JwtKeyRepository(session)
        keys.add(environment.id, "k1", "EdDSA", pem)
        keys.add(environment.id, "k2", "ES256", pem)
        found = keys.get(environment.id, "k1")
        assert found is not None
        assert found.public_key_pem == pem
        assert [key.kid for key in keys.list(environment.id)] == ["k1", "k2"]

    with database.session() as session:
        with pytest.raises(errors.Conflict, match="'k1' is already registered"):
            JwtKeyRepository(session).add(environment.id, "k1", "RS256", pem)
        JwtKeyRepository(session).add(environment.id, "k3", "RS256", pem)  # the rest goes on

    with database.session() as session:
        assert JwtKeyRepository(session).delete(environment.id, "k1")
        assert JwtKeyRepository(session).get(environment.id, "k1") is None
        assert [key.kid for key in JwtKeyRepository(session).list(environment.id)] == ["k2", "k3"]


def test_rotating_the_jwt_secret_replaces_it_with_a_fresh_encrypted_one(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    with database.session() as session:
        repository = EnvironmentRepository(session, keyring)
        row = repository.get(environment.id)
        assert row is not None
        old = repository.jwt_secret(row)
        new = repository.rotate_jwt_secret(row)
        assert len(new) == 32
        assert new != old
    with database.session() as session:
        repository = EnvironmentRepository(session, keyring)
        stored = repository.get(environment.id)
        assert stored is not None
        assert repository.jwt_secret(stored) == new
        assert new not in stored.jwt_secret_ct
