"""The review queue, decisions and pins, as stored (tables in `tagloop.store.tables`).

`sync` keeps the queue in step with the assignments: it runs inside `tags.apply`, in the
transaction of the tag changes, for the tags that have a review policy. The rest are the
queries of `tagloop.review`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, and_, func, or_, select, update

from tagloop.store.db import Database, dump_json, insert_sql
from tagloop.store.tables import review_items, review_pins

if TYPE_CHECKING:
    from tagloop.store.tags import TagChange

PENDING = "pending"
DECIDED = ("approved", "rejected", "overridden")
CLOSED = ("superseded", "withdrawn")
STATUSES = (PENDING, *DECIDED, *CLOSED)

_CLOSE = (
    "UPDATE review_items SET status = ?, decided_at = ?, decided_by = 'system', "
    "decided_by_kind = 'system' "
    "WHERE entity_type = ? AND entity_id = ? AND tag = ? AND status = 'pending'"
)
_ITEM_COLUMNS = (
    "entity_type",
    "entity_id",
    "tag",
    "version",
    "source",
    "value",
    "confidence",
    "evidence",
    "policy",
    "status",
    "created_at",
)
_INSERT_ITEM = insert_sql("review_items", _ITEM_COLUMNS)


def sync(db: Database, conn: Connection, changes: Sequence[TagChange]) -> None:
    """Queue the proposals that wait for review, and close the items their change makes
    moot: a new proposal supersedes the pending one of the same entity and tag; any other
    change (the rule no longer holds, the value now applies at once) withdraws it.

    >>> from tagloop.store.migrate import upgrade
    >>> from tagloop.store.tags import TagChange
    >>> db = Database("sqlite://"); upgrade(db)
    >>> proposal = TagChange("customer", "c1", "VIP", "assigned", True, None, 1,
    ...     "rule:VIP@v1", {"values": {"spend": 1200}}, 0, status="pending", review="all")
    >>> with db.write() as conn:
    ...     sync(db, conn, [proposal])
    ...     [(r.entity_id, r.status, r.policy) for r in items(conn, Filters(tag="VIP"))]
    [('c1', 'pending', 'all')]
    """
    moved = [c for c in changes if c.change != "confirmed"]
    if not moved:
        return
    db.executemany(
        conn,
        _CLOSE,
        [
            (
                "superseded" if _queued(c) else "withdrawn",
                c.at,
                c.entity_type,
                c.entity_id,
                c.tag,
            )
            for c in moved
        ],
    )
    db.executemany(
        conn,
        _INSERT_ITEM,
        [
            (
                c.entity_type,
                c.entity_id,
                c.tag,
                c.version,
                c.source,
                dump_json(c.value),
                c.confidence,
                dump_json(c.evidence),
                c.review,
                PENDING,
                c.at,
            )
            for c in moved
            if _queued(c)
        ],
    )


def _queued(change: TagChange) -> bool:
    return change.status == PENDING and change.change in ("assigned", "changed")


@dataclass(frozen=True)
class Filters:
    """What a queue listing or a bulk decision selects."""

    status: str | None = PENDING  # None: every status
    tag: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    created_before: int | None = None  # older than a given age
    created_after: int | None = None  # younger than a given age
    ids: tuple[int, ...] | None = None
    entity_types: frozenset[str] | None = None  # what the principal may see (None: all)


def _where(filters: Filters) -> list[Any]:
    c = review_items.c
    conds: list[Any] = []
    if filters.status is not None:
        conds.append(c.status == filters.status)
    if filters.tag is not None:
        conds.append(c.tag == filters.tag)
    if filters.entity_type is not None:
        conds.append(c.entity_type == filters.entity_type)
    if filters.entity_id is not None:
        conds.append(c.entity_id == filters.entity_id)
    if filters.created_before is not None:
        conds.append(c.created_at < filters.created_before)
    if filters.created_after is not None:
        conds.append(c.created_at >= filters.created_after)
    if filters.ids is not None:
        conds.append(c.id.in_(list(filters.ids)))
    if filters.entity_types is not None:
        conds.append(c.entity_type.in_(sorted(filters.entity_types)))
    return conds


def items(
    conn: Connection, filters: Filters, *, after: int | None = None, limit: int = 50
) -> list[Row[Any]]:
    """Items matching ``filters``, oldest first (a queue), from id ``after`` on."""
    query = select(review_items).where(*_where(filters))
    if after is not None:
        query = query.where(review_items.c.id > after)
    return list(conn.execute(query.order_by(review_items.c.id).limit(limit)))


def count(conn: Connection, filters: Filters) -> int:
    query = select(func.count()).select_from(review_items).where(*_where(filters))
    return int(conn.execute(query).scalar_one())


def item(conn: Connection, item_id: int) -> Row[Any] | None:
    return conn.execute(select(review_items).where(review_items.c.id == item_id)).first()


def decide(
    conn: Connection,
    item_id: int,
    *,
    status: str,
    at: int,
    actor: str,
    actor_kind: str,
    reason: str | None = None,
    note: str | None = None,
    override: Any = None,
) -> bool:
    """Record a decision on a pending item; False if it was no longer pending."""
    result = conn.execute(
        update(review_items)
        .where(review_items.c.id == item_id, review_items.c.status == PENDING)
        .values(
            status=status,
            decided_at=at,
            decided_by=actor,
            decided_by_kind=actor_kind,
            reason=reason,
            note=note,
            override=override,
        )
    )
    return bool(result.rowcount)


def close(conn: Connection, item_id: int, status: str, at: int) -> None:
    """Close a pending item that no longer matches its assignment (``withdrawn``)."""
    conn.execute(
        update(review_items)
        .where(review_items.c.id == item_id, review_items.c.status == PENDING)
        .values(status=status, decided_at=at, decided_by="system", decided_by_kind="system")
    )


def decided(conn: Connection, tag: str) -> list[Row[Any]]:
    """Decided items of ``tag`` in decision order (the latest decision of an entity last)."""
    query = (
        select(review_items)
        .where(review_items.c.tag == tag, review_items.c.status.in_(DECIDED))
        .order_by(review_items.c.decided_at, review_items.c.id)
    )
    return list(conn.execute(query))


def decision_counts(conn: Connection, tag: str | None) -> list[Row[Any]]:
    """(tag, status, decided_at) of every decided item (of ``tag``)."""
    c = review_items.c
    query = select(c.tag, c.status, c.decided_at).where(c.status.in_(DECIDED))
    if tag is not None:
        query = query.where(c.tag == tag)
    return list(conn.execute(query.order_by(c.decided_at)))


# -- pins ----------------------------------------------------------------------------------


def add_pin(conn: Connection, values: dict[str, Any]) -> int:
    result = conn.execute(review_pins.insert().values(**values).returning(review_pins.c.id))
    return int(result.scalar_one())


def pin(conn: Connection, pin_id: int) -> Row[Any] | None:
    return conn.execute(select(review_pins).where(review_pins.c.id == pin_id)).first()


def live_pins(
    conn: Connection,
    now: int,
    *,
    entity_type: str | None = None,
    entity_id: str | None = None,
    tag: str | None = None,
    entity_types: frozenset[str] | None = None,
    after: int | None = None,
    limit: int = 1000,
) -> list[Row[Any]]:
    """Pins neither lifted nor expired at ``now``, oldest first."""
    c = review_pins.c
    query = select(review_pins).where(
        c.lifted_at.is_(None), or_(c.expires_at.is_(None), c.expires_at > now)
    )
    for column, value in ((c.entity_type, entity_type), (c.entity_id, entity_id), (c.tag, tag)):
        if value is not None:
            query = query.where(column == value)
    if entity_types is not None:
        query = query.where(c.entity_type.in_(sorted(entity_types)))
    if after is not None:
        query = query.where(c.id > after)
    return list(conn.execute(query.order_by(c.id).limit(limit)))


def lift(conn: Connection, pin_id: int, at: int, by: str) -> None:
    conn.execute(
        update(review_pins)
        .where(review_pins.c.id == pin_id, review_pins.c.lifted_at.is_(None))
        .values(lifted_at=at, lifted_by=by)
    )


def lift_all(
    conn: Connection, entity_type: str, entity_id: str, tag: str, at: int, by: str
) -> None:
    """Lift every pin of an entity's tag (a new pin or an unpin replaces them)."""
    c = review_pins.c
    conn.execute(
        update(review_pins)
        .where(
            and_(
                c.entity_type == entity_type,
                c.entity_id == entity_id,
                c.tag == tag,
                c.lifted_at.is_(None),
            )
        )
        .values(lifted_at=at, lifted_by=by)
    )


def pinned_tags(conn: Connection, now: int) -> set[str]:
    """Tags with at least one live pin: the batch evaluator reads them as stored."""
    c = review_pins.c
    query = (
        select(c.tag)
        .where(c.lifted_at.is_(None), or_(c.expires_at.is_(None), c.expires_at > now))
        .distinct()
    )
    return {row[0] for row in conn.execute(query)}


def pin_labels(conn: Connection, tag: str) -> list[Row[Any]]:
    """Pins of ``tag`` that were not lifted (expired ones included: they were true when
    made), oldest first; those an override made are labels through their item already."""
    c = review_pins.c
    query = (
        select(review_pins)
        .where(c.tag == tag, c.lifted_at.is_(None), c.review_id.is_(None))
        .order_by(c.created_at, c.id)
    )
    return list(conn.execute(query))
