"""JavaScript's values for JsonLogic: types, coercions, equality, order and truthiness,
as ECMAScript defines them and json-logic-js relies on them.

Values are JSON values as Python holds them (None, bool, int, float, str, list, dict),
plus the NaN and infinities arithmetic makes; `UNDEFINED` stands for an argument that was
not given. Numbers are doubles, as in JavaScript. `tagloop.rules.jsfuncs` builds
JsonLogic's operators from these.

>>> loose_equals(1, "1"), strict_equals(1, "1"), less_than(None, 1), less_than("10", "9")
(True, False, True, True)
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any


class _Undefined:
    __slots__ = ()

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED: Any = _Undefined()
NAN = math.nan
# JavaScript's StrWhiteSpaceChar: what Number() and parseFloat() skip.
_SPACE = "\t\n\v\f\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff" + "".join(
    chr(c) for c in range(0x2000, 0x200B)
)
_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_RADIX = re.compile(r"0([xXoObB])([0-9a-zA-Z]+)")
_INDEX = re.compile(r"0|[1-9][0-9]*")


def kind(value: Any) -> str:
    """JavaScript's type of a value: undefined, null, boolean, number, string or object."""
    if value is None:
        return "null"
    if value is UNDEFINED:
        return "undefined"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else "object"


def _float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer beyond the doubles, as JavaScript would read it
        return math.inf if value > 0 else -math.inf


def to_number(value: Any) -> float:
    """JavaScript's ``Number(value)``.

    >>> to_number(" 12 "), to_number(""), to_number("0x1f"), to_number([5]), to_number(None)
    (12.0, 0.0, 31.0, 5.0, 0.0)
    """
    k = kind(value)
    if k == "number":
        return _float(value)
    if k in ("null", "boolean"):
        return 1.0 if value is True else 0.0
    if k == "undefined":
        return NAN
    text = to_string(value).strip(_SPACE)
    if not text:
        return 0.0
    if _DECIMAL.fullmatch(text):
        return float(text)
    radix = _RADIX.fullmatch(text)
    if radix:
        try:
            return _float(int(radix.group(2), {"x": 16, "o": 8, "b": 2}[radix[1].lower()]))
        except ValueError:
            return NAN
    return NAN


def parse_float(value: Any) -> float:
    """JavaScript's ``parseFloat(value)``: the longest number at the start of its text.

    >>> parse_float("3.5kg"), parse_float(None), parse_float(True), parse_float([1, 2])
    (3.5, nan, nan, 1.0)
    """
    if kind(value) == "number":
        number = _float(value)
        return 0.0 if number == 0 else number  # String(-0) is "0"
    match = _DECIMAL.match(to_string(value).lstrip(_SPACE))
    return float(match.group()) if match else NAN


def number_to_string(x: float) -> str:
    """JavaScript's ``String(x)`` for a number.

    >>> [number_to_string(x) for x in (3.0, 1e21, 1e-7, 0.1 + 0.2)]
    ['3', '1e+21', '1e-7', '0.30000000000000004']
    """
    if math.isnan(x):
        return "NaN"
    if x == 0:
        return "0"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x < 0:
        return "-" + number_to_string(-x)
    # The shortest digits that read back as x (Python's repr and JavaScript agree on them),
    # laid out by ECMAScript's Number::toString rules.
    _, digit_tuple, exponent = Decimal(repr(x)).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    k, n = len(digits), exponent + len(digit_tuple)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return f"{digits[:n]}.{digits[n:]}"
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{mantissa}e{'+' if n > 0 else '-'}{abs(n - 1)}"


def to_string(value: Any) -> str:
    """JavaScript's ``String(value)``; a list joins its items with commas, null as ''."""
    k = kind(value)
    if k == "string":
        return str(value)
    if k == "number":
        return number_to_string(_float(value))
    if k in ("boolean", "null", "undefined"):
        return {True: "true", False: "false", None: "null"}.get(value, "undefined")
    if isinstance(value, list):
        return ",".join("" if v is None or v is UNDEFINED else to_string(v) for v in value)
    return "[object Object]"


