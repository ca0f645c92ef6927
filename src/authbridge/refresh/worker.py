"""The background worker: refreshes ahead of expiry, hard expiry, scheduled deletion, webhooks.

``authbridge worker`` runs it alone (several may run against one PostgreSQL database: they share
the work), and ``authbridge serve`` runs it inside the server unless ``--no-worker``.

One :meth:`Worker.tick`:

1. expiry: warns about auths hard-expiring within ``warn_days`` (once per auth and date) and
   sets status ``expired`` on auths past that date (before refreshing, so a dead auth is never
   refreshed);
2. refresh and deletion, side by side: the ids of due active auths are read in one short
   transaction (soonest due first, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so workers claiming
   together split them) and refreshed ``concurrency`` at a time by the :class:`Refresher`, whose
   lease makes each refresh happen exactly once whichever worker or server gets there first;
   auths past ``delete_at`` are revoked (best effort) and deleted;
3. retention: webhook events older than ``event_retention_days`` that no delivery waits on are
   deleted with their deliveries.

:meth:`Worker.run` ticks every ``interval`` seconds (at once again while a batch came back full)
and delivers webhooks in a loop of its own, so a slow endpoint never delays a refresh. No
database transaction is open while a provider or an endpoint is called.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from authbridge.refresh import lifecycle
from authbridge.refresh.service import Outcome, Refresher
from authbridge.services import metrics
from authbridge.services.bridge import Bridge
from authbridge.storage import faults
from authbridge.webhooks import delivery as webhooks

log = logging.getLogger("authbridge.worker")

T = TypeVar("T")
DeliverDue = Callable[..., Awaitable[int]]
"""``async def deliver_due(bridge, *, limit) -> int`` (attempts made) of the webhooks service."""


@dataclass(frozen=True)
class WorkerSettings:
    """How the worker paces itself.

    ``interval``: seconds between ticks when there is no backlog; ``warn_days``: how long before
    a hard expiry ``authentication.expiring`` is sent; ``concurrency``: refreshes in flight at
    once; ``batch``: due auths read per tick (default ``8 * concurrency``); ``webhooks``: deliver
    webhooks (when the webhooks service is installed).
    """

    interval: float = 1.0
    warn_days: float = 7.0
    concurrency: int = 32
    batch: int | None = None
    deletion_concurrency: int = 8
    webhooks: bool = True
    webhook_batch: int = 100
    event_retention_days: float = 30.0

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError("interval must be positive")
        if self.warn_days < 0:
            raise ValueError("warn_days must not be negative")
        if self.concurrency < 1 or self.deletion_concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.batch is not None and self.batch < 1:
            raise ValueError("batch must be at least 1")
        if self.event_retention_days <= 0:
            raise ValueError("event_retention_days must be positive")

    @property
    def refresh_batch(self) -> int:
        return self.batch if self.batch is not None else 8 * self.concurrency

    @property
    def warn_before(self) -> timedelta:
        return timedelta(days=self.warn_days)


@dataclass(frozen=True)
class TickReport:
    """What one tick did. ``outcomes`` counts refresh outcomes by kind (``refreshed``,
    ``shared``, ``not_due``, ``failed``, ``invalid``, ``error``); ``errors`` names the parts that
    failed unexpectedly (logged); ``more`` says a batch came back full (tick again at once)."""

    due: int = 0
    outcomes: Mapping[str, int] = field(default_factory=dict)
    warned: int = 0
    expired: int = 0
    deleted: int = 0
    revoked: int = 0
    revocation_failed: int = 0
    pruned: int = 0
    errors: tuple[str, ...] = ()
    more: bool = False
    seconds: float = 0.0

    @property
    def refreshed(self) -> int:
        return self.outcomes.get("refreshed", 0)

    @property
    def idle(self) -> bool:
        return not (
            self.due or self.warned or self.expired or self.deleted or self.pruned or self.errors
        )

    def summary(self) -> str:
        outcomes = " ".join(f"{kind}={count}" for kind, count in sorted(self.outcomes.items()))
        parts = [
            f"due={self.due}",
            outcomes,
            f"warned={self.warned}",
            f"expired={self.expired}",
            f"deleted={self.deleted}",
            f"revoked={self.revoked}",
            f"revocation_failed={self.revocation_failed}",
            f"pruned={self.pruned}",
            f"seconds={self.seconds:.3f}",
        ]
        if self.errors:
            parts.append("errors=" + ",".join(self.errors))
        return " ".join(part for part in parts if part)


@dataclass(frozen=True)
class _RefreshRound:
    due: int = 0
    outcomes: Mapping[str, int] = field(default_factory=dict)
    full: bool = False


def _log_failure(exc: Exception, then: str, message: str, *args: object) -> None:
    """Log a failure with its traceback, or, for database trouble (an outage, a full pool),
    as one WARNING naming the kind and the driver's error class: no traceback per tick."""
    kind = faults.classify(exc)
    if kind is None:
        log.exception(message, *args, exc_info=exc)
    else:
        log.warning(
            message + ": database trouble (%s: %s); %s", *args, kind, faults.describe(exc), then
        )


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less when ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


