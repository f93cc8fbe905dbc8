"""Typed values from the raw fields of business systems (ERP, CRM, call centre exports, IoT).

Source mappings declare a type per field (``string``, ``number``, ``integer``, ``boolean``,
``time``, ``date``) and optionally a unit conversion. This module reads numbers, booleans
and text; `tagloop.sources.times` reads times and dates, `tagloop.sources.units` converts
units. None of them does I/O. A value that cannot be read raises `CoerceError` whose
message is only what is wrong with the value (``'12,3x' is not a number``): the caller
prefixes the source, record and field.

These functions run per field per record, so each one returns at once for a value that
already has the right type and handles plain ASCII text before any regular expression.
"""

from __future__ import annotations

import math
import numbers
import re
from datetime import date
from decimal import Decimal
from typing import Any

import orjson

__all__ = ["CoerceError", "to_bool", "to_integer", "to_number", "to_string"]


class CoerceError(ValueError):
    """A value that cannot be read as the declared type; the message names the value and
    what is wrong (``'12,3x' is not a number``), not where it came from."""


def show(value: Any) -> str:
    """``value`` quoted for a message, shortened.

    >>> show("12,3x"), show("x" * 100)[-5:]
    ("'12,3x'", 'x...')
    """
    # Messages quote the value; a whole JSON document or a page of text would bury the point.
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# Full-width forms (ＡＳＣＩＩ) are what Chinese input methods type: fold them to ASCII
# before parsing so that １２３，４５６ and 2024年３月５日 read like their ASCII spelling.
_FULLWIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
_FULLWIDTH.update({0x3000: 0x20, 0x2212: ord("-"), 0xFFE5: ord("¥")})


def ascii_forms(text: str) -> str:
    """``text`` with full-width forms folded to ASCII.

    >>> ascii_forms("１２３，４５６")
    '123,456'
    """
    return text if text.isascii() else text.translate(_FULLWIDTH)


# ---------------------------------------------------------------------------------------------
# Numbers

_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?")

# Everything else a number may look like in an export. The grouping rule (a first group of
# 1-3 digits, then groups of exactly 3) is what rejects 12,3 and 1,23: those are decimal
# commas or typos, and guessing either way would silently change a value by 1000 times.
_NUMBER = re.compile(
    r"""
    (?P<open>\(\s*)?
    (?P<sign>[+-])?
    (?:(?P<currency>[¥$]|(?i:rmb|cny))\s*)?
    (?P<sign2>[+-])?
    (?P<int>
        [0-9]{1,3}(?:,[0-9]{3})+
      | [0-9]{1,3}(?:[\x20\u00a0\u202f\u2009][0-9]{3})+
      | [0-9]+
    )?
    (?:\.(?P<frac>[0-9]+))?
    (?:[eE](?P<exp>[+-]?[0-9]+))?
    \s*
    (?:(?P<percent>%)|(?P<magnitude>[万亿])?\s*(?P<yuan>元)?)
    (?P<close>\s*\))?
    """,
    re.VERBOSE,
)
_MAGNITUDE = {"万": 4, "亿": 8}
# 1.234,5 and 1.234.567: European grouping; 1,5 and 1234,5: a decimal comma. Each is a
# valid number somewhere, so they are refused with a hint rather than read one way.
_EUROPEAN = re.compile(
    r"[+-]?(?:(?:[0-9]{1,3}(?:\.[0-9]{3})+|[0-9]+),[0-9]+|[0-9]{1,3}(?:\.[0-9]{3}){2,})"
)
# 1e400 and 1e-400 are not values any business system means; the bound also keeps 10**k cheap.
_MAX_EXPONENT = 400


