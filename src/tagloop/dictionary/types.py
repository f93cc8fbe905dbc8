"""Field types of the entity dictionary and how incoming values are checked against them.

Checks are strict where a silent coercion would change meaning (the string ``"42"`` is not an
integer: mappings in sources convert it explicitly) and lenient where nothing is lost
(``42.0`` is the integer 42, the number ``1042`` is the string ``"1042"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from tagloop.timeutil import time_text, to_us

Checker = Callable[[Any], Any]

# Attributes every profile has, whatever its dictionary says (events cannot set them).
SYSTEM_ATTRIBUTES: dict[str, str] = {
    "id": "string",
    "event_count": "integer",
    "first_seen": "datetime",
    "last_seen": "datetime",
}


class BadValue(ValueError):
    """A value that does not fit its declared type."""


def _describe(value: Any) -> str:
    text = repr(value)
    kind = type(value).__name__
    names = {
        "str": "string",
        "int": "integer",
        "float": "number",
        "bool": "boolean",
        "dict": "object",
        "list": "list",
    }
    return f"{names.get(kind, kind)} {text if len(text) <= 40 else text[:37] + '...'}"


def _string(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise BadValue(f"expected a string, got {_describe(value)}")


def _integer(value: Any) -> Any:
    if isinstance(value, bool):
        raise BadValue(f"expected an integer, got {_describe(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise BadValue(f"expected an integer, got {_describe(value)}")


def _number(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise BadValue(f"expected a finite number, got {value}")
        return value
    raise BadValue(f"expected a number, got {_describe(value)}")


def _boolean(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    raise BadValue(f"expected true or false, got {_describe(value)}")


def _datetime(value: Any) -> Any:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                raise BadValue(f"datetime {value!r} needs a time zone offset (e.g. +08:00 or Z)")
            return time_text(to_us(parsed))
    raise BadValue(f"expected an ISO 8601 datetime, got {_describe(value)}")


def _date(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise BadValue(f"expected a date (YYYY-MM-DD), got {_describe(value)}")


def _object(value: Any) -> Any:
    if isinstance(value, dict):
        return value
    raise BadValue(f"expected an object, got {_describe(value)}")


def _list(value: Any) -> Any:
    if isinstance(value, list):
        return value
    raise BadValue(f"expected a list, got {_describe(value)}")


CHECKERS: dict[str, Checker] = {
    "string": _string,
    "integer": _integer,
    "number": _number,
    "boolean": _boolean,
    "datetime": _datetime,
    "date": _date,
    "object": _object,
    "list": _list,
    "any": lambda value: value,
}


def check_value(type_name: str, value: Any) -> Any:
    """Return ``value`` normalised for ``type_name`` or raise `BadValue`. Null always passes.

    >>> check_value("integer", 42.0), check_value("string", 1042)
    (42, '1042')
    >>> check_value("datetime", "2024-03-05T08:00:00+08:00")
    '2024-03-05T00:00:00.000000Z'
    >>> check_value("integer", "42")
    Traceback (most recent call last):
    ...
    tagloop.dictionary.types.BadValue: expected an integer, got string '42'
    """
    if value is None:
        return None
    return CHECKERS[type_name](value)
