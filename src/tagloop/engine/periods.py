"""Calendar periods (day, ISO week, month, quarter, year) in a time zone.

A period is identified by an integer index that increases by one from each period to the
next, so "the three most recent complete months" is ``last - 2 .. last``. Both evaluators
use this module: the streaming one directly, the SQL one for the zone's UTC offsets.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from tagloop.timeutil import from_us, to_us

Period = Literal["day", "week", "month", "quarter", "year"]
PERIODS: tuple[Period, ...] = ("day", "week", "month", "quarter", "year")
# Accepted spellings in rules: `month`, `months`, `月`...
ALIASES: dict[str, Period] = {
    **{p: p for p in PERIODS},
    **{p + "s": p for p in PERIODS},
    "天": "day",
    "日": "day",
    "周": "week",
    "月": "month",
    "季度": "quarter",
    "年": "year",
}
_MONDAY = date(1970, 1, 5)  # ISO weeks start on Mondays; index 0 is the week of this day
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()  # day index of the Unix epoch's date
MONDAY_ORDINAL = _MONDAY.toordinal()


def index(period: Period, micros: int, tz: ZoneInfo) -> int:
    """The index of the period containing ``micros`` (epoch µs) in zone ``tz``.

    >>> tz = ZoneInfo("Asia/Shanghai")
    >>> march = index("month", to_us(datetime(2024, 3, 31, 23, 0), tz), tz)
    >>> index("month", to_us(datetime(2024, 4, 1, 0, 0), tz), tz) - march
    1
    """
    local = from_us(micros, tz)
    return index_of_date(period, local.date())


def index_of_date(period: Period, day: date) -> int:
    if period == "day":
        return day.toordinal()
    if period == "week":
        return (day - _MONDAY).days // 7
    if period == "month":
        return day.year * 12 + day.month - 1
    if period == "quarter":
        return day.year * 4 + (day.month - 1) // 3
    return day.year


def start(period: Period, idx: int, tz: ZoneInfo) -> int:
    """Epoch µs of the first instant of period ``idx`` in ``tz``.

    >>> tz = ZoneInfo("Asia/Shanghai")
    >>> from_us(start("month", 2024 * 12 + 2, tz), tz).isoformat()
    '2024-03-01T00:00:00+08:00'
    >>> from_us(start("week", index("week", to_us(datetime(2024, 3, 6), tz), tz), tz), tz).date()
    datetime.date(2024, 3, 4)
    """
    if period == "day":
        first = date.fromordinal(idx)
    elif period == "week":
        first = _MONDAY + timedelta(days=7 * idx)
    elif period == "month":
        first = date(idx // 12, idx % 12 + 1, 1)
    elif period == "quarter":
        first = date(idx // 4, (idx % 4) * 3 + 1, 1)
    else:
        first = date(idx, 1, 1)
    return to_us(datetime(first.year, first.month, first.day), tz)


def bounds(period: Period, idx: int, tz: ZoneInfo) -> tuple[int, int]:
    """Half-open ``[start, end)`` of period ``idx`` in epoch µs."""
    return start(period, idx, tz), start(period, idx + 1, tz)


def last_complete(period: Period, now: int, tz: ZoneInfo) -> int:
    """The index of the most recent period that has entirely passed at ``now``."""
    return index(period, now, tz) - 1


def next_boundary(period: Period, now: int, tz: ZoneInfo) -> int:
    """When the period containing ``now`` ends (the next time `last_complete` changes)."""
    return start(period, index(period, now, tz) + 1, tz)


@functools.lru_cache(maxsize=32)  # one batch query asks for the same scan per streak
def offsets(tz: ZoneInfo, low: int, high: int) -> tuple[tuple[int, int], ...]:
    """The zone's UTC offsets over ``[low, high]``: ``[(from_us, offset_us), ...]``.

    SQL engines without a time zone database compute local times from this list (one
    entry for zones without daylight saving, such as Asia/Shanghai).

    China last changed offset when daylight saving ended on 1991-09-15 at 02:00:

    >>> offsets(ZoneInfo("Asia/Shanghai"), 0, 1_700_000_000_000_000)[-1]
    (684867600000000, 28800000000)
    """
    day = 86_400_000_000
    result: list[tuple[int, int]] = []
    current = low - day
    previous = None
    # Offsets change at most a few times a year; a daily scan finds each change, and a
    # binary search pins it to the second.
    while current <= high + day:
        offset = _offset(current, tz)
        if offset != previous:
            moment = current if previous is None else _change(current - day, current, tz)
            result.append((moment, offset))
            previous = offset
        current += day
    return tuple(result)


def _offset(micros: int, tz: ZoneInfo) -> int:
    delta = from_us(micros, tz).utcoffset()
    assert delta is not None
    return (delta.days * 86_400 + delta.seconds) * 1_000_000


def _change(low: int, high: int, tz: ZoneInfo) -> int:
    """The first instant in ``(low, high]`` with the offset of ``high``."""
    target = _offset(high, tz)
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(middle, tz) == target:
            high = middle
        else:
            low = middle
    return high


def label(period: Period, idx: int) -> str:
    """A period as people write it.

    >>> label("month", 2024 * 12 + 2), label("quarter", 2024 * 4 + 1)
    ('2024-03', '2024-Q2')
    >>> label("week", index_of_date("week", date(2024, 3, 13)))  # a Wednesday of ISO week 11
    '2024-W11'
    """
    if period == "day":
        return date.fromordinal(idx).isoformat()
    if period == "week":
        year, week, _ = (_MONDAY + timedelta(days=7 * idx)).isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return f"{idx // 12}-{idx % 12 + 1:02d}"
    if period == "quarter":
        return f"{idx // 4}-Q{idx % 4 + 1}"
    return str(idx)
