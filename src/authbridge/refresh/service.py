"""Refreshing credentials exactly once, however many processes ask at the same time.

A refresh of one authentication runs under a lease (``lease_owner``/``lease_until``, taken by
one conditional UPDATE and committed at once), so across every process and host sharing the
database only one refresher calls the provider. Inside a process, concurrent callers for the
same authentication share one attempt (single flight). Callers that find the lease taken by
another process wait for it to be released and read what it stored; when it runs out instead
(its holder died), they take it over.

The refresher stores the new credentials (a rotated refresh token with its access token, or
the old refresh token kept when the provider sends none) and releases the lease in one
statement, and only while it still holds the lease. No database transaction is open while the
provider is called.

Once the provider has answered, its answer is the only copy of the rotated refresh token: the
store is tried again with backoff on any database error, the lease extended meanwhile, for as
long as it takes (an ERROR names the authentication once the lease's time is used up), and the
lease is never released as if nothing happened. Each attempt runs in a task of its own, so a
caller that goes away (a cancelled request) does not cut a store short; :meth:`Refresher.stop`
(at shutdown) stops taking new leases and waits for the attempts under way.

A lease that ran out without being released (its holder died, maybe after the provider had
rotated the refresh token) is taken over and the takeover recorded (``lease_taken_from``): if
the provider then refuses the old token, the failure says that a refresh was interrupted.

Outcomes: success (``authentication.recovered`` when the previous attempt had failed);
a transient failure (timeout, 5xx, 429: backoff with jitter, status unchanged); or the provider
no longer accepts the credentials (``invalid_grant``, 401: status ``invalid``,
``authentication.invalid``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.orm import Session

from authbridge import errors
from authbridge.authentications import freshness
from authbridge.authentications.freshness import Freshness
from authbridge.authentications.repository import AuthenticationRepository
from authbridge.authentications.service import refresh_due_at
from authbridge.connector_configs.service import ConnectorSetup, setup
from authbridge.mechanisms import ConnectResult, Context, get_mechanism
from authbridge.redaction import redact
from authbridge.refresh.group_transactions import GroupTransactions
from authbridge.refresh.repository import LeasedAuthentication, RefreshRepository
from authbridge.services import metrics
from authbridge.services.bridge import Bridge
from authbridge.webhooks import events

log = logging.getLogger("authbridge.refresh")

LEASE = timedelta(seconds=30)
WAIT_POLL_SECONDS = 0.05
MAX_BACKOFF = timedelta(hours=1)
BASE_BACKOFF = timedelta(seconds=30)

#: First wait before a failed store is tried again; it doubles up to :data:`STORE_RETRY_MAX`.
STORE_RETRY_FIRST = 0.05
STORE_RETRY_MAX = 2.0
#: Attempts at recording a failed refresh (the waits between them as for a store).
FAILURE_ATTEMPTS = 5
#: Seconds between two ERRORs about the same result still not stored.
STORE_ERROR_EVERY = 30.0
#: How long :meth:`Refresher.stop` waits for the attempts under way by default.
STOP_GRACE = 20.0

#: Seconds a connector's loaded setup (definition and configuration) is reused for refreshes:
#: a configuration change (a new client secret) reaches refreshes within this time.
SETUP_TTL = 2.0

T = TypeVar("T")
BUSY = "busy"


@dataclass(frozen=True)
class Lease:
    """A refresh lease we hold: the authentication, its stored credentials, its connector."""

    auth: LeasedAuthentication
    stored: dict[str, object] = field(repr=False)
    setup: ConnectorSetup = field(repr=False)

    @property
    def taken_from(self) -> str | None:
        """The refresher whose lease ran out and was taken over (its refresh was interrupted)."""
        return self.auth.lease_taken_from


@dataclass(frozen=True)
class Unusable:
    """The lease was taken but the connector cannot be loaded (removed); a failure is stored."""

    message: str


@dataclass(frozen=True)
class Outcome:
    """How a refresh ended: ``refreshed`` (by us), ``shared`` (another refresher's result),
    ``busy`` (another refresher is at it; not waited for), ``not_due``, ``failed`` (transient;
    retry later), ``invalid`` (credentials refused)."""

    kind: str
    message: str | None = None
    retry_after: float | None = None


def backoff(failures: int, *, retry_after: float | None = None) -> timedelta:
    """Exponential backoff with full jitter, at least the provider's ``Retry-After``."""
    ceiling = min(MAX_BACKOFF, BASE_BACKOFF * (2 ** min(failures, 10)))
    seconds = ceiling.total_seconds()
    delay = timedelta(seconds=random.uniform(seconds / 2, seconds))  # noqa: S311 (jitter)
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=retry_after))
    return delay


