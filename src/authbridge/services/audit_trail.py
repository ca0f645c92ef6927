"""The audit rows of the hottest paths (credential reads, proxied requests), written in
batches off the request path.

A request queues its row (:meth:`AuditTrail.add`) and answers; one task takes every row queued
so far and writes them with one ``INSERT`` (a ``COPY`` on PostgreSQL) in one transaction in a
worker thread (group commit), at most one transaction per :data:`FLUSH_INTERVAL` unless a full
batch of :data:`MAX_BATCH` rows is already waiting (then at once). No request
waits for a thread or a commit for its audit row. The queue is bounded: when it is full a
request waits for room, a row is never dropped for lack of room.

What may be lost: at a graceful stop (:meth:`AuditTrail.close`, from the app's lifespan) none;
when the process is killed, the rows queued and not yet written: those of the requests that
ended in the last :data:`FLUSH_INTERVAL` or so and during the write under way, well under a
second. When the database refuses a batch, it is tried again with backoff for
:data:`RETRY_SECONDS`; a batch still refused is logged (an ERROR with the count and the
reason) and dropped, so that a database outage does not hold every later request.
"""

from __future__ import annotations

import asyncio
import logging
import time

from starlette.concurrency import run_in_threadpool

from authbridge.services.bridge import Bridge
from authbridge.tenancy.repository import AuditEntry, AuditRepository, AuditRow, AuditRows

log = logging.getLogger("authbridge.audit")

#: Rows waiting to be written at most; a request ending beyond that waits for room.
MAX_QUEUED = 20_000
#: Rows written in one transaction at most.
MAX_BATCH = 1_000
#: Seconds between the starts of two audit transactions at least, unless a full batch is
#: waiting: about what a crash loses.
FLUSH_INTERVAL = 0.2
#: For how long a batch the database refuses is tried again.
RETRY_SECONDS = 30.0


class AuditTrail:
    """The queue of audit rows of one process and the task that writes them."""

    def __init__(self, bridge: Bridge, *, interval: float = FLUSH_INTERVAL) -> None:
        self.bridge = bridge
        self.interval = interval
        self._rows = AuditRows(bridge.database.engine.dialect)
        self._queue: asyncio.Queue[AuditRow] = asyncio.Queue(MAX_QUEUED)
        self._task: asyncio.Task[None] | None = None

    async def add(self, entry: AuditEntry) -> None:
        """Queue ``entry`` (waiting for room when the queue is full); :class:`ValueError` for
        a detail named like a secret."""
        row = self._rows.row(entry)  # here, not in the writer's thread (see AuditRows)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="audit trail writer")
        if self._queue.full():
            await self._queue.put(row)
        else:
            self._queue.put_nowait(row)

    async def flush(self) -> None:
        """Wait until every row queued so far is written (or given up on)."""
        if self._task is not None:
            if self._task.done():
                self._task = asyncio.create_task(self._run(), name="audit trail writer")
            await self._queue.join()

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self._task is None:
            return
        await self.flush()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _run(self) -> None:
        flushed = 0.0
        while True:
            batch = [await self._queue.get()]
            wait = flushed + self.interval - time.monotonic()
            # The interval spaces the commits of a light load; a full batch already waiting is
            # written at once, else reads faster than MAX_BATCH per interval would outrun the
            # writer and a crash would lose ever more of them.
            if wait > 0 and self._queue.qsize() + 1 < MAX_BATCH:
                await asyncio.sleep(wait)
            flushed = time.monotonic()
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[AuditRow]) -> None:
        deadline = time.monotonic() + RETRY_SECONDS
        delay = 0.1
        while True:
            try:
                await run_in_threadpool(self._store, batch)
                return
            except Exception as exc:  # the answers were sent already: the trouble is ours
                if time.monotonic() + delay > deadline:
                    log.error(
                        "%d audit rows could not be written and are lost: %s",
                        len(batch),
                        type(exc).__name__,
                    )
                    return
                log.warning(
                    "%d audit rows could not be written (%s); trying again in %.1f s",
                    len(batch),
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _store(self, batch: list[AuditRow]) -> None:
        with self.bridge.session() as session:
            AuditRepository(session).record_rows(batch)
