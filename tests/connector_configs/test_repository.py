from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from authbridge.connector_configs.repository import ConnectorConfigRepository
from authbridge.storage import Database
from authbridge.storage.models import ConnectorConfig, Environment
from authbridge.tenancy.repository import EnvironmentRepository
from authbridge.vault import Keyring

CLIENT_SECRET = "cs-5b1e7d0f9a3c2e8b"
SHARED_SECRET = "shared-7d4f0c9e1b2a"


def test_upsert_stores_secrets_encrypted_and_get_decrypts_them(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    with database.session() as session:
        ConnectorConfigRepository(session, keyring).upsert(
            environment.id,
            "github",
            client_id="Iv1.abc",
            client_secret=CLIENT_SECRET,
            scopes=["repo", "user"],
            settings={"webhook_secret": SHARED_SECRET},
        )

    with database.session() as session:
        row = session.scalars(select(ConnectorConfig)).one()
        settings = ConnectorConfigRepository(session, keyring).get(environment.id, "github")

    assert CLIENT_SECRET.encode() not in row.secrets_ct
    assert settings is not None
    assert settings.client_id == "Iv1.abc"
    assert settings.client_secret == CLIENT_SECRET
    assert settings.consumer_secret is None
    assert settings.scopes == ("repo", "user")
    assert settings.settings == {"webhook_secret": SHARED_SECRET}
    assert CLIENT_SECRET not in repr(settings)
    assert SHARED_SECRET not in repr(settings)


def test_upsert_replaces_the_configuration_in_place(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    with database.session() as session:
        first = ConnectorConfigRepository(session, keyring).upsert(
            environment.id, "trello", consumer_key="ck", consumer_secret="old-secret"
        )
    with database.session() as session:
        second = ConnectorConfigRepository(session, keyring).upsert(
            environment.id, "trello", consumer_key="ck2", consumer_secret="new-secret"
        )
    with database.session() as session:
        read = ConnectorConfigRepository(session, keyring).get(environment.id, "trello")
        count = len(session.scalars(select(ConnectorConfig)).all())

    assert second.id == first.id
    assert count == 1
    assert read is not None
    assert (read.consumer_key, read.consumer_secret) == ("ck2", "new-secret")
    assert read.scopes is None


def test_configurations_are_per_environment(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    with database.session() as session:
        other = EnvironmentRepository(session, keyring).create("other")
        configs = ConnectorConfigRepository(session, keyring)
        configs.upsert(environment.id, "asana", client_secret="a")
        configs.upsert(other.id, "asana", client_secret="b")

    with database.session() as session:
        configs = ConnectorConfigRepository(session, keyring)
        mine, theirs = configs.get(environment.id, "asana"), configs.get(other.id, "asana")
        assert (mine and mine.client_secret, theirs and theirs.client_secret) == ("a", "b")
        assert [config.connector_key for config in configs.list(environment.id)] == ["asana"]
        assert configs.delete(environment.id, "asana")
        assert configs.get(environment.id, "asana") is None
        assert configs.get(other.id, "asana") is not None


def test_one_configuration_per_connector_and_environment(
    database: Database, environment: Environment
) -> None:
    def add_twice() -> None:
        with database.session() as session:
            for _ in range(2):
                session.add(
                    ConnectorConfig(
                        environment_id=environment.id, connector_key="x", secrets_ct=b"\x01"
                    )
                )
                session.flush()

    with pytest.raises(IntegrityError):
        add_twice()