class Refresher:
    """Refreshes authentications; one per process (it holds the process's lease owner id)."""

    def __init__(self, bridge: Bridge, *, lease: timedelta = LEASE) -> None:
        self.bridge = bridge
        self.lease = lease
        self.owner = str(uuid.uuid4())
        self._inflight: dict[str, asyncio.Task[Outcome]] = {}
        self._stopping = False
        # Takes and stores of refreshes under way at the same moment share transactions.
        self._group = GroupTransactions(bridge)
        self._setups: dict[tuple[str, str, str, str | None], tuple[float, ConnectorSetup]] = {}
        #: Seconds from the provider's answer to the commit of the new credentials, recent ones.
        self.store_windows: deque[float] = deque(maxlen=100_000)
        log.info("refresher %s runs in process %d", self.owner, os.getpid())

    async def _grouped(self, auth_id: str, work: Callable[[Session], T]) -> T:
        return await self._group.run(work, key=auth_id)

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def stop(self, *, grace: float = STOP_GRACE) -> None:
        """Take no new lease, and wait (``grace`` seconds at most) for the refreshes under way
        to end and their results to be stored; log an ERROR for each that did not."""
        if self._stopping and not self._inflight:
            return
        self._stopping = True
        running = list(self._inflight.items())
        if running:
            log.info("waiting for %d refreshes under way to be stored", len(running))
            await asyncio.wait([task for _, task in running], timeout=grace)
        for auth_id, task in running:
            if not task.done():
                log.error(
                    "refresh of authentication %s did not end within %.0f s of the shutdown; "
                    "if the provider answered, its new credentials are lost",
                    auth_id,
                    grace,
                )
                task.cancel()
        if self.store_windows:
            log.info("refresh store window: %s", window_summary(self.store_windows))

    async def refresh(self, auth_id: str, *, force: bool = False, wait: bool = True) -> Outcome:
        """Refresh ``auth_id`` if it is due (always with ``force``); concurrent calls share one.

        When another process holds the lease, wait for its result, or with ``wait=False``
        return at once (outcome ``busy``): a reader whose token has not expired yet need not
        wait for a refresh it does not need yet. Once :meth:`stop` was called, no refresh
        starts (outcome ``busy``).
        """
        while (running := self._inflight.get(auth_id)) is not None:
            outcome = await asyncio.shield(running)
            if outcome.kind != BUSY or not wait:
                return outcome
            # The attempt joined did not wait for another process's refresh; this caller must.
        if self._stopping:
            return Outcome(BUSY, "the process is shutting down")
        # A task of its own: the caller may be cancelled (a request cut short), the attempt
        # and its store are not.
        task = asyncio.create_task(
            self._refresh_once(auth_id, force=force, wait=wait), name=f"refresh {auth_id}"
        )
        self._inflight[auth_id] = task
        task.add_done_callback(lambda _: self._finished(auth_id, task))
        return await asyncio.shield(task)

    def _finished(self, auth_id: str, task: asyncio.Task[Outcome]) -> None:
        if self._inflight.get(auth_id) is task:
            del self._inflight[auth_id]
        if task.cancelled():
            return
        error = task.exception()  # retrieved: no "never retrieved" warning when nobody waits
        if error is None:
            metrics.REFRESHES.labels(task.result().kind).inc()

    async def _refresh_once(self, auth_id: str, *, force: bool, wait: bool) -> Outcome:
        def take(session: Session) -> Lease | Unusable | str | None:
            return self._take(session, auth_id, force=force)

        taken = await self._grouped(auth_id, take)
        while taken is BUSY:
            if not wait:
                return Outcome("busy")
            if await self._wait_for_other(auth_id):
                return Outcome("shared")
            # The lease ran out with nothing stored (its holder died): take it over.
            taken = await self._grouped(auth_id, take)
        if isinstance(taken, Unusable):
            log.warning("refresh of %s impossible: %s", auth_id, taken.message)
            return Outcome("failed", taken.message)
        if not isinstance(taken, Lease):
            return Outcome("not_due")
        auth = taken.auth
        if taken.taken_from is not None:
            log.warning(
                "refresh of authentication %s (%s) takes over the lease of refresher %s, which "
                "did not finish",
                auth.id,
                auth.connector_key,
                taken.taken_from,
            )
        try:
            # Well inside the lease, so the lease never expires under a live refresher.
            async with asyncio.timeout(self.lease.total_seconds() * 0.75):
                result = await self._call_provider(taken.setup, taken.stored)
        except TimeoutError:
            message = "the provider did not answer in time"
            await self._record(auth, lambda session: self._failed(session, auth, message, None))
            return Outcome("failed", message)
        except errors.InvalidToken as exc:
            message = invalid_message(exc.message, taken.taken_from)
            if await self._record(auth, lambda session: self._invalid(session, auth, message)):
                log.warning(
                    "authentication %s (%s) is now invalid: %s",
                    auth.id,
                    auth.connector_key,
                    message,
                )
            return Outcome("invalid", message)
        except errors.ProviderError as exc:
            retry_after = exc.retry_after if isinstance(exc, errors.ProviderUnavailable) else None
            message = exc.message
            await self._record(
                auth, lambda session: self._failed(session, auth, message, retry_after)
            )
            return Outcome("failed", message, retry_after)
        except Exception as exc:
            message = redact(f"refresh failed: {type(exc).__name__}", [])
            log.exception("refresh of %s failed", auth_id, exc_info=exc)
            await self._record(auth, lambda session: self._failed(session, auth, message, None))
            return Outcome("failed", message)
        return await self._store_durably(taken, result, answered=time.perf_counter())

    async def _record(self, auth: LeasedAuthentication, work: Callable[[Session], T]) -> T:
        """Record a failed refresh (and release the lease), trying again on a database error
        for a moment: a failure left unrecorded holds the lease until it runs out, and whoever
        takes it over then would report the refresh as interrupted."""
        delay = STORE_RETRY_FIRST
        for attempt in range(1, FAILURE_ATTEMPTS + 1):
            try:
                return await self._grouped(auth.id, work)
            except Exception as exc:
                if attempt == FAILURE_ATTEMPTS:
                    log.error(
                        "refresh of authentication %s (%s) failed, and recording it failed %d "
                        "times (%s): the lease stays taken until it runs out (%.0f s), then the "
                        "refresh is tried again",
                        auth.id,
                        auth.connector_key,
                        attempt,
                        type(exc).__name__,
                        self.lease.total_seconds(),
                    )
                    raise
                log.warning(
                    "refresh of authentication %s: recording its failure failed (%s); "
                    "retrying in %.2f s",
                    auth.id,
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, STORE_RETRY_MAX)
        raise AssertionError("unreachable")

    async def _store_durably(
        self, lease: Lease, result: ConnectResult, *, answered: float
    ) -> Outcome:
        """Store the provider's answer, trying again on any database error until it is stored
        (extending the lease meanwhile) or the lease is found lost."""
        auth = lease.auth
        delay = STORE_RETRY_FIRST
        failures = 0
        reported = 0.0
        while True:
            try:
                stored_at = await self._grouped(
                    auth.id, lambda session: self._store(session, lease, result)
                )
            except errors.StaleAuthentication:
                # Someone else holds the lease (it ran out and was taken over): this result can
                # no longer be stored, and the refresh token it replaces may be refused.
                log.error(
                    "refresh of authentication %s (%s): the lease was lost before the new "
                    "credentials were stored; they are dropped, and the provider may refuse the "
                    "refresh token now stored",
                    auth.id,
                    auth.connector_key,
                )
                return Outcome("failed", "the refresh lease was lost before the result was stored")
            except Exception as exc:
                failures += 1
                waited = time.perf_counter() - answered
                reason = type(exc).__name__
                if waited < self.lease.total_seconds() / 2:
                    log.warning(
                        "refresh of authentication %s: storing the new credentials failed (%s); "
                        "retrying in %.2f s",
                        auth.id,
                        reason,
                        delay,
                    )
                elif time.perf_counter() - reported >= STORE_ERROR_EVERY:
                    reported = time.perf_counter()
                    log.error(
                        "refresh of authentication %s (%s): the new credentials are still not "
                        "stored after %.0f s and %d attempts (%s); keeping them in memory and "
                        "retrying",
                        auth.id,
                        auth.connector_key,
                        waited,
                        failures,
                        reason,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, STORE_RETRY_MAX)
                await self._extend(auth.id)
                continue
            window = time.perf_counter() - answered
            self.store_windows.append(window)
            metrics.REFRESH_STORE_WINDOW.observe(window)
            if auth.refresh_due_at is not None and auth.refresh_due_at <= stored_at:
                metrics.REFRESH_LAG.observe((stored_at - auth.refresh_due_at).total_seconds())
            if failures:
                log.info(
                    "refresh of authentication %s: new credentials stored after %d failed attempts",
                    auth.id,
                    failures,
                )
            return Outcome("refreshed")

    async def _extend(self, auth_id: str) -> None:
        """Extend the lease while a result waits to be stored (when the database lets us)."""
        until = self.bridge.now() + self.lease

        def extend(session: Session) -> bool:
            repo = RefreshRepository(session, self.bridge.keyring)
            return repo.extend_lease(auth_id, self.owner, until=until)

        with contextlib.suppress(Exception):  # the store that follows reports the trouble
            await self.bridge.run(extend)

    def _take(
        self, session: Session, auth_id: str, *, force: bool
    ) -> Lease | Unusable | str | None:
        """Take the lease: a :class:`Lease`, :data:`BUSY` (another refresher holds it),
        :class:`Unusable` (its connector cannot be loaded; backed off), or ``None`` when there is
        nothing to do (not due, not active, gone)."""
        now = self.bridge.now()
        repo = RefreshRepository(session, self.bridge.keyring)
        # Most calls find the auth due and free (the worker asks only for due ones): try the
        # lease first, and read the row only to tell why it could not be taken.
        auth = repo.acquire_lease(
            auth_id, self.owner, now=now, duration=self.lease, due_by=None if force else now
        )
        if auth is None:
            current = AuthenticationRepository(session, self.bridge.keyring).get_any(auth_id)
            if current is None:
                return None
            verdict = freshness.assess(current, now)
            if verdict is Freshness.UNUSABLE or (not force and verdict is Freshness.FRESH):
                return None
            if not force and current.refresh_due_at is None:
                return None  # expired, but nothing can renew it (a hard expiry)
            return BUSY
        try:
            connector_setup = self._setup(session, auth)
        except (errors.ConnectorNotFound, errors.DefinitionError, errors.InvalidInput) as exc:
            # The connector (or this version or variant) is no longer installed: back off like
            # any failure, so the worker does not stumble on it every tick, and keep the status
            # (reinstalling it is enough).
            message = f"cannot refresh: {exc.message}"
            self._failed(session, auth, message, None)
            return Unusable(message)
        return Lease(auth=auth, stored=auth.credentials(self.bridge.keyring), setup=connector_setup)

    def _setup(self, session: Session, auth: LeasedAuthentication) -> ConnectorSetup:
        """The connector of ``auth`` with its configuration, loaded at most every
        :data:`SETUP_TTL` seconds (a refresh storm refreshes many auths of one connector)."""
        key = (
            auth.environment_id,
            auth.connector_key,
            auth.connector_version,
            auth.connector_variant,
        )
        now = time.monotonic()
        cached = self._setups.get(key)
        if cached is not None and now - cached[0] < SETUP_TTL:
            return cached[1]
        loaded = setup(self.bridge, session, *key)
        if len(self._setups) > 1_000:
            self._setups.clear()
        self._setups[key] = (now, loaded)
        return loaded

    async def _call_provider(
        self, connector_setup: ConnectorSetup, stored: dict[str, object]
    ) -> ConnectResult:
        definition = connector_setup.definition
        mechanism = get_mechanism(definition.type)
        form = mechanism.form_fields(definition)
        context = Context(
            http=self.bridge.http,
            now=self.bridge.now(),
            fields={name: value for name, value in stored.items() if name in form},
            config=connector_setup.config,
            callback_url=connector_setup.callback_url,
            tokens=stored,
        )
        return await mechanism.refresh(definition, context)

    def _store(self, session: Session, lease: Lease, result: ConnectResult) -> datetime:
        """Store the new credentials and release the lease; when they were stored."""
        auth, connector_setup = lease.auth, lease.setup
        now = self.bridge.now()
        repo = RefreshRepository(session, self.bridge.keyring)
        repo.store_refresh(
            auth,
            self.owner,
            result.credentials,
            expires_at=result.expires_at,
            refresh_due_at=refresh_due_at(connector_setup.definition, result.expires_at, now),
            now=now,
        )
        if auth.refresh_failures > 0:  # it had been failing: say it works again
            auths = AuthenticationRepository(session, self.bridge.keyring)
            stored = auths.get_any(auth.id, reload=True)
            if stored is not None:
                events.emit(self.bridge, session, events.RECOVERED, stored, now=now)
        return now

    def _invalid(self, session: Session, auth: LeasedAuthentication, message: str) -> bool:
        """Set the status ``invalid``; ``False`` when the lease was lost (nothing written)."""
        now = self.bridge.now()
        repo = RefreshRepository(session, self.bridge.keyring)
        failed = repo.fail_refresh(auth, self.owner, message=message, retry_at=None, now=now)
        if failed is None:
            return False
        events.emit(self.bridge, session, events.INVALID, failed, now=now, message=message)
        return True

    def _failed(
        self, session: Session, auth: LeasedAuthentication, message: str, retry_after: float | None
    ) -> None:
        now = self.bridge.now()
        retry_at = now + backoff(auth.refresh_failures, retry_after=retry_after)
        RefreshRepository(session, self.bridge.keyring).fail_refresh(
            auth, self.owner, message=message, retry_at=retry_at, now=now
        )

    async def _wait_for_other(self, auth_id: str) -> bool:
        """Wait until the other refresher releases the lease (``True``) or the lease runs out
        without a result (``False``: its holder died)."""
        deadline = asyncio.get_running_loop().time() + self.lease.total_seconds() + 5
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(WAIT_POLL_SECONDS)
            state = await self.bridge.run(lambda session: _lease_state(self, session, auth_id))
            if state != "held":
                return state == "released"
        raise errors.ProviderUnavailable(
            "another refresh of this authentication is taking too long", retry_after=5
        )


