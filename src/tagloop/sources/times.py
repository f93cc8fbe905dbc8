"""Points in time and calendar dates from what business systems write.

ISO 8601, year-first Chinese and slashed forms (``2024年3月5日 14:30``, ``2024/3/5``),
12-hour words (``下午2点半``), strptime formats and epoch numbers, each with a time zone
for times written without an offset. Results are microseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal
from fractions import Fraction
from typing import Any

from tagloop.sources.coerce import CoerceError, ascii_forms, show
from tagloop.timeutil import from_us, to_us

__all__ = ["to_date", "to_time"]


_EPOCHS = {"s": 1_000_000, "ms": 1_000, "us": 1}
_EPOCH_WORDS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds"}
_EPOCH_TEXT = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
# datetime's own range: beyond it a value is a unit mistake (nanoseconds read as µs).
_MIN_US = to_us(datetime(1, 1, 1))
_MAX_US = to_us(datetime(9999, 12, 31, 23, 59, 59, 999_999))

# 2024年3月5日 14:30, 2024年03月05日 14时30分05秒, 2024年3月5日下午2点半, 2024/3/5 9:05,
# 2024.03.05, 2024-3-5 下午 02:30:00 (.NET's zh-CN format). Year first only: 05/03/2024 is
# 5 March or May 3 depending on who wrote it, and needs an explicit format.
_LOCAL_TIME = re.compile(
    r"""
    (?P<y>[0-9]{4})\s*
    (?:
        年\s*(?P<m>[0-9]{1,2})\s*月\s*(?P<d>[0-9]{1,2})\s*[日号]
      | (?P<sep>[-/.])(?P<m2>[0-9]{1,2})(?P=sep)(?P<d2>[0-9]{1,2})
    )
    (?:
        (?:\s*T\s*|\s+|(?<=[日号])|(?=[上下中晚凌早]))
        (?P<period>上午|早上|凌晨|中午|下午|晚上)?\s*
        (?P<H>[0-9]{1,2})
        (?:
            :(?P<M>[0-9]{2})(?::(?P<S>[0-9]{2})(?:\.(?P<f>[0-9]{1,6}))?)?
          | \s*[时時点點]\s*
            (?:(?P<half>半)|(?P<M2>[0-9]{1,2})\s*分?(?:\s*(?P<S2>[0-9]{1,2})\s*秒)?)?
        )
    )?
    \s*
    """,
    re.VERBOSE,
)
_MORNING = frozenset({"上午", "早上", "凌晨"})


def _hour24(period: str | None, hour: int) -> int | None:
    """The hour on a 24-hour clock, 24 meaning midnight at the end of the day; None if the
    combination makes no sense.

    上午/早上/凌晨 work like AM: 12 is midnight (上午12点 = 00:00, as in .NET's 上午 12:30:00).
    下午 works like PM: 1-11 add 12, 12 stays noon. 中午 is around noon: 11 and 12 stay,
    1-10 add 12 (中午1点 = 13:00). 晚上 adds 12, and 晚上12点 is the midnight that ends the
    day (people write it for 24:00, never for noon). An hour of 13-23 after 下午/中午/晚上 is a
    24-hour clock with a redundant word (下午14点 = 14:00).
    """
    if period is None:
        return hour if hour <= 23 else None
    if period in _MORNING:
        return 0 if hour == 12 else hour if hour < 12 else None
    if hour == 0 or hour > 23:
        return None
    if hour > 12:
        return hour
    if hour == 12:
        return 24 if period == "晚上" else 12
    if period == "中午" and hour == 11:
        return 11
    return hour + 12


def _local_time(value: Any, match: re.Match[str], tz: tzinfo) -> int:
    year, month = int(match["y"]), int(match["m"] or match["m2"])
    day = int(match["d"] or match["d2"])
    hour = minute = second = micro = 0
    if match["H"] is not None:
        hour24 = _hour24(match["period"], int(match["H"]))
        if hour24 is None:
            raise CoerceError(f"{show(value)} is not a valid time (hour {match['H']})")
        hour = hour24
        if match["half"]:
            minute = 30
        else:
            minute = int(match["M"] or match["M2"] or 0)
            second = int(match["S"] or match["S2"] or 0)
            micro = int((match["f"] or "").ljust(6, "0"))
    next_day = hour == 24
    try:
        local = datetime(year, month, day, 0 if next_day else hour, minute, second, micro)
        if next_day:
            local += timedelta(days=1)
    except (ValueError, OverflowError) as exc:
        raise CoerceError(f"{show(value)} is not a valid time ({exc})") from None
    return to_us(local, tz)


def _epoch_us(value: Any, number: int | float | Fraction, epoch: str) -> int:
    unit = epoch
    if epoch == "auto":
        unit = "s" if -1e11 < number < 1e11 else "ms" if -1e14 < number < 1e14 else "us"
    scale = _EPOCHS.get(unit)
    if scale is None:
        raise ValueError(f"unknown epoch {epoch!r} (expected s, ms, us or auto)")
    if isinstance(number, int):
        result = number * scale
    elif isinstance(number, float):
        if not math.isfinite(number):
            raise CoerceError(f"{show(value)} is not a time")
        # Whole and fractional part apart: number * 1e6 would round once more at 1e15, enough
        # to turn 1709596800.123 into ...122999 µs; number - whole is exact.
        whole = int(number)
        result = whole * scale + round((number - whole) * scale)
    else:
        result = round(number * scale)
    if not _MIN_US <= result <= _MAX_US:
        raise CoerceError(f"{show(value)} is out of range as an epoch time in {_EPOCH_WORDS[unit]}")
    return result


def _no_epoch(value: Any) -> CoerceError:
    return CoerceError(
        f"{show(value)} is a number, not a time (set epoch: s|ms|us|auto to read epoch times)"
    )


def to_time(value: Any, *, fmt: str | None = None, tz: tzinfo, epoch: str | None = None) -> int:
    """Read a point in time as microseconds since the Unix epoch (UTC).

    Accepted: datetime and date objects; ISO 8601 text (``2024-03-05T14:30:00Z``,
    ``2024-03-05 14:30+08:00``, ``20240305``); text in ``fmt`` (a strptime format) when
    given, and then only that; year-first local forms: ``2024年3月5日``,
    ``2024年03月05日 14时30分05秒``, ``2024年3月5日下午2点30分``, ``2024/3/5``,
    ``2024-3-5 9:05``, ``2024.03.05``, with full-width digits too; epoch numbers (ints,
    floats, numeric text) when ``epoch`` is ``s``, ``ms``, ``us`` or ``auto``. A bare number
    without ``epoch`` is refused, as a year-like 20240305 or a price must not become a time.

    ``auto`` decides by magnitude: below 1e11 seconds (1e11 s is the year 5138), below 1e14
    milliseconds (1e11 ms is 1973-03-03, 1e14 ms the year 5138), microseconds above. So it
    reads every time from 1973 to 5138 right in any of the three units, and misreads
    milliseconds before March 1973 as seconds.

    A time without an offset is in ``tz``. On the day clocks change, zoneinfo's ``fold=0``
    applies: a time that occurs twice (autumn) is the first, earlier one; a time that does
    not exist (spring) is read with the offset before the change, so 02:30 in a gap from
    02:00 to 03:00 becomes 03:30. See `_hour24` for 上午/下午/中午/晚上.

    >>> from zoneinfo import ZoneInfo
    >>> shanghai = ZoneInfo("Asia/Shanghai")
    >>> to_time("2024-03-05T08:00:00+08:00", tz=shanghai)
    1709596800000000
    >>> to_time("2024年3月5日 8:00", tz=shanghai), to_time("2024年3月5日上午8点", tz=shanghai)
    (1709596800000000, 1709596800000000)
    >>> to_time(1709596800000, tz=shanghai, epoch="auto")
    1709596800000000
    >>> to_time("05/03/2024 08:00", fmt="%d/%m/%Y %H:%M", tz=shanghai)
    1709596800000000
    >>> to_time("1709596800", tz=shanghai)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tagloop.sources.coerce.CoerceError: '1709596800' is a number, not a time (set epoch: ...
    """
    if type(value) is str:
        text = ascii_forms(value).strip()
        if fmt is not None:
            try:
                return to_us(datetime.strptime(text, fmt), tz)
            except ValueError:
                if epoch is None or not _EPOCH_TEXT.fullmatch(text):
                    raise CoerceError(f"{show(value)} does not match the format {fmt!r}") from None
        if epoch is not None and _EPOCH_TEXT.fullmatch(text):
            return _epoch_us(value, Fraction(text) if "." in text else int(text), epoch)
        if text[:4].isdigit():
            try:
                return to_us(datetime.fromisoformat(text), tz)
            except ValueError:
                pass
            match = _LOCAL_TIME.fullmatch(text)
            if match is not None:
                return _local_time(value, match, tz)
            if _EPOCH_TEXT.fullmatch(text):
                raise _no_epoch(value)
        raise CoerceError(
            f"{show(value)} is not a time "
            "(expected e.g. 2024-03-05T14:30:00+08:00, 2024/3/5 14:30 or 2024年3月5日 14:30)"
        )
    if isinstance(value, datetime):
        return to_us(value, tz)
    if isinstance(value, date):
        return to_us(datetime(value.year, value.month, value.day), tz)
    if isinstance(value, bool):
        raise CoerceError(f"{show(value)} is not a time (a boolean)")
    if isinstance(value, int | float | Decimal):
        if epoch is None:
            raise _no_epoch(value)
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise CoerceError(f"{show(value)} is not a time")
            return _epoch_us(value, Fraction(value), epoch)
        return _epoch_us(value, value, epoch)
    raise CoerceError(f"{show(value)} is not a time")


def to_date(value: Any, *, fmt: str | None = None, tz: tzinfo, epoch: str | None = None) -> str:
    """The calendar date (``YYYY-MM-DD``) in ``tz`` of anything `to_time` reads.

    >>> from zoneinfo import ZoneInfo
    >>> shanghai = ZoneInfo("Asia/Shanghai")
    >>> to_date("2024年3月5日", tz=shanghai), to_date("2024-03-04T20:00:00Z", tz=shanghai)
    ('2024-03-05', '2024-03-05')
    """
    if type(value) is date:
        return value.isoformat()
    if type(value) is str and fmt is None and len(value) == 10 and value[4] == value[7] == "-":
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    return from_us(to_time(value, fmt=fmt, tz=tz, epoch=epoch), tz).date().isoformat()
