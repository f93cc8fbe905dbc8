"""The entity dictionary: entity types, their fields and the events they receive."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tagloop.dictionary.types import BadValue, check_value
from tagloop.names import suggest

if TYPE_CHECKING:  # the workspace package imports this one
    from tagloop.workspace.models import EntityTypeSpec


@dataclass(frozen=True)
class EntityType:
    spec: EntityTypeSpec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pii_fields(self) -> frozenset[str]:
        return frozenset(name for name, f in self.spec.fields.items() if f.pii)

    @property
    def field_types(self) -> dict[str, str]:
        return {name: f.type for name, f in self.spec.fields.items()}

    def check_attributes(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Normalise declared attributes; undeclared ones pass through unchanged.

        Returns the normalised values and one message per bad field.
        """
        return _check_fields(self.spec.fields, values, "attributes")

    def check_properties(
        self, event_type: str, values: Mapping[str, Any]
    ) -> tuple[dict[str, Any], list[str]]:
        spec = self.spec.events.get(event_type)
        if spec is None:
            return dict(values), []
        return _check_fields(spec.properties, values, "properties")


def _check_fields(
    declared: Mapping[str, Any], values: Mapping[str, Any], where: str
) -> tuple[dict[str, Any], list[str]]:
    out = dict(values)
    problems: list[str] = []
    for name, value in values.items():
        field = declared.get(name)
        if field is None:
            continue
        try:
            out[name] = check_value(field.type, value)
        except BadValue as exc:
            problems.append(f"{where}.{name}: {exc}")
    return out, problems


class Dictionary:
    """All entity types of a workspace, by name."""

    def __init__(self, types: Iterable[EntityTypeSpec] = ()) -> None:
        self.types = {spec.name: EntityType(spec) for spec in types}

    def __contains__(self, name: object) -> bool:
        return name in self.types

    def get(self, name: str) -> EntityType | None:
        return self.types.get(name)

    def event_types(self) -> dict[str, dict[str, str]]:
        """Every declared event type with its declared property types (merged across the
        entity types that declare it)."""
        found: dict[str, dict[str, str]] = {}
        for entity in self.types.values():
            for event_type, spec in entity.spec.events.items():
                properties = found.setdefault(event_type, {})
                for name, prop in spec.properties.items():
                    properties.setdefault(name, prop.type)
        return found

    def unknown(self, name: str) -> str:
        """The message for an undeclared entity type, with a suggestion."""
        known = ", ".join(sorted(self.types)) or "none declared"
        return f"unknown entity type {name!r}{suggest(name, self.types)} (known: {known})"