class Worker:
    """Keeps authentications fresh and carries out expiry and scheduled deletion."""

    def __init__(
        self,
        bridge: Bridge,
        refresher: Refresher | None = None,
        *,
        settings: WorkerSettings | None = None,
        deliver: DeliverDue | None = None,
    ) -> None:
        self.bridge = bridge
        self.refresher = refresher if refresher is not None else Refresher(bridge)
        self.settings = settings if settings is not None else WorkerSettings()
        self.owner = str(uuid.uuid4())  # the deletion lease's owner
        self._deliver = deliver
        self._stop: asyncio.Event | None = None

    @property
    def stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    def delivery(self) -> DeliverDue | None:
        """The webhook delivery this worker runs: the one given, else the webhooks service's."""
        if not self.settings.webhooks:
            return None
        return self._deliver if self._deliver is not None else webhooks.deliver_due

    # -- one tick ---------------------------------------------------------------------------

    async def tick(self) -> TickReport:
        """Expiry, then refreshes and deletions side by side; never raises for a failed part."""
        started = time.monotonic()
        failed: list[str] = []

        async def part(name: str, work: Coroutine[Any, Any, T], default: T) -> T:
            try:
                return await work
            except Exception as exc:
                _log_failure(exc, "retrying at the next tick", "worker part failed part=%s", name)
                metrics.WORKER_ERRORS.labels(name).inc()
                failed.append(name)
                return default

        warn_limit = expire_limit = 500
        warned = await part(
            "expiry_warning",
            lifecycle.warn_expiring(
                self.bridge, warn_before=self.settings.warn_before, limit=warn_limit
            ),
            0,
        )
        expired = await part("expiry", lifecycle.expire_due(self.bridge, limit=expire_limit), 0)
        deletion_limit = 100
        refreshes, deletions = await asyncio.gather(
            part("refresh", self._refresh_due(), _RefreshRound()),
            part(
                "deletion",
                lifecycle.delete_due(
                    self.bridge,
                    self.owner,
                    limit=deletion_limit,
                    concurrency=self.settings.deletion_concurrency,
                ),
                lifecycle.DeletionReport(),
            ),
        )
        prune_limit = 500
        retention = timedelta(days=self.settings.event_retention_days)
        pruned = await part(
            "retention",
            webhooks.prune_events(self.bridge, retention=retention, limit=prune_limit),
            0,
        )
        seconds = time.monotonic() - started
        metrics.WORKER_TICKS.observe(seconds)
        report = TickReport(
            due=refreshes.due,
            outcomes=refreshes.outcomes,
            warned=warned,
            expired=expired,
            deleted=deletions.deleted,
            revoked=deletions.revoked,
            revocation_failed=deletions.revocation_failed,
            pruned=pruned,
            errors=tuple(failed),
            more=refreshes.full
            or warned == warn_limit
            or expired == expire_limit
            or deletions.deleted == deletion_limit
            or pruned == prune_limit,
            seconds=seconds,
        )
        if report.idle:
            log.debug("tick %s", report.summary())
        else:
            log.info("tick %s", report.summary())
        return report

    async def _refresh_due(self) -> _RefreshRound:
        now = self.bridge.now()
        limit = self.settings.refresh_batch
        ids = await lifecycle.find_ids(
            self.bridge, lambda repo: repo.due_ids_for_refresh(now, limit=limit)
        )
        due = len(ids)
        if due >= limit:  # a backlog: count it for the gauge
            due = await lifecycle.count_due(self.bridge, now)
        metrics.DUE_AUTHENTICATIONS.set(due)
        if not ids:
            return _RefreshRound()
        slots = asyncio.Semaphore(self.settings.concurrency)

        async def one(auth_id: str) -> str:
            async with slots:
                if self.stopping:
                    return "skipped"
                try:
                    # Another refresher (a worker beside this one, a server) holding the lease
                    # is at it: skip it rather than wait. If its holder dies, the lease runs out
                    # and a later tick takes it over.
                    outcome: Outcome = await self.refresher.refresh(auth_id, wait=False)
                except Exception as exc:
                    _log_failure(exc, "it stays due", "refresh raised auth_id=%s", auth_id)
                    return "error"
                if outcome.kind in {"failed", "invalid"}:
                    log.info(
                        "refresh outcome=%s auth_id=%s message=%s",
                        outcome.kind,
                        auth_id,
                        outcome.message,
                    )
                return outcome.kind

        kinds = await asyncio.gather(*(one(auth_id) for auth_id in ids))
        # A full batch means more may be due now, unless nothing moved (every refresh raised:
        # those auths stay due, and going round at once would only spin).
        moved = any(kind not in {"error", "skipped"} for kind in kinds)
        return _RefreshRound(
            due=due, outcomes=dict(Counter(kinds)), full=len(ids) >= limit and moved
        )

    # -- running ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Tick and deliver webhooks until ``stop`` is set; the current round is finished."""
        self._stop = stop
        deliver = self.delivery()
        log.info(
            "worker started interval=%s warn_days=%s concurrency=%s webhooks=%s",
            self.settings.interval,
            self.settings.warn_days,
            self.settings.concurrency,
            "on" if deliver is not None else "off",
        )
        loops = [asyncio.create_task(self._tick_loop(stop), name="authbridge-worker-ticks")]
        if deliver is not None:
            loops.append(
                asyncio.create_task(
                    self._webhook_loop(stop, deliver), name="authbridge-worker-webhooks"
                )
            )
        try:
            await asyncio.gather(*loops)
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            # Refreshes run in tasks of their own: a cancelled round leaves them running. No
            # new one starts now, and those under way end and store their results first.
            await self.refresher.stop()
            log.info("worker stopped")

    async def _tick_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                report = await self.tick()
            except Exception:  # tick() guards its parts; this is a bug, keep going
                log.exception("worker tick failed")
                metrics.WORKER_ERRORS.labels("tick").inc()
                report = TickReport(errors=("tick",))
            if report.more and not report.errors:
                await asyncio.sleep(0)
                continue
            await wait_or_stop(stop, self.settings.interval)

    async def _webhook_loop(self, stop: asyncio.Event, deliver: DeliverDue) -> None:
        limit = self.settings.webhook_batch
        while not stop.is_set():
            try:
                attempted = await deliver(self.bridge, limit=limit)
            except Exception:
                log.exception("webhook delivery round failed")
                metrics.WORKER_ERRORS.labels("webhooks").inc()
                attempted = 0
            if attempted >= limit:
                await asyncio.sleep(0)
                continue
            await wait_or_stop(stop, self.settings.interval)

    async def run_once(self) -> tuple[TickReport, int | None]:
        """One tick, then one webhook delivery round (``None`` when delivery is off)."""
        report = await self.tick()
        deliver = self.delivery()
        if deliver is None:
            return report, None
        return report, await deliver(self.bridge, limit=self.settings.webhook_batch)


SHUTDOWN_GRACE = 30.0
"""Seconds a stopping worker gets to finish its round before it is cancelled; refreshes under
way are not cancelled with it (see :meth:`Refresher.stop`)."""


class BackgroundWorker:
    """A :class:`Worker` running as a task of the current event loop (inside the server)."""

    def __init__(self, worker: Worker, *, grace: float = SHUTDOWN_GRACE) -> None:
        self.worker = worker
        self.grace = grace
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> BackgroundWorker:
        self._task = asyncio.create_task(self.worker.run(self._stop), name="authbridge-worker")
        self._task.add_done_callback(_report_end)
        return self

    async def stop(self) -> None:
        """Ask the worker to stop and wait for it (at most ``grace`` seconds, then cancel it)."""
        self._stop.set()
        task = self._task
        if task is None or task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=self.grace)
        except TimeoutError:
            log.warning("worker did not stop within %s s and was cancelled", self.grace)
        except Exception:  # noqa: S110 (reported by _report_end)
            pass
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


def _report_end(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("the background worker stopped on an error", exc_info=error)
