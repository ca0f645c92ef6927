"""Group commit: units queued together share one transaction, and a failing one costs the
others nothing (they run again alone and keep their writes)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.refresh.group_transactions import GroupTransactions
from authbridge.services.bridge import Bridge

pytestmark = pytest.mark.anyio


@pytest.fixture
def probe(bridge: Bridge) -> Iterator[None]:
    with bridge.session() as session:
        session.execute(text("CREATE TABLE group_probe (name VARCHAR(20) PRIMARY KEY)"))
    yield
    with bridge.session() as session:
        session.execute(text("DROP TABLE group_probe"))


def stored(bridge: Bridge) -> set[str]:
    with bridge.session() as session:
        return set(session.scalars(text("SELECT name FROM group_probe")))


def insert(name: str, runs: Counter[str], sessions: list[int]) -> Callable[[Session], str]:
    def work(session: Session) -> str:
        runs[name] += 1
        sessions.append(id(session))
        session.execute(text("INSERT INTO group_probe (name) VALUES (:name)"), {"name": name})
        return name

    return work


@pytest.mark.usefixtures("probe")
async def test_units_queued_together_share_one_transaction_in_key_order(bridge: Bridge) -> None:
    group = GroupTransactions(bridge, parallel=1)
    runs: Counter[str] = Counter()
    sessions: list[int] = []
    order: list[str] = []

    def ordered(name: str) -> Callable[[Session], str]:
        work = insert(name, runs, sessions)

        def record(session: Session) -> str:
            order.append(name)
            return work(session)

        return record

    names = ["c", "a", "d", "b"]
    results = await asyncio.gather(*(group.run(ordered(name), key=name) for name in names))

    assert results == names  # each caller gets its own unit's result
    assert order == sorted(names)  # rows are locked in one order by every group
    assert len(set(sessions)) == 1
    assert runs == Counter(dict.fromkeys(names, 1))
    assert stored(bridge) == set(names)


@pytest.mark.usefixtures("probe")
async def test_a_unit_failing_in_the_database_costs_the_others_nothing(bridge: Bridge) -> None:
    group = GroupTransactions(bridge, parallel=1)
    runs: Counter[str] = Counter()
    sessions: list[int] = []
    with bridge.session() as session:
        session.execute(text("INSERT INTO group_probe (name) VALUES ('taken')"))

    outcomes = await asyncio.gather(
        group.run(insert("first", runs, sessions), key="1"),
        group.run(insert("taken", runs, sessions), key="2"),  # a duplicate key: IntegrityError
        group.run(insert("last", runs, sessions), key="3"),
        return_exceptions=True,
    )

    assert outcomes[0] == "first"
    assert outcomes[2] == "last"
    assert isinstance(outcomes[1], DBAPIError)
    assert stored(bridge) == {"taken", "first", "last"}
    # The shared transaction was rolled back at the failure (the unit after it had not run
    # yet), then each unit ran alone: "first" was written once, by its second run.
    assert runs == Counter({"first": 2, "taken": 2, "last": 1})


@pytest.mark.usefixtures("probe")
async def test_an_authbridge_error_is_the_units_result_only(bridge: Bridge) -> None:
    group = GroupTransactions(bridge, parallel=1)
    runs: Counter[str] = Counter()
    sessions: list[int] = []

    def refuses(session: Session) -> str:
        raise errors.Conflict("not now")

    outcomes = await asyncio.gather(
        group.run(insert("kept", runs, sessions), key="1"),
        group.run(refuses, key="2"),
        return_exceptions=True,
    )

    assert outcomes[0] == "kept"
    assert isinstance(outcomes[1], errors.Conflict)
    assert runs["kept"] == 1  # the group's transaction went on and was committed
    assert stored(bridge) == {"kept"}
