"""The event log: append with idempotency, read an entity's recent events."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Row, func, select, union_all

from tagloop.ingest.event import Event
from tagloop.store.db import Database, dump_json, insert_sql
from tagloop.store.tables import event_links, events


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_COLUMNS = (
    "id",
    "type",
    "entity_type",
    "entity_id",
    "time",
    "received_at",
    "source",
    "properties",
    "attributes",
    "related",
    "context",
    "sent_entity_id",
)
_INSERT = insert_sql("events", _COLUMNS) + " ON CONFLICT (id) DO NOTHING"


_PG_TYPES = ("text",) * 4 + ("bigint",) * 2 + ("text",) + ("jsonb",) * 4 + ("text",)
_PG_INSERT = (
    f"INSERT INTO events ({', '.join(_COLUMNS)}) "
    f"SELECT * FROM unnest({', '.join(f'?::{t}[]' for t in _PG_TYPES)}) "
    "ON CONFLICT (id) DO NOTHING RETURNING id, seq"
)


def append(db: Database, conn: Connection, rows: Sequence[Event]) -> dict[str, int]:
    """Insert events whose id is new; return ``{id: seq}`` of those actually inserted.

    Ids already stored are skipped, which is what makes delivery idempotent. On SQLite the
    write transaction holds the database lock, so the insert can be judged after the fact
    (twice as fast as RETURNING); on PostgreSQL concurrent writers may race, so
    ``ON CONFLICT DO NOTHING RETURNING`` decides who inserted what.
    """
    if not rows:
        return {}
    values = [
        (
            e.id,
            e.type,
            e.entity_type,
            e.entity_id,
            e.time,
            e.received_at,
            e.source,
            dump_json(e.properties),
            dump_json(e.attributes),
            dump_json(e.related or None),
            dump_json(e.context),
            e.sent_entity_id,
        )
        for e in rows
    ]
    if not db.is_sqlite:
        # One array per column: a constant query text that psycopg parses once (a VALUES
        # list of 12,000 placeholders was parsed again on every call: a third of a commit).
        columns = [list(column) for column in zip(*values, strict=True)]
        return {r[0]: r[1] for r in db.fetch(conn, _PG_INSERT, columns)}
    # Insert everything with ON CONFLICT DO NOTHING and count what went in: in the usual
    # case (no duplicates) that is all, and no lookup is needed. Otherwise the ids that
    # were already there are exactly those whose row predates this insert.
    raw = conn.connection.dbapi_connection
    assert raw is not None
    last_seq = conn.exec_driver_sql("SELECT max(seq) FROM events").scalar() or 0
    before = raw.total_changes
    db.executemany(conn, _INSERT, values)
    # With the write lock held, SQLite gives the inserted rows the next rowids in order.
    if raw.total_changes - before == len(rows):
        fresh = list(rows)
    else:
        stored = existing_ids(db, conn, [e.id for e in rows], up_to=last_seq)
        fresh = [e for e in rows if e.id not in stored]
    return {e.id: last_seq + i for i, e in enumerate(fresh, start=1)}


def existing_ids(
    db: Database, conn: Connection, ids: Sequence[str], up_to: int | None = None
) -> set[str]:
    """Which of ``ids`` are stored (only among events with ``seq <= up_to`` if given)."""
    found: set[str] = set()
    bound = "" if up_to is None else " AND seq <= ?"
    for chunk in chunks(ids, 900):
        condition, params = db.in_list("id", chunk)
        query = f"SELECT id FROM events WHERE {condition}{bound}"
        found.update(
            row[0]
            for row in db.fetch(conn, query, (*params, up_to) if up_to is not None else params)
        )
    return found


def link(db: Database, conn: Connection, rows: Sequence[tuple[str, str, str, int]]) -> None:
    """Record related entities ``(event id, entity type, entity id, time)`` of new events."""
    db.executemany(
        conn,
        (
            "INSERT INTO event_links (event_seq, entity_type, entity_id, time) "
            "SELECT seq, ?, ?, ? FROM events WHERE id = ?"
        ),
        [(etype, eid, time, event_id) for event_id, etype, eid, time in rows],
    )


def recent(conn: Connection, entity_type: str, entity_id: str, limit: int) -> list[Row[Any]]:
    """The newest ``limit`` events where the entity is primary or related, newest first."""
    primary = (
        select(events.c.seq)
        .where(events.c.entity_type == entity_type, events.c.entity_id == entity_id)
        .order_by(events.c.time.desc())
        .limit(limit)
    )
    related = (
        select(event_links.c.event_seq.label("seq"))
        .where(event_links.c.entity_type == entity_type, event_links.c.entity_id == entity_id)
        .order_by(event_links.c.time.desc())
        .limit(limit)
    )
    seqs = union_all(primary.subquery().select(), related.subquery().select()).subquery()
    query = (
        select(events)
        .where(events.c.seq.in_(select(seqs.c.seq)))
        .order_by(events.c.time.desc(), events.c.seq.desc())
        .limit(limit)
    )
    return list(conn.execute(query))


def count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


def get(conn: Connection, event_id: str) -> Row[Any] | None:
    return conn.execute(select(events).where(events.c.id == event_id)).first()
