"""One entity, many ids: resolving the ids events name, linking and merging entities.

The dictionary declares identifier fields per entity type (``identifiers: [customer_id,
crm_id, phone]``). An event links ids when it names one as its entity and carries others
in identifier attributes, or is an ``alias`` event (``previous_id``, as Segment's alias
call sends). Ids of one entity type share one namespace: ``123`` from the CRM and
``C-0042`` from the ERP are the same customer once an event links them (prefix ids in the
source mapping, ``crm:123``, where two systems' ids could collide).

Within one commit, before anything else is stored (`resolve`):

1. every id is replaced by the entity it is an alias of;
2. the ids each event links are grouped (union-find over the whole commit, so the order of
   events within it does not matter);
3. in each group the entity seen first (then the smallest id) survives; ids that are no
   entity yet become its aliases, other entities are merged into it
   (`tagloop.store.identities.merge`) with their profiles folded into its profile;
4. events are rewritten to the surviving entity, keeping the id they were sent with.

The pipeline then re-evaluates every surviving entity over the union of the events, so
rules see both sides' history at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from tagloop.dictionary import Dictionary
from tagloop.ingest.event import Event
from tagloop.store import entities as entity_store
from tagloop.store import identities as store
from tagloop.store.db import Database
from tagloop.store.entities import EntityRow

EntityKey = tuple[str, str]
ALIAS_EVENT = "alias"
PREVIOUS_ID = "previous_id"


@dataclass
class Resolution:
    """What `resolve` did: merged entities, and the entities that absorbed them (which
    must be re-evaluated over their union of events)."""

    merged: list[EntityKey] = field(default_factory=list)
    survivors: set[EntityKey] = field(default_factory=set)
    rewritten: int = 0  # events now belonging to another id than the one they were sent with

    @property
    def changed(self) -> bool:
        return bool(self.merged or self.rewritten)


def linked_ids(event: Event, identifiers: Sequence[str]) -> list[tuple[str, str]]:
    """The ids an event links to its entity's, with the field that carries each.

    >>> e = Event(id="e1", type="identify", entity_type="customer", entity_id="123",
    ...           time=0, attributes={"customer_id": "C-0042", "phone": 13800138000})
    >>> linked_ids(e, ["customer_id", "phone"])
    [('customer_id', 'C-0042'), ('phone', '13800138000')]
    >>> linked_ids(Event(id="e2", type="alias", entity_type="customer", entity_id="C-1",
    ...                  time=0, properties={"previous_id": "anon-7"}), [])
    [('alias', 'anon-7')]
    """
    found: list[tuple[str, str]] = []
    if event.attributes:
        for name in identifiers:
            value = _id(event.attributes.get(name))
            if value is not None and value != event.entity_id:
                found.append((name, value))
    if event.type == ALIAS_EVENT:
        value = _id(event.properties.get(PREVIOUS_ID))
        if value is not None and value != event.entity_id:
            found.append((ALIAS_EVENT, value))
    return found


def _id(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str):
        text = str(value).strip()
        return text if 0 < len(text) <= 255 else None
    return None


class _Groups:
    """Union-find over ids; each root knows the first event and field that linked it."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        parent = self.parent.setdefault(x, x)
        if parent != x:
            parent = self.parent[x] = self.find(parent)
        return parent

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[str]]:
        by_root: dict[str, list[str]] = defaultdict(list)
        for x in self.parent:
            by_root[self.find(x)].append(x)
        return [sorted(members) for members in by_root.values() if len(members) > 1]


def resolve(
    db: Database, conn: Connection, dictionary: Dictionary, events: Sequence[Event], now: int
) -> Resolution:
    """Resolve, link and merge the ids of ``events`` (rewritten in place); see the module
    docstring. Runs first in the commit's write transaction."""
    result = Resolution()
    by_type: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_type[event.entity_type].append(event)
    related: dict[str, set[str]] = defaultdict(set)
    for event in events:
        for related_type, related_id in event.related.items():
            related[related_type].add(related_id)
    final: dict[str, dict[str, str]] = {}
    txn = _Txn(db, conn, now, result, store.any_alias(db, conn))
    for entity_type in by_type.keys() | related.keys():
        named = by_type.get(entity_type, [])
        spec = dictionary.get(entity_type)
        identifiers = spec.spec.identifiers if spec is not None else []
        final[entity_type] = _resolve_type(
            txn, entity_type, identifiers, named, related.get(entity_type, set())
        )
    for event in events:
        target = final[event.entity_type].get(event.entity_id)
        if target is not None and target != event.entity_id:
            event.sent_entity_id = event.sent_entity_id or event.entity_id
            event.entity_id = target
            result.rewritten += 1
        if event.related:
            event.related = {t: final[t].get(i, i) for t, i in event.related.items()}
    return result


