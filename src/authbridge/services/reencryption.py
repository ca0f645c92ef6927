"""Re-encrypting every stored secret under the keyring's primary key (``authbridge keys
rotate``), online: one short transaction per batch, so a server keeps writing in between, and
safe to run again (values already under the primary key are left alone)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from authbridge.storage import Database
from authbridge.storage.crypto import ENCRYPTED_COLUMNS
from authbridge.storage.repositories import count_rows, pending_count, reencrypt_batch
from authbridge.vault import Keyring


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
