"""Dead letters: records a source could not turn into events, kept with their error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, select

from tagloop.store.db import Database
from tagloop.store.tables import dead_letters


def add(db: Database, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Store rejected records: each has ``source, location, error, payload, received_at``."""
    if rows:
        conn.execute(dead_letters.insert(), [{"replayed": False, **row} for row in rows])


def listing(conn: Connection, source: str | None = None, limit: int = 100) -> list[Row[Any]]:
    query = select(dead_letters).order_by(dead_letters.c.seq.desc()).limit(limit)
    if source is not None:
        query = query.where(dead_letters.c.source == source)
    return list(conn.execute(query))
