"""Whether stored credentials may be served: the one freshness policy.

Every reader of credentials (``GET …/credentials``, ``…/request-auth``, the proxy) and the
refresher judge a stored authentication with :func:`assess`, and readers act on the verdict
with :func:`read_fresh`; no other module compares ``expires_at`` or ``refresh_due_at`` with
the clock.

* ``fresh``: serve it.
* ``due``: the refresh time has come but the token has not expired: refresh it (or join the
  refresh under way); when that fails for now or another process is at it, the current token
  is still served, since it still works.
* ``expired``: the token has expired: refresh it and wait for the result; an expired token is
  never served (503 while the provider cannot be reached, 409 when it can never be renewed).
* ``unusable``: not active (invalid, expired, revoked): 409, the end user must reconnect.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

from authbridge import errors
from authbridge.storage.models import AuthStatus

if TYPE_CHECKING:
    from authbridge.refresh.service import Refresher

T = TypeVar("T")
#: Seconds a caller is told to wait when expired credentials could not be refreshed.
RETRY_EXPIRED = 30
#: Refresh outcomes after which the stored credentials are new and worth another attempt.
RENEWED = frozenset({"refreshed", "shared"})
#: Refresh outcomes that leave the credentials as they were read: another process is at it,
#: or the provider could not renew them for now. (After any other outcome, such as
#: ``not_due`` when another caller has just refreshed them, they are read again.)
UNCHANGED = frozenset({"busy", "failed"})


class Freshness(enum.Enum):
    FRESH = "fresh"
    DUE = "due"
    EXPIRED = "expired"
    UNUSABLE = "unusable"


class Stored(Protocol):
    """What the policy reads of an authentication (an ORM row or a lean read's row)."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> AuthStatus: ...
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def refresh_due_at(self) -> datetime | None: ...
    @property
    def last_error(self) -> str | None: ...


def assess(auth: Stored, now: datetime) -> Freshness:
    """The verdict on ``auth``'s credentials at ``now``."""
    if auth.status is not AuthStatus.ACTIVE:
        return Freshness.UNUSABLE
    if auth.expires_at is not None and auth.expires_at <= now:
        return Freshness.EXPIRED
    if auth.refresh_due_at is not None and auth.refresh_due_at <= now:
        return Freshness.DUE
    return Freshness.FRESH


def servable(auth: Stored, now: datetime) -> bool:
    """Whether the credentials may be served as they are (fresh, or due but unexpired)."""
    return assess(auth, now) in {Freshness.FRESH, Freshness.DUE}


def unusable(auth: Stored) -> errors.Conflict:
    """The error for credentials that are not active."""
    reason = f": {auth.last_error}" if auth.last_error else ""
    return errors.Conflict(
        f"authentication '{auth.id}' is {auth.status.value}{reason}; the end user must reconnect it"
    )


def expired(auth: Stored) -> errors.AuthBridgeError:
    """The error for expired credentials a refresh did not renew."""
    reason = f": {auth.last_error}" if auth.last_error else ""
    if auth.refresh_due_at is None:
        # Nothing can renew them (a hard expiry, no refresh token): only the end user can.
        return errors.Conflict(
            f"the credentials of authentication '{auth.id}' expired and cannot be renewed"
            f"{reason}; the end user must reconnect it"
        )
    return errors.ProviderUnavailable(
        f"the credentials expired and could not be refreshed{reason}", retry_after=RETRY_EXPIRED
    )


async def read_fresh(
    refresher: Refresher,
    read: Callable[[], Awaitable[T]],
    stored: Callable[[T], Stored],
) -> T:
    """``await read()``, refreshing first when the policy says so; never expired credentials.

    ``read`` reads the authentication and whatever the caller serves from it; ``stored``
    gives the row it read. A due read does not wait for another process's refresh (the token
    still works); an expired one does. Raises the error :func:`unusable` or :func:`expired`
    describes when the credentials cannot be served.
    """
    value = await read()
    auth = stored(value)
    now = refresher.bridge.now()
    verdict = assess(auth, now)
    if verdict is Freshness.FRESH:
        return value
    if verdict is Freshness.UNUSABLE:
        raise unusable(auth)
    outcome = await refresher.refresh(auth.id, wait=verdict is Freshness.EXPIRED)
    if outcome.kind in UNCHANGED and servable(auth, refresher.bridge.now()):
        return value  # not renewed (busy elsewhere, failed for now), but it still works
    value = await read()
    auth = stored(value)
    verdict = assess(auth, refresher.bridge.now())
    if verdict is Freshness.UNUSABLE:
        raise unusable(auth)
    if verdict is Freshness.EXPIRED:
        raise expired(auth)
    return value
