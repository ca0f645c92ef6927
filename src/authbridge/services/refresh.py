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

Outcomes: success (``authentication.recovered`` when the previous attempt had failed);
a transient failure (timeout, 5xx, 429: backoff with jitter, status unchanged); or the provider
no longer accepts the credentials (``invalid_grant``, 401: status ``invalid``,
``authentication.invalid``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from authbridge import errors
from authbridge.mechanisms import ConnectResult, Context, get_mechanism
from authbridge.redaction import redact
from authbridge.services import events, metrics
from authbridge.services.authentications import refresh_due_at
from authbridge.services.bridge import Bridge
from authbridge.services.connectors import ConnectorSetup, setup
from authbridge.storage.models import Authentication, AuthStatus
from authbridge.storage.repositories import AuthenticationRepository

log = logging.getLogger("authbridge.refresh")

LEASE = timedelta(seconds=30)
WAIT_POLL_SECONDS = 0.05
MAX_BACKOFF = timedelta(hours=1)
BASE_BACKOFF = timedelta(seconds=30)

T = TypeVar("T")
BUSY = "busy"


@dataclass(frozen=True)
class Lease:
    """A refresh lease we hold: the authentication, its stored credentials, its connector."""

    auth: Authentication
    stored: dict[str, object] = field(repr=False)
    setup: ConnectorSetup = field(repr=False)


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
        self._inflight: dict[str, asyncio.Future[Outcome]] = {}

    async def _db(self, work: Callable[[Session], T]) -> T:
        def run() -> T:
            with self.bridge.session() as session:
                return work(session)

        return await run_in_threadpool(run)

    async def refresh(self, auth_id: str, *, force: bool = False, wait: bool = True) -> Outcome:
        """Refresh ``auth_id`` if it is due (always with ``force``); concurrent calls share one.

        When another process holds the lease, wait for its result, or with ``wait=False``
        return at once (outcome ``busy``): a reader whose token has not expired yet need not
        wait for a refresh it does not need yet.
        """
        while (running := self._inflight.get(auth_id)) is not None:
            outcome = await asyncio.shield(running)
            if outcome.kind != BUSY or not wait:
                return outcome
            # The attempt joined did not wait for another process's refresh; this caller must.
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._inflight[auth_id] = future
        try:
            outcome = await self._refresh_once(auth_id, force=force, wait=wait)
            metrics.REFRESHES.labels(outcome.kind).inc()
            future.set_result(outcome)
            return outcome
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._inflight[auth_id]

    async def _refresh_once(self, auth_id: str, *, force: bool, wait: bool) -> Outcome:
        taken = await self._db(lambda session: self._take(session, auth_id, force=force))
        while taken is BUSY:
            if not wait:
                return Outcome("busy")
            if await self._wait_for_other(auth_id):
                return Outcome("shared")
            # The lease ran out with nothing stored (its holder died): take it over.
            taken = await self._db(lambda session: self._take(session, auth_id, force=force))
        if isinstance(taken, Unusable):
            return Outcome("failed", taken.message)
        if not isinstance(taken, Lease):
            return Outcome("not_due")
        auth = taken.auth
        try:
            # Well inside the lease, so the lease never expires under a live refresher.
            async with asyncio.timeout(self.lease.total_seconds() * 0.75):
                result = await self._call_provider(taken.setup, taken.stored)
        except TimeoutError:
            message = "the provider did not answer in time"
            await self._db(lambda session: self._failed(session, auth, message, None))
            return Outcome("failed", message)
        except errors.InvalidToken as exc:
            message = exc.message
            await self._db(lambda session: self._invalid(session, auth, message))
            return Outcome("invalid", message)
        except errors.ProviderError as exc:
            retry_after = exc.retry_after if isinstance(exc, errors.ProviderUnavailable) else None
            message = exc.message
            await self._db(lambda session: self._failed(session, auth, message, retry_after))
            return Outcome("failed", message, retry_after)
        except Exception as exc:
            message = redact(f"refresh failed: {type(exc).__name__}", [])
            log.exception("refresh of %s failed", auth_id, exc_info=exc)
            await self._db(lambda session: self._failed(session, auth, message, None))
            return Outcome("failed", message)
        await self._db(lambda session: self._store(session, taken, result))
        return Outcome("refreshed")

    def _take(
        self, session: Session, auth_id: str, *, force: bool
    ) -> Lease | Unusable | str | None:
        """Take the lease: a :class:`Lease`, :data:`BUSY` (another refresher holds it),
        :class:`Unusable` (its connector cannot be loaded; backed off), or ``None`` when there is
        nothing to do (not due, not active, gone)."""
        now = self.bridge.now()
        repo = AuthenticationRepository(session, self.bridge.keyring)
        # Most calls find the auth due and free (the worker asks only for due ones): try the
        # lease first, and read the row only to tell why it could not be taken.
        auth = repo.acquire_lease(
            auth_id, self.owner, now=now, duration=self.lease, due_by=None if force else now
        )
        if auth is None:
            current = repo.get_any(auth_id)
            if current is None or current.status is not AuthStatus.ACTIVE:
                return None
            if not force and (current.refresh_due_at is None or current.refresh_due_at > now):
                return None
            return BUSY
        try:
            connector_setup = setup(
                self.bridge,
                session,
                auth.environment_id,
                auth.connector_key,
                auth.connector_version,
                auth.connector_variant,
            )
        except (errors.ConnectorNotFound, errors.DefinitionError, errors.InvalidInput) as exc:
            # The connector (or this version or variant) is no longer installed: back off like
            # any failure, so the worker does not stumble on it every tick, and keep the status
            # (reinstalling it is enough).
            message = f"cannot refresh: {exc.message}"
            log.warning("refresh of %s impossible: %s", auth_id, message)
            self._failed(session, auth, message, None)
            return Unusable(message)
        return Lease(auth=auth, stored=repo.credentials(auth), setup=connector_setup)

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

    def _store(self, session: Session, lease: Lease, result: ConnectResult) -> None:
        auth, connector_setup = lease.auth, lease.setup
        now = self.bridge.now()
        repo = AuthenticationRepository(session, self.bridge.keyring)
        was_failing = auth.refresh_failures > 0
        if auth.refresh_due_at is not None and auth.refresh_due_at <= now:
            metrics.REFRESH_LAG.observe((now - auth.refresh_due_at).total_seconds())
        stored = repo.store_refresh(
            auth,
            self.owner,
            result.credentials,
            expires_at=result.expires_at,
            refresh_due_at=refresh_due_at(connector_setup.definition, result.expires_at, now),
            now=now,
        )
        if was_failing:
            events.emit(self.bridge, session, events.RECOVERED, stored, now=now)

    def _invalid(self, session: Session, auth: Authentication, message: str) -> None:
        now = self.bridge.now()
        repo = AuthenticationRepository(session, self.bridge.keyring)
        failed = repo.fail_refresh(auth, self.owner, message=message, retry_at=None, now=now)
        if failed is not None:
            events.emit(self.bridge, session, events.INVALID, failed, now=now, message=message)

    def _failed(
        self, session: Session, auth: Authentication, message: str, retry_after: float | None
    ) -> None:
        now = self.bridge.now()
        retry_at = now + backoff(auth.refresh_failures, retry_after=retry_after)
        AuthenticationRepository(session, self.bridge.keyring).fail_refresh(
            auth, self.owner, message=message, retry_at=retry_at, now=now
        )

    async def _wait_for_other(self, auth_id: str) -> bool:
        """Wait until the other refresher releases the lease (``True``) or the lease runs out
        without a result (``False``: its holder died)."""
        deadline = asyncio.get_running_loop().time() + self.lease.total_seconds() + 5
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(WAIT_POLL_SECONDS)
            state = await self._db(lambda session: _lease_state(self, session, auth_id))
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