def truthy(value: Any) -> bool:
    """JsonLogic's truthiness: JavaScript's, except that an empty list is false.

    >>> [truthy(v) for v in ([], [0], "", "0", 0, math.nan, {}, None)]
    [False, True, False, True, False, False, True, False]
    """
    if value is None or value is UNDEFINED or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, int | float):
        return value == value and value != 0  # NaN is false
    if isinstance(value, str | list):
        return len(value) > 0
    return True


def strict_equals(a: Any, b: Any) -> bool:
    """JavaScript's ``===``; lists and objects are equal only to themselves."""
    ka = kind(a)
    if ka != kind(b):
        return False
    if ka == "number":
        return _float(a) == _float(b)
    return a is b if ka == "object" else bool(a == b)


def loose_equals(a: Any, b: Any) -> bool:
    """JavaScript's ``==`` (the Abstract Equality Comparison)."""
    ka, kb = kind(a), kind(b)
    if ka == kb:
        return strict_equals(a, b)
    if {ka, kb} == {"null", "undefined"}:
        return True
    if ka == "boolean":
        return loose_equals(to_number(a), b)
    if kb == "boolean":
        return loose_equals(a, to_number(b))
    if {ka, kb} == {"number", "string"}:
        return to_number(a) == to_number(b)
    if ka == "object" and kb in ("number", "string"):
        return loose_equals(to_string(a), b)
    if kb == "object" and ka in ("number", "string"):
        return loose_equals(a, to_string(b))
    return False


def utf16(text: str) -> bytes:
    """The UTF-16 code units of ``text`` (big-endian, so bytes order as units do)."""
    return text.encode("utf-16-be", "surrogatepass")


def compare(a: Any, b: Any) -> bool | None:
    """JavaScript's Abstract Relational Comparison ``a < b``; None when NaN is involved."""
    pa = to_string(a) if kind(a) == "object" else a
    pb = to_string(b) if kind(b) == "object" else b
    if isinstance(pa, str) and isinstance(pb, str):
        # By UTF-16 code units, not code points: they differ beyond U+FFFF.
        return utf16(pa) < utf16(pb)
    x, y = to_number(pa), to_number(pb)
    return None if math.isnan(x) or math.isnan(y) else x < y


def less_than(a: Any, b: Any) -> bool:
    return compare(a, b) is True


def less_equal(a: Any, b: Any) -> bool:
    return compare(b, a) is False  # JavaScript's a <= b is "not b < a", and false with NaN


def utf16_length(text: str) -> int:
    return len(utf16(text)) // 2


def member(value: Any, key: str) -> Any:
    """``value[key]`` in JavaScript, for JSON values."""
    if isinstance(value, dict):
        return value.get(key, UNDEFINED)
    if isinstance(value, list | str):
        if key == "length":
            return len(value) if isinstance(value, list) else utf16_length(value)
        if _INDEX.fullmatch(key):
            i = int(key)
            if isinstance(value, list):
                return value[i] if i < len(value) else UNDEFINED
            units = utf16(value)
            return units[2 * i : 2 * i + 2].decode("utf-16-be", "surrogatepass") or UNDEFINED
    return UNDEFINED


def var(data: Any, path: Any = UNDEFINED, default: Any = UNDEFINED) -> Any:
    """JsonLogic's ``var``: ``path`` split on dots into ``data``, else ``default``.

    >>> var({"a": [{"b": 1}]}, "a.0.b"), var(None, "a", 9), var([1, 2], ""), var("xyz", 1)
    (1, 9, [1, 2], 'y')
    """
    not_found = None if default is UNDEFINED else default
    if path is UNDEFINED or path is None or (isinstance(path, str) and not path):
        return data
    for part in to_string(path).split("."):
        if data is None or data is UNDEFINED:
            return not_found
        data = member(data, part)
        if data is UNDEFINED:
            return not_found
    return data


def to_json(value: Any) -> Any:
    """A JavaScript value as JSON holds it: NaN and the infinities become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value
