"""What the store keeps of identities: aliases of entities, and merges of two entities.

An alias is another id of an entity (another system's id, a phone number, a Segment
``previousId``); an event naming it belongs to the entity. A merge moves everything of one
entity to another in the caller's transaction: its events and links (each event keeps the
id it was sent with in ``sent_entity_id``), its aliases, its tags (those the other entity
does not hold; both sides' histories record the move), and records the merged profile and
the cause in ``entity_merges``. Deciding *what* to merge is `tagloop.engine.identities`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, select

from tagloop.store.db import Database, dump_json
from tagloop.store.entities import EntityRow
from tagloop.store.events import chunks
from tagloop.store.tables import entity_aliases, entity_merges

AliasRow = tuple[str, str, str, str, str, int]  # (type, alias, entity id, field, event id, at)

_INSERT_ALIAS = (
    "INSERT INTO entity_aliases (entity_type, alias, entity_id, field, event_id, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (entity_type, alias) DO NOTHING"
)
_MOVE_EVENTS = (
    "UPDATE events SET sent_entity_id = COALESCE(sent_entity_id, entity_id), entity_id = ? "
    "WHERE entity_type = ? AND entity_id = ?"
)
_MOVE_LINKS = "UPDATE event_links SET entity_id = ? WHERE entity_type = ? AND entity_id = ?"
# An event of one entity that named the other as related now names its own entity twice.
_SELF_LINKS = (
    "FROM event_links WHERE entity_type = ? AND entity_id = ? AND event_seq IN "
    "(SELECT seq FROM events WHERE entity_type = ? AND entity_id = ?)"
)
_MOVE_ALIASES = "UPDATE entity_aliases SET entity_id = ? WHERE entity_type = ? AND entity_id = ?"
_MOVE_REVIEWS = "UPDATE review_items SET entity_id = ? WHERE entity_type = ? AND entity_id = ?"
_MOVE_PINS = "UPDATE review_pins SET entity_id = ? WHERE entity_type = ? AND entity_id = ?"
_ASSIGNMENTS = (
    "SELECT tag, value, version, evidence FROM tag_assignments "
    "WHERE entity_type = ? AND entity_id = ?"
)
_MOVE_ASSIGNMENT = (
    "UPDATE tag_assignments SET entity_id = ?, updated_at = ? "
    "WHERE entity_type = ? AND entity_id = ? AND tag = ?"
)
_DROP_ASSIGNMENT = "DELETE FROM tag_assignments WHERE entity_type = ? AND entity_id = ? AND tag = ?"
_HISTORY = (
    "INSERT INTO tag_history (entity_type, entity_id, tag, change, value, previous, version, "
    "source, evidence, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_DROP_TIMER = "DELETE FROM entity_timers WHERE entity_type = ? AND entity_id = ?"
_DROP_ENTITY = "DELETE FROM entities WHERE type = ? AND id = ?"
_RECORD_MERGE = (
    "INSERT INTO entity_merges (entity_type, merged_id, into_id, cause, merged_profile, at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


def any_alias(db: Database, conn: Connection) -> bool:
    """Whether any entity has an alias: until one has, ingestion skips the lookups."""
    return bool(db.fetch(conn, "SELECT 1 FROM entity_aliases LIMIT 1", []))


def lookup(db: Database, conn: Connection, entity_type: str, ids: Iterable[str]) -> dict[str, str]:
    """The entity each of ``ids`` is an alias of (ids that are no alias are left out)."""
    found: dict[str, str] = {}
    for chunk in chunks(sorted(set(ids)), 900):
        condition, params = db.in_list("alias", chunk)
        query = f"SELECT alias, entity_id FROM entity_aliases WHERE entity_type = ? AND {condition}"
        found.update((row[0], row[1]) for row in db.fetch(conn, query, (entity_type, *params)))
    return found


def add(db: Database, conn: Connection, rows: Sequence[AliasRow]) -> None:
    """Record new aliases (an alias already recorded keeps its entity)."""
    db.executemany(conn, _INSERT_ALIAS, rows)


def merge(
    db: Database,
    conn: Connection,
    merged: EntityRow,
    into: str,
    cause: dict[str, Any],
    at: int,
) -> int:
    """Move the entity ``merged`` (its row as locked by the caller) into the entity
    ``into``; the caller writes ``into``'s merged profile and re-evaluates its tags.

    Returns how many events the two profiles both counted (one side's event naming the
    other as related), to count them once."""
    entity_type, old = merged.type, merged.id
    db.executemany(conn, _MOVE_EVENTS, [(into, entity_type, old)])
    db.executemany(conn, _MOVE_LINKS, [(into, entity_type, old)])
    both = (entity_type, into, entity_type, into)
    shared = int(db.fetch(conn, f"SELECT count(*) {_SELF_LINKS}", both)[0][0])
    if shared:
        db.executemany(conn, f"DELETE {_SELF_LINKS}", [both])
    db.executemany(conn, _MOVE_ALIASES, [(into, entity_type, old)])
    # decisions and pins about the merged entity now concern the one it became
    for moved in (_MOVE_REVIEWS, _MOVE_PINS):
        db.executemany(conn, moved, [(into, entity_type, old)])
    add(db, conn, [(entity_type, old, into, "merge", str(cause.get("event", "")), at)])
    _move_tags(db, conn, entity_type, old, into, at)
    db.executemany(conn, _DROP_TIMER, [(entity_type, old)])
    db.executemany(conn, _DROP_ENTITY, [(entity_type, old)])
    profile = {
        "attributes": merged.attributes,
        "attribute_times": merged.attribute_times,
        "first_seen": merged.first_seen,
        "last_seen": merged.last_seen,
        "event_count": merged.event_count,
        "created_at": merged.created_at,
    }
    db.executemany(
        conn,
        _RECORD_MERGE,
        [(entity_type, old, into, dump_json(cause), dump_json(profile), at)],
    )
    return shared


def _move_tags(
    db: Database, conn: Connection, entity_type: str, old: str, into: str, at: int
) -> None:
    """Tags of ``old`` that ``into`` does not hold move to it (imported values keep their
    expiry); the others are dropped. Computed tags are then re-evaluated by the caller over
    the union, so a moved rule tag that no longer holds is removed with a history row."""
    held = {row[0] for row in db.fetch(conn, _ASSIGNMENTS, (entity_type, into))}
    source = f"merge:{old}->{into}"
    moved: list[tuple[Any, ...]] = []
    dropped: list[tuple[Any, ...]] = []
    history: list[tuple[Any, ...]] = []
    for tag, value, version, evidence in db.fetch(conn, _ASSIGNMENTS, (entity_type, old)):
        # Raw JSON text on SQLite, decoded values on PostgreSQL: written back as text.
        value_json = value if db.is_sqlite else dump_json(value)
        evidence_json = evidence if db.is_sqlite else dump_json(evidence)
        common = (version, source)
        history.append((entity_type, old, tag, "removed", None, value_json, *common, None, at))
        if tag in held:
            dropped.append((entity_type, old, tag))
        else:
            moved.append((into, at, entity_type, old, tag))
            row = (entity_type, into, tag, "assigned", value_json, None, *common, evidence_json, at)
            history.append(row)
    db.executemany(conn, _MOVE_ASSIGNMENT, moved)
    db.executemany(conn, _DROP_ASSIGNMENT, dropped)
    db.executemany(conn, _HISTORY, history)


def resolve(conn: Connection, entity_type: str, entity_id: str) -> str:
    """The entity an id names now: itself, or the entity it is an alias of."""
    found = conn.execute(
        select(entity_aliases.c.entity_id).where(
            entity_aliases.c.entity_type == entity_type, entity_aliases.c.alias == entity_id
        )
    ).scalar()
    return str(found) if found is not None else entity_id


def aliases_of(conn: Connection, entity_type: str, entity_id: str) -> list[Row[Any]]:
    """The other ids of an entity, oldest first (``alias``, ``field``, ``event_id``,
    ``created_at``)."""
    table = entity_aliases
    query = (
        select(table.c.alias, table.c.field, table.c.event_id, table.c.created_at)
        .where(table.c.entity_type == entity_type, table.c.entity_id == entity_id)
        .order_by(table.c.created_at, table.c.alias)
    )
    return list(conn.execute(query))


def merges_into(conn: Connection, entity_type: str, entity_id: str) -> list[Row[Any]]:
    """The merges that made this entity, oldest first."""
    table = entity_merges
    query = (
        select(table.c.merged_id, table.c.cause, table.c.at)
        .where(table.c.entity_type == entity_type, table.c.into_id == entity_id)
        .order_by(table.c.seq)
    )
    return list(conn.execute(query))
