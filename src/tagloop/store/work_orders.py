"""Work orders in the store: created by the ``create_work_order`` flow action (once per
step, by its idempotency key), listed and updated by people (``/v1/work-orders``,
``tagloop work-orders``); every update is audited (``work_order.update``) in its own
transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.engine import Connection

from tagloop.audit import Actor, record
from tagloop.errors import NotFound
from tagloop.store.db import Database
from tagloop.store.tables import work_orders

STATUSES = ("open", "in_progress", "done", "cancelled")
"""A work order's life: ``open`` when created, then any of these as people work on it."""
CHANGEABLE = ("status", "assignee")
"""What people may change on a work order (the rest is what the flow wrote)."""


def create_work_order(
    db: Database, key: str, order: Mapping[str, Any], now: int
) -> tuple[int, bool]:
    """Insert a work order once per ``key``; its id, and whether it is new."""
    with db.write() as conn:
        found = conn.execute(select(work_orders.c.id).where(work_orders.c.key == key)).scalar()
        if found is not None:
            return int(found), False
        result = conn.execute(
            work_orders.insert().values(
                key=key, status="open", created_at=now, updated_at=now, **dict(order)
            )
        )
        (new_id,) = result.inserted_primary_key or (0,)
        return int(new_id or 0), True


def work_order_list(
    conn: Connection,
    *,
    status: str | None = None,
    assignee: str | None = None,
    limit: int = 100,
    before: int | None = None,
    entity_types: Collection[str] | None = None,
) -> list[Row[Any]]:
    """Work orders, newest first (``before``: ids below this one, for paging;
    ``entity_types``: only work orders on these types, None for all)."""
    query = select(work_orders).order_by(work_orders.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(work_orders.c.status == status)
    if assignee is not None:
        query = query.where(work_orders.c.assignee == assignee)
    if before is not None:
        query = query.where(work_orders.c.id < before)
    if entity_types is not None:
        query = query.where(work_orders.c.entity_type.in_(sorted(entity_types)))
    return list(conn.execute(query))


def get(conn: Connection, order_id: int) -> Row[Any] | None:
    return conn.execute(select(work_orders).where(work_orders.c.id == order_id)).first()


def update_work_order(
    db: Database,
    order_id: int,
    changes: Mapping[str, Any],
    now: int,
    actor: Actor,
    *,
    entity_types: Collection[str] | None = None,
) -> Row[Any]:
    """Change the status and/or assignee of a work order; returns it as it is now.

    A change is audited (``work_order.update``, the changed fields before and after) in
    the transaction that makes it; a request that changes nothing stores nothing. A work
    order on a type outside ``entity_types`` is as unknown as a missing one (`NotFound`).
    """
    unknown = sorted(set(changes) - set(CHANGEABLE))
    if unknown:
        raise ValueError(f"work orders cannot change {', '.join(unknown)}")
    if "status" in changes and changes["status"] not in STATUSES:
        raise ValueError(f"status {changes['status']!r} is not one of {', '.join(STATUSES)}")
    with db.write() as conn:
        row = get(conn, order_id)
        if row is None or (entity_types is not None and row.entity_type not in entity_types):
            raise NotFound(f"no work order {order_id}")
        before = {name: getattr(row, name) for name in changes}
        changed = {name: value for name, value in changes.items() if before[name] != value}
        if not changed:
            return row
        conn.execute(
            update(work_orders)
            .where(work_orders.c.id == order_id)
            .values(updated_at=now, **changed)
        )
        record(
            db,
            conn,
            actor=actor,
            action="work_order.update",
            target_type="work_order",
            target_id=str(order_id),
            before={name: before[name] for name in changed},
            after=changed,
        )
        found = get(conn, order_id)
        assert found is not None
        return found
