from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, literal, select, text
from sqlalchemy.exc import DBAPIError, StatementError

from authbridge.errors import InvalidInput
from authbridge.runtime import Settings
from authbridge.storage import Database, default_url, normalize_url
from authbridge.storage.faults import POOL_EXHAUSTED, classify
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


def test_the_home_defaults_to_dot_authbridge_and_is_created_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    home = Settings.from_env({}).ensure_home()

    assert home == Path(".authbridge")
    assert (tmp_path / ".authbridge").is_dir()


def test_the_home_follows_authbridge_home(tmp_path: Path) -> None:
    home = Settings.from_env({"AUTHBRIDGE_HOME": str(tmp_path / "data")}).ensure_home()

    assert home == tmp_path / "data"
    assert home.is_dir()


def test_the_database_is_the_sqlite_file_unless_a_database_url_is_set(tmp_path: Path) -> None:
    environ = {"AUTHBRIDGE_HOME": str(tmp_path)}
    url = Settings.from_env(environ).resolved_database_url()
    assert url == f"sqlite:///{tmp_path / 'authbridge.db'}"
    assert url == default_url(tmp_path)

    environ["AUTHBRIDGE_DATABASE_URL"] = "postgres://ab@db/ab"
    assert Settings.from_env(environ).resolved_database_url() == "postgresql+psycopg://ab@db/ab"


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


def _terminate_other_backends(database: Database) -> int:
    with database.session() as session:
        ended = session.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    return int(ended)


@pytest.mark.postgres
def test_a_direct_read_on_a_connection_the_server_dropped_is_tried_again(
    postgres_database: Database,
) -> None:
    # Database.first keeps a few connections out of the pool (no ping per read): one the server
    # dropped while idle (a restart, a killed backend) must cost a retry, never a failed read.
    database = postgres_database
    statement = select(literal(1).label("one"), func.now().label("at"))
    params: dict[str, object] = {}

    before = database.first(statement, params)
    assert _terminate_other_backends(database) >= 1
    after = database.first(statement, params)

    assert before is not None
    assert after is not None
    assert after[0] == before[0] == 1
    assert after[1].tzinfo is not None


@pytest.mark.postgres
def test_direct_reads_under_way_at_once_beyond_the_kept_connections_use_the_pool(
    postgres_database: Database,
) -> None:
    database = postgres_database
    statement = select(func.pg_sleep(0.05).label("slept"), literal(1).label("one"))
    results: list[object] = []

    def read() -> None:
        results.append(database.first(statement, {}))

    threads = [threading.Thread(target=read) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 10
    assert all(row is not None and row[1] == 1 for row in results)


@pytest.mark.postgres
def test_an_event_loop_read_on_a_connection_the_server_dropped_is_tried_again(
    postgres_database: Database,
) -> None:
    # first_async keeps connections of the event loop's own: one the server dropped while idle
    # costs a retry, never a failed read.
    database = postgres_database
    statement = select(literal(1).label("one"), func.now().label("at"))

    async def twice() -> tuple[object, object]:
        before = await database.first_async(statement, {})
        assert _terminate_other_backends(database) >= 1
        return before, await database.first_async(statement, {})

    before, after = asyncio.run(twice())
    assert isinstance(before, tuple)
    assert isinstance(after, tuple)
    assert after[0] == before[0] == 1
    assert after[1].tzinfo is not None


@pytest.mark.postgres
def test_event_loop_reads_beyond_the_loops_connections_wait_for_one(
    postgres_database: Database,
) -> None:
    database = postgres_database
    statement = select(func.pg_sleep(0.05).label("slept"), literal(1).label("one"))

    async def ten_at_once() -> list[object]:
        return list(await asyncio.gather(*(database.first_async(statement, {}) for _ in range(10))))

    results = asyncio.run(ten_at_once())
    assert len(results) == 10
    assert all(isinstance(row, tuple) and row[1] == 1 for row in results)
    # Each asyncio.run is a new loop: the connections of the last one are closed, new ones
    # opened, and nothing warns about a connection left open (warnings are errors here).
    assert len(asyncio.run(ten_at_once())) == 10


@pytest.mark.postgres
def test_an_event_loop_read_finding_every_connection_busy_fails_as_an_exhausted_pool(
    postgres_database: Database,
) -> None:
    database = Database(
        postgres_database.url.render_as_string(hide_password=False),
        pool_size=3,  # one connection of them for the event loop's reads
        pool_timeout=0.2,
    )
    slow = select(func.pg_sleep(1).label("slept"))
    quick = select(literal(1).label("one"))

    async def both() -> list[object]:
        return await asyncio.gather(
            database.first_async(slow, {}),
            database.first_async(quick, {}),
            return_exceptions=True,
        )

    try:
        slow_result, quick_result = asyncio.run(both())
    finally:
        database.dispose()
    assert isinstance(slow_result, tuple)
    assert isinstance(quick_result, sa_exc.TimeoutError)
    assert classify(quick_result) == POOL_EXHAUSTED
    assert "all busy" in str(quick_result)


@pytest.mark.postgres
def test_event_loop_reads_from_two_loops_running_at_once_leave_each_other_alone(
    postgres_database: Database,
) -> None:
    # The loop's connections belong to one loop; a second loop running at the same time (in
    # another thread) reads through a worker thread instead of taking them over: the first
    # loop's next read runs on the same backend as its first.
    database = postgres_database
    statement = select(func.pg_backend_pid().label("pid"))
    first_read = threading.Event()
    release = threading.Event()
    pids: list[int] = []

    async def read_twice() -> None:
        row = await database.first_async(statement, {})
        assert row is not None
        pids.append(row[0])
        first_read.set()
        await asyncio.to_thread(release.wait, 10)  # this loop keeps running meanwhile
        row = await database.first_async(statement, {})
        assert row is not None
        pids.append(row[0])

    holder = threading.Thread(target=asyncio.run, args=(read_twice(),))
    holder.start()
    try:
        assert first_read.wait(10)
        other = asyncio.run(database.first_async(statement, {}))
    finally:
        release.set()
        holder.join(10)
    assert other is not None
    assert len(pids) == 2
    assert pids[0] == pids[1]
    assert other[0] != pids[0]
