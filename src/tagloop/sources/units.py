"""Unit conversion for source fields (``unit: 斤``, ``to: kg``), on pint.

pint's units plus the Chinese names people write in configuration; only conversions by a
factor and an offset, computed exactly (100 degC is 212.0 degF, not 211.99999999999991).
"""

from __future__ import annotations

import math
import threading
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from tagloop.sources.coerce import CoerceError, show

if TYPE_CHECKING:
    import pint

__all__ = ["check_unit_pair", "convert_unit"]


# What people write in configuration that pint does not know, mapped to pint's spelling.
_UNIT_ALIASES = {
    "克": "g",
    "千克": "kg",
    "公斤": "kg",
    "斤": "shi_jin",
    "市斤": "shi_jin",
    "吨": "t",
    "公吨": "t",
    "毫米": "mm",
    "厘米": "cm",
    "米": "m",
    "千米": "km",
    "公里": "km",
    "秒": "s",
    "分钟": "min",
    "小时": "h",
    "天": "day",
    "摄氏度": "degC",
    "℃": "degC",
    "华氏度": "degF",
    "℉": "degF",
    "瓦": "W",
    "千瓦": "kW",
    "千瓦时": "kWh",
    # 度 on an electricity bill is a kilowatt-hour; temperatures are 摄氏度 or ℃.
    "度": "kWh",
    "毫升": "mL",
    "升": "L",
    # Meter and billing exports write these in any case; pint is case-sensitive (mW ≠ MW),
    # so only unambiguous spellings are folded.
    "kwh": "kWh",
    "KWH": "kWh",
    "KWh": "kWh",
    "kw": "kW",
    "KW": "kW",
    "mwh": "MWh",
    "MWH": "MWh",
    "KG": "kg",
    "Kg": "kg",
    "kmh": "km/h",
    "kph": "km/h",
}
_UNIT_EXAMPLES = "examples: kg, km/h, degC, kWh, 公斤, 摄氏度"

_registry: pint.UnitRegistry[Any] | None = None
_registry_lock = threading.Lock()


def _units() -> pint.UnitRegistry[Any]:
    """The unit registry, created on first use: importing pint and building its registry
    takes about half a second, which processes without unit conversions should not pay."""
    global _registry
    if _registry is None:
        with _registry_lock:
            if _registry is None:
                import pint

                # Fractions make conversion factors exact (9/5 and 32 for degC -> degF, where
                # floats give 211.99999999999991 for 100 degC).
                registry: pint.UnitRegistry[Any] = pint.UnitRegistry(non_int_type=Fraction)
                registry.define("shi_jin = 0.5 * kilogram")
                _registry = registry
    return _registry


def _parse_unit(registry: pint.UnitRegistry[Any], text: str) -> pint.Unit:
    name = text.strip()
    name = _UNIT_ALIASES.get(name, name)
    if not name:
        raise CoerceError(f"unknown unit {show(text)} ({_UNIT_EXAMPLES})")
    try:
        return registry.parse_units(name)
    except Exception:
        # pint's expression parser raises whatever its tokenizer or arithmetic hits on
        # malformed input (TokenError, AssertionError, ZeroDivisionError, ...).
        raise CoerceError(f"unknown unit {show(text)} ({_UNIT_EXAMPLES})") from None


def _dimensions(unit: pint.Unit) -> str:
    # str(unit.dimensionality) fails with Fraction exponents on Python 3.11.
    above: list[str] = []
    below: list[str] = []
    for name, power in unit.dimensionality.items():
        size = abs(Fraction(str(power)))
        label = name.strip("[]") if size == 1 else f"{name.strip('[]')}**{size}"
        (above if size == power else below).append(label)
    if not above and not below:
        return "dimensionless"
    text = " * ".join(above) or "1"
    return text + "".join(f" / {label}" for label in below)


@lru_cache(maxsize=512)
def _linear(from_unit: str, to_unit: str) -> tuple[float, float, float]:
    """``(p, q, r)`` such that a value x converts to ``(x * p + q) / r``.

    With p, q and r whole numbers, 100 degC -> degF is (100 * 9 + 160) / 5 = 212.0 and
    212 degF -> degC is (212 * 5 - 160) / 9 = 100.0 exactly, which a float factor and offset
    (1.7999999999999998, 31.999999999999943) would not give.
    """
    registry = _units()
    source, target = _parse_unit(registry, from_unit), _parse_unit(registry, to_unit)
    if source.dimensionality != target.dimensionality:
        raise CoerceError(
            f"cannot convert {show(from_unit)} to {show(to_unit)}: different dimensions "
            f"({_dimensions(source)}, {_dimensions(target)})"
        )

    def at(x: int) -> Fraction:
        return Fraction(registry.Quantity(Fraction(x), source).to(target).magnitude)

    try:
        offset = at(0)
        factor = at(1) - offset
        # Logarithmic units (dB) are not a factor and an offset: refuse them rather than
        # convert wrongly.
        linear = at(10) == 10 * factor + offset
    except Exception:
        linear = False
    if not linear:
        raise CoerceError(
            f"cannot convert {show(from_unit)} to {show(to_unit)} (only conversions by a "
            "factor and an offset, not logarithmic units)"
        )
    denominator = math.lcm(factor.denominator, offset.denominator)
    p = factor.numerator * (denominator // factor.denominator)
    q = offset.numerator * (denominator // offset.denominator)
    if max(abs(p), abs(q), denominator) <= 2**53:
        return float(p), float(q), float(denominator)
    return float(factor), float(offset), 1.0


def check_unit_pair(from_unit: str, to_unit: str) -> None:
    """Refuse a conversion that cannot work (unknown unit, different dimensions) when the
    configuration is loaded, rather than on every record.

    >>> check_unit_pair("公斤", "lb")
    >>> check_unit_pair("kg", "m")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tagloop.sources.coerce.CoerceError: cannot convert 'kg' to 'm': different dimensions (mass, ...
    """
    _linear(from_unit, to_unit)


def convert_unit(value: float, from_unit: str, to_unit: str) -> float:
    """Convert a number between units: pint's units plus Chinese names (克, 千克/公斤,
    斤 = 0.5 kg, 吨 = t, 毫米, 厘米, 米, 公里, 秒, 分钟, 小时, 摄氏度/℃, 华氏度/℉, 千瓦,
    千瓦时 and 度 = kWh).

    >>> convert_unit(100, "degC", "degF"), convert_unit(3, "斤", "kg"), convert_unit(2, "度", "kJ")
    (212.0, 1.5, 7200.0)
    """
    p, q, r = _linear(from_unit, to_unit)
    return (value * p + q) / r
