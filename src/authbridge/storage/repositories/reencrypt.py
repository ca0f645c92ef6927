"""Re-encrypting stored secrets under the keyring's primary key, online, in batches.

``authbridge keys rotate`` adds a primary key, then walks every table of
:data:`~authbridge.storage.crypto.ENCRYPTED_COLUMNS` by id, one transaction per batch, while the
server keeps serving::

    for table in ENCRYPTED_COLUMNS:
        after_id = None
        while True:
            with database.session() as session:
                count, after_id = reencrypt_batch(session, keyring, table, 500, after_id)
            if after_id is None:
                break

Each value is replaced only if it still holds the ciphertext that was read (compare and swap),
so a concurrent writer (a refresh storing new tokens) is never overwritten with older data.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from authbridge.storage.crypto import ENCRYPTED_COLUMNS, reseal
from authbridge.storage.models import metadata
from authbridge.storage.repositories._dml import affected_rows
from authbridge.vault import Keyring


class ReencryptBatch(NamedTuple):
    """``examined`` rows were looked at; continue after ``last_id`` (``None``: table done)."""

    examined: int
    last_id: str | None


def _table(name: str) -> Table:
    if name not in ENCRYPTED_COLUMNS:
        raise ValueError(f"table '{name}' has no encrypted column")
    return metadata.tables[name]


def count_rows(session: Session, table: str) -> int:
    """Return how many rows ``table`` holds (the total of a progress bar)."""
    return session.scalar(select(func.count()).select_from(_table(table))) or 0


def reencrypt_batch(
    session: Session, keyring: Keyring, table: str, batch_size: int, after_id: str | None
) -> ReencryptBatch:
    """Re-encrypt the secrets of up to ``batch_size`` rows of ``table`` with ids after ``after_id``.

    Values already under the primary key are left alone, so running it again is cheap and safe.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    sql_table = _table(table)
    columns = ENCRYPTED_COLUMNS[table]
    id_column = sql_table.c.id
    statement = select(id_column, *(sql_table.c[name] for name in columns))
    if after_id is not None:
        statement = statement.where(id_column > after_id)
    rows = session.execute(statement.order_by(id_column).limit(batch_size)).all()
    for row in rows:
        row_id: str = row[0]
        for name, token in zip(columns, row[1:], strict=True):
            if token is None:
                continue
            resealed = reseal(keyring, table, name, row_id, bytes(token))
            if resealed is None:
                continue
            swap = (
                sql_table.update()
                .where(id_column == row_id, sql_table.c[name] == token)
                .values({name: resealed})
            )
            affected_rows(session, swap)
    return ReencryptBatch(examined=len(rows), last_id=rows[-1][0] if rows else None)


def pending_count(session: Session, keyring: Keyring, table: str) -> int:
    """Return how many rows of ``table`` still hold a secret not under the primary key."""
    sql_table = _table(table)
    columns = ENCRYPTED_COLUMNS[table]
    statement = select(*(sql_table.c[name] for name in columns))
    return sum(
        1
        for row in session.execute(statement)
        if any(token is not None and keyring.needs_reencrypt(bytes(token)) for token in row)
    )
