from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, StatementError

from authbridge.errors import InvalidInput
from authbridge.storage import Database, configured_url, default_url, normalize_url, resolve_home
from authbridge.storage.models import Environment


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@db:5432/ab", "postgresql+psycopg://u:p@db:5432/ab"),
        ("postgresql://u@db/ab", "postgresql+psycopg://u@db/ab"),
        ("postgresql+psycopg://u@db/ab", "postgresql+psycopg://u@db/ab"),
        ("sqlite:////data/authbridge.db", "sqlite:////data/authbridge.db"),
    ],
)
def test_normalize_url_selects_psycopg_for_postgresql(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


@pytest.mark.parametrize("url", ["mysql://root:hunter22@db/ab", "not a url"])
def test_normalize_url_refuses_other_databases_without_echoing_the_url(url: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        normalize_url(url)

    assert "hunter22" not in raised.value.message


def test_resolve_home_defaults_to_dot_authbridge_and_creates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    home = resolve_home({})

    assert home == Path(".authbridge")
    assert (tmp_path / ".authbridge").is_dir()


def test_resolve_home_follows_authbridge_home(tmp_path: Path) -> None:
    home = resolve_home({"AUTHBRIDGE_HOME": str(tmp_path / "data")})

    assert home == tmp_path / "data"
    assert home.is_dir()


def test_configured_url_is_the_sqlite_file_unless_a_database_url_is_set(tmp_path: Path) -> None:
    environ = {"AUTHBRIDGE_HOME": str(tmp_path)}
    assert configured_url(environ) == f"sqlite:///{tmp_path / 'authbridge.db'}"
    assert configured_url(environ) == default_url(tmp_path)

    environ["AUTHBRIDGE_DATABASE_URL"] = "postgres://ab@db/ab"
    assert configured_url(environ) == "postgresql+psycopg://ab@db/ab"


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    database = Database(default_url(tmp_path / "new-folder"))
    try:
        with database.session() as session:
            assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert session.execute(text("PRAGMA busy_timeout")).scalar() == 10_000
    finally:
        database.dispose()
    assert (tmp_path / "new-folder" / "authbridge.db").exists()


def test_repr_hides_the_password() -> None:
    database = Database("postgresql://ab:hunter22@127.0.0.1:1/ab")

    assert "hunter22" not in repr(database)
    assert "psycopg" in repr(database)


def test_session_commits_when_the_block_ends(database: Database) -> None:
    with database.session() as session:
        session.add(Environment(name="kept", jwt_secret_ct=b"x"))

    with database.session() as session:
        assert session.scalars(select(Environment.name)).all() == ["kept"]


def test_session_rolls_back_when_the_block_raises(database: Database) -> None:
    def write_then_fail() -> None:
        with database.session() as session:
            session.add(Environment(name="dropped", jwt_secret_ct=b"x"))
            session.flush()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_then_fail()

    with database.session() as session:
        assert session.scalars(select(Environment)).all() == []


def test_foreign_keys_are_enforced(database: Database) -> None:
    from authbridge.storage.models import EndUser

    with pytest.raises(DBAPIError), database.session() as session:
        session.add(EndUser(environment_id="no-such-environment", external_user_id="u"))


def test_timestamps_come_back_aware_in_utc(database: Database) -> None:
    paris = timezone(timedelta(hours=2))
    written = datetime(2030, 5, 17, 14, 30, 15, 123456, tzinfo=paris)
    with database.session() as session:
        session.add(Environment(name="t", jwt_secret_ct=b"x", created_at=written))

    with database.session() as session:
        read = session.scalars(select(Environment.created_at)).one()

    assert read == written
    assert read.tzinfo == UTC
    assert read.hour == 12


def test_naive_timestamps_are_refused(database: Database) -> None:
    naive = Environment(name="t", jwt_secret_ct=b"x", created_at=datetime(2030, 1, 1))

    with pytest.raises(StatementError, match="timezone-aware"), database.session() as session:
        session.add(naive)


def test_concurrent_read_then_write_transactions_wait_instead_of_failing(
    database: Database,
) -> None:
    errors: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            for round_ in range(5):
                with database.session() as session:
                    session.scalars(select(Environment.id)).all()
                    session.add(Environment(name=f"w{number}-{round_}", jwt_secret_ct=b"x"))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    with database.session() as session:
        assert len(session.scalars(select(Environment.id)).all()) == 30
