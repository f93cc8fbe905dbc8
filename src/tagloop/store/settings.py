"""Small persistent facts about a database (e.g. whether the demo data was loaded)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from tagloop.store.db import Database
from tagloop.store.tables import settings


def get(conn: Connection, key: str) -> Any:
    return conn.execute(select(settings.c.value).where(settings.c.key == key)).scalar()


def put(db: Database, conn: Connection, key: str, value: Any) -> None:
    stmt = db.insert(settings).values(key=key, value=value)
    conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))
