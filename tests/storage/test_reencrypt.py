from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from authbridge.authentications.repository import AuthenticationRepository
from authbridge.connector_configs.repository import ConnectorConfigRepository
from authbridge.storage import Database
from authbridge.storage.crypto import ENCRYPTED_COLUMNS
from authbridge.storage.models import Authentication, Environment, metadata
from authbridge.storage.repositories import count_rows, pending_count, reencrypt_batch
from authbridge.storage.repositories import reencrypt as reencrypt_module
from authbridge.tenancy.repository import EnvironmentRepository
from authbridge.vault import KeyNotFound, Keyring


def seed(database: Database, keyring: Keyring, environment: Environment) -> list[str]:
    with database.session() as session:
        EnvironmentRepository(session, keyring).create("prod")
        configs = ConnectorConfigRepository(session, keyring)
        configs.upsert(environment.id, "github", client_secret="gh-secret")
        configs.upsert(environment.id, "trello", consumer_secret="tr-secret")
        repository = AuthenticationRepository(session, keyring)
        return [
            repository.create(
                environment_id=environment.id,
                end_user_id=None,
                connector_key="stripe",
                connector_version="1",
                auth_type="api_key",
                name=f"auth {n}",
                credentials={"apiKey": f"sk_{n}"},
                profile={"n": n} if n % 2 else None,
            ).id
            for n in range(7)
        ]


def stored_tokens(database: Database) -> Iterator[bytes]:
    with database.session() as session:
        for table, columns in ENCRYPTED_COLUMNS.items():
            sql_table = metadata.tables[table]
            for row in session.execute(select(*(sql_table.c[name] for name in columns))):
                yield from (bytes(token) for token in row if token is not None)


def rotate_all(database: Database, keyring: Keyring, batch_size: int) -> int:
    examined_total = 0
    for table in ENCRYPTED_COLUMNS:
        after_id = None
        while True:
            with database.session() as session:
                examined, after_id = reencrypt_batch(session, keyring, table, batch_size, after_id)
            examined_total += examined
            if after_id is None:
                break
    return examined_total


def test_rotation_moves_every_secret_to_the_new_primary_key(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    auth_ids = seed(database, keyring, environment)
    rotated, new_id = keyring.with_new_primary()
    with database.session() as session:
        total = sum(count_rows(session, table) for table in ENCRYPTED_COLUMNS)
        assert pending_count(session, rotated, "authentications") == 7

    assert rotate_all(database, rotated, batch_size=3) == total == 2 + 2 + 7

    assert {keyring.key_id_of(token) for token in stored_tokens(database)} == {new_id}
    only_new = Keyring({new_id: rotated.export_keys()[new_id]}, new_id)
    with database.session() as session:
        assert pending_count(session, rotated, "authentications") == 0
        repository = AuthenticationRepository(session, only_new)
        for n, auth_id in enumerate(auth_ids):
            auth = repository.get_any(auth_id)
            assert auth is not None
            assert repository.credentials(auth) == {"apiKey": f"sk_{n}"}
            assert repository.profile(auth) == ({"n": n} if n % 2 else None)
            assert auth.version == 1
        config = ConnectorConfigRepository(session, only_new).get(environment.id, "github")
        assert config is not None
        assert config.client_secret == "gh-secret"
        environments = EnvironmentRepository(session, only_new)
        assert all(len(environments.jwt_secret(env)) == 32 for env in environments.list())
        with pytest.raises(KeyNotFound):
            AuthenticationRepository(session, keyring).credentials(auth)


def test_running_again_rewrites_nothing(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    seed(database, keyring, environment)
    rotated, _ = keyring.with_new_primary()
    rotate_all(database, rotated, batch_size=100)
    before = sorted(stored_tokens(database))

    rotate_all(database, rotated, batch_size=100)

    assert sorted(stored_tokens(database)) == before


def test_a_value_written_meanwhile_is_not_overwritten(
    database: Database,
    keyring: Keyring,
    environment: Environment,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    auth_ids = seed(database, keyring, environment)
    rotated, _ = keyring.with_new_primary()
    real_reseal = reencrypt_module.reseal

    with database.session() as session:

        def reseal_while_a_refresh_writes(
            keyring: Keyring, table: str, column: str, row_id: str, token: bytes
        ) -> bytes | None:
            # A refresh stores new credentials between the batch's read and its write.
            if row_id == auth_ids[0] and column == "credentials_ct":
                auth = session.get(Authentication, row_id)
                assert auth is not None
                AuthenticationRepository(session, rotated).update_credentials(
                    auth, {"apiKey": "refreshed"}
                )
            return real_reseal(keyring, table, column, row_id, token)

        monkeypatch.setattr(reencrypt_module, "reseal", reseal_while_a_refresh_writes)
        examined, _ = reencrypt_batch(session, rotated, "authentications", 100, None)

    assert examined == 7
    with database.session() as session:
        repository = AuthenticationRepository(session, rotated)
        auth = repository.get_any(auth_ids[0])
        assert auth is not None
        assert repository.credentials(auth) == {"apiKey": "refreshed"}
