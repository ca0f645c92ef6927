"""Re-encrypting every stored secret under the keyring's primary key (``authbridge keys
rotate``), online: one short transaction per batch, so a server keeps writing in between, and
safe to run again (values already under the primary key are left alone); and checking that
the keyring reads every one (``authbridge keys check``), after restoring a key file."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from authbridge.errors import DecryptionFailed, KeyNotFound
from authbridge.storage import Database
from authbridge.storage.crypto import ENCRYPTED_COLUMNS
from authbridge.storage.repositories import (
    check_batch,
    count_rows,
    pending_count,
    reencrypt_batch,
)
from authbridge.vault import Keyring

#: The unreadable values a check keeps by table, to name them (all are counted).
NAMED_FAILURES = 20


@dataclass(frozen=True)
class TableSummary:
    """One table's rows, and how many held a value under another key before and after."""

    table: str
    rows: int
    pending_before: int
    pending_after: int


class Progress(Protocol):
    """Told about the work as it goes (the CLI draws a progress bar)."""

    def started(self, table: str, rows: int) -> None: ...
    def advanced(self, table: str, examined: int) -> None: ...
    def finished(self, table: str) -> None: ...


def reencrypt_all(
    database: Database, keyring: Keyring, batch_size: int, progress: Progress
) -> list[TableSummary]:
    """Re-encrypt every encrypted column of every table in batches of ``batch_size`` rows."""
    summaries = []
    for table in ENCRYPTED_COLUMNS:
        with database.session(readonly=True) as session:
            rows = count_rows(session, table)
            pending_before = pending_count(session, keyring, table)
        progress.started(table, rows)
        after_id: str | None = None
        while True:
            # One transaction per batch: the server keeps writing in between.
            with database.session() as session:
                batch = reencrypt_batch(session, keyring, table, batch_size, after_id)
            progress.advanced(table, batch.examined)
            if batch.last_id is None or batch.examined < batch_size:
                break
            after_id = batch.last_id
        progress.finished(table)
        with database.session(readonly=True) as session:
            pending_after = pending_count(session, keyring, table)
        summaries.append(TableSummary(table, rows, pending_before, pending_after))
    return summaries


@dataclass(frozen=True)
class CheckSummary:
    """One table's encrypted values, and those the keyring cannot read: ``missing_keys``
    counts the values of each key id it lacks, ``altered`` the others (malformed, altered,
    copied from another row); ``failures`` names the first :data:`NAMED_FAILURES`."""

    table: str
    values: int
    missing_keys: Counter[str] = field(default_factory=Counter)
    altered: int = 0
    failures: tuple[DecryptionFailed, ...] = ()

    @property
    def unreadable(self) -> int:
        return sum(self.missing_keys.values()) + self.altered


def check_all(
    database: Database, keyring: Keyring, batch_size: int, progress: Progress
) -> list[CheckSummary]:
    """Try to decrypt every encrypted value of every table, in read-only batches of
    ``batch_size`` rows; nothing is written, and no failure is logged (they are returned)."""
    summaries = []
    for table in ENCRYPTED_COLUMNS:
        with database.session(readonly=True) as session:
            rows = count_rows(session, table)
        progress.started(table, rows)
        values, altered = 0, 0
        missing: Counter[str] = Counter()
        failures: list[DecryptionFailed] = []
        after_id: str | None = None
        while True:
            with database.session(readonly=True) as session:
                batch = check_batch(session, keyring, table, batch_size, after_id)
            progress.advanced(table, batch.examined)
            values += batch.values
            for error in batch.unreadable:
                if isinstance(error, KeyNotFound):
                    missing[error.key_id] += 1
                else:
                    altered += 1
            failures.extend(batch.unreadable[: NAMED_FAILURES - len(failures)])
            if batch.last_id is None:
                break
            after_id = batch.last_id
        progress.finished(table)
        summaries.append(CheckSummary(table, values, missing, altered, tuple(failures)))
    return summaries
