"""Entity profiles from events: attributes with per-attribute event times.

An attribute keeps the value of the event with the latest event time that set it; an event
that arrives late with an older time does not overwrite a newer value. Ties go to the event
that arrived later. Every event, primary or related, also moves the entity's ``first_seen``,
``last_seen`` and ``event_count``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from tagloop.dictionary.types import SYSTEM_ATTRIBUTES
from tagloop.ingest.event import Event
from tagloop.store.entities import EntityRow

EntityKey = tuple[str, str]
_MISSING = object()

# Attributes tagloop maintains itself; events cannot set them (see `ProfileView`).
SYSTEM_FIELDS = frozenset(SYSTEM_ATTRIBUTES)


@dataclass(frozen=True, slots=True)
class ProfileChange:
    """An entity touched by a batch: its new profile row and what changed in it."""

    key: EntityKey
    row: EntityRow
    changed: frozenset[str]  # attribute names whose value changed (system ones included)
    created: bool


def touched_keys(events: Sequence[Event]) -> dict[EntityKey, list[Event]]:
    """The entities each event touches (primary and related), with their events."""
    touched: dict[EntityKey, list[Event]] = defaultdict(list)
    for event in events:
        primary = (event.entity_type, event.entity_id)
        touched[primary].append(event)
        for key in event.related.items():
            if key != primary:
                touched[key].append(event)
    return touched


def fold(
    rows: dict[EntityKey, EntityRow], events: Sequence[Event], now: int
) -> tuple[list[EntityRow], list[ProfileChange]]:
    """Fold newly stored ``events`` into the loaded profile ``rows`` (updated in place);
    returns the rows to write and what changed in each profile."""
    written: list[EntityRow] = []
    changes: list[ProfileChange] = []
    for key, group in touched_keys(events).items():
        old = rows.get(key)
        new, changed = _fold(key, old, group, now)
        rows[key] = new
        written.append(new)
        changes.append(ProfileChange(key, new, frozenset(changed), old is None))
    return written, changes


def _fold(
    key: EntityKey, old: EntityRow | None, group: list[Event], now: int
) -> tuple[EntityRow, set[str]]:
    times = [e.time for e in group]
    changed = {"event_count"}
    if old is None:
        row = EntityRow(key[0], key[1], {}, {}, min(times), max(times), len(group), now, now)
        changed.update(("first_seen", "last_seen"))
    else:
        row = old  # the loaded row is this call's own: update it in place
        first, last = min(old.first_seen, *times), max(old.last_seen, *times)
        if first != old.first_seen:
            changed.add("first_seen")
        if last != old.last_seen:
            changed.add("last_seen")
        row.first_seen, row.last_seen = first, last
        row.event_count += len(group)
        row.updated_at = now
    setters = [
        e for e in group if e.attributes and e.entity_id == key[1] and e.entity_type == key[0]
    ]
    if not setters:
        return row, changed
    if len(setters) > 1:
        # Stable sort: equal times keep arrival order, so the later arrival wins the tie.
        setters.sort(key=_event_time)
    attributes, attribute_times = row.attributes, row.attribute_times
    for event in setters:
        time = event.time
        for name, value in event.attributes.items():  # type: ignore[union-attr]
            if time < attribute_times.get(name, time):
                continue  # an older value arriving late
            if attributes.get(name, _MISSING) != value:
                changed.add(name)
            attributes[name] = value
            attribute_times[name] = time
    return row, changed


def _event_time(event: Event) -> int:
    return event.time
