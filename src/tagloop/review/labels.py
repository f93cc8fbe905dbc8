"""Decisions as labels for the next training (`tagloop.models` reads them).

For a tag, each entity a person decided on gets one label, the latest decision winning:
an approval labels the proposed value (true for a boolean tag), a rejection ``False``, an
override the reviewer's value; a pin made directly (not lifted) labels its value, an
exclusion ``False``. With the label comes the decision time (µs), so that a training set
can take the features as of that time (point-in-time correctness).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from tagloop.store import reviews as store
from tagloop.store.db import Database


def decided(db: Database, conn: Connection, tag: str) -> dict[str, tuple[bool | Any, int]]:
    """Entity id -> (label, decided_at µs) for ``tag``.

    >>> from tagloop.store.migrate import upgrade
    >>> db = Database("sqlite://"); upgrade(db)
    >>> with db.read() as conn:
    ...     decided(db, conn, "churn_risk")
    {}
    """
    found: list[tuple[int, str, Any]] = []
    for row in store.decided(conn, tag):
        if row.status == "approved":
            label = row.value
        elif row.status == "rejected":
            label = False
        else:
            label = row.override
        found.append((row.decided_at, row.entity_id, label))
    for pin in store.pin_labels(conn, tag):
        label = pin.value if pin.mode == "include" else False
        found.append((pin.created_at, pin.entity_id, label))
    out: dict[str, tuple[bool | Any, int]] = {}
    for at, entity_id, label in sorted(found, key=lambda item: item[0]):
        out[entity_id] = (label, at)
    return out