def _decimal(value: Any, text: str, noun: str) -> tuple[int, int, bool]:
    """Read number text as ``(n, k, whole)``, the value being ``n * 10**k`` exactly;
    ``whole`` is whether the text is written as a whole number (no decimals, exponent or
    percent, or a fraction scaled by 万/亿)."""
    text = ascii_forms(text).strip()
    match = _NUMBER.fullmatch(text)
    if match is None or (match["int"] is None and match["frac"] is None):
        hint = ""
        if _EUROPEAN.fullmatch(text):
            hint = " (European-style separators are not read: write e.g. 1234.5 or 1,234.5)"
        raise CoerceError(f"{show(value)} is not {noun}{hint}")
    int_part, frac, exp = match["int"] or "", match["frac"] or "", match["exp"]
    grouped = len(int_part) > 3 and not int_part.isdigit()
    if (
        (match["open"] is None) != (match["close"] is None)
        or (match["open"] is not None and (match["sign"] or match["sign2"]))
        or (match["sign"] and match["sign2"])
        or (exp is not None and (grouped or match["magnitude"] or match["percent"]))
        or (match["percent"] and match["currency"])
    ):
        raise CoerceError(f"{show(value)} is not {noun}")
    k = -len(frac)
    if exp is not None:
        exponent = int(exp)
        if abs(exponent) > _MAX_EXPONENT:
            raise CoerceError(f"{show(value)} is not {noun} (out of range)")
        k += exponent
    if match["percent"]:
        k -= 2
    if match["magnitude"]:
        k += _MAGNITUDE[match["magnitude"]]
    try:
        n = int("".join(ch for ch in int_part if ch.isdigit()) + frac)
    except ValueError:
        # More digits than int() converts (sys.int_max_str_digits): nothing meant as a value.
        raise CoerceError(f"{show(value)} is not {noun} (too many digits)") from None
    if match["open"] is not None or "-" in (match["sign"], match["sign2"]):
        n = -n
    whole = not match["percent"] and exp is None and (not frac or bool(match["magnitude"]))
    return n, k, whole


def _ten(k: int) -> int:
    # 10**k is typed Any (a negative k would make it a float); k is never negative here.
    return int(10**k)


def _as_float(value: Any, n: int, k: int, noun: str) -> float:
    # int * int and int / int are exact or correctly rounded, unlike a float multiplied by
    # 0.01 or 1e4 (1.1万 must be 11000, not 11000.000000000002).
    try:
        result = float(n * _ten(k)) if k >= 0 else n / _ten(-k)
    except OverflowError:
        result = math.inf
    if math.isinf(result):
        raise CoerceError(f"{show(value)} is not {noun} (out of range)")
    return result


def _number(value: Any, noun: str) -> int | float:
    if type(value) is str:
        try:
            if value.isascii():
                if value.isdigit():
                    return int(value)
                if _PLAIN_NUMBER.fullmatch(value):
                    text: str = value.replace(",", "") if "," in value else value
                    if "." not in text:
                        return int(text)
                    result = float(text)
                    if not math.isinf(result):
                        return result
        except ValueError:
            pass  # more digits than int() converts: the general path explains
        n, k, whole = _decimal(value, value, noun)
        if whole and k >= 0:
            return n * _ten(k)
        if whole and n % _ten(-k) == 0:
            return n // _ten(-k)
        return _as_float(value, n, k, noun)
    if isinstance(value, bool):
        raise CoerceError(f"{show(value)} is not {noun} (a boolean)")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        raise CoerceError(f"{show(value)} is not {noun}")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise CoerceError(f"{show(value)} is not {noun}")
        # DECIMAL columns (MySQL, PostgreSQL): 12 and 12.00 keep the distinction text has.
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent >= 0:
            return int(value)
        return float(value)
    if isinstance(value, numbers.Integral):  # numpy and other integer types
        return int(value)
    if isinstance(value, numbers.Real):
        result = float(value)
        if math.isfinite(result):
            return result
    raise CoerceError(f"{show(value)} is not {noun}")


def to_number(value: Any) -> int | float:
    """Read a number: an int stays an int, text without a decimal part becomes an int.

    Accepted text: surrounding whitespace; thousands separators (``1,234,567.89``,
    ``1 234``, full-width ``１２３，４５６``); a currency (``¥``, ``￥``, ``$``, ``RMB``,
    ``CNY`` before, ``元`` after); ``%`` (a fraction: ``12.5%`` is 0.125, always a float);
    ``万`` (10⁴) and ``亿`` (10⁸), which give an int when the result is whole; a sign or
    accounting parentheses (``(1,200)`` is -1200); an exponent (``1.5e3``, a float).
    Refused: NaN, infinities, empty text, misplaced separators and European-style numbers
    (``1.234,5``), which would be read 1000 times off if guessed wrong.

    >>> to_number("1,234,567.89"), to_number("¥1,200"), to_number("(1,200)")
    (1234567.89, 1200, -1200)
    >>> to_number("12.5%"), to_number("3.5万"), to_number("１２３，４５６")
    (0.125, 35000, 123456)
    >>> to_number(" RMB 2亿元 "), to_number("-$0.5e3"), to_number("1 234")
    (200000000, -500.0, 1234)
    >>> to_number("12,3x")
    Traceback (most recent call last):
    ...
    tagloop.sources.coerce.CoerceError: '12,3x' is not a number
    >>> to_number("1.234,5")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tagloop.sources.coerce.CoerceError: '1.234,5' is not a number (European-style separators ...
    """
    if type(value) is int:
        return value
    if type(value) is float and math.isfinite(value):
        return value
    return _number(value, "a number")


