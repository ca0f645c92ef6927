import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from authbridge.spec.expiry import (
    expires_at_from,
    is_due,
    parse_lifetime,
    refresh_due_at,
    refresh_margin,
)

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3600, NOW + timedelta(hours=1)),
        (0, NOW),
        (1.5, NOW + timedelta(seconds=1.5)),
        ("3600", NOW + timedelta(hours=1)),
        (" 60 ", NOW + timedelta(minutes=1)),
        ("90.5", NOW + timedelta(seconds=90.5)),
    ],
)
def test_numbers_are_seconds_of_lifetime(value: int | float | str, expected: datetime) -> None:
    assert expires_at_from(value, now=NOW) == expected


def test_large_numbers_are_lifetimes_not_epoch_timestamps() -> None:
    expires_at = expires_at_from(1_700_000_000, now=NOW)
    assert expires_at == NOW + timedelta(seconds=1_700_000_000)
    assert expires_at is not None
    assert expires_at.year == 2079


def test_none_means_no_expiry() -> None:
    assert expires_at_from(None, now=NOW) is None


def test_aware_datetime_is_absolute_and_converted_to_utc() -> None:
    paris = timezone(timedelta(hours=2))
    result = expires_at_from(datetime(2025, 3, 1, 15, 0, tzinfo=paris), now=NOW)
    assert result == datetime(2025, 3, 1, 13, 0, tzinfo=UTC)
    assert result is not None
    assert result.utcoffset() == timedelta(0)


@pytest.fixture
def local_time_is_not_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_time_is_not_utc")
def test_naive_datetime_is_utc() -> None:
    result = expires_at_from(datetime(2025, 3, 1, 15, 0), now=NOW)
    assert result == datetime(2025, 3, 1, 15, 0, tzinfo=UTC)
    assert result is not None
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-01-02T03:04:05Z", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2030-01-02T05:04:05+02:00", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2030-01-02T03:04:05", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2030-01-02", datetime(2030, 1, 2, tzinfo=UTC)),
    ],
)
def test_iso_8601_strings_are_absolute(text: str, expected: datetime) -> None:
    assert expires_at_from(text, now=NOW) == expected


@pytest.mark.parametrize("value", [-1, -0.5, "-30"])
def test_negative_lifetime_is_refused(value: int | float | str) -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        expires_at_from(value, now=NOW)


@pytest.mark.parametrize("value", ["soon", "1e3", "", "12 hours"])
def test_unreadable_strings_are_refused_with_the_value(value: str) -> None:
    with pytest.raises(ValueError, match="cannot read an expiry from") as caught:
        expires_at_from(value, now=NOW)
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize("value", [[3600], {"expires_in": 3600}, b"3600"])
def test_other_types_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="an expiry must be"):
        expires_at_from(value, now=NOW)  # type: ignore[arg-type]


def test_booleans_are_refused() -> None:
    with pytest.raises(ValueError, match="boolean"):
        expires_at_from(True, now=NOW)


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_non_finite_lifetime_is_refused(value: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        expires_at_from(value, now=NOW)


def test_overflowing_lifetime_is_refused() -> None:
    with pytest.raises(ValueError, match="too large"):
        expires_at_from(10**20, now=NOW)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        expires_at_from(3600, now=datetime(2025, 3, 1, 12, 0))


def test_result_is_utc_even_when_now_has_another_offset() -> None:
    now = NOW.astimezone(timezone(timedelta(hours=-5)))
    result = expires_at_from(60, now=now)
    assert result == NOW + timedelta(minutes=1)
    assert result is not None
    assert result.tzinfo is UTC


def test_parse_lifetime_refuses_booleans() -> None:
    with pytest.raises(ValueError, match="boolean"):
        parse_lifetime(True)


def test_refresh_margin_defaults_to_five_minutes() -> None:
    assert refresh_margin() == timedelta(minutes=5)


def test_refresh_margin_in_seconds() -> None:
    assert refresh_margin(90, "seconds") == timedelta(seconds=90)
    assert refresh_margin(1.5, "minutes") == timedelta(seconds=90)


@pytest.mark.parametrize("amount", [-1, float("inf"), float("nan")])
def test_refresh_margin_refuses_bad_amounts(amount: float) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        refresh_margin(amount)


def test_refresh_margin_refuses_unknown_units() -> None:
    with pytest.raises(ValueError, match="units"):
        refresh_margin(5, "hours")  # type: ignore[arg-type]


def test_refresh_due_at_subtracts_the_margin() -> None:
    expires_at = NOW + timedelta(hours=1)
    assert refresh_due_at(expires_at, timedelta(minutes=5)) == NOW + timedelta(minutes=55)


@pytest.mark.usefixtures("local_time_is_not_utc")
def test_refresh_due_at_reads_naive_expiry_as_utc() -> None:
    due = refresh_due_at(datetime(2025, 3, 1, 13, 0), timedelta(minutes=5))
    assert due == datetime(2025, 3, 1, 12, 55, tzinfo=UTC)


def test_refresh_due_at_caps_the_margin_at_half_the_lifetime() -> None:
    expires_at = NOW + timedelta(seconds=60)
    due = refresh_due_at(expires_at, timedelta(minutes=5), issued_at=NOW)
    assert due == NOW + timedelta(seconds=30)


def test_refresh_due_at_keeps_a_margin_shorter_than_half_the_lifetime() -> None:
    expires_at = NOW + timedelta(hours=1)
    due = refresh_due_at(expires_at, timedelta(minutes=5), issued_at=NOW)
    assert due == NOW + timedelta(minutes=55)


def test_refresh_due_at_refuses_a_negative_margin() -> None:
    with pytest.raises(ValueError, match="negative"):
        refresh_due_at(NOW, timedelta(seconds=-1))


def test_no_expiry_is_never_due() -> None:
    assert is_due(None, now=NOW, margin=timedelta(minutes=5)) is False


def test_is_due_switches_exactly_at_expiry_minus_margin() -> None:
    expires_at = NOW + timedelta(minutes=10)
    margin = timedelta(minutes=5)
    before = NOW + timedelta(minutes=5) - timedelta(microseconds=1)
    assert is_due(expires_at, now=before, margin=margin) is False
    assert is_due(expires_at, now=NOW + timedelta(minutes=5), margin=margin) is True
    assert is_due(expires_at, now=NOW + timedelta(hours=1), margin=margin) is True


def test_short_lived_token_is_not_due_at_once_when_issued_at_is_known() -> None:
    expires_at = NOW + timedelta(seconds=60)
    margin = refresh_margin()
    assert is_due(expires_at, now=NOW, margin=margin) is True
    assert is_due(expires_at, now=NOW, margin=margin, issued_at=NOW) is False


def test_is_due_refuses_naive_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_due(NOW, now=datetime(2025, 3, 1), margin=timedelta(0))
