"""What the database holds encrypted, in every column of
:data:`~authbridge.storage.crypto.ENCRYPTED_COLUMNS`: how many values and under which key ids
(so that a missing key file is not replaced by a new key that could read none of them), and
which values the keyring cannot read (``authbridge keys check``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import Table, func, inspect, or_, select
from sqlalchemy.orm import Session

from authbridge.errors import DecryptionFailed
from authbridge.storage.crypto import ENCRYPTED_COLUMNS, associated_data
from authbridge.storage.models import metadata
from authbridge.vault import Keyring

#: The values per column whose key ids :func:`stored_secrets` reads (the count is exact).
KEY_ID_SAMPLE = 100


@dataclass(frozen=True)
class StoredSecrets:
    """The encrypted values by table, and the key ids seen among them (oldest first)."""

    counts: dict[str, int]
    key_ids: tuple[str, ...]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def stored_secrets(session: Session) -> StoredSecrets:
    """Count the encrypted values of every table that exists (none in a database never
    migrated), with the key ids of up to :data:`KEY_ID_SAMPLE` values per column."""
    existing = set(inspect(session.connection()).get_table_names())
    counts: dict[str, int] = {}
    key_ids: dict[str, None] = {}
    for name, columns in ENCRYPTED_COLUMNS.items():
        if name not in existing:
            continue
        table = metadata.tables[name]
        count = 0
        for column_name in columns:
            column = table.c[column_name]
            count += session.scalar(select(func.count()).where(column.is_not(None))) or 0
            sample = select(column).where(column.is_not(None)).limit(KEY_ID_SAMPLE)
            for token in session.scalars(sample):
                try:
                    key_ids[Keyring.key_id_of(bytes(token))] = None
                except DecryptionFailed:
                    continue  # not a vault token: counted, but it names no key
        if count:
            counts[name] = count
    return StoredSecrets(counts, tuple(key_ids))


class CheckBatch(NamedTuple):
    """``examined`` rows (``values`` encrypted values) were checked, ``unreadable`` are the
    values that failed; continue after ``last_id`` (``None``: table done)."""

    examined: int
    values: int
    unreadable: list[DecryptionFailed]
    last_id: str | None


def check_batch(
    session: Session, keyring: Keyring, table: str, batch_size: int, after_id: str | None
) -> CheckBatch:
    """Try to decrypt the secrets of up to ``batch_size`` rows of ``table`` with ids after
    ``after_id``, each under its own table, column and row; nothing is written or logged."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    sql_table = _table(table)
    columns = ENCRYPTED_COLUMNS[table]
    id_column = sql_table.c.id
    statement = select(id_column, *(sql_table.c[name] for name in columns)).where(
        or_(*(sql_table.c[name].is_not(None) for name in columns))
    )
    if after_id is not None:
        statement = statement.where(id_column > after_id)
    rows = session.execute(statement.order_by(id_column).limit(batch_size)).all()
    values = 0
    unreadable = []
    for row in rows:
        row_id: str = row[0]
        for name, token in zip(columns, row[1:], strict=True):
            if token is None:
                continue
            values += 1
            error = keyring.unreadable(bytes(token), aad=associated_data(table, name, row_id))
            if error is not None:
                unreadable.append(error)
    last_id = rows[-1][0] if len(rows) == batch_size else None
    return CheckBatch(len(rows), values, unreadable, last_id)


def _table(name: str) -> Table:
    if name not in ENCRYPTED_COLUMNS:
        raise ValueError(f"table '{name}' has no encrypted column")
    return metadata.tables[name]
