"""A PostgreSQL database that refuses some refresh stores, with no hook in authbridge's code.

:func:`failing_refresh_stores` installs a trigger on ``authentications`` that fails, with a
given probability, the statement storing a refresh result: an UPDATE that releases the lease
(``lease_owner`` from set to ``NULL``) and changes the credentials. Nothing else matches it
(taking, extending or releasing a lease after a failure leaves the credentials alone). A failure
is one of three kinds, picked at random: a serialization failure (SQLSTATE 40001), the server
shutting down (57P01, which drivers and pools take for a lost connection), or a plain
``RAISE`` (P0001). Each kind is counted by a sequence of its own, bumped just before the
exception: sequences are not transactional, so the rollback the exception causes keeps the
count. A store let through adds a row to a table instead, which a rollback takes back: the rows
count the stores committed (a store may pass the trigger in a transaction that another
statement fails afterwards, as when stores are committed together).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session

from authbridge.storage import Database

#: The kinds of injected failure: their sequence's suffix, and the SQLSTATE raised.
KINDS = {"serialization_failure": "40001", "admin_shutdown": "57P01", "raise_exception": "P0001"}
_NAME = "chaos_fail_refresh_store"
_ATTEMPTS = f"{_NAME}_attempts"
_KEPT = f"{_NAME}_kept"


@dataclass
class StoreFaults:
    """What the trigger saw: refresh stores attempted, and failures injected by kind."""

    probability: float
    attempts: int = 0
    #: Stores let through and committed.
    kept: int = 0
    injected: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.injected.values())


def _function(probability: float) -> str:
    branches = []
    for number, (kind, sqlstate) in enumerate(KINDS.items()):
        keyword = "IF" if number == 0 else "ELSIF"
        branches.append(
            f"{keyword} kind = {number} THEN PERFORM nextval('{_NAME}_{kind}');"
            f" RAISE EXCEPTION 'injected refresh store failure ({kind})'"
            f" USING ERRCODE = '{sqlstate}';"
        )
    return (
        f"CREATE FUNCTION {_NAME}() RETURNS trigger LANGUAGE plpgsql AS $$"
        " DECLARE kind integer; BEGIN"
        " IF OLD.lease_owner IS NOT NULL AND NEW.lease_owner IS NULL"
        " AND NEW.credentials_ct IS DISTINCT FROM OLD.credentials_ct THEN"
        f" PERFORM nextval('{_ATTEMPTS}');"
        f" IF random() < {float(probability)!r} THEN"
        f" kind := floor(random() * {len(KINDS)});"
        f" {' '.join(branches)} END IF; END IF;"
        f" INSERT INTO {_KEPT} DEFAULT VALUES;"
        " END IF; RETURN NEW; END $$"
    )


def _count(session: Session, sequence: str) -> int:
    last, called = session.execute(text(f"SELECT last_value, is_called FROM {sequence}")).one()
    return int(last) if called else 0


@contextmanager
def failing_refresh_stores(database: Database, probability: float) -> Iterator[StoreFaults]:
    """Fail each refresh store with ``probability`` while the block runs; the trigger is gone
    when it ends, and the yielded :class:`StoreFaults` then holds the counts (also updated by
    :func:`read_counts` at any time)."""
    assert not database.is_sqlite, "store faults are injected on PostgreSQL"
    faults = StoreFaults(probability)
    sequences = [_ATTEMPTS, *(f"{_NAME}_{kind}" for kind in KINDS)]
    with database.session() as session:
        for sequence in sequences:
            session.execute(text(f"CREATE SEQUENCE {sequence}"))
        session.execute(text(f"CREATE TABLE {_KEPT} (id bigserial PRIMARY KEY)"))
        session.execute(text(_function(probability)))
        session.execute(
            text(
                f"CREATE TRIGGER {_NAME} BEFORE UPDATE ON authentications"
                f" FOR EACH ROW EXECUTE FUNCTION {_NAME}()"
            )
        )
    try:
        yield faults
    finally:
        with database.session() as session:
            session.execute(text(f"DROP TRIGGER {_NAME} ON authentications"))
            session.execute(text(f"DROP FUNCTION {_NAME}()"))
        read_counts(database, faults)
        with database.session() as session:
            for sequence in sequences:
                session.execute(text(f"DROP SEQUENCE {sequence}"))
            session.execute(text(f"DROP TABLE {_KEPT}"))


def read_counts(database: Database, faults: StoreFaults) -> None:
    """Update ``faults`` with the trigger's counts so far."""
    with database.session(readonly=True) as session:
        faults.attempts = _count(session, _ATTEMPTS)
        faults.kept = int(session.scalar(text(f"SELECT count(*) FROM {_KEPT}")) or 0)
        faults.injected = {kind: _count(session, f"{_NAME}_{kind}") for kind in KINDS}
