"""Token expiry arithmetic: when a token expires and when to refresh it.

Providers state expiry in several ways: ``expires_in`` seconds (RFC 6749 §5.1), an absolute
ISO 8601 date, or (from our own storage) a datetime. :func:`expires_at_from` turns all of them
into one timezone-aware UTC datetime.

A number is always read as seconds of lifetime from ``now``, as ``expires_in`` is, and never
as an epoch timestamp in seconds or milliseconds: ``3600`` means "in one hour", and
``1700000000000`` means "in about 54,000 years", not a date in 2023. A provider that sends
epoch values must be converted to a datetime before it reaches this module.

Naive datetimes given as *values* are taken to be UTC (SQLite, for one, drops the offset).
``now`` must be timezone-aware: a naive ``now`` is nearly always ``datetime.now()`` in local
time, so it is refused rather than guessed at.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Literal

__all__ = [
    "expires_at_from",
    "is_due",
    "parse_lifetime",
    "refresh_due_at",
    "refresh_margin",
    "require_aware",
]

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def parse_lifetime(value: int | float | str) -> float:
    """Read a lifetime in seconds, such as ``expires_in`` (RFC 6749 §5.1), from a number or a
    numeric string like ``"3600"``.

    Raises:
        ValueError: the value is a bool, not numeric, not finite, or negative.
    """
    if isinstance(value, bool):
        raise ValueError("a lifetime must be a number of seconds, not a boolean")
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text) is None:
            raise ValueError(f"a lifetime must be a number of seconds, not {value!r}")
        seconds = float(text)
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        raise ValueError(f"a lifetime must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(seconds):
        raise ValueError("a lifetime must be a finite number of seconds")
    if seconds < 0:
        raise ValueError(f"a lifetime cannot be negative ({value!r} seconds)")
    return seconds


def expires_at_from(
    value: datetime | int | float | str | None, *, now: datetime
) -> datetime | None:
    """Return the absolute UTC expiry described by ``value``, or ``None`` when there is none.

    - ``None``: the token does not state an expiry.
    - ``datetime``: absolute; a naive one is UTC.
    - ``int``/``float`` or a numeric string: seconds of lifetime from ``now`` (RFC 6749 §5.1
      ``expires_in``), never an epoch timestamp.
    - any other string: an absolute ISO 8601 date or date-time; without an offset it is UTC.

    Raises:
        ValueError: ``now`` is naive, the lifetime is negative or too large, or the value is of
            another type or an unreadable string.
    """
    require_aware(now)
    if value is None:
        return None
    if isinstance(value, datetime):
        return _as_utc(value)
    if isinstance(value, bool):
        raise ValueError("an expiry cannot be a boolean")
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()) is None:
        return _parse_iso(value)
    if isinstance(value, int | float | str):
        seconds = parse_lifetime(value)
        try:
            return now.astimezone(UTC) + timedelta(seconds=seconds)
        except OverflowError:
            raise ValueError(f"a lifetime of {value!r} seconds is too large") from None
    raise ValueError(
        "an expiry must be a datetime, a number of seconds or an ISO 8601 string, "
        f"not {type(value).__name__}"
    )


def refresh_margin(
    amount: float = 5, units: Literal["minutes", "seconds"] = "minutes"
) -> timedelta:
    """Return how long before expiry a token should be refreshed, as a ``timedelta``.

    Raises:
        ValueError: ``amount`` is negative or not finite, or ``units`` is unknown.
    """
    if isinstance(amount, bool) or not math.isfinite(amount) or amount < 0:
        raise ValueError(f"a refresh margin must be a finite, non-negative number, not {amount!r}")
    if units == "minutes":
        return timedelta(minutes=amount)
    if units == "seconds":
        return timedelta(seconds=amount)
    raise ValueError(f"unknown refresh margin units {units!r}; use 'minutes' or 'seconds'")


def refresh_due_at(
    expires_at: datetime, margin: timedelta, *, issued_at: datetime | None = None
) -> datetime:
    """Return the UTC moment from which a token expiring at ``expires_at`` should be refreshed.

    That is ``expires_at - margin``. When ``issued_at`` is known, the margin is capped at half
    the token's lifetime, so that a token living shorter than the margin is not due (and
    refreshed again) the moment it is issued.

    Raises:
        ValueError: ``margin`` is negative.
    """
    if margin < timedelta(0):
        raise ValueError("a refresh margin cannot be negative")
    expires_at = _as_utc(expires_at)
    if issued_at is not None:
        lifetime = expires_at - _as_utc(issued_at)
        margin = min(margin, max(lifetime / 2, timedelta(0)))
    return expires_at - margin


def is_due(
    expires_at: datetime | None,
    *,
    now: datetime,
    margin: timedelta,
    issued_at: datetime | None = None,
) -> bool:
    """Tell whether a token expiring at ``expires_at`` should be refreshed at ``now``.

    A token without an expiry (``None``) is never due. See :func:`refresh_due_at` for
    ``margin`` and ``issued_at``.

    Raises:
        ValueError: ``now`` is naive or ``margin`` is negative.
    """
    require_aware(now)
    if expires_at is None:
        return False
    return now >= refresh_due_at(expires_at, margin, issued_at=issued_at)


def require_aware(now: datetime) -> None:
    """Refuse a naive ``now``: it is nearly always local time mistaken for UTC.

    Raises:
        ValueError: ``now`` has no UTC offset.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime, e.g. datetime.now(UTC)")


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _parse_iso(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"cannot read an expiry from {text!r}: expected a number of seconds or an "
            "ISO 8601 date-time"
        ) from None
    return _as_utc(parsed)
