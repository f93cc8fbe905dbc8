"""Tag definitions with versions, current assignments, and their append-only history."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Connection, Row, func, select, update

from tagloop.store.db import Database, dump_json, insert_sql
from tagloop.store.events import chunks
from tagloop.store.tables import tag_assignments, tag_history, tag_versions, tags


@dataclass(frozen=True, slots=True)
class TagChange:
    """One change of one entity's tag, as written to the history."""

    entity_type: str
    entity_id: str
    tag: str
    # "assigned", "changed", "removed", or "confirmed" (still held under a new version:
    # the assignment is refreshed but the history gains no entry)
    change: str
    value: Any
    previous: Any
    version: int
    source: str
    evidence: Any
    at: int
    expires: int | None = None  # imported values: when they stop holding
    # What the assignment is after the change: active, pending (waiting for a reviewer),
    # rejected or excluded (a pin); for "removed", what the removed row was.
    status: str = "active"
    confidence: float | None = None
    review: str | None = None  # the tag's review policy mode, if it has one (tagloop.review)


@dataclass(frozen=True)
class TagVersion:
    name: str
    entity_type: str
    version: int
    changed: bool  # a new version was recorded by this sync


def sync_definition(
    db: Database,
    conn: Connection,
    *,
    name: str,
    entity_type: str,
    fingerprint: str,
    definition: dict[str, Any],
    revision: str,
    now: int,
) -> TagVersion:
    """Record a new version of tag ``name`` if its fingerprint differs from the current one."""
    current = conn.execute(
        select(tag_versions.c.version, tag_versions.c.fingerprint, tags.c.retired_at)
        .join(tags, tags.c.name == tag_versions.c.tag)
        .where(tag_versions.c.tag == name, tag_versions.c.version == tags.c.version)
    ).first()
    if current is not None and current.fingerprint == fingerprint and current.retired_at is None:
        return TagVersion(name, entity_type, current.version, False)
    version = (current.version + 1) if current is not None else 1
    conn.execute(
        tag_versions.insert().values(
            tag=name,
            version=version,
            entity_type=entity_type,
            fingerprint=fingerprint,
            definition=definition,
            workspace_revision=revision,
            created_at=now,
        )
    )
    stmt = db.insert(tags).values(name=name, entity_type=entity_type, version=version)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"entity_type": entity_type, "version": version, "retired_at": None},
        )
    )
    return TagVersion(name, entity_type, version, True)


def active_definitions(conn: Connection) -> dict[str, Row[Any]]:
    """Tags in force (not retired), by name."""
    rows = conn.execute(select(tags).where(tags.c.retired_at.is_(None)))
    return {row.name: row for row in rows}


def retire(conn: Connection, name: str, now: int) -> None:
    conn.execute(update(tags).where(tags.c.name == name).values(retired_at=now))


class Held(NamedTuple):
    """The part of a current assignment the engine compares against."""

    value: Any
    version: int
    source: str
    expires: int | None = None
    status: str = "active"  # active, pending, rejected, excluded (see tagloop.review)

    @property
    def active(self) -> bool:
        """Whether the entity holds the tag (what rules, flows and counts see)."""
        return self.status == "active"


def current(
    db: Database, conn: Connection, keys: Iterable[tuple[str, str]], tag_names: Iterable[str]
) -> dict[tuple[str, str, str], Held]:
    """Current assignments of ``tag_names`` for the entities ``keys``."""
    names = sorted(set(tag_names))
    by_type: dict[str, list[str]] = {}
    for entity_type, entity_id in sorted(set(keys)):
        by_type.setdefault(entity_type, []).append(entity_id)
    found: dict[tuple[str, str, str], Held] = {}
    if not names:
        return found
    for entity_type, ids in by_type.items():
        for chunk in chunks(ids, 900 - len(names)):
            in_ids, id_params = db.in_list("entity_id", chunk)
            in_tags, tag_params = db.in_list("tag", names)
            query = (
                "SELECT entity_id, tag, value, version, source, expires_at, status "
                "FROM tag_assignments "
                f"WHERE entity_type = ? AND {in_ids} AND {in_tags}"
            )
            for row in db.fetch(conn, query, (entity_type, *id_params, *tag_params)):
                value = db.json_value(row[2])
                found[(entity_type, row[0], row[1])] = Held(value, row[3], row[4], row[5], row[6])
    return found


