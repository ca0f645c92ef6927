from __future__ import annotations

from datetime import timedelta

import pytest

from authbridge.authentications.repository import AuthenticationRepository
from authbridge.errors import InvalidInput
from authbridge.storage import Database
from authbridge.storage.models import Environment, utcnow
from authbridge.storage.pagination import encode_cursor
from authbridge.storage.repositories import MAX_PAGE_SIZE
from authbridge.vault import Keyring


def add(database: Database, keyring: Keyring, environment: Environment, count: int) -> list[str]:
    with database.session() as session:
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
            ).id
            for n in range(count)
        ]


def test_pages_neither_repeat_nor_skip_rows_while_rows_are_inserted(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    existing = add(database, keyring, environment, 20)
    inserted: list[str] = []
    seen: list[str] = []
    cursor = None
    while True:
        with database.session() as session:
            page = AuthenticationRepository(session, keyring).list(
                environment.id, now=utcnow(), limit=6, cursor=cursor
            )
        seen += [auth.id for auth in page.items]
        assert len(page.items) <= 6
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        inserted += add(database, keyring, environment, 2)

    assert len(seen) == len(set(seen))
    assert seen == existing + inserted


def test_rows_created_at_the_same_instant_are_ordered_by_id(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    now = utcnow()
    with database.session() as session:
        repository = AuthenticationRepository(session, keyring)
        created = [
            repository.create(
                environment_id=environment.id,
                end_user_id=None,
                connector_key="stripe",
                connector_version="1",
                auth_type="api_key",
                name="same instant",
                credentials={},
                now=now,
            ).id
            for _ in range(7)
        ]

    seen: list[str] = []
    cursor = None
    with database.session() as session:
        repository = AuthenticationRepository(session, keyring)
        while True:
            page = repository.list(environment.id, now=now, limit=3, cursor=cursor)
            seen += [auth.id for auth in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor

    assert seen == sorted(created)


def test_the_last_page_has_no_next_cursor(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    add(database, keyring, environment, 4)

    with database.session() as session:
        repository = AuthenticationRepository(session, keyring)
        full = repository.list(environment.id, now=utcnow(), limit=4)
        first = repository.list(environment.id, now=utcnow(), limit=3)

    assert (len(full.items), full.next_cursor) == (4, None)
    assert len(first.items) == 3
    assert first.next_cursor is not None


@pytest.mark.parametrize(
    "cursor", ["", "!!!", "bm90IGpzb24", encode_cursor(utcnow(), "x")[:-4], "WzEsMl0"]
)
def test_a_cursor_that_is_not_ours_is_invalid_input(
    database: Database, keyring: Keyring, environment: Environment, cursor: str
) -> None:
    with pytest.raises(InvalidInput) as raised, database.session() as session:
        AuthenticationRepository(session, keyring).list(environment.id, now=utcnow(), cursor=cursor)

    assert raised.value.field == "cursor"


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE_SIZE + 1])
def test_page_size_is_bounded(
    database: Database, keyring: Keyring, environment: Environment, limit: int
) -> None:
    with pytest.raises(InvalidInput), database.session() as session:
        AuthenticationRepository(session, keyring).list(environment.id, now=utcnow(), limit=limit)


def test_a_cursor_continues_after_its_key(
    database: Database, keyring: Keyring, environment: Environment
) -> None:
    ids = add(database, keyring, environment, 3)
    with database.session() as session:
        repository = AuthenticationRepository(session, keyring)
        rows = repository.list(environment.id, now=utcnow()).items
        cursor = encode_cursor(rows[0].created_at, rows[0].id)
        after = repository.list(environment.id, now=utcnow(), cursor=cursor).items
        before_all = encode_cursor(rows[0].created_at - timedelta(seconds=1), "")
        everything = repository.list(environment.id, now=utcnow(), cursor=before_all).items

    assert [auth.id for auth in after] == ids[1:]
    assert [auth.id for auth in everything] == ids
