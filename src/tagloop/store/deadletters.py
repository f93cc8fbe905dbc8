"""Dead letters: records a source could not turn into events, kept with their error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, select

from tagloop.store.db import Database
from tagloop.store.tables import dead_letters


def add(db: Database, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Store rejected records: each has ``source, location, error, payload, received_at``.

    A NUL character, which PostgreSQL cannot keep in text (and a likely reason the record
    was rejected), is stored as the escape ``\\u0000``: the bad record is kept either way.
    """
    if rows:
        conn.execute(
            dead_letters.insert(),
            [{"replayed": False, **{k: _text(v) for k, v in row.items()}} for row in rows],
        )


def _text(value: Any) -> Any:
    return value.replace("\x00", "\\u0000") if isinstance(value, str) else value


def listing(conn: Connection, source: str | None = None, limit: int = 100) -> list[Row[Any]]:
    query = select(dead_letters).order_by(dead_letters.c.seq.desc()).limit(limit)
    if source is not None:
        query = query.where(dead_letters.c.source == source)
    return list(conn.execute(query))
