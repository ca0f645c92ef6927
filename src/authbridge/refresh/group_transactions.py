"""Many small units of database work committed together: one thread hop, one connection
checkout and one commit for all the work queued at the same moment (group commit).

The refresher takes leases and stores results with it: in a refresh storm, dozens of refreshes
take their lease (or store their result) at the same moment, and one transaction for each cost
more than the statements themselves (a checkout with its ping, BEGIN, COMMIT, a thread hop).

Each unit sees what it would see in a transaction of its own: when the shared transaction
fails (a database error in any unit, or at the commit), nothing of it is kept and every unit
runs again alone, in its own transaction, and gets its own result or error. An
:class:`~authbridge.errors.AuthBridgeError` a unit raises is its result only (such errors
come before or instead of a write, never after a failed statement), and the others go on.

A unit may run twice (in the shared transaction that failed, then alone), so it writes only to
the session; what it logs or counts is done by its caller, once the result is back. Units run
in the order of their ``key`` (an authentication id): two groups (in two processes) lock the
rows they share in the same order and never deadlock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from authbridge import errors
from authbridge.services.bridge import Bridge

T = TypeVar("T")
#: Units in one transaction at most.
MAX_GROUP = 64
#: Shared transactions under way at once (each on a connection of its own).
PARALLEL = 2


@dataclass
class _Unit(Generic[T]):
    work: Callable[[Session], T]
    key: str
    future: asyncio.Future[T] = field(repr=False)
    outcome: tuple[bool, Any] | None = None  # (ok, value or error) once run


class GroupTransactions:
    """Queues units of work and runs them in shared transactions, one group at a time."""

    def __init__(
        self, bridge: Bridge, *, max_group: int = MAX_GROUP, parallel: int = PARALLEL
    ) -> None:
        self.bridge = bridge
        self.max_group = max_group
        self.parallel = parallel
        self._queue: list[_Unit[Any]] = []
        self._drains: set[asyncio.Task[None]] = set()

    async def run(self, work: Callable[[Session], T], *, key: str) -> T:
        """Run ``work(session)`` in a transaction (shared with the units queued beside it)
        and return its result, or raise its error."""
        unit: _Unit[T] = _Unit(work, key, asyncio.get_running_loop().create_future())
        self._queue.append(unit)
        if len(self._drains) < self.parallel:
            task = asyncio.create_task(self._drain(), name="group transactions")
            self._drains.add(task)
            task.add_done_callback(self._drains.discard)
        return await asyncio.shield(unit.future)

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let the units queued in this turn of the loop join
        while self._queue:
            group, self._queue = self._queue[: self.max_group], self._queue[self.max_group :]
            group.sort(key=lambda unit: unit.key)
            try:
                await run_in_threadpool(self._run_group, group)
            except BaseException as exc:  # cancelled, or a bug here: no unit is left waiting
                for unit in group:
                    if not unit.future.done():
                        unit.future.set_exception(exc)
                        unit.future.exception()
                raise
            for unit in group:
                assert unit.outcome is not None
                ok, value = unit.outcome
                if unit.future.done():  # pragma: no cover (shielded; nothing cancels it)
                    continue
                if ok:
                    unit.future.set_result(value)
                else:
                    unit.future.set_exception(value)
                    unit.future.exception()  # retrieved: the caller may be gone

    def _run_group(self, group: list[_Unit[Any]]) -> None:
        if len(group) > 1:
            try:
                with self.bridge.session() as session:
                    for unit in group:
                        unit.outcome = _attempt(unit.work, session)
                return
            except Exception:  # noqa: S110 (each unit runs alone next and gets its own error)
                pass
        for unit in group:
            try:
                with self.bridge.session() as session:
                    unit.outcome = _attempt(unit.work, session)
            except Exception as exc:
                unit.outcome = (False, exc)


def _attempt(work: Callable[[Session], Any], session: Session) -> tuple[bool, Any]:
    try:
        return True, work(session)
    except errors.AuthBridgeError as exc:
        return False, exc
