from __future__ import annotations

import pytest

from authbridge.storage import Database
from authbridge.storage.models import EndUser, Environment
from authbridge.tenancy.repository import EndUserRepository, EnvironmentRepository
from authbridge.vault import Keyring


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate()


@pytest.fixture
def environment(database: Database, keyring: Keyring) -> Environment:
    with database.session() as session:
        return EnvironmentRepository(session, keyring).get_or_create()


@pytest.fixture
def end_user(database: Database, environment: Environment) -> EndUser:
    with database.session() as session:
        return EndUserRepository(session).create(environment.id, "user-1", name="Ada")
