"""Barrier tests: what reaches the database is ciphertext bound to its row and column."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from authbridge.authentications.repository import AuthenticationRepository
from authbridge.connector_configs.repository import ConnectorConfigRepository
from authbridge.storage import Database
from authbridge.storage.models import Authentication, Environment
from authbridge.vault import DecryptionFailed, Keyring


def secret_value() -> str:
    return "plaintext-" + secrets.token_hex(16)


def create(database: Database, keyring: Keyring, environment: Environment, **secret: str) -> str:
    with database.session() as session:
        return (
            AuthenticationRepository(session, keyring)
            .create(
                environment_id=environment.id,
                end_user_id=None,
                connector_key="barrier-marker",
                connector_version="1",
                auth_type="pwd",
                name="barrier",
                credentials=secret,
                profile={"login": secret.get("password", "")},
            )
            .id
        )


def test_plaintext_never_reaches_the_database(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    password, client_secret = secret_value(), secret_value()
    create(database, keyring, environment, password=password)
    with database.session() as session:
        ConnectorConfigRepository(session, keyring).upsert(
            environment.id, "github", client_secret=client_secret
        )

    stored = sqlite_file_bytes(database) if database.is_sqlite else postgresql_row_bytes(database)
    assert b"barrier-marker" in stored  # the bytes searched are the stored rows
    for plaintext in (password, client_secret):
        assert plaintext.encode() not in stored
        assert plaintext.encode().hex().encode() not in stored


def sqlite_file_bytes(database: Database) -> bytes:
    """The database file and its write-ahead log, as they are on disk."""
    path = Path(str(database.url.database))
    files = (path, path.with_name(path.name + "-wal"))
    return b"".join(file.read_bytes() for file in files if file.exists())


def postgresql_row_bytes(database: Database) -> bytes:
    """Every row of the secret-holding tables: as text, and each bytea column raw."""
    stored = b""
    with database.session() as session:
        for table in ("authentications", "connector_configs"):
            stored += "".join(session.scalars(text(f"SELECT t::text FROM {table} t"))).encode()
        for row in (
            session.execute(text("SELECT credentials_ct, profile_ct FROM authentications")).all()
            + session.execute(text("SELECT secrets_ct, NULL FROM connector_configs")).all()
        ):
            stored += b"".join(bytes(value) for value in row if value is not None)
    return stored


def test_a_ciphertext_copied_into_another_row_fails_to_decrypt(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    first = create(database, keyring, environment, password=secret_value())
    second = create(database, keyring, environment, password=secret_value())
    with database.session() as session:
        stolen = session.scalars(
            select(Authentication.credentials_ct).where(Authentication.id == first)
        ).one()
        session.execute(
            update(Authentication).where(Authentication.id == second).values(credentials_ct=stolen)
        )

    with database.session() as session:
        repository = AuthenticationRepository(session, keyring)
        victim = repository.get_any(second)
        assert victim is not None
        with pytest.raises(DecryptionFailed):
            repository.credentials(victim)
        original = repository.get_any(first)
        assert original is not None
        assert repository.credentials(original)


def test_a_ciphertext_moved_to_another_column_fails_to_decrypt(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    auth_id = create(database, keyring, environment, password=secret_value())
    with database.session() as session:
        session.execute(
            update(Authentication)
            .where(Authentication.id == auth_id)
            .values(profile_ct=Authentication.credentials_ct)
        )

    with database.session() as session:
        repository = AuthenticationRepository(session, keyring)
        auth = repository.get_any(auth_id)
        assert auth is not None
        with pytest.raises(DecryptionFailed):
            repository.profile(auth)


def test_a_flipped_byte_fails_to_decrypt(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    auth_id = create(database, keyring, environment, password=secret_value())
    with database.session() as session:
        token = bytearray(
            session.scalars(
                select(Authentication.credentials_ct).where(Authentication.id == auth_id)
            ).one()
        )
        token[-20] ^= 0x01
        session.execute(
            update(Authentication)
            .where(Authentication.id == auth_id)
            .values(credentials_ct=bytes(token))
        )

    with database.session() as session:
        repository = AuthenticationRepository(session, keyring)
        auth = repository.get_any(auth_id)
        assert auth is not None
        with pytest.raises(DecryptionFailed):
            repository.credentials(auth)


def test_equal_credentials_give_different_ciphertexts(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    password = secret_value()
    create(database, keyring, environment, password=password)
    create(database, keyring, environment, password=password)

    with database.session() as session:
        tokens = session.scalars(select(Authentication.credentials_ct)).all()

    assert len(set(tokens)) == 2
