"""Mapping a source record to a canonical event (``mapping:`` in sources/*.yaml)."""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from tagloop.dictionary import Dictionary
from tagloop.dictionary.types import BadValue, check_value
from tagloop.ingest.event import Event
from tagloop.timeutil import to_us, zone
from tagloop.workspace.models import FileMapping


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


class RecordMapper:
    """Turns records into events according to a `FileMapping`."""

    def __init__(
        self,
        mapping: FileMapping,
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
        used = {
            mapping.entity_id,
            *mapping.id,
            *mapping.attributes.values(),
            *mapping.related.values(),
        }
        if mapping.type_field:
            used.add(mapping.type_field)
        if mapping.time:
            used.add(mapping.time)
        self.used = used

    def columns_missing(self, columns: set[str]) -> list[str]:
        """Mapped columns absent from a file's columns."""
        wanted = set(self.used)
        if isinstance(self.mapping.properties, dict):
            wanted |= set(self.mapping.properties.values())
        return sorted(wanted - columns)

    def to_event(
        self, values: dict[str, Any], *, file: str, line: int, raw: str, received_at: int
    ) -> Event:
        m = self.mapping
        event_type = m.type if m.type is not None else self._text(values, m.type_field or "")
        entity_id = self._text(values, m.entity_id)
        entity = self.dictionary.get(m.entity_type)
        time = self._time(values) if m.time else received_at
        if m.id:
            event_id = ":".join(self._text(values, column) for column in m.id)
        else:
            # Deterministic: re-ingesting the same file is deduplicated.
            digest = hashlib.sha256(f"{self.source}\0{file}\0{line}\0{raw}".encode()).hexdigest()
            event_id = f"{self.source}:{digest[:32]}"
        if m.properties == "*":
            props = {k: v for k, v in values.items() if k not in self.used and _present(v)}
        else:
            props = {
                name: values[col] for name, col in m.properties.items() if _present(values.get(col))
            }
        attrs = {
            name: values[col] for name, col in m.attributes.items() if _present(values.get(col))
        }
        related = {
            t: str(values[col]).strip() for t, col in m.related.items() if _present(values.get(col))
        }
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

    def _text(self, values: dict[str, Any], column: str) -> str:
        value = values.get(column)
        if not _present(value):
            raise MappingError(column, "is empty")
        text = str(value).strip()
        # Spreadsheet exports write integer ids as floats ("17850.0").
        if (isinstance(value, float) and value.is_integer()) or (
            text.endswith(".0") and text[:-2].isdigit()
        ):
            text = text[:-2] if text.endswith(".0") else text
        return text

    def _time(self, values: dict[str, Any]) -> int:
        column = self.mapping.time or ""
        value = values.get(column)
        if not _present(value):
            raise MappingError(column, "is empty")
        try:
            if isinstance(value, datetime):
                parsed = value
            elif isinstance(value, date):
                parsed = datetime(value.year, value.month, value.day)
            elif self.mapping.time_format:
                parsed = datetime.strptime(str(value).strip(), self.mapping.time_format)
            else:
                parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            hint = (
                f" (format {self.mapping.time_format})"
                if self.mapping.time_format
                else " (set time_format, e.g. '%d/%m/%Y %H:%M')"
            )
            raise MappingError(column, f"{value!r} is not a time{hint}") from None
        return to_us(parsed, self.timezone)

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
