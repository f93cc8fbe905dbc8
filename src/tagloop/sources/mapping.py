"""Mapping a source record to a canonical event (``mapping:`` in sources/*.yaml)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from tagloop.dictionary import Dictionary
from tagloop.dictionary.types import BadValue, check_value
from tagloop.ingest.event import Event
from tagloop.rules import DictContext, Scope, compile_rule
from tagloop.sources import coerce, times, units
from tagloop.timeutil import zone
from tagloop.workspace.models import RecordMapping


class MappingError(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


_TEXT_BOOLEANS = {
    "true": True,
    "false": False,
    "1": True,
    "0": False,
    "yes": True,
    "no": False,
    "是": True,
    "否": False,
}


def from_text(type_name: str, text: str) -> Any:
    """Convert a text cell (CSV has no types) to a declared field type.

    >>> from_text("integer", "1_000"), from_text("number", "2.55"), from_text("boolean", "是")
    (1000, 2.55, True)
    """
    try:
        if type_name == "integer":
            return int(text)
        if type_name == "number":
            value = float(text)
            return (
                int(value)
                if value.is_integer() and "." not in text and "e" not in text.lower()
                else value
            )
        if type_name == "boolean":
            return _TEXT_BOOLEANS[text.strip().lower()]
        if type_name in ("object", "list"):
            import orjson

            return orjson.loads(text)
    except (ValueError, KeyError):
        raise BadValue(f"{text!r} is not a valid {type_name}") from None
    return text


def coerce_value(
    value: Any,
    type_name: str,
    *,
    fmt: str | None = None,
    tz: tzinfo,
    epoch: str | None = None,
) -> Any:
    """Convert a raw value to a declared field type: ``string``, ``number``, ``integer``,
    ``boolean``, ``time`` (epoch µs) or ``date`` (``YYYY-MM-DD`` text).

    >>> from zoneinfo import ZoneInfo
    >>> utc = ZoneInfo("UTC")
    >>> coerce_value("1,234", "integer", tz=utc), coerce_value("是", "boolean", tz=utc)
    (1234, True)
    >>> coerce_value(1709596800, "date", tz=utc, epoch="s")
    '2024-03-05'
    """
    if type_name == "string":
        return coerce.to_string(value)
    if type_name == "number":
        return coerce.to_number(value)
    if type_name == "integer":
        return coerce.to_integer(value)
    if type_name == "boolean":
        return coerce.to_bool(value)
    if type_name == "time":
        return times.to_time(value, fmt=fmt, tz=tz, epoch=epoch)
    if type_name == "date":
        return times.to_date(value, fmt=fmt, tz=tz, epoch=epoch)
    raise ValueError(
        f"unknown field type {type_name!r} (expected string, number, integer, boolean, time "
        "or date)"
    )


class RecordMapper:
    """Turns the records of one stream into events according to a `RecordMapping`.

    >>> from tagloop.dictionary import Dictionary
    >>> from tagloop.workspace.models import EntityTypeSpec
    >>> dictionary = Dictionary([EntityTypeSpec(name="customer")])
    >>> mapping = RecordMapping(type="order", entity_type="customer", entity_id="客户",
    ...     entity_id_pattern=r"^C-(\\d+)$", time="下单日期",
    ...     fields={"amount": {"from": "金额", "type": "number"}},
    ...     constants={"channel": "erp"}, computed={"with_tax": "amount * 1.13"},
    ...     properties={"amount": "amount", "channel": "channel", "with_tax": "with_tax"})
    >>> mapper = RecordMapper(mapping, source="erp", dictionary=dictionary,
    ...     timezone=zone("Asia/Shanghai"), typed_input=False)
    >>> event = mapper.to_event({"客户": "C-0042", "下单日期": "2024年3月5日", "金额": "1,200"},
    ...     key="o-1", received_at=0)
    >>> event.entity_id, event.properties["amount"], round(event.properties["with_tax"], 2)
    ('0042', 1200, 1356.0)
    >>> mapper.to_event({"客户": "C-1", "下单日期": "2024年3月5日", "金额": "12,3x"},
    ...     key="o-2", received_at=0)
    Traceback (most recent call last):
    ...
    tagloop.sources.mapping.MappingError: amount: '12,3x' is not a number
    """

    def __init__(
        self,
        mapping: RecordMapping,
        *,
        source: str,
        dictionary: Dictionary,
        timezone: ZoneInfo,
        typed_input: bool,
    ) -> None:
        self.mapping = mapping
        self.source = source
        self.dictionary = dictionary
        self.timezone = zone(mapping.timezone) if mapping.timezone else timezone
        # CSV cells are all text: convert them to the dictionary's declared types.
        self.typed_input = typed_input
        self.rules = [(name, mapping.rule(name)) for name in mapping.fields]
        self.field_zones = {
            name: zone(rule.timezone) if rule.timezone else self.timezone
            for name, rule in self.rules
        }
        self.computed = _compile_computed(mapping, self.timezone)
        self.pattern = re.compile(mapping.entity_id_pattern) if mapping.entity_id_pattern else None
        used = {
            mapping.entity_id,
            *mapping.id,
            *mapping.attributes.values(),
            *mapping.related.values(),
        }
        # A renamed column is consumed by its field: `properties: "*"` keeps the new name.
        used |= {rule.from_ for name, rule in self.rules if rule.from_ and rule.from_ != name}
        if mapping.type_field:
            used.add(mapping.type_field)
        if mapping.time:
            used.add(mapping.time)
        self.used = used
        self.plain = not (self.rules or mapping.constants or self.computed)

    def columns_missing(self, columns: set[str]) -> list[str]:
        """Mapped columns absent from a file's columns (fields with a default may be)."""
        produced = {name for name, _ in self.rules} | set(self.mapping.constants)
        produced |= set(self.computed)
        wanted = set(self.used) - produced
        wanted |= {rule.from_ or name for name, rule in self.rules if rule.default is None}
        if isinstance(self.mapping.properties, dict):
            wanted |= set(self.mapping.properties.values()) - produced
        return sorted(c for c in wanted if "." not in c and c not in columns)

    def normalise(
        self, values: dict[str, Any], meta: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The record's values after ``fields``, ``constants`` and ``computed``."""
        if self.plain:
            return values
        out = dict(values)
        for name, rule in self.rules:
            value = _get(values, meta, rule.from_ or name)
            if not _present(value):
                if rule.default is None:
                    out.pop(name, None)
                    continue
                value = rule.default
            if rule.type is not None:
                try:
                    value = coerce_value(
                        value,
                        rule.type,
                        fmt=rule.format,
                        tz=self.field_zones[name],
                        epoch=rule.epoch,
                    )
                    if rule.unit is not None and rule.to is not None:
                        value = units.convert_unit(value, rule.unit, rule.to)
                except coerce.CoerceError as exc:
                    raise MappingError(name, str(exc)) from None
            out[name] = value
        out.update(self.mapping.constants)
        for name, (fn, kind) in self.computed.items():
            try:
                result = fn(DictContext(out))
            except (ArithmeticError, TypeError, ValueError) as exc:
                raise MappingError(name, f"cannot compute: {exc}") from None
            if result is not None and kind == "integer" and isinstance(result, float):
                result = int(result) if result.is_integer() else result
            out[name] = result
        return out

    def to_event(
        self,
        values: dict[str, Any],
        *,
        key: str,
        received_at: int,
        meta: dict[str, Any] | None = None,
    ) -> Event:
        """The event of one record; ``key`` (the record's identity in its system) makes
        the event id deterministic, so reading the same record again is deduplicated."""
        m = self.mapping
        values = self.normalise(values, meta)
        event_type = m.type if m.type is not None else self._text(values, meta, m.type_field or "")
        entity_id = self._text(values, meta, m.entity_id)
        if self.pattern is not None:
            found = self.pattern.search(entity_id)
            if found is None or not found.group(1):
                raise MappingError(
                    m.entity_id, f"{entity_id!r} does not match {self.pattern.pattern!r}"
                )
            entity_id = found.group(1)
        entity = self.dictionary.get(m.entity_type)
        time = self._time(values, meta) if m.time else received_at
        if m.id:
            event_id = ":".join(self._text(values, meta, column) for column in m.id)
        else:
            digest = hashlib.sha256(f"{self.source}\0{key}".encode()).hexdigest()
            event_id = f"{self.source}:{digest[:32]}"
        if m.properties == "*":
            props = {k: v for k, v in values.items() if k not in self.used and _present(v)}
        else:
            props = {}
            for name, column in m.properties.items():
                value = _get(values, meta, column)
                if _present(value):
                    props[name] = value
        attrs = {}
        for name, column in m.attributes.items():
            value = _get(values, meta, column)
            if _present(value):
                attrs[name] = value
        related = {}
        for related_type, column in m.related.items():
            value = _get(values, meta, column)
            if _present(value):
                related[related_type] = str(value).strip()
        if entity is not None and self.typed_input:
            spec = entity.spec.events.get(event_type)
            if spec is not None:
                props = self._convert(props, spec.properties, "properties")
            attrs = self._convert(attrs, entity.spec.fields, "attributes")
        return Event(
            id=event_id,
            type=event_type,
            entity_type=m.entity_type,
            entity_id=entity_id,
            time=time,
            properties=_plain(props),
            related=related,
            attributes=_plain(attrs) or None,
            source=self.source,
            received_at=received_at,
        )

    def _text(self, values: dict[str, Any], meta: dict[str, Any] | None, column: str) -> str:
        value = _get(values, meta, column)
        if not _present(value):
            raise MappingError(column, "is empty")
        text = str(value).strip()
        # Spreadsheet exports write integer ids as floats ("17850.0").
        if (isinstance(value, float) and value.is_integer()) or (
            text.endswith(".0") and text[:-2].isdigit()
        ):
            text = text[:-2] if text.endswith(".0") else text
        return text

    def _time(self, values: dict[str, Any], meta: dict[str, Any] | None) -> int:
        column = self.mapping.time or ""
        value = _get(values, meta, column)
        if not _present(value):
            raise MappingError(column, "is empty")
        if column in self.mapping.fields and self.mapping.rule(column).type == "time":
            return int(value)  # already converted by its field rule (µs)
        try:
            return times.to_time(
                value, fmt=self.mapping.time_format, tz=self.timezone, epoch=self.mapping.epoch
            )
        except coerce.CoerceError as exc:
            hint = "" if self.mapping.time_format else " (set time_format, e.g. '%d/%m/%Y %H:%M')"
            raise MappingError(column, f"{exc}{hint}") from None

    @staticmethod
    def _convert(values: dict[str, Any], declared: dict[str, Any], where: str) -> dict[str, Any]:
        out = dict(values)
        for name, value in values.items():
            spec = declared.get(name)
            if spec is None or not isinstance(value, str):
                continue
            try:
                out[name] = check_value(spec.type, from_text(spec.type, value.strip()))
            except BadValue as exc:
                raise MappingError(f"{where}.{name}", str(exc)) from None
        return out


def _get(values: dict[str, Any], meta: dict[str, Any] | None, column: str) -> Any:
    """A column's value; ``a.b`` reaches into nested JSON when no column has that name,
    and ``meta.x`` into what the transport added (topic, headers, topic segments)."""
    if column in values:
        return values[column]
    if "." not in column:
        return None
    head, *rest = column.split(".")
    current: Any = meta if head == "meta" and meta is not None else values.get(head)
    for part in rest:
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


Computed = tuple[Callable[[Any], Any], str]


def _compile_computed(mapping: RecordMapping, timezone: ZoneInfo) -> dict[str, Computed]:
    from tagloop.workspace.sources import computed_scope

    scope = Scope(mapping.entity_type, computed_scope(mapping), timezone=timezone)
    out: dict[str, Computed] = {}
    for name, spec in mapping.computed.items():
        expr, kind = (spec, "number") if isinstance(spec, str) else (spec.expr, spec.type)
        out[name] = (compile_rule(expr, scope, want=None).fn, kind)
    return out


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """JSON-storable values: Parquet gives datetimes and decimals."""
    out = {}
    for key, value in values.items():
        if isinstance(value, datetime | date):
            value = value.isoformat()
        elif type(value).__name__ == "Decimal":
            value = float(value)
        out[key] = value
    return out
