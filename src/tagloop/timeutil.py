"""Time as tagloop stores it: integer microseconds since the Unix epoch, UTC.

Integers make event-time windows exact and identical across SQLite and PostgreSQL; calendar
logic converts to the workspace time zone only where a calendar is involved.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

US_PER_SECOND = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_us() -> int:
    """The current wall-clock time in epoch microseconds."""
    return time.time_ns() // 1000


def to_us(value: datetime, default_tz: tzinfo = UTC) -> int:
    """Convert a datetime to epoch microseconds; a naive value is read in ``default_tz``.

    >>> to_us(datetime(2024, 3, 5, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
    1709596800000000
    >>> to_us(datetime(2024, 3, 5, 8, 0), ZoneInfo("Asia/Shanghai"))
    1709596800000000
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=default_tz)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * US_PER_SECOND + delta.microseconds


def from_us(value: int, tz: tzinfo = UTC) -> datetime:
    """Epoch microseconds to an aware datetime in ``tz``.

    >>> from_us(1709596800000000).isoformat()
    '2024-03-05T00:00:00+00:00'
    """
    return (_EPOCH + timedelta(microseconds=value)).astimezone(tz)


def parse_time(text: str, default_tz: tzinfo = UTC) -> int:
    """An ISO 8601 date or date-time given by a person (``--as-of``) in epoch microseconds;
    without an offset it is read in ``default_tz`` (a date is its midnight).

    >>> parse_time("2024-03-05", ZoneInfo("Asia/Shanghai")) == parse_time("2024-03-04T16:00Z")
    True
    >>> parse_time("next week")
    Traceback (most recent call last):
    ...
    ValueError: 'next week' is not a date or time (expected e.g. 2024-03-05 or 2024-03-05T08:00)
    """
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date or time (expected e.g. 2024-03-05 or 2024-03-05T08:00)"
        ) from None
    return to_us(parsed, default_tz)


def iso(value: int | None, tz: tzinfo = UTC) -> str | None:
    """Epoch microseconds to ISO 8601 text (None stays None)."""
    return None if value is None else from_us(value, tz).isoformat()


def time_text(value: int) -> str:
    """The fixed-width ISO 8601 UTC text tagloop stores times as (sorts as it reads).

    >>> time_text(1709596800000000)
    '2024-03-05T00:00:00.000000Z'
    """
    return from_us(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def zone(name: str) -> ZoneInfo:
    """Look up an IANA time zone, with a readable error.

    >>> zone("Asia/Shanghai").key
    'Asia/Shanghai'
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as Asia/Shanghai)"
        ) from exc


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_US = {
    "ms": 1_000,
    "s": US_PER_SECOND,
    "m": 60 * US_PER_SECOND,
    "h": 3_600 * US_PER_SECOND,
    "d": 86_400 * US_PER_SECOND,
    "w": 7 * 86_400 * US_PER_SECOND,
}


def parse_duration(text: str) -> int:
    """Parse ``30s``, ``10m``, ``1h``, ``30d``, ``2w`` into microseconds.

    >>> parse_duration("10m")
    600000000
    >>> parse_duration("1.5h") == 90 * 60 * US_PER_SECOND
    True
    """
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (examples: 30s, 10m, 1h, 30d, 2w)")
    return int(float(match.group(1)) * _UNIT_US[match.group(2)])