def to_integer(value: Any) -> int:
    """Read a whole number (exactly: ``2.0``, ``1e3`` and ``1.5万`` are whole, ``2.5`` is not).

    >>> to_integer("1,200"), to_integer(7.0), to_integer("2.50万"), to_integer("1e3")
    (1200, 7, 25000, 1000)
    >>> to_integer("12345678901234567.0")
    12345678901234567
    >>> to_integer("2.5")
    Traceback (most recent call last):
    ...
    tagloop.sources.coerce.CoerceError: '2.5' is not an integer
    """
    if type(value) is int:
        return value
    if type(value) is str:
        if value.isdigit() and value.isascii() and len(value) < 4000:
            return int(value)
        # Text is read exactly: through a float, 12345678901234567.0 would lose its last digit.
        n, k, _ = _decimal(value, value, "an integer")
        if k >= 0:
            return n * _ten(k)
        whole, rest = divmod(n, _ten(-k))
        if rest == 0:
            return whole
        raise CoerceError(f"{show(value)} is not an integer")
    number = _number(value, "an integer")
    if isinstance(number, int):
        return number
    if number.is_integer():
        return int(number)
    raise CoerceError(f"{show(value)} is not an integer")


# ---------------------------------------------------------------------------------------------
# Booleans

_BOOLEANS = {
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "y": True,
    "n": False,
    "1": True,
    "0": False,
    "on": True,
    "off": False,
    "是": True,
    "否": False,
    "真": True,
    "假": False,
    "对": True,
    "错": False,
}


def to_bool(value: Any) -> bool:
    """Read a boolean: ``true/false``, ``yes/no``, ``y/n``, ``1/0``, ``on/off``, ``是/否``,
    ``真/假``, ``对/错`` in any case and with surrounding whitespace; booleans; the ints 0 and 1.

    Nothing else is guessed (not ``t``, ``ok`` or ``2``): a flag read wrong is worse than a
    record refused.

    >>> to_bool("Yes"), to_bool(" 否 "), to_bool(1), to_bool("OFF")
    (True, False, True, False)
    >>> to_bool("maybe")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tagloop.sources.coerce.CoerceError: 'maybe' is not a boolean (expected true/false, yes/no, ...
    """
    if type(value) is bool:
        return value
    if type(value) is str:
        found = _BOOLEANS.get(value)
        if found is None:
            found = _BOOLEANS.get(value.strip().lower())
        if found is not None:
            return found
    elif isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise CoerceError(
        f"{show(value)} is not a boolean "
        "(expected true/false, yes/no, y/n, 1/0, on/off, 是/否, 真/假 or 对/错)"
    )


# ---------------------------------------------------------------------------------------------
# Text


def to_string(value: Any) -> str:
    """Text, stripped; a number is written as people write it (``12``, not ``12.0``).

    Booleans become ``true``/``false``, times and dates ISO 8601, lists and objects compact
    JSON.

    >>> to_string("  CUST-0042 "), to_string(12.0), to_string(2.5), to_string(True)
    ('CUST-0042', '12', '2.5', 'true')
    """
    if type(value) is str:
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(float(value))
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return str(int(value))
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise CoerceError(f"{show(value)} is not UTF-8 text") from None
    if isinstance(value, dict | list):
        try:
            return orjson.dumps(value).decode()
        except orjson.JSONEncodeError as exc:
            raise CoerceError(f"{show(value)} cannot be written as JSON text ({exc})") from None
    raise CoerceError(f"{show(value)} is not text")