_ASSIGNMENT_COLUMNS = (
    "entity_type",
    "entity_id",
    "tag",
    "value",
    "status",
    "version",
    "source",
    "confidence",
    "evidence",
    "since",
    "updated_at",
    "expires_at",
)
# A changed value keeps the original `since`: the tag has been held all along.
_UPSERT_ASSIGNMENT = (
    insert_sql("tag_assignments", _ASSIGNMENT_COLUMNS)
    + " ON CONFLICT (entity_type, entity_id, tag) DO UPDATE SET value = excluded.value, "
    "status = excluded.status, version = excluded.version, source = excluded.source, "
    "confidence = excluded.confidence, evidence = excluded.evidence, "
    "updated_at = excluded.updated_at, "
    "expires_at = excluded.expires_at"
)
_DELETE_ASSIGNMENT = (
    "DELETE FROM tag_assignments WHERE entity_type = ? AND entity_id = ? AND tag = ?"
)
_HISTORY_COLUMNS = (
    "entity_type",
    "entity_id",
    "tag",
    "change",
    "value",
    "previous",
    "version",
    "source",
    "evidence",
    "at",
)
_INSERT_HISTORY = insert_sql("tag_history", _HISTORY_COLUMNS)


def apply(db: Database, conn: Connection, changes: Sequence[TagChange]) -> None:
    """Write ``changes`` to the current assignments and append them to the history."""
    if not changes:
        return
    db.executemany(
        conn,
        _UPSERT_ASSIGNMENT,
        [
            (
                c.entity_type,
                c.entity_id,
                c.tag,
                dump_json(c.value),
                c.status,
                c.version,
                c.source,
                c.confidence,
                dump_json(c.evidence),
                c.at,
                c.at,
                c.expires,
            )
            for c in changes
            if c.change != "removed" and c.status != DROPPED
        ],
    )
    db.executemany(
        conn,
        _DELETE_ASSIGNMENT,
        [
            (c.entity_type, c.entity_id, c.tag)
            for c in changes
            if c.change == "removed" or c.status == DROPPED
        ],
    )
    db.executemany(
        conn,
        _INSERT_HISTORY,
        [
            (
                c.entity_type,
                c.entity_id,
                c.tag,
                history_change(c),
                dump_json(c.value),
                dump_json(c.previous),
                c.version,
                c.source,
                dump_json(c.evidence),
                c.at,
            )
            for c in changes
            if c.change != "confirmed" and c.status != DROPPED
        ],
    )
    if any(c.review is not None for c in changes):
        from tagloop.store import reviews

        reviews.sync(db, conn, [c for c in changes if c.review is not None])


DROPPED = "dropped"  # a proposal under its review policy's lower threshold: not stored


def history_change(change: TagChange) -> str:
    """The history entry of a change: a proposal waiting for review is ``proposed``, and
    removing an assignment the entity did not hold (pending, rejected, an exclusion) is
    ``withdrawn``; the rest as they are.

    >>> def change(kind, status):
    ...     return TagChange("customer", "c1", "VIP", kind, True, None, 1, "rule:VIP@v1",
    ...                      None, 0, status=status)
    >>> [history_change(change(k, s)) for k, s in [("assigned", "pending"),
    ...     ("removed", "pending"), ("removed", "active")]]
    ['proposed', 'withdrawn', 'removed']
    """
    if change.source.startswith("pin:"):
        return "unpinned" if change.change == "removed" else "pinned"
    if change.change in ("assigned", "changed") and change.status != "active":
        return "proposed"
    if change.change == "removed" and change.status != "active":
        return "withdrawn"
    return change.change


def for_entity(conn: Connection, entity_type: str, entity_id: str) -> list[Row[Any]]:
    query = (
        select(tag_assignments)
        .where(
            tag_assignments.c.entity_type == entity_type,
            tag_assignments.c.entity_id == entity_id,
        )
        .order_by(tag_assignments.c.tag)
    )
    return list(conn.execute(query))


def history(conn: Connection, entity_type: str, entity_id: str, limit: int = 50) -> list[Row[Any]]:
    query = (
        select(tag_history)
        .where(tag_history.c.entity_type == entity_type, tag_history.c.entity_id == entity_id)
        .order_by(tag_history.c.at.desc(), tag_history.c.seq.desc())
        .limit(limit)
    )
    return list(conn.execute(query))


def counts(conn: Connection) -> dict[str, int]:
    """Active assignments per tag."""
    query = (
        select(tag_assignments.c.tag, func.count())
        .where(tag_assignments.c.status == "active")
        .group_by(tag_assignments.c.tag)
    )
    return {row[0]: int(row[1]) for row in conn.execute(query)}


def assigned_ids(conn: Connection, tag: str) -> list[tuple[str, str]]:
    query = select(tag_assignments.c.entity_type, tag_assignments.c.entity_id).where(
        tag_assignments.c.tag == tag
    )
    return [(row[0], row[1]) for row in conn.execute(query)]