def _lease_state(refresher: Refresher, session: Session, auth_id: str) -> str:
    """``released`` (by its holder, or the authentication is gone), ``lapsed`` (it ran out) or
    ``held``."""
    auth = AuthenticationRepository(session, refresher.bridge.keyring).get_any(auth_id)
    now: datetime = refresher.bridge.now()
    if auth is None or auth.lease_until is None:
        return "released"
    return "lapsed" if auth.lease_until <= now else "held"


def invalid_message(refused: str, taken_from: str | None) -> str:
    """Why the credentials are invalid: the provider's refusal, and whether a refresh was
    interrupted (a lease taken over), the likely cause when the provider rotates tokens."""
    if taken_from is None:
        return refused
    return (
        f"{refused}; a refresh was interrupted (refresher {taken_from} did not finish; if the "
        "provider had rotated the refresh token, the new one was lost with it), so the end "
        "user must reconnect"
    )


def window_summary(windows: deque[float]) -> str:
    """``n=…, p50=… ms, p99=… ms, max=… ms`` of answer-to-commit windows."""
    ordered = sorted(windows)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000

    return (
        f"n={len(ordered)}, p50={at(0.5):.1f} ms, p99={at(0.99):.1f} ms, "
        f"max={ordered[-1] * 1000:.1f} ms"
    )