@dataclass
class _Txn:
    """The commit's transaction, clock and result, and whether any alias exists."""

    db: Database
    conn: Connection
    now: int
    result: Resolution
    aliases: bool


def _resolve_type(
    txn: _Txn,
    entity_type: str,
    identifiers: Sequence[str],
    events: list[Event],
    related_ids: set[str],
) -> dict[str, str]:
    """Id -> the entity it belongs to after this commit, for the ids of one entity type
    that change (ids that stay themselves are left out)."""
    db, conn, now, result, aliases = txn.db, txn.conn, txn.now, txn.result, txn.aliases
    links = [(event, linked_ids(event, identifiers)) for event in events]
    linking = any(found for _, found in links)
    if not aliases and not linking:
        return {}  # the common case: no alias anywhere yet, none made now
    named = {e.entity_id for e in events} | related_ids
    named.update(value for _, found in links for _, value in found)
    known = store.lookup(db, conn, entity_type, named) if aliases else {}  # alias -> entity
    mapping: dict[str, str] = dict(known)
    if not linking:
        return mapping
    groups = _Groups()
    cause: dict[str, dict[str, Any]] = {}  # id -> the first link that brought it in
    for event, found in links:
        primary = known.get(event.entity_id, event.entity_id)
        for name, value in found:
            other = known.get(value, value)
            if other != primary:
                groups.union(primary, other)
                for linked in (primary, other):
                    cause.setdefault(
                        linked,
                        {"event": event.id, "source": event.source, "field": name, "value": value},
                    )
    members = groups.groups()
    if not members:
        return mapping
    rows = entity_store.load(
        db, conn, [(entity_type, x) for group in members for x in group], for_update=True
    )
    new_aliases: list[store.AliasRow] = []
    for group in members:
        existing = [rows[(entity_type, x)] for x in group if (entity_type, x) in rows]
        if existing:
            survivor = min(existing, key=lambda r: (r.first_seen, r.id)).id
        else:
            survivor = _first(group, links, known)
        for x in group:
            if x == survivor:
                continue
            why = cause.get(x, {})
            row = rows.get((entity_type, x))
            if row is None:
                link = (str(why.get("field", "")), str(why.get("event", "")), now)
                new_aliases.append((entity_type, x, survivor, *link))
            else:
                into = rows[(entity_type, survivor)]
                _fold_into(into, row, now)
                into.event_count -= store.merge(db, conn, row, survivor, why, now)
                result.merged.append((entity_type, x))
            mapping.update({alias: survivor for alias, target in known.items() if target == x})
            mapping[x] = survivor
        if existing:
            entity_store.upsert(db, conn, [rows[(entity_type, survivor)]])
            if len(existing) > 1:
                result.survivors.add((entity_type, survivor))
    store.add(db, conn, new_aliases)
    return mapping


def _first(group: Iterable[str], links: list[tuple[Event, Any]], known: dict[str, str]) -> str:
    """Among ids no entity has yet, the first event's own id wins."""
    members = set(group)
    for event, _ in links:
        primary = known.get(event.entity_id, event.entity_id)
        if primary in members:
            return primary
    return min(members)


def _fold_into(into: EntityRow, merged: EntityRow, now: int) -> None:
    """Fold ``merged``'s profile into ``into``'s: each attribute keeps the value set at the
    later event time (``into``'s on a tie); counts add up, first/last seen widen."""
    attributes, times = dict(into.attributes), dict(into.attribute_times)
    for name, value in merged.attributes.items():
        at = merged.attribute_times.get(name, 0)
        if name not in attributes or at > times.get(name, 0):
            attributes[name] = value
            times[name] = at
    into.replace_attributes(attributes, times)
    into.first_seen = min(into.first_seen, merged.first_seen)
    into.last_seen = max(into.last_seen, merged.last_seen)
    into.event_count += merged.event_count
    into.created_at = min(into.created_at, merged.created_at)
    into.updated_at = now
