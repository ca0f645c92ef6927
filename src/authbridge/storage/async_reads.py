"""PostgreSQL reads on the event loop, for :meth:`~authbridge.storage.db.Database.first_async`.

A credential read on PostgreSQL is one indexed SELECT; run in a worker thread with the
synchronous driver it cost about 200 µs of the process's CPU (the thread hop, and the threads
taking turns at the GIL), the same SELECT on psycopg's asynchronous connection about 60 µs. So
the event loop keeps a few connections of its own (autocommit: one statement is consistent by
itself) and awaits the round trip instead of handing it to a thread.

The connections belong to the loop that opened them: when a read comes from another loop once
that one has stopped (a test runs each case on its own), they are closed (synchronously: the
loop that made them may be gone) and new ones opened; a read from a second loop running at
the same time is done in a worker thread. A read that finds every connection busy waits for
one, for at most :data:`~authbridge.storage.db.POOL_TIMEOUT_SECONDS`, then fails as an
exhausted pool does (:class:`sqlalchemy.exc.TimeoutError`, a 503). A connection that fails
with an ``OperationalError`` (the server restarted, the backend was killed) is dropped with
every idle one, and the read is tried once more on a fresh connection, as the pool's ping
would have.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import psycopg
from sqlalchemy import exc as sa_exc

if TYPE_CHECKING:
    from authbridge.storage.db import _DirectRead


class AsyncReaders:
    """At most ``size`` asynchronous psycopg connections to ``conninfo``, for one event loop."""

    def __init__(self, conninfo: str, size: int, *, timeout: float) -> None:
        self.conninfo = conninfo
        self.size = size
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._open = 0  # connections of this loop, idle or in use
        self._waiters: collections.deque[asyncio.Future[bool]] = collections.deque()
        self._lock = threading.Lock()  # for a change of loop only

    def serves_running_loop(self) -> bool:
        """Whether :meth:`first` may run on the running loop: the loop the connections belong
        to, or any loop once that one has stopped (its idle connections are closed then). A
        loop running in another thread at the same time (a test's second server) is not served:
        its reads go to a worker thread instead."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return True
        with self._lock:
            if loop is self._loop:
                return True
            if self._loop is not None and self._loop.is_running():
                return False
            self._close_idle()
            self._open = 0  # connections of the old loop still in use are never given back
            self._waiters.clear()
            self._loop = loop
            return True

    async def first(self, read: _DirectRead, params: Mapping[str, Any]) -> Sequence[Any] | None:
        """The first row of ``read`` with ``params`` (see :meth:`_DirectRead.first`), on the
        running loop, which :meth:`serves_running_loop` must have accepted."""
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            connection = await self._take(loop)
            try:
                row = await read.first_async(connection, params)
            except psycopg.OperationalError:
                self._discard(connection, loop)
                if attempt == 2:
                    raise
                self._close_idle()  # the others were likely dropped by the server too
                continue
            except BaseException:
                # Cancelled mid-query, or any other surprise: the connection's state is unknown.
                self._discard(connection, loop)
                raise
            if loop is self._loop:
                self._idle.append(connection)
                self._wake()
            else:
                _finish(connection)  # its loop was replaced meanwhile
            return row
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the idle connections (those in use are closed when their read ends)."""
        self._close_idle()

    async def _take(self, loop: asyncio.AbstractEventLoop) -> psycopg.AsyncConnection[Any]:
        deadline = loop.time() + self.timeout
        while True:
            if self._idle:
                return self._idle.pop()
            if self._open < self.size:
                self._open += 1
                try:
                    return await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
                except BaseException:
                    self._open -= 1
                    self._wake()
                    raise
            # Wait for a connection given back or closed (a True from _wake) or the deadline
            # (a False): a plain future and a timer, cheaper than asyncio.wait_for per wait.
            waiter: asyncio.Future[bool] = loop.create_future()
            self._waiters.append(waiter)
            timer = loop.call_at(deadline, _expire, waiter)
            woken = False
            try:
                woken = await waiter
            finally:
                timer.cancel()
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif not woken and waiter.done() and not waiter.cancelled() and waiter.result():
                    self._wake()  # woken while being cancelled: pass the turn on
            if not woken:
                raise sa_exc.TimeoutError(
                    f"no PostgreSQL connection for a read within {self.timeout:g} s "
                    f"({self.size} kept for reads on the event loop, all busy)"
                )

    def _wake(self) -> None:
        """Let the first waiting read look again (a connection was given back or closed)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)
                return

    def _discard(
        self, connection: psycopg.AsyncConnection[Any], loop: asyncio.AbstractEventLoop
    ) -> None:
        _finish(connection)
        if loop is self._loop:
            self._open -= 1
            self._wake()

    def _close_idle(self) -> None:
        idle, self._idle = self._idle, []
        self._open -= len(idle)
        for connection in idle:
            _finish(connection)


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


def _finish(connection: psycopg.AsyncConnection[Any]) -> None:
    """Close ``connection`` without awaiting (libpq's close is synchronous; the loop that owns
    the connection may be gone). psycopg then sees it closed and warns about nothing."""
    with suppress(Exception):
        connection.pgconn.finish()
