"""Entity profiles: load for update, upsert, read, list with keyset pagination."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, func, select

from tagloop.store.db import Database, dump_json, insert_sql
from tagloop.store.events import chunks
from tagloop.store.tables import entities, tag_assignments

EntityKey = tuple[str, str]


_COLUMNS = (
    "type",
    "id",
    "attributes",
    "attribute_times",
    "first_seen",
    "last_seen",
    "event_count",
    "created_at",
    "updated_at",
)
_UPSERT = (
    insert_sql("entities", _COLUMNS)
    + " ON CONFLICT (type, id) DO UPDATE SET attributes = excluded.attributes, "
    "attribute_times = excluded.attribute_times, first_seen = excluded.first_seen, "
    "last_seen = excluded.last_seen, event_count = excluded.event_count, "
    "updated_at = excluded.updated_at"
)


class EntityRow:
    """One profile row. ``attributes`` and ``attribute_times`` are kept as the JSON text
    they were read as until something needs them: most events (an order) change neither,
    and are folded and written back without decoding or encoding either."""

    __slots__ = (
        "_attributes",
        "_attributes_text",
        "_times",
        "_times_text",
        "created_at",
        "event_count",
        "first_seen",
        "id",
        "last_seen",
        "type",
        "updated_at",
    )

    def __init__(
        self,
        type: str,
        id: str,
        attributes: dict[str, Any] | str,
        attribute_times: dict[str, int] | str,
        first_seen: int,
        last_seen: int,
        event_count: int,
        created_at: int,
        updated_at: int,
    ) -> None:
        self.type, self.id = type, id
        self._attributes, self._attributes_text = _split(attributes)
        self._times, self._times_text = _split(attribute_times)
        self.first_seen, self.last_seen, self.event_count = first_seen, last_seen, event_count
        self.created_at, self.updated_at = created_at, updated_at

    @property
    def attributes(self) -> dict[str, Any]:
        if self._attributes is None:
            self._attributes = orjson.loads(self._attributes_text or "{}")
        attributes: dict[str, Any] = self._attributes
        return attributes

    @property
    def attribute_times(self) -> dict[str, int]:
        if self._times is None:
            self._times = orjson.loads(self._times_text or "{}")
        times: dict[str, int] = self._times
        return times

    def replace_attributes(self, attributes: dict[str, Any], times: dict[str, int]) -> None:
        """Set both JSON columns (encoded again when written)."""
        self._attributes, self._attributes_text = attributes, None
        self._times, self._times_text = times, None

    def json_columns(self) -> tuple[str, str]:
        """The two JSON columns as text; re-encoded only if they were decoded (and so may
        have changed)."""
        attributes = (
            self._attributes_text if self._attributes is None else dump_json(self._attributes)
        )
        times = self._times_text if self._times is None else dump_json(self._times)
        return attributes or "{}", times or "{}"


def _split(value: dict[str, Any] | str) -> tuple[Any, str | None]:
    return (None, value) if isinstance(value, str) else (value, None)


def load(
    db: Database, conn: Connection, keys: Iterable[EntityKey], *, for_update: bool = False
) -> dict[EntityKey, EntityRow]:
    """Rows of the given entities that exist. With ``for_update`` on PostgreSQL the rows are
    locked until the transaction ends (SQLite's write lock already covers the database)."""
    by_type: dict[str, list[str]] = {}
    for entity_type, entity_id in sorted(set(keys)):  # fixed lock order: no deadlocks
        by_type.setdefault(entity_type, []).append(entity_id)
    lock = " ORDER BY id FOR UPDATE" if for_update and not db.is_sqlite else ""
    found: dict[EntityKey, EntityRow] = {}
    for entity_type, ids in by_type.items():
        for chunk in chunks(ids, 900):
            condition, params = db.in_list("id", chunk)
            query = (
                f"SELECT {', '.join(_COLUMNS)} FROM entities WHERE type = ? AND {condition}{lock}"
            )
            for row in db.fetch(conn, query, (entity_type, *params)):
                found[(row[0], row[1])] = _row(row)
    return found


def _row(raw: Any) -> EntityRow:
    # SQLite returns the JSON columns as text (kept lazy); psycopg returns them decoded.
    return EntityRow(*raw)


def upsert(db: Database, conn: Connection, rows: Sequence[EntityRow]) -> None:
    """Write full profile rows (computed by the caller from the locked current rows)."""
    db.executemany(
        conn,
        _UPSERT,
        [
            (
                r.type,
                r.id,
                *r.json_columns(),
                r.first_seen,
                r.last_seen,
                r.event_count,
                r.created_at,
                r.updated_at,
            )
            for r in rows
        ],
    )


def get(conn: Connection, entity_type: str, entity_id: str) -> EntityRow | None:
    query = select(entities).where(entities.c.type == entity_type, entities.c.id == entity_id)
    row = conn.execute(query).first()
    return EntityRow(*row) if row is not None else None


def count(conn: Connection, entity_type: str) -> int:
    """How many entities of ``entity_type`` the store knows."""
    query = select(func.count()).select_from(entities).where(entities.c.type == entity_type)
    return int(conn.execute(query).scalar() or 0)


def page(
    conn: Connection,
    entity_type: str,
    *,
    tag: str | None,
    after: str | None,
    limit: int,
) -> list[EntityRow]:
    """Entities of a type ordered by id, optionally only those with an active ``tag``;
    ``after`` is the last id of the previous page (keyset pagination: stable and O(limit))."""
    query = select(entities).where(entities.c.type == entity_type)
    if tag is not None:
        tagged = select(tag_assignments.c.entity_id).where(
            tag_assignments.c.tag == tag,
            tag_assignments.c.status == "active",
            tag_assignments.c.entity_type == entity_type,
        )
        if after is not None:
            tagged = tagged.where(tag_assignments.c.entity_id > after)
        tagged = tagged.order_by(tag_assignments.c.entity_id).limit(limit)
        query = query.where(entities.c.id.in_(tagged))
    if after is not None:
        query = query.where(entities.c.id > after)
    return [EntityRow(*row) for row in conn.execute(query.order_by(entities.c.id).limit(limit))]
